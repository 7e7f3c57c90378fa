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
tag, and that cow takes the Odoo id. Odoo wins where both have a value, a value only one of them
has is kept, and a field the console changed and has not sent yet is not undone by a pull
(`milkconsole.store.herd_sync` writes a page: this module reads Odoo and maps its records).

The network calls happen between the local transactions, never inside one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from milkconsole.store.db import Database
from milkconsole.store.herd import bump_herd_version
from milkconsole.store.herd_sync import PulledAnimal, PulledTag, mark_gone, save_animals, save_tags
from milkconsole.store.sync_state import state_get, state_set
from milkconsole.sync.client import OdooClient
from milkconsole.sync.contract import Contract
from milkconsole.sync.odoo_values import ODOO_DATETIME, from_odoo_datetime, many2one_id, odoo_text

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
            done = save_animals(tx, [_animal(r, fmap) for r in records])
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
                done, missed = save_tags(tx, [_tag(r, tmap) for r in records])
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
            deactivated, removed = mark_gone(tx, odoo_ids, tag_texts)
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


def _animal(rec: dict[str, Any], fmap: dict[str, str]) -> PulledAnimal:
    """An Odoo `farm.animal` record (server field names in `fmap`) in the herd's terms."""
    odoo_id = int(rec["id"])

    def text(name: str) -> str | None:
        return odoo_text(rec.get(fmap[name])) if name in fmap else None

    name = text("name")
    withheld = bool(rec.get(fmap["milk_withheld"])) if "milk_withheld" in fmap else False
    return PulledAnimal(
        odoo_id=odoo_id,
        number=text("number") or name or str(odoo_id),
        name=name,
        rfid_tag=text("rfid_tag"),
        group_name=text("herd_group"),
        conductivity_baseline_ms_cm=(
            float(rec[fmap["conductivity_baseline"]])
            if "conductivity_baseline" in fmap and rec.get(fmap["conductivity_baseline"])
            else None
        ),
        birth_date=_date(rec.get(fmap["birth_date"])) if "birth_date" in fmap else None,
        lactation_number=(
            int(rec[fmap["lactation_number"]])
            if "lactation_number" in fmap and rec.get(fmap["lactation_number"])
            else None
        ),
        last_calving_date=(
            _date(rec.get(fmap["last_calving_date"])) if "last_calving_date" in fmap else None
        ),
        milk_withheld_reason=(
            (text("milk_withheld_reason") or "kept out in Odoo") if withheld else None
        ),
        active=bool(rec.get(fmap["active"], True)) if "active" in fmap else True,
        write_date=from_odoo_datetime(rec.get("write_date")),
    )


def _tag(rec: dict[str, Any], tmap: dict[str, str]) -> PulledTag:
    """An Odoo `farm.animal.rfid` record: the tag and its cow's Odoo id."""
    return PulledTag(odoo_text(rec.get(tmap["rfid_tag"])), many2one_id(rec.get(tmap["animal_id"])))


def _date(value: Any) -> date | None:
    """A date as Odoo reads it back ('YYYY-MM-DD' or False)."""
    if not value:
        return None
    return date.fromisoformat(str(value)[:10])


def reset_cursors(db: Database) -> None:
    """Forget the pull cursors (the next pull reads the whole herd again)."""
    with db.write() as tx:
        for key in (CURSOR_ANIMALS, CURSOR_TAGS):
            state_set(tx, key, None)
