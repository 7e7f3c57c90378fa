"""Meter calibration: the maths, the settings, saving a calibration, due dates and the bulk tank.

A technician milks N cows (or runs a water rig) through a meter and weighs what really came
through. Each test milking gives a *deviation* ``(measured - reference) / reference * 100``;
the test passes when the mean deviation is within ±`mean_limit_pct` (ICAR: a meter more than
2 % off is second grade) and the standard deviation of the deviations within `sd_limit_pct`.

The new factor. The meter's own count `raw_i` is multiplied by the factor in force, so what the
console recorded is ``measured_i = old_factor * raw_i``. We want ``new_factor * Σ raw_i`` to
equal ``Σ reference_i``, hence::

    new_factor = Σ reference_i / Σ raw_i = old_factor * Σ reference_i / Σ measured_i

(``Σ reference / Σ measured`` is the correction ratio; weighting by yield, as sums do, keeps a
small test milking from moving the factor as much as a large one.)

A factor cannot fix a meter whose readings scatter: when the SD fails, or when the correction
would be larger than `max_correction_pct`, the result is ``fail``, the factor is left as it is
and the meter stays due. Otherwise the result is ``pass`` (as found within the limits; the
factor is still fine-tuned) or ``adjusted`` (the mean was out, the new factor corrects it).

Conductivity: the meter's raw reading of a reference solution gives an offset
``reference - reading`` (mS/cm), stored with the record. Nothing in the core applies it yet.

Settings (`[calibration]` in the parlour config; every key optional)::

    mean_limit_pct = 2.0        # |mean deviation| allowed
    sd_limit_pct = 2.5          # SD of deviations allowed
    min_readings = 3
    milk_density_kg_l = 1.032   # weighed milk: kg -> L
    water_density_kg_l = 0.998  # weighed water on a test rig: kg -> L
    interval_months = 12        # next check due
    warn_days = 30              # "due soon" this long before
    max_correction_pct = 10.0   # a bigger correction means a broken meter, not a factor
"""

from __future__ import annotations

import calendar
import math
import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from milkconsole.config_tables import config_table, settings_from_table
from milkconsole.grants import Grant
from milkconsole.store.calibrations import (
    CalibrationError,
    CalibrationRecord,
    CalibrationStore,
    NewCalibration,
)
from milkconsole.store.db import Database
from milkconsole.store.sessions import SessionRecord, iso_z

if TYPE_CHECKING:
    from milkconsole.config import ParlourConfig

Method = Literal["weighed_milk", "water_rig", "bulk_tank"]
METHODS: dict[str, str] = {
    "weighed_milk": "Weighed reference: the milk of each test cow caught in a bucket and weighed",
    "water_rig": "Water test rig: a known volume of water run through the meter",
    "bulk_tank": "Bulk tank: the meters' sum over a period against the tank",
}
ReferenceUnit = Literal["kg", "L"]
Result = Literal["pass", "adjusted", "fail"]

# Sessions a calibration cannot trust: the count restarted, the session was split, or the
# meter went quiet and never came back.
UNTRUSTED_FLAGS = {
    "meter_reset": "meter counter reset",
    "rfid_split": "split by a new tag",
    "comm_timeout": "meter stopped answering",
}
FACTOR_RANGE = (0.5, 1.5)  # what the config file accepts for a factor


