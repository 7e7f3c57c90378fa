"""The bus poller over a real TCP socket and a real pty, and the meter health it keeps."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from milkconsole.errors import TransportError
from milkconsole.meters.events import (
    MeterPollFailed,
    MeterStateChanged,
    PollCycleCompleted,
    ReadingTaken,
    SessionCompleted,
    SessionStarted,
)
from milkconsole.meters.meter_health import MeterHealthTracker
from milkconsole.meters.parlour import BusConfig, MeterConfig, TrackingConfig
from milkconsole.meters.poller import BusPoller, PolledMeter
from milkconsole.meters.profiles import load_profiles
from milkconsole.meters.readings import Reading
from milkconsole.meters.tracker import StallTracker
from simulators.meter import SimulatedMeter
from simulators.modbus.registers import RegisterBank
from simulators.modbus.rtu import ModbusRtuServer
from simulators.modbus.tcp import ModbusTcpServer

PROFILES = load_profiles()
T0 = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
LAYOUT = ((1, "MM-01", "delaval-mm27bc"), (2, "MM-02", "afimilk"), (3, "MM-03", "gea"))


class Events(list[object]):
    """The sink: every event the poller published, in order."""

    def of(self, kind: type) -> list:
        return [e for e in self if isinstance(e, kind)]


@pytest.fixture
def bank() -> RegisterBank:
    return RegisterBank()


@pytest.fixture
def meters(bank: RegisterBank) -> dict[str, SimulatedMeter]:
    out = {}
    for unit, mid, pid in LAYOUT:
        m = SimulatedMeter(bank, unit, PROFILES[pid], meter_id=mid)
        m.set_values(yield_l=5.0 + unit, flow_l_min=2.0, conductivity_ms_cm=5.0, status=1)
        out[mid] = m
    return out


@pytest.fixture
def server(bank: RegisterBank, meters: dict[str, SimulatedMeter]) -> Iterator[ModbusTcpServer]:
    with ModbusTcpServer(bank) as s:
        yield s


def make_bus(server: ModbusTcpServer, **kw: object) -> BusConfig:
    opts: dict = {"timeout_s": 0.1, "retries": 0} | kw
    return BusConfig("bus-a", "tcp", server.port, "127.0.0.1", **opts)


def polled(
    meters: dict[str, SimulatedMeter], bus_id: str = "bus-a", trackers: bool = False
) -> list[PolledMeter]:
    out = []
    for m in meters.values():
        cfg = MeterConfig(m.meter_id, bus_id, m.unit, m.profile.id, stall=m.unit)
        tracker = None
        if trackers:
            tracker = StallTracker(
                meter_id=m.meter_id,
                stall=m.unit,
                farm_code="FARM1",
                detection=m.profile.detection,
                tracking=TrackingConfig(comm_timeout_s=0.3),
            )
        out.append(PolledMeter(cfg, m.profile, tracker))
    return out


@pytest.fixture
def pollers() -> Iterator[list[BusPoller]]:
    made: list[BusPoller] = []
    yield made
    for p in made:
        p.stop()
        p.close()


def make_poller(
    pollers: list[BusPoller], bus: BusConfig, meters: list[PolledMeter], **kw: object
) -> tuple[BusPoller, Events]:
    events = Events()
    p = BusPoller(bus, meters, poll_interval_s=0.05, sink=events.append, **kw)  # type: ignore[arg-type]
    pollers.append(p)
    return p, events


# -- the poller ---------------------------------------------------------------------------------


def test_each_meter_costs_one_block_read_per_cycle(server, meters, pollers):
    p, events = make_poller(pollers, make_bus(server), polled(meters))
    for _ in range(3):
        p.poll_once()
    for m in meters.values():
        assert len(m.profile.blocks()) == 1
        assert server.stats[m.unit].requests == 3
    readings = [e.reading for e in events.of(ReadingTaken)]
    assert [r.meter_id for r in readings] == ["MM-01", "MM-02", "MM-03"] * 3
    assert readings[0].yield_l == pytest.approx(6.0)
    cycles = events.of(PollCycleCompleted)
    assert len(cycles) == 3
    assert cycles[-1].meters == 3 and cycles[-1].failures == 0
    assert [h.state for h in cycles[-1].health] == ["ok", "ok", "ok"]


def test_health_goes_ok_degraded_offline_ok_with_one_error_line(server, meters, pollers, caplog):
    p, events = make_poller(pollers, make_bus(server), polled(meters))
    caplog.set_level(logging.DEBUG)
    mm2 = meters["MM-02"]
    p.poll_once()
    assert p.health["MM-02"].state == "ok"
    mm2.set_silent(True)
    states = []
    for _ in range(4):
        p.poll_once()
        states.append(p.health["MM-02"].state)
    assert states == ["degraded", "degraded", "offline", "offline"]
    mm2.set_silent(False)
    p.poll_once()
    health = p.health["MM-02"]
    assert (health.state, health.timeouts, health.consecutive_failures) == ("ok", 4, 0)

    changes = [
        (e.previous, e.health.state)
        for e in events.of(MeterStateChanged)
        if e.health.meter_id == "MM-02"
    ]
    assert changes == [
        ("offline", "ok"),
        ("ok", "degraded"),
        ("degraded", "offline"),
        ("offline", "ok"),
    ]
    failed = events.of(MeterPollFailed)
    assert [(f.meter_id, f.kind) for f in failed] == [("MM-02", "timeout")] * 4
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "MM-02" in errors[0].getMessage() and "timeout" in errors[0].getMessage()
    recovered = [
        r for r in caplog.records if r.levelno == logging.INFO and "MM-02" in r.getMessage()
    ]
    assert len(recovered) == 1 and "answering again" in recovered[0].getMessage()
    # The other meters never noticed.
    assert p.health["MM-01"].failures == p.health["MM-03"].failures == 0


def test_nan_value_is_refused_counted_and_logged_once(server, meters, pollers, caplog):
    p, events = make_poller(pollers, make_bus(server), polled(meters))
    caplog.set_level(logging.DEBUG)
    meters["MM-01"].set_nan("flow_l_min")
    for _ in range(3):
        p.poll_once()
    readings = [e.reading for e in events.of(ReadingTaken) if e.reading.meter_id == "MM-01"]
    assert all(r.flow_l_min is None and r.rejected == ("flow_l_min",) for r in readings)
    assert all(r.yield_l == pytest.approx(6.0) for r in readings)
    assert p.health["MM-01"].refused_values == 3
    assert p.health["MM-01"].state == "ok"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert "MM-01" in text and "flow_l_min" in text and "nan" in text
    assert sum("flow_l_min" in r.getMessage() for r in caplog.records) == 3


def test_calibration_factor_applies_from_the_next_cycle(server, meters, pollers):
    factors = {"MM-01": 1.0, "MM-02": 1.0, "MM-03": 1.0}
    p, events = make_poller(
        pollers, make_bus(server), polled(meters), calibration=factors.__getitem__
    )
    p.poll_once()
    factors["MM-01"] = 1.1
    p.poll_once()
    mm01 = [e.reading for e in events.of(ReadingTaken) if e.reading.meter_id == "MM-01"]
    assert mm01[0].yield_l == pytest.approx(6.0)
    assert mm01[1].yield_l == pytest.approx(6.6)
    assert mm01[1].flow_l_min == pytest.approx(2.2)
    assert mm01[1].conductivity_ms_cm == pytest.approx(5.0)  # not a calibrated quantity


def test_stall_tracker_is_fed_and_readings_carry_its_session_key(server, meters, pollers):
    p, events = make_poller(pollers, make_bus(server), polled(meters, trackers=True))
    p.poll_once()
    started = {e.session.meter_id: e.session for e in events.of(SessionStarted)}
    assert {"MM-01", "MM-03"} <= set(started)  # status-bit meters, milking bit set
    taken = {e.reading.meter_id: e for e in events.of(ReadingTaken)}
    assert taken["MM-01"].session_key == started["MM-01"].key
    # The session event comes before the reading that carries its key.
    assert events.index(taken["MM-01"]) > next(
        i
        for i, e in enumerate(events)
        if isinstance(e, SessionStarted) and e.session.meter_id == "MM-01"
    )


def test_poll_failures_reach_the_tracker_which_times_the_session_out(server, meters, pollers):
    p, events = make_poller(pollers, make_bus(server), polled(meters, trackers=True))
    p.poll_once()
    meters["MM-01"].set_silent(True)
    deadline = time.monotonic() + 5
    while not events.of(SessionCompleted) and time.monotonic() < deadline:
        p.poll_once()
        time.sleep(0.05)
    done = events.of(SessionCompleted)
    assert [e.session.meter_id for e in done] == ["MM-01"]
    assert done[0].session.state == "interrupted"


def test_stop_interrupts_a_request_to_a_silent_meter(server, meters, pollers, caplog):
    caplog.set_level(logging.DEBUG)
    p, events = make_poller(pollers, make_bus(server, timeout_s=30.0), polled(meters))
    meters["MM-02"].set_silent(True)
    th = threading.Thread(target=p.run)
    th.start()
    deadline = time.monotonic() + 5
    while server.stats.get(2) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.stats[2].requests == 1  # the poller is now waiting for MM-02
    p.stop()
    th.join(timeout=10)
    assert not th.is_alive()
    # Stopping is not the meter's fault.
    assert events.of(MeterPollFailed) == []
    assert p.health["MM-02"].failures == 0
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_stop_before_run_starts_still_stops_it(server, meters, pollers):
    p, _ = make_poller(pollers, make_bus(server), polled(meters))
    p.stop()
    p.run()  # returns at once
    assert p.cycles == 0


def test_run_polls_repeatedly_until_stopped(server, meters, pollers):
    p, events = make_poller(pollers, make_bus(server), polled(meters))
    th = threading.Thread(target=p.run)
    th.start()
    deadline = time.monotonic() + 5
    while len(events.of(PollCycleCompleted)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    p.stop()
    th.join(timeout=5)
    cycles = events.of(PollCycleCompleted)
    assert len(cycles) >= 3
    starts = [c.started_mono for c in cycles]
    assert starts == sorted(starts)
    # Never a burst: each cycle starts after the previous one ended.
    assert all(
        b.started_mono >= a.started_mono + a.duration_s for a, b in itertools.pairwise(cycles)
    )


def test_an_exception_in_the_sink_is_logged_and_the_loop_goes_on(server, meters, pollers, caplog):
    seen: list[object] = []
    broke = threading.Event()

    def sink(event: object) -> None:
        if isinstance(event, PollCycleCompleted) and not broke.is_set():
            broke.set()
            raise RuntimeError("listener bug")
        seen.append(event)

    p = BusPoller(make_bus(server), polled(meters), poll_interval_s=0.02, sink=sink)
    pollers.append(p)
    th = threading.Thread(target=p.run)
    th.start()
    deadline = time.monotonic() + 5
    while sum(isinstance(e, PollCycleCompleted) for e in seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    p.stop()
    th.join(timeout=5)
    assert p.loop_errors == 1
    assert sum(isinstance(e, PollCycleCompleted) for e in seen) >= 2
    logged = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert len(logged) == 1 and "listener bug" in str(logged[0].exc_info[1])


def test_a_failing_stall_tracker_does_not_stop_the_readings(server, meters, pollers, caplog):
    class BrokenTracker:
        current = None

        def on_reading(self, reading: Reading) -> list[object]:
            raise ZeroDivisionError("tracker bug")

        def on_poll_failed(self, failed: MeterPollFailed) -> list[object]:
            return []

    meter_list = polled(meters)
    meter_list[0] = PolledMeter(meter_list[0].config, meter_list[0].profile, BrokenTracker())
    p, events = make_poller(pollers, make_bus(server), meter_list)
    p.poll_once()
    assert [e.reading.meter_id for e in events.of(ReadingTaken)] == ["MM-01", "MM-02", "MM-03"]
    assert p.loop_errors == 1
    assert any(r.exc_info and "tracker bug" in str(r.exc_info[1]) for r in caplog.records)


def test_technician_write_runs_between_cycles(server, meters, bank, pollers):
    bank.define(1, "holding", [200], writable=True)
    p, _ = make_poller(pollers, make_bus(server), polled(meters))
    th = threading.Thread(target=p.run)
    th.start()
    try:
        assert p.request_write("MM-01", 200, [777]).result(timeout=5) is None
        assert bank.read(1, "holding", 200, 1) == [777]
        with pytest.raises(TransportError) as err:
            p.request_write("MM-01", 0, [1]).result(timeout=5)
        assert err.value.exception_code == 2
    finally:
        p.stop()
        th.join(timeout=5)


def test_server_down_makes_meters_offline_and_they_recover(bank, meters, pollers):
    server = ModbusTcpServer(bank).start()
    port = server.port
    p, events = make_poller(pollers, make_bus(server), polled(meters))
    p.poll_once()
    server.stop()
    for _ in range(3):
        p.poll_once()
    assert {h.state for h in p.health.values()} == {"offline"}
    assert {f.kind for f in events.of(MeterPollFailed)} == {"connection"}
    with ModbusTcpServer(bank, port=port):
        deadline = time.monotonic() + 5
        while p.health["MM-03"].state != "ok" and time.monotonic() < deadline:
            time.sleep(0.05)
            p.poll_once()
    assert {h.state for h in p.health.values()} == {"ok"}


def test_poller_over_an_rtu_line_reads_every_unit(bank, meters, pollers):
    with ModbusRtuServer(bank, baudrate=115200) as server:
        bus = BusConfig("bus-a", "rtu", server.port_path, baudrate=115200, timeout_s=0.1)
        p, events = make_poller(pollers, bus, polled(meters))
        p.poll_once()
        p.poll_once()
        p.close()
        assert {u: s.requests for u, s in server.stats.items()} == {1: 2, 2: 2, 3: 2}
    assert len(events.of(ReadingTaken)) == 6
    assert events.of(MeterPollFailed) == []


def test_meter_on_another_bus_is_refused(server, meters):
    with pytest.raises(ValueError, match="MM-01"):
        BusPoller(make_bus(server), polled(meters, bus_id="bus-b"), poll_interval_s=1, sink=print)


# -- meter health (synthetic times) -------------------------------------------------------------


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_meter_is_offline_until_it_first_answers():
    h = MeterHealthTracker("MM-01")
    assert h.snapshot().state == "offline"
    assert h.on_failure("timeout", "no answer", at(0)) is None
    assert h.on_failure("timeout", "no answer", at(1)) is None
    change = h.on_success(at(2))
    assert change is not None and (change.previous, change.health.state) == ("offline", "ok")
    assert change.health.last_seen == at(2)


def test_a_failure_streak_logs_one_error_then_debug_then_info(caplog):
    caplog.set_level(logging.DEBUG, logger="milkconsole.meters.meter_health")
    h = MeterHealthTracker("MM-07")
    h.on_success(at(0))
    for i in range(5):
        h.on_failure("crc", "answer failed its CRC check", at(1 + i))
    h.on_success(at(10))
    by_level = [(r.levelname, r.getMessage()) for r in caplog.records if "poll" in r.getMessage()]
    assert [lvl for lvl, _ in by_level] == ["ERROR", "DEBUG", "DEBUG", "DEBUG", "DEBUG", "INFO"]
    assert "MM-07" in by_level[0][1] and "CRC" in by_level[0][1]
    assert "5 failed" in by_level[-1][1]
    snap = h.snapshot()
    assert (snap.crc_errors, snap.failures, snap.polls) == (5, 5, 7)
    assert snap.last_error == "crc: answer failed its CRC check"


def test_a_fifth_of_polls_failing_keeps_a_meter_degraded_until_below_a_tenth():
    h = MeterHealthTracker("MM-01")
    t = 0

    def poll(ok: bool) -> str:
        nonlocal t
        t += 1
        if ok:
            h.on_success(at(t))
        else:
            h.on_failure("timeout", "no answer", at(t))
        return h.snapshot().state

    for _ in range(10):
        poll(True)
    # Every other poll fails: each failure alone only blips degraded -> ok ...
    after_good = []
    for _ in range(4):
        assert poll(False) == "degraded"
        after_good.append(poll(True))
    # ... until the third failure makes it 3 in 15 polls (20 %): then a good poll leaves it
    # degraded (3 in 16).
    assert after_good == ["ok", "ok", "degraded", "degraded"]
    # Good polls bring the 5-minute rate down; it stays degraded below 20 % (16 % here) ...
    for _ in range(7):
        assert poll(True) == "degraded"
    assert h.window_stats(at(t), 300)["polls"] == 25
    # ... and is ok again once below 10 %: 4 failures in 41 polls.
    while poll(True) == "degraded":
        pass
    assert h.window_stats(at(t), 300)["polls"] == 41


def test_rate_rule_waits_for_enough_polls():
    h = MeterHealthTracker("MM-01")
    h.on_success(at(0))
    h.on_failure("timeout", "x", at(1))
    assert h.on_success(at(2)) is not None  # 1 of 3 failed, but too few polls to judge a rate
    assert h.snapshot().state == "ok"


def test_window_stats_count_the_last_hour_by_kind():
    h = MeterHealthTracker("MM-01")
    h.on_success(at(0))
    h.on_failure("timeout", "x", at(5))  # more than an hour before "now" below
    for i, kind in enumerate(["crc", "exception", "connection", "timeout"]):
        h.on_failure(kind, "x", at(4000 + i))
    for i in range(6):
        h.on_success(at(4100 + i))
    stats = h.window_stats(at(4200))
    assert stats == {
        "seconds": 3600.0,
        "polls": 10,
        "successes": 6,
        "failures": 4,
        "timeouts": 1,
        "crc_errors": 1,
        "exceptions": 1,
        "connection_errors": 1,
        "success_rate": 0.6,
    }
    assert h.window_stats(at(99999))["success_rate"] is None


def test_refused_values_are_counted_without_changing_state():
    h = MeterHealthTracker("MM-01")
    h.on_success(at(0))
    h.on_refused(2)
    assert (h.snapshot().state, h.snapshot().refused_values) == ("ok", 2)


def test_unknown_failure_kind_is_refused():
    with pytest.raises(ValueError, match="bogus"):
        MeterHealthTracker("MM-01").on_failure("bogus", "x", at(0))


def test_a_whole_bus_going_silent_is_one_error_line_not_one_per_meter(
    server, meters, pollers, caplog
):
    p, _events = make_poller(pollers, make_bus(server), polled(meters))
    caplog.set_level(logging.DEBUG)
    p.poll_once()
    for m in meters.values():
        m.set_silent(True)  # the cable to the whole bus is cut
    for _ in range(3):
        p.poll_once()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "bus bus-a" in errors[0] and "MM-01, MM-02, MM-03" in errors[0]
    assert "timeout" in errors[0]
    assert all(p.health[m].timeouts == 3 for m in meters)
    # One meter failing alone on a working bus still gets its own line.
    for m in meters.values():
        m.set_silent(False)
    p.poll_once()
    meters["MM-03"].set_silent(True)
    p.poll_once()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2 and errors[1].startswith("meter MM-03: poll failed (timeout)")
