"""Who was milked: tag -> animal through the herd list, late association, and cow-swap checks.

* `resolve_animal(tx, rfid)` finds the animal wearing a tag in any form the meters or Odoo
  write (`milkconsole.meters.rfid.normalize_tag`), as primary or alternative tag. A malformed or
  unknown tag gives None: the session keeps its raw tag and shows as unknown.
* `associate_pending(tx)` gives every session still without an animal the one its tag now
  points to (a new cow was added, the herd list was refreshed) and tells Odoo through the
  outbox (the pending create is amended, so it goes out associated), and rules again on where
  a finished one's milk should have gone. A session whose identity
  a person set (`id_source` 'manual') is never touched: the console's choice wins.
* `swap_suspect(...)` / `check_cow_swap(tx, session)`: a milking whose yield and time fit
  another cow of the same group far better than the cow the tag named (tags swapped in the
  holder, a cow in the wrong group's row) is flagged for the operator.

Tags in the `animals` and `animal_tags` tables are kept as Odoo has them; they are normalised
here, once per change of the herd list (`TagCache`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from milkconsole.meters.rfid import (
    AnimalTags,
    InvalidTag,
    TagForm,
    TagIndex,
    TagMatch,
    normalize_tag,
)
from milkconsole.store.outbound import queue_session_identity
from milkconsole.store.schema import Animal, AnimalTag, MilkSession
from milkconsole.store.separation import review_destination

log = logging.getLogger(__name__)


class TagCache:
    """The herd list's tags as a `TagIndex`, rebuilt only when the tables changed.

    Thread-safe; the tables are read (cheap) on every call and compared with what the index
    was built from, so an animal pull is seen at the next lookup.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._source: tuple[Any, ...] | None = None
        self._index = TagIndex([])

    def index(self, tx: Session) -> TagIndex:
        animals: tuple[tuple[int, str | None, bool], ...] = tuple(
            (aid, tag, bool(active))
            for aid, tag, active in tx.execute(select(Animal.id, Animal.rfid_tag, Animal.active))
        )
        tags: tuple[tuple[int, str], ...] = tuple(
            (aid, tag) for aid, tag in tx.execute(select(AnimalTag.animal_id, AnimalTag.rfid_tag))
        )
        source = (animals, tags)
        with self._lock:
            if source != self._source:
                alternatives: dict[int, list[str]] = {}
                for animal_id, tag in tags:
                    alternatives.setdefault(animal_id, []).append(tag)
                self._index = TagIndex(
                    AnimalTags(aid, primary, tuple(alternatives.get(aid, ())), active)
                    for aid, primary, active in animals
                )
                self._source = source
                for r in self._index.refused:
                    log.debug(
                        "herd list tag %r of animal %s refused: %s", r.text, r.animal_id, r.reason
                    )
            return self._index


_CACHE = TagCache()


def identify(
    tx: Session, rfid: str | None, *, form: TagForm = "auto", cache: TagCache | None = None
) -> TagMatch | None:
    """The animal a tag belongs to (which animal, canonical tag, primary or not), or None."""
    if not rfid or not rfid.strip():
        return None
    try:
        canonical = normalize_tag(rfid, form=form)
    except InvalidTag as exc:
        log.debug("tag not identified: %s", exc)
        return None
    return (cache or _CACHE).index(tx).lookup_canonical(canonical)


def animal_resolver(tx: Session) -> Callable[[str | None], int | None]:
    """`resolve_animal` for many tags in one transaction: the herd's tags are read once (the
    recorder writes a batch of completions with it, not a read of the herd per session)."""
    index = _CACHE.index(tx)

    def resolve(rfid: str | None) -> int | None:
        if not rfid or not rfid.strip():
            return None
        try:
            canonical = normalize_tag(rfid)
        except InvalidTag:
            return None
        match = index.lookup_canonical(canonical)
        return None if match is None else match.animal_id

    return resolve


def resolve_animal(tx: Session, rfid: str | None, *, form: TagForm = "auto") -> int | None:
    """The id of the animal wearing `rfid` (any written form, primary or alternative tag)."""
    match = identify(tx, rfid, form=form)
    return None if match is None else match.animal_id


def associate_pending(tx: Session, *, since: datetime | None = None) -> list[str]:
    """Give sessions without an animal the animal their tag now names; their keys.

    Only sessions nobody identified by hand (`id_source` is None) and that carry a tag are
    looked at (those started at or after `since`, when given). Each one found gets
    `id_source` 'rfid' and its Odoo record is amended in the same transaction.
    """
    query = select(MilkSession).where(
        MilkSession.animal_id.is_(None),
        MilkSession.id_source.is_(None),
        MilkSession.rfid.is_not(None),
    )
    if since is not None:
        query = query.where(MilkSession.started_at >= since)
    done: list[str] = []
    for row in tx.scalars(query.order_by(MilkSession.started_at)):
        animal_id = resolve_animal(tx, row.rfid)
        if animal_id is None:
            continue
        row.animal_id, row.id_source = animal_id, "rfid"
        queue_session_identity(tx, row)
        # A finished milking of a cow whose milk had to be kept out: ruled again (the alert
        # is raised now if nobody diverted it).
        review_destination(tx, row)
        done.append(row.key)
    if done:
        tx.flush()
    return done


# --- cow swaps ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SwapRules:
    """When a milking is said to fit another cow better than the tagged one."""

    history_days: float = 14.0
    min_milkings: int = 4
    slot_window_h: float = 3.0  # her milkings within this of the same time of day are comparable
    already_milked_h: float = 4.0  # a cow milked this recently is not a candidate
    min_yield_sd_frac: float = 0.08
    min_yield_sd_l: float = 0.5
    min_time_sd_min: float = 10.0
    tagged_far: float = 4.0  # the tagged cow must be at least this far (in sd) ...
    other_close: float = 1.5  # ... another cow at most this close ...
    margin: float = 3.0  # ... and closer by at least this much


