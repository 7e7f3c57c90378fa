"""Does a milking fit the cow its tag names? The cow-swap check, pure arithmetic.

A milking whose yield and time fit another cow of the same group far better than the cow the tag
named (tags swapped in the holder, a cow in the wrong group's row) is flagged for the operator:
`pattern_of` makes a cow's usual milking at a time of day from her recent ones, `swap_suspect`
compares one milking with the tagged cow's pattern and her group's, and `suspect_in_group` does
both from the group's milkings as the store reads them.

Who wears a tag, and giving sessions their cow, is persistence: `milkconsole.store.tags`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime


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


def suspect_in_group(
    tagged_animal_id: int,
    yield_l: float,
    at: datetime,
    group_milkings: Iterable[tuple[int | None, datetime, float]],
    rules: SwapRules | None = None,
) -> SwapSuspect | None:
    """Run `swap_suspect` for a finished milking of the tagged cow that started at `at`.

    `group_milkings` are the completed milkings (animal, start, yield) of the active cows of
    her group, hers included, from `rules.history_days` before `at` to `rules.already_milked_h`
    after it, this milking left out. A cow milked within `already_milked_h` of `at` is not a
    candidate: she was in another stall this milking.
    """
    rules = rules or SwapRules()
    if yield_l <= 0:
        return None
    by_animal: dict[int, list[tuple[datetime, float]]] = {}
    recently: set[int] = set()
    for animal_id, started, milked_l in group_milkings:
        if animal_id is None:
            continue
        if abs((started - at).total_seconds()) < rules.already_milked_h * 3600.0:
            recently.add(animal_id)  # milked this session already: not the cow in this stall
            continue
        by_animal.setdefault(animal_id, []).append((started, milked_l))
    mine = pattern_of(tagged_animal_id, by_animal.get(tagged_animal_id, []), at, rules)
    if mine is None:
        return None
    others = [
        p
        for aid, pairs in by_animal.items()
        if aid != tagged_animal_id
        and aid not in recently
        and (p := pattern_of(aid, pairs, at, rules)) is not None
    ]
    return swap_suspect(yield_l, at, mine, others, rules)
