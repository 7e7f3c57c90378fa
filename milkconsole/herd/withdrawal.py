"""Milk withdrawal arithmetic: when a treated cow's milk may go back in the tank.

Pure: no I/O, no clock reads. Every time is aware and computed in UTC; local time is only for
showing (`local_text`), so a withdrawal across midnight or a daylight-saving change ends after
exactly the hours the product's label says, whatever the wall clock did meanwhile.

A treatment's withdrawal is given in hours or in milkings (the label says one or the other):

- hours: the milk of every milking that *starts* at or after the treatment's start and before
  start + hours is kept out. The first milking starting at or after that end may go back.
- milkings: the first N milkings starting at or after the treatment's start are kept out; the
  (N+1)th may go back. The end is known once the Nth milking has started; before that it is
  estimated from the cow's own milking interval (`milking_interval`).

A milking that started before the treatment (the tube goes in after milking) is not affected.
Milkings are counted from the starts of the cow's recorded milkings; starts less than
`SAME_MILKING` apart are one milking (a cluster kicked off and put back), and so is anything
that started within `SAME_MILKING` before the milking being decided: a re-attached second part
never counts its first part as an earlier milking.
Several treatments at once: the milk is kept out while any of them says so, and the latest end
wins (`combine`).
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

# A cow milked twice a day; used when her own history says nothing yet.
DEFAULT_INTERVAL = timedelta(hours=12)
# Gaps outside this are not a milking interval (a split session, a cow dried off and back).
_MIN_INTERVAL = timedelta(hours=4)
_MAX_INTERVAL = timedelta(hours=30)
SAME_MILKING = timedelta(hours=3)
MAX_WITHDRAWAL_HOURS = 24.0 * 120  # four months: anything longer is a typing mistake
MAX_WITHDRAWAL_MILKINGS = 360


class TreatmentError(ValueError):
    """A treatment that cannot be recorded as given (says which field and why)."""


def _utc(at: datetime, what: str) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} {at.isoformat()} is naive: withdrawal times are aware UTC")
    return at.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Treatment:
    """A treatment with a milk withdrawal, in hours or in milkings (exactly one of them).

    `key` is the stable key Odoo knows it by (`source_reference`); `start` is aware.
    """

    key: str
    animal_id: int
    product: str
    start: datetime
    withdrawal_hours: float | None = None
    withdrawal_milkings: int | None = None
    note: str | None = None
    recorded_by: str | None = None
    source: str = "console"
    active: bool = True

    def __post_init__(self) -> None:
        check_withdrawal(self.withdrawal_hours, self.withdrawal_milkings)
        if not self.product.strip():
            raise TreatmentError("product: give the product's name (it is on the label)")
        _utc(self.start, "treatment start")

    @property
    def start_utc(self) -> datetime:
        return self.start.astimezone(UTC)

    @property
    def withdrawal_text(self) -> str:
        """'72 h' or '6 milkings'."""
        if self.withdrawal_hours is not None:
            return f"{self.withdrawal_hours:g} h"
        n = self.withdrawal_milkings or 0
        return f"{n} milking" + ("" if n == 1 else "s")


def check_withdrawal(hours: float | None, milkings: int | None) -> None:
    """Refuse (TreatmentError) a withdrawal that is not exactly one of hours or milkings, or is
    out of range."""
    if (hours is None) == (milkings is None):
        raise TreatmentError("withdrawal: give it in hours or in milkings (one of them)")
    if hours is not None:
        if isinstance(hours, bool) or not math.isfinite(hours) or not hours > 0:
            raise TreatmentError(f"withdrawal_hours {hours!r}: must be above 0")
        if hours > MAX_WITHDRAWAL_HOURS:
            raise TreatmentError(
                f"withdrawal_hours {hours:g}: more than {MAX_WITHDRAWAL_HOURS:g} h; check the label"
            )
    if milkings is not None:
        if isinstance(milkings, bool) or milkings != int(milkings) or milkings < 1:
            raise TreatmentError(f"withdrawal_milkings {milkings!r}: must be a whole number >= 1")
        if milkings > MAX_WITHDRAWAL_MILKINGS:
            raise TreatmentError(
                f"withdrawal_milkings {milkings}: more than {MAX_WITHDRAWAL_MILKINGS}; "
                "check the label"
            )


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """One treatment's withdrawal as it stands for a milking starting at `at`.

    `withheld`: this milking's milk stays out. `ends_at`: from then on milk may go back (UTC);
    for a withdrawal in milkings not yet over it is an estimate (`estimated`), and
    `milkings_left` counts the milkings still to keep out, this one included. `back_to_tank`:
    this is the first milking after the withdrawal ended.
    """

    treatment: Treatment
    withheld: bool
    ends_at: datetime
    estimated: bool = False
    milkings_left: int | None = None
    back_to_tank: bool = False


def milking_interval(milkings: Sequence[datetime]) -> timedelta:
    """The cow's usual time between milkings: the median gap of her recent milkings (starts,
    any order), ignoring gaps that are no milking interval; DEFAULT_INTERVAL without them."""
    starts = sorted(_utc(m, "milking start") for m in milkings)[-15:]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    usable = [g for g in gaps if _MIN_INTERVAL <= g <= _MAX_INTERVAL]
    if not usable:
        return DEFAULT_INTERVAL
    return timedelta(seconds=statistics.median(g.total_seconds() for g in usable))


def previous_milkings(starts: Iterable[datetime], at: datetime) -> list[datetime]:
    """The cow's milkings before the one starting at `at`, one start each, oldest first (see
    the module docstring: near starts are one milking; the current one is left out)."""
    at = _utc(at, "milking start")
    out: list[datetime] = []
    for s in sorted(_utc(m, "milking start") for m in starts):
        if s >= at - SAME_MILKING:
            break
        if out and s - out[-1] < SAME_MILKING:
            continue
        out.append(s)
    return out


def _starts_between(starts: Sequence[datetime], lo: datetime, hi: datetime) -> list[datetime]:
    """Sorted milking starts in [lo, hi)."""
    return list(starts[bisect.bisect_left(starts, lo) : bisect.bisect_left(starts, hi)])


def withdrawal_at(
    treatment: Treatment,
    at: datetime,
    milkings: Sequence[datetime] = (),
    *,
    interval: timedelta | None = None,
) -> Withdrawal:
    """The treatment's withdrawal for a milking starting at `at`, given the starts of the
    cow's recorded milkings (`previous_milkings` picks those before this one)."""
    at = _utc(at, "milking start")
    start = treatment.start_utc
    starts = previous_milkings(milkings, at)
    if treatment.withdrawal_hours is not None:
        end = start + timedelta(hours=treatment.withdrawal_hours)
        withheld = start <= at < end
        # The first milking from the end on, with none of hers between the end and it.
        first_after = at >= end and not _starts_between(starts, end, at)
        return Withdrawal(treatment, withheld, end, back_to_tank=first_after and at >= start)
    n = treatment.withdrawal_milkings or 0
    done = _starts_between(starts, start, at)
    step = interval or milking_interval(starts)
    if at < start:
        # Not treated yet at this milking: the withdrawal lies ahead of it.
        return Withdrawal(treatment, False, start + step * n, estimated=True, milkings_left=n)
    if len(done) < n:
        left = n - len(done)
        # This milking and left-1 more: milk may go back about one interval after the last.
        return Withdrawal(treatment, True, at + step * left, estimated=True, milkings_left=left)
    # Over: it ended when the milking after the Nth could start (the Nth's start + interval is
    # not known, so the Nth's start stands for "after it").
    last = done[n - 1]
    return Withdrawal(
        treatment, False, last, milkings_left=0, back_to_tank=len(done) == n and at > last
    )


