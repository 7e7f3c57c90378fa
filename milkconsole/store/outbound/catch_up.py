"""Catching up a database from before the outbound package: the records it holds without
outbox rows are queued once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from milkconsole.store.outbound.alerts import queue_alert, queue_health_event
from milkconsole.store.outbound.payloads import (
    ALERT,
    HEALTH_EVENT,
    PRODUCTION,
    SESSION,
    iso_z,
    production_payload,
    wants_production,
)
from milkconsole.store.outbox import enqueue
from milkconsole.store.schema import AlertRow, HealthEvent, OutboxRow, SessionRow, SyncState

_CAUGHT_UP = "outbound.caught_up"  # sync_state: queue_unqueued ran


def queue_unqueued(tx: Session) -> int:
    """Queue what a database from before this module holds without outbox rows: alerts and
    health events (an older sync found them by scanning), and production records of sessions
    not sent yet (an older sync derived them when sending). Runs once per database (sent rows
    may be pruned later, and their records must not look unqueued then); returns how many."""
    done = tx.get(SyncState, _CAUGHT_UP)
    if done is not None:
        return 0
    tx.add(SyncState(key=_CAUGHT_UP, value=iso_z(datetime.now(UTC))))
    n = 0
    queued = select(OutboxRow.record_key).where(
        OutboxRow.channel == "odoo", OutboxRow.operation == "create"
    )
    for alert in tx.scalars(
        select(AlertRow).where(AlertRow.key.not_in(queued.where(OutboxRow.model == ALERT)))
    ):
        queue_alert(tx, alert)
        n += 1
    for event in tx.scalars(
        select(HealthEvent).where(
            HealthEvent.key.not_in(queued.where(OutboxRow.model == HEALTH_EVENT))
        )
    ):
        queue_health_event(tx, event)
        n += 1
    unsent = queued.where(OutboxRow.model == SESSION, OutboxRow.state != "sent")
    for row in tx.scalars(
        select(SessionRow).where(
            SessionRow.key.in_(unsent),
            SessionRow.key.not_in(queued.where(OutboxRow.model == PRODUCTION)),
        )
    ):
        if wants_production(row):
            enqueue(tx, PRODUCTION, row.key, production_payload(tx, row), after=(SESSION, row.key))
            n += 1
    return n
