"""The Odoo sync against a REAL Odoo 17 with the repository's module installed.

One server for the whole test session (`tests/acceptance/real_odoo.py`), so every test keeps
to its own keys (a prefix per test) and counts only what it made. Covered here, as issue 9 asks: the
contract check clean; a simulated parlour's sessions, production records, meters, alerts
(acknowledged and resolved) and health events landing right and linked to the right meter and
cow; a 10,500-session week offline delivered exactly once; the sync killed with SIGKILL at random
moments; Odoo stopped mid-drain; one record refused while the rest land; a cow deleted while her
records wait; the herd and alternative tags pulled. The simulator's models are checked against
the module's, so the fast simulator tests test the same contract.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from milkconsole.grants import Grant
from milkconsole.store import Outbox, open_database
from milkconsole.store.db import Database
from milkconsole.store.schema import AlertRow, Animal, SessionRow, User
from milkconsole.supervision.alerts import acknowledge_alert, resolve_alert
from milkconsole.sync import secrets
from milkconsole.sync.check import check_contract
from milkconsole.sync.client import OdooUnavailable
from milkconsole.sync.connect import connect
from milkconsole.sync.contract import Contract
from milkconsole.sync.engine import SyncEngine
from milkconsole.sync.settings import OdooSettings, parse_odoo_settings
from simulators.keyring_memory import MemoryKeyring
from simulators.odoo.models import contract_models
from tests.acceptance.real_odoo import OdooGate, OdooRpc, RealOdoo
from tests.helpers.odoo_fixtures import (
    METERS,
    add_meters,
    raise_alerts,
    record_health_events,
    record_sessions,
)

pytestmark = pytest.mark.real_odoo

ROOT = Path(__file__).resolve().parents[2]
FIRST_TAG = 982000000000001


# -- helpers --------------------------------------------------------------------------------------


def settings_for(url: str, real_odoo: RealOdoo, **changes: Any) -> OdooSettings:
    section: dict[str, Any] = {
        "url": url,
        "database": real_odoo.db,
        "login": real_odoo.login,
        "timeout_s": 30,
        "timezone": "Europe/Dublin",
        **changes,
    }
    return parse_odoo_settings(section, "parlour.toml")


@pytest.fixture
def real(real_odoo: RealOdoo, vault: MemoryKeyring) -> OdooSettings:
    """Settings for the real Odoo, the secret in the (test) keyring."""
    settings = settings_for(real_odoo.url, real_odoo, batch_size=500)
    secrets.store_secret(settings, real_odoo.password)
    return settings


@pytest.fixture
def rpc(real_odoo: RealOdoo) -> OdooRpc:
    return real_odoo.rpc()


_HERD_MADE: set[int] = set()


def herd(rpc: OdooRpc, cows: int, first_tag: int = FIRST_TAG) -> dict[int, int]:
    """Cows numbered 1..cows with tags first_tag+i in the shared Odoo (made once): tag -> id."""
    tags = [first_tag + i for i in range(cows)]
    found = rpc.call(
        "farm.animal",
        "search_read",
        [["rfid_tag", "in", [str(t) for t in tags]]],
        fields=["rfid_tag"],
        context={"active_test": False},
    )
    have = {int(r["rfid_tag"]): r["id"] for r in found}
    missing = [t for t in tags if t not in have]
    if missing:
        ids = rpc.call(
            "farm.animal",
            "create",
            [
                {
                    "name": f"Cow {t - first_tag + 1}",
                    "number": str(t - first_tag + 1),
                    "rfid_tag": str(t),
                }
                for t in missing
            ],
        )
        have.update(zip(missing, ids, strict=True))
    return have


def keys_in(rpc: OdooRpc, model: str, key_field: str, prefix: str) -> Counter[str]:
    rows = rpc.call(
        model,
        "search_read",
        [[key_field, "=like", f"{prefix}%"]],
        fields=[key_field],
        context={"active_test": False},
    )
    return Counter(r[key_field] for r in rows)


def engine(db: Database, settings: OdooSettings) -> SyncEngine:
    e = SyncEngine(db, settings)
    e.start()
    return e


@pytest.fixture
def fresh_db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "console.sqlite")
    yield database
    database.close()


# -- the contract ---------------------------------------------------------------------------------


def test_the_real_module_offers_the_whole_contract_and_odoo_check_is_clean(
    real, real_odoo, tmp_path
):
    client = connect(real)
    try:
        check = check_contract(client, Contract(real))
    finally:
        client.close()
    assert check.problems == ()
    # And as a farm's IT person runs it, from the command line with a credential file.
    secret = tmp_path / "odoo-secret"
    secret.write_text(real_odoo.password, encoding="utf-8")
    secret.chmod(0o600)
    config = tmp_path / "parlour.toml"
    config.write_text(
        f'[odoo]\nurl = "{real_odoo.url}"\ndatabase = "{real_odoo.db}"\n'
        f'login = "{real_odoo.login}"\nsecret_file = "{secret}"\n',
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "milkconsole", "odoo", "check", "--config", str(config)],
        cwd=ROOT,
        env={**os.environ, "MILKCONSOLE_LOG_DIR": str(tmp_path / "logs")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every model, field, link and value the console sends is there" in done.stdout


def test_the_simulators_models_agree_with_the_real_module(rpc):
    """Types, relations, selection values and required flags: what the simulator tests rely on."""
    for name, model in contract_models().items():
        if name == "res.users":
            continue
        real_fields = rpc.call(
            name, "fields_get", attributes=["type", "relation", "selection", "required"]
        )
        for fname, f in model.fields.items():
            assert fname in real_fields, f"{name}.{fname} is not in the module"
            real_f = real_fields[fname]
            assert real_f["type"] == f.type, f"{name}.{fname}: {real_f['type']} != {f.type}"
            assert real_f.get("relation") == f.relation, f"{name}.{fname} relation"
            if f.type == "selection":
                assert [v for v, _ in real_f["selection"]] == [v for v, _ in f.selection], (
                    f"{name}.{fname} selection"
                )
            assert bool(real_f.get("required")) == f.required, f"{name}.{fname} required"


# -- a simulated parlour into the real Odoo -------------------------------------------------------


def test_a_simulated_parlour_lands_linked_to_the_right_meter_and_cow(
    real, real_odoo, rpc, tmp_path
):
    from milkconsole.app.runtime import ParlourRuntime
    from milkconsole.config import load_config
    from milkconsole.meters.rfid import fdx_b_to_iso
    from simulators.demo import SimulatedParlour, make_demo_config

    cfg_path = make_demo_config(tmp_path, stalls=8, time_scale=120.0)
    cfg_path.write_text(
        cfg_path.read_text(encoding="utf-8").replace('farm_code = "', 'farm_code = "RP')
        + f'\n[odoo]\nurl = "{real_odoo.url}"\ndatabase = "{real_odoo.db}"\n'
        f'login = "{real_odoo.login}"\ntimezone = "Europe/Dublin"\n',
        encoding="utf-8",
    )
    cfg = load_config(cfg_path)
    park = SimulatedParlour(cfg, cows=24, seed=5, time_scale=120.0)
    # The farm's herd in Odoo: each cow's ISO tag, and the Afimilk meters' 8-character tag as an
    # alternative tag (farm.animal.rfid), as a farm would keep them.
    cows = rpc.call(
        "farm.animal",
        "create",
        [
            {
                "name": f"RP{c.herd_number}",
                "number": f"RP{c.herd_number}",
                "rfid_tag": fdx_b_to_iso(c.fdx_code),
            }
            for c in park.scenario.herd
        ],
    )
    odoo_cow = dict(zip((c.index for c in park.scenario.herd), cows, strict=True))
    rpc.call(
        "farm.animal.rfid",
        "create",
        [
            {"animal_id": odoo_cow[c.index], "rfid_tag": f"ASCII:C{c.herd_number:07d}"}
            for c in park.scenario.herd
        ],
    )
    db = open_database(tmp_path / "parlour.sqlite")
    runtime = ParlourRuntime(cfg, db)
    try:
        with park:
            runtime.start_threads()
            assert runtime.start_sync()
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and not park.scenario.done:
                time.sleep(0.5)
            assert park.scenario.done
        runtime.stop()
        final = engine(db, parse_odoo_settings(cfg.extra["odoo"], str(cfg_path)))
        final.run_once()
        final.close()
        with db.read() as tx:
            rows = {
                r.key: r
                for r in tx.scalars(select(SessionRow).where(SessionRow.state != "in_progress"))
            }
            local_cow = {a.id: a.rfid_tag for a in tx.scalars(select(Animal))}
    finally:
        db.close()
    assert len(rows) >= 20
    truth_tags = {t.rfid for t in park.scenario.truth}
    assert truth_tags  # the parlour milked its cows

    sessions = rpc.call(
        "milk.session",
        "search_read",
        [["name", "in", list(rows)]],
        fields=[
            "name",
            "meter_id",
            "milking_point",
            "animal_id",
            "rfid_tag",
            "total_yield",
            "state",
            "is_abnormal",
        ],
    )
    assert Counter(s["name"] for s in sessions) == Counter(rows.keys())  # each once
    devices = {
        d["id"]: d["device_id"]
        for d in rpc.call(
            "iot.device",
            "search_read",
            [["device_id", "in", [m.id for m in cfg.meters]]],
            fields=["device_id", "device_type"],
        )
    }
    meters = {
        m["id"]: m
        for m in rpc.call(
            "iot.milk_meter",
            "search_read",
            [["device_id", "in", list(devices)]],
            fields=[
                "device_id",
                "manufacturer",
                "model_number",
                "communication_type",
                "modbus_address",
                "has_rfid_reader",
            ],
        )
    }
    assert len(meters) == len(cfg.meters)  # every configured meter registered once
    iso_of = {o: fdx_b_to_iso(c.fdx_code) for c in park.scenario.herd for o in [odoo_cow[c.index]]}
    for s in sessions:
        row = rows[s["name"]]
        meter = meters[s["meter_id"][0]]
        assert devices[meter["device_id"][0]] == row.meter_id, s["name"]  # its own meter
        assert s["state"] == "completed" and s["total_yield"] == round(row.yield_l, 3)
        if row.animal_id is not None:
            assert s["animal_id"], s["name"]
            assert iso_of[s["animal_id"][0]] == local_cow[row.animal_id]  # the right cow
    by_profile = {m.id: cfg.profiles[m.profile] for m in cfg.meters}
    for m in meters.values():
        profile = by_profile[devices[m["device_id"][0]]]
        assert m["manufacturer"] == profile.manufacturer.lower()
        assert m["model_number"] == profile.model
    identified = {k for k, r in rows.items() if r.animal_id is not None and r.yield_l > 0}
    assert len(identified) >= len(rows) * 0.8
    productions = keys_in(rpc, "farm.milk.production", "source_reference", "RP")
    assert set(productions) == identified and max(productions.values()) == 1
    linked = rpc.call(
        "milk.session",
        "search_count",
        [["name", "in", list(identified)], ["production_id", "!=", False]],
    )
    assert linked == len(identified)  # the module linked each session to its production record


def test_alerts_acknowledged_and_resolved_and_health_events_land_on_the_right_device(
    real, rpc, fresh_db
):
    herd(rpc, 20)
    e = engine(fresh_db, real)
    e.run_once()  # the herd pulled
    with fresh_db.write() as tx:
        tx.add(User(name="Sue", role="supervisor", pin_hash="x", created_at=datetime.now(UTC)))
    add_meters(fresh_db)
    alerts = raise_alerts(fresh_db, 12, prefix="RA")
    events = record_health_events(fresh_db, 6, prefix="RH")
    e.run_once()
    with fresh_db.read() as tx:
        rows = {a.key: a for a in tx.scalars(select(AlertRow).where(AlertRow.key.in_(alerts)))}
    sue = Grant("Sue", "supervisor")
    acknowledge_alert(fresh_db, sue, rows[alerts[0]].id, "checking her this evening")
    resolve_alert(fresh_db, sue, rows[alerts[1]].id, "treated, milk discarded 3 days")
    report = e.run_once()
    e.close()
    assert report.written == 2 and report.dead == 0
    odoo = {
        a["reference"]: a
        for a in rpc.call(
            "iot.device.alert",
            "search_read",
            [["reference", "in", alerts]],
            fields=[
                "reference",
                "device_id",
                "state",
                "severity",
                "alert_type",
                "animal_id",
                "acknowledged_by",
                "resolved_by",
                "resolution_note",
            ],
        )
    }
    assert set(odoo) == set(alerts)
    device_of = {
        d["id"]: d["device_id"]
        for d in rpc.call(
            "iot.device", "search_read", [["device_id", "in", METERS]], fields=["device_id"]
        )
    }
    for key, a in odoo.items():
        assert device_of[a["device_id"][0]] == rows[key].meter_id  # the alert's own meter
        assert a["alert_type"] == "custom" and a["severity"] in ("warning", "critical")
    assert odoo[alerts[0]]["state"] == "acknowledged"
    assert odoo[alerts[0]]["acknowledged_by"] == "Sue"
    assert odoo[alerts[1]]["state"] == "resolved"
    assert odoo[alerts[1]]["resolution_note"] == "treated, milk discarded 3 days"
    assert Counter(a["state"] for a in odoo.values())["active"] == 10
    assert set(keys_in(rpc, "farm.health.event", "source_reference", "RH")) == set(events)


# -- a week offline, exactly once -----------------------------------------------------------------


def test_a_week_offline_of_10500_sessions_is_delivered_exactly_once(real, rpc, fresh_db):
    herd(rpc, 500)
    e = engine(fresh_db, real)
    e.run_once()  # herd pulled, meters registered, while Odoo was up
    keys = record_sessions(fresh_db, 500, 21, prefix="RW", unknown_every=97)
    assert len(keys) == 10_500
    report = e.run_once()
    status = e.status("online")
    e.close()
    assert status.backlog == 0 and status.dead == 0, Outbox(fresh_db).dead()[:3]
    sessions = keys_in(rpc, "milk.session", "name", "RW")
    assert set(sessions) == set(keys) and max(sessions.values()) == 1
    with fresh_db.read() as tx:
        identified = {
            r.key
            for r in tx.scalars(select(SessionRow).where(SessionRow.key.in_(keys)))
            if r.animal_id is not None
        }
    productions = keys_in(rpc, "farm.milk.production", "source_reference", "RW")
    assert set(productions) == identified and max(productions.values()) == 1
    assert report.created["session"] == len(keys)
    assert report.created["production"] == len(identified)
    again = engine(fresh_db, real)
    assert again.run_once().total_created == 0
    again.close()


# -- faults ---------------------------------------------------------------------------------------


def test_odoo_stopped_mid_drain_then_back_delivers_everything_once(real_odoo, vault, rpc, fresh_db):
    herd(rpc, 100)
    with OdooGate("127.0.0.1", real_odoo.port) as gate:
        settings = settings_for(gate.url, real_odoo, batch_size=100)
        secrets.store_secret(settings, real_odoo.password)
        e = engine(fresh_db, settings)
        e.run_once()
        keys = record_sessions(fresh_db, 100, 12, prefix="RS")
        e.on_progress = lambda: gate.close() if e.outbox.counts()["sent"] > 600 else None
        with pytest.raises(OdooUnavailable):
            e.run_once()
        e.on_progress = None
        landed = keys_in(rpc, "milk.session", "name", "RS")
        assert 0 < len(landed) < len(keys)  # it really stopped half way
        gate.open()
        e.run_once()
        e.close()
    sessions = keys_in(rpc, "milk.session", "name", "RS")
    assert set(sessions) == set(keys) and max(sessions.values()) == 1
    assert max(keys_in(rpc, "farm.milk.production", "source_reference", "RS").values()) == 1


def test_one_refused_record_goes_dead_alone_while_the_rest_land(real, rpc, fresh_db):
    herd(rpc, 30)
    e = engine(fresh_db, real)
    e.run_once()
    keys = record_sessions(fresh_db, 30, 2, prefix="RX")
    bad = keys[17]
    with fresh_db.write() as tx:  # a damaged row: a grade Odoo's selection does not have
        from milkconsole.store.schema import OutboxRow

        row = tx.scalars(
            select(OutboxRow).where(OutboxRow.record_key == bad, OutboxRow.model == "milk.session")
        ).one()
        row.payload = row.payload.replace('"quality_grade": null', '"quality_grade": "AA"')
    report = e.run_once()
    e.close()
    assert report.dead == 1
    [dead] = Outbox(fresh_db).dead()
    assert dead.record_key == bad and "Odoo refused it" in (dead.last_error or "")
    assert set(keys_in(rpc, "milk.session", "name", "RX")) == set(keys) - {bad}
    productions = keys_in(rpc, "farm.milk.production", "source_reference", "RX")
    assert bad not in productions and len(productions) == len(keys) - 1  # it waits


def test_a_cow_deleted_while_her_records_wait_is_found_again_when_re_entered(
    real_odoo, vault, rpc, fresh_db
):
    first = 982000000900001
    cows = herd(rpc, 3, first_tag=first)
    with OdooGate("127.0.0.1", real_odoo.port) as gate:
        settings = settings_for(gate.url, real_odoo)
        secrets.store_secret(settings, real_odoo.password)
        e = engine(fresh_db, settings)
        e.run_once()
        gate.close()  # the office network is down
        keys = record_sessions(fresh_db, 3, 2, prefix="RD", first_tag=first)
        # Meanwhile in the office, cow 2 is deleted (a mistake) and entered again.
        rpc.call("farm.animal", "unlink", [cows[first + 1]])
        [again] = rpc.call(
            "farm.animal", "create", [{"name": "Cow 2", "number": "2", "rfid_tag": str(first + 1)}]
        )
        gate.open()
        report = e.run_once()
        e.close()
    assert report.dead == 0
    mine = [k for k in keys if k.endswith("-0001")]
    sessions = rpc.call("milk.session", "search_read", [["name", "in", mine]], fields=["animal_id"])
    assert len(sessions) == 2 and all(s["animal_id"][0] == again for s in sessions)
    assert (
        rpc.call(
            "farm.milk.production",
            "search_count",
            [["source_reference", "in", mine], ["animal_id", "=", again]],
        )
        == 2
    )


def test_the_herd_and_alternative_tags_are_pulled(real, rpc, fresh_db):
    from milkconsole.store.sessions import resolve_animal

    first = 982000000800001
    cows = herd(rpc, 5, first_tag=first)
    rpc.call(
        "farm.animal.rfid",
        "create",
        [{"animal_id": cows[first + 3], "rfid_tag": "982000000899999"}],
    )
    rpc.call(
        "farm.animal",
        "write",
        [cows[first + 4]],
        {"herd_group": "Fresh", "lactation_number": 2, "last_calving_date": "2025-02-20"},
    )
    e = engine(fresh_db, real)
    report = e.run_once()
    e.close()
    assert report.animals_pulled >= 5 and report.tags_pulled >= 1
    with fresh_db.read() as tx:
        fourth = tx.scalar(select(Animal.id).where(Animal.odoo_id == cows[first + 3]))
        assert resolve_animal(tx, "982000000899999") == fourth  # her other tag
        assert resolve_animal(tx, "982 000000800001") is not None  # any written form
        fifth = tx.scalars(select(Animal).where(Animal.odoo_id == cows[first + 4])).one()
        assert (fifth.group_name, fifth.lactation_number) == ("Fresh", 2)
        assert str(fifth.last_calving_date) == "2025-02-20"


# -- kill -9 --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_sync_killed_at_random_moments_leaves_no_duplicate_and_no_loss(
    real_odoo, rpc, tmp_path
):
    """Runs of `milkconsole sync --once` killed with SIGKILL at random moments of their push to
    the real Odoo until 10 were cut mid-push; then one run to the end: every record once."""
    herd(rpc, 40)
    rng = random.Random(9)
    secret = tmp_path / "odoo-secret"
    secret.write_text(real_odoo.password, encoding="utf-8")
    secret.chmod(0o600)
    config = tmp_path / "parlour.toml"
    config.write_text(
        f'[odoo]\nurl = "{real_odoo.url}"\ndatabase = "{real_odoo.db}"\n'
        f'login = "{real_odoo.login}"\nsecret_file = "{secret}"\nbatch_size = 10\n',
        encoding="utf-8",
    )
    db_path = tmp_path / "console.sqlite"
    db = open_database(db_path)
    env = {**os.environ, "MILKCONSOLE_LOG_DIR": str(tmp_path / "logs")}
    argv = [
        sys.executable,
        "-m",
        "milkconsole",
        "sync",
        "--once",
        "--config",
        str(config),
        "--db",
        str(db_path),
    ]
    keys: list[str] = []
    kills = runs = 0
    outbox = Outbox(db)
    while kills < 10 and runs < 20:
        keys += record_sessions(
            db,
            40,
            3,
            prefix=f"RK{runs:02d}",
            start=datetime(2025, 4, 1, tzinfo=UTC) + timedelta(days=runs),
        )
        runs += 1
        sent_before = outbox.counts().get("sent", 0)
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Kill at a random moment of the push itself: after this run's first claim or send.
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            counts = outbox.counts()
            if counts.get("in_flight", 0) or counts.get("sent", 0) > sent_before:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.8))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert kills == 10, f"only {kills} of {runs} runs were still pushing when killed"
    assert Counter(r.state for r in Outbox(db).dead()) == Counter()
    db.close()
    sessions = keys_in(rpc, "milk.session", "name", "RK")
    assert set(sessions) == set(keys) and max(sessions.values()) == 1
    productions = keys_in(rpc, "farm.milk.production", "source_reference", "RK")
    assert len(productions) == len(keys) and max(productions.values()) == 1
