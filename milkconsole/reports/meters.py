"""Meter comparison: each meter's milkings over a period, and the meter that reads differently.

Cows rotate through the stalls, so a cow is her own control: for meter M and each cow milked
both on M and on other meters (trusted, completed milkings only: not re-attached, split, reset,
silent or recovered), her ratio is her mean yield on M over her mean yield on the other meters.
A meter that reads 4 % low gives ratios around 0.96 whoever the cows are. Across the cows the
log-ratios are tested against 0 with the Wilcoxon signed-rank test (robust to the odd cow whose
milk changed that week); M is *flagged* when at least `min_cows` cows were compared, its median
deviation is at least `min_deviation` and the test's p-value is below `alpha` divided by the
number of meters tested (Bonferroni: a parlour of 24 meters does not flag one by chance).
A flagged meter needs calibrating (`ui/calibration_wizard.py`) before the bulk tank tells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from milkconsole.reports.stats import median, signed_rank_test
from milkconsole.store import history
from milkconsole.store.calibrations import CalibrationStore
from milkconsole.store.db import Database
from milkconsole.store.history import MeterCowYield


@dataclass(frozen=True, slots=True)
class ComparisonSettings:
    alpha: float = 0.01
    min_deviation: float = 0.02
    min_cows: int = 12

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be between 0 and 1, not {self.alpha}")
        if not 0.0 <= self.min_deviation < 1.0:
            raise ValueError(f"min_deviation must be 0 to 1, not {self.min_deviation}")
        if self.min_cows < 3:
            raise ValueError(f"min_cows must be at least 3, not {self.min_cows}")


@dataclass(frozen=True, slots=True)
class MeterDeviation:
    """How meter M reads against the other meters for the same cows."""

    cows: int
    deviation: float  # median over cows of (her mean on M / her mean elsewhere) - 1
    p_value: float
    flagged: bool


@dataclass(frozen=True, slots=True)
class MeterRow:
    meter_id: str
    name: str
    stall: int
    sessions: int
    completed: int
    incomplete: int
    interrupted: int
    comm_errors: int
    yield_l: float
    mean_flow_l_min: float | None
    mean_peak_flow_l_min: float | None
    mean_duration_s: float | None
    calibration_factor: float
    last_calibrated_at: datetime | None
    last_result: str | None
    calibration_due_at: datetime | None
    deviation: MeterDeviation | None

    @property
    def mean_yield_l(self) -> float | None:
        """Milk per milking (each milking is one cow)."""
        return self.yield_l / self.sessions if self.sessions else None

    @property
    def incomplete_share(self) -> float | None:
        return self.incomplete / self.sessions if self.sessions else None

    @property
    def flagged(self) -> bool:
        return self.deviation is not None and self.deviation.flagged


@dataclass(frozen=True, slots=True)
class MeterComparison:
    start: datetime
    end: datetime
    settings: ComparisonSettings
    rows: tuple[MeterRow, ...]

    @property
    def flagged(self) -> tuple[MeterRow, ...]:
        return tuple(r for r in self.rows if r.flagged)


def cow_ratios(yields: list[MeterCowYield]) -> dict[str, list[float]]:
    """Per meter, each cow's log(mean on the meter / mean on the other meters)."""
    by_cow: dict[int, list[MeterCowYield]] = {}
    for y in yields:
        if y.milkings > 0 and y.yield_l > 0:
            by_cow.setdefault(y.animal_id, []).append(y)
    out: dict[str, list[float]] = {}
    for rows in by_cow.values():
        if len(rows) < 2:
            continue
        n_all = sum(r.milkings for r in rows)
        sum_all = sum(r.yield_l for r in rows)
        for r in rows:
            here = r.yield_l / r.milkings
            elsewhere = (sum_all - r.yield_l) / (n_all - r.milkings)
            out.setdefault(r.meter_id, []).append(math.log(here / elsewhere))
    return out


def deviations(
    yields: list[MeterCowYield], settings: ComparisonSettings
) -> dict[str, MeterDeviation]:
    """Each meter's deviation from the others for the same cows, flagged or not."""
    ratios = cow_ratios(yields)
    tested = [m for m, r in ratios.items() if len(r) >= settings.min_cows]
    limit = settings.alpha / max(1, len(tested))
    out = {}
    for meter_id, logs in ratios.items():
        dev = math.exp(median(logs)) - 1.0
        p = signed_rank_test(logs).p_value if meter_id in tested else 1.0
        flagged = meter_id in tested and p < limit and abs(dev) >= settings.min_deviation
        out[meter_id] = MeterDeviation(len(logs), dev, p, flagged)
    return out


def build_meter_comparison(
    db: Database,
    start: datetime,
    end: datetime,
    *,
    settings: ComparisonSettings | None = None,
) -> MeterComparison:
    """Every meter's milkings started in [start, end) and its deviation from the others."""
    settings = settings or ComparisonSettings()
    stats = {s.meter_id: s for s in history.meter_period_stats(db, start, end)}
    devs = deviations(history.meter_cow_yields(db, start, end), settings)
    calibration = {m.meter_id: m for m in CalibrationStore(db).meters()}
    ids = sorted(
        set(stats) | set(calibration),
        key=lambda m: (stats[m].stall if m in stats else calibration[m].stall, m),
    )
    rows = []
    for meter_id in ids:
        s = stats.get(meter_id)
        c = calibration.get(meter_id)
        rows.append(
            MeterRow(
                meter_id=meter_id,
                name=c.name if c else meter_id,
                stall=s.stall if s else (c.stall if c else 0),
                sessions=s.sessions if s else 0,
                completed=s.completed if s else 0,
                incomplete=s.incomplete if s else 0,
                interrupted=s.interrupted if s else 0,
                comm_errors=s.comm_errors if s else 0,
                yield_l=s.yield_l if s else 0.0,
                mean_flow_l_min=s.mean_avg_flow_l_min if s else None,
                mean_peak_flow_l_min=s.mean_peak_flow_l_min if s else None,
                mean_duration_s=s.mean_duration_s if s else None,
                calibration_factor=c.calibration_factor if c else 1.0,
                last_calibrated_at=c.last_calibrated_at if c else None,
                last_result=c.last_result if c else None,
                calibration_due_at=c.calibration_due_at if c else None,
                deviation=devs.get(meter_id),
            )
        )
    return MeterComparison(start, end, settings, tuple(rows))
