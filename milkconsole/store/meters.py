"""The meters table as the rest of the core needs it: each meter's applied calibration, and the
ids Odoo gave it once registered (`iot.device`, `iot.milk_meter`, milking point).

The rows themselves are written from the config at start (`Recorder.upsert_meters`) and by a
recorded calibration; this module reads them for the pollers and keeps their Odoo ids for the
sync.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from milkconsole.store.db import Database
from milkconsole.store.schema import Meter


@dataclass(frozen=True, slots=True)
class MeterFactors:
    """What a meter's readings are corrected by: yield factor and conductivity offset."""

    calibration_factor: float
    conductivity_offset_ms_cm: float


@dataclass(frozen=True, slots=True)
class OdooMeter:
    """A registered meter's Odoo ids (the point may be missing)."""

    device: int
    meter: int
    point: int | None


@dataclass(frozen=True, slots=True)
class SeenMeter:
    """A meter Odoo has as a device, and when the console last heard it."""

    meter_id: str
    odoo_device_id: int
    last_seen_at: datetime


# -- calibration ---------------------------------------------------------------------------------


def meter_factors(db: Database) -> dict[str, MeterFactors]:
    """Meter id -> its stored factor and offset, for every meter the database has."""
    with db.read() as tx:
        return {
            m.id: MeterFactors(m.calibration_factor, m.conductivity_offset_ms_cm)
            for m in tx.scalars(select(Meter))
        }


def conductivity_offset(db: Database, meter_id: str) -> float | None:
    """The meter's stored conductivity offset (None: no such meter)."""
    with db.read() as tx:
        meter = tx.get(Meter, meter_id)
        return None if meter is None else meter.conductivity_offset_ms_cm


# -- Odoo's ids ----------------------------------------------------------------------------------


def odoo_meters(db: Database, meter_ids: Collection[str]) -> dict[str, OdooMeter]:
    """The Odoo ids stored for these meters, for those registered (device and meter known)."""
    with db.read() as tx:
        return {
            m.id: OdooMeter(m.odoo_device_id, m.odoo_meter_id, m.odoo_point_id)
            for m in tx.scalars(select(Meter).where(Meter.id.in_(meter_ids)))
            if m.odoo_device_id and m.odoo_meter_id
        }


def set_odoo_ids(
    db: Database, meter_id: str, device: int | None, meter: int | None, point: int | None
) -> None:
    """Keep the ids Odoo has the meter under (nothing when the meter is not in the table)."""
    with db.write() as tx:
        row = tx.get(Meter, meter_id)
        if row is not None:
            row.odoo_device_id, row.odoo_meter_id, row.odoo_point_id = device, meter, point


def forget_odoo_ids(tx: Session) -> None:
    """Forget every meter's Odoo ids (the database now syncs with another Odoo)."""
    for m in tx.scalars(select(Meter)):
        m.odoo_device_id = m.odoo_meter_id = m.odoo_point_id = None


def seen_meters(tx: Session) -> list[SeenMeter]:
    """The meters Odoo has as devices that the console has heard, with when it last did."""
    return [
        SeenMeter(m.id, m.odoo_device_id, m.last_seen_at)
        for m in tx.scalars(
            select(Meter).where(Meter.last_seen_at.is_not(None), Meter.odoo_device_id.is_not(None))
        )
        if m.odoo_device_id is not None and m.last_seen_at is not None
    ]
