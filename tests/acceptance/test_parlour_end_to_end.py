"""A whole parlour, end to end, over real sockets and ptys: simulated meters -> gateway -> SQLite.

24 meters (12 on Modbus TCP gateways; 12 on two RS-485 buses that are ptys; all three profiles)
milk a scripted herd of 200 cows. Every milking must be recorded once, with the simulator's yield
to 0.01 L and the right tag — with and without faults — and a gateway killed with SIGKILL
mid-milking must lose nothing and resume its open sessions.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from milkconsole.app.runtime import ParlourRuntime
from milkconsole.config import ParlourConfig, load_config
from milkconsole.store.db import open_database
from milkconsole.store.sessions import SessionRecord, SessionStore
from simulators.demo import SimulatedParlour, make_demo_config
from simulators.parlour import FaultPlan, MilkingTruth

TIME_SCALE = 120.0
ROOT = Path(__file__).resolve().parents[2]


def demo_config(tmp_path: Path) -> ParlourConfig:
    cfg = load_config(make_demo_config(tmp_path, stalls=24, time_scale=TIME_SCALE))
    assert sum(b.transport == "tcp" for b in cfg.buses) >= 1
    assert len([m for m in cfg.meters if cfg.bus(m.bus).transport == "tcp"]) == 12
    rtu = [b for b in cfg.buses if b.transport == "rtu"]
    assert len(rtu) == 2 and sum(len(cfg.meters_on(b.id)) for b in rtu) == 12
    assert {m.profile for m in cfg.meters} == {"delaval-mm27bc", "afimilk", "gea"}
    return cfg


def wait_until_recorded(store: SessionStore, n: int, timeout_s: float) -> list[SessionRecord]:
    deadline = time.monotonic() + timeout_s
    rows: list[SessionRecord] = []
    while time.monotonic() < deadline:
        rows = [r for r in store.completed_since(None) if r.state != "in_progress"]
        if len(rows) >= n:
            return rows
        time.sleep(0.25)
    return rows


def assert_matches_truth(rows: list[SessionRecord], truth: list[MilkingTruth]) -> None:
    """One recorded session per milking, per meter in order: same tag, yield within 0.01 L."""
    by_meter_rec: dict[str, list[SessionRecord]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r.started_at):
        by_meter_rec[r.meter_id].append(r)
    by_meter_truth: dict[str, list[MilkingTruth]] = defaultdict(list)
    for t in sorted(truth, key=lambda t: t.started_at):
        by_meter_truth[t.meter_id].append(t)
    assert len({r.key for r in rows}) == len(rows), "duplicate session keys"
    problems = []
    for meter_id, truths in by_meter_truth.items():
        recs = by_meter_rec.get(meter_id, [])
        if len(recs) != len(truths):
            problems.append(
                f"{meter_id}: {len(recs)} sessions recorded for {len(truths)} milkings: "
                + "; ".join(f"{r.started_at:%T} {r.rfid} {r.yield_l:.2f} {r.state}" for r in recs)
                + " | truth: "
                + "; ".join(f"{t.started_at:%T} {t.rfid} {t.yield_l:.2f}" for t in truths)
            )
            continue
        for rec, t in zip(recs, truths, strict=True):
            if abs(rec.yield_l - t.yield_l) > 0.01:
                problems.append(
                    f"{meter_id} cow {t.cow_index}: {rec.yield_l} L vs {t.yield_l} L "
                    f"({rec.state} {rec.flags} {rec.started_at}-{rec.ended_at}; "
                    f"truth {t.started_at}-{t.ended_at} {t.faults})"
                )
            if rec.rfid != t.rfid:
                problems.append(f"{meter_id} cow {t.cow_index}: tag {rec.rfid} vs {t.rfid}")
            if rec.state not in ("completed", "incomplete"):
                problems.append(f"{meter_id} cow {t.cow_index}: state {rec.state} {rec.flags}")
            if "rfid_split" in rec.flags:
                problems.append(f"{meter_id} cow {t.cow_index}: split")
    assert not problems, "\n".join(problems)


def run_parlour(tmp_path: Path, faults: FaultPlan | None, cows: int = 200) -> None:
    cfg = demo_config(tmp_path)
    db = open_database(tmp_path / "parlour.sqlite")
    runtime = ParlourRuntime(cfg, db)
    park = SimulatedParlour(cfg, cows=cows, seed=11, time_scale=TIME_SCALE, faults=faults)
    with contextlib.ExitStack() as stack:
        stack.callback(park.stop)
        park.start(scenario=False)
        runtime.start_threads()  # the console is polling before the first cow comes in
        park.scenario.start()
        try:
            assert park.scenario.wait_done(timeout=400), "scenario did not finish"
            rows = wait_until_recorded(runtime.store, cows, timeout_s=30)
        finally:
            runtime.stop()
    truth = park.scenario.truth
    assert len(truth) == cows
    assert_matches_truth(rows, truth)


@pytest.mark.slow
def test_two_hundred_cows_through_24_meters_are_each_recorded_once(tmp_path: Path) -> None:
    run_parlour(tmp_path, faults=None)


@pytest.mark.slow
def test_faults_do_not_lose_split_or_duplicate_a_milking(tmp_path: Path) -> None:
    faults = FaultPlan.typical(seed=3)
    run_parlour(tmp_path, faults=faults)


def _gateway(cfg_path: Path, db: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, MILKCONSOLE_LOG_DIR=str(db.parent / "logs"))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "milkconsole",
            "gateway",
            "--config",
            str(cfg_path),
            "--db",
            str(db),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_log(log_file: Path, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log_file.exists() and text in log_file.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{log_file} did not say {text!r} within {timeout_s} s")


# Slower than the other runs: a milking lasts 4-10 s of wall time, longer than the gateway
# takes to start again on a loaded machine, so the cows it was watching are still on.
KILL_TIME_SCALE = 60.0


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_s", [3.0])
def test_gateway_killed_mid_milking_loses_nothing_and_resumes(
    tmp_path: Path, kill_after_s: float
) -> None:
    cfg_path = make_demo_config(tmp_path, stalls=24, time_scale=KILL_TIME_SCALE)
    cfg = load_config(cfg_path)
    db_path = tmp_path / "gateway.sqlite"
    cows = 72
    park = SimulatedParlour(cfg, cows=cows, seed=5, time_scale=KILL_TIME_SCALE)
    with contextlib.ExitStack() as stack:
        stack.callback(park.stop)
        park.start(scenario=False)
        gw = _gateway(cfg_path, db_path)
        try:
            # The cows come in once the gateway polls (a milking over before it started could
            # not be seen by anyone).
            _wait_for_log(db_path.parent / "logs" / "milkconsole.log", "gateway: 24 meters", 60)
            park.scenario.start()
            # Kill it while cows are being milked (some sessions open, some already completed).
            deadline = time.monotonic() + 60
            store = SessionStore(open_database(db_path)) if db_path.exists() else None
            while time.monotonic() < deadline:
                time.sleep(0.5)
                if store is None and db_path.exists():
                    store = SessionStore(open_database(db_path))
                if (
                    store is not None
                    and len(store.open_sessions()) >= 6
                    and store.count("completed") >= 1
                ):
                    break
            assert store is not None
            time.sleep(kill_after_s / 10)
            open_before = {s.key: s for s in store.open_sessions()}
            completed_before = {
                r.key: r for r in store.completed_since(None) if r.state != "in_progress"
            }
            os.kill(gw.pid, signal.SIGKILL)
            gw.wait(10)
            assert open_before, "nothing was milking when the gateway was killed"
            # Everything committed before the kill is still there, unchanged.
            after_kill = {r.key: r for r in store.completed_since(None)}
            for key, rec in completed_before.items():
                assert after_kill[key] == rec
            time.sleep(0.2)  # the meters keep milking while the gateway is down (and starts)
            gw = _gateway(cfg_path, db_path)
            assert park.scenario.wait_done(timeout=300)
            rows = wait_until_recorded(store, cows, timeout_s=30)
        finally:
            gw.send_signal(signal.SIGTERM)
            _out, err = gw.communicate(timeout=20)
            print(err[-6000:])  # the restarted gateway's log, shown when the test fails
        assert gw.returncode == 0, err
    finished = {r.key: r for r in rows}
    resumed = [k for k in open_before if k in finished]
    assert resumed, "no open session resumed under its own key after the restart"
    for key in resumed:
        assert finished[key].state in ("completed", "incomplete")
    assert_matches_truth(rows, park.scenario.truth)
