"""Read-only production figures for the console: today's totals, the current milking, alerts.

`production_snapshot` reads the store once (`milkconsole.store.dashboard.read_dashboard`) and
returns a frozen `ProductionSnapshot`, so the console can run it on a worker thread and hand the
result to the GUI thread. No Qt (the core never imports it) and no writes: identity corrections
go through `SessionStore`. `tile_alerts` is what a stall tile shows as alert chips.

"Today" and the hourly buckets are local time (the farm's clock); the store keeps UTC. A
*milking* is a run of sessions with no gap longer than `MILKING_GAP` between one start and the
next, so milk per hour and cows per hour describe the milking going on now (or the last one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from milkconsole.clock import local_zone
from milkconsole.meters.events import FINISHED_STATES, SessionSnapshot
from milkconsole.store.alerts import AlertRecord
from milkconsole.store.dashboard import DashboardRows, read_dashboard
from milkconsole.store.db import Database
from milkconsole.store.history import HIGH_CONDUCTIVITY_MS_CM
from milkconsole.store.sessions import SessionRecord

GRADES = ("A", "B", "C", "reject")
MILKING_GAP = timedelta(minutes=45)
# Rates over less than this are noise (two cows in three minutes is not 40 cows/h).
MIN_RATE_SPAN = timedelta(minutes=10)
# Display-side thresholds for the tile's own alert chips; the health module raises the real
# alerts (stored in `alerts`) with per-cow baselines. Expected yield and the conductivity
# limit are defined once, in `milkconsole.store.history` (reports use them too).
LOW_YIELD_RATIO = 0.7


@dataclass(frozen=True, slots=True)
class HourBucket:
    """Milk and cows of the sessions that ended in one local clock hour."""

    hour_start: datetime  # aware, local time
    yield_l: float
    sessions: int


@dataclass(frozen=True, slots=True)
class ProductionSnapshot:
    """Everything the dashboard shows, read in one database transaction."""

    taken_at: datetime
    day_start: datetime
    total_yield_l: float
    finished_sessions: int
    average_yield_l: float | None
    unidentified_sessions: int
    quality: Mapping[str, int]
    hourly: tuple[HourBucket, ...]
    milking_started_at: datetime | None
    milking_yield_l: float
    milking_sessions: int
    milk_per_hour_l: float | None
    cows_per_hour: float | None
    open_sessions: tuple[SessionRecord, ...]
    recent: tuple[SessionRecord, ...]
    alerts: tuple[AlertRecord, ...]
    # Milk kept out of the tank today (not in total_yield_l): litres, milkings, and how many
    # of them nobody confirmed at the stall.
    diverted_l: float = 0.0
    diverted_sessions: int = 0
    diverted_unconfirmed: int = 0

    def session_alerts(self) -> dict[str, tuple[str, ...]]:
        """Alert kinds by session key (for the stall tiles)."""
        out: dict[str, list[str]] = {}
        for a in self.alerts:
            if a.session_key:
                out.setdefault(a.session_key, []).append(a.kind)
        return {k: tuple(v) for k, v in out.items()}


def production_snapshot(
    db: Database,
    *,
    now: datetime | None = None,
    zone: tzinfo | None = None,
    recent_limit: int = 25,
) -> ProductionSnapshot:
    """Today's production, the current milking and what needs attention, in one read."""
    zone = zone or local_zone()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    local_now = now.astimezone(zone)
    day_start = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    day_start_utc = day_start.astimezone(UTC)
    # The milking under way may have started before midnight (a late evening milking).
    look_back_utc = min(day_start_utc, now - timedelta(hours=12))
    rows = read_dashboard(
        db, since=look_back_utc, finished_since=day_start_utc, recent_limit=recent_limit
    )
    return snapshot_of(rows, now=now, zone=zone, day_start=day_start)


