"""The supervisor's alerts: listing and filtering them, acknowledging and resolving them, and a
cow's history (her milkings' conductivity and yield over time, and her alerts).

The health hook raises alerts (`milkconsole.health.hook`); this module is how a person acts on them.
Acknowledging or resolving is one write transaction that checks the person's grant
(`milkconsole.store.users.check_grant`), changes the alert, appends an `audit_log` row and
tells Odoo through the outbox (the alert's pending create learns the new state, or a write is queued
when the create has gone already), so the change, its audit row and its way to Odoo are stored
together or not at all (`milkconsole.store.outbound.queue_alert`).

Everything returns frozen values (no ORM rows), so the console can read on a worker thread
and hand the result to the GUI thread. No Qt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from milkconsole.errors import MilkConsoleError
from milkconsole.grants import Grant
from milkconsole.store.db import Database
from milkconsole.store.outbound import queue_alert
from milkconsole.store.schema import Alert, Animal, MilkSession, append_audit, utc_now
from milkconsole.store.users import check_grant

STATES = ("open", "acknowledged", "resolved")
SEVERITIES = ("warning", "critical")
# Alerts that still need someone: shown on the cow's tile and counted on the Alerts tab.
ATTENTION_STATES = ("open", "acknowledged")
DEFAULT_LIMIT = 500
NOTE_MAX_CHARS = 2000
HISTORY_DAYS = 60.0
HISTORY_MAX_POINTS = 1000


class AlertError(MilkConsoleError):
    """An alert change was refused (no such alert, already resolved, no note...)."""


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert as the review list shows it (times aware UTC)."""

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
        if self.animal_number is None:
            return ""
        return (
            f"{self.animal_number} {self.animal_name}" if self.animal_name else self.animal_number
        )

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


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One of the cow's milkings on her history chart."""

    session_key: str
    started_at: datetime
    state: str
    yield_l: float
    conductivity_mean_ms_cm: float | None = None
    conductivity_max_ms_cm: float | None = None
    quarters_ms_cm: tuple[float | None, float | None, float | None, float | None] = (
        None,
        None,
        None,
        None,
    )
    abnormal: bool = False
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CowHistory:
    """A cow's milkings since `since` (oldest first) and her alerts raised since then."""

    animal_id: int
    number: str
    name: str | None
    since: datetime
    points: tuple[HistoryPoint, ...]
    alerts: tuple[AlertRecord, ...]

    @property
    def label(self) -> str:
        return f"{self.number} {self.name}" if self.name else self.number


# -- reading --------------------------------------------------------------------------------------


def _record(row: Alert, animal: Animal | None) -> AlertRecord:
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
    q = select(Alert, Animal).outerjoin(Animal, Animal.id == Alert.animal_id)
    if f.states:
        q = q.where(Alert.state.in_(f.states))
    if f.severities:
        q = q.where(Alert.severity.in_(f.severities))
    if f.animal_id is not None:
        q = q.where(Alert.animal_id == f.animal_id)
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
        q = q.where(Alert.raised_at >= f.since)
    if f.until is not None:
        q = q.where(Alert.raised_at < f.until)
    q = q.order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(f.limit)
    return [_record(alert, animal) for alert, animal in tx.execute(q)]


def list_alerts(db: Database, f: AlertFilter | None = None) -> list[AlertRecord]:
    """Alerts matching `f` (default: the ones needing attention), newest raised first."""
    with db.read() as tx:
        return _query(tx, f or AlertFilter())


def get_alert(db: Database, alert_id: int) -> AlertRecord | None:
    with db.read() as tx:
        row = tx.get(Alert, alert_id)
        if row is None:
            return None
        return _record(row, tx.get(Animal, row.animal_id) if row.animal_id is not None else None)


def alert_marks(db: Database) -> AlertMarks:
    """Kinds of the alerts needing attention, by cow, and the counts (one short read)."""
    by_animal: dict[int, list[str]] = {}
    open_count = attention = 0
    with db.read() as tx:
        rows = tx.execute(
            select(Alert.animal_id, Alert.kind, Alert.state)
            .where(Alert.state.in_(ATTENTION_STATES))
            .order_by(Alert.raised_at, Alert.id)
        )
        for animal_id, kind, state in rows:
            attention += 1
            open_count += state == "open"
            if animal_id is not None:
                kinds = by_animal.setdefault(animal_id, [])
                if kind not in kinds:
                    kinds.append(kind)
    return AlertMarks({k: tuple(v) for k, v in by_animal.items()}, open_count, attention)


