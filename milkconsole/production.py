"""Read-only production figures for the console: today's totals, the current milking, the herd.

Everything here reads the database and returns frozen values, so the console can run it on a
worker thread and hand the result to the GUI thread. No Qt (the core never imports it) and no
writes: identity corrections go through `SessionStore`.

"Today" and the hourly buckets are local time (the farm's clock); the store keeps UTC. A
*milking* is a run of sessions with no gap longer than `MILKING_GAP` between one start and the
next, so milk per hour and cows per hour describe the milking going on now (or the last one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, NamedTuple

from sqlalchemy import String, select, type_coerce
from sqlalchemy.orm import Session

from milkconsole.herd.separation import DivertDecision, SeparationBook, SeparationRules
from milkconsole.meters.events import SessionSnapshot
from milkconsole.meters.rfid import InvalidTag, format_display, normalize_tag
from milkconsole.store.db import Database
from milkconsole.store.history import (
    EXPECTED_FROM_SESSIONS,
    HIGH_CONDUCTIVITY_MS_CM,
    expected_yields_tx,
)
from milkconsole.store.schema import Alert, Animal, AnimalTag, MilkSession, utc_from_text
from milkconsole.store.treatments import separation_inputs

FINISHED_STATES = ("completed", "incomplete", "interrupted")
GRADES = ("A", "B", "C", "reject")
MILKING_GAP = timedelta(minutes=45)
# Rates over less than this are noise (two cows in three minutes is not 40 cows/h).
MIN_RATE_SPAN = timedelta(minutes=10)
# Display-side thresholds for the tile's own alert chips; the health module raises the real
# alerts (stored in `alerts`) with per-cow baselines. Expected yield and the conductivity
# limit are defined once, in `milkconsole.store.history` (reports use them too).
LOW_YIELD_RATIO = 0.7


@dataclass(frozen=True, slots=True)
class AnimalInfo:
    """One cow of the herd list (her card on the herd screen: tags, lactation, calving)."""

    id: int
    number: str
    name: str | None = None
    rfid_tag: str | None = None
    group_name: str | None = None
    other_tags: tuple[str, ...] = ()
    birth_date: date | None = None
    lactation_number: int | None = None
    last_calving_date: date | None = None
    withheld_reason: str | None = None
    in_odoo: bool = False

    @property
    def label(self) -> str:
        return f"{self.number} {self.name}" if self.name else self.number

    @property
    def tags(self) -> tuple[str, ...]:
        """Every tag she wears, canonical, her primary one first."""
        primary = canonical_tag(self.rfid_tag)
        return ((primary,) if primary else ()) + tuple(t for t in self.other_tags if t != primary)


@dataclass(frozen=True, slots=True)
class HerdDirectory:
    """The herd as the console needs it: find a cow by tag or number, what she usually gives,
    and whether her milk must be kept out of the tank (`separation`, read in the same
    transaction, so a cow is never shown known but without it).

    `expected_yield_l` is the median yield of her last completed sessions (absent without
    history; defined in `milkconsole.store.history.expected_yields`).
    """

    animals: Mapping[int, AnimalInfo] = field(default_factory=dict)
    by_tag: Mapping[str, int] = field(default_factory=dict)
    expected_yield_l: Mapping[int, float] = field(default_factory=dict)
    separation: SeparationBook = field(default_factory=SeparationBook)
    loaded_at: datetime | None = None

    def decide(
        self, animal_id: int | None, started_at: datetime, *, zone: tzinfo | None = None
    ) -> DivertDecision:
        """Is her milk, in the milking that started at `started_at`, to be kept out?"""
        return self.separation.decide(animal_id, started_at, zone=zone)

    def find_tag(self, rfid: str | None) -> AnimalInfo | None:
        tag = canonical_tag(rfid)
        if tag is None:
            return None
        animal_id = self.by_tag.get(tag)
        return None if animal_id is None else self.animals.get(animal_id)

    def find_number(self, number: str) -> AnimalInfo | None:
        wanted = number.strip()
        return next((a for a in self.animals.values() if a.number == wanted), None)

    def search(self, text: str, limit: int = 20) -> list[AnimalInfo]:
        """Cows whose number starts with `text` (first), then whose name contains it."""
        q = text.strip().casefold()
        herd = sorted(self.animals.values(), key=_number_order)
        if not q:
            return herd[:limit]
        by_number = [a for a in herd if a.number.casefold().startswith(q)]
        by_name = [a for a in herd if a not in by_number and a.name and q in a.name.casefold()]
        return (by_number + by_name)[:limit]

    def expected_for(self, animal_id: int | None) -> float | None:
        return None if animal_id is None else self.expected_yield_l.get(animal_id)


def canonical_tag(raw: str | None) -> str | None:
    """A tag as the herd list keys it (`milkconsole.meters.rfid` canonical form when it parses)."""
    if raw is None or not raw.strip():
        return None
    try:
        return normalize_tag(raw)
    except InvalidTag:
        return raw.strip()


def display_tag(raw: str) -> str:
    """A tag as people read it (`982 000123456789`), or as it came when it does not parse."""
    try:
        return format_display(normalize_tag(raw))
    except InvalidTag:
        return raw.strip()


def _number_order(a: AnimalInfo) -> tuple[int, int, str]:
    # Herd numbers are usually digits: 9 before 10.
    return (0, int(a.number), "") if a.number.isdigit() else (1, 0, a.number)


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
    open_sessions: tuple[SessionRow, ...]
    recent: tuple[SessionRow, ...]
    alerts: tuple[AlertRow, ...]
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


def local_zone() -> tzinfo:
    """The machine's local time zone (the farm's clock)."""
    zone = datetime.now().astimezone().tzinfo
    return zone if zone is not None else UTC


def load_herd(
    db: Database,
    *,
    history_sessions: int = EXPECTED_FROM_SESSIONS,
    now: datetime | None = None,
    rules: SeparationRules | None = None,
) -> HerdDirectory:
    """The active herd, every tag each cow wears, each cow's expected yield, and what milk
    separation needs to know of the cows it concerns at `now` (default: the clock now)."""
    now = now or datetime.now(UTC)
    rules = rules or SeparationRules()
    with db.read() as tx:
        others: dict[int, list[str]] = {}
        for t in tx.scalars(select(AnimalTag)):
            alt = canonical_tag(t.rfid_tag)
            if alt:
                others.setdefault(t.animal_id, []).append(alt)
        animals: dict[int, AnimalInfo] = {}
        by_tag: dict[str, int] = {}
        for a in tx.scalars(select(Animal).where(Animal.active.is_(True))):
            animals[a.id] = AnimalInfo(
                a.id,
                a.number,
                a.name,
                a.rfid_tag,
                a.group_name,
                other_tags=tuple(sorted(others.get(a.id, ()))),
                birth_date=a.birth_date,
                lactation_number=a.lactation_number,
                last_calving_date=a.last_calving_date,
                withheld_reason=a.milk_withheld_reason,
                in_odoo=a.odoo_id is not None,
            )
            tag = canonical_tag(a.rfid_tag)
            if tag:
                by_tag[tag] = a.id
        for animal_id, tags in others.items():
            if animal_id in animals:
                for alt in tags:
                    by_tag.setdefault(alt, animal_id)
        # One definition of a cow's expected yield (store/history.py), shared with the reports.
        expected = expected_yields_tx(tx, animal_ids=list(animals), per_cow=history_sessions)
        book = SeparationBook(separation_inputs(tx, now, rules), rules)
    return HerdDirectory(animals, by_tag, expected, book, now)


class _DayRow(NamedTuple):
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


# What the dashboard reads of a session: columns, not ORM rows (a day of a big herd is
# thousands of sessions, and ORM rows cost several times more to load).
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
    # `state || ''`: not by the state index (a year of finished sessions) but by ended_at.
    finished = MilkSession.state.op("||")("").in_(FINISHED_STATES)
    with db.read() as tx:
        # The day's figures need five columns of each session since the look-back; only the
        # sessions the dashboard lists (open, most recent) are read whole, with their labels.
        sessions = [
            _DayRow(
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
                .where(MilkSession.started_at >= look_back_utc)
                .order_by(MilkSession.started_at)
            )
        ]
        # Open sessions, however old (a console left running still counts them as open).
        open_raw = list(
            tx.execute(select(*_SESSION_COLUMNS).where(MilkSession.state == "in_progress"))
        )
        recent_raw = list(
            tx.execute(
                select(*_SESSION_COLUMNS)
                .where(finished, MilkSession.ended_at >= day_start_utc)
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
    open_rows = sorted((_session_row(s, labels) for s in open_raw), key=lambda r: r.stall)
    recent = [_session_row(s, labels) for s in recent_raw]
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
        open_sessions=tuple(open_rows),
        recent=tuple(recent),
        alerts=tuple(
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
        ),
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
