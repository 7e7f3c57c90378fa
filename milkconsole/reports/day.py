"""The day report: a local day's milkings, each with its milking report, and the day's totals
against yesterday and the mean of the previous 7 days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from milkconsole.clock import local_zone
from milkconsole.reports.milking import (
    COMPARISON_DAYS,
    DEFAULT_DROP_SHARE,
    MilkingReport,
    ShiftFigures,
    build_milking_report,
)
from milkconsole.reports.periods import Period, day_bounds, day_period, milkings_in
from milkconsole.store import history
from milkconsole.store.db import Database


@dataclass(frozen=True, slots=True)
class DayReport:
    period: Period
    generated_at: datetime
    figures: ShiftFigures
    yesterday: ShiftFigures | None
    week_mean: ShiftFigures | None
    week_days: int
    milkings: tuple[MilkingReport, ...]
    ec_outliers: int
    diverted_l: float

    @property
    def tank_l(self) -> float:
        return self.figures.yield_l - self.diverted_l


def build_day_report(
    db: Database,
    day: date,
    *,
    zone: tzinfo | None = None,
    drop_share: float = DEFAULT_DROP_SHARE,
    layout: str = "herringbone",
    now: datetime | None = None,
) -> DayReport:
    """The report of local day `day`: its milkings, totals and comparisons."""
    zone = zone or local_zone()
    period = day_period(day, zone)
    windows = [day_bounds(day - timedelta(days=k), zone) for k in range(COMPARISON_DAYS + 1)]
    totals = history.window_totals(db, windows)
    previous = [ShiftFigures.of(t) for t in totals[1:]]
    week = [f for f in previous if f.sessions]
    milkings = tuple(
        build_milking_report(db, m, drop_share=drop_share, layout=layout, now=now)
        for m in milkings_in(db, period.start, period.end, zone)
    )
    return DayReport(
        period=period,
        generated_at=now or datetime.now(UTC),
        figures=ShiftFigures.of(totals[0]),
        yesterday=previous[0] if previous[0].sessions else None,
        week_mean=ShiftFigures.mean(week),
        week_days=len(week),
        milkings=milkings,
        ec_outliers=totals[0].ec_outliers,
        diverted_l=totals[0].diverted_l,
    )
