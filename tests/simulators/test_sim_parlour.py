"""The parlour scenario engine, the demo parlour and the `simulate` command: plans are seeded and
realistic, the truth is what the meters really show over Modbus, faults happen as planned."""

from __future__ import annotations

import argparse
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusException

from milkconsole.config import load_config
from milkconsole.errors import ConfigError
from milkconsole.meters.decode import decode_reading
from milkconsole.meters.profiles import Profile, load_profiles
from milkconsole.meters.readings import Reading
from simulators.cli import add_simulate_arguments, run_simulate
from simulators.demo import SimulatedParlour, make_demo_config
from simulators.meter import SimulatedMeter
from simulators.modbus.registers import RegisterBank
from simulators.modbus.tcp import ModbusTcpServer
from simulators.parlour import (
    CONDUCTIVITY_RANGE_MS_CM,
    DURATION_RANGE_S,
    PEAK_FLOW_RANGE_L_MIN,
    RAMP_RANGE_S,
    TEMPERATURE_RANGE_C,
    YIELD_RANGE_L,
    FaultPlan,
    MilkingTruth,
    ParlourScenario,
)

ROOT = Path(__file__).resolve().parents[2]
PROFILES = load_profiles()
MIXED = ("delaval-mm27bc", "gea", "afimilk", "delaval-mm27bc")


