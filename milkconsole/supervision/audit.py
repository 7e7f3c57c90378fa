"""The audit log: reading it, exporting it, and recording configuration changes.

Every change a person makes at the console is appended to `audit_log` in the same transaction as the
change (`milkconsole.store.schema.append_audit`): calibrations
(`milkconsole.technician.calibration`), manual IDs and re-attaches (`SessionStore`), users
(`milkconsole.supervision.users`), alert acknowledgements and resolutions
(`milkconsole.supervision.alerts`) and, here, configuration changes. The table refuses UPDATE and
DELETE (database triggers), and nothing in the console offers to edit it.

Reading and exporting need a supervisor's grant (`view_audit`); an export is itself audited.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from milkconsole.grants import Grant
from milkconsole.reports.csv_out import write_table  # the one CSV writer
from milkconsole.store.db import Database
from milkconsole.store.schema import AuditEntry, append_audit
from milkconsole.store.sessions import iso_z
from milkconsole.store.users import check_grant

CSV_COLUMNS: tuple[str, ...] = ("id", "at", "actor", "role", "action", "target", "before", "after")
DEFAULT_LIMIT = 5000


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit row: who (actor, role), when (UTC), what (action on target), before/after."""

    id: int
    at: datetime
    actor: str
    role: str | None
    action: str
    target: str
    before: Any
    after: Any


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which rows to read; None means any. `target` matches a prefix (`meter:`, `user:Ann`)."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    limit: int = DEFAULT_LIMIT


def _query(tx: Session, f: AuditFilter) -> list[AuditRecord]:
    q = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if f.since is not None:
        q = q.where(AuditEntry.at >= f.since)
    if f.until is not None:
        q = q.where(AuditEntry.at < f.until)
    if f.actor:
        q = q.where(AuditEntry.actor == f.actor)
    if f.action:
        q = q.where(AuditEntry.action == f.action)
    if f.target:
        # A prefix match without LIKE's wildcards ('_' is common in keys).
        q = q.where(AuditEntry.target.startswith(f.target, autoescape=True))
    return [
        AuditRecord(r.id, r.at, r.actor, r.role, r.action, r.target, r.before, r.after)
        for r in tx.scalars(q.limit(max(1, f.limit)))
    ]


def query_audit(
    db: Database, grant: Grant | None, f: AuditFilter | None = None
) -> list[AuditRecord]:
    """Audit rows matching `f`, newest first. AccessDenied without a supervisor's grant."""
    with db.read() as tx:
        check_grant(tx, grant, "view_audit")
        return _query(tx, f or AuditFilter())


def audit_vocabulary(db: Database, grant: Grant | None) -> tuple[list[str], list[str]]:
    """The actions and the actors the log holds (for the view's filters)."""
    with db.read() as tx:
        check_grant(tx, grant, "view_audit")
        actions = sorted(tx.scalars(select(AuditEntry.action).distinct()))
        actors = sorted(tx.scalars(select(AuditEntry.actor).distinct()))
        return actions, actors


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def write_audit_csv(out: TextIO, records: Sequence[AuditRecord]) -> int:
    """CSV with header `CSV_COLUMNS`: times ISO 8601 UTC with Z, before/after as JSON."""
    rows = (
        {
            "id": r.id,
            "at": r.at,
            "actor": r.actor,
            "role": r.role,
            "action": r.action,
            "target": r.target,
            "before": _json(r.before),
            "after": _json(r.after),
        }
        for r in records
    )
    return write_table(out, CSV_COLUMNS, rows)


def export_audit_csv(
    db: Database, grant: Grant | None, out: TextIO, f: AuditFilter | None = None
) -> int:
    """Write the matching rows (oldest first) as CSV to `out`; the count. The export is
    itself recorded. Open `out` with newline=""."""
    f = f or AuditFilter()
    records = list(reversed(query_audit(db, grant, f)))
    n = write_audit_csv(out, records)
    assert grant is not None
    with db.write() as tx:
        check_grant(tx, grant, "view_audit")
        append_audit(
            tx,
            actor=grant.user,
            role=grant.role,
            action="audit_export",
            target="audit_log",
            after={
                "rows": n,
                "since": iso_z(f.since) if f.since else None,
                "until": iso_z(f.until) if f.until else None,
                "actor": f.actor,
                "action": f.action,
                "target": f.target,
            },
        )
    return n


# -- audited changes ------------------------------------------------------------------------------


def record_config_change(
    db: Database, grant: Grant | None, key: str, before: Any, after: Any
) -> None:
    """Record a settings change made at the console (`key` like `calibration.equipment`).

    The caller writes the setting itself; call this in the same breath, after it succeeded.
    """
    with db.write() as tx:
        check_grant(tx, grant, "change_config")
        assert grant is not None
        append_audit(
            tx,
            actor=grant.user,
            role=grant.role,
            action="config_change",
            target=f"config:{key}",
            before=before,
            after=after,
        )
