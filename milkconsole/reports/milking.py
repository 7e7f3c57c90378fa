"""The milking report: one shift (or any period) against the same shift yesterday and the week.

What it holds, and how each figure is defined (docs/reports.md says the same for people):

- *cows milked*: identified cows (each once) plus unidentified milkings; *total* the milk of
  every finished session (completed, incomplete, interrupted), *average* total / cows milked.
  The same figures for the same shift yesterday and the mean over the previous 7 days (the
  milking that started nearest the same clock time, within 4 h; days without one are left out).
- *drops*: identified cows whose milk in the period is below (1 - `drop_share`) of their expected
  yield (the median of their last 6 completed milkings before the period: the stall tile's).
- exceptions: unidentified (no cow), incomplete, kicked off (cluster off early: flag `short`,
  or a meter's `kickoff`), re-attached, interrupted (meter lost), recovered (read back after a
  console restart).
- alerts raised from the first start until 10 minutes after the last cluster came off; milk
  diverted (`destination == 'diverted'`).
- duration (first attach to last take-off), cows per hour, and per stall / per side throughput.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from milkconsole.herd.directory import display_tag
from milkconsole.meters.parlour import parlour_sides, side_name
from milkconsole.reports.dashboard import MIN_RATE_SPAN
from milkconsole.reports.periods import Period, same_shift_on, split_milkings
from milkconsole.store import history
from milkconsole.store.alerts import AlertFilter, list_alerts
from milkconsole.store.db import Database
from milkconsole.store.history import WindowTotals
from milkconsole.store.sessions import SessionRecord

DEFAULT_DROP_SHARE = 0.30
COMPARISON_DAYS = 7
ALERT_GRACE = timedelta(minutes=10)
# Exception lists, in the order the report shows them.
EXCEPTIONS: tuple[tuple[str, str], ...] = (
    ("unidentified", "Unidentified"),
    ("incomplete", "Incomplete"),
    ("kicked_off", "Kicked off"),
    ("reattached", "Re-attached"),
    ("interrupted", "Interrupted"),
    ("recovered", "Recovered after a restart"),
)
KICK_OFF_FLAGS = ("short", "kickoff")


@dataclass(frozen=True, slots=True)
class ShiftFigures:
    """Cows milked, sessions and milk of one period."""

    cows_milked: float
    sessions: float
    yield_l: float

    @property
    def per_cow_l(self) -> float | None:
        return self.yield_l / self.cows_milked if self.cows_milked else None

    @classmethod
    def of(cls, totals: WindowTotals) -> ShiftFigures:
        return cls(float(totals.cows_milked), float(totals.sessions), totals.yield_l)

    @classmethod
    def mean(cls, figures: Sequence[ShiftFigures]) -> ShiftFigures | None:
        if not figures:
            return None
        n = len(figures)
        return cls(
            sum(f.cows_milked for f in figures) / n,
            sum(f.sessions for f in figures) / n,
            sum(f.yield_l for f in figures) / n,
        )


@dataclass(frozen=True, slots=True)
class CowDrop:
    """A cow that gave clearly less than she usually does."""

    animal_id: int
    cow: str
    stall: int
    yield_l: float
    expected_l: float

    @property
    def share(self) -> float:
        """Her milk as a share of what was expected (0.6 = 40 % down)."""
        return self.yield_l / self.expected_l


@dataclass(frozen=True, slots=True)
class SessionNote:
    """One milking an exception list names."""

    key: str
    stall: int
    cow: str
    started_at: datetime
    yield_l: float
    state: str
    note: str


@dataclass(frozen=True, slots=True)
class AlertLine:
    raised_at: datetime
    kind: str
    severity: str
    cow: str
    message: str


@dataclass(frozen=True, slots=True)
class DivertedMilk:
    cow: str
    stall: int
    yield_l: float
    reason: str


@dataclass(frozen=True, slots=True)
class Throughput:
    """Milkings through one stall or one side: how many, the milk, time in use, cows per hour."""

    name: str  # "12" for a stall, "A" for a side
    meter_id: str
    sessions: int
    yield_l: float
    busy_s: float
    cows_per_hour: float | None

    @property
    def mean_duration_s(self) -> float | None:
        return self.busy_s / self.sessions if self.sessions else None


@dataclass(frozen=True, slots=True)
class CowLine:
    """One milking of the period as the report's cow table (and its CSV) lists it."""

    record: SessionRecord
    cow: str
    expected_l: float | None

    @property
    def share(self) -> float | None:
        if not self.expected_l:
            return None
        return self.record.yield_l / self.expected_l


