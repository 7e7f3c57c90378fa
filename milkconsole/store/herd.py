"""The herd in the store: cows from a herd file or Odoo merged, their tags, the keep-out flag.

Every function takes the caller's write transaction; the core opens it and checks the person's grant
(`milkconsole.supervision.herd_changes`), so the change, its audit row and its way to Odoo are
stored together or not at all. What Odoo must learn goes through `milkconsole.store.outbound`, and
only for a cow Odoo keeps (`odoo_id` set): a cow known only here gets her tags sent once a pull
finds her in Odoo (`adopt`).

Merging (a herd file and the Odoo pull describe the same cows): a cow is the same cow when her
herd number matches, else when one of her tags does. Odoo wins where both have a value; where
only one has a value it is kept. A disagreement is logged once (`note_conflict` remembers it in
`sync_state`). `herd.version` in `sync_state` goes up with every change of cows, tags or
treatments, so a console can re-read the herd only when it changed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from milkconsole.herd.file import HerdRow, ImportReport, RowProblem, tag_text
from milkconsole.meters.rfid import InvalidTag, normalize_tag
from milkconsole.store.db import Database
from milkconsole.store.outbound import queue_animal_fields, queue_animal_tag
from milkconsole.store.schema import Animal, AnimalTag, SyncState, User, append_audit

log = logging.getLogger(__name__)

HERD_VERSION = "herd.version"
_CONFLICT = "herd.conflict."

# The herd file's columns and the animals' columns they fill.
_FIELDS: tuple[tuple[str, str], ...] = (
    ("name", "name"),
    ("group", "group_name"),
    ("birth_date", "birth_date"),
    ("lactation_number", "lactation_number"),
    ("last_calving_date", "last_calving_date"),
)


class TagTaken(Exception):
    """A tag that is already another cow's (the message names her)."""


def canonical_or_none(raw: str | None) -> str | None:
    """A stored tag in canonical form (None when empty or unreadable)."""
    if not raw or not raw.strip():
        return None
    try:
        return normalize_tag(raw)
    except InvalidTag:
        return None


def label(animal: Animal) -> str:
    return f"{animal.number} {animal.name}" if animal.name else animal.number


# -- the version the console watches ------------------------------------------------------------


def bump_herd_version(tx: Session) -> None:
    """Say the herd changed (cows, tags, treatments), inside the changing transaction."""
    row = tx.get(SyncState, HERD_VERSION)
    if row is None:
        tx.add(SyncState(key=HERD_VERSION, value="1"))
    else:
        row.value = str(int(row.value or "0") + 1)


def herd_version(tx: Session) -> int:
    row = tx.get(SyncState, HERD_VERSION)
    return int(row.value) if row is not None and row.value else 0


# -- tags -------------------------------------------------------------------------------------


def tag_claims(tx: Session) -> dict[str, set[int]]:
    """Canonical tag -> the animals wearing it (primary or other), active or not."""
    claims: dict[str, set[int]] = {}
    for aid, raw in tx.execute(select(Animal.id, Animal.rfid_tag)):
        tag = canonical_or_none(raw)
        if tag:
            claims.setdefault(tag, set()).add(aid)
    for aid, raw in tx.execute(select(AnimalTag.animal_id, AnimalTag.rfid_tag)):
        tag = canonical_or_none(raw)
        if tag:
            claims.setdefault(tag, set()).add(aid)
    return claims


def other_tags(tx: Session, animal_id: int) -> list[AnimalTag]:
    return list(tx.scalars(select(AnimalTag).where(AnimalTag.animal_id == animal_id)))


def _has_tag(tx: Session, animal: Animal, tag: str) -> bool:
    if canonical_or_none(animal.rfid_tag) == tag:
        return True
    return any(canonical_or_none(t.rfid_tag) == tag for t in other_tags(tx, animal.id))


def _add_other_tag(tx: Session, animal: Animal, tag: str) -> bool:
    """Give her `tag` as another tag (False when she already wears it); Odoo learns it when it
    knows her."""
    if _has_tag(tx, animal, tag):
        return False
    tx.add(AnimalTag(animal_id=animal.id, rfid_tag=tag))
    if animal.odoo_id is not None:
        queue_animal_tag(tx, animal.id, tag)
    return True


