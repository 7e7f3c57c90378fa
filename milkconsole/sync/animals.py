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

The network calls happen between the local transactions, never inside one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from milkconsole.store.db import Database
from milkconsole.store.schema import Animal, AnimalTag, SyncState
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


def _pages(
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
    for records, cursor in _pages(client, db, animal_model, fields, CURSOR_ANIMALS, page):
        with db.write() as tx:
            n_animals += _upsert_animals(tx, records, fmap)
            state_set(tx, CURSOR_ANIMALS, cursor)

    n_tags = skipped = 0
    tag_model: str | None = contract.model("animal_rfid")
    tmap = contract.fields("animal_rfid")
    if available is not None and "animal_rfid" not in available:
        tag_model = None  # the server has no tag model; canonical tags still work
    if tag_model is not None:
        for records, cursor in _pages(
            client, db, tag_model, sorted(set(tmap.values())), CURSOR_TAGS, page
        ):
            with db.write() as tx:
                done, missed = _upsert_tags(tx, records, tmap)
                state_set(tx, CURSOR_TAGS, cursor)
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
                gone = [t for t in tx.scalars(select(AnimalTag.rfid_tag)) if t not in tag_texts]
                if gone:
                    tx.execute(delete(AnimalTag).where(AnimalTag.rfid_tag.in_(gone)))
                removed = len(gone)
    if n_animals or n_tags or deactivated or removed:
        log.info(
            "herd from Odoo: %d animals, %d tags updated; %d deactivated, %d tags removed",
            n_animals,
            n_tags,
            deactivated,
            removed,
        )
    return PullReport(n_animals, n_tags, deactivated, removed, skipped)


def _upsert_animals(tx: Session, records: list[dict[str, Any]], fmap: dict[str, str]) -> int:
    """Insert or update the animals of `records`; returns how many were new or changed."""
    ids = [int(r["id"]) for r in records]
    existing = {a.odoo_id: a for a in tx.scalars(select(Animal).where(Animal.odoo_id.in_(ids)))}
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
        row = existing.get(odoo_id)
        if row is None:
            tx.add(Animal(odoo_id=odoo_id, **values))
            changed += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            changed += 1
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
