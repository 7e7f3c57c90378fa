"""The technician's windows offscreen: diagnostics over simulated meters with vacuum, pulsation
and comms faults (real Modbus TCP, real pollers, real SQLite), the PIN dialog and the lock, the
audit log, the users window, the bulk-tank check and the calibration reminder."""

from __future__ import annotations

import csv
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QApplication

from milkconsole.app.runtime import ParlourRuntime
from milkconsole.config import ParlourConfig
from milkconsole.meters.transport import open_transport
from milkconsole.store.calibrations import CalibrationStore
from milkconsole.supervision.lock import AccessControl, AccessSettings
from milkconsole.technician.calibration import (
    CalibrationReading,
    CalibrationSettings,
    evaluate,
    save_calibration,
)
from milkconsole.technician.diagnostics import EquipmentRanges, SelfTestResult, self_test
from simulators.meter import SimulatedMeter
from simulators.modbus.registers import RegisterBank
from simulators.modbus.tcp import ModbusTcpServer
from tests.helpers.tech_helpers import (
    SUPERVISOR,
    SUPERVISOR_PIN,
    TECHNICIAN,
    TECHNICIAN_PIN,
    TechDb,
    cell_text,
    parlour_config,
    record_sessions,
    tech_db,
)
from ui.audit_view import AuditLogDialog
from ui.bridge import EventBridge
from ui.diagnostics_view import DiagnosticsWidget
from ui.pin_dialog import PinDialog
from ui.tech_actions import TechActions
from ui.tech_bulk_tank_dialog import BulkTankDialog
from ui.tech_due_widget import CalibrationDueWidget
from ui.tech_equipment_watch import EquipmentWatch
from ui.tech_users_dialog import UsersDialog
from ui.theme import DARK, apply_theme
from ui.workers import TaskRunner

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def shot(widget, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    assert widget.grab().save(str(ARTIFACTS / name))


def enter_pin(qtbot, dlg: PinDialog, user: str, pin: str) -> None:
    dlg.select_user(user)
    for key in pin:
        qtbot.mouseClick(dlg.key_buttons[key], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)


@pytest.fixture
def themed(qtbot) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    apply_theme(app, DARK)


@pytest.fixture
def tasks() -> Iterator[TaskRunner]:
    runner = TaskRunner()
    yield runner
    runner.wait_for_done(5)


@dataclass
class Parlour:
    config: ParlourConfig
    t: TechDb
    runtime: ParlourRuntime
    bridge: EventBridge
    meters: dict[str, SimulatedMeter]


@pytest.fixture
def parlour(qtbot, tmp_path: Path, themed) -> Iterator[Parlour]:
    bank = RegisterBank()
    with ModbusTcpServer(bank) as server:
        config = parlour_config(3, port=server.port)
        meters = {}
        for m in config.meters:
            sim = SimulatedMeter(bank, m.unit, config.profiles[m.profile], meter_id=m.id)
            sim.set_values(yield_l=6.0, flow_l_min=2.5, conductivity_ms_cm=5.2, status=1)
            meters[m.id] = sim
        t = tech_db(tmp_path, config)
        runtime = ParlourRuntime(config, t.db)
        bridge = EventBridge()
        bridge.attach(runtime)
        try:
            yield Parlour(config, t, runtime, bridge, meters)
        finally:
            runtime.stop()


def test_diagnostics_show_faults_raise_equipment_alerts_and_self_test_after_a_pin(
    qtbot, parlour: Parlour, tasks: TaskRunner
) -> None:
    p = parlour
    # M01's calibration ran out a month ago; the others were never calibrated.
    rs = [CalibrationReading(m, m) for m in (10.0, 12.0, 14.0)]
    save_calibration(
        p.t.db,
        p.t.technician,
        meter_id="M01",
        method="water_rig",
        readings=rs,
        outcome=evaluate(rs, 1.0, CalibrationSettings()),
        settings=CalibrationSettings(),
        now=datetime.now(UTC) - timedelta(days=396),
    )
    p.meters["M01"].vacuum_kpa = 38.0
    p.meters["M02"].pulsation_cpm = 70.0
    p.meters["M03"].set_silent(True)
    ranges = EquipmentRanges(hold_s=0.3)
    watch = EquipmentWatch(p.bridge, p.t.db, tasks, ranges, p.config.farm_code)
    access = AccessControl(p.t.users, clock=Clock())
    profile = p.config.profiles["delaval-mm27bc"]
    bus = p.config.buses[0]

    def run_self_test(meter_id: str) -> SelfTestResult:
        # A TCP gateway takes a second connection; on RS-485 this must go through the poller.
        transport = open_transport(bus)
        try:
            transport.connect()
            cfg = next(m for m in p.config.meters if m.id == meter_id)
            return self_test(transport, cfg, profile)
        finally:
            transport.close()

    tech = TechActions(p.config, p.t.db, access, tasks, bridge=p.bridge, ranges=ranges)
    view = DiagnosticsWidget(
        p.config,
        p.t.db,
        tasks,
        bridge=p.bridge,
        ranges=ranges,
        run_self_test=run_self_test,
        ask_pin=lambda action, then: tech.require(action, then),
    )
    qtbot.addWidget(view)
    view.resize(1700, 1000)
    view.show()
    qtbot.waitExposed(view)
    p.runtime.start_threads()
    qtbot.waitUntil(lambda: len(watch.raised) == 2, timeout=8000)
    watch.alerts_raised.connect(lambda _k: view.reload())
    view.reload()
    qtbot.waitUntil(lambda: len(view.alerts) == 2, timeout=5000)
    qtbot.waitUntil(lambda: cell_text(view.table, 2, view.C_STATE) == "OFFLINE", timeout=5000)
    view.refresh()

    def cell(row: int, col: int) -> str:
        return cell_text(view.table, row, col)

    assert cell(0, view.C_VACUUM) == "38.0 ▼ LOW"
    assert cell(1, view.C_PULSATION) == "70.0 ▲ HIGH"
    assert cell(0, view.C_PULSATION) == "60.0"
    assert cell(0, view.C_STATE) == "ok" and cell(0, 5) == "100.0 %"
    assert int(cell(2, 7)) >= 1  # M03's timeouts this hour
    assert cell(0, view.C_DUE).startswith("OVERDUE")
    assert cell(1, view.C_DUE) == "never calibrated"
    assert sorted(a.condition for a in view.alerts) == ["pulsation_high", "vacuum_low"]
    # The faults go on: still one alert per meter and condition.
    time.sleep(0.5)
    assert len(watch.raised) == 2

    # Self-test: locked, so the technician's PIN first.
    view.select_meter("M01")
    qtbot.mouseClick(view.self_test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tech.pin_dialog is not None, timeout=5000)
    assert tech.pin_dialog is not None
    enter_pin(qtbot, tech.pin_dialog, TECHNICIAN, TECHNICIAN_PIN)
    qtbot.waitUntil(lambda: view.self_test_result is not None, timeout=5000)
    result = view.self_test_result
    assert result is not None and result.ok and result.meter_id == "M01"
    rows = {cell_text(view.test_table, i, 0): i for i in range(view.test_table.rowCount())}
    vac = rows["vacuum_kpa"]
    assert cell_text(view.test_table, vac, 4) == "380"  # raw: tenths of a kPa
    assert cell_text(view.test_table, vac, 5) == "38.000 kPa"
    assert cell_text(view.test_table, vac, 3) == "017C"
    assert view.table.editTriggers() == QAbstractItemView.EditTrigger.NoEditTriggers
    shot(view, "diagnostics_view.png")


def test_pin_dialog_backs_off_after_wrong_pins_and_offers_only_allowed_users(
    qtbot, tmp_path: Path, themed
) -> None:
    t = tech_db(tmp_path)
    clock = Clock()
    access = AccessControl(t.users, AccessSettings(free_attempts=3, backoff_first_s=5), clock=clock)
    dlg = PinDialog(access, "calibrate", t.users.users())
    qtbot.addWidget(dlg)
    dlg.show()
    # Only technicians may calibrate: the supervisor is not offered.
    assert [dlg.user_combo.itemData(i) for i in range(dlg.user_combo.count())] == [TECHNICIAN]
    for _ in range(3):
        enter_pin(qtbot, dlg, TECHNICIAN, "0000")
    assert dlg.message.text() == "Wrong name or PIN"
    assert not dlg.ok_button.isEnabled() and dlg.ok_button.text() == "Wait 5 s"
    assert dlg.pin_edit.text() == ""
    shot(dlg, "pin_dialog_backoff.png")
    clock.t += 5
    qtbot.waitUntil(lambda: dlg.ok_button.isEnabled(), timeout=2000)
    with qtbot.waitSignal(dlg.granted, timeout=2000):
        enter_pin(qtbot, dlg, TECHNICIAN, TECHNICIAN_PIN)
    assert dlg.grant is not None and dlg.grant.user == TECHNICIAN
    assert access.require("calibrate") == dlg.grant


def test_console_locks_after_inactivity_and_a_key_press_keeps_it_open(
    qtbot, tmp_path: Path, tasks: TaskRunner, themed
) -> None:
    t = tech_db(tmp_path)
    clock = Clock()
    access = AccessControl(t.users, AccessSettings(lock_after_s=300), clock=clock)
    tech = TechActions(t.config, t.db, access, tasks)
    label = tech.status_widget()
    qtbot.addWidget(label)
    assert label.text() == "Locked"
    access.unlock(TECHNICIAN, TECHNICIAN_PIN)
    tech.check_lock()
    assert label.text() == "Tom (technician) · locks in 5:00"
    clock.t += 250
    qtbot.keyClick(label, Qt.Key.Key_A)  # any key anywhere counts as activity
    clock.t += 250
    tech.check_lock()
    assert label.text() == "Tom (technician) · locks in 0:50"
    with qtbot.waitSignal(tech.lock_changed, timeout=3000) as locked:
        clock.t += 50
    assert locked.args == [None]
    assert label.text() == "Locked"
    menu = tech.menu()
    assert {a.text() for a in menu.actions() if a.text()} >= {
        "Calibrate meters…",
        "Meter diagnostics",
        "Audit log…",
        "Users…",
        "Bulk-tank check…",
    }


def test_supervisor_reads_and_exports_the_audit_log_but_cannot_edit_it(
    qtbot, tmp_path: Path, tasks: TaskRunner, themed
) -> None:
    t = tech_db(tmp_path)
    rs = [CalibrationReading(m, r) for m, r in ((10.4, 10.0), (20.8, 20.0), (15.6, 15.0))]
    save_calibration(
        t.db,
        t.technician,
        meter_id="M02",
        method="weighed_milk",
        readings=rs,
        outcome=evaluate(rs, 1.0, CalibrationSettings()),
        settings=CalibrationSettings(),
    )
    access = AccessControl(t.users, clock=Clock())
    tech = TechActions(t.config, t.db, access, tasks)
    tech.open_audit_log()
    qtbot.waitUntil(lambda: tech.pin_dialog is not None, timeout=5000)
    pin = tech.pin_dialog
    assert pin is not None
    assert [pin.user_combo.itemData(i) for i in range(pin.user_combo.count())] == [SUPERVISOR]
    enter_pin(qtbot, pin, SUPERVISOR, SUPERVISOR_PIN)
    qtbot.waitUntil(lambda: "audit" in tech.open_windows, timeout=5000)
    dlg = tech.open_windows["audit"]
    assert isinstance(dlg, AuditLogDialog)
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: len(dlg.records) == 4, timeout=5000)
    assert dlg.table.editTriggers() == QAbstractItemView.EditTrigger.NoEditTriggers
    # Newest first: the supervisor's unlock to open it, then the calibration.
    top = [cell_text(dlg.table, 0, j) for j in range(len(dlg.COLUMNS))]
    assert top[1:5] == [SUPERVISOR, "supervisor", "unlock", "console"]
    second = [cell_text(dlg.table, 1, j) for j in range(len(dlg.COLUMNS))]
    assert second[1:5] == ["Tom", "technician", "calibration", "meter:M02"]
    assert "calibration_factor=1.0" in second[5]
    shot(dlg, "audit_log.png")
    out = tmp_path / "audit.csv"
    with qtbot.waitSignal(dlg.exported, timeout=5000):
        dlg.export_to(out)
    with out.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["action"] for r in rows] == ["user_add", "user_add", "calibration", "unlock"]
    # The export itself is in the log.
    dlg.reload()
    qtbot.waitUntil(lambda: len(dlg.records) == 5, timeout=5000)
    assert dlg.records[0].action == "audit_export" and dlg.records[0].actor == SUPERVISOR
    # Locking closes the log: the next person at the PC does not see it.
    assert dlg.isVisible()
    tech.lock()
    assert not dlg.isVisible()


