"""The herd read for the console in one transaction: `load_herd` -> `HerdDirectory`.

The active cows with every tag each one wears, what each usually gives (one definition with the
reports: `store.history.expected_yields_tx`) and what milk separation needs to know of the cows
it concerns, all read in the same transaction, so a cow is never shown known but without it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from milkconsole.herd.directory import AnimalInfo, HerdDirectory, canonical_tag
from milkconsole.herd.separation import SeparationBook, SeparationRules
from milkconsole.store.db import Database
from milkconsole.store.history import EXPECTED_FROM_SESSIONS, expected_yields_tx
from milkconsole.store.schema import Animal, AnimalTag
from milkconsole.store.treatments import separation_inputs


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
        expected = expected_yields_tx(tx, animal_ids=list(animals), per_cow=history_sessions)
        book = SeparationBook(separation_inputs(tx, now, rules), rules)
    return HerdDirectory(animals, by_tag, expected, book, now)
