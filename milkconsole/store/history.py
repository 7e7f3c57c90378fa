"""The store's side of reports and trends: the queries, sized for a year of a large herd.

Every function reads in one transaction and returns frozen values (`SessionRecord`, the
dataclasses below); `milkconsole.reports` turns them into figures. Aggregates are computed in
SQL from `ix_milk_sessions_started_at_figures` (migration 0005), which carries every column
they need, and a cow's sessions come from `ix_milk_sessions_animal_id_started_at`.

A cow's *expected yield* is defined here, once: the median of her last
`EXPECTED_FROM_SESSIONS` completed sessions started before a given time (before now for the
stall tiles, before the period for a report).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, case, func, or_, select, text
from sqlalchemy.orm import Session

from milkconsole.meters.events import FINISHED_STATES
from milkconsole.store.db import Database
from milkconsole.store.schema import Animal, HealthEvent, SessionRow, UTCDateTime
from milkconsole.store.sessions import SessionRecord, record_from_row

# Expected yield: the median of this many of the cow's last completed sessions.
EXPECTED_FROM_SESSIONS = 6
# A milking whose conductivity peaked above this is an EC outlier (the stall tile's HIGH EC).
HIGH_CONDUCTIVITY_MS_CM = 6.5
# Flags that say the meter stopped answering during the milking.
COMM_FLAGS = ("comm_gap", "comm_timeout")
# Milkings a meter comparison leaves out: their yield says nothing about the meter.
UNTRUSTED_FLAGS = ("rfid_split", "meter_reset", "comm_gap", "comm_timeout", "recovered")


def expected_from(yields: Sequence[float], per_cow: int = EXPECTED_FROM_SESSIONS) -> float | None:
    """The expected yield from a cow's last completed yields (newest first; the first
    `per_cow` count): their median, None without any."""
    recent = list(yields[:per_cow])
    return statistics.median(recent) if recent else None


@dataclass(frozen=True, slots=True)
class WindowTotals:
    """The finished milkings that started in one window [start, end)."""

    start: datetime
    end: datetime
    sessions: int
    yield_l: float
    cows: int  # identified cows, each counted once
    unidentified: int
    ec_outliers: int
    diverted_l: float

    @property
    def cows_milked(self) -> int:
        """Identified cows plus unidentified milkings (each one a cow nobody named)."""
        return self.cows + self.unidentified


@dataclass(frozen=True, slots=True)
class CowInfo:
    """One cow as a trend or a report heads her."""

    id: int
    number: str
    name: str | None
    rfid_tag: str | None
    group_name: str | None
    birth_date: date | None
    lactation_number: int | None
    last_calving_date: date | None
    milk_withheld_reason: str | None
    active: bool

    @property
    def label(self) -> str:
        return f"{self.number} {self.name}" if self.name else self.number


@dataclass(frozen=True, slots=True)
class HealthEventRecord:
    """A recorded health event of a cow (mastitis suspected, a treatment, ...)."""

    key: str
    kind: str
    detail: str | None
    recorded_at: datetime
    session_key: str | None


@dataclass(frozen=True, slots=True)
class MeterCowYield:
    """One cow's trusted, completed milkings on one meter in a period: how many, their sum."""

    meter_id: str
    animal_id: int
    milkings: int
    yield_l: float


@dataclass(frozen=True, slots=True)
class MeterPeriodStats:
    """One meter's finished milkings in a period."""

    meter_id: str
    stall: int
    sessions: int
    completed: int
    incomplete: int
    interrupted: int
    comm_errors: int  # milkings during which the meter went silent
    identified: int
    yield_l: float
    mean_avg_flow_l_min: float | None
    mean_peak_flow_l_min: float | None
    mean_duration_s: float | None


# Without statistics SQLite prefers the `state` index to a time range or a cow (one state
# matches most of a year's rows); comparing `state || ''` keeps it from choosing that index.
_STATE = SessionRow.state.concat("")


def _finished(query: Select) -> Select:
    return query.where(_STATE.in_(FINISHED_STATES))


def _records(tx: Session, query: Select) -> list[SessionRecord]:
    return [record_from_row(row, animal) for row, animal in tx.execute(query).all()]


