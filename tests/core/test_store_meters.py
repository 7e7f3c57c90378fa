"""store/meters.py on a real SQLite store: the meters' Odoo ids, last seen, applied calibration."""

from __future__ import annotations

from datetime import UTC, datetime

from milkconsole.store.db import Database
from milkconsole.store.meters import (
    MeterFactors,
    OdooMeter,
    SeenMeter,
    conductivity_offset,
    forget_odoo_ids,
    meter_factors,
    odoo_meters,
    seen_meters,
    set_odoo_ids,
)
from milkconsole.store.schema import Meter
from tests.helpers.odoo_fixtures import METERS, add_meters


def test_odoo_ids_are_read_back_only_for_registered_meters_and_forgotten_at_once(db: Database):
    add_meters(db)
    set_odoo_ids(db, "M01", 11, 21, 31)
    set_odoo_ids(db, "M02", 12, None, None)  # a device without its milk meter yet
    set_odoo_ids(db, "M03", 13, 23, None)  # no milking point
    set_odoo_ids(db, "X99", 1, 2, 3)  # not a meter of this parlour: nothing stored
    assert odoo_meters(db, ["M01", "M02", "M03", "X99"]) == {
        "M01": OdooMeter(11, 21, 31),
        "M03": OdooMeter(13, 23, None),
    }
    with db.write() as tx:
        forget_odoo_ids(tx)
    assert odoo_meters(db, METERS) == {}


def test_seen_meters_are_the_ones_heard_that_odoo_has_as_devices(db: Database):
    add_meters(db)
    seen = datetime(2025, 3, 1, 6, 0, 5, tzinfo=UTC)
    with db.write() as tx:
        for mid in ("M01", "M02"):
            tx.get(Meter, mid).last_seen_at = seen  # type: ignore[union-attr]
    set_odoo_ids(db, "M01", 11, 21, None)
    set_odoo_ids(db, "M03", 13, 23, None)  # in Odoo, never heard
    with db.read() as tx:
        assert seen_meters(tx) == [SeenMeter("M01", 11, seen)]


def test_the_stored_factor_and_offset_of_each_meter(db: Database):
    add_meters(db)
    with db.write() as tx:
        m = tx.get(Meter, "M05")
        assert m is not None
        m.calibration_factor, m.conductivity_offset_ms_cm = 1.04, -0.2
    factors = meter_factors(db)
    assert set(factors) == set(METERS)
    assert factors["M05"] == MeterFactors(1.04, -0.2)
    assert factors["M01"] == MeterFactors(1.0, 0.0)
    assert conductivity_offset(db, "M05") == -0.2
    assert conductivity_offset(db, "X99") is None
