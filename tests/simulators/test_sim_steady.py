"""The steady parlour (simulators/steady.py): every stall milks cow after cow on one fixed cycle,
the same number of stalls milking at every moment, values a function of time only; a console
polling it over Modbus TCP records every cow with the curve's yield."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from milkconsole.app.runtime import ParlourRuntime
from milkconsole.config import load_config
from milkconsole.meters.profiles import load_profiles
from milkconsole.store import open_database
from milkconsole.store.sessions import SessionStore
from simulators.demo import _free_tcp_ports
from simulators.meter import SimulatedMeter
from simulators.modbus.registers import RegisterBank
from simulators.steady import SteadyCycle, SteadyMilking, spread_slots

ROOT = Path(__file__).resolve().parents[2]
PROFILES = load_profiles()
KINDS = ("delaval-mm27bc", "gea", "afimilk")


def driver(n: int, cycle: SteadyCycle | None = None) -> SteadyMilking:
    bank = RegisterBank()
    meters = [
        SimulatedMeter(bank, i + 1, PROFILES[KINDS[i % 3]], meter_id=f"M{i + 1:02d}", stall=i + 1)
        for i in range(n)
    ]
    return SteadyMilking(meters, cycle)


def test_the_same_number_of_stalls_is_milking_at_every_moment() -> None:
    d = driver(80)
    period = d.cycle.period_s
    counts = {d.milking_count(t * period / 997) for t in range(3 * 997)}
    assert counts == {75}  # 80 * 120 / 128


def test_cows_finish_at_an_even_rate_and_a_gateways_meters_far_apart() -> None:
    n = 80
    slots = spread_slots(n)
    assert sorted(slots) == list(range(n))
    for g in range(0, n, 8):  # one gateway's eight meters: no two within n/16 slots
        mine = sorted(slots[g : g + 8])
        gaps = [b - a for a, b in zip(mine, [*mine[1:], mine[0] + n], strict=True)]
        assert min(gaps) >= n // 16
    d = driver(n)
    step = 0.05
    ends = [
        round(k * step, 2)
        for k in range(1, int(2 * d.cycle.period_s / step))
        for i in range(n)
        if d.state(i, (k - 1) * step).milking and not d.state(i, k * step).milking
    ]
    gaps = [b - a for a, b in itertools.pairwise(ends)]
    assert len(ends) == 2 * n - 1 or len(ends) == 2 * n
    assert max(gaps) - min(gaps) <= step + 1e-9  # one every period / n, to the sampling step


def test_a_meters_values_depend_on_time_only_and_follow_one_cow_after_another() -> None:
    cycle = SteadyCycle(milk_s=60.0, gap_s=5.0, ramp_s=10.0, decline_s=15.0)
    a, b = driver(6, cycle), driver(6, cycle)
    for t in (0.0, 3.3, 59.9, 64.0, 200.25):
        assert [a.values(i, t) for i in range(6)] == [b.values(i, t) for i in range(6)]
    i = 0  # slot 0: its first cow goes on at start
    yields = [a.state(i, t / 10).yield_l for t in range(0, 600)]
    assert yields == sorted(yields) and yields[-1] == pytest.approx(cycle.curve.total_l, abs=0.01)
    off = a.state(i, 62.0)
    assert not off.milking and off.flow_l_min == 0.0
    assert off.yield_l == pytest.approx(cycle.curve.total_l)  # held while the cluster is off
    assert a.values(i, 62.0)["status"] == 0 and a.values(i, 30.0)["status"] == 1
    nxt = a.state(i, 66.0)
    assert nxt.milking and nxt.cycle == 1 and nxt.yield_l < 0.1  # the next cow, from zero
    assert a.values(i, 30.0)["rfid"] != a.values(i, 66.0)["rfid"]
    with pytest.raises(ValueError, match="plateau"):
        SteadyCycle(milk_s=10.0, ramp_s=5.0, decline_s=5.0)


def test_a_console_polling_the_steady_parlour_records_every_cow_with_the_curves_yield(
    tmp_path: Path,
) -> None:
    (port,) = _free_tcp_ports(1, "127.0.0.1")
    lines = [
        "[parlour]",
        'name = "Steady"',
        'farm_code = "STEADY"',
        "poll_interval_s = 0.2",
        "[tracking]",
        "min_duration_s = 1",
        "min_yield_l = 0.05",
        "comm_timeout_s = 5",
        "end_after_s = 0.6",
        "[[bus]]",
        'id = "tcp-1"',
        'transport = "tcp"',
        'host = "127.0.0.1"',
        f"port = {port}",
    ]
    for i, kind in enumerate(KINDS, start=1):
        lines += ["[[meter]]", f'id = "M{i}"', 'bus = "tcp-1"', f"unit = {i}"]
        lines += [f'profile = "{kind}"', f"stall = {i}"]
    config = tmp_path / "steady.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sim = subprocess.Popen(
        [
            *(sys.executable, "-m", "simulators.steady", "--config", str(config)),
            *("--milk-s", "2", "--gap-s", "1.5", "--tick-s", "0.05"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None
        shown = [sim.stdout.readline() for _ in range(len(KINDS) + 1)]
        assert shown[0].startswith("M1 stall 1 delaval-mm27bc tcp 127.0.0.1:")
        assert shown[-1].startswith("steady: 3 stalls, 2 s milking + 1.5 s change-over")
        cfg = load_config(config)
        db = open_database(tmp_path / "steady.sqlite")
        runtime = ParlourRuntime(cfg, db)
        runtime.start_threads()
        store = SessionStore(db)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = store.completed_since(None)
            if all(sum(s.meter_id == f"M{i}" for s in done) >= 3 for i in (1, 2, 3)):
                break
            time.sleep(0.2)
        runtime.stop()
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(10) == 0
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait(10)
    expected = SteadyCycle.of(2.0, 1.5).curve.total_l  # what the command line's cycle gives
    done = store.completed_since(None)
    for i in (1, 2, 3):
        mine = [s for s in done if s.meter_id == f"M{i}"]
        assert len(mine) >= 3, f"M{i}: {len(mine)} cows recorded"
        # The first cow may have been under way before the console looked; the rest are
        # whole: each its own tag and the whole curve's yield (float32 / scaled registers).
        whole = mine[1:]
        assert all(s.state == "completed" for s in whole)
        assert len({s.rfid for s in whole}) == len(whole)
        for s in whole:
            assert s.yield_l == pytest.approx(expected, abs=0.02), (s.meter_id, s.yield_l)
    db.close()
