"""Calibrations in the store: the meters as a calibration sees them, the recorded milkings that
may serve as test milkings, the calibration records, and saving one.

Saving is one write transaction: the technician's grant checked, the record stored, the meter's
factor (and conductivity offset) and due date changed, the change queued for Odoo and audited.
The maths that decides the new factor is `milkconsole.technician.calibration`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from milkconsole.errors import MilkConsoleError
from milkconsole.grants import Grant
from milkconsole.meters.events import FINISHED_STATES
from milkconsole.store.db import Database
from milkconsole.store.outbound import queue_meter_calibrated
from milkconsole.store.schema import Animal, Calibration, Meter, SessionRow, append_audit
from milkconsole.store.sessions import SessionRecord, iso_z, record_from_row
from milkconsole.store.users import check_grant


class CalibrationError(MilkConsoleError):
    """A calibration was refused (too few readings, bad reference, meter changed meanwhile)."""


@dataclass(frozen=True, slots=True)
class MeterCalibrationState:
    """One meter as the calibration sees it: factor, offset, due date, last calibration."""

    meter_id: str
    name: str
    stall: int
    profile: str
    calibration_factor: float
    conductivity_offset_ms_cm: float
    calibration_due_at: datetime | None
    last_calibrated_at: datetime | None = None
    last_result: str | None = None


@dataclass(frozen=True, slots=True)
class CalibrationRecord:
    """One stored calibration (a copy of its row)."""

    id: int
    meter_id: str
    performed_at: datetime
    performed_by: str
    method: str
    readings: Any
    references: Any
    old_factor: float
    new_factor: float
    mean_deviation_pct: float | None
    sd_deviation_pct: float | None
    result: str
    conductivity_offset_ms_cm: float | None
    next_due_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewCalibration:
    """A calibration to store (`milkconsole.technician.calibration.save_calibration` makes it):
    the meter's new factor (and conductivity offset), the test's figures and when it is next due.
    `readings` and `references` are stored as they are (JSON)."""

    meter_id: str
    method: str
    performed_at: datetime
    old_factor: float
    new_factor: float
    mean_deviation_pct: float | None
    sd_deviation_pct: float | None
    result: str
    readings: Sequence[Mapping[str, Any]]
    references: Sequence[Mapping[str, Any]]
    conductivity_offset_ms_cm: float | None
    next_due_at: datetime


def _record(row: Calibration) -> CalibrationRecord:
    return CalibrationRecord(
        id=row.id,
        meter_id=row.meter_id,
        performed_at=row.performed_at,
        performed_by=row.performed_by,
        method=row.method,
        readings=row.readings,
        references=row.references,
        old_factor=row.old_factor,
        new_factor=row.new_factor,
        mean_deviation_pct=row.mean_deviation_pct,
        sd_deviation_pct=row.sd_deviation_pct,
        result=row.result,
        conductivity_offset_ms_cm=row.conductivity_offset_ms_cm,
        next_due_at=row.next_due_at,
    )


class CalibrationStore:
    """Meters, their test milkings and calibration records in the local database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def meters(self, meter_ids: Collection[str] | None = None) -> list[MeterCalibrationState]:
        """Meters by stall (only `meter_ids` when given), with their latest calibration."""
        with self._db.read() as tx:
            query = select(Meter).order_by(Meter.stall)
            if meter_ids is not None:
                query = query.where(Meter.id.in_(list(meter_ids)))
            out = []
            for m in tx.scalars(query):
                last = tx.scalar(
                    select(Calibration)
                    .where(Calibration.meter_id == m.id)
                    .order_by(Calibration.performed_at.desc(), Calibration.id.desc())
                    .limit(1)
                )
                out.append(
                    MeterCalibrationState(
                        meter_id=m.id,
                        name=m.name,
                        stall=m.stall,
                        profile=m.profile,
                        calibration_factor=m.calibration_factor,
                        conductivity_offset_ms_cm=m.conductivity_offset_ms_cm,
                        calibration_due_at=m.calibration_due_at,
                        last_calibrated_at=last.performed_at if last else None,
                        last_result=last.result if last else None,
                    )
                )
            return out

    def test_milkings(
        self, meter_ids: Collection[str], since: datetime, until: datetime | None = None
    ) -> list[SessionRecord]:
        """Finished sessions of these meters that ended at or after `since`, by stall and then
        oldest first: the recorded milkings that may serve as test milkings (whether one can
        is `technician.calibration.excluded_reason`)."""
        query = (
            select(SessionRow, Animal)
            .outerjoin(Animal, Animal.id == SessionRow.animal_id)
            .where(
                # `column || ''` is SQLite's idiom for "not by this column's index": the
                # ended_at index finds the days asked for, instead of a meter's (or every
                # finished) session of the year being read.
                SessionRow.meter_id.op("||")("").in_(list(meter_ids)),
                SessionRow.state.op("||")("").in_(FINISHED_STATES),
                SessionRow.ended_at >= since,
            )
            .order_by(SessionRow.stall, SessionRow.ended_at)
        )
        if until is not None:
            query = query.where(SessionRow.ended_at <= until)
        with self._db.read() as tx:
            return [record_from_row(row, animal) for row, animal in tx.execute(query)]

    def history(self, meter_id: str | None = None, limit: int = 200) -> list[CalibrationRecord]:
        """Calibrations, newest first (of one meter when given)."""
        query = select(Calibration).order_by(Calibration.performed_at.desc(), Calibration.id.desc())
        if meter_id is not None:
            query = query.where(Calibration.meter_id == meter_id)
        with self._db.read() as tx:
            return [_record(r) for r in tx.scalars(query.limit(limit))]

    def save(self, grant: Grant | None, action: str, entry: NewCalibration) -> CalibrationRecord:
        """Store a calibration and apply it to the meter row, audited, in one transaction.

        Refused (AccessDenied) unless `grant` may do `action`; refused (CalibrationError) when
        the meter's factor is no longer `entry.old_factor` (it changed since the test began).
        """
        with self._db.write() as tx:
            grant = check_grant(tx, grant, action)
            meter = tx.get(Meter, entry.meter_id)
            if meter is None:
                raise CalibrationError(f"no meter {entry.meter_id!r} in the database")
            if not math.isclose(meter.calibration_factor, entry.old_factor, rel_tol=1e-9):
                raise CalibrationError(
                    f"meter {entry.meter_id}: its factor changed to "
                    f"{meter.calibration_factor:.4f} since the test began (at "
                    f"{entry.old_factor:.4f}); run the test again"
                )
            before = {
                "calibration_factor": meter.calibration_factor,
                "conductivity_offset_ms_cm": meter.conductivity_offset_ms_cm,
                "calibration_due_at": iso_z(meter.calibration_due_at)
                if meter.calibration_due_at
                else None,
            }
            row = Calibration(
                meter_id=entry.meter_id,
                performed_at=entry.performed_at,
                performed_by=grant.user,
                method=entry.method,
                readings=list(entry.readings),
                references=list(entry.references),
                old_factor=entry.old_factor,
                new_factor=entry.new_factor,
                mean_deviation_pct=entry.mean_deviation_pct,
                sd_deviation_pct=entry.sd_deviation_pct,
                result=entry.result,
                conductivity_offset_ms_cm=entry.conductivity_offset_ms_cm,
                next_due_at=entry.next_due_at,
            )
            tx.add(row)
            meter.calibration_factor = entry.new_factor
            if entry.conductivity_offset_ms_cm is not None:
                meter.conductivity_offset_ms_cm = entry.conductivity_offset_ms_cm
            meter.calibration_due_at = entry.next_due_at
            tx.flush()
            queue_meter_calibrated(tx, meter)
            append_audit(
                tx,
                actor=grant.user,
                role=grant.role,
                action="calibration",
                target=f"meter:{entry.meter_id}",
                before=before,
                after={
                    "calibration_factor": meter.calibration_factor,
                    "conductivity_offset_ms_cm": meter.conductivity_offset_ms_cm,
                    "calibration_due_at": iso_z(entry.next_due_at),
                    "calibration_id": row.id,
                    "method": entry.method,
                    "result": entry.result,
                },
                at=entry.performed_at,
            )
            return _record(row)
