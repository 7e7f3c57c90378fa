"""What people change about the herd, each change one write transaction with its audit row.

- `import_herd`: a checked herd file (`milkconsole.herd.read_herd_csv`) merged into the herd,
  all of it or nothing; sessions recorded under a tag nobody had get their cow.
- `register_stall_tag`: the operator gives the unknown tag a stall just read to a cow (her
  primary tag or another one); the session being milked is hers from then on.
- `record_treatment` (a supervisor's PIN) and `seed_treatments` (set-up tools: the demo, a
  move from another herd program), `set_keep_out` (a supervisor's PIN).
- `confirm_divert`: the operator says a milking's milk went to the divert line.

A supervisor's change takes a `Grant` (`milkconsole.grants`), checked inside the
transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from milkconsole.grants import Grant
from milkconsole.herd.file import HerdFile, HerdFileError, ImportReport, write_herd_csv
from milkconsole.herd.identity import associate_pending
from milkconsole.herd.withdrawal import Treatment
from milkconsole.store.db import Database
from milkconsole.store.herd import TagChange, export_rows, import_rows, register_tag, set_keep_out
from milkconsole.store.outbound import queue_session_identity
from milkconsole.store.schema import Animal, MilkSession, User
from milkconsole.store.separation import confirm_divert as store_confirm_divert
from milkconsole.store.separation import review_destination
from milkconsole.store.sessions import SessionRecord, record_from_row
from milkconsole.store.treatments import insert_treatment
from milkconsole.store.users import check_grant

SETUP_ACTOR = "setup"  # who imports a herd before any supervisor exists


def import_herd(
    db: Database, herd: HerdFile, *, grant: Grant | None, actor: str | None = None
) -> ImportReport:
    """Merge a checked herd file into the herd in one transaction; HerdFileError (nothing
    changed) when a row clashes with the herd (a tag another cow wears). `grant`: the
    supervisor doing it; None only while the console has no supervisor yet (first set-up)."""
    with db.write() as tx:
        who = actor or SETUP_ACTOR
        role = None
        if grant is not None:
            check_grant(tx, grant, "import_herd")
            who, role = grant.user, grant.role
        elif _has_supervisor(tx):
            check_grant(tx, None, "import_herd")
        report, problems = import_rows(tx, herd.rows, source=herd.source, actor=who, role=role)
        if problems:
            raise HerdFileError(herd.source, problems, herd.header)
        identified = associate_pending(tx)
    return replace(report, identified=len(identified))


def _has_supervisor(tx: Session) -> bool:
    return tx.scalar(select(User.id).where(User.role == "supervisor")) is not None


def export_herd(db: Database, out: TextIO) -> int:
    """Write the active herd as a herd file; how many cows."""
    with db.read() as tx:
        rows = export_rows(tx)
    return write_herd_csv(rows, out)


def register_stall_tag(
    db: Database,
    *,
    animal_id: int,
    tag: str,
    primary: bool | None,
    session_key: str | None,
    actor: str,
) -> TagChange:
    """Give `tag` (as read at a stall) to a cow; the session with that tag is hers from now on,
    and so is any earlier milking recorded under it. Refused (store.herd.TagTaken) when
    another cow wears it."""
    with db.write() as tx:
        change = register_tag(
            tx, animal_id, tag, primary=primary, actor=actor, session_key=session_key
        )
        row = tx.get(MilkSession, session_key) if session_key else None
        if row is not None and row.id_source != "manual" and row.animal_id != animal_id:
            row.animal_id, row.id_source = animal_id, "rfid"
            row.updated_at = datetime.now(UTC)
            tx.flush()
            queue_session_identity(tx, row)
            review_destination(tx, row)
        associate_pending(tx)
    return change


def new_treatment_key(farm_code: str, at: datetime) -> str:
    """A treatment's stable key (Odoo's source_reference): farm, time, random."""
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{farm_code}-TRT-{stamp}-{secrets.token_hex(3)}"


def record_treatment(db: Database, treatment: Treatment, grant: Grant) -> Treatment:
    """A supervisor records a treatment at the console (PIN checked, audited, sent to Odoo)."""
    with db.write() as tx:
        check_grant(tx, grant, "record_treatment")
        row = insert_treatment(
            tx, replace(treatment, recorded_by=grant.user), actor=grant.user, role=grant.role
        )
        _review_since(tx, row.animal_id, row.started_at)
    return replace(treatment, recorded_by=grant.user)


def seed_treatments(db: Database, treatments: Sequence[Treatment], *, actor: str) -> int:
    """Treatments a set-up tool records without a PIN (the demo, a move from another herd
    program); audited under `actor`. How many."""
    with db.write() as tx:
        for t in treatments:
            insert_treatment(tx, t, actor=actor)
    return len(treatments)


def _review_since(tx: Session, animal_id: int, since: datetime) -> None:
    """Finished sessions of hers since `since` may now be diverted milk."""
    for row in tx.scalars(
        select(MilkSession).where(
            MilkSession.animal_id == animal_id, MilkSession.started_at >= since
        )
    ):
        review_destination(tx, row)


def change_keep_out(db: Database, animal_id: int, reason: str | None, grant: Grant) -> None:
    """A supervisor keeps a cow's milk out of the tank for `reason`, or lets it back (None)."""
    with db.write() as tx:
        check_grant(tx, grant, "keep_milk_out")
        set_keep_out(tx, animal_id, reason, actor=grant.user, role=grant.role)


def confirm_divert(
    db: Database,
    session_key: str,
    actor: str,
    *,
    reason: str | None = None,
    zone: tzinfo | None = None,
) -> SessionRecord:
    """The operator's "milk diverted" for a session (LookupError while it is not stored)."""
    with db.write() as tx:
        row = store_confirm_divert(tx, session_key, actor, reason=reason, zone=zone)
        animal = tx.get(Animal, row.animal_id) if row.animal_id is not None else None
        return record_from_row(row, animal)