@dataclass(frozen=True, slots=True)
class CalibrationSettings:
    """Limits and constants of a calibration; see the module docstring for the config keys."""

    mean_limit_pct: float = 2.0
    sd_limit_pct: float = 2.5
    min_readings: int = 3
    milk_density_kg_l: float = 1.032
    water_density_kg_l: float = 0.998
    interval_months: int = 12
    warn_days: int = 30
    max_correction_pct: float = 10.0

    def __post_init__(self) -> None:
        for name in ("mean_limit_pct", "sd_limit_pct", "max_correction_pct"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0, not {getattr(self, name)}")
        if self.min_readings < 2:
            # One reading has no standard deviation.
            raise ValueError(f"min_readings must be at least 2, not {self.min_readings}")
        for name in ("milk_density_kg_l", "water_density_kg_l"):
            if not 0.9 <= getattr(self, name) <= 1.2:
                raise ValueError(f"{name} must be 0.9-1.2 kg/L, not {getattr(self, name)}")
        if not 1 <= self.interval_months <= 60:
            raise ValueError(f"interval_months must be 1-60, not {self.interval_months}")
        if self.warn_days < 0:
            raise ValueError(f"warn_days must be 0 or more, not {self.warn_days}")

    @classmethod
    def from_parlour(cls, config: ParlourConfig) -> CalibrationSettings:
        """`[calibration]` of a parlour config (its sub-tables belong to other readers)."""
        table = config_table(config, "calibration")
        return settings_from_table(
            cls(), table, config.source, "calibration", skip=("equipment", "access")
        )


# -- the maths --------------------------------------------------------------------------------


def add_months(at: datetime, months: int) -> datetime:
    """`at` plus whole calendar months (31 Jan + 1 month = 28/29 Feb)."""
    index = at.month - 1 + months
    year, month = at.year + index // 12, index % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


def reference_litres(
    value: float, unit: ReferenceUnit, method: Method, settings: CalibrationSettings
) -> float:
    """A typed reference in litres: kg of milk (or of water on a rig) over its density."""
    if not math.isfinite(value) or value <= 0:
        raise CalibrationError(f"reference {value!r} {unit}: must be a positive number")
    if unit == "L":
        return value
    if unit != "kg":
        raise CalibrationError(f"reference unit {unit!r}: use kg or L")
    density = settings.water_density_kg_l if method == "water_rig" else settings.milk_density_kg_l
    return value / density


def deviation_pct(measured_l: float, reference_l: float) -> float:
    """How far the meter was off, in % of the reference (+ reads high)."""
    if not reference_l > 0:
        raise CalibrationError(f"reference {reference_l!r} L: must be above 0")
    return (measured_l - reference_l) / reference_l * 100.0


def new_factor(old_factor: float, measured_sum_l: float, reference_sum_l: float) -> float:
    """The factor that makes the same raw counts add up to the reference (module docstring)."""
    if not measured_sum_l > 0 or not reference_sum_l > 0:
        raise CalibrationError("measured and reference totals must both be above 0")
    return old_factor * reference_sum_l / measured_sum_l


@dataclass(frozen=True, slots=True)
class CalibrationReading:
    """One test milking: what the meter recorded and what was really there (both in L).

    `reference_value`/`reference_unit` are what the technician typed (kept for the record).
    """

    measured_l: float
    reference_l: float
    session_key: str | None = None
    reference_value: float | None = None
    reference_unit: ReferenceUnit = "L"
    ended_at: datetime | None = None

    @property
    def deviation_pct(self) -> float:
        return deviation_pct(self.measured_l, self.reference_l)


@dataclass(frozen=True, slots=True)
class CalibrationOutcome:
    """What a set of test readings says about one meter, and the factor to save."""

    n: int
    deviations_pct: tuple[float, ...]
    mean_deviation_pct: float | None
    sd_deviation_pct: float | None
    measured_sum_l: float
    reference_sum_l: float
    old_factor: float
    proposed_factor: float | None
    correction_pct: float | None
    enough: bool
    mean_ok: bool
    sd_ok: bool
    result: Result | None  # None until there are enough readings
    new_factor: float  # what saving writes: the proposal, or the old factor on a fail
    problems: tuple[str, ...] = ()

    @property
    def as_found_passed(self) -> bool:
        return self.enough and self.mean_ok and self.sd_ok


def evaluate(
    readings: Sequence[CalibrationReading], old_factor: float, settings: CalibrationSettings
) -> CalibrationOutcome:
    """Deviations, their mean and SD, pass/fail against the limits, and the proposed factor."""
    if not FACTOR_RANGE[0] <= old_factor <= FACTOR_RANGE[1]:
        raise CalibrationError(f"current factor {old_factor} is outside {FACTOR_RANGE}")
    devs = tuple(r.deviation_pct for r in readings)
    n = len(devs)
    measured = sum(r.measured_l for r in readings)
    reference = sum(r.reference_l for r in readings)
    mean = statistics.fmean(devs) if devs else None
    sd = statistics.stdev(devs) if n >= 2 else None
    enough = n >= settings.min_readings
    mean_ok = mean is not None and abs(mean) <= settings.mean_limit_pct
    sd_ok = sd is not None and sd <= settings.sd_limit_pct
    proposed = new_factor(old_factor, measured, reference) if n else None
    correction = (proposed / old_factor - 1.0) * 100.0 if proposed is not None else None
    problems: list[str] = []
    result: Result | None = None
    saved = old_factor
    if not enough:
        problems.append(f"{n} valid reading(s): at least {settings.min_readings} are needed")
    else:
        assert proposed is not None and correction is not None
        if not sd_ok:
            problems.append(
                f"readings scatter (SD {sd:.2f} % > {settings.sd_limit_pct:g} %): a factor "
                "cannot fix that; have the meter serviced"
            )
        if abs(correction) > settings.max_correction_pct:
            problems.append(
                f"correction {correction:+.1f} % is beyond ±{settings.max_correction_pct:g} %: "
                "check the meter and the references"
            )
        if not FACTOR_RANGE[0] <= proposed <= FACTOR_RANGE[1]:
            problems.append(f"factor {proposed:.4f} is outside {FACTOR_RANGE}")
        if problems:
            result = "fail"
        else:
            result = "pass" if mean_ok else "adjusted"
            saved = proposed
    return CalibrationOutcome(
        n=n,
        deviations_pct=devs,
        mean_deviation_pct=mean,
        sd_deviation_pct=sd,
        measured_sum_l=measured,
        reference_sum_l=reference,
        old_factor=old_factor,
        proposed_factor=proposed,
        correction_pct=correction,
        enough=enough,
        mean_ok=mean_ok,
        sd_ok=sd_ok,
        result=result,
        new_factor=saved,
        problems=tuple(problems),
    )


@dataclass(frozen=True, slots=True)
class ConductivityCheck:
    """The meter's raw reading of a reference solution; the offset makes it read true."""

    reference_ms_cm: float
    reading_ms_cm: float

    def __post_init__(self) -> None:
        for name in ("reference_ms_cm", "reading_ms_cm"):
            v = getattr(self, name)
            if not math.isfinite(v) or not 0 < v < 30:
                raise CalibrationError(f"conductivity {name} {v!r}: must be 0-30 mS/cm")

    @property
    def offset_ms_cm(self) -> float:
        return self.reference_ms_cm - self.reading_ms_cm


# -- saving ---------------------------------------------------------------------------------


def excluded_reason(milking: SessionRecord) -> str | None:
    """Why this recorded milking cannot be a test reading (None: it can)."""
    if milking.reattached:
        return "cluster re-attached"
    if milking.state == "interrupted":
        return "interrupted"
    for flag, why in UNTRUSTED_FLAGS.items():
        if flag in milking.flags:
            return why
    if not milking.yield_l > 0:
        return "no milk measured"
    return None


def save_calibration(
    db: Database,
    grant: Grant | None,
    *,
    meter_id: str,
    method: Method,
    readings: Sequence[CalibrationReading],
    outcome: CalibrationOutcome,
    settings: CalibrationSettings,
    conductivity: ConductivityCheck | None = None,
    now: datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> CalibrationRecord:
    """Store a calibration and apply it to the meter row, audited, in one transaction
    (`milkconsole.store.calibrations.CalibrationStore.save`).

    Refused (AccessDenied) without a technician's grant; refused (CalibrationError) when
    the outcome has no result or the meter's factor changed since the test began. The
    caller then tells the running pollers (`ParlourRuntime.set_calibration_factor`).
    """
    if method not in METHODS:
        raise CalibrationError(f"method {method!r}: use one of {', '.join(METHODS)}")
    if outcome.result is None:
        raise CalibrationError(f"meter {meter_id}: {'; '.join(outcome.problems)}")
    now = now or datetime.now(UTC)
    due = (
        add_months(now, settings.interval_months) if outcome.result != "fail" else now
    )  # a failed meter stays due until it passes
    references: list[dict[str, Any]] = [
        {"value": r.reference_value, "unit": r.reference_unit, "litres": r.reference_l}
        for r in readings
    ]
    if conductivity is not None:
        references.append(
            {
                "conductivity_reference_ms_cm": conductivity.reference_ms_cm,
                "conductivity_reading_ms_cm": conductivity.reading_ms_cm,
            }
        )
    entry = NewCalibration(
        meter_id=meter_id,
        method=method,
        performed_at=now,
        old_factor=outcome.old_factor,
        new_factor=outcome.new_factor,
        mean_deviation_pct=outcome.mean_deviation_pct,
        sd_deviation_pct=outcome.sd_deviation_pct,
        result=outcome.result,
        readings=[
            {
                "session_key": r.session_key,
                "measured_l": r.measured_l,
                "ended_at": iso_z(r.ended_at) if r.ended_at else None,
                **(extra or {}),
            }
            for r in readings
        ],
        references=references,
        conductivity_offset_ms_cm=conductivity.offset_ms_cm if conductivity is not None else None,
        next_due_at=due,
    )
    action = "bulk_tank" if method == "bulk_tank" else "calibrate"
    return CalibrationStore(db).save(grant, action, entry)


# -- due dates --------------------------------------------------------------------------------

DueStatus = Literal["overdue", "due_soon", "never", "ok"]


@dataclass(frozen=True, slots=True)
class DueMeter:
    """A meter whose calibration is due (or was never recorded)."""

    meter_id: str
    name: str
    stall: int
    due_at: datetime | None
    status: DueStatus
    days_left: int | None  # negative: days overdue

    @property
    def text(self) -> str:
        if self.status == "never":
            return f"{self.meter_id}: never calibrated"
        if self.days_left is not None and self.days_left < 0:
            return f"{self.meter_id}: calibration overdue by {-self.days_left} d"
        return f"{self.meter_id}: calibration due in {self.days_left} d"


def due_status(due_at: datetime | None, now: datetime, warn_days: int = 30) -> DueStatus:
    if due_at is None:
        return "never"
    if due_at <= now:
        return "overdue"
    if due_at <= now + timedelta(days=warn_days):
        return "due_soon"
    return "ok"


def due_meters(
    db: Database, now: datetime, warn_days: int = 30, meter_ids: Collection[str] | None = None
) -> list[DueMeter]:
    """Meters overdue, never calibrated, or due within `warn_days` — the most urgent first.

    `meter_ids` limits it to the meters the parlour config still has.
    """
    out = []
    for m in CalibrationStore(db).meters(meter_ids):
        status = due_status(m.calibration_due_at, now, warn_days)
        if status == "ok":
            continue
        days = None
        if m.calibration_due_at is not None:
            days = math.floor((m.calibration_due_at - now).total_seconds() / 86400)
        out.append(DueMeter(m.meter_id, m.name, m.stall, m.calibration_due_at, status, days))
    order = {"overdue": 0, "never": 1, "due_soon": 2}
    out.sort(
        key=lambda d: (order[d.status], d.days_left if d.days_left is not None else 0, d.stall)
    )
    return out


# -- bulk tank --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TankMeterRow:
    """One meter over the period: its milkings, and how far it reads from the parlour's truth.

    `error_pct` estimates the meter's error against the tank: cows reach stalls at random, so
    over many milkings every meter sees the same mean yield; the tank says what that mean
    truly is (tank / milkings). `se_pct` is the standard error of that estimate.
    """

    meter_id: str
    stall: int
    sessions: int
    sum_l: float
    mean_l: float
    error_pct: float | None
    se_pct: float | None
    drifting: bool
    old_factor: float
    proposed_factor: float | None


@dataclass(frozen=True, slots=True)
class TankReconciliation:
    """The meters' sum over a period against the tank, parlour-wide and per meter."""

    start: datetime
    end: datetime
    tank_l: float
    withheld_l: float
    meters_sum_l: float
    sessions: int
    parlour_error_pct: float | None
    rows: tuple[TankMeterRow, ...]
    # Milkings whose milk went to the divert line: left out of the meters' sum (the tank
    # never had it); `withheld_l` is milk kept out that the console does not know of.
    diverted_l: float = 0.0
    diverted_sessions: int = 0


def reconcile_bulk_tank(
    db: Database,
    *,
    start: datetime,
    end: datetime,
    tank_l: float,
    settings: CalibrationSettings,
    withheld_l: float = 0.0,
    meter_ids: Collection[str] | None = None,
    min_sessions: int = 30,
) -> TankReconciliation:
    """Compare what the meters recorded from `start` to `end` with the tank. Milkings the
    console diverted are left out on both sides; `withheld_l` is any other milk kept out of the
    tank (milk taken for calves by hand). A meter is *drifting* when its estimated error
    is beyond `mean_limit_pct` and more than twice its standard error, with at least
    `min_sessions` milkings; only drifting meters get a proposed factor."""
    if not end > start:
        raise CalibrationError("the period must end after it starts")
    if not math.isfinite(tank_l) or tank_l <= 0:
        raise CalibrationError(f"tank volume {tank_l!r} L: must be above 0")
    if not math.isfinite(withheld_l) or withheld_l < 0:
        raise CalibrationError(f"withheld milk {withheld_l!r} L: must be 0 or more")
    store = CalibrationStore(db)
    meters = {m.meter_id: m for m in store.meters(meter_ids)}
    by_meter: dict[str, list[float]] = {mid: [] for mid in meters}
    diverted: list[float] = []
    for t in store.test_milkings(list(meters), start, end):
        if t.diverted:
            diverted.append(t.yield_l)
        elif t.state != "interrupted" and t.yield_l > 0:
            by_meter[t.meter_id].append(t.yield_l)
    total = sum(sum(v) for v in by_meter.values())
    n_all = sum(len(v) for v in by_meter.values())
    truth_l = tank_l + withheld_l
    true_mean = truth_l / n_all if n_all else None
    rows = []
    for mid, yields in by_meter.items():
        m = meters[mid]
        n = len(yields)
        mean = statistics.fmean(yields) if yields else 0.0
        err = se = None
        drifting = False
        proposed = None
        if n and true_mean:
            err = (mean / true_mean - 1.0) * 100.0
            se = statistics.stdev(yields) / math.sqrt(n) / true_mean * 100.0 if n >= 2 else None
            drifting = (
                n >= min_sessions
                and se is not None
                and abs(err) > settings.mean_limit_pct
                and abs(err) > 2.0 * se
            )
            if drifting:
                proposed = m.calibration_factor * true_mean / mean
        rows.append(
            TankMeterRow(
                meter_id=mid,
                stall=m.stall,
                sessions=n,
                sum_l=sum(yields),
                mean_l=mean,
                error_pct=err,
                se_pct=se,
                drifting=drifting,
                old_factor=m.calibration_factor,
                proposed_factor=proposed,
            )
        )
    return TankReconciliation(
        start=start,
        end=end,
        tank_l=tank_l,
        withheld_l=withheld_l,
        meters_sum_l=total,
        sessions=n_all,
        parlour_error_pct=(total / truth_l - 1.0) * 100.0 if n_all else None,
        rows=tuple(sorted(rows, key=lambda r: r.stall)),
        diverted_l=sum(diverted),
        diverted_sessions=len(diverted),
    )


def tank_outcome(row: TankMeterRow, settings: CalibrationSettings) -> CalibrationOutcome:
    """A drifting meter's bulk-tank finding as an outcome `save_calibration` can store."""
    if row.proposed_factor is None or row.error_pct is None:
        raise CalibrationError(f"meter {row.meter_id}: no factor proposed (not drifting)")
    correction = (row.proposed_factor / row.old_factor - 1.0) * 100.0
    problems: tuple[str, ...] = ()
    if abs(correction) > settings.max_correction_pct:
        problems = (f"correction {correction:+.1f} % is beyond ±{settings.max_correction_pct:g} %",)
    result: Result = "fail" if problems else "adjusted"
    reference = row.sum_l / (1.0 + row.error_pct / 100.0)
    return CalibrationOutcome(
        n=row.sessions,
        deviations_pct=(row.error_pct,),
        mean_deviation_pct=row.error_pct,
        sd_deviation_pct=None,
        measured_sum_l=row.sum_l,
        reference_sum_l=reference,
        old_factor=row.old_factor,
        proposed_factor=row.proposed_factor,
        correction_pct=correction,
        enough=True,
        mean_ok=abs(row.error_pct) <= settings.mean_limit_pct,
        sd_ok=True,
        result=result,
        new_factor=row.old_factor if problems else row.proposed_factor,
        problems=problems,
    )
