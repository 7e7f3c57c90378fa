"""The herd Odoo sent, written into the local herd: cows, their other tags, what Odoo deleted.

`milkconsole.sync.animals` reads Odoo page by page and turns each record into a `PulledAnimal`
or `PulledTag`; the functions here write a page inside the caller's transaction (the same one
that moves the pull's cursor, so a page and its cursor commit together).

A cow Odoo sends that nobody here has yet is matched with a cow known only here by herd number,
else by tag, and that cow takes the Odoo id (`store.herd.adopt`). Odoo wins where both have a
value (a disagreement at the merge is logged once), a value only one of them has is kept, and a
field the console changed and has not sent yet (a new primary tag, the keep-out flag) is not
undone by a pull that comes before the change reaches Odoo. A tag Odoo gives one cow is taken
off any other cow here.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from milkconsole.store.db import Database
from milkconsole.store.herd import (
    adopt,
    canonical_or_none,
    find_local_twin,
    label,
    note_conflict,
    tag_claims,
)
from milkconsole.store.outbound import ANIMAL, queue_animal_fields
from milkconsole.store.schema import Animal, AnimalTag, OutboxRow
from milkconsole.store.treatments import queue_console_treatments


@dataclass(frozen=True, slots=True)
class PulledAnimal:
    """A `farm.animal` as Odoo sent it, in the local herd's terms (None: Odoo has no value)."""

    odoo_id: int
    number: str
    name: str | None = None
    rfid_tag: str | None = None
    group_name: str | None = None
    conductivity_baseline_ms_cm: float | None = None
    birth_date: date | None = None
    lactation_number: int | None = None
    last_calving_date: date | None = None
    milk_withheld_reason: str | None = None
    active: bool = True
    write_date: datetime | None = None

    def values(self) -> dict[str, Any]:
        """The animal's columns this record fills (all but the Odoo id), in a fixed order."""
        return {
            "number": self.number,
            "name": self.name,
            "rfid_tag": self.rfid_tag,
            "group_name": self.group_name,
            "conductivity_baseline_ms_cm": self.conductivity_baseline_ms_cm,
            "birth_date": self.birth_date,
            "lactation_number": self.lactation_number,
            "last_calving_date": self.last_calving_date,
            "milk_withheld_reason": self.milk_withheld_reason,
            "active": self.active,
            "write_date": self.write_date,
        }


@dataclass(frozen=True, slots=True)
class PulledTag:
    """A `farm.animal.rfid`: a tag (None when Odoo's is empty) and its cow's Odoo id."""

    rfid_tag: str | None
    odoo_animal_id: int | None


class CowLink(NamedTuple):
    """What finds a local cow in Odoo: the Odoo id she had, her herd number, her tag."""

    odoo_id: int | None
    number: str
    rfid_tag: str | None


def local_ids(tx: Session, odoo_ids: Collection[int | None]) -> dict[int, int]:
    """Odoo animal id -> local animal id, for the cows of `odoo_ids` the herd has."""
    return {
        odoo_id: local_id
        for odoo_id, local_id in tx.execute(
            select(Animal.odoo_id, Animal.id).where(
                Animal.odoo_id.in_([i for i in odoo_ids if i is not None])
            )
        )
        if odoo_id is not None  # the query asks for none; said for the type checker
    }


def cow_links(db: Database, animal_ids: Collection[int]) -> dict[int, CowLink]:
    """Local animal id -> how Odoo may know her, for the cows of `animal_ids` the herd has."""
    with db.read() as tx:
        return {
            a.id: CowLink(a.odoo_id, a.number, a.rfid_tag)
            for a in tx.scalars(select(Animal).where(Animal.id.in_(animal_ids)))
        }


# -- a page of cows ------------------------------------------------------------------------------


def save_animals(tx: Session, animals: Sequence[PulledAnimal]) -> int:
    """Insert or update these cows, merging with cows known only here; returns how many were
    new or changed."""
    ids = [a.odoo_id for a in animals]
    existing = {a.odoo_id: a for a in tx.scalars(select(Animal).where(Animal.odoo_id.in_(ids)))}
    unsent = _unsent_fields(tx, [a.id for a in existing.values()])
    claims = tag_claims(tx)
    # Cows known only here, by number: usually none, so the common pull asks nothing per cow.
    local_only = {
        a.number: a
        for a in tx.scalars(
            select(Animal).where(Animal.odoo_id.is_(None)).order_by(Animal.id.desc())
        )
    }
    changed = 0
    for pulled in animals:
        odoo_id = pulled.odoo_id
        values = pulled.values()
        tag = canonical_or_none(pulled.rfid_tag)
        row = existing.get(odoo_id)
        adopted = False
        if row is None and (local_only or (tag is not None and tag in claims)):
            row = local_only.pop(pulled.number, None) or find_local_twin(tx, None, tag, claims)
            if row is not None:
                local_only.pop(row.number, None)
                adopt(tx, row, odoo_id)
                queue_console_treatments(tx, row.id)
                existing[odoo_id] = row
                adopted = True
        if row is None:
            row = Animal(odoo_id=odoo_id, **values)
            tx.add(row)
            changed += 1
            if tag is None or not claims.get(tag):
                if tag is not None:
                    claims[tag] = set()  # hers; her id is known after the flush
                continue
            tx.flush()  # her id, to take the tag off the cow that had it
        elif _merge(tx, row, values, adopted=adopted, unsent=unsent.get(row.id, set())) or adopted:
            changed += 1
        if tag is not None and claims.get(tag, set()) - {row.id}:
            _take_tag(tx, row, tag, claims)
    tx.flush()
    return changed


