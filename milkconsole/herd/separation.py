"""Milk separation: is this cow's milk to be kept out of the tank now, why, and until when.

Pure: the stall tile, the recorder's completion hook and a web view all call `decide` with
what the store knows of the cow (`CowSeparation`) and when the milking started, and get the
same `DivertDecision`. Three reasons keep milk out:

- a treatment's withdrawal (`milkconsole.herd.withdrawal`: hours or milkings, several at once, the
  latest end wins);
- colostrum: the first `colostrum_milkings` milkings after calving (8 by default). The count
  starts at local midnight of the calving date; in case milkings went unrecorded (a cow milked
  in the hospital pen) the period also ends `colostrum_max_days` after calving;
- the keep-out flag (`animals.milk_withheld_reason`: high SCC, blood, anything), until cleared.

The decision also says when the milk may go back (shown in advance) and flags the first milking
after a withdrawal or the colostrum period ended ("milk may go back in the tank").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Literal

from milkconsole.config_tables import numbers_from_table
from milkconsole.herd.withdrawal import (
    Treatment,
    Withdrawal,
    combine,
    local_text,
    milking_interval,
    previous_milkings,
    withdrawal_at,
)

if TYPE_CHECKING:
    from milkconsole.config import ParlourConfig

ReasonKind = Literal["treatment", "colostrum", "kept_out", "operator"]


@dataclass(frozen=True, slots=True)
class SeparationRules:
    """`[separation]` in the parlour config: the colostrum period after calving."""

    colostrum_milkings: int = 8
    colostrum_max_days: float = 7.0

    def __post_init__(self) -> None:
        if not 0 <= self.colostrum_milkings <= 40:
            raise ValueError(
                f"colostrum_milkings {self.colostrum_milkings}: must be 0 (none) to 40"
            )
        if not (math.isfinite(self.colostrum_max_days) and 1 <= self.colostrum_max_days <= 30):
            raise ValueError(
                f"colostrum_max_days {self.colostrum_max_days}: must be from 1 to 30 days"
            )

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None, source: str) -> SeparationRules:
        """The rules a `[separation]` table sets; ConfigError naming the key otherwise."""
        return numbers_from_table(cls(), table, source, "separation")

    @classmethod
    def from_parlour(cls, config: ParlourConfig) -> SeparationRules:
        return cls.from_table(config.extra.get("separation"), config.source)

    def as_dict(self) -> dict[str, float]:
        return {
            "colostrum_milkings": self.colostrum_milkings,
            "colostrum_max_days": self.colostrum_max_days,
        }


@dataclass(frozen=True, slots=True)
class CowSeparation:
    """What separation needs to know of one cow: her keep-out flag, last calving, treatments,
    and the starts of her recent finished milkings (the count of milkings since a treatment or
    a calving comes from them)."""

    animal_id: int
    label: str = ""
    withheld_reason: str | None = None
    calved_on: date | None = None
    treatments: tuple[Treatment, ...] = ()
    milkings: tuple[datetime, ...] = ()

    @property
    def concerned(self) -> bool:
        """Anything here could keep her milk out (or just let it back)."""
        return bool(self.withheld_reason or self.calved_on or self.treatments)


@dataclass(frozen=True, slots=True)
class DivertReason:
    """One reason the milk stays out: its words, and until when (None: until someone clears
    it). `estimated`: the end depends on milkings not yet made."""

    kind: ReasonKind
    text: str
    until: datetime | None = None
    estimated: bool = False
    milkings_left: int | None = None
    short: str = ""  # a few words for a small tile: 'Mastiplan LC', 'colostrum 3/8'


@dataclass(frozen=True, slots=True)
class DivertDecision:
    """Keep this milking's milk out of the tank (`divert`) or not, and why.

    `until`: the milk may go back from then on (the latest end of the reasons; None while a
    keep-out flag holds it, or when there is nothing to divert). `back_to_tank`: what just
    ended, when this is the first milking after a withdrawal or the colostrum period.
    """

    divert: bool
    reasons: tuple[DivertReason, ...] = ()
    until: datetime | None = None
    estimated: bool = False
    back_to_tank: tuple[str, ...] = ()
    last_milking: bool = False

    @property
    def open_ended(self) -> bool:
        return self.divert and any(r.until is None for r in self.reasons)

    @property
    def reason_text(self) -> str:
        """'Mastiplan LC (treatment); colostrum, milking 3 of 8'."""
        return "; ".join(r.text for r in self.reasons)

    @property
    def short_text(self) -> str:
        """'Mastiplan LC + colostrum 3/8': the reasons in as few words as a tile has room for."""
        return " + ".join(r.short or r.text for r in self.reasons)

    def until_text(
        self, zone: tzinfo | None = None, now: datetime | None = None, *, short: bool = False
    ) -> str:
        """When the milk may go back, in words: 'until 18:00', 'until ~Tue 06:00 (2 milkings
        incl. this)', 'until the keep-out flag is cleared'; '' when nothing is diverted.
        `short`: without the count of milkings (a tile's line)."""
        if not self.divert:
            return ""
        if self.open_ended or self.until is None:
            return "until the flag is cleared" if short else "until the keep-out flag is cleared"
        if self.last_milking:
            if self.estimated:
                return "last one: the next milking goes to the tank"
            return f"last one: tank from {local_text(self.until, zone, now)}"
        when = local_text(self.until, zone, now)
        left = max((r.milkings_left or 0 for r in self.reasons if r.until == self.until), default=0)
        if self.estimated:
            more = f" ({left} milking{'s' if left != 1 else ''} incl. this)" if left else ""
            return f"until ~{when}" + ("" if short else more)
        return f"until {when}"

    def banner(self, zone: tzinfo | None = None, now: datetime | None = None) -> str:
        """One line for a card or a phone: 'colostrum, milking 3 of 8 · until ~Tue 06:00'."""
        if not self.divert:
            return ""
        return f"{self.reason_text} · {self.until_text(zone, now)}"


NOT_DIVERTED = DivertDecision(False)


def operator_decision(text: str = "diverted by the operator") -> DivertDecision:
    """A milking the operator chose to divert (blood, clots...), with no stored reason."""
    return DivertDecision(True, (DivertReason("operator", text, short=text),))


def _calving_start(calved_on: date, zone: tzinfo | None) -> datetime:
    local = datetime.combine(calved_on, time(0, 0))
    aware = local.replace(tzinfo=zone) if zone is not None else local.astimezone()
    return aware.astimezone(UTC)


def _colostrum(
    cow: CowSeparation,
    at: datetime,
    starts: list[datetime],
    rules: SeparationRules,
    zone: tzinfo | None,
    interval: timedelta,
) -> tuple[DivertReason | None, str | None]:
    """(the colostrum reason when it holds, what just ended when this is the first milking
    after it)."""
    if cow.calved_on is None or rules.colostrum_milkings <= 0:
        return None, None
    begin = _calving_start(cow.calved_on, zone)
    if at < begin:
        return None, None
    cap = begin + timedelta(days=rules.colostrum_max_days)
    since = [s for s in starts if begin <= s < at]
    n = rules.colostrum_milkings
    if len(since) < n and at < cap:
        left = n - len(since)
        until = min(at + interval * left, cap)
        text = f"colostrum, milking {len(since) + 1} of {n}"
        short = f"colostrum {len(since) + 1}/{n}"
        return DivertReason("colostrum", text, until, True, left, short), None
    # Over: by count (this is the milking after the Nth) or by time (none since the cap).
    ended = len(since) == n or (len(since) < n and not [s for s in since if s >= cap])
    return None, ("colostrum period" if ended else None)


def decide(
    cow: CowSeparation | None,
    at: datetime,
    rules: SeparationRules | None = None,
    *,
    zone: tzinfo | None = None,
) -> DivertDecision:
    """The decision for a milking of `cow` starting at `at` (aware). None (a cow not known, or
    nothing on record for her): the milk goes to the tank."""
    if cow is None:
        return NOT_DIVERTED
    rules = rules or SeparationRules()
    at = at.astimezone(UTC)
    starts = previous_milkings(cow.milkings, at)
    interval = milking_interval(starts)
    reasons: list[DivertReason] = []
    back: list[str] = []
    active = [t for t in cow.treatments if t.active]
    if active:
        withdrawals = [withdrawal_at(t, at, starts, interval=interval) for t in active]
        together = combine(withdrawals)
        reasons += [_treatment_reason(w) for w in together.withholding]
        back += [f"{w.treatment.product} withdrawal" for w in together.back_to_tank]
    colostrum, colostrum_over = _colostrum(cow, at, starts, rules, zone, interval)
    if colostrum is not None:
        reasons.append(colostrum)
    elif colostrum_over:
        back.append(colostrum_over)
    if cow.withheld_reason:
        reasons.append(
            DivertReason("kept_out", f"kept out: {cow.withheld_reason}", short=cow.withheld_reason)
        )
    if not reasons:
        return DivertDecision(False, back_to_tank=tuple(back))
    timed = [r for r in reasons if r.until is not None]
    latest = max(timed, key=lambda r: (r.until, r.estimated)) if timed else None
    open_ended = any(r.until is None for r in reasons)
    last = (
        not open_ended
        and bool(timed)
        and all(r.milkings_left == 1 or _ends_before_next(r, at, interval) for r in timed)
    )
    return DivertDecision(
        True,
        tuple(reasons),
        None if open_ended or latest is None else latest.until,
        bool(latest and latest.estimated) and not open_ended,
        last_milking=last,
    )


def _ends_before_next(reason: DivertReason, at: datetime, interval: timedelta) -> bool:
    """An end in hours that comes before her next milking: this is the last one to divert."""
    return (
        reason.milkings_left is None
        and reason.until is not None
        and (reason.until <= at + interval)
    )


def _treatment_reason(w: Withdrawal) -> DivertReason:
    t = w.treatment
    text = f"{t.product} (treatment, {t.withdrawal_text} withdrawal)"
    return DivertReason("treatment", text, w.ends_at, w.estimated, w.milkings_left, t.product)


@dataclass(frozen=True, slots=True)
class SeparationBook:
    """Every cow the console should know about for separation, by local animal id."""

    cows: Mapping[int, CowSeparation] = field(default_factory=dict)
    rules: SeparationRules = field(default_factory=SeparationRules)

    def decide(
        self, animal_id: int | None, at: datetime, *, zone: tzinfo | None = None
    ) -> DivertDecision:
        if animal_id is None:
            return NOT_DIVERTED
        return decide(self.cows.get(animal_id), at, self.rules, zone=zone)