def release_tag(tx: Session, tag: str, keep: int) -> list[str]:
    """Take `tag` off every cow but `keep` (Odoo moved it to her); the cows it came off."""
    moved: list[str] = []
    for animal in tx.scalars(select(Animal).where(Animal.id != keep)):
        if canonical_or_none(animal.rfid_tag) == tag:
            animal.rfid_tag = None
            moved.append(label(animal))
    for row in tx.scalars(select(AnimalTag).where(AnimalTag.animal_id != keep)):
        if canonical_or_none(row.rfid_tag) == tag:
            owner = tx.get(Animal, row.animal_id)
            tx.delete(row)
            if owner is not None:
                moved.append(label(owner))
    return moved


# -- merging ----------------------------------------------------------------------------------


def note_conflict(tx: Session, animal: Animal, field: str, local: Any, odoo: Any) -> bool:
    """Log once that the console and Odoo disagree on a cow's field (Odoo's value is kept);
    True when this disagreement is new."""
    key = f"{_CONFLICT}{animal.id}.{field}"
    text = f"{local!r} -> {odoo!r}"
    row = tx.get(SyncState, key)
    if row is not None and row.value == text:
        return False
    if row is None:
        tx.add(SyncState(key=key, value=text))
    else:
        row.value = text
    log.warning(
        "cow %s: %s is %r at the console but %r in Odoo; Odoo's is kept",
        label(animal),
        field,
        local,
        odoo,
    )
    return True


def find_local_twin(
    tx: Session, number: str | None, tag: str | None, claims: dict[str, set[int]] | None = None
) -> Animal | None:
    """A cow known only here (no Odoo id) who is the Odoo cow with this number, else with this
    tag: the same cow, recorded twice. `claims`: `tag_claims` already at hand (a pull reads
    them once per page, not once per cow)."""
    local = select(Animal).where(Animal.odoo_id.is_(None))
    if number:
        found = tx.scalars(local.where(Animal.number == number).order_by(Animal.id)).first()
        if found is not None:
            return found
    if tag:
        owners = (claims if claims is not None else tag_claims(tx)).get(tag, set())
        for aid in sorted(owners):
            animal = tx.get(Animal, aid)
            if animal is not None and animal.odoo_id is None:
                return animal
    return None


def adopt(tx: Session, animal: Animal, odoo_id: int) -> None:
    """A cow known only here turns out to be Odoo's `odoo_id`: she takes the id, and her other
    tags go to Odoo."""
    animal.odoo_id = odoo_id
    log.info("cow %s is Odoo's animal %d: merged", label(animal), odoo_id)
    for t in other_tags(tx, animal.id):
        tag = canonical_or_none(t.rfid_tag)
        if tag:
            queue_animal_tag(tx, animal.id, tag)


# -- the herd file ------------------------------------------------------------------------------


@dataclass
class _Counts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    tags_added: int = 0


def import_rows(
    tx: Session, rows: Sequence[HerdRow], *, source: str, actor: str, role: str | None = None
) -> tuple[ImportReport, list[RowProblem]]:
    """Merge a checked herd file into the herd; (what it did, the rows refused). Refused rows
    (a tag already another cow's) change nothing: the caller rolls back when there are any."""
    claims = tag_claims(tx)
    by_number: dict[str, Animal] = {}
    for animal in tx.scalars(select(Animal).order_by(Animal.active.desc(), Animal.id)):
        by_number.setdefault(animal.number, animal)
    problems: list[RowProblem] = []
    for row in rows:
        mine = by_number.get(row.number)
        for column, tag in (
            ("rfid_tag", row.rfid_tag),
            *(("other_tags", t) for t in row.other_tags),
        ):
            if tag is None:
                continue
            owners = claims.get(tag, set()) - ({mine.id} if mine is not None else set())
            if owners:
                other = tx.get(Animal, min(owners))
                who = label(other) if other is not None else str(min(owners))
                problems.append(
                    RowProblem(row.line, column, f"tag {tag_text(tag)} is already cow {who}'s")
                )
    if problems:
        return ImportReport(), problems
    counts = _Counts()
    conflicts: list[str] = []
    for row in rows:
        found = by_number.get(row.number)
        if found is None:
            fresh = Animal(number=row.number, active=True)
            tx.add(fresh)
            tx.flush()
            counts.added += 1
            _fill(tx, fresh, row, conflicts, counts)
            continue
        animal = found
        before = _state(tx, animal)
        if animal.odoo_id is None and not animal.active:
            animal.active = True  # back in the herd the file describes
        _fill(tx, animal, row, conflicts, counts)
        if _state(tx, animal) == before:
            counts.unchanged += 1
        else:
            counts.updated += 1
    tx.flush()
    report = ImportReport(
        added=counts.added,
        updated=counts.updated,
        unchanged=counts.unchanged,
        tags_added=counts.tags_added,
        conflicts=tuple(conflicts),
    )
    append_audit(
        tx,
        actor=actor,
        role=role,
        action="herd_import",
        target=f"herd_file:{source}",
        after={
            "rows": len(rows),
            "added": report.added,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "tags_added": report.tags_added,
            "conflicts": list(report.conflicts),
        },
    )
    bump_herd_version(tx)
    return report, []