def finished_between(db: Database, start: datetime, end: datetime) -> list[SessionRecord]:
    """Finished sessions that started in [start, end), in start order, with their cow."""
    query = _finished(
        select(SessionRow, Animal)
        .outerjoin(Animal, Animal.id == SessionRow.animal_id)
        .where(SessionRow.started_at >= start, SessionRow.started_at < end)
        .order_by(SessionRow.started_at, SessionRow.stall)
    )
    with db.read() as tx:
        return _records(tx, query)


def session_starts(db: Database, start: datetime, end: datetime) -> list[datetime]:
    """Start times of the sessions (any state) that started in [start, end), in order."""
    with db.read() as tx:
        return list(
            tx.scalars(
                select(SessionRow.started_at)
                .where(SessionRow.started_at >= start, SessionRow.started_at < end)
                .order_by(SessionRow.started_at)
            )
        )


def session_keys(db: Database, start: datetime, end: datetime | None = None) -> list[str]:
    """Keys of the sessions (any state) that started at or after `start` (and before `end`),
    in start order."""
    query = select(SessionRow.key).where(SessionRow.started_at >= start)
    if end is not None:
        query = query.where(SessionRow.started_at < end)
    with db.read() as tx:
        return list(tx.scalars(query.order_by(SessionRow.started_at)))


def last_session_end(db: Database) -> datetime | None:
    """When the newest session ended (None: none has)."""
    with db.read() as tx:
        return tx.scalar(select(func.max(SessionRow.ended_at)))


def last_session_start(db: Database, before: datetime) -> datetime | None:
    """When the newest finished session started before `before`."""
    with db.read() as tx:
        return tx.scalar(
            _finished(select(func.max(SessionRow.started_at))).where(SessionRow.started_at < before)
        )


def window_totals(db: Database, windows: Sequence[tuple[datetime, datetime]]) -> list[WindowTotals]:
    """The totals of each window [start, end) in one statement.

    One correlated aggregate per window over the figures index, with no GROUP BY: each window
    is an index range the aggregate walks in order, so a year of days costs one pass over the
    year's index entries (a GROUP BY over a computed day would sort all of them).
    """
    if not windows:
        return []
    params = []
    rows = []
    for i, (lo, hi) in enumerate(windows):
        rows.append(f"({i}, :lo{i}, :hi{i})")
        params += [
            bindparam(f"lo{i}", lo, type_=UTCDateTime),
            bindparam(f"hi{i}", hi, type_=UTCDateTime),
        ]
    states = ", ".join(f"'{s}'" for s in FINISHED_STATES)
    sql = text(
        f"""
        WITH windows(i, lo, hi) AS (VALUES {", ".join(rows)})
        SELECT i, (
            SELECT json_array(
                count(*),
                total(m.yield_l),
                count(DISTINCT m.animal_id),
                total(m.animal_id IS NULL),
                total(m.conductivity_max_ms_cm > :high_ec),
                total(CASE WHEN m.destination = 'diverted' THEN m.yield_l END)
            )
            FROM milk_sessions AS m INDEXED BY ix_milk_sessions_started_at_figures
            WHERE m.started_at >= windows.lo AND m.started_at < windows.hi
              AND m.state IN ({states})
        ) FROM windows ORDER BY i
        """
    ).bindparams(*params, bindparam("high_ec", HIGH_CONDUCTIVITY_MS_CM))
    with db.read() as tx:
        result = tx.execute(sql).all()
    out = []
    for (i, packed), (lo, hi) in zip(result, windows, strict=True):
        n, total, cows, unknown, ec, diverted = json.loads(packed)
        del i
        out.append(
            WindowTotals(
                start=lo,
                end=hi,
                sessions=int(n),
                yield_l=float(total),
                cows=int(cows),
                unidentified=int(unknown),
                ec_outliers=int(ec),
                diverted_l=float(diverted),
            )
        )
    return out


