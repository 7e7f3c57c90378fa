"""The herd day by day: total milk, cows milked, milk per cow, EC outliers and diverted milk of
each local day, counted in SQL (one index pass for a year of days)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, tzinfo

from milkconsole.clock import local_zone
from milkconsole.reports.periods import day_bounds, days_between
from milkconsole.store import history
from milkconsole.store.db import Database

MAX_DAYS = 3 * 366


@dataclass(frozen=True, slots=True)
class HerdDay:
    day: date
    sessions: int
    cows_milked: int
    yield_l: float
    unidentified: int
    ec_outliers: int  # milkings whose conductivity peaked over the HIGH EC limit
    diverted_l: float

    @property
    def per_cow_l(self) -> float | None:
        return self.yield_l / self.cows_milked if self.cows_milked else None


@dataclass(frozen=True, slots=True)
class HerdTrend:
    first: date
    last: date
    days: tuple[HerdDay, ...]


def build_herd_trend(
    db: Database, first: date, last: date, *, zone: tzinfo | None = None
) -> HerdTrend:
    """Every local day from `first` to `last` (both included; days without milk count 0)."""
    if last < first:
        raise ValueError(f"the trend's last day {last} is before its first {first}")
    days = days_between(first, last)
    if len(days) > MAX_DAYS:
        raise ValueError(f"a herd trend covers at most {MAX_DAYS} days, not {len(days)}")
    zone = zone or local_zone()
    totals = history.window_totals(db, [day_bounds(d, zone) for d in days])
    return HerdTrend(
        first,
        last,
        tuple(
            HerdDay(
                day=d,
                sessions=t.sessions,
                cows_milked=t.cows_milked,
                yield_l=t.yield_l,
                unidentified=t.unidentified,
                ec_outliers=t.ec_outliers,
                diverted_l=t.diverted_l,
            )
            for d, t in zip(days, totals, strict=True)
        ),
    )
