"""The audit log: every change lands in it, nothing changes without a PIN, nobody edits it,
and a supervisor reads and exports it. Real SQLite file, real recorder, real triggers."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from milkconsole.grants import AccessDenied
from milkconsole.reports.audit import CSV_COLUMNS, export_audit_csv
from milkconsole.store.alerts import AlertError
from milkconsole.store.audit import AuditFilter, audit_vocabulary, query_audit, record_config_change
from milkconsole.store.schema import AlertRow
from milkconsole.store.sessions import SessionStore
from milkconsole.supervision.alerts import acknowledge_alert, resolve_alert
from milkconsole.technician.calibration import (
    CalibrationReading,
    CalibrationSettings,
    evaluate,
    save_calibration,
)
from milkconsole.technician.diagnostics import EquipmentFinding, raise_equipment_alerts
from tests.helpers.tech_helpers import FARM, TechDb, record_sessions, tech_db


def equipment_alert(t: TechDb, meter_id: str = "M01") -> int:
    finding = EquipmentFinding(
        meter_id, 1, "vacuum_low", 38.0, 42.0, 50.0, "kPa", datetime.now(UTC)
    )
    (key,) = raise_equipment_alerts(t.db, [finding], FARM)
    with t.db.read() as tx:
        alert_id = tx.scalar(select(AlertRow.id).where(AlertRow.key == key))
    assert alert_id is not None
    return alert_id


def calibrate(t: TechDb, meter_id: str) -> None:
    rs = [CalibrationReading(m, r) for m, r in ((10.4, 10.0), (20.8, 20.0), (15.6, 15.0))]
    save_calibration(
        t.db,
        t.technician,
        meter_id=meter_id,
        method="water_rig",
        readings=rs,
        outcome=evaluate(rs, 1.0, CalibrationSettings()),
        settings=CalibrationSettings(),
    )


def test_every_change_at_the_console_is_in_the_audit_log_with_who_and_before_after(
    tmp_path: Path,
) -> None:
    t = tech_db(tmp_path)
    (key,) = record_sessions(t.db, [("M01", 1, 12.0, datetime.now(UTC))])
    sessions = SessionStore(t.db)
    sessions.set_manual_animal(key, None, "operator")
    sessions.mark_reattached(key, "operator")
    calibrate(t, "M02")
    alert_id = equipment_alert(t)
    acknowledge_alert(t.db, t.technician, alert_id)
    resolve_alert(t.db, t.supervisor, alert_id, "pulsator on stall 1 replaced")
    record_config_change(
        t.db, t.technician, "calibration.equipment", {"vacuum_min_kpa": 42}, {"vacuum_min_kpa": 41}
    )
    rows = list(reversed(query_audit(t.db, t.supervisor)))
    assert [(r.actor, r.role, r.action) for r in rows] == [
        ("Sue", "supervisor", "user_add"),
        ("Sue", "supervisor", "user_add"),
        ("operator", None, "manual_id"),
        ("operator", None, "reattached"),
        ("Tom", "technician", "calibration"),
        ("Tom", "technician", "alert_acknowledge"),
        ("Sue", "supervisor", "alert_resolve"),
        ("Tom", "technician", "config_change"),
    ]
    ack, res = rows[5], rows[6]
    assert ack.target.startswith(f"alert:{FARM}-EQ-M01-vacuum_low-")
    assert ack.before == {"state": "open", "severity": "warning", "note": None}
    assert ack.after == {"state": "acknowledged", "severity": "warning", "note": None}
    assert res.after["state"] == "resolved"
    assert res.after["note"] == "pulsator on stall 1 replaced"
    assert rows[7].target == "config:calibration.equipment"
    assert rows[7].before == {"vacuum_min_kpa": 42} and rows[7].after == {"vacuum_min_kpa": 41}
    assert all(r.at.tzinfo is not None for r in rows)
    with t.db.read() as tx:
        alert = tx.get(AlertRow, alert_id)
        assert alert is not None
        assert (alert.state, alert.acknowledged_by, alert.resolved_by) == (
            "resolved",
            "Tom",
            "Sue",
        )


def test_no_alert_or_setting_changes_without_a_pin_and_nothing_is_logged_for_the_attempt(
    tmp_path: Path,
) -> None:
    t = tech_db(tmp_path)
    alert_id = equipment_alert(t)
    before = len(query_audit(t.db, t.supervisor))
    with pytest.raises(AccessDenied, match="acknowledge alerts"):
        acknowledge_alert(t.db, None, alert_id)
    with pytest.raises(AccessDenied, match="resolve alerts"):
        resolve_alert(t.db, None, alert_id, "fixed")
    with pytest.raises(AccessDenied, match="change settings"):
        record_config_change(t.db, None, "calibration", 1, 2)
    with pytest.raises(AlertError, match="needs a note"):
        resolve_alert(t.db, t.supervisor, alert_id, "   ")
    with t.db.read() as tx:
        alert = tx.get(AlertRow, alert_id)
        assert alert is not None and alert.state == "open" and alert.acknowledged_by is None
    assert len(query_audit(t.db, t.supervisor)) == before


def test_the_audit_log_refuses_updates_and_deletes_even_from_outside_the_console(
    tmp_path: Path,
) -> None:
    t = tech_db(tmp_path)
    con = sqlite3.connect(t.db.path)
    try:
        for sql in (
            "UPDATE audit_log SET actor = 'Mallory'",
            "DELETE FROM audit_log",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                con.execute(sql)
    finally:
        con.close()
    assert {r.actor for r in query_audit(t.db, t.supervisor)} == {"Sue"}


def test_only_a_supervisor_reads_or_exports_the_audit_log(tmp_path: Path) -> None:
    t = tech_db(tmp_path)
    for grant in (None, t.technician):
        with pytest.raises(AccessDenied, match="supervisor PIN"):
            query_audit(t.db, grant)
        with pytest.raises(AccessDenied, match="supervisor PIN"):
            export_audit_csv(t.db, grant, io.StringIO())


def test_audit_filters_by_actor_action_target_prefix_and_time(tmp_path: Path) -> None:
    t = tech_db(tmp_path)
    calibrate(t, "M01")
    calibrate(t, "M02")
    record_config_change(t.db, t.technician, "calibration_x", None, 1)
    got = query_audit(t.db, t.supervisor, AuditFilter(target="meter:M0"))
    assert [r.target for r in got] == ["meter:M02", "meter:M01"]
    # '_' is a literal in a prefix, not LIKE's any-character.
    assert query_audit(t.db, t.supervisor, AuditFilter(target="config:calibration_")) != []
    assert query_audit(t.db, t.supervisor, AuditFilter(target="config:calibrationX")) == []
    assert {r.action for r in query_audit(t.db, t.supervisor, AuditFilter(actor="Tom"))} == {
        "calibration",
        "config_change",
    }
    future = datetime.now(UTC) + timedelta(minutes=1)
    assert query_audit(t.db, t.supervisor, AuditFilter(since=future)) == []
    assert len(query_audit(t.db, t.supervisor, AuditFilter(limit=2))) == 2
    actions, actors = audit_vocabulary(t.db, t.supervisor)
    assert actions == ["calibration", "config_change", "user_add"]
    assert actors == ["Sue", "Tom"]


def test_csv_export_holds_every_row_oldest_first_and_is_itself_recorded(tmp_path: Path) -> None:
    t = tech_db(tmp_path)
    calibrate(t, "M03")
    out = io.StringIO(newline="")
    n = export_audit_csv(t.db, t.supervisor, out)
    assert n == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["action"] for r in rows] == ["user_add", "user_add", "calibration"]
    assert rows[2]["at"].endswith("Z") and rows[2]["actor"] == "Tom"
    after = json.loads(rows[2]["after"])
    assert after["calibration_factor"] == pytest.approx(45.0 / 46.8)
    assert json.loads(rows[2]["before"])["calibration_factor"] == 1.0
    latest = query_audit(t.db, t.supervisor, AuditFilter(limit=1))[0]
    assert (latest.actor, latest.action, latest.after["rows"]) == ("Sue", "audit_export", 3)
