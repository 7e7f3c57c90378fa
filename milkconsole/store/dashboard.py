"""What the dashboard reads, in one read transaction: `read_dashboard` -> `DashboardRows`.

The figures (today's milk, the milking going on, rates) are worked out from these by
`milkconsole.reports.dashboard.production_snapshot`; here are only the reads, returned as frozen
values. The sessions and alerts the dashboard lists (the open sessions, the most recent ones,
the alerts not resolved) are few and read whole, as the store's `SessionRecord` and
`AlertRecord`. The day's figures sum over every session since the look-back (thousands of them
on a big herd, where ORM rows cost several times more to load), so of those only the few
columns the sums need are read, as `DayColumns`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import String, select, type_coerce

from milkconsole.meters.events import FINISHED_STATES
from milkconsole.store.alerts import AlertRecord, alert_record
from milkconsole.store.db import Database
from milkconsole.store.schema import AlertRow, Animal, SessionRow, utc_from_text
from milkconsole.store.sessions import SessionRecord, record_from_row


class DayColumns(NamedTuple):
    """The columns of one recorded session the day's figures sum (a projection of a
    `SessionRecord` for the sums, not a session type: a tuple, because it is read for every
    session since the look-back)."""

    state: str
    started_at: datetime | None
    ended_at: datetime | None
    yield_l: float
    quality_grade: str | None
    animal_id: int | None
    destination: str | None = None
    divert_confirmed_by: str | None = None

    @property
    def diverted(self) -> bool:
        return self.destination == "diverted"


@dataclass(frozen=True, slots=True)
class DashboardRows:
    """The dashboard's reads: every session since the look-back (start order, its figures'
    columns), the open sessions (however old), the most recently finished ones, and the alerts
    not resolved yet."""

    sessions: tuple[DayColumns, ...]
    open_sessions: tuple[SessionRecord, ...]
    recent: tuple[SessionRecord, ...]
    alerts: tuple[AlertRecord, ...]


def read_dashboard(
    db: Database, *, since: datetime, finished_since: datetime, recent_limit: int
) -> DashboardRows:
    """Sessions started at or after `since` (UTC); the open ones; the `recent_limit` last
    finished at or after `finished_since`, newest first; the alerts not resolved, newest
    first. Listed sessions and alerts carry their cow's number and name."""
    # `state || ''`: not by the state index (a year of finished sessions) but by ended_at.
    finished = SessionRow.state.op("||")("").in_(FINISHED_STATES)
    with_cow = select(SessionRow, Animal).outerjoin(Animal, Animal.id == SessionRow.animal_id)
    with db.read() as tx:
        # The day's figures need a few columns of each session since the look-back; only the
        # sessions the dashboard lists (open, most recent) are read whole, with their cows.
        sessions = tuple(
            DayColumns(
                state, utc_from_text(started), utc_from_text(ended), y, grade_, animal, dest, by
            )
            for state, started, ended, y, grade_, animal, dest, by in tx.execute(
                select(
                    SessionRow.state,
                    type_coerce(SessionRow.started_at, String),
                    type_coerce(SessionRow.ended_at, String),
                    SessionRow.yield_l,
                    SessionRow.quality_grade,
                    SessionRow.animal_id,
                    SessionRow.destination,
                    SessionRow.divert_confirmed_by,
                )
                .where(SessionRow.started_at >= since)
                .order_by(SessionRow.started_at)
            )
        )
        # Open sessions, however old (a console left running still counts them as open).
        open_sessions = tuple(
            record_from_row(row, animal)
            for row, animal in tx.execute(with_cow.where(SessionRow.state == "in_progress"))
        )
        recent = tuple(
            record_from_row(row, animal)
            for row, animal in tx.execute(
                with_cow.where(finished, SessionRow.ended_at >= finished_since)
                .order_by(SessionRow.ended_at.desc(), SessionRow.started_at)
                .limit(recent_limit)
            )
        )
        alerts = tuple(
            alert_record(row, animal)
            for row, animal in tx.execute(
                select(AlertRow, Animal)
                .outerjoin(Animal, Animal.id == AlertRow.animal_id)
                .where(AlertRow.state != "resolved")
                .order_by(AlertRow.raised_at.desc())
            )
        )
    return DashboardRows(
        sessions=sessions, open_sessions=open_sessions, recent=recent, alerts=alerts
    )
