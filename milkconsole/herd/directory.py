"""The herd as the console holds it in memory: each cow's card, found by tag or number.

`HerdDirectory` is a frozen value the console reads on a worker thread (`store.directory.load_herd`)
and hands to the GUI thread: the active cows (`AnimalInfo`), every tag each one wears, what she
usually gives, and whether her milk must be kept out of the tank. `canonical_tag` and
`display_tag` are the two ways a tag is written: as the herd list keys it, as people read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

from milkconsole.herd.separation import DivertDecision, SeparationBook
from milkconsole.meters.rfid import InvalidTag, format_display, normalize_tag


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
        return cow_label(self.number, self.name)

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


def cow_label(number: str | None, name: str | None) -> str:
    """How a cow is named on screens and reports: '1002 Daisy', '1002', or '' for no cow."""
    if number is None:
        return ""
    return f"{number} {name}" if name else number


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