def _state(tx: Session, animal: Animal) -> tuple[Any, ...]:
    return (
        animal.name,
        animal.rfid_tag,
        animal.group_name,
        animal.birth_date,
        animal.lactation_number,
        animal.last_calving_date,
        animal.active,
        tuple(sorted(t.rfid_tag for t in other_tags(tx, animal.id))),
    )


def _fill(tx: Session, animal: Animal, row: HerdRow, conflicts: list[str], counts: _Counts) -> None:
    """The row's values onto the cow: all of them for a cow known only here, only the empty
    ones for a cow Odoo keeps (a disagreement is noted once, Odoo's value kept)."""
    odoo = animal.odoo_id is not None
    for column, attr in _FIELDS:
        value = getattr(row, column)
        if value is None:
            continue
        current = getattr(animal, attr)
        if current == value:
            continue
        if odoo and current is not None:
            if note_conflict(tx, animal, attr, value, current):
                conflicts.append(
                    f"cow {row.number}: {column} {_show(value)} in the file, "
                    f"{_show(current)} in Odoo (line {row.line})"
                )
            continue
        setattr(animal, attr, value)
    tag = row.rfid_tag
    current_tag = canonical_or_none(animal.rfid_tag)
    if tag and tag != current_tag:
        if current_tag is None:
            animal.rfid_tag = tag
            _drop_other(tx, animal, tag)
        elif odoo:
            if note_conflict(tx, animal, "rfid_tag", tag, current_tag):
                conflicts.append(
                    f"cow {row.number}: rfid_tag {tag_text(tag)} in the file, "
                    f"{tag_text(current_tag)} in Odoo (line {row.line})"
                )
            counts.tags_added += _add_other_tag(tx, animal, tag)
        else:
            # A new ear tag: the old one is kept as another tag (a reader may still see it).
            animal.rfid_tag = tag
            _drop_other(tx, animal, tag)
            counts.tags_added += _add_other_tag(tx, animal, current_tag)
    for t in row.other_tags:
        counts.tags_added += _add_other_tag(tx, animal, t)
    tx.flush()


def _drop_other(tx: Session, animal: Animal, tag: str) -> None:
    for t in other_tags(tx, animal.id):
        if canonical_or_none(t.rfid_tag) == tag:
            tx.delete(t)
    tx.flush()