def f32(x: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", x))[0])


def scenario(
    seed: int,
    *,
    cows: int = 30,
    profiles: tuple[str, ...] = MIXED,
    time_scale: float = 60.0,
    faults: FaultPlan | None = None,
    group_size: int | None = None,
) -> ParlourScenario:
    bank = RegisterBank()
    meters = [
        SimulatedMeter(bank, i + 1, PROFILES[pid], meter_id=f"MM-{i + 1:02d}", stall=i + 1)
        for i, pid in enumerate(profiles)
    ]
    return ParlourScenario(
        meters,
        cows=cows,
        seed=seed,
        time_scale=time_scale,
        faults=faults,
        group_size=group_size,
    )


def without_wall_times(truth: list[MilkingTruth]) -> list[MilkingTruth]:
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    return sorted(
        (replace(t, started_at=epoch, ended_at=epoch) for t in truth),
        key=lambda t: (t.meter_id, t.cow_index),
    )


def test_same_seed_gives_the_same_plan_and_truth_and_another_seed_does_not() -> None:
    assert scenario(5).plan == scenario(5).plan
    assert scenario(5).plan != scenario(6).plan
    faults = FaultPlan(seed=2, reboot_prob=0.5, missed_rfid_prob=0.3, reboot_s=0.05,
                       reboot_hold_s=0.05)  # fmt: skip
    runs = []
    for _ in range(2):
        s = scenario(9, cows=6, time_scale=3000.0, faults=faults)
        with s:
            assert s.wait_done(30)
        runs.append(without_wall_times(s.truth))
    assert runs[0] == runs[1]
    assert len(runs[0]) == 6


def test_every_cow_keeps_one_tag_per_meter_type() -> None:
    s = scenario(3, cows=40)
    for m in s.plan:
        cow = s.herd[m.cow_index]
        if m.meter_id in ("MM-03",):
            assert m.rfid == f"C{cow.herd_number:07d}"
        else:
            assert m.rfid == f"{cow.fdx_code:016X}"
            assert (cow.fdx_code >> 38) & 0x3FF == 982  # ISO 11784 country code
            assert cow.fdx_code >> 63 == 1  # animal flag
    assert len({c.fdx_code for c in s.herd}) == 40


def test_flow_curves_stay_within_the_stated_ranges() -> None:
    s = scenario(11, cows=200)
    for m in s.plan:
        c = m.curve
        assert YIELD_RANGE_L[0] <= c.total_l <= YIELD_RANGE_L[1]
        assert DURATION_RANGE_S[0] <= c.duration_s <= DURATION_RANGE_S[1]
        assert RAMP_RANGE_S[0] <= c.ramp_s <= RAMP_RANGE_S[1]
        assert PEAK_FLOW_RANGE_L_MIN[0] <= c.peak_flow_l_min <= PEAK_FLOW_RANGE_L_MIN[1]
        assert c.flow_at(0.0) == 0.0
        assert c.flow_at(c.ramp_s + c.plateau_s / 2) == c.peak_flow_l_min
        assert c.flow_at(c.duration_s - 1e-6) < 0.2  # the cluster comes off below 0.2 L/min
        assert c.flow_at(c.duration_s) == 0.0
        # yield is the integral of flow (L/min over seconds)
        steps = 2000
        dt = c.duration_s / steps
        area = sum(c.flow_at((i + 0.5) * dt) * dt for i in range(steps)) / 60.0
        assert area == pytest.approx(c.total_l, rel=1e-3)
        assert c.yield_at(c.duration_s) == c.total_l


def test_yields_in_the_truth_are_exactly_what_a_float32_register_holds() -> None:
    s = scenario(4, cows=60, faults=FaultPlan(reboot_prob=0.5, reboot_s=0.5, reboot_hold_s=0.5))
    rebooted = [m for m in s.plan if m.rebooted]
    assert rebooted
    for m in s.plan:
        if m.rebooted:
            assert m.pre_reboot_l is not None
            after = m.yield_l - m.pre_reboot_l
            assert f32(m.pre_reboot_l) == m.pre_reboot_l
            assert f32(after) == pytest.approx(after, abs=1e-12)
            assert m.yield_l < m.actual_yield_l  # milk that flowed while it rebooted is lost
        else:
            assert f32(m.yield_l) == m.yield_l
            assert abs(m.yield_l - m.actual_yield_l) < 1e-5


def test_a_group_fills_a_side_and_the_next_group_enters_after_the_slowest_cow() -> None:
    s = scenario(8, cows=10, group_size=2)
    assert sorted(m.cow_index for m in s.plan) == list(range(10))
    by_group: dict[tuple[int, int], list[Any]] = {}
    for m in s.plan:
        by_group.setdefault((m.side, m.group), []).append(m)
    sides = {side for side, _ in by_group}
    assert sides == {0, 1}
    for (side, group), members in by_group.items():
        stalls = [m.stall for m in members]
        assert len(set(stalls)) == len(stalls)
        assert set(stalls) <= ({1, 2} if side == 0 else {3, 4})
        if group > 0:
            before = by_group[(side, group - 1)]
            slowest = max(m.takeoff_s for m in before)
            assert min(m.attach_s for m in members) >= slowest + s.gap_s
    # Both sides milk at the same time: the parlour is not run one stall at a time.
    first = [min(m.attach_s for m in s.plan if m.side == side) for side in (0, 1)]
    assert max(first) < min(m.takeoff_s for m in s.plan)


def test_fault_plan_applies_each_kind_of_fault_at_about_its_rate() -> None:
    plan = FaultPlan(
        seed=1,
        timeout_prob=0.2,
        crc_prob=0.2,
        nan_prob=0.2,
        reboot_prob=0.2,
        missed_rfid_prob=0.3,
    )
    s = scenario(2, cows=300, time_scale=10.0, faults=plan)
    counts: dict[str, int] = {}
    for m in s.plan:
        for f in m.faults:
            counts[f.split(":")[0]] = counts.get(f.split(":")[0], 0) + 1
        if "missed_rfid" in m.faults:
            assert m.tag is None and m.rfid is None
        for window in (m.timeout, m.reboot and (m.reboot[1], m.reboot[2])):
            if window:
                assert m.attach_s < window[0] < window[1] < m.takeoff_s
                assert window[1] - window[0] < plan.max_silence_s * s.time_scale
        if m.nan is not None:
            assert PROFILES[MIXED[m.stall - 1]].fields[m.nan[0]].data_type == "float32"
        assert sum(f in ("timeout", "crc", "reboot") or f.startswith("nan") for f in m.faults) <= 1
    for kind in ("timeout", "crc", "nan", "reboot"):
        assert 30 <= counts[kind] <= 90, counts
    assert 60 <= counts["missed_rfid"] <= 120, counts
    assert scenario(2, cows=300, time_scale=10.0).plan[0].faults == ()


def test_fault_plan_refuses_silences_a_correct_console_could_not_ride_out() -> None:
    with pytest.raises(ValueError, match="max_silence_s"):
        FaultPlan(reboot_prob=0.1, reboot_s=5.0, max_silence_s=3.0)
    with pytest.raises(ValueError, match="at most 1"):
        FaultPlan(timeout_prob=0.6, reboot_prob=0.6)
    with pytest.raises(ValueError, match="0-1"):
        FaultPlan(missed_rfid_prob=1.5)


def test_scenario_with_no_cows_is_done_at_once() -> None:
    s = scenario(1, cows=0)
    assert s.done and s.wait_done(0) and s.truth == []


# -- live runs over real sockets and ptys ----------------------------------------------------


@dataclass
class Watched:
    """What a careful console saw of one meter."""

    profile: Profile
    readings: list[Reading] = field(default_factory=list)
    timeouts: int = 0
    rejected: set[str] = field(default_factory=set)


def watch(
    clients: dict[str, tuple[Any, int, Profile]],
    until: Callable[[], bool],
    *,
    interval_s: float = 0.03,
    limit_s: float = 40.0,
) -> dict[str, Watched]:
    """Poll every meter (one block read each) until `until()`, then once more."""
    seen = {mid: Watched(profile) for mid, (_, _, profile) in clients.items()}
    deadline = time.monotonic() + limit_s
    last = False
    while time.monotonic() < deadline:
        last = until()
        for mid, (client, unit, profile) in clients.items():
            (block,) = profile.blocks()
            try:
                rr = client.read_holding_registers(block.address, count=block.count, device_id=unit)
            except ModbusException:
                seen[mid].timeouts += 1
                continue
            assert not rr.isError(), rr
            reading, refusals = decode_reading(
                profile,
                {block: rr.registers},
                meter_id=mid,
                stall=0,
                t_mono=time.monotonic(),
                t_utc=datetime.now(UTC),
            )
            seen[mid].readings.append(reading)
            seen[mid].rejected.update(r.field for r in refusals)
        if last:
            return seen
        time.sleep(interval_s)
    pytest.fail("scenario did not finish in time")


def careful_sessions(readings: list[Reading]) -> list[tuple[str | None, float]]:
    """(rfid, yield) per milking from status-bit readings, adding the count a meter had before
    it rebooted (its counter restarts from 0 while the status bit stays set)."""
    out: list[tuple[str | None, float]] = []
    milking = False
    offset = last = 0.0
    rfid: str | None = None
    for r in readings:
        y = r.yield_l
        if r.milking and not milking:
            milking, offset, last, rfid = True, 0.0, 0.0, r.rfid
        if milking and y is not None:
            if y < last:
                offset += last
            last = y
        if milking and r.milking is False:
            out.append((rfid, offset + (y if y is not None else last)))
            milking = False
    return out


@pytest.fixture
def tcp_pair() -> Any:
    """Two DeLaval meters behind one Modbus TCP server, and a client for it."""
    bank = RegisterBank()
    meters = [
        SimulatedMeter(bank, u, PROFILES["delaval-mm27bc"], meter_id=f"MM-{u:02d}", stall=u)
        for u in (1, 2)
    ]
    with ModbusTcpServer(bank) as server:
        client = ModbusTcpClient("127.0.0.1", port=server.port, timeout=0.1, retries=0)
        assert client.connect()
        yield meters, client
        client.close()


def test_reboot_mid_milking_truth_is_what_a_careful_console_records(tcp_pair: Any) -> None:
    meters, client = tcp_pair
    faults = FaultPlan(reboot_prob=1.0, reboot_s=0.4, reboot_hold_s=0.5, max_silence_s=1.0)
    s = ParlourScenario(meters, cows=2, seed=21, time_scale=120.0, faults=faults, group_size=2)
    assert all(m.rebooted for m in s.plan)
    clients = {m.meter_id: (client, m.unit, m.profile) for m in meters}
    with s:
        seen = watch(clients, lambda: s.done)
    for m in meters:
        (truth,) = [t for t in s.truth if t.meter_id == m.meter_id]
        assert truth.rebooted
        assert seen[m.meter_id].timeouts >= 1
        (recorded,) = careful_sessions(seen[m.meter_id].readings)
        assert recorded[0] == truth.rfid
        assert abs(recorded[1] - truth.yield_l) <= 0.01
        assert recorded[1] == pytest.approx(truth.yield_l, abs=1e-9)


def test_timeouts_nan_and_missed_tags_show_on_the_wire_and_the_session_survives(
    tcp_pair: Any,
) -> None:
    meters, client = tcp_pair
    faults = FaultPlan(seed=3, timeout_prob=0.5, nan_prob=0.5, timeout_s=0.4, nan_s=0.4,
                       missed_rfid_prob=1.0)  # fmt: skip
    s = ParlourScenario(meters, cows=2, seed=4, time_scale=120.0, faults=faults, group_size=2)
    kinds = {m.meter_id: m.faults for m in s.plan}
    clients = {m.meter_id: (client, m.unit, m.profile) for m in meters}
    with s:
        seen = watch(clients, lambda: s.done)
    for m in meters:
        (truth,) = [t for t in s.truth if t.meter_id == m.meter_id]
        assert truth.rfid is None and "missed_rfid" in truth.faults
        watched = seen[m.meter_id]
        assert all(r.rfid is None for r in watched.readings)
        if "timeout" in kinds[m.meter_id]:
            assert watched.timeouts >= 1
        else:
            (nan,) = [f for f in kinds[m.meter_id] if f.startswith("nan:")]
            assert nan.removeprefix("nan:") in watched.rejected
        (recorded,) = careful_sessions(watched.readings)
        assert recorded == (None, truth.yield_l)


def test_demo_parlour_serves_every_meter_and_its_final_registers_match_the_truth(
    tmp_path: Path,
) -> None:
    config = load_config(make_demo_config(tmp_path, stalls=4, time_scale=120.0))
    parlour = SimulatedParlour(config, cows=4, seed=7, time_scale=120.0)
    with parlour:
        clients: dict[str, tuple[Any, int, Profile]] = {}
        opened: list[Any] = []
        for bus in config.buses:
            if bus.transport == "tcp":
                client: Any = ModbusTcpClient(str(bus.host), port=int(bus.port), timeout=0.5)
            else:
                # A pty carries no parity and refuses the reconfiguration pymodbus makes after
                # opening with parity E (pyserial issue 196); milkconsole.meters.transport does the
                # same.
                client = ModbusSerialClient(
                    str(bus.port), baudrate=bus.baudrate, parity="N", timeout=0.5
                )
            assert client.connect()
            opened.append(client)
            for m in config.meters_on(bus.id):
                clients[m.id] = (client, m.unit, config.profiles[m.profile])
        seen = watch(clients, lambda: parlour.scenario.done)
        for c in opened:
            c.close()
    truth = {t.meter_id: t for t in parlour.scenario.truth}
    assert set(truth) == {m.id for m in config.meters}
    for mid, watched in seen.items():
        final = watched.readings[-1]
        assert final.yield_l == truth[mid].yield_l
        assert watched.timeouts == 0
        assert watched.rejected == set()
        milking = [r for r in watched.readings if (r.flow_l_min or 0) > 0]
        assert milking, f"{mid}: never seen milking"
        assert {r.rfid for r in milking} == {truth[mid].rfid}
        for r in milking:
            if r.conductivity_ms_cm is not None:
                lo, hi = CONDUCTIVITY_RANGE_MS_CM
                assert lo <= r.conductivity_ms_cm <= hi
            if r.temperature_c is not None:
                assert TEMPERATURE_RANGE_C[0] <= r.temperature_c <= TEMPERATURE_RANGE_C[1]
            assert r.flow_l_min is not None and r.flow_l_min <= truth[mid].peak_flow_l_min
    status_meters = [m.id for m in config.meters if m.profile != "afimilk"]
    for mid in status_meters:
        assert any(r.milking for r in seen[mid].readings)
        assert seen[mid].readings[-1].milking is False
    links = [Path(str(b.port)) for b in config.buses if b.transport == "rtu"]
    assert links and not any(p.exists() or p.is_symlink() for p in links)


def test_demo_config_uses_every_profile_both_transports_and_pty_links_in_the_workdir(
    tmp_path: Path,
) -> None:
    config = load_config(make_demo_config(tmp_path, stalls=24))
    assert len(config.meters) == 24
    assert {m.profile for m in config.meters} == {"delaval-mm27bc", "gea", "afimilk"}
    tcp = [b for b in config.buses if b.transport == "tcp"]
    rtu = [b for b in config.buses if b.transport == "rtu"]
    assert len(rtu) == 2
    assert all(Path(str(b.port)).parent == tmp_path.resolve() for b in rtu)
    assert len({b.port for b in tcp}) == len(tcp)
    on_tcp = sum(len(config.meters_on(b.id)) for b in tcp)
    assert on_tcp == 12
    assert [m.id for m in config.meters][:2] == ["MM-01", "MM-02"]
    assert config.tracking.min_duration_s < DURATION_RANGE_S[0] / 20.0
    based = load_config(make_demo_config(tmp_path / "b", stalls=8, tcp_port_base=15020))
    assert sorted(int(b.port) for b in based.buses if b.transport == "tcp") == [15020]
    with pytest.raises(ValueError):
        make_demo_config(tmp_path, stalls=5)


def test_simulated_parlour_refuses_a_serial_port_it_cannot_stand_in_for(tmp_path: Path) -> None:
    path = make_demo_config(tmp_path, stalls=4)
    config = load_config(path)
    rtu = next(b for b in config.buses if b.transport == "rtu")
    Path(str(rtu.port)).write_text("a real device would be here")
    with pytest.raises(ConfigError, match="not a link"):
        SimulatedParlour(config, cows=1, seed=1, time_scale=1.0)


def test_simulated_parlour_lists_where_every_meter_answers(tmp_path: Path) -> None:
    config = load_config(make_demo_config(tmp_path, stalls=4))
    parlour = SimulatedParlour(config, cows=0, seed=1, time_scale=1.0)
    with parlour:
        lines = parlour.describe()
        ends = parlour.endpoints()
    tcp_port = next(int(b.port) for b in config.buses if b.transport == "tcp")
    assert lines[0] == f"MM-01 stall 1 delaval-mm27bc tcp 127.0.0.1:{tcp_port} unit 1"
    assert ends["MM-03"] == f"rtu {tmp_path.resolve() / 'ttyMILK-A'} unit 1"
    assert len(lines) == 4


def simulate_cmd(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "simulators.cli", "--config", str(config), *extra]


def test_simulate_command_prints_each_meter_and_exits_0_when_every_cow_is_milked(
    tmp_path: Path,
) -> None:
    config = make_demo_config(tmp_path, stalls=4)
    out = subprocess.run(
        simulate_cmd(config, "--cows", "2", "--time-scale", "2000", "--linger-s", "0"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("MM-01 stall 1 delaval-mm27bc tcp 127.0.0.1:")
    assert lines[2].startswith("MM-03 stall 3 afimilk rtu ")
    assert lines[-1] == "all 2 cows milked"


def test_simulate_command_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    config = make_demo_config(tmp_path, stalls=4)
    proc = subprocess.Popen(
        simulate_cmd(config, "--cows", "50"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("MM-01 ")
    links = [tmp_path.resolve() / "ttyMILK-A", tmp_path.resolve() / "ttyMILK-B"]
    assert all(p.is_symlink() for p in links)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert not any(p.is_symlink() for p in links)


def test_run_simulate_lets_a_config_error_propagate(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[parlour]\nname = "x"\nfarm_code = "X"\nbogus = 1\n')
    parser = argparse.ArgumentParser()
    add_simulate_arguments(parser)
    with pytest.raises(ConfigError, match="bogus"):
        run_simulate(parser.parse_args(["--config", str(bad)]))
    out = subprocess.run(simulate_cmd(bad), capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert out.returncode == 2 and "bogus" in out.stderr


def test_idle_meters_cost_no_register_writes_until_the_first_cluster_goes_on() -> None:
    s = scenario(1, cows=1, time_scale=1.0)
    before = [m.writes for m in s.meters]
    with s:
        time.sleep(0.3)  # the first cluster goes on 20+ simulated seconds in
        assert [m.writes for m in s.meters] == before
        assert s.meters[0].reported("status") == 0
        assert s.meters[0].reported("yield_l") == 0.0
    assert not s.done
