"""The calibration wizard end to end, offscreen: simulated meters with a known error speak real
Modbus TCP to the real poller, stall tracker and recorder (a real SQLite file); the technician
unlocks with a PIN, feeds the wizard the recorded milkings and the true yields weighed in kg,
saves, and the next milkings are recorded true to within 0.5 %."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QWizard
from sqlalchemy import select

from milkconsole.app.runtime import ParlourRuntime
from milkconsole.config import ParlourConfig, parse_config
from milkconsole.store.calibrations import CalibrationStore
from milkconsole.store.db import Database
from milkconsole.store.schema import AuditEntry
from milkconsole.store.sessions import SessionRecord, SessionStore
from milkconsole.supervision.lock import AccessControl, AccessSettings
from milkconsole.technician.calibration import CalibrationSettings
from simulators.meter import SimulatedMeter
from simulators.modbus.registers import RegisterBank
from simulators.modbus.tcp import ModbusTcpServer
from simulators.parlour import MilkingTruth, ParlourScenario
from tests.helpers.tech_helpers import TECHNICIAN, TECHNICIAN_PIN, cell_text, now_utc, tech_db
from ui.bridge import EventBridge
from ui.calibration_wizard import CalibrationWizard
from ui.tech_actions import TechActions
from ui.theme import DARK, apply_theme
from ui.workers import TaskRunner

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TIME_SCALE = 300.0
ERRORS_PCT = {"M01": 4.0, "M02": -3.0, "M03": 0.0}
DENSITY = 1.032


def parlour(port: int) -> ParlourConfig:
    data = {
        "parlour": {"name": "Calibration test", "farm_code": "CAL", "poll_interval_s": 0.1},
        "tracking": {
            "comm_timeout_s": 5.0,
            "min_duration_s": 0.5,
            "min_yield_l": 2.0,
            "sample_interval_s": 0.25,
            "end_after_s": 1.0,
        },
        "bus": [
            {"id": "tcp-1", "transport": "tcp", "host": "127.0.0.1", "port": port, "timeout_s": 0.3}
        ],
        "meter": [
            {"id": mid, "bus": "tcp-1", "unit": i, "profile": "delaval-mm27bc", "stall": i}
            for i, mid in enumerate(ERRORS_PCT, start=1)
        ],
    }
    return parse_config(data, "calibration-test.toml")


@dataclass
class Rig:
    config: ParlourConfig
    db: Database
    runtime: ParlourRuntime
    bridge: EventBridge
    meters: dict[str, SimulatedMeter]
    access: AccessControl
    tasks: TaskRunner


@pytest.fixture
def rig(qtbot, tmp_path: Path) -> Iterator[Rig]:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    apply_theme(app, DARK)
    bank = RegisterBank()
    with ModbusTcpServer(bank) as server:
        config = parlour(server.port)
        meters = {
            m.id: SimulatedMeter(
                bank,
                m.unit,
                config.profiles[m.profile],
                meter_id=m.id,
                stall=m.stall,
                error_pct=ERRORS_PCT[m.id],
            )
            for m in config.meters
        }
        t = tech_db(tmp_path, config)
        runtime = ParlourRuntime(config, t.db)
        bridge = EventBridge()
        bridge.attach(runtime)
        runtime.start_threads()
        tasks = TaskRunner()
        access = AccessControl(t.users, AccessSettings(lock_after_s=600))
        try:
            yield Rig(config, t.db, runtime, bridge, meters, access, tasks)
        finally:
            runtime.stop()
            tasks.wait_for_done(5)


def milk(rig: Rig, cows: int, seed: int) -> list[MilkingTruth]:
    """Milk `cows` cows through the three stalls and wait until every one is recorded."""
    store = SessionStore(rig.db)
    before = store.count("completed") + store.count("incomplete")
    scenario = ParlourScenario(
        list(rig.meters.values()), cows=cows, seed=seed, time_scale=TIME_SCALE, group_size=3
    )
    with scenario:
        assert scenario.wait_done(timeout=60), "the milkings did not finish"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if store.count("completed") + store.count("incomplete") >= before + cows:
            break
        time.sleep(0.1)
    truth = scenario.truth
    assert len(truth) == cows
    return truth


def by_meter(items: list, key: str = "ended_at") -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for x in sorted(items, key=lambda x: getattr(x, key)):
        out[x.meter_id].append(x)
    return out


def shot(widget, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    assert widget.grab().save(str(path))
    return path


def test_wizard_corrects_a_meter_reading_4_pct_high_to_within_half_a_percent(qtbot, rig: Rig):
    started = now_utc()
    truth = milk(rig, cows=12, seed=21)  # four test milkings per meter
    recorded = CalibrationStore(rig.db).test_milkings(list(ERRORS_PCT), started)
    rec_by_meter: dict[str, list[SessionRecord]] = by_meter(recorded)
    truth_by_meter: dict[str, list[MilkingTruth]] = by_meter(truth)
    assert {m: len(v) for m, v in rec_by_meter.items()} == dict.fromkeys(ERRORS_PCT, 4)
    # Before calibration M01 records 4 % more milk than the cows gave.
    for rec, tru in zip(rec_by_meter["M01"], truth_by_meter["M01"], strict=True):
        assert rec.yield_l == pytest.approx(tru.actual_yield_l * 1.04, rel=1e-4)
    reattached = rec_by_meter["M01"][1].key
    SessionStore(rig.db).mark_reattached(reattached, "operator")

    tech = TechActions(
        rig.config,
        rig.db,
        rig.access,
        rig.tasks,
        bridge=rig.bridge,
        apply_factor=rig.runtime.set_calibration_factor,
        calibration=CalibrationSettings(),
    )
    # Locked: the menu entry asks for a technician PIN first.
    tech.open_calibration_wizard()
    qtbot.waitUntil(lambda: tech.pin_dialog is not None, timeout=5000)
    pin = tech.pin_dialog
    assert pin is not None
    assert [pin.user_combo.itemData(i) for i in range(pin.user_combo.count())] == [TECHNICIAN]
    for key in TECHNICIAN_PIN:
        qtbot.mouseClick(pin.key_buttons[key], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(pin.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "calibration" in tech.open_windows, timeout=5000)
    wiz = tech.open_windows["calibration"]
    assert isinstance(wiz, CalibrationWizard)
    qtbot.addWidget(wiz)
    qtbot.waitExposed(wiz)

    # 1. Meters
    qtbot.waitUntil(lambda: wiz.meters_page.loaded, timeout=5000)
    assert not wiz.button(QWizard.WizardButton.NextButton).isEnabled()
    wiz.meters_page.set_checked("M01")
    wiz.meters_page.set_checked("M02")
    assert [m.meter_id for m in wiz.meters()] == ["M01", "M02"]
    shot(wiz, "calibration_wizard_1_meters.png")
    wiz.next()
    # 2. Method: weighed milk, kg, density 1.032, milkings since the test began
    page2 = wiz.method_page
    assert page2.method() == "weighed_milk" and page2.reference_unit() == "kg"
    assert page2.density.value() == pytest.approx(DENSITY)
    page2.set_since(started)
    shot(wiz, "calibration_wizard_2_method.png")
    wiz.next()
    # 3. Readings: the recorded milkings appear; type each cow's weighed milk in kg
    page3 = wiz.readings_page
    qtbot.waitUntil(lambda: len(page3.milkings) == 8, timeout=5000)
    assert not wiz.button(QWizard.WizardButton.NextButton).isEnabled()
    for meter_id in ("M01", "M02"):
        for rec, tru in zip(rec_by_meter[meter_id], truth_by_meter[meter_id], strict=True):
            if rec.key != reattached:
                page3.set_reference(rec.key, f"{tru.actual_yield_l * DENSITY:.3f}")
    row = page3._row_of(reattached)
    assert cell_text(page3.table, row, page3.C_NOTE) == "cluster re-attached"
    m1, m2 = page3.outcomes["M01"], page3.outcomes["M02"]
    assert m1.n == 3 and m2.n == 4  # the re-attached milking is left out
    assert m1.mean_deviation_pct == pytest.approx(4.0, abs=0.05)
    assert m2.mean_deviation_pct == pytest.approx(-3.0, abs=0.05)
    assert m1.sd_deviation_pct is not None and m1.sd_deviation_pct < 0.1
    assert (m1.result, m2.result) == ("adjusted", "adjusted")
    assert cell_text(page3.summary, 0, 7) == "ADJUST factor"
    assert wiz.button(QWizard.WizardButton.NextButton).isEnabled()
    shot(wiz, "calibration_wizard_3_readings.png")
    wiz.next()
    # 4. Conductivity against a 5.00 mS/cm solution on M01 only
    page4 = wiz.conductivity_page
    page4.enabled.setChecked(True)
    page4.set_values("M01", 5.0, 4.85)
    assert cell_text(page4.table, 0, 3) == "+0.15"
    shot(wiz, "calibration_wizard_4_conductivity.png")
    wiz.next()
    # 5. Review and save
    page5 = wiz.review_page
    assert [p.meter.meter_id for p in page5.plans] == ["M01", "M02"]
    assert not wiz.button(QWizard.WizardButton.FinishButton).isEnabled()
    shot(wiz, "calibration_wizard_5_review.png")
    with qtbot.waitSignal(wiz.saved, timeout=5000) as saved:
        qtbot.mouseClick(page5.save_button, Qt.MouseButton.LeftButton)
    records = {r.meter_id: r for r in saved.args[0]}
    assert wiz.button(QWizard.WizardButton.FinishButton).isEnabled()
    shot(wiz, "calibration_wizard_6_saved.png")
    for meter_id, err in (("M01", 4.0), ("M02", -3.0)):
        r = records[meter_id]
        assert r.performed_by == TECHNICIAN and r.method == "weighed_milk"
        assert r.old_factor == 1.0
        # The factor the wizard proposed corrects the meter's true error to within 0.5 %.
        assert abs(r.new_factor * (1 + err / 100) - 1.0) < 0.005
        assert rig.runtime.factors(meter_id) == r.new_factor
    assert records["M01"].conductivity_offset_ms_cm == pytest.approx(0.15)
    assert records["M02"].conductivity_offset_ms_cm is None
    assert len(records["M01"].readings) == 3
    assert reattached not in {x["session_key"] for x in records["M01"].readings}
    with rig.db.read() as tx:
        audit = tx.scalars(select(AuditEntry).where(AuditEntry.action == "calibration")).all()
    assert sorted(a.target for a in audit) == ["meter:M01", "meter:M02"]
    assert {a.actor for a in audit} == {TECHNICIAN}

    # The pollers use the new factors at once: the next cows are recorded true.
    after = now_utc()
    truth2 = milk(rig, cows=3, seed=22)
    recorded2 = by_meter(CalibrationStore(rig.db).test_milkings(list(ERRORS_PCT), after))
    for tru in truth2:
        (rec,) = recorded2[tru.meter_id]
        if tru.meter_id in ("M01", "M02"):
            assert rec.yield_l == pytest.approx(tru.actual_yield_l, rel=0.005)
    wiz.close()


def test_saving_after_the_pin_lock_expired_asks_for_the_pin_again(qtbot, rig: Rig, tmp_path):
    clock = [0.0]
    access = AccessControl(
        rig.access.users, AccessSettings(lock_after_s=60), clock=lambda: clock[0]
    )
    asked: list[str] = []
    wiz = CalibrationWizard(
        rig.db,
        rig.config,
        rig.tasks,
        access=access,
        ask_pin=lambda action, then: asked.append(action),
        since=now_utc(),
    )
    qtbot.addWidget(wiz)
    access.unlock(TECHNICIAN, TECHNICIAN_PIN)
    clock[0] = 61.0  # the technician went to the tank
    wiz.review_page.plans = []
    wiz.review_page.save()
    assert asked == ["calibrate"]
    assert wiz.review_page.records is None
