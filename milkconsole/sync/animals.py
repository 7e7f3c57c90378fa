"""The local animal cache: the herd pulled from Odoo, so cows are identified with Odoo offline.

`farm.animal` fills `animals` (keyed by `odoo_id`) and `farm.animal.rfid` fills `animal_tags`
(a cow's other tags), both incrementally by `write_date`. The cursor is the newest write_date
seen, kept in `sync_state` in the same transaction as the rows it covers. Odoo stamps write_date
with its transaction's start time, to the second, so a record can commit after a newer stamp
was read, or share the cursor's second with a lower id: each pull therefore reads again from
`OVERLAP` before the cursor (pages keyed on (write_date, id)) and upserts idempotently, counting
only what really changed. A deletion leaves no write_date, so a full pull now and then compares
id sets: an animal gone from Odoo is marked inactive (its sessions still point at it), a tag
gone is removed.

Cows recorded at the console first (a herd file, before Odoo was set up) merge with Odoo's:
an Odoo cow nobody here has yet is matched with a cow known only here by herd number, else by
tag, and that cow takes the Odoo id (`store.herd.adopt`). Odoo wins where both have a value
(a disagreement at the merge is logged once), a value only one of them has is kept, and a field
the console changed and has not sent yet (a new primary tag, the keep-out flag) is not undone
by a pull that comes before the change reaches Odoo. A tag Odoo gives one cow is taken off any
other cow here.

The network calls happen between the local transactions, never inside one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from milkconsole.store.db import Database
from milkconsole.store.herd import (
    adopt,
    bump_herd_version,
    canonical_or_none,
    find_local_twin,
    label,
    note_conflict,
    tag_claims,
)
from milkconsole.store.outbound import ANIMAL, queue_animal_fields
from milkconsole.store.schema import Animal, AnimalTag, OutboxRow, SyncState
from milkconsole.store.treatments import queue_console_treatments
from milkconsole.sync.client import OdooClient
from milkconsole.sync.contract import (
    ODOO_DATETIME,
    Contract,
    from_odoo_datetime,
    many2one_id,
    odoo_text,
)

log = logging.getLogger(__name__)

PAGE = 1000
OVERLAP = timedelta(minutes=10)
CURSOR_ANIMALS = "odoo.pull.animal"
CURSOR_TAGS = "odoo.pull.animal_rfid"


@dataclass(frozen=True, slots=True)
class PullReport:
    animals: int = 0
    tags: int = 0
    deactivated: int = 0
    tags_removed: int = 0
    skipped_tags: int = 0


def state_get(tx: Session, key: str) -> str | None:
    """A value of `sync_state` (None when unset)."""
    row = tx.get(SyncState, key)
    return None if row is None else row.value


def state_set(tx: Session, key: str, value: str | None) -> None:
    """Set a value of `sync_state` inside the caller's transaction."""
    row = tx.get(SyncState, key)
    if row is None:
        tx.add(SyncState(key=key, value=value))
    else:
        row.value = value


def pull_pages(
    client: OdooClient,
    db: Database,
    model: str,
    fields: list[str],
    cursor_key: str,
    page: int,
) -> Iterable[tuple[list[dict[str, Any]], str]]:
    """(records, new cursor) pages from OVERLAP before the stored cursor, in (write_date, id)
    order; the new cursor is the newest write_date read so far."""
    with db.read() as tx:
        cursor = state_get(tx, cursor_key)
    domain: list[Any] = []
    if cursor:
        since = from_odoo_datetime(cursor)
        assert since is not None
        domain = [["write_date", ">=", (since - OVERLAP).strftime(ODOO_DATETIME)]]
    newest = cursor or ""
    after: list[Any] = []
    while True:
        records = client.search_read(
            model,
            [*domain, *after],
            [*fields, "write_date"],
            order="write_date asc, id asc",
            limit=page,
            context={"active_test": False},
        )
        if not records:
            return
        last = records[-1]
        newest = max(newest, str(last["write_date"] or ""))
        yield records, newest
        if len(records) < page:
            return
        wd, last_id = last["write_date"], int(last["id"])
        after = ["|", ["write_date", ">", wd], "&", ["write_date", "=", wd], ["id", ">", last_id]]