def _expected_query(before: datetime | None, animal_ids: Iterable[int] | None, per_cow: int) -> Any:
    # Per cow, her newest completed sessions through her own index (a LIMIT per cow), so the
    # cost grows with the herd, not with the years of history behind it.
    where_before = "AND s.started_at < :before" if before is not None else ""
    where_ids = "WHERE a.id IN :ids" if animal_ids is not None else ""
    sql = text(
        f"""
        SELECT a.id, m.yield_l
        FROM animals AS a JOIN milk_sessions AS m ON m.rowid IN (
            SELECT s.rowid FROM milk_sessions AS s INDEXED BY ix_milk_sessions_animal_id_started_at
            WHERE s.animal_id = a.id AND s.state = 'completed' {where_before}
            ORDER BY s.started_at DESC LIMIT :n
        )
        {where_ids}
        ORDER BY a.id, m.started_at DESC
        """
    ).bindparams(bindparam("n", per_cow))
    if before is not None:
        sql = sql.bindparams(bindparam("before", before, type_=UTCDateTime))
    if animal_ids is not None:
        sql = sql.bindparams(bindparam("ids", list(animal_ids), expanding=True))
    return sql


def expected_yields_tx(
    tx: Session,
    *,
    before: datetime | None = None,
    animal_ids: Iterable[int] | None = None,
    per_cow: int = EXPECTED_FROM_SESSIONS,
) -> dict[int, float]:
    """Each cow's expected yield (see the module docstring) inside an open transaction."""
    recent: dict[int, list[float]] = {}
    for animal_id, yield_l in tx.execute(_expected_query(before, animal_ids, per_cow)):
        recent.setdefault(animal_id, []).append(yield_l)
    out = {}
    for k, v in recent.items():
        value = expected_from(v, per_cow)
        if value is not None:
            out[k] = value
    return out


def expected_yields(
    db: Database, *, before: datetime | None = None, animal_ids: Iterable[int] | None = None
) -> dict[int, float]:
    """Each cow's expected yield from her completed sessions started before `before` (all of
    them when None); only `animal_ids` when given."""
    with db.read() as tx:
        return expected_yields_tx(tx, before=before, animal_ids=animal_ids)


def cow_info(db: Database, animal_id: int) -> CowInfo | None:
    with db.read() as tx:
        a = tx.get(Animal, animal_id)
        return None if a is None else _cow_info(a)


def _cow_info(a: Animal) -> CowInfo:
    return CowInfo(
        id=a.id,
        number=a.number,
        name=a.name,
        rfid_tag=a.rfid_tag,
        group_name=a.group_name,
        birth_date=a.birth_date,
        lactation_number=a.lactation_number,
        last_calving_date=a.last_calving_date,
        milk_withheld_reason=a.milk_withheld_reason,
        active=bool(a.active),
    )


def cows(db: Database, animal_ids: Iterable[int] | None = None) -> dict[int, CowInfo]:
    """The cows (all of them, or these), by id."""
    query = select(Animal)
    if animal_ids is not None:
        query = query.where(Animal.id.in_(list(animal_ids)))
    with db.read() as tx:
        return {a.id: _cow_info(a) for a in tx.scalars(query)}


def cow_sessions(
    db: Database, animal_id: int, start: datetime, end: datetime
) -> tuple[list[SessionRecord], list[float]]:
    """A cow's finished sessions that started in [start, end) (oldest first), and the yields of
    her last completed sessions before `start` (newest first), which her first expectations in
    the period come from."""
    query = _finished(
        select(SessionRow, Animal)
        .join(Animal, Animal.id == SessionRow.animal_id)
        .where(
            SessionRow.animal_id == animal_id,
            SessionRow.started_at >= start,
            SessionRow.started_at < end,
        )
        .order_by(SessionRow.started_at)
    )
    before = (
        select(SessionRow.yield_l)
        .where(
            SessionRow.animal_id == animal_id,
            _STATE == "completed",
            SessionRow.started_at < start,
        )
        .order_by(SessionRow.started_at.desc())
        .limit(EXPECTED_FROM_SESSIONS)
    )
    with db.read() as tx:
        return _records(tx, query), list(tx.scalars(before))


def health_events(
    db: Database, animal_id: int, start: datetime, end: datetime
) -> list[HealthEventRecord]:
    """A cow's health events recorded in [start, end), oldest first."""
    with db.read() as tx:
        rows = tx.scalars(
            select(HealthEvent)
            .where(
                HealthEvent.animal_id == animal_id,
                HealthEvent.recorded_at >= start,
                HealthEvent.recorded_at < end,
            )
            .order_by(HealthEvent.recorded_at)
        )
        return [
            HealthEventRecord(r.key, r.kind, r.detail, r.recorded_at, r.session_key) for r in rows
        ]


