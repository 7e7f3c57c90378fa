"""What the dashboard reads, in one read transaction: `read_dashboard` -> `DashboardRows`.

The figures (today's milk, the milking going on, rates) are worked out from these by
`milkconsole.reports.dashboard.production_snapshot`; here are only the reads, columns rather than
ORM rows (a day of a big herd is thousands of sessions, and ORM rows cost several times more to
load), returned as frozen values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import String, select, type_coerce
from sqlalchemy.orm import Session

from milkconsole.store.db import Database
from milkconsole.store.schema import Alert, Animal, MilkSession, utc_from_text
from milkconsole.store.sessions import FINISHED_STATES


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One session as the dashboard lists it."""

    key: str
    stall: int
    meter_id: str
    state: str
    started_at: datetime
    ended_at: datetime | None
    yield_l: float
    duration_s: float
    peak_flow_l_min: float
    animal_id: int | None = None
    animal_label: str | None = None
    rfid: str | None = None
    id_source: str | None = None
    conductivity_max_ms_cm: float | None = None
    blood: bool | None = None
    quality_grade: str | None = None
    abnormal: bool = False
    reattached: bool = False
    flags: tuple[str, ...] = ()
    destination: str | None = None
    divert_reason: str | None = None
    divert_confirmed_by: str | None = None

    @property
    def diverted(self) -> bool:
        return self.destination == "diverted"


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One alert that is not resolved yet."""

    id: int
    kind: str
    severity: str
    state: str
    raised_at: datetime
    message: str
    animal_label: str | None = None
    session_key: str | None = None
    meter_id: str | None = None


class DaySession(NamedTuple):
    """What the day's figures need of a session (read for every session since the look-back)."""

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
    """The dashboard's reads: every session since the look-back (start order), the open ones
    (however old), the most recently finished ones, and the alerts not resolved yet."""

    sessions: tuple[DaySession, ...]
    open_sessions: tuple[SessionRow, ...]
    recent: tuple[SessionRow, ...]
    alerts: tuple[AlertRow, ...]


# What the dashboard lists of a session.
_SESSION_COLUMNS = (
    MilkSession.key,
    MilkSession.stall,
    MilkSession.meter_id,
    MilkSession.state,
    MilkSession.started_at,
    MilkSession.ended_at,
    MilkSession.yield_l,
    MilkSession.duration_s,
    MilkSession.peak_flow_l_min,
    MilkSession.animal_id,
    MilkSession.rfid,
    MilkSession.id_source,
    MilkSession.conductivity_max_ms_cm,
    MilkSession.blood,
    MilkSession.quality_grade,
    MilkSession.abnormal,
    MilkSession.reattached,
    MilkSession.flags,
    MilkSession.destination,
    MilkSession.divert_reason,
    MilkSession.divert_confirmed_by,
)


def _session_row(s: Any, animals: Mapping[int, str]) -> SessionRow:
    """A dashboard row from a result row holding `_SESSION_COLUMNS`."""
    return SessionRow(
        key=s.key,
        stall=s.stall,
        meter_id=s.meter_id,
        state=s.state,
        started_at=s.started_at,
        ended_at=s.ended_at,
        yield_l=s.yield_l,
        duration_s=s.duration_s,
        peak_flow_l_min=s.peak_flow_l_min,
        animal_id=s.animal_id,
        animal_label=animals.get(s.animal_id) if s.animal_id is not None else None,
        rfid=s.rfid,
        id_source=s.id_source,
        conductivity_max_ms_cm=s.conductivity_max_ms_cm,
        blood=s.blood,
        quality_grade=s.quality_grade,
        abnormal=bool(s.abnormal),
        reattached=bool(s.reattached),
        flags=tuple(f for f in (s.flags or "").split(",") if f),
        destination=s.destination,
        divert_reason=s.divert_reason,
        divert_confirmed_by=s.divert_confirmed_by,
    )


def _labels(tx: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = tx.execute(select(Animal.id, Animal.number, Animal.name).where(Animal.id.in_(wanted)))
    return {i: (f"{n} {name}" if name else n) for i, n, name in rows}


def read_dashboard(
    db: Database, *, since: datetime, finished_since: datetime, recent_limit: int
) -> DashboardRows:
    """Sessions started at or after `since` (UTC); the open ones; the `recent_limit` last
    finished at or after `finished_since`, newest first; the alerts not resolved, newest
    first. Listed sessions and alerts carry their cow's label."""
    # `state || ''`: not by the state index (a year of finished sessions) but by ended_at.
    finished = MilkSession.state.op("||")("").in_(FINISHED_STATES)
    with db.read() as tx:
        # The day's figures need a few columns of each session since the look-back; only the
        # sessions the dashboard lists (open, most recent) are read whole, with their labels.
        sessions = tuple(
            DaySession(
                state, utc_from_text(started), utc_from_text(ended), y, grade_, animal, dest, by
            )
            for state, started, ended, y, grade_, animal, dest, by in tx.execute(
                select(
                    MilkSession.state,
                    type_coerce(MilkSession.started_at, String),
                    type_coerce(MilkSession.ended_at, String),
                    MilkSession.yield_l,
                    MilkSession.quality_grade,
                    MilkSession.animal_id,
                    MilkSession.destination,
                    MilkSession.divert_confirmed_by,
                )
                .where(MilkSession.started_at >= since)
                .order_by(MilkSession.started_at)
            )
        )
        # Open sessions, however old (a console left running still counts them as open).
        open_raw = list(
            tx.execute(select(*_SESSION_COLUMNS).where(MilkSession.state == "in_progress"))
        )
        recent_raw = list(
            tx.execute(
                select(*_SESSION_COLUMNS)
                .where(finished, MilkSession.ended_at >= finished_since)
                .order_by(MilkSession.ended_at.desc(), MilkSession.started_at)
                .limit(recent_limit)
            )
        )
        alerts = list(
            tx.scalars(
                select(Alert).where(Alert.state != "resolved").order_by(Alert.raised_at.desc())
            )
        )
        labels = _labels(
            tx, [s.animal_id for s in recent_raw + open_raw] + [a.animal_id for a in alerts]
        )
        alert_rows = tuple(
            AlertRow(
                id=a.id,
                kind=a.kind,
                severity=a.severity,
                state=a.state,
                raised_at=a.raised_at,
                message=a.message or "",
                animal_label=labels.get(a.animal_id) if a.animal_id is not None else None,
                session_key=a.session_key,
                meter_id=a.meter_id,
            )
            for a in alerts
        )
    return DashboardRows(
        sessions=sessions,
        open_sessions=tuple(_session_row(s, labels) for s in open_raw),
        recent=tuple(_session_row(s, labels) for s in recent_raw),
        alerts=alert_rows,
    )