@dataclass(frozen=True, slots=True)
class MilkingReport:
    """Everything a milking report shows (see the module docstring)."""

    period: Period
    generated_at: datetime
    figures: ShiftFigures
    yesterday: ShiftFigures | None
    week_mean: ShiftFigures | None
    week_days: int
    drop_share: float
    drops: tuple[CowDrop, ...]
    exceptions: Mapping[str, tuple[SessionNote, ...]]
    alerts: tuple[AlertLine, ...]
    diverted: tuple[DivertedMilk, ...]
    first_start: datetime | None
    last_end: datetime | None
    cows_per_hour: float | None
    stalls: tuple[Throughput, ...]
    sides: tuple[Throughput, ...]
    lines: tuple[CowLine, ...] = field(default=())

    @property
    def duration_s(self) -> float | None:
        if self.first_start is None or self.last_end is None:
            return None
        return (self.last_end - self.first_start).total_seconds()

    @property
    def diverted_l(self) -> float:
        return sum(d.yield_l for d in self.diverted)

    @property
    def tank_l(self) -> float:
        """The milk that was not diverted."""
        return self.figures.yield_l - self.diverted_l


def cow_label(rec: SessionRecord) -> str:
    """'1042 Bella', or for a milking nobody named: 'tag 982 000123456789' / 'no ID'."""
    if rec.animal_number is not None:
        return rec.cow_label
    return f"tag {display_tag(rec.rfid)}" if rec.rfid else "no ID"


def _note(rec: SessionRecord, note: str) -> SessionNote:
    return SessionNote(
        rec.key, rec.stall, cow_label(rec), rec.started_at, rec.yield_l, rec.state, note
    )


def exceptions_of(records: Sequence[SessionRecord]) -> dict[str, tuple[SessionNote, ...]]:
    """The exception lists (EXCEPTIONS) of these milkings; one milking may be in several."""
    out: dict[str, list[SessionNote]] = {k: [] for k, _ in EXCEPTIONS}
    for r in records:
        flags = ", ".join(r.flags)
        if r.animal_id is None:
            out["unidentified"].append(
                _note(r, "tag not in the herd list" if r.rfid else "no tag read")
            )
        if r.state == "incomplete":
            out["incomplete"].append(_note(r, flags or "incomplete"))
        if any(f in r.flags for f in KICK_OFF_FLAGS):
            out["kicked_off"].append(_note(r, f"{r.duration_s:.0f} s"))
        if r.reattached:
            out["reattached"].append(_note(r, "cluster put back on"))
        if r.state == "interrupted":
            out["interrupted"].append(_note(r, flags or "meter lost"))
        if "recovered" in r.flags:
            out["recovered"].append(_note(r, "read back from the meter"))
    return {k: tuple(v) for k, v in out.items()}


def drops_of(
    records: Sequence[SessionRecord], expected: Mapping[int, float], drop_share: float
) -> tuple[CowDrop, ...]:
    """Cows whose milk in the period (all their sessions: a split milking is summed) is below
    (1 - drop_share) of their expected yield; biggest drop first."""
    by_cow: dict[int, list[SessionRecord]] = {}
    for r in records:
        if r.animal_id is not None:
            by_cow.setdefault(r.animal_id, []).append(r)
    out = []
    for animal_id, recs in by_cow.items():
        exp = expected.get(animal_id)
        total = sum(r.yield_l for r in recs)
        if exp and total < (1.0 - drop_share) * exp:
            out.append(CowDrop(animal_id, cow_label(recs[0]), recs[0].stall, total, exp))
    return tuple(sorted(out, key=lambda d: (d.share, d.cow)))


def _rate(sessions: int, hours: float) -> float | None:
    return sessions / hours if hours > 0 else None


