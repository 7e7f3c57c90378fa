"""Treatments in the store, and what milk separation needs to know of each cow.

`insert_treatment` records one in the caller's transaction (audited; Odoo learns it when it
keeps the cow). `separation_inputs` gathers, for the cows that matter now (a keep-out flag, a
recent calving, a treatment whose withdrawal holds or just ended), the `CowSeparation` values
`milkconsole.herd.separation.decide` works from: her treatments and the starts of her recent
completed milkings. Everything returned is a frozen value; rows stay here.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from milkconsole.herd.separation import CowSeparation, SeparationRules
from milkconsole.herd.withdrawal import Treatment
from milkconsole.store.outbound import queue_treatment
from milkconsole.store.schema import Animal, SessionRow, TreatmentRow, append_audit, utc_now

# A withdrawal that ended longer ago than this says nothing more (not even "back in the tank").
RECENT = timedelta(days=14)
# Milkings looked at before the oldest thing that matters (for her milking interval).
HISTORY_MARGIN = timedelta(days=8)
# A withdrawal in milkings lasts at most this long per milking (a cow milked once a day, plus).
_PER_MILKING = timedelta(hours=30)


def treatments_of_row(row: TreatmentRow) -> list[Treatment]:
    """The row's withdrawal(s): one, or two when Odoo gave both hours and milkings (the milk
    is then held until both are over: the latest end wins)."""
    out = []
    for hours, milkings in ((row.withdrawal_hours, None), (None, row.withdrawal_milkings)):
        if hours is None and milkings is None:
            continue
        out.append(
            Treatment(
                key=row.key,
                animal_id=row.animal_id,
                product=row.product,
                start=row.started_at,
                withdrawal_hours=hours,
                withdrawal_milkings=milkings,
                note=row.note,
                recorded_by=row.recorded_by,
                source=row.source,
                active=row.active,
            )
        )
    return out


def insert_treatment(tx: Session, t: Treatment, *, actor: str, role: str | None = None) -> None:
    """Store a treatment recorded at the console (its key must be new); audited, and queued
    for Odoo when Odoo keeps the cow (else when a pull finds her there)."""
    animal = tx.get(Animal, t.animal_id)
    if animal is None:
        raise LookupError(f"no cow with id {t.animal_id} in the herd")
    if tx.scalar(select(TreatmentRow.id).where(TreatmentRow.key == t.key)) is not None:
        raise ValueError(f"treatment {t.key} is already recorded")
    row = TreatmentRow(
        key=t.key,
        animal_id=t.animal_id,
        product=t.product.strip(),
        started_at=t.start.astimezone(UTC),
        withdrawal_hours=t.withdrawal_hours,
        withdrawal_milkings=t.withdrawal_milkings,
        note=(t.note or "").strip() or None,
        recorded_by=t.recorded_by or actor,
        source="console",
        active=True,
        created_at=utc_now(),
    )
    tx.add(row)
    tx.flush()
    append_audit(
        tx,
        actor=actor,
        role=role,
        action="treatment_recorded",
        target=f"animal:{animal.number}",
        after={
            "key": row.key,
            "product": row.product,
            "start": row.started_at.isoformat(),
            "withdrawal_hours": row.withdrawal_hours,
            "withdrawal_milkings": row.withdrawal_milkings,
            "note": row.note,
        },
    )
    if animal.odoo_id is not None:
        queue_treatment(tx, row)


def queue_console_treatments(tx: Session, animal_id: int) -> None:
    """A cow Odoo did not know is now known there: the treatments recorded for her at the
    console go too."""
    for row in tx.scalars(
        select(TreatmentRow).where(
            TreatmentRow.animal_id == animal_id, TreatmentRow.source == "console"
        )
    ):
        queue_treatment(tx, row)


def treatments_of(tx: Session, animal_id: int, *, limit: int = 50) -> list[Treatment]:
    """A cow's treatments, newest first (cancelled ones too: `active` says)."""
    rows = tx.scalars(
        select(TreatmentRow)
        .where(TreatmentRow.animal_id == animal_id)
        .order_by(TreatmentRow.started_at.desc())
        .limit(limit)
    )
    return [t for r in rows for t in treatments_of_row(r)]


def _may_matter(t: TreatmentRow, now: datetime) -> bool:
    end = max(
        t.started_at + timedelta(hours=t.withdrawal_hours or 0),
        t.started_at + _PER_MILKING * (t.withdrawal_milkings or 0),
    )
    return end >= now - RECENT


def separation_inputs(
    tx: Session,
    now: datetime,
    rules: SeparationRules,
    *,
    animal_ids: Collection[int] | None = None,
) -> dict[int, CowSeparation]:
    """`CowSeparation` of every cow for whom separation may say something at `now` (or of
    `animal_ids` only): keep-out flag, calving within the colostrum period (plus a margin for
    "back in the tank"), treatments whose withdrawal holds or ended within RECENT."""
    today = now.date()
    calved_since = today - timedelta(days=rules.colostrum_max_days + 2)
    query = select(Animal).where(Animal.active.is_(True))
    if animal_ids is not None:
        query = query.where(Animal.id.in_(list(animal_ids)))
    treated: dict[int, list[TreatmentRow]] = {}
    t_query = select(TreatmentRow).where(
        TreatmentRow.active.is_(True), TreatmentRow.started_at >= now - timedelta(days=400)
    )
    if animal_ids is not None:
        t_query = t_query.where(TreatmentRow.animal_id.in_(list(animal_ids)))
    for t in tx.scalars(t_query):
        if _may_matter(t, now):
            treated.setdefault(t.animal_id, []).append(t)
    cows = [
        a
        for a in tx.scalars(
            query.where(
                or_(
                    Animal.milk_withheld_reason.is_not(None),
                    Animal.last_calving_date >= calved_since,
                    Animal.id.in_(list(treated)),
                )
            )
        )
    ]
    if not cows:
        return {}
    earliest = now
    for a in cows:
        for t in treated.get(a.id, ()):
            earliest = min(earliest, t.started_at)
        if a.last_calving_date is not None and a.last_calving_date >= calved_since:
            earliest = min(earliest, _day_start(a.last_calving_date))
    starts: dict[int, list[datetime]] = {}
    for aid, started in tx.execute(
        select(SessionRow.animal_id, SessionRow.started_at).where(
            SessionRow.animal_id.in_([a.id for a in cows]),
            SessionRow.state == "completed",
            SessionRow.started_at >= earliest - HISTORY_MARGIN,
        )
    ):
        if aid is not None:
            starts.setdefault(aid, []).append(started)
    out: dict[int, CowSeparation] = {}
    for a in cows:
        calved = a.last_calving_date
        out[a.id] = CowSeparation(
            animal_id=a.id,
            label=f"{a.number} {a.name}" if a.name else a.number,
            withheld_reason=a.milk_withheld_reason,
            calved_on=calved if calved is not None and calved >= calved_since else None,
            treatments=tuple(
                t
                for row in sorted(treated.get(a.id, ()), key=lambda r: r.started_at)
                for t in treatments_of_row(row)
            ),
            milkings=tuple(sorted(starts.get(a.id, ()))),
        )
    return out


def _day_start(d: date) -> datetime:
    # A day early in UTC covers the local midnight of any zone.
    return datetime(d.year, d.month, d.day, tzinfo=UTC) - timedelta(days=1)
