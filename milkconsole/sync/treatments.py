"""Treatments pulled from Odoo: `farm.animal.treatment` into the local `treatments`, so the stall
knows a cow treated in the office, with Odoo offline.

Pulled like the herd (`sync.animals.pull_pages`: by write_date, from a little before the cursor,
upserted idempotently), after it, so their cows are here. A treatment is the same one as a
local row by Odoo id, else by `source_reference` (one recorded at the console comes back with
its key); one made in Odoo without a reference is keyed `odoo:<id>`. Odoo wins on every field.
A full pull compares id sets: a treatment gone from Odoo is made inactive here (its milk is no
longer held), except one recorded here and not sent yet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from milkconsole.herd.withdrawal import TreatmentError, check_withdrawal
from milkconsole.store.db import Database
from milkconsole.store.herd import bump_herd_version
from milkconsole.store.herd_sync import local_ids
from milkconsole.store.sync_state import state_set
from milkconsole.store.treatment_sync import PulledTreatment, deactivate_gone, save_treatments
from milkconsole.sync.animals import PAGE, pull_pages
from milkconsole.sync.client import OdooClient
from milkconsole.sync.contract import Contract
from milkconsole.sync.odoo_values import from_odoo_datetime, many2one_id, odoo_text

log = logging.getLogger(__name__)

CURSOR_TREATMENTS = "odoo.pull.treatment"


@dataclass(frozen=True, slots=True)
class TreatmentPull:
    changed: int = 0
    skipped: int = 0
    deactivated: int = 0


def pull_treatments(
    client: OdooClient,
    db: Database,
    contract: Contract,
    available: dict[str, set[str]] | None = None,
    *,
    full: bool = False,
    page: int = PAGE,
) -> TreatmentPull:
    """Bring the local treatments up to date with Odoo (`full`: also find deleted ones)."""
    fmap = contract.fields("treatment")
    have = (available or {}).get("treatment")
    if have is not None:
        fmap = {k: v for k, v in fmap.items() if v in have}
    model = contract.model("treatment")
    fields = sorted(set(fmap.values()))
    changed = skipped = 0
    for records, cursor in pull_pages(client, db, model, fields, CURSOR_TREATMENTS, page):
        with db.write() as tx:
            local = local_ids(tx, {many2one_id(r.get(fmap["animal_id"])) for r in records})
            pulled, missed = _treatments(records, fmap, local)
            done = save_treatments(tx, pulled)
            state_set(tx, CURSOR_TREATMENTS, cursor)
            if done:
                bump_herd_version(tx)
        changed += done
        skipped += missed
    deactivated = 0
    if full:
        ids = set(client.search(model, [], context={"active_test": False}))
        with db.write() as tx:
            deactivated = deactivate_gone(tx, ids)
            if deactivated:
                bump_herd_version(tx)
    if changed or deactivated or skipped:
        log.info(
            "treatments from Odoo: %d updated, %d gone, %d skipped (cow not here or no withdrawal)",
            changed,
            deactivated,
            skipped,
        )
    return TreatmentPull(changed, skipped, deactivated)


def _treatments(
    records: list[dict[str, Any]], fmap: dict[str, str], local: dict[int, int]
) -> tuple[list[PulledTreatment], int]:
    """A page of Odoo's treatments in the store's terms (`local`: Odoo cow id -> local id), and
    how many were skipped: a cow the herd does not have, no start, or no usable withdrawal."""
    pulled: list[PulledTreatment] = []
    missed = 0
    for rec in records:
        odoo_id = int(rec["id"])

        def get(name: str, rec: dict[str, Any] = rec) -> Any:
            return rec.get(fmap[name]) if name in fmap else None

        odoo_animal = many2one_id(get("animal_id"))
        animal = local.get(odoo_animal) if odoo_animal is not None else None
        start = from_odoo_datetime(get("start"))
        hours = get("withdrawal_hours") or None
        milkings = get("withdrawal_milkings") or None
        if animal is None or start is None:
            missed += 1
            continue
        try:
            # Both may be given in Odoo: each is checked, and the milk waits for both.
            if hours is not None or milkings is None:
                check_withdrawal(float(hours) if hours else None, None)
            if milkings is not None:
                check_withdrawal(None, int(milkings))
        except (TreatmentError, TypeError, ValueError) as exc:
            log.debug("treatment %d from Odoo has no usable withdrawal: %s", odoo_id, exc)
            missed += 1
            continue
        pulled.append(
            PulledTreatment(
                odoo_id=odoo_id,
                key=odoo_text(get("source_reference")) or f"odoo:{odoo_id}",
                animal_id=animal,
                product=odoo_text(get("product")) or "treatment",
                started_at=start,
                withdrawal_hours=float(hours) if hours else None,
                withdrawal_milkings=int(milkings) if milkings else None,
                note=odoo_text(get("note")),
                recorded_by=odoo_text(get("recorded_by")),
                active=bool(get("active")) if "active" in fmap else True,
                write_date=from_odoo_datetime(rec.get("write_date")),
            )
        )
    return pulled, missed
