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

from milkconsole.grants import Grant
from milkconsole.herd.file import HerdFile, HerdFileError, ImportReport, write_herd_csv
from milkconsole.herd.withdrawal import Treatment
from milkconsole.store.db import Database
from milkconsole.store.herd import (
    TagChange,
    export_rows,
    import_rows,
    register_tag,
    set_keep_out,
    supervisor_exists,
)
from milkconsole.store.separation import confirm_divert as store_confirm_divert
from milkconsole.store.separation import review_since
from milkconsole.store.sessions import SessionRecord, read_record
from milkconsole.store.tags import assign_session, associate_pending
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
        elif supervisor_exists(tx):
            check_grant(tx, None, "import_herd")
        report, problems = import_rows(tx, herd.rows, source=herd.source, actor=who, role=role)
        if problems:
            raise HerdFileError(herd.source, problems, herd.header)
        identified = associate_pending(tx)
    return replace(report, identified=len(identified))


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
        assign_session(tx, session_key, animal_id)
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
        insert_treatment(
            tx, replace(treatment, recorded_by=grant.user), actor=grant.user, role=grant.role
        )
        # Her milkings since it began may now be milk to keep out.
        review_since(tx, treatment.animal_id, treatment.start.astimezone(UTC))
    return replace(treatment, recorded_by=grant.user)


def seed_treatments(db: Database, treatments: Sequence[Treatment], *, actor: str) -> int:
    """Treatments a set-up tool records without a PIN (the demo, a move from another herd
    program); audited under `actor`. How many."""
    with db.write() as tx:
        for t in treatments:
            insert_treatment(tx, t, actor=actor)
    return len(treatments)


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
        store_confirm_divert(tx, session_key, actor, reason=reason, zone=zone)
        record = read_record(tx, session_key)
        assert record is not None  # confirm_divert refused a session not stored
        return record