@dataclass(frozen=True, slots=True)
class Combined:
    """Several treatments' withdrawals at one milking: withheld while any says so, until the
    latest end (estimated when that end is), and which of them withhold."""

    withheld: bool
    ends_at: datetime | None
    estimated: bool
    withholding: tuple[Withdrawal, ...]
    back_to_tank: tuple[Withdrawal, ...]


def combine(withdrawals: Iterable[Withdrawal]) -> Combined:
    """The latest end wins: among the withdrawals that withhold this milking, the one ending
    last says when the milk may go back. `back_to_tank` lists those that just ended, when none
    withholds."""
    items = list(withdrawals)
    holding = tuple(w for w in items if w.withheld)
    if not holding:
        return Combined(False, None, False, (), tuple(w for w in items if w.back_to_tank))
    last = max(holding, key=lambda w: (w.ends_at, w.estimated))
    return Combined(True, last.ends_at, last.estimated, holding, ())


def local_text(at: datetime, zone: tzinfo | None, now: datetime | None = None) -> str:
    """A UTC time as the farm reads it: '18:00' today, 'tomorrow 06:00', 'Tue 06:00' within the
    week, '3 Mar 06:00' further off (`zone` None: this PC's)."""
    local = _utc(at, "time").astimezone(zone)
    if now is None:
        return local.strftime("%a %d %b %H:%M")
    today = _utc(now, "now").astimezone(zone).date()
    days = (local.date() - today).days
    if days == 0:
        return local.strftime("%H:%M")
    if days == 1:
        return local.strftime("tomorrow %H:%M")
    if 1 < days < 7:
        return local.strftime("%a %H:%M")
    return f"{local.day} {local.strftime('%b %H:%M')}"