def cow_history(
    db: Database,
    animal_id: int,
    *,
    days: float = HISTORY_DAYS,
    now: datetime | None = None,
    max_points: int = HISTORY_MAX_POINTS,
) -> CowHistory:
    """The cow's finished milkings of the last `days` (at most the newest `max_points`, oldest
    first) with their conductivity and yield, and her alerts raised in that time, any state."""
    since = (now or utc_now()) - timedelta(days=days)
    with db.read() as tx:
        animal = tx.get(Animal, animal_id)
        if animal is None:
            raise AlertError(f"no animal with id {animal_id}")
        sessions = list(
            tx.scalars(
                select(MilkSession)
                .where(
                    MilkSession.animal_id == animal_id,
                    MilkSession.state != "in_progress",
                    MilkSession.started_at >= since,
                )
                .order_by(MilkSession.started_at.desc())
                .limit(max_points)
            )
        )
        alerts = [
            _record(row, animal)
            for row in tx.scalars(
                select(Alert)
                .where(Alert.animal_id == animal_id, Alert.raised_at >= since)
                .order_by(Alert.raised_at)
            )
        ]
        points = tuple(
            HistoryPoint(
                session_key=s.key,
                started_at=s.started_at,
                state=s.state,
                yield_l=s.yield_l,
                conductivity_mean_ms_cm=s.conductivity_mean_ms_cm,
                conductivity_max_ms_cm=s.conductivity_max_ms_cm,
                quarters_ms_cm=(s.ec_lf_ms_cm, s.ec_rf_ms_cm, s.ec_lr_ms_cm, s.ec_rr_ms_cm),
                abnormal=bool(s.abnormal),
                flags=tuple(f for f in (s.flags or "").split(",") if f),
            )
            for s in reversed(sessions)
        )
        return CowHistory(animal.id, animal.number, animal.name, since, points, tuple(alerts))


# -- changing -------------------------------------------------------------------------------------


def _clean_note(note: str | None, *, required: bool) -> str | None:
    text = (note or "").strip()
    if not text:
        if required:
            raise AlertError("resolving an alert needs a note saying what was done")
        return None
    if len(text) > NOTE_MAX_CHARS:
        raise AlertError(f"a note is at most {NOTE_MAX_CHARS} characters, this one {len(text)}")
    return text


def _locked_row(tx: Session, alert_id: int) -> Alert:
    row = tx.get(Alert, alert_id)
    if row is None:
        raise AlertError(f"no alert with id {alert_id}")
    return row


def _audit_state(row: Alert) -> dict[str, Any]:
    return {"state": row.state, "severity": row.severity, "note": row.note}


def _finish(tx: Session, row: Alert) -> AlertRecord:
    animal = tx.get(Animal, row.animal_id) if row.animal_id is not None else None
    return _record(row, animal)


def _changed(
    tx: Session, grant: Grant, row: Alert, action: str, before: dict[str, Any], at: datetime
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


def acknowledge_alert(
    db: Database,
    grant: Grant | None,
    alert_id: int,
    note: str | None = None,
    *,
    now: datetime | None = None,
) -> AlertRecord:
    """Mark an open alert as seen by the grant's user (audited, queued for Odoo); the alert
    as it is now. Acknowledging an acknowledged alert changes nothing; a resolved one is
    refused. `AccessDenied` without a grant that may acknowledge."""
    text = _clean_note(note, required=False)
    with db.write() as tx:
        check_grant(tx, grant, "alert_acknowledge")
        assert grant is not None
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
        if text is not None:
            row.note = text
        return _changed(tx, grant, row, "alert_acknowledge", before, at)


def resolve_alert(
    db: Database,
    grant: Grant | None,
    alert_id: int,
    note: str,
    *,
    now: datetime | None = None,
) -> AlertRecord:
    """Close an alert with a note saying what was done (required; audited, queued for Odoo).
    An open alert is acknowledged by the same person at the same time. A resolved alert is
    refused. `AccessDenied` without a grant that may resolve."""
    text = _clean_note(note, required=True)
    with db.write() as tx:
        check_grant(tx, grant, "alert_resolve")
        assert grant is not None
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
        row.note = text
        return _changed(tx, grant, row, "alert_resolve", before, at)
