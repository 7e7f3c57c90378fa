"""Periods a report covers: a milking (a shift), a local day, or any range.

A *milking* is a run of sessions whose starts are no more than `MILKING_GAP` apart (the
dashboard's definition). Days are the farm's local days (the machine's zone, or the one given);
every period is held as aware UTC bounds [start, end) on the sessions' start times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

from milkconsole.clock import local_zone
from milkconsole.reports.dashboard import MILKING_GAP
from milkconsole.store import history
from milkconsole.store.db import Database

PeriodKind = Literal["milking", "day", "range"]
# A milking's twin on another day starts within this much of the same clock time.
SAME_SHIFT_WINDOW = timedelta(hours=4)
# The last start of a milking is included: its period ends just after it.
_AFTER_LAST = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Period:
    """Sessions that started in [start, end) (aware UTC), with the words a report heads it with."""

    start: datetime
    end: datetime
    kind: PeriodKind
    label: str

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            if getattr(self, name).utcoffset() is None:
                raise ValueError(f"Period.{name} must be aware (UTC), not naive")
        if not self.end > self.start:
            raise ValueError(
                f"a period must end after it starts ({self.start.isoformat()} to "
                f"{self.end.isoformat()})"
            )

    def shifted(self, days: int) -> Period:
        """The same clock times `days` days earlier (negative: later)."""
        delta = timedelta(days=days)
        return Period(self.start - delta, self.end - delta, self.kind, self.label)

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600.0


def shift_name(start: datetime, zone: tzinfo | None = None) -> str:
    """'AM', 'Midday' or 'PM' by the local hour a milking started (before 10, before 15,
    after)."""
    hour = start.astimezone(zone or local_zone()).hour
    return "AM" if hour < 10 else "Midday" if hour < 15 else "PM"


def split_milkings(starts: Sequence[datetime]) -> list[tuple[datetime, datetime]]:
    """The runs (first start, last start) of sorted `starts` with no gap over MILKING_GAP."""
    runs: list[tuple[datetime, datetime]] = []
    for t in starts:
        if runs and t - runs[-1][1] <= MILKING_GAP:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return runs


def milking_period(first: datetime, last: datetime, zone: tzinfo | None = None) -> Period:
    zone = zone or local_zone()
    local = first.astimezone(zone)
    label = f"{shift_name(first, zone)} milking {local:%a %d %b %Y}, from {local:%H:%M}"
    return Period(first.astimezone(UTC), last.astimezone(UTC) + _AFTER_LAST, "milking", label)


def day_bounds(day: date, zone: tzinfo | None = None) -> tuple[datetime, datetime]:
    """A local day's [start, end) in UTC (23 or 25 hours long on a clock change)."""
    zone = zone or local_zone()
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def day_period(day: date, zone: tzinfo | None = None) -> Period:
    start, end = day_bounds(day, zone)
    return Period(start, end, "day", f"{day:%A %d %B %Y}")


def range_period(start: datetime, end: datetime, zone: tzinfo | None = None) -> Period:
    zone = zone or local_zone()
    a, b = start.astimezone(zone), end.astimezone(zone)
    label = f"{a:%d %b %Y %H:%M} to {b:%d %b %Y %H:%M}"
    return Period(start.astimezone(UTC), end.astimezone(UTC), "range", label)


def days_between(first: date, last: date) -> list[date]:
    """Every day from `first` to `last`, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def milkings_in(
    db: Database, start: datetime, end: datetime, zone: tzinfo | None = None
) -> list[Period]:
    """The milkings whose sessions started in [start, end), oldest first."""
    starts = history.session_starts(db, start, end)
    return [milking_period(a, b, zone) for a, b in split_milkings(starts)]


def last_milking(
    db: Database, now: datetime | None = None, zone: tzinfo | None = None
) -> Period | None:
    """The newest milking with a finished session started before `now`, whole (its earlier
    sessions too), or None when nothing was milked yet."""
    now = now or datetime.now(UTC)
    last = history.last_session_start(db, now)
    if last is None:
        return None
    # A milking is hours long, not days: a day back finds its first cow.
    runs = split_milkings(history.session_starts(db, last - timedelta(days=1), last + _AFTER_LAST))
    first, final = runs[-1]
    return milking_period(first, final, zone)


def same_shift_on(
    runs: Sequence[tuple[datetime, datetime]], period: Period, days_back: int
) -> tuple[datetime, datetime] | None:
    """Of `runs`, the milking that started nearest to `period.start` minus `days_back` days,
    within SAME_SHIFT_WINDOW; None when that day had no such milking."""
    target = period.start - timedelta(days=days_back)
    best = min(runs, key=lambda r: abs(r[0] - target), default=None)
    if best is None or abs(best[0] - target) > SAME_SHIFT_WINDOW:
        return None
    return best