def test_supervisor_adds_a_technician_from_the_users_window(
    qtbot, tmp_path: Path, tasks: TaskRunner, themed
) -> None:
    t = tech_db(tmp_path)
    access = AccessControl(t.users, clock=Clock())
    access.unlock(SUPERVISOR, SUPERVISOR_PIN)
    dlg = UsersDialog(t.users, tasks, access=access)
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: len(dlg.rows) == 2, timeout=5000)
    dlg.name.setText("Tina")
    dlg.role.setCurrentText("technician")
    dlg.pin.setText("2468")
    dlg.pin_again.setText("2469")
    dlg.add()
    assert dlg.message.text() == "The two PINs differ"
    dlg.pin_again.setText("2468")
    with qtbot.waitSignal(dlg.changed, timeout=5000):
        dlg.add()
    qtbot.waitUntil(lambda: len(dlg.rows) == 3, timeout=5000)
    assert t.users.verify("Tina", "2468") is not None
    assert dlg.pin.text() == ""


def test_bulk_tank_check_flags_the_drifting_meter_and_applies_its_factor(
    qtbot, tmp_path: Path, tasks: TaskRunner, themed
) -> None:
    t = tech_db(tmp_path, parlour_config(3))
    rng = random.Random(3)
    start = datetime.now(UTC) - timedelta(days=2)
    milkings, tank = [], 0.0
    for i in range(60):
        for stall, err in ((1, 0.0), (2, 5.0), (3, 0.0)):
            truth = rng.gauss(13.0, 1.0)
            tank += truth
            milkings.append(
                (
                    f"M{stall:02d}",
                    stall,
                    truth * (1 + err / 100),
                    start + timedelta(minutes=30 * i + stall),
                )
            )
    record_sessions(t.db, milkings)
    access = AccessControl(t.users, clock=Clock())
    access.unlock(TECHNICIAN, TECHNICIAN_PIN)
    applied: dict[str, float] = {}
    dlg = BulkTankDialog(
        t.db,
        t.config,
        tasks,
        access=access,
        apply_factor=lambda m, f: applied.__setitem__(m, f),
    )
    qtbot.addWidget(dlg)
    dlg.start.setDateTime(dlg.start.dateTime().addDays(-5))
    dlg.tank.setValue(round(tank, 1))
    with qtbot.waitSignal(dlg.compared, timeout=5000) as got:
        dlg.compare()
    rec = got.args[0]
    assert [r.meter_id for r in rec.rows if r.drifting] == ["M02"]
    assert cell_text(dlg.table, 1, 7) == "DRIFTING" and dlg.apply_button.isEnabled()
    shot(dlg, "bulk_tank.png")
    with qtbot.waitSignal(dlg.saved, timeout=5000):
        qtbot.mouseClick(dlg.apply_button, Qt.MouseButton.LeftButton)
    assert applied["M02"] == pytest.approx(1 / 1.05, rel=0.01)
    assert CalibrationStore(t.db).history("M02")[0].method == "bulk_tank"


def test_due_reminder_counts_overdue_and_never_calibrated_meters(
    qtbot, tmp_path: Path, tasks: TaskRunner, themed
) -> None:
    t = tech_db(tmp_path)
    rs = [CalibrationReading(m, m) for m in (10.0, 12.0, 14.0)]
    save_calibration(
        t.db,
        t.technician,
        meter_id="M01",
        method="water_rig",
        readings=rs,
        outcome=evaluate(rs, 1.0, CalibrationSettings()),
        settings=CalibrationSettings(),
        now=datetime.now(UTC) - timedelta(days=370),
    )
    w = CalibrationDueWidget(t.db, tasks, meter_ids=["M01", "M02", "M03"])
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: w.loads == 1, timeout=5000)
    assert w.text() == "Calibration: 1 overdue · 2 never calibrated"
    assert "M01: calibration overdue by" in w.toolTip()
