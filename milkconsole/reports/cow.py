"""One cow's lactation trend: each milking and each day against what she was expected to give,
her conductivity, peak flow and milking time, with her alerts and health events marked.

The x-axis of a lactation is *days in milk* (DIM): local days since her last calving, when the
herd list knows it. A milking's expected yield is the median of her last 6 completed milkings
before it (the stall tile's definition, `milkconsole.store.history.expected_from`), so the
expectation moves with her through the lactation; a day's expectation is the sum of its
milkings' expectations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from milkconsole.clock import local_zone
from milkconsole.errors import MilkConsoleError
from milkconsole.store import history
from milkconsole.store.alerts import AlertFilter, AlertRecord, list_alerts
from milkconsole.store.db import Database
from milkconsole.store.history import CowInfo, HealthEventRecord

# Without a calving date the trend covers this many days back.
DEFAULT_DAYS = 120


class CowNotFound(MilkConsoleError):
    """No cow with that id or herd number."""


@dataclass(frozen=True, slots=True)
class CowMilking:
    """One milking of the cow on her trend."""

    session_key: str
    started_at: datetime
    day: date  # local
    dim: int | None
    state: str
    stall: int
    yield_l: float
    expected_l: float | None
    conductivity_mean_ms_cm: float | None
    conductivity_max_ms_cm: float | None
    quarters_ms_cm: tuple[float | None, float | None, float | None, float | None]
    peak_flow_l_min: float
    duration_s: float
    abnormal: bool
    diverted: bool
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CowDay:
    """Her milk of one local day."""

    day: date
    dim: int | None
    milkings: int
    yield_l: float
    expected_l: float | None
    conductivity_max_ms_cm: float | None


@dataclass(frozen=True, slots=True)
class CowTrend:
    cow: CowInfo
    start: datetime
    end: datetime
    milkings: tuple[CowMilking, ...]
    days: tuple[CowDay, ...]
    alerts: tuple[AlertRecord, ...]
    events: tuple[HealthEventRecord, ...]

    @property
    def calving(self) -> date | None:
        return self.cow.last_calving_date


def days_in_milk(day: date, calving: date | None) -> int | None:
    """Days since calving (the calving day is 0); None when calving is unknown or later."""
    if calving is None or day < calving:
        return None
    return (day - calving).days


def default_start(cow: CowInfo, end: datetime, zone: tzinfo) -> datetime:
    """Her calving day's local midnight, or DEFAULT_DAYS before `end` when it is unknown."""
    if cow.last_calving_date is not None:
        return datetime.combine(cow.last_calving_date, time(0), zone).astimezone(UTC)
    return end - timedelta(days=DEFAULT_DAYS)


def find_cow(db: Database, text: str) -> CowInfo:
    """The cow whose herd number is `text` (or, failing that, the one cow the search finds)."""
    found = history.cow_search(db, text, limit=50)
    exact = [c for c in found if c.number == text.strip()]
    if len(exact) == 1:
        return exact[0]
    if len(found) == 1:
        return found[0]
    if not found:
        raise CowNotFound(f"no cow with number, name or tag {text!r}")
    names = ", ".join(c.label for c in found[:8])
    raise CowNotFound(f"{text!r} matches {len(found)} cows ({names}); give her herd number")


def build_cow_trend(
    db: Database,
    animal_id: int,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    zone: tzinfo | None = None,
) -> CowTrend:
    """Her milkings started in [start, end) (default: since her calving, until now)."""
    zone = zone or local_zone()
    cow = history.cow_info(db, animal_id)
    if cow is None:
        raise CowNotFound(f"no cow with id {animal_id}")
    end = end or datetime.now(UTC)
    start = start or default_start(cow, end, zone)
    records, before = history.cow_sessions(db, animal_id, start, end)
    recent = list(before)  # newest first
    milkings = []
    for r in records:
        day = r.started_at.astimezone(zone).date()
        milkings.append(
            CowMilking(
                session_key=r.key,
                started_at=r.started_at,
                day=day,
                dim=days_in_milk(day, cow.last_calving_date),
                state=r.state,
                stall=r.stall,
                yield_l=r.yield_l,
                expected_l=history.expected_from(recent),
                conductivity_mean_ms_cm=r.conductivity_mean_ms_cm,
                conductivity_max_ms_cm=r.conductivity_max_ms_cm,
                quarters_ms_cm=(r.ec_lf_ms_cm, r.ec_rf_ms_cm, r.ec_lr_ms_cm, r.ec_rr_ms_cm),
                peak_flow_l_min=r.peak_flow_l_min,
                duration_s=r.duration_s,
                abnormal=r.abnormal,
                diverted=r.destination == "diverted",
                flags=r.flags,
            )
        )
        if r.state == "completed":
            recent.insert(0, r.yield_l)
    alerts = list_alerts(
        db, AlertFilter(states=(), animal_id=animal_id, since=start, until=end, limit=10_000)
    )
    return CowTrend(
        cow=cow,
        start=start,
        end=end,
        milkings=tuple(milkings),
        days=days_of(milkings),
        alerts=tuple(sorted(alerts, key=lambda a: (a.raised_at, a.id))),
        events=tuple(history.health_events(db, animal_id, start, end)),
    )


def days_of(milkings: list[CowMilking]) -> tuple[CowDay, ...]:
    """Her milkings summed per local day."""
    by_day: dict[date, list[CowMilking]] = {}
    for m in milkings:
        by_day.setdefault(m.day, []).append(m)
    out = []
    for day in sorted(by_day):
        ms = by_day[day]
        expected = [m.expected_l for m in ms if m.expected_l is not None]
        ec = [m.conductivity_max_ms_cm for m in ms if m.conductivity_max_ms_cm is not None]
        out.append(
            CowDay(
                day=day,
                dim=ms[0].dim,
                milkings=len(ms),
                yield_l=sum(m.yield_l for m in ms),
                expected_l=sum(expected) if len(expected) == len(ms) else None,
                conductivity_max_ms_cm=max(ec) if ec else None,
            )
        )
    return tuple(out)
