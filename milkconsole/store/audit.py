"""The audit log in the store: reading it (a supervisor's), and the rows this module writes itself.

Every change a person makes at the console is appended to `audit_log` in the same transaction as
the change (`milkconsole.store.schema.append_audit`): calibrations (`store.calibrations`), manual
IDs and re-attaches (`store.sessions`), users (`store.users`), alert acknowledgements and
resolutions (`store.alerts`), phone access (`store.web_tokens`) and, here, configuration changes
and the audit log's own exports. The table refuses UPDATE and DELETE (database triggers), and
nothing in the console offers to edit it.

Reading needs a supervisor's grant (`view_audit`); the CSV export is `milkconsole.reports.audit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from milkconsole.grants import Grant
from milkconsole.store.db import Database
from milkconsole.store.schema import AuditEntry, append_audit
from milkconsole.store.sessions import iso_z
from milkconsole.store.users import check_grant

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


def record_audit_export(db: Database, grant: Grant | None, rows: int, f: AuditFilter) -> None:
    """Record that `rows` rows matching `f` left the console (the export is audited too)."""
    with db.write() as tx:
        grant = check_grant(tx, grant, "view_audit")
        append_audit(
            tx,
            actor=grant.user,
            role=grant.role,
            action="audit_export",
            target="audit_log",
            after={
                "rows": rows,
                "since": iso_z(f.since) if f.since else None,
                "until": iso_z(f.until) if f.until else None,
                "actor": f.actor,
                "action": f.action,
                "target": f.target,
            },
        )


def record_config_change(
    db: Database, grant: Grant | None, key: str, before: Any, after: Any
) -> None:
    """Record a settings change made at the console (`key` like `calibration.equipment`).

    The caller writes the setting itself; call this in the same breath, after it succeeded.
    """
    with db.write() as tx:
        grant = check_grant(tx, grant, "change_config")
        append_audit(
            tx,
            actor=grant.user,
            role=grant.role,
            action="config_change",
            target=f"config:{key}",
            before=before,
            after=after,
        )