def throughput_of(
    records: Sequence[SessionRecord], layout: str, hours: float
) -> tuple[tuple[Throughput, ...], tuple[Throughput, ...]]:
    """Per stall and per side of the pit: milkings, milk, time in use and cows per hour (over
    the milking's `hours`)."""
    by_stall: dict[int, list[SessionRecord]] = {}
    for r in records:
        by_stall.setdefault(r.stall, []).append(r)
    stalls = []
    for stall in sorted(by_stall):
        recs = by_stall[stall]
        stalls.append(
            Throughput(
                name=str(stall),
                meter_id=recs[-1].meter_id,
                sessions=len(recs),
                yield_l=sum(r.yield_l for r in recs),
                busy_s=sum(r.duration_s for r in recs),
                cows_per_hour=_rate(len(recs), hours),
            )
        )
    sides = []
    layout_sides = parlour_sides(list(by_stall), layout) if by_stall else []
    for i, side in enumerate(layout_sides):
        members = [t for t in stalls if int(t.name) in side]
        n = sum(t.sessions for t in members)
        sides.append(
            Throughput(
                name=side_name(i, len(layout_sides)),
                meter_id="",
                sessions=n,
                yield_l=sum(t.yield_l for t in members),
                busy_s=sum(t.busy_s for t in members),
                cows_per_hour=_rate(n, hours),
            )
        )
    return tuple(stalls), tuple(sides)


def _comparison_windows(
    db: Database, period: Period
) -> list[tuple[int, tuple[datetime, datetime]]]:
    """(days back, [start, end)) of the same shift on each of the previous days."""
    if period.kind != "milking":
        return [
            (k, (period.start - timedelta(days=k), period.end - timedelta(days=k)))
            for k in range(1, COMPARISON_DAYS + 1)
        ]
    span = timedelta(days=COMPARISON_DAYS) + timedelta(hours=6)
    starts = history.session_starts(db, period.start - span, period.start)
    runs = split_milkings(starts)
    out = []
    for k in range(1, COMPARISON_DAYS + 1):
        run = same_shift_on(runs, period, k)
        if run is not None:
            out.append((k, (run[0], run[1] + timedelta(microseconds=1))))
    return out


def build_milking_report(
    db: Database,
    period: Period,
    *,
    drop_share: float = DEFAULT_DROP_SHARE,
    layout: str = "herringbone",
    now: datetime | None = None,
) -> MilkingReport:
    """The milking report of `period` (see the module docstring)."""
    if not 0.0 < drop_share < 1.0:
        raise ValueError(f"drop_share must be between 0 and 1, not {drop_share}")
    records = history.finished_between(db, period.start, period.end)
    comparisons = _comparison_windows(db, period)
    totals = history.window_totals(db, [(period.start, period.end)] + [w for _, w in comparisons])
    figures = ShiftFigures.of(totals[0])
    previous = {k: ShiftFigures.of(t) for (k, _), t in zip(comparisons, totals[1:], strict=True)}
    week = [f for f in previous.values() if f.sessions]
    cow_ids = {r.animal_id for r in records if r.animal_id is not None}
    expected = history.expected_yields(db, before=period.start, animal_ids=cow_ids)
    first = min((r.started_at for r in records), default=None)
    last = max((r.ended_at or r.started_at for r in records), default=None)
    hours = 0.0
    if first is not None and last is not None:
        hours = max(last - first, MIN_RATE_SPAN).total_seconds() / 3600.0
    stalls, sides = throughput_of(records, layout, hours)
    alert_end = (last + ALERT_GRACE) if last is not None else period.end
    if period.kind != "milking":
        alert_end = period.end
    alerts = list_alerts(
        db, AlertFilter(states=(), since=period.start, until=alert_end, limit=10_000)
    )
    yesterday = previous.get(1)
    return MilkingReport(
        period=period,
        generated_at=(now or datetime.now(UTC)),
        figures=figures,
        yesterday=yesterday if yesterday is not None and yesterday.sessions else None,
        week_mean=ShiftFigures.mean(week),
        week_days=len(week),
        drop_share=drop_share,
        drops=drops_of(records, expected, drop_share),
        exceptions=exceptions_of(records),
        alerts=tuple(
            AlertLine(a.raised_at, a.kind, a.severity, a.cow_label, a.message)
            for a in sorted(alerts, key=lambda a: (a.raised_at, a.id))
        ),
        diverted=tuple(
            DivertedMilk(cow_label(r), r.stall, r.yield_l, r.divert_reason or "")
            for r in records
            if r.destination == "diverted"
        ),
        first_start=first,
        last_end=last,
        cows_per_hour=_rate(len(records), hours),
        stalls=stalls,
        sides=sides,
        lines=tuple(
            CowLine(r, cow_label(r), expected.get(r.animal_id) if r.animal_id else None)
            for r in records
        ),
    )