def snapshot_of(
    rows: DashboardRows, *, now: datetime, zone: tzinfo, day_start: datetime
) -> ProductionSnapshot:
    """The dashboard's figures from its reads: `day_start` is local midnight, `now` UTC."""
    day_start_utc = day_start.astimezone(UTC)
    sessions = rows.sessions
    finished_today = [
        r
        for r in sessions
        if r.state in FINISHED_STATES and r.ended_at is not None and r.ended_at >= day_start_utc
    ]
    # The tank's milk: diverted milk (treated cows, colostrum, kept out) is counted apart.
    tank_today = [r for r in finished_today if not r.diverted]
    diverted_today = [r for r in finished_today if r.diverted]
    total = sum(r.yield_l for r in tank_today)
    quality = {g: 0 for g in GRADES}
    for r in finished_today:
        if r.quality_grade in quality:
            quality[r.quality_grade] += 1
    hourly: dict[datetime, list[float]] = {}
    for r in tank_today:
        assert r.ended_at is not None
        hour = r.ended_at.astimezone(zone).replace(minute=0, second=0, microsecond=0)
        hourly.setdefault(hour, []).append(r.yield_l)
    milking = _current_milking(sessions)
    milking_finished = [r for r in milking if r.state in FINISHED_STATES]
    milking_tank = [r for r in milking_finished if not r.diverted]
    milking_started = milking[0].started_at if milking else None
    milk_rate: float | None = None
    cow_rate: float | None = None
    if milking_started is not None:
        span = max(now - milking_started, MIN_RATE_SPAN)
        hours = span.total_seconds() / 3600.0
        milk_rate = sum(r.yield_l for r in milking_tank) / hours
        cow_rate = len(milking_finished) / hours
    return ProductionSnapshot(
        taken_at=now,
        day_start=day_start,
        total_yield_l=total,
        finished_sessions=len(finished_today),
        average_yield_l=(total / len(tank_today)) if tank_today else None,
        unidentified_sessions=sum(1 for r in finished_today if r.animal_id is None),
        quality=quality,
        hourly=tuple(HourBucket(h, sum(v), len(v)) for h, v in sorted(hourly.items())),
        milking_started_at=milking_started,
        milking_yield_l=sum(r.yield_l for r in milking_tank),
        milking_sessions=len(milking_finished),
        milk_per_hour_l=milk_rate,
        cows_per_hour=cow_rate,
        open_sessions=tuple(sorted(rows.open_sessions, key=lambda r: r.stall)),
        recent=rows.recent,
        alerts=rows.alerts,
        diverted_l=sum(r.yield_l for r in diverted_today),
        diverted_sessions=len(diverted_today),
        diverted_unconfirmed=sum(1 for r in diverted_today if r.divert_confirmed_by is None),
    )


def _current_milking(rows: Sequence[Any]) -> Sequence[Any]:
    """The last run of sessions (by start) with no gap over MILKING_GAP; `rows` in start order."""
    if not rows:
        return []
    start = len(rows) - 1
    while start > 0 and rows[start].started_at - rows[start - 1].started_at <= MILKING_GAP:
        start -= 1
    return rows[start:]


def tile_alerts(
    session: SessionSnapshot,
    expected_yield_l: float | None,
    stored: Iterable[str] = (),
    *,
    high_conductivity_ms_cm: float = HIGH_CONDUCTIVITY_MS_CM,
    low_yield_ratio: float = LOW_YIELD_RATIO,
) -> tuple[str, ...]:
    """The words a stall tile shows as alert chips for this session.

    From the live snapshot: BLOOD, HIGH EC (conductivity over the limit), LOW YIELD (finished
    under `low_yield_ratio` of what the cow usually gives); then the kinds of the alerts the
    health module stored for the session, upper-cased, without repeating one already shown.
    """
    out: list[str] = []
    if session.blood:
        out.append("BLOOD")
    ec = session.conductivity_max_ms_cm
    if ec is not None and ec > high_conductivity_ms_cm:
        out.append("HIGH EC")
    if (
        session.state != "in_progress"
        and expected_yield_l
        and session.yield_l < low_yield_ratio * expected_yield_l
    ):
        out.append("LOW YIELD")
    aliases = {"BLOOD": "BLOOD", "MASTITIS": "HIGH EC", "CONDUCTIVITY": "HIGH EC"}
    for kind in stored:
        word = kind.replace("_", " ").upper()
        word = aliases.get(word, word)
        if word not in out:
            out.append(word)
    return tuple(out)


__all__ = [
    "GRADES",
    "HIGH_CONDUCTIVITY_MS_CM",
    "LOW_YIELD_RATIO",
    "MILKING_GAP",
    "MIN_RATE_SPAN",
    "HourBucket",
    "ProductionSnapshot",
    "production_snapshot",
    "snapshot_of",
    "tile_alerts",
]
