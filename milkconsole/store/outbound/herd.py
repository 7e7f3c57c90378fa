"""The herd's changes made at the console, for Odoo: a cow's other tags (`farm.animal.rfid`),
what the console changed on a cow (`farm.animal`, writes only) and treatments recorded here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from milkconsole.store.outbound.payloads import (
    ANIMAL,
    ANIMAL_TAG,
    TREATMENT,
    animal_payload,
    treatment_payload,
)
from milkconsole.store.outbox import enqueue
from milkconsole.store.schema import TreatmentRow


def queue_animal_tag(tx: Session, animal_id: int, tag: str) -> None:
    """A cow's other tag for Odoo's `farm.animal.rfid` (one create per canonical tag; waits
    while Odoo does not know the cow)."""
    enqueue(tx, ANIMAL_TAG, tag, {"tag": tag, **animal_payload(tx, animal_id)})


def queue_animal_fields(tx: Session, animal_id: int, changed: Mapping[str, Any]) -> None:
    """What the console changed on a cow, for Odoo's `farm.animal` (a write, merged with one
    still waiting): `rfid_tag` (canonical), `milk_withheld` and `milk_withheld_reason`."""
    fields = dict(changed)
    if "milk_withheld_reason" in fields:
        fields["milk_withheld"] = fields["milk_withheld_reason"] is not None
    enqueue(
        tx, ANIMAL, str(animal_id), {**animal_payload(tx, animal_id), **fields}, operation="write"
    )


def queue_treatment(tx: Session, row: TreatmentRow) -> None:
    """A treatment recorded at the console, for Odoo (one create per treatment key)."""
    tx.flush()
    enqueue(tx, TREATMENT, row.key, treatment_payload(tx, row))