def pull_animals(
    client: OdooClient,
    db: Database,
    contract: Contract,
    available: dict[str, set[str]] | None = None,
    *,
    full: bool = False,
    page: int = PAGE,
) -> PullReport:
    """Bring the local herd up to date with Odoo (`full`: also find what Odoo deleted).

    `available` holds the fields each server model has (from the contract check); contract
    fields the server lacks are not asked for.
    """
    fmap = contract.fields("animal")
    have = (available or {}).get("animal")
    if have is not None:
        fmap = {k: v for k, v in fmap.items() if v in have}
    animal_model = contract.model("animal")
    fields = sorted(set(fmap.values()))
    n_animals = 0
    for records, cursor in pull_pages(client, db, animal_model, fields, CURSOR_ANIMALS, page):
        with db.write() as tx:
            done = _upsert_animals(tx, records, fmap)
            state_set(tx, CURSOR_ANIMALS, cursor)
            if done:
                bump_herd_version(tx)
        n_animals += done

    n_tags = skipped = 0
    tag_model: str | None = contract.model("animal_rfid")
    tmap = contract.fields("animal_rfid")
    if available is not None and "animal_rfid" not in available:
        tag_model = None  # the server has no tag model; canonical tags still work
    if tag_model is not None:
        for records, cursor in pull_pages(
            client, db, tag_model, sorted(set(tmap.values())), CURSOR_TAGS, page
        ):
            with db.write() as tx:
                done, missed = _upsert_tags(tx, records, tmap)
                state_set(tx, CURSOR_TAGS, cursor)
                if done:
                    bump_herd_version(tx)
            n_tags += done
            skipped += missed

    deactivated = removed = 0
    if full:
        odoo_ids = set(client.search(animal_model, [], context={"active_test": False}))
        tag_texts: set[str] | None = None
        if tag_model is not None:
            rows = client.search_read(tag_model, [], [tmap["rfid_tag"]])
            tag_texts = {t for r in rows if (t := odoo_text(r.get(tmap["rfid_tag"])))}
        with db.write() as tx:
            for animal in tx.scalars(select(Animal).where(Animal.odoo_id.is_not(None))):
                if animal.odoo_id not in odoo_ids and animal.active:
                    animal.active = False
                    deactivated += 1
            if tag_texts is not None:
                gone = _tags_gone(tx, tag_texts)
                if gone:
                    tx.execute(delete(AnimalTag).where(AnimalTag.rfid_tag.in_(gone)))
                removed = len(gone)
            if deactivated or removed:
                bump_herd_version(tx)
    if n_animals or n_tags or deactivated or removed:
        log.info(
            "herd from Odoo: %d animals, %d tags updated; %d deactivated, %d tags removed",
            n_animals,
            n_tags,
            deactivated,
            removed,
        )
    return PullReport(n_animals, n_tags, deactivated, removed, skipped)


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


def _upsert_animals(tx: Session, records: list[dict[str, Any]], fmap: dict[str, str]) -> int:
    """Insert or update the animals of `records`, merging with cows known only here; returns
    how many were new or changed."""
    ids = [int(r["id"]) for r in records]
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
    for rec in records:
        odoo_id = int(rec["id"])

        def text(name: str, rec: dict[str, Any] = rec) -> str | None:
            return odoo_text(rec.get(fmap[name])) if name in fmap else None

        name = text("name")
        number = text("number")
        withheld = bool(rec.get(fmap["milk_withheld"])) if "milk_withheld" in fmap else False
        values = {
            "number": number or name or str(odoo_id),
            "name": name,
            "rfid_tag": text("rfid_tag"),
            "group_name": text("herd_group"),
            "conductivity_baseline_ms_cm": (
                float(rec[fmap["conductivity_baseline"]])
                if "conductivity_baseline" in fmap and rec.get(fmap["conductivity_baseline"])
                else None
            ),
            "birth_date": _date(rec.get(fmap["birth_date"])) if "birth_date" in fmap else None,
            "lactation_number": (
                int(rec[fmap["lactation_number"]])
                if "lactation_number" in fmap and rec.get(fmap["lactation_number"])
                else None
            ),
            "last_calving_date": (
                _date(rec.get(fmap["last_calving_date"])) if "last_calving_date" in fmap else None
            ),
            "milk_withheld_reason": (
                (text("milk_withheld_reason") or "kept out in Odoo") if withheld else None
            ),
            "active": bool(rec.get(fmap["active"], True)) if "active" in fmap else True,
            "write_date": from_odoo_datetime(rec.get("write_date")),
        }
        tag = canonical_or_none(text("rfid_tag"))
        row = existing.get(odoo_id)
        adopted = False
        if row is None and (local_only or (tag is not None and tag in claims)):
            row = local_only.pop(number or name or str(odoo_id), None) or find_local_twin(
                tx, None, tag, claims
            )
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


def _date(value: Any) -> date | None:
    """A date as Odoo reads it back ('YYYY-MM-DD' or False)."""
    if not value:
        return None
    return date.fromisoformat(str(value)[:10])


def _upsert_tags(
    tx: Session, records: list[dict[str, Any]], tmap: dict[str, str]
) -> tuple[int, int]:
    odoo_animal_ids = {many2one_id(r.get(tmap["animal_id"])) for r in records}
    local: dict[int | None, int] = {
        odoo_id: local_id
        for odoo_id, local_id in tx.execute(
            select(Animal.odoo_id, Animal.id).where(
                Animal.odoo_id.in_([i for i in odoo_animal_ids if i is not None])
            )
        )
    }
    done = missed = 0
    for rec in records:
        tag = odoo_text(rec.get(tmap["rfid_tag"]))
        animal = local.get(many2one_id(rec.get(tmap["animal_id"])))
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


def reset_cursors(db: Database) -> None:
    """Forget the pull cursors (the next pull reads the whole herd again)."""
    with db.write() as tx:
        for key in (CURSOR_ANIMALS, CURSOR_TAGS):
            state_set(tx, key, None)