@dataclass(frozen=True, slots=True)
class MilkingPattern:
    """A cow's usual milking at one time of day: yield and clock time (minutes after 00:00 UTC)."""

    animal_id: int
    mean_yield_l: float
    sd_yield_l: float
    mean_minute: float
    sd_minute: float
    n: int


@dataclass(frozen=True, slots=True)
class SwapSuspect:
    """The milking fits `likely_animal_id` far better than the tagged animal."""

    tagged_animal_id: int
    likely_animal_id: int
    tagged_distance: float
    likely_distance: float

    def reason(self, likely_name: str) -> str:
        return (
            f"yield and milking time fit cow {likely_name} ({self.likely_distance:.1f} sd) far "
            f"better than the tagged cow ({self.tagged_distance:.1f} sd): tags swapped?"
        )


def _minute_of_day(t: datetime) -> float:
    return t.hour * 60.0 + t.minute + t.second / 60.0


def _clock_gap(a: float, b: float) -> float:
    d = abs(a - b) % 1440.0
    return min(d, 1440.0 - d)


def pattern_of(
    animal_id: int, milkings: Sequence[tuple[datetime, float]], at: datetime, rules: SwapRules
) -> MilkingPattern | None:
    """Her usual milking near `at`'s time of day from (start, yield) pairs, or None if too few."""
    minute = _minute_of_day(at)
    slot = [
        (_minute_of_day(t), y)
        for t, y in milkings
        if _clock_gap(_minute_of_day(t), minute) <= rules.slot_window_h * 60.0
    ]
    if len(slot) < rules.min_milkings:
        return None
    yields = [y for _, y in slot]
    mean_y = sum(yields) / len(yields)
    sd_y = math.sqrt(sum((y - mean_y) ** 2 for y in yields) / (len(yields) - 1))
    # Circular mean of the clock times around the session's own time (no midnight wrap).
    offsets = [((m - minute + 720.0) % 1440.0) - 720.0 for m, _ in slot]
    mean_off = sum(offsets) / len(offsets)
    sd_t = math.sqrt(sum((o - mean_off) ** 2 for o in offsets) / (len(offsets) - 1))
    return MilkingPattern(
        animal_id=animal_id,
        mean_yield_l=mean_y,
        sd_yield_l=max(sd_y, rules.min_yield_sd_frac * mean_y, rules.min_yield_sd_l),
        mean_minute=(minute + mean_off) % 1440.0,
        sd_minute=max(sd_t, rules.min_time_sd_min),
        n=len(slot),
    )


def _distance(p: MilkingPattern, yield_l: float, minute: float) -> float:
    z_y = (yield_l - p.mean_yield_l) / p.sd_yield_l
    z_t = _clock_gap(minute, p.mean_minute) / p.sd_minute
    return math.hypot(z_y, z_t)


def swap_suspect(
    yield_l: float,
    start: datetime,
    tagged: MilkingPattern,
    others: Sequence[MilkingPattern],
    rules: SwapRules | None = None,
) -> SwapSuspect | None:
    """A `SwapSuspect` when the milking fits one of `others` far better than `tagged`."""
    rules = rules or SwapRules()
    minute = _minute_of_day(start)
    d_tagged = _distance(tagged, yield_l, minute)
    if d_tagged < rules.tagged_far or not others:
        return None
    best = min(others, key=lambda p: _distance(p, yield_l, minute))
    d_best = _distance(best, yield_l, minute)
    if d_best > rules.other_close or d_tagged - d_best < rules.margin:
        return None
    return SwapSuspect(tagged.animal_id, best.animal_id, d_tagged, d_best)


def check_cow_swap(
    tx: Session, session: MilkSession, rules: SwapRules | None = None
) -> SwapSuspect | None:
    """Run `swap_suspect` for a finished, identified session against its group in the store."""
    rules = rules or SwapRules()
    if session.animal_id is None or session.yield_l <= 0:
        return None
    tagged = tx.get(Animal, session.animal_id)
    if tagged is None:
        return None
    at = session.started_at
    since = at - timedelta(days=rules.history_days)
    group = select(Animal.id).where(Animal.active.is_(True))
    group = group.where(
        Animal.group_name == tagged.group_name
        if tagged.group_name is not None
        else Animal.group_name.is_(None)
    )
    history = tx.execute(
        select(MilkSession.animal_id, MilkSession.started_at, MilkSession.yield_l).where(
            MilkSession.animal_id.in_(group),
            # `state || ''`: not by the state index, which on a year's database is most of the
            # year's sessions; each cow's (animal_id, started_at) index finds her two weeks.
            MilkSession.state.op("||")("") == "completed",
            MilkSession.started_at >= since,
            MilkSession.started_at < at + timedelta(hours=rules.already_milked_h),
            MilkSession.key != session.key,
        )
    )
    by_animal: dict[int, list[tuple[datetime, float]]] = {}
    recently: set[int] = set()
    for animal_id, started, yield_l in history:
        if animal_id is None:
            continue
        if abs((started - at).total_seconds()) < rules.already_milked_h * 3600.0:
            recently.add(animal_id)  # milked this session already: not the cow in this stall
            continue
        by_animal.setdefault(animal_id, []).append((started, yield_l))
    mine = pattern_of(tagged.id, by_animal.get(tagged.id, []), at, rules)
    if mine is None:
        return None
    others = [
        p
        for aid, pairs in by_animal.items()
        if aid != tagged.id
        and aid not in recently
        and (p := pattern_of(aid, pairs, at, rules)) is not None
    ]
    return swap_suspect(session.yield_l, at, mine, others, rules)
