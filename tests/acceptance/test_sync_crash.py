"""Kill the sync process with SIGKILL at random moments, 50 times: Odoo gets no duplicate, no loss.

Each run queues a few more sessions and alerts, starts `milkconsole sync --once` as a separate
process and kills it -9: half the runs at a random instant after it first reached Odoo, half
right after Odoo committed a create and before the answer left (the window the outbox's
look-up-before-create exists for). The simulated Odoo has its unique constraints taken away, so
a second create of a key would show up as a second record rather than as a refusal.

Starting a Python with SQLAlchemy, Alembic and odoorpc takes over a second on this machine, so the
sync processes are forked from a "zygote" child that imported everything once (it runs this module
as `python -m tests.acceptance.test_sync_crash`); each forked process then runs the real CLI entry
point and is killed with a real SIGKILL. The zygote keeps a killed child unreaped until the test has
finished with its pid, so a signal can never reach a recycled pid.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from sqlalchemy import select

from milkconsole.store import open_database
from milkconsole.store.db import Database
from milkconsole.store.schema import AlertRow, Animal, OutboxRow
from milkconsole.sync.settings import parse_odoo_settings
from simulators.odoo.models import ModelDef, contract_models
from simulators.odoo.server import OdooSimulator

ROOT = Path(__file__).resolve().parents[2]
RUNS = 50
SESSIONS_PER_RUN = 18
COWS = 36
KEYRING_ENV = "MILKCONSOLE_TEST_KEYRING"
T0 = datetime(2025, 3, 1, 4, 30, tzinfo=UTC)


class FileKeyring(KeyringBackend):
    """A keyring backend over a JSON file named by $MILKCONSOLE_TEST_KEYRING, chosen in the
    sync processes through keyring's documented PYTHON_KEYRING_BACKEND variable."""

    priority = 1  # type: ignore[assignment]

    def _load(self) -> dict[str, str]:
        path = Path(os.environ[KEYRING_ENV])
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}|{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        items = self._load()
        items[f"{service}|{username}"] = password
        Path(os.environ[KEYRING_ENV]).write_text(json.dumps(items), encoding="utf-8")

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.PasswordDeleteError(username)


# -- the zygote (runs in its own process) ---------------------------------------------------------


def zygote() -> None:
    """Read argv lists (JSON lines) on stdin; fork a sync process for each, report its pid and
    its end, and reap it only when told ("reap"), so its pid stays unused until then."""
    import keyring

    import milkconsole.sync.cli as cli
    import milkconsole.sync.engine
    import milkconsole.sync.odoo_json2
    import milkconsole.sync.odoo_rpc  # noqa: F401  (imported here once, not in every child)

    keyring.get_keyring()  # resolve PYTHON_KEYRING_BACKEND before forking
    out = sys.stdout
    for line in sys.stdin:
        argv = json.loads(line)
        pid = os.fork()
        if pid == 0:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            try:
                code = cli.main(argv)
            except BaseException:
                code = 99
            os._exit(code)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        assert info is not None
        killed = info.si_code in (os.CLD_KILLED, os.CLD_DUMPED)
        out.write(json.dumps({"pid": pid, "code": info.si_status, "killed": killed}) + "\n")
        out.flush()
        sys.stdin.readline()  # "reap"
        os.waitpid(pid, 0)


class Zygote:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.acceptance.test_sync_crash"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def spawn(self, argv: list[str]) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(argv) + "\n")
        self.proc.stdin.flush()
        return int(self.lines.get(timeout=30)["pid"])

    def wait(self, pid: int) -> dict[str, Any]:
        """Block until process `pid` ended (it stays a zombie: its pid cannot be reused)."""
        end = self.lines.get(timeout=60)
        assert end["pid"] == pid
        return end

    def reap(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("reap\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the test -------------------------------------------------------------------------------------


def without_unique(models: dict[str, ModelDef]) -> dict[str, ModelDef]:
    return {
        name: ModelDef(m.name, m.description, m.fields, (), m.rec_name)
        for name, m in models.items()
    }


def queue_work(db: Database, run: int) -> tuple[list[str], list[str]]:
    """A few more completed, identified sessions (with their outbox rows) and two alerts, queued
    as the console queues them (the meters registered on the first call)."""
    from milkconsole.meters.events import SessionSnapshot
    from milkconsole.store.outbound import queue_alert, queue_meter, queue_session
    from milkconsole.store.schema import Meter
    from milkconsole.store.sessions import new_session_row, resolve_animal

    keys: list[str] = []
    alerts: list[str] = []
    with db.write() as tx:
        for n in range(1, 5):
            if tx.get(Meter, f"M{n:02d}") is None:
                meter = Meter(id=f"M{n:02d}", bus_id="b", unit=n, profile="gea", stall=n)
                tx.add(meter)
                tx.flush()
                queue_meter(
                    tx,
                    meter,
                    {
                        "meter_id": meter.id,
                        "name": f"Milk meter {meter.id}",
                        "stall": n,
                        "manufacturer": "GEA",
                        "model": "DemaTron",
                        "transport": "tcp",
                        "host": "10.0.0.5",
                        "port": 502,
                        "unit": n,
                    },
                )
        animals = list(tx.scalars(select(Animal.id).order_by(Animal.id)))
        for i in range(SESSIONS_PER_RUN):
            cow = (run * SESSIONS_PER_RUN + i) % COWS
            began = T0 + timedelta(hours=8 * run, seconds=30 * i)
            tag = str(982000000000001 + cow)
            snap = SessionSnapshot(
                key=f"F1-R{run:02d}-{i:02d}",
                meter_id=f"M{i % 4 + 1:02d}",
                stall=i % 4 + 1,
                started_at=began,
                state="completed",
                rfid=tag,
                ended_at=began + timedelta(minutes=6),
                duration_s=360.0,
                yield_l=10.0 + i / 10,
            )
            row = new_session_row(snap, began)
            row.animal_id = resolve_animal(tx, tag)
            row.id_source = "rfid" if row.animal_id is not None else None
            tx.add(row)
            tx.flush()
            queue_session(tx, row)
            keys.append(row.key)
        for j in range(2):
            alert = AlertRow(
                key=f"ALERT-R{run:02d}-{j}",
                kind="mastitis",
                severity="warning",
                state="open",
                animal_id=animals[(run + j) % len(animals)] if animals else None,
                meter_id="M01",
                message="conductivity up",
                raised_at=T0 + timedelta(hours=8 * run, minutes=j),
            )
            tx.add(alert)
            queue_alert(tx, alert)
            alerts.append(alert.key)
    return keys, alerts


@pytest.fixture
def sim() -> Iterator[OdooSimulator]:
    with OdooSimulator(version="19.0", models=without_unique(contract_models())) as s:
        s.seed_herd(COWS)
        s.seed_devices(["M01", "M02", "M03", "M04"])
        yield s


def test_fifty_kill_9s_of_the_sync_leave_odoo_without_duplicates_or_losses(sim, tmp_path):
    rng = random.Random(20250301)
    db_path = tmp_path / "console.sqlite"
    configs = []
    for transport in ("jsonrpc", "json2"):
        config = tmp_path / f"parlour-{transport}.toml"
        config.write_text(
            f'[odoo]\nurl = "{sim.url}"\ndatabase = "farm"\nlogin = "admin"\n'
            f'transport = "{transport}"\nbatch_size = 6\ntimeout_s = 10\n',
            encoding="utf-8",
        )
        configs.append(config)
    settings = parse_odoo_settings(
        {"url": sim.url, "database": "farm", "login": "admin"}, "parlour.toml"
    )
    vault = tmp_path / "keyring.json"
    vault.write_text(json.dumps({f"milkconsole-odoo|{settings.account}": sim.api_key}))
    env = {
        **os.environ,
        "PYTHON_KEYRING_BACKEND": "tests.acceptance.test_sync_crash.FileKeyring",
        KEYRING_ENV: str(vault),
        "MILKCONSOLE_LOG_DIR": str(tmp_path / "logs"),
    }
    db = open_database(db_path)
    zygote = Zygote(env)
    target: dict[str, Any] = {"pid": None, "after": None, "commits": 0, "fired": False}

    def kill_after_commit(model: str, method: str, ids: list[int]) -> None:
        # Runs in the simulator after Odoo committed, before the answer is sent.
        if target["after"] is None or target["pid"] is None:
            return
        target["commits"] += 1
        if target["commits"] == target["after"]:
            os.kill(target["pid"], signal.SIGKILL)
            target["fired"] = True

    # A first, uninterrupted run fetches the herd, so sessions are identified from the cache.
    first = zygote.spawn(["sync", "--once", "--config", str(configs[0]), "--db", str(db_path)])
    assert zygote.wait(first)["code"] == 0
    zygote.reap()
    sim.on_commit = kill_after_commit
    sessions: list[str] = []
    alerts: list[str] = []
    kills = commit_kills = left_in_flight = 0
    try:
        for run in range(RUNS):
            new_sessions, new_alerts = queue_work(db, run)
            sessions += new_sessions
            alerts += new_alerts
            at_commit = run % 2 == 1
            target.update(
                pid=None, commits=0, fired=False, after=rng.randint(1, 8) if at_commit else None
            )
            requests_before = sim.requests
            argv = ["sync", "--once", "--config", str(configs[run % 4 // 2]), "--db", str(db_path)]
            pid = zygote.spawn(argv)
            target["pid"] = pid
            if not at_commit:
                deadline = time.monotonic() + 20
                while sim.requests == requests_before and time.monotonic() < deadline:
                    time.sleep(0.002)
                time.sleep(rng.uniform(0.0, 0.3))
                os.kill(pid, signal.SIGKILL)  # a zombie if it already ended: harmless
            end = zygote.wait(pid)
            if end["killed"]:
                kills += 1
                commit_kills += int(bool(target["fired"]))
            else:
                assert end["code"] == 0, f"run {run}: sync exited {end['code']}"
            zygote.reap()
            with db.read() as tx:
                left_in_flight += len(
                    list(tx.scalars(select(OutboxRow.id).where(OutboxRow.state == "in_flight")))
                )
        sim.on_commit = None
        final = zygote.spawn(["sync", "--once", "--config", str(configs[0]), "--db", str(db_path)])
        end = zygote.wait(final)
        zygote.reap()
        assert end == {"pid": final, "code": 0, "killed": False}
    finally:
        zygote.close()

    print(
        f"\n{kills} of {RUNS} runs killed, {commit_kills} right after an Odoo commit; "
        f"{left_in_flight} outbox rows found in flight after the kills"
    )
    # The kills did hit the dangerous moments, not just process start-up.
    assert kills >= RUNS * 0.6
    assert commit_kills >= RUNS * 0.3
    assert left_in_flight > 0

    def keys_in(model: str, key_field: str) -> Counter[str]:
        return Counter(r[key_field] for r in sim.records(model, fields=[key_field]))

    odoo_sessions = keys_in("milk.session", "name")
    odoo_production = keys_in("farm.milk.production", "source_reference")
    odoo_alerts = keys_in("iot.device.alert", "reference")
    for name, counts, expected in (
        ("milk.session", odoo_sessions, sessions),
        ("farm.milk.production", odoo_production, sessions),
        ("iot.device.alert", odoo_alerts, alerts),
    ):
        dupes = {k: n for k, n in counts.items() if n > 1}
        assert not dupes, f"{name}: duplicated in Odoo: {dupes}"
        assert set(counts) == set(expected), f"{name}: lost {set(expected) - set(counts)}"

    # Every outbox row is sent, with the id Odoo gave the record.
    ids = {r["name"]: r["id"] for r in sim.records("milk.session", fields=["name"])}
    with db.read() as tx:
        rows = list(tx.scalars(select(OutboxRow)))
    assert Counter(r.state for r in rows) == {"sent": len(rows)}
    for r in rows:
        if r.model == "milk.session":
            assert r.odoo_id == ids[r.record_key]
    db.close()


def test_milkconsole_odoo_login_then_sync_once_as_real_commands(tmp_path):
    """The installed command, from a fresh interpreter: login stores the key, sync sends."""
    with OdooSimulator(version="19.0") as sim:
        sim.seed_herd(3)
        config = tmp_path / "parlour.toml"
        config.write_text(
            f'[odoo]\nurl = "{sim.url}"\ndatabase = "farm"\nlogin = "admin"\n', encoding="utf-8"
        )
        db_path = tmp_path / "console.sqlite"
        db = open_database(db_path)
        queue_work(db, 0)  # sessions not identified yet: the herd is not pulled
        db.close()
        env = {
            **os.environ,
            "PYTHON_KEYRING_BACKEND": "tests.acceptance.test_sync_crash.FileKeyring",
            KEYRING_ENV: str(tmp_path / "keyring.json"),
            "MILKCONSOLE_LOG_DIR": str(tmp_path / "logs"),
        }
        base = [sys.executable, "-m", "milkconsole"]
        login = subprocess.run(
            [*base, "odoo", "login", "--config", str(config), "--password-stdin"],
            input=sim.api_key + "\n",
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert login.returncode == 0, login.stderr
        assert "logged in to Odoo 19.0" in login.stdout and "(json2)" in login.stdout
        assert sim.api_key not in login.stdout + login.stderr
        sync = subprocess.run(
            [*base, "sync", "--once", "--config", str(config), "--db", str(db_path)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sync.returncode == 0, sync.stderr
        assert f"{SESSIONS_PER_RUN} session" in sync.stdout and "4 milk_meter" in sync.stdout
        assert sim.count("milk.session") == SESSIONS_PER_RUN
        assert sim.count("iot.device.alert") == 2


if __name__ == "__main__":
    zygote()
