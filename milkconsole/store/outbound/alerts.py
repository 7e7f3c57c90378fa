"""Alerts and health events for Odoo (`iot.device.alert`, `farm.health.event`), and an alert's
MQTT event."""

from __future__ import annotations

from sqlalchemy.orm import Session

from milkconsole.store.outbound.mqtt_events import publish_alert
from milkconsole.store.outbound.payloads import (
    ALERT,
    HEALTH_EVENT,
    METER,
    alert_payload,
    alert_state,
    health_payload,
)
from milkconsole.store.outbox import amend, create_row, enqueue
from milkconsole.store.schema import AlertRow, HealthEvent


def queue_alert(tx: Session, row: AlertRow) -> None:
    """An alert was raised, or its state or severity changed: Odoo learns it (one create per
    alert, amended or written after), and MQTT gets the event."""
    new = row in tx.new  # added in this transaction and not flushed yet: raised just now
    tx.flush()  # the alert's id and defaults
    if row.meter_id is None and row.animal_id is None:
        # The console's own alert (a backup failed): Odoo's iot.device.alert needs a device,
        # so it stays in the console's alert list.
        return
    if create_row(tx, ALERT, row.key) is None and new:
        enqueue(tx, ALERT, row.key, alert_payload(tx, row), after=_meter_of(row.meter_id))
        event = "alert_raised"
    else:
        # An alert stored before was queued then; with its rows pruned since (retention) it is
        # recreated-or-found and written.
        amend(
            tx,
            ALERT,
            row.key,
            alert_state(row),
            recreate=alert_payload(tx, row),
            after=_meter_of(row.meter_id),
        )
        event = {"acknowledged": "alert_acknowledged", "resolved": "alert_resolved"}.get(
            row.state, "alert_updated"
        )
    if row.meter_id:  # the seed's topics are per meter: an alert of no meter has none
        publish_alert(tx, row, event)


def queue_health_event(tx: Session, row: HealthEvent) -> None:
    tx.flush()
    enqueue(tx, HEALTH_EVENT, row.key, health_payload(tx, row))


def _meter_of(meter_id: str | None) -> tuple[str, str] | None:
    return (METER, meter_id) if meter_id else None