def _show(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else repr(value)


def export_rows(tx: Session) -> list[HerdRow]:
    """The active herd as herd-file rows, by herd number (tags canonical)."""
    alts: dict[int, list[str]] = {}
    for aid, raw in tx.execute(select(AnimalTag.animal_id, AnimalTag.rfid_tag)):
        tag = canonical_or_none(raw)
        if tag:
            alts.setdefault(aid, []).append(tag)
    out = []
    for a in tx.scalars(select(Animal).where(Animal.active.is_(True))):
        primary = canonical_or_none(a.rfid_tag)
        out.append(
            HerdRow(
                number=a.number,
                name=a.name,
                rfid_tag=primary,
                other_tags=tuple(sorted(t for t in alts.get(a.id, []) if t != primary)),
                group=a.group_name,
                birth_date=a.birth_date,
                lactation_number=a.lactation_number,
                last_calving_date=a.last_calving_date,
            )
        )
    return sorted(
        out, key=lambda r: (0, int(r.number), "") if r.number.isdigit() else (1, 0, r.number)
    )


# -- a tag registered at the stall, the keep-out flag ---------------------------------------------


@dataclass(frozen=True, slots=True)
class TagChange:
    """What registering a tag did: the cow, the tag, primary or not, and what it replaced."""

    animal_id: int
    animal_label: str
    tag: str
    primary: bool
    previous_primary: str | None


def register_tag(
    tx: Session,
    animal_id: int,
    raw: str,
    *,
    primary: bool | None,
    actor: str,
    role: str | None = None,
    session_key: str | None = None,
) -> TagChange:
    """Give a cow a tag read at a stall: her primary tag (`primary` True, or None when she has
    none) or another one. A tag another cow wears is refused naming her (TagTaken); an
    unreadable one with the reason (ValueError). Audited; Odoo learns it when it knows her."""
    try:
        tag = normalize_tag(raw)
    except InvalidTag as exc:
        raise ValueError(f"tag {raw!r} cannot be registered: {exc.reason}") from exc
    animal = tx.get(Animal, animal_id)
    if animal is None or not animal.active:
        raise LookupError(f"no cow with id {animal_id} in the herd")
    owners = tag_claims(tx).get(tag, set()) - {animal.id}
    if owners:
        other = tx.get(Animal, min(owners))
        who = label(other) if other is not None else str(min(owners))
        raise TagTaken(f"tag {tag_text(tag)} is already cow {who}'s: not registered")
    before_primary = canonical_or_none(animal.rfid_tag)
    before_others = sorted(t.rfid_tag for t in other_tags(tx, animal.id))
    make_primary = before_primary is None if primary is None else primary
    if make_primary and before_primary != tag:
        animal.rfid_tag = tag
        _drop_other(tx, animal, tag)
        if before_primary is not None:
            _add_other_tag(tx, animal, before_primary)
        if animal.odoo_id is not None:
            queue_animal_fields(tx, animal.id, {"rfid_tag": tag})
    elif not make_primary:
        _add_other_tag(tx, animal, tag)
    tx.flush()
    append_audit(
        tx,
        actor=actor,
        role=role,
        action="register_tag",
        target=f"animal:{animal.number}",
        before={"rfid_tag": before_primary, "other_tags": before_others},
        after={
            "rfid_tag": canonical_or_none(animal.rfid_tag),
            "other_tags": sorted(t.rfid_tag for t in other_tags(tx, animal.id)),
            "tag": tag,
            "session": session_key,
        },
    )
    bump_herd_version(tx)
    return TagChange(animal.id, label(animal), tag, make_primary, before_primary)


def set_keep_out(
    tx: Session, animal_id: int, reason: str | None, *, actor: str, role: str | None = None
) -> str | None:
    """Keep a cow's milk out of the tank for `reason`, or let it back (None); audited, and
    written to Odoo when Odoo keeps her. Returns the reason it had."""
    animal = tx.get(Animal, animal_id)
    if animal is None:
        raise LookupError(f"no cow with id {animal_id} in the herd")
    reason = reason.strip() if reason else None
    before = animal.milk_withheld_reason
    if before == reason:
        return before
    animal.milk_withheld_reason = reason
    append_audit(
        tx,
        actor=actor,
        role=role,
        action="keep_milk_out" if reason else "milk_back_in_tank",
        target=f"animal:{animal.number}",
        before={"milk_withheld_reason": before},
        after={"milk_withheld_reason": reason},
    )
    if animal.odoo_id is not None:
        queue_animal_fields(tx, animal.id, {"milk_withheld_reason": reason})
    bump_herd_version(tx)
    return before


def supervisor_exists(tx: Session) -> bool:
    """Has the console a supervisor yet? Until it has (the first set-up), a herd file is
    imported without anyone's PIN."""
    return tx.scalar(select(User.id).where(User.role == "supervisor")) is not None


def current_herd_version(db: Database) -> int:
    """`herd.version` now (a cheap read a console makes every few seconds)."""
    with db.read() as tx:
        return herd_version(tx)
