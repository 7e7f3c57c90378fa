"""Calibration maths, records, due dates and the bulk-tank check, on a real SQLite file."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from milkconsole.errors import ConfigError
from milkconsole.grants import AccessDenied
from milkconsole.store.calibrations import CalibrationError, CalibrationStore
from milkconsole.store.schema import AuditEntry
from milkconsole.store.sessions import SessionStore
from milkconsole.technician.calibration import (
    CalibrationReading,
    CalibrationSettings,
    ConductivityCheck,
    add_months,
    due_meters,
    evaluate,
    excluded_reason,
    new_factor,
    reconcile_bulk_tank,
    reference_litres,
    save_calibration,
    tank_outcome,
)
from tests.helpers.tech_helpers import parlour_config, record_sessions, tech_db

SETTINGS = CalibrationSettings()


def readings(measured: list[float], refs: list[float]) -> list[CalibrationReading]:
    return [CalibrationReading(m, r) for m, r in zip(measured, refs, strict=True)]


# -- maths ------------------------------------------------------------------------------------


def test_meter_reading_4_pct_high_gets_a_factor_that_brings_it_back_to_the_reference() -> None:
    out = evaluate(readings([10.4, 20.8, 15.6], [10.0, 20.0, 15.0]), 1.0, SETTINGS)
    assert out.deviations_pct == pytest.approx((4.0, 4.0, 4.0))
    assert out.mean_deviation_pct == pytest.approx(4.0)
    assert out.sd_deviation_pct == pytest.approx(0.0, abs=1e-9)
    assert not out.mean_ok and out.sd_ok
    assert out.result == "adjusted"
    assert out.new_factor == pytest.approx(45.0 / 46.8)
    assert out.correction_pct == pytest.approx(-3.846, abs=1e-3)


def test_new_factor_multiplies_the_old_one_because_readings_already_carry_it() -> None:
    # Recorded with factor 1.02: the meter's own counts were measured / 1.02.
    measured = [10.2 * 1.03, 12.0 * 1.03, 8.0 * 1.03]
    refs = [10.2 / 1.02, 12.0 / 1.02, 8.0 / 1.02]
    out = evaluate(readings(measured, refs), 1.02, SETTINGS)
    raw = [m / 1.02 for m in measured]
    assert sum(r * out.new_factor for r in raw) == pytest.approx(sum(refs), rel=1e-12)
    assert out.new_factor == pytest.approx(1.02 * sum(refs) / sum(measured))


@given(
    old=st.floats(0.8, 1.2),
    error_pct=st.floats(-8.0, 8.0),
    truths=st.lists(st.floats(2.0, 30.0), min_size=3, max_size=12),
)
def test_any_true_error_is_corrected_exactly_by_the_new_factor(
    old: float, error_pct: float, truths: list[float]
) -> None:
    raw = [t * (1 + error_pct / 100) for t in truths]
    measured = [old * r for r in raw]
    f = new_factor(old, sum(measured), sum(truths))
    assert sum(f * r for r in raw) == pytest.approx(sum(truths), rel=1e-9)


def test_mean_and_sample_sd_of_deviations_are_reported_and_scatter_fails_the_meter() -> None:
    out = evaluate(readings([10.3, 19.6, 15.0], [10.0, 20.0, 15.0]), 1.0, SETTINGS)
    assert out.deviations_pct == pytest.approx((3.0, -2.0, 0.0))
    assert out.mean_deviation_pct == pytest.approx(1.0 / 3.0)
    assert out.sd_deviation_pct == pytest.approx(statistics.stdev([3.0, -2.0, 0.0]))
    assert out.sd_deviation_pct == pytest.approx(2.5166, abs=1e-4)
    assert out.mean_ok and not out.sd_ok
    # A factor cannot fix scatter: the meter fails and keeps its factor.
    assert out.result == "fail"
    assert out.new_factor == 1.0
    assert "scatter" in out.problems[0]


def test_limits_are_inclusive_and_configurable() -> None:
    at_limit = evaluate(readings([10.2, 10.2, 10.2], [10.0, 10.0, 10.0]), 1.0, SETTINGS)
    assert at_limit.mean_deviation_pct == pytest.approx(2.0)
    assert at_limit.mean_ok and at_limit.result == "pass"
    strict = CalibrationSettings(mean_limit_pct=1.0)
    assert evaluate(readings([10.2] * 3, [10.0] * 3), 1.0, strict).result == "adjusted"


def test_fewer_than_three_readings_give_no_result_and_cannot_be_saved(tmp_path: Path) -> None:
    out = evaluate(readings([10.4, 20.8], [10.0, 20.0]), 1.0, SETTINGS)
    assert not out.enough and out.result is None
    assert out.new_factor == 1.0
    t = tech_db(tmp_path)
    with pytest.raises(CalibrationError, match="at least 3"):
        save_calibration(
            t.db,
            t.technician,
            meter_id="M01",
            method="weighed_milk",
            readings=readings([10.4, 20.8], [10.0, 20.0]),
            outcome=out,
            settings=SETTINGS,
        )


def test_a_correction_beyond_ten_percent_is_refused_as_a_broken_meter() -> None:
    out = evaluate(readings([11.5, 23.0, 17.25], [10.0, 20.0, 15.0]), 1.0, SETTINGS)
    assert out.result == "fail" and out.new_factor == 1.0
    assert "beyond" in out.problems[0]


def test_weighed_milk_is_converted_with_the_milk_density_and_water_with_waters() -> None:
    assert reference_litres(10.32, "kg", "weighed_milk", SETTINGS) == pytest.approx(10.0)
    assert reference_litres(9.98, "kg", "water_rig", SETTINGS) == pytest.approx(10.0)
    assert reference_litres(10.0, "L", "weighed_milk", SETTINGS) == 10.0
    dense = CalibrationSettings(milk_density_kg_l=1.030)
    assert reference_litres(10.30, "kg", "weighed_milk", dense) == pytest.approx(10.0)
    with pytest.raises(CalibrationError, match="positive"):
        reference_litres(0.0, "kg", "weighed_milk", SETTINGS)


def test_conductivity_offset_is_reference_minus_reading() -> None:
    assert ConductivityCheck(5.0, 4.8).offset_ms_cm == pytest.approx(0.2)
    with pytest.raises(CalibrationError, match="0-30"):
        ConductivityCheck(5.0, float("nan"))


def test_add_months_keeps_the_day_or_takes_the_months_last() -> None:
    assert add_months(datetime(2025, 3, 14, tzinfo=UTC), 12) == datetime(2026, 3, 14, tzinfo=UTC)
    assert add_months(datetime(2024, 2, 29, tzinfo=UTC), 12) == datetime(2025, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2025, 1, 31, tzinfo=UTC), 1) == datetime(2025, 2, 28, tzinfo=UTC)


def test_settings_come_from_the_calibration_table_and_bad_keys_are_named() -> None:
    cfg = parlour_config(
        extra={"calibration": {"mean_limit_pct": 1.5, "equipment": {"hold_s": 5.0}}}
    )
    assert CalibrationSettings.from_parlour(cfg).mean_limit_pct == 1.5
    bad = parlour_config(extra={"calibration": {"mean_limit": 1.5}})
    with pytest.raises(ConfigError, match=r"calibration\.mean_limit: unknown key"):
        CalibrationSettings.from_parlour(bad)
    worse = parlour_config(extra={"calibration": {"milk_density_kg_l": 2.0}})
    with pytest.raises(ConfigError, match=r"milk_density_kg_l must be 0\.9-1\.2"):
        CalibrationSettings.from_parlour(worse)


# -- records ----------------------------------------------------------------------------------


def test_saving_a_calibration_updates_the_meter_and_records_who_what_and_when(
    tmp_path: Path,
) -> None:
    t = tech_db(tmp_path)
    store = CalibrationStore(t.db)
    rs = [
        CalibrationReading(10.4, 10.0, "k1", 10.32, "kg"),
        CalibrationReading(20.8, 20.0, "k2", 20.64, "kg"),
        CalibrationReading(15.6, 15.0, "k3", 15.48, "kg"),
    ]
    out = evaluate(rs, 1.0, SETTINGS)
    when = datetime(2026, 5, 4, 6, 30, tzinfo=UTC)
    rec = save_calibration(
        t.db,
        t.technician,
        meter_id="M02",
        method="weighed_milk",
        readings=rs,
        outcome=out,
        settings=SETTINGS,
        conductivity=ConductivityCheck(5.0, 4.9),
        now=when,
    )
    assert rec.performed_by == "Tom" and rec.performed_at == when
    assert rec.old_factor == 1.0 and rec.new_factor == pytest.approx(45.0 / 46.8)
    assert rec.result == "adjusted"
    assert rec.next_due_at == datetime(2027, 5, 4, 6, 30, tzinfo=UTC)
    assert [r["session_key"] for r in rec.readings] == ["k1", "k2", "k3"]
    assert rec.references[0] == {"value": 10.32, "unit": "kg", "litres": 10.0}
    assert rec.conductivity_offset_ms_cm == pytest.approx(0.1)
    m = store.meters(["M02"])[0]
    assert m.calibration_factor == pytest.approx(45.0 / 46.8)
    assert m.conductivity_offset_ms_cm == pytest.approx(0.1)
    assert m.calibration_due_at == rec.next_due_at
    assert m.last_result == "adjusted"
    with t.db.read() as tx:
        audit = tx.scalars(select(AuditEntry).where(AuditEntry.action == "calibration")).all()
    assert len(audit) == 1
    a = audit[0]
    assert (a.actor, a.role, a.target) == ("Tom", "technician", "meter:M02")
    assert a.before["calibration_factor"] == 1.0
    assert a.after["calibration_factor"] == pytest.approx(45.0 / 46.8)
    assert a.after["calibration_id"] == rec.id


def test_nobody_but_a_technician_can_change_a_calibration_factor(tmp_path: Path) -> None:
    t = tech_db(tmp_path)
    store = CalibrationStore(t.db)
    rs = readings([10.4, 20.8, 15.6], [10.0, 20.0, 15.0])
    out = evaluate(rs, 1.0, SETTINGS)
    kwargs = {"meter_id": "M01", "method": "water_rig", "readings": rs, "outcome": out}
    with pytest.raises(AccessDenied, match="technician PIN"):
        save_calibration(t.db, None, settings=SETTINGS, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(AccessDenied, match="may not calibrate"):
        save_calibration(t.db, t.supervisor, settings=SETTINGS, **kwargs)  # type: ignore[arg-type]
    t.users.remove("Tom", by=t.supervisor)
    with pytest.raises(AccessDenied, match="no longer a technician"):
        save_calibration(t.db, t.technician, settings=SETTINGS, **kwargs)  # type: ignore[arg-type]
    assert store.meters(["M01"])[0].calibration_factor == 1.0
    assert store.history() == []


def test_a_factor_changed_since_the_test_began_refuses_the_save(tmp_path: Path) -> None:
    t = tech_db(tmp_path)
    rs = readings([10.4, 20.8, 15.6], [10.0, 20.0, 15.0])
    first = evaluate(rs, 1.0, SETTINGS)
    save_calibration(
        t.db,
        t.technician,
        meter_id="M01",
        method="water_rig",
        readings=rs,
        outcome=first,
        settings=SETTINGS,
    )
    with pytest.raises(CalibrationError, match="changed"):
        save_calibration(
            t.db,
            t.technician,
            meter_id="M01",
            method="water_rig",
            readings=rs,
            outcome=first,
            settings=SETTINGS,
        )


def test_a_failed_meter_keeps_its_factor_and_stays_due(tmp_path: Path) -> None:
    t = tech_db(tmp_path)
    rs = readings([10.3, 19.6, 15.0], [10.0, 20.0, 15.0])
    now = datetime.now(UTC)
    rec = save_calibration(
        t.db,
        t.technician,
        meter_id="M03",
        method="weighed_milk",
        readings=rs,
        outcome=evaluate(rs, 1.0, SETTINGS),
        settings=SETTINGS,
        now=now,
    )
    assert rec.result == "fail" and rec.new_factor == rec.old_factor == 1.0
    due = {d.meter_id: d for d in due_meters(t.db, now + timedelta(seconds=1))}
    assert due["M03"].status == "overdue"


def test_test_milkings_list_reattached_and_reset_sessions_as_excluded(tmp_path: Path) -> None:
    t = tech_db(tmp_path)
    start = datetime.now(UTC) - timedelta(hours=1)
    keys = record_sessions(
        t.db, [("M01", 1, 12.0 + i, start + timedelta(minutes=10 * i)) for i in range(4)]
    )
    SessionStore(t.db).mark_reattached(keys[1], "operator")
    milkings = CalibrationStore(t.db).test_milkings(["M01"], start - timedelta(minutes=1))
    assert [m.key for m in milkings] == keys
    assert [excluded_reason(m) for m in milkings] == [None, "cluster re-attached", None, None]
    assert [m.yield_l for m in milkings] == [12.0, 13.0, 14.0, 15.0]


# -- due dates --------------------------------------------------------------------------------


def test_due_meters_lists_overdue_then_never_then_due_soon(tmp_path: Path) -> None:
    t = tech_db(tmp_path)
    store = CalibrationStore(t.db)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    rs = readings([10.0, 20.0, 15.0], [10.0, 20.0, 15.0])

    def calibrate(meter_id: str, at: datetime) -> None:
        factor = store.meters([meter_id])[0].calibration_factor
        save_calibration(
            t.db,
            t.technician,
            meter_id=meter_id,
            method="water_rig",
            readings=rs,
            outcome=evaluate(rs, factor, SETTINGS),
            settings=SETTINGS,
            now=at,
        )

    calibrate("M01", now - timedelta(days=400))  # due 35 days ago
    calibrate("M02", now - timedelta(days=350))  # due in about two weeks
    calibrate("M03", now - timedelta(days=30))  # fine for 11 months
    due = due_meters(t.db, now, warn_days=30)
    assert [(d.meter_id, d.status) for d in due] == [
        ("M01", "overdue"),
        ("M04", "never"),
        ("M02", "due_soon"),
    ]
    assert due[0].days_left is not None and due[0].days_left < -30
    assert "overdue" in due[0].text and "never" in due[1].text
    assert [d.meter_id for d in due_meters(t.db, now, meter_ids=["M02", "M03"])] == ["M02"]


# -- bulk tank --------------------------------------------------------------------------------


def test_bulk_tank_finds_the_meter_that_reads_high_and_proposes_its_factor(
    tmp_path: Path,
) -> None:
    t = tech_db(tmp_path)
    rng = random.Random(7)
    errors = {"M01": 0.0, "M02": 6.0, "M03": 0.0, "M04": -0.5}
    start = datetime.now(UTC) - timedelta(days=7)
    milkings = []
    tank = 0.0
    for i in range(120):
        for stall, (meter_id, err) in enumerate(errors.items(), start=1):
            truth = max(4.0, rng.gauss(14.0, 2.0))
            tank += truth
            ended = start + timedelta(minutes=60 * i + stall)
            milkings.append((meter_id, stall, truth * (1 + err / 100), ended))
    record_sessions(t.db, milkings)
    rec = reconcile_bulk_tank(
        t.db, start=start, end=datetime.now(UTC), tank_l=tank, settings=SETTINGS
    )
    assert rec.sessions == 480
    assert rec.parlour_error_pct == pytest.approx((1.06 + 1 + 1 + 0.995) / 4 * 100 - 100, abs=0.6)
    rows = {r.meter_id: r for r in rec.rows}
    assert [m for m, r in rows.items() if r.drifting] == ["M02"]
    m2 = rows["M02"]
    assert m2.error_pct == pytest.approx(6.0, abs=2 * (m2.se_pct or 0))
    assert m2.proposed_factor == pytest.approx(1 / 1.06, rel=0.03)
    assert rows["M01"].proposed_factor is None
    out = tank_outcome(m2, SETTINGS)
    saved = save_calibration(
        t.db,
        t.technician,
        meter_id="M02",
        method="bulk_tank",
        readings=[CalibrationReading(out.measured_sum_l, out.reference_sum_l)],
        outcome=out,
        settings=SETTINGS,
    )
    assert saved.method == "bulk_tank" and saved.new_factor == pytest.approx(m2.proposed_factor)


def test_bulk_tank_refuses_an_empty_period_or_tank() -> None:
    now = datetime.now(UTC)
    with pytest.raises(CalibrationError, match="end after"):
        reconcile_bulk_tank(None, start=now, end=now, tank_l=1.0, settings=SETTINGS)  # type: ignore[arg-type]
    with pytest.raises(CalibrationError, match="tank volume"):
        reconcile_bulk_tank(
            None,  # type: ignore[arg-type]
            start=now - timedelta(days=1),
            end=now,
            tank_l=0.0,
            settings=SETTINGS,
        )
