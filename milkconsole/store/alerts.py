"""Alerts in the store: listing and filtering them, and changing their state.

The health hook raises a cow's alerts and `milkconsole.technician.diagnostics` a meter's
(`raise_equipment_alerts` here); a person acts on them through `milkconsole.supervision.alerts`.
Acknowledging or resolving is one write transaction that checks the person's grant, changes the
alert, appends an `audit_log` row and tells Odoo through the outbox (the alert's pending create
learns the new state, or a write is queued when the create has gone already), so the change, its
audit row and its way to Odoo are stored together or not at all
(`milkconsole.store.outbound.queue_alert`).

Everything returns frozen values, so the console can read on a worker thread and hand the result
to the GUI thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from milkconsole.errors import MilkConsoleError
from milkconsole.grants import Grant
from milkconsole.herd.directory import cow_label
from milkconsole.store.db import Database
from milkconsole.store.outbound import queue_alert
from milkconsole.store.schema import AlertRow, Animal, append_audit, utc_now
from milkconsole.store.users import check_grant

STATES = ("open", "acknowledged", "resolved")
SEVERITIES = ("warning", "critical")
# Alerts that still need someone: shown on the cow's tile and counted on the Alerts tab.
ATTENTION_STATES = ("open", "acknowledged")
DEFAULT_LIMIT = 500


class AlertError(MilkConsoleError):
    """An alert change was refused (no such alert, already resolved, no note...)."""


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """The alert as stored: one row of `alerts` (`schema.AlertRow`) with its cow's number and
    name, times aware UTC (`alert_record` builds it; the review list, the dashboard, the
    reports, the cow's chart, the diagnostics view and the health hook read it)."""

    id: int
    key: str
    kind: str
    severity: str
    state: str
    raised_at: datetime
    message: str = ""
    condition: str | None = None
    animal_id: int | None = None
    animal_number: str | None = None
    animal_name: str | None = None
    rfid: str | None = None
    session_key: str | None = None
    meter_id: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    note: str | None = None

    @property
    def cow_label(self) -> str:
        """'1002 Daisy', '1002', or '' for an alert of no cow (a meter's)."""
        return cow_label(self.animal_number, self.animal_name)

    @property
    def title(self) -> str:
        """'Mastitis (quarter LF)' — what the alert is about, in words."""
        text = self.kind.replace("_", " ").capitalize()
        if self.condition and self.condition != "cow":
            text += f" ({self.condition.replace('_', ' ')})"
        return text


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts to list; an empty tuple or None means any.

    `cow` matches a herd number exactly or by its start, or a name by any part (case-insensitive);
    `since` / `until` bound `raised_at` (aware; `until` excluded).
    """

    states: tuple[str, ...] = ATTENTION_STATES
    severities: tuple[str, ...] = ()
    animal_id: int | None = None
    cow: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        for s in self.states:
            if s not in STATES:
                raise ValueError(f"alert state {s!r} refused (known: {', '.join(STATES)})")
        for s in self.severities:
            if s not in SEVERITIES:
                raise ValueError(f"alert severity {s!r} refused (known: {', '.join(SEVERITIES)})")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"AlertFilter.{name}: naive datetime {value.isoformat()} refused")
        if self.limit < 1:
            raise ValueError(f"AlertFilter.limit must be at least 1, not {self.limit}")


@dataclass(frozen=True, slots=True)
class AlertMarks:
    """What the stall tiles and the Alerts tab need: the kinds of each cow's alerts that still
    need someone (open or acknowledged), and how many alerts are open / need attention."""

    by_animal: Mapping[int, tuple[str, ...]]
    open_count: int
    attention_count: int


# -- reading --------------------------------------------------------------------------------------


def alert_record(row: AlertRow, animal: Animal | None) -> AlertRecord:
    """The alert as stored, from its row and its cow's row (None: a meter's, or no cow)."""
    return AlertRecord(
        id=row.id,
        key=row.key,
        kind=row.kind,
        severity=row.severity,
        state=row.state,
        raised_at=row.raised_at,
        message=row.message or "",
        condition=row.condition,
        animal_id=row.animal_id,
        animal_number=animal.number if animal is not None else None,
        animal_name=animal.name if animal is not None else None,
        rfid=row.rfid,
        session_key=row.session_key,
        meter_id=row.meter_id,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
        note=row.note,
    )


def _query(tx: Session, f: AlertFilter) -> list[AlertRecord]:
    q = select(AlertRow, Animal).outerjoin(Animal, Animal.id == AlertRow.animal_id)
    if f.states:
        q = q.where(AlertRow.state.in_(f.states))
    if f.severities:
        q = q.where(AlertRow.severity.in_(f.severities))
    if f.animal_id is not None:
        q = q.where(AlertRow.animal_id == f.animal_id)
    text = (f.cow or "").strip()
    if text:
        q = q.where(
            or_(
                Animal.number == text,
                Animal.number.startswith(text, autoescape=True),
                func.lower(Animal.name).contains(text.lower(), autoescape=True),
            )
        )
    if f.since is not None:
        q = q.where(AlertRow.raised_at >= f.since)
    if f.until is not None:
        q = q.where(AlertRow.raised_at < f.until)
    q = q.order_by(AlertRow.raised_at.desc(), AlertRow.id.desc()).limit(f.limit)
    return [alert_record(alert, animal) for alert, animal in tx.execute(q)]


def list_alerts(db: Database, f: AlertFilter | None = None) -> list[AlertRecord]:
    """Alerts matching `f` (default: the ones needing attention), newest raised first."""
    with db.read() as tx:
        return _query(tx, f or AlertFilter())


def get_alert(db: Database, alert_id: int) -> AlertRecord | None:
    with db.read() as tx:
        row = tx.get(AlertRow, alert_id)
        if row is None:
            return None
        animal = tx.get(Animal, row.animal_id) if row.animal_id is not None else None
        return alert_record(row, animal)


def alert_marks(db: Database) -> AlertMarks:
    """Kinds of the alerts needing attention, by cow, and the counts (one short read)."""
    by_animal: dict[int, list[str]] = {}
    open_count = attention = 0
    with db.read() as tx:
        rows = tx.execute(
            select(AlertRow.animal_id, AlertRow.kind, AlertRow.state)
            .where(AlertRow.state.in_(ATTENTION_STATES))
            .order_by(AlertRow.raised_at, AlertRow.id)
        )
        for animal_id, kind, state in rows:
            attention += 1
            open_count += state == "open"
            if animal_id is not None:
                kinds = by_animal.setdefault(animal_id, [])
                if kind not in kinds:
                    kinds.append(kind)
    return AlertMarks({k: tuple(v) for k, v in by_animal.items()}, open_count, attention)


# -- changing -------------------------------------------------------------------------------------


def _locked_row(tx: Session, alert_id: int) -> AlertRow:
    row = tx.get(AlertRow, alert_id)
    if row is None:
        raise AlertError(f"no alert with id {alert_id}")
    return row


def _audit_state(row: AlertRow) -> dict[str, Any]:
    return {"state": row.state, "severity": row.severity, "note": row.note}


def _finish(tx: Session, row: AlertRow) -> AlertRecord:
    animal = tx.get(Animal, row.animal_id) if row.animal_id is not None else None
    return alert_record(row, animal)


def _changed(
    tx: Session, grant: Grant, row: AlertRow, action: str, before: dict[str, Any], at: datetime
) -> AlertRecord:
    """What every change of an alert's state ends with, in the same transaction: the audit row
    (before/after), the outbox row that tells Odoo, and the alert as it is now."""
    append_audit(
        tx,
        actor=grant.user,
        role=grant.role,
        action=action,
        target=f"alert:{row.key}",
        before=before,
        after=_audit_state(row),
        at=at,
    )
    queue_alert(tx, row)
    return _finish(tx, row)


def acknowledge(
    db: Database,
    grant: Grant | None,
    alert_id: int,
    note: str | None = None,
    *,
    now: datetime | None = None,
) -> AlertRecord:
    """Mark an open alert as seen by the grant's user, with `note` when there is one (audited,
    queued for Odoo); the alert as it is now. Acknowledging an acknowledged alert changes
    nothing; a resolved one is refused. `AccessDenied` without a grant that may acknowledge."""
    with db.write() as tx:
        grant = check_grant(tx, grant, "alert_acknowledge")
        row = _locked_row(tx, alert_id)
        if row.state == "resolved":
            raise AlertError(
                f"alert {alert_id} was resolved by {row.resolved_by or 'someone'}: "
                "there is nothing left to acknowledge"
            )
        if row.state == "acknowledged":
            return _finish(tx, row)
        at = now or utc_now()
        before = _audit_state(row)
        row.state = "acknowledged"
        row.acknowledged_at = at
        row.acknowledged_by = grant.user
        if note is not None:
            row.note = note
        return _changed(tx, grant, row, "alert_acknowledge", before, at)


def resolve(
    db: Database,
    grant: Grant | None,
    alert_id: int,
    note: str,
    *,
    now: datetime | None = None,
) -> AlertRecord:
    """Close an alert with a note saying what was done (audited, queued for Odoo). An open
    alert is acknowledged by the same person at the same time. A resolved alert is refused.
    `AccessDenied` without a grant that may resolve."""
    with db.write() as tx:
        grant = check_grant(tx, grant, "alert_resolve")
        row = _locked_row(tx, alert_id)
        if row.state == "resolved":
            raise AlertError(f"alert {alert_id} is already resolved by {row.resolved_by}")
        at = now or utc_now()
        before = _audit_state(row)
        if row.acknowledged_at is None:
            row.acknowledged_at = at
            row.acknowledged_by = grant.user
        row.state = "resolved"
        row.resolved_at = at
        row.resolved_by = grant.user
        row.note = note
        return _changed(tx, grant, row, "alert_resolve", before, at)


# -- a meter's equipment alerts -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RaisedEquipmentAlert:
    """An equipment alert as raised, before it is stored (`milkconsole.technician.diagnostics`
    words it and keys it; once stored it is an `AlertRecord`)."""

    key: str
    meter_id: str
    condition: str
    message: str


def raise_equipment_alerts(db: Database, alerts: Sequence[RaisedEquipmentAlert]) -> list[str]:
    """Store open 'equipment' warnings (each queued for Odoo); keys of the alerts made.

    A meter with an alert of the same condition not yet resolved gets no second one, and a key
    already stored is not stored again.
    """
    made: list[str] = []
    if not alerts:
        return made
    now = utc_now()
    with db.write() as tx:
        for a in alerts:
            open_already = tx.scalar(
                select(AlertRow.id).where(
                    AlertRow.kind == "equipment",
                    AlertRow.meter_id == a.meter_id,
                    AlertRow.condition == a.condition,
                    AlertRow.state != "resolved",
                )
            )
            if open_already is not None:
                continue
            if tx.scalar(select(AlertRow.id).where(AlertRow.key == a.key)) is not None:
                continue
            alert = AlertRow(
                key=a.key,
                kind="equipment",
                condition=a.condition,
                severity="warning",
                state="open",
                meter_id=a.meter_id,
                message=a.message,
                raised_at=now,
            )
            tx.add(alert)
            queue_alert(tx, alert)
            made.append(a.key)
    return made


def open_equipment_alerts(db: Database) -> list[AlertRecord]:
    """Equipment alerts not resolved yet, newest first."""
    with db.read() as tx:
        rows = tx.execute(
            select(AlertRow, Animal)
            .outerjoin(Animal, Animal.id == AlertRow.animal_id)
            .where(AlertRow.kind == "equipment", AlertRow.state != "resolved")
            .order_by(AlertRow.raised_at.desc(), AlertRow.id.desc())
        )
        return [alert_record(alert, animal) for alert, animal in rows]
