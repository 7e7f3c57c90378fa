"""Equipment ranges and alerts, the last hour's comms, and the self-test — against simulated
meters that speak real Modbus TCP, polled by the real bus poller, alerts in a real SQLite file."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from milkconsole.errors import ConfigError
from milkconsole.meters.events import ReadingTaken
from milkconsole.meters.parlour import BusConfig, MeterConfig
from milkconsole.meters.poller import BusPoller, PolledMeter
from milkconsole.meters.profiles import load_profiles
from milkconsole.meters.readings import Reading
from milkconsole.meters.transport import open_transport
from milkconsole.store.alerts import open_equipment_alerts
from milkconsole.store.schema import AlertRow
from milkconsole.supervision.alerts import resolve_alert
from milkconsole.technician.diagnostics import (
    CommWindow,
    DiagnosticsModel,
    EquipmentMonitor,
    EquipmentRanges,
    raise_equipment_alerts,
    self_test,
)
from simulators.meter import SimulatedMeter
from simulators.modbus.registers import RegisterBank
from simulators.modbus.tcp import ModbusTcpServer
from tests.helpers.tech_helpers import FARM, parlour_config, tech_db

PROFILES = load_profiles()
T0 = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)


def reading(t_s: float, *, vacuum: float = 45.0, pulsation: float = 60.0, milking: bool = True):
    return Reading(
        meter_id="M01",
        stall=1,
        t_mono=1000.0 + t_s,
        t_utc=T0 + timedelta(seconds=t_s),
        milking=milking,
        vacuum_kpa=vacuum,
        pulsation_cpm=pulsation,
    )


def test_ranges_default_to_42_50_kpa_and_55_65_cycles_and_come_from_the_config() -> None:
    r = EquipmentRanges()
    assert (r.vacuum_min_kpa, r.vacuum_max_kpa) == (42.0, 50.0)
    assert (r.pulsation_min_cpm, r.pulsation_max_cpm) == (55.0, 65.0)
    assert r.vacuum_status(41.9) == "low" and r.vacuum_status(50.0) == "ok"
    assert r.pulsation_status(66) == "high" and r.pulsation_status(None) is None
    cfg = parlour_config(extra={"calibration": {"equipment": {"vacuum_min_kpa": 40.0}}})
    assert EquipmentRanges.from_parlour(cfg).vacuum_min_kpa == 40.0
    bad = parlour_config(extra={"calibration": {"equipment": {"vacuum_min_kpa": 55.0}}})
    with pytest.raises(ConfigError, match=r"calibration\.equipment: vacuum range 55.0-50.0"):
        EquipmentRanges.from_parlour(bad)


def test_an_out_of_range_vacuum_raises_a_finding_only_after_it_held_for_hold_s() -> None:
    mon = EquipmentMonitor(EquipmentRanges(hold_s=10.0))
    assert mon.observe(reading(0, vacuum=38.0)) == []
    assert mon.observe(reading(5, vacuum=38.5)) == []
    (f,) = mon.observe(reading(10, vacuum=38.2))
    assert (f.meter_id, f.condition, f.value, f.since_utc) == ("M01", "vacuum_low", 38.2, T0)
    assert f.message == "Stall 1 (M01): Vacuum 38.2 kPa below 42 (range 42-50 kPa)"
    assert mon.observe(reading(20, vacuum=38.0)) == []  # once per episode


def test_a_brief_dip_raises_nothing_and_idle_stalls_are_not_judged() -> None:
    mon = EquipmentMonitor(EquipmentRanges(hold_s=10.0))
    assert mon.observe(reading(0, pulsation=40.0)) == []
    assert mon.observe(reading(4, pulsation=60.0)) == []  # back in range: episode over
    assert mon.observe(reading(8, pulsation=40.0)) == []
    assert mon.observe(reading(12, pulsation=40.0)) == []  # only 4 s into the new episode
    for t in range(20, 60, 5):  # pulsator off between cows: no fault
        assert mon.observe(reading(t, pulsation=0.0, vacuum=0.0, milking=False)) == []
    assert mon.observe(reading(60, pulsation=70.0)) == []
    (f,) = mon.observe(reading(70, pulsation=70.0))
    assert f.condition == "pulsation_high" and f.since_utc == T0 + timedelta(seconds=60)


def test_one_open_alert_per_meter_and_condition_until_it_is_resolved(tmp_path: Path) -> None:
    t = tech_db(tmp_path)
    mon = EquipmentMonitor(EquipmentRanges(hold_s=0.0))
    first = mon.observe(reading(0, vacuum=38.0, pulsation=70.0))
    assert {f.condition for f in first} == {"vacuum_low", "pulsation_high"}
    assert len(raise_equipment_alerts(t.db, first, FARM)) == 2
    # A new episode of the same fault while the alert is open adds nothing.
    mon.observe(reading(1, milking=False))
    again = mon.observe(reading(2, vacuum=37.0))
    assert raise_equipment_alerts(t.db, again, FARM) == []
    alerts = open_equipment_alerts(t.db)
    assert sorted(a.condition for a in alerts) == ["pulsation_high", "vacuum_low"]
    vac = next(a for a in alerts if a.condition == "vacuum_low")
    resolve_alert(t.db, t.technician, vac.id, "regulator cleaned")
    mon.observe(reading(3, milking=False))
    third = mon.observe(reading(4, vacuum=36.0))
    assert len(raise_equipment_alerts(t.db, third, FARM)) == 1
    with t.db.read() as tx:
        rows = tx.scalars(select(AlertRow).order_by(AlertRow.id)).all()
    assert [(r.condition, r.state, r.kind) for r in rows] == [
        ("vacuum_low", "resolved", "equipment"),
        ("pulsation_high", "open", "equipment"),
        ("vacuum_low", "open", "equipment"),
    ]


def test_comm_window_counts_the_last_hour_by_kind() -> None:
    w = CommWindow()
    w.on_failure("M01", "timeout", T0 + timedelta(seconds=20))
    for i in range(91):  # a poll every 40 s from T0 to T0 + 1 h
        w.on_success("M01", T0 + timedelta(seconds=i * 40))
    w.on_failure("M01", "timeout", T0 + timedelta(seconds=3600))
    w.on_failure("M01", "crc", T0 + timedelta(seconds=3600))
    # An hour back from T0 + 3640 s leaves out the timeout at 20 s and the poll at 0 s.
    s = w.stats("M01", T0 + timedelta(seconds=3640))
    assert (s.polls, s.failures, s.timeouts, s.crc_errors) == (92, 2, 1, 1)
    assert s.success_rate == pytest.approx(90 / 92)
    assert w.stats("M01", T0 + timedelta(seconds=3640), seconds=60).polls == 3
    assert w.stats("M02", T0).success_rate is None


@pytest.fixture
def simulated() -> Iterator[tuple[ModbusTcpServer, dict[str, SimulatedMeter]]]:
    bank = RegisterBank()
    meters = {
        "M01": SimulatedMeter(bank, 1, PROFILES["delaval-mm27bc"], meter_id="M01"),
        "M02": SimulatedMeter(bank, 2, PROFILES["afimilk"], meter_id="M02"),
    }
    for m in meters.values():
        m.set_values(yield_l=7.5, flow_l_min=2.5, conductivity_ms_cm=5.1, status=1, rfid=None)
    with ModbusTcpServer(bank) as server:
        yield server, meters


def bus(server: ModbusTcpServer) -> BusConfig:
    return BusConfig("bus-1", "tcp", server.port, "127.0.0.1", timeout_s=0.1, retries=0)


def test_self_test_reads_every_register_once_and_shows_raw_beside_decoded(simulated) -> None:
    server, meters = simulated
    meters["M01"].vacuum_kpa = 44.7
    transport = open_transport(bus(server))
    try:
        transport.connect()
        cfg = MeterConfig("M01", "bus-1", 1, "delaval-mm27bc", 1)
        result = self_test(transport, cfg, PROFILES["delaval-mm27bc"])
    finally:
        transport.close()
    assert result.ok and result.blocks[0].error is None
    profile = PROFILES["delaval-mm27bc"]
    assert [b.count for b in result.blocks] == [b.count for b in profile.blocks()]
    assert server.stats[1].requests == len(profile.blocks())
    by = {f.name: f for f in result.fields}
    assert set(by) == set(profile.fields)
    vac = by["vacuum_kpa"]
    assert (vac.registers, vac.raw, vac.value) == ((447,), 447, pytest.approx(44.7))
    assert vac.registers_hex == "01BF"
    assert by["yield_l"].value == pytest.approx(7.5) and by["yield_l"].data_type == "float32"
    assert by["rfid"].value is None and by["rfid"].raw == 0
    assert "all 9 fields read" in result.summary


def test_self_test_of_a_silent_meter_names_the_failed_block(simulated) -> None:
    server, meters = simulated
    meters["M02"].set_silent(True)
    transport = open_transport(bus(server))
    try:
        transport.connect()
        cfg = MeterConfig("M02", "bus-1", 2, "afimilk", 2)
        result = self_test(transport, cfg, PROFILES["afimilk"])
    finally:
        transport.close()
    assert not result.ok
    assert all(b.error and b.error.startswith("timeout") for b in result.blocks)
    assert all(f.refused == "not read" and f.value is None for f in result.fields)
    assert "block read(s) failed: timeout" in result.summary


def test_a_vacuum_fault_on_a_polled_meter_raises_one_equipment_alert_and_shows_in_the_model(
    tmp_path: Path, simulated
) -> None:
    server, meters = simulated
    config = parlour_config(2, port=server.port)
    t = tech_db(tmp_path, config)
    ranges = EquipmentRanges(hold_s=0.5)
    monitor = EquipmentMonitor(ranges)
    model = DiagnosticsModel(config, ranges)
    lock = threading.Lock()

    def sink(event: object) -> None:
        # The poller's thread; the console does the same through the bridge on the GUI thread.
        with lock:
            model.on_event(event)
            if isinstance(event, ReadingTaken):
                raise_equipment_alerts(t.db, monitor.observe(event.reading), FARM)

    polled = [
        PolledMeter(
            MeterConfig("M01", "bus-1", 1, "delaval-mm27bc", 1), PROFILES["delaval-mm27bc"]
        ),
        PolledMeter(MeterConfig("M02", "bus-1", 2, "afimilk", 2), PROFILES["afimilk"]),
    ]
    poller = BusPoller(bus(server), polled, poll_interval_s=0.05, sink=sink)
    meters["M01"].vacuum_kpa = 38.0
    meters["M02"].pulsation_cpm = 60.0
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not open_equipment_alerts(t.db):
            time.sleep(0.05)
        time.sleep(0.5)  # the fault goes on: no second alert
        meters["M02"].set_silent(True)
        time.sleep(0.4)
    finally:
        poller.stop()
        thread.join(5)
    alerts = open_equipment_alerts(t.db)
    assert [(a.meter_id, a.condition) for a in alerts] == [("M01", "vacuum_low")]
    assert "Vacuum 38.0 kPa below 42" in alerts[0].message
    with lock:
        rows = {r.meter_id: r for r in model.rows(datetime.now(UTC))}
    m1, m2 = rows["M01"], rows["M02"]
    assert (m1.state, m1.vacuum_status, m1.pulsation_status) == ("ok", "low", "ok")
    assert m1.vacuum_kpa == pytest.approx(38.0) and m1.comm.success_rate == 1.0
    assert m1.comm.polls >= 10 and m1.milking is True
    assert m2.comm.timeouts >= 2 and m2.comm.success_rate is not None
    assert m2.comm.success_rate < 1.0 and m2.state in ("degraded", "offline")
