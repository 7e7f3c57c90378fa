"""The treatments Odoo sent, written into the local `treatments` (so the stall knows a cow
treated in the office, with Odoo offline).

`milkconsole.sync.treatments` reads Odoo and checks each record's withdrawal; the functions
here write a page inside the caller's transaction (the one that moves the pull's cursor). A
treatment is the same one as a local row by Odoo id, else by its key (one recorded at the
console comes back with it). Odoo wins on every field.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from milkconsole.store.schema import TreatmentRow, utc_now


@dataclass(frozen=True, slots=True)
class PulledTreatment:
    """A `farm.animal.treatment` as Odoo sent it, its cow found here (`animal_id` is local)."""

    odoo_id: int
    key: str
    animal_id: int
    product: str
    started_at: datetime
    withdrawal_hours: float | None
    withdrawal_milkings: int | None
    note: str | None
    recorded_by: str | None
    active: bool
    write_date: datetime | None

    def values(self) -> dict[str, Any]:
        return {
            "odoo_id": self.odoo_id,
            "key": self.key,
            "animal_id": self.animal_id,
            "product": self.product,
            "started_at": self.started_at,
            "withdrawal_hours": self.withdrawal_hours,
            "withdrawal_milkings": self.withdrawal_milkings,
            "note": self.note,
            "recorded_by": self.recorded_by,
            "active": self.active,
            "write_date": self.write_date,
        }


def save_treatments(tx: Session, treatments: Sequence[PulledTreatment]) -> int:
    """Insert or update these treatments; returns how many were new or changed."""
    changed = 0
    for pulled in treatments:
        values = pulled.values()
        row = tx.scalars(select(TreatmentRow).where(TreatmentRow.odoo_id == pulled.odoo_id)).first()
        if row is None:
            row = tx.scalars(select(TreatmentRow).where(TreatmentRow.key == pulled.key)).first()
        if row is None:
            tx.add(TreatmentRow(source="odoo", created_at=utc_now(), **values))
            changed += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            changed += 1
    tx.flush()
    return changed


def deactivate_gone(tx: Session, odoo_ids: Collection[int]) -> int:
    """After a full pull: treatments from Odoo it no longer has stop holding milk back (one
    recorded here and not sent yet has no Odoo id, so it stays). Returns how many."""
    deactivated = 0
    for row in tx.scalars(
        select(TreatmentRow).where(TreatmentRow.odoo_id.is_not(None), TreatmentRow.active.is_(True))
    ):
        if row.odoo_id not in odoo_ids:
            row.active = False
            deactivated += 1
    return deactivated