def _unsent_fields(tx: Session, animal_ids: list[int]) -> dict[int, set[str]]:
    """Fields of these cows the console changed and Odoo has not got yet."""
    out: dict[int, set[str]] = {}
    for key, payload in tx.execute(
        select(OutboxRow.record_key, OutboxRow.payload).where(
            OutboxRow.model == ANIMAL,
            OutboxRow.state != "sent",
            OutboxRow.record_key.in_([str(i) for i in animal_ids]),
        )
    ):
        out.setdefault(int(key), set()).update(json.loads(payload))
    if any("milk_withheld" in f for f in out.values()):
        for f in out.values():
            if "milk_withheld" in f:
                f.add("milk_withheld_reason")
    return out


# Odoo's own say on these, whatever the console had (the keep-out flag is a yes or no there).
_ODOO_DECIDES = ("milk_withheld_reason", "active", "write_date")


def _same(field: str, a: Any, b: Any) -> bool:
    if field == "rfid_tag":
        return (canonical_or_none(a) or a) == (canonical_or_none(b) or b)
    return bool(a == b)


def _merge(
    tx: Session, row: Animal, values: dict[str, Any], *, adopted: bool, unsent: set[str]
) -> bool:
    """Odoo's values onto a cow; True when something changed (see the module docstring)."""
    changed = False
    for k, v in values.items():
        current = getattr(row, k)
        if k in unsent or _same(k, current, v):
            continue
        if k in _ODOO_DECIDES:
            if adopted and k == "milk_withheld_reason" and v is None and current is not None:
                # Kept out here before Odoo knew her: Odoo learns it rather than undoing it.
                queue_animal_fields(tx, row.id, {"milk_withheld_reason": current})
                continue
            setattr(row, k, v)
            changed = True
            continue
        if v is None:
            continue  # Odoo has no value: the console's stays
        if adopted and current is not None:
            note_conflict(tx, row, k, current, v)
        setattr(row, k, v)
        changed = True
    return changed


def _take_tag(tx: Session, row: Animal, tag: str, claims: dict[str, set[int]]) -> None:
    """Odoo says `tag` is this cow's: off every other cow here."""
    owners = claims.get(tag, set()) - {row.id}
    for aid in sorted(owners):
        other = tx.get(Animal, aid)
        if other is None:
            continue
        if canonical_or_none(other.rfid_tag) == tag:
            other.rfid_tag = None
        for alt in tx.scalars(select(AnimalTag).where(AnimalTag.animal_id == aid)):
            if canonical_or_none(alt.rfid_tag) == tag:
                tx.delete(alt)
        note_conflict(tx, other, "rfid_tag", tag, f"cow {label(row)}'s in Odoo")
    claims[tag] = {row.id}


# -- a page of tags ------------------------------------------------------------------------------


def save_tags(tx: Session, tags: Sequence[PulledTag]) -> tuple[int, int]:
    """Insert or move these tags; (how many were new or moved, how many were skipped: no tag,
    or a cow the herd does not have)."""
    local = local_ids(tx, {t.odoo_animal_id for t in tags})
    done = missed = 0
    for pulled in tags:
        tag = pulled.rfid_tag
        animal = local.get(pulled.odoo_animal_id) if pulled.odoo_animal_id is not None else None
        if not tag or animal is None:
            missed += 1  # an animal we do not have (not pulled yet, or no longer in Odoo)
            continue
        row = tx.scalars(select(AnimalTag).where(AnimalTag.rfid_tag == tag)).first()
        if row is None:
            tx.add(AnimalTag(animal_id=animal, rfid_tag=tag))
            done += 1
        elif row.animal_id != animal:
            row.animal_id = animal  # the tag moved to another cow
            done += 1
    tx.flush()
    return done, missed


# -- what Odoo deleted ---------------------------------------------------------------------------


def mark_gone(
    tx: Session, odoo_ids: Collection[int], odoo_tags: Collection[str] | None
) -> tuple[int, int]:
    """After a full pull: cows Odoo no longer has turn inactive (their sessions still point at
    them), and other tags it no longer has are removed (`odoo_tags` None: Odoo has no tag
    model, nothing removed). Returns (cows deactivated, tags removed)."""
    deactivated = removed = 0
    for animal in tx.scalars(select(Animal).where(Animal.odoo_id.is_not(None))):
        if animal.odoo_id not in odoo_ids and animal.active:
            animal.active = False
            deactivated += 1
    if odoo_tags is not None:
        gone = _tags_gone(tx, set(odoo_tags))
        if gone:
            tx.execute(delete(AnimalTag).where(AnimalTag.rfid_tag.in_(gone)))
        removed = len(gone)
    return deactivated, removed


def _tags_gone(tx: Session, in_odoo: set[str]) -> list[str]:
    """Other tags Odoo no longer has: those of cows Odoo keeps, except tags the console sent
    or is sending (Odoo may just not have them yet)."""
    unsent = {
        key
        for (key,) in tx.execute(
            select(OutboxRow.record_key).where(
                OutboxRow.model == "farm.animal.rfid",
                OutboxRow.operation == "create",
                OutboxRow.state != "sent",
            )
        )
    }
    known = {canonical_or_none(t) or t for t in in_odoo} | set(in_odoo)
    gone = []
    for tag, odoo_id in tx.execute(
        select(AnimalTag.rfid_tag, Animal.odoo_id).join(Animal, Animal.id == AnimalTag.animal_id)
    ):
        if odoo_id is None or tag in unsent or tag in known:
            continue
        if canonical_or_none(tag) not in known:
            gone.append(tag)
    return gone