def _trusted() -> list:
    conditions = [_STATE == "completed", SessionRow.reattached.is_(False)]
    conditions += [~SessionRow.flags.contains(flag) for flag in UNTRUSTED_FLAGS]
    return conditions


def meter_cow_yields(db: Database, start: datetime, end: datetime) -> list[MeterCowYield]:
    """Per meter and identified cow: her trusted completed milkings started in [start, end)
    (not re-attached, split, reset, silent or recovered), how many and their total."""
    query = (
        select(
            SessionRow.meter_id,
            SessionRow.animal_id,
            func.count(),
            func.total(SessionRow.yield_l),
        )
        .where(
            SessionRow.started_at >= start,
            SessionRow.started_at < end,
            SessionRow.animal_id.is_not(None),
            *_trusted(),
        )
        .group_by(SessionRow.meter_id, SessionRow.animal_id)
    )
    with db.read() as tx:
        return [
            MeterCowYield(meter_id, int(animal_id), int(n), float(total))
            for meter_id, animal_id, n, total in tx.execute(query)
        ]


def meter_period_stats(db: Database, start: datetime, end: datetime) -> list[MeterPeriodStats]:
    """Per meter, its finished milkings that started in [start, end)."""
    comm = or_(*[SessionRow.flags.contains(f) for f in COMM_FLAGS])
    query = (
        select(
            SessionRow.meter_id,
            func.min(SessionRow.stall),
            func.count(),
            func.total(case((SessionRow.state == "completed", 1), else_=0)),
            func.total(case((SessionRow.state == "incomplete", 1), else_=0)),
            func.total(case((SessionRow.state == "interrupted", 1), else_=0)),
            func.total(case((comm, 1), else_=0)),
            func.total(case((SessionRow.animal_id.is_not(None), 1), else_=0)),
            func.total(SessionRow.yield_l),
            func.avg(case((SessionRow.avg_flow_l_min > 0, SessionRow.avg_flow_l_min))),
            func.avg(case((SessionRow.peak_flow_l_min > 0, SessionRow.peak_flow_l_min))),
            func.avg(case((SessionRow.duration_s > 0, SessionRow.duration_s))),
        )
        .where(
            SessionRow.started_at >= start,
            SessionRow.started_at < end,
            _STATE.in_(FINISHED_STATES),
        )
        .group_by(SessionRow.meter_id)
    )
    with db.read() as tx:
        return [
            MeterPeriodStats(
                meter_id=r[0],
                stall=int(r[1]),
                sessions=int(r[2]),
                completed=int(r[3]),
                incomplete=int(r[4]),
                interrupted=int(r[5]),
                comm_errors=int(r[6]),
                identified=int(r[7]),
                yield_l=float(r[8]),
                mean_avg_flow_l_min=r[9],
                mean_peak_flow_l_min=r[10],
                mean_duration_s=r[11],
            )
            for r in tx.execute(query)
        ]


def cow_search(db: Database, text_: str, limit: int = 30) -> list[CowInfo]:
    """Cows whose number starts with `text_`, whose name contains it, or whose tag ends with
    it (the digits people read off an ear tag), numbers first; every cow when it is blank."""
    q = text_.strip()
    query = select(Animal)
    if q:
        query = query.where(
            or_(
                Animal.number.startswith(q, autoescape=True),
                func.lower(Animal.name).contains(q.lower(), autoescape=True),
                and_(Animal.rfid_tag.is_not(None), Animal.rfid_tag.endswith(q, autoescape=True)),
            )
        )
    query = query.order_by(Animal.active.desc(), func.length(Animal.number), Animal.number).limit(
        limit
    )
    with db.read() as tx:
        return [_cow_info(a) for a in tx.scalars(query)]


__all__ = [
    "EXPECTED_FROM_SESSIONS",
    "HIGH_CONDUCTIVITY_MS_CM",
    "CowInfo",
    "HealthEventRecord",
    "MeterCowYield",
    "MeterPeriodStats",
    "WindowTotals",
    "cow_info",
    "cow_search",
    "cow_sessions",
    "cows",
    "expected_from",
    "expected_yields",
    "expected_yields_tx",
    "finished_between",
    "health_events",
    "last_session_start",
    "meter_cow_yields",
    "meter_period_stats",
    "session_starts",
    "window_totals",
]
