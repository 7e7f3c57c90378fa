"""The MQTT messages (channel 'mqtt'): the seed's topic per meter, one stable message id each,
queued only while the runtime has called `set_mqtt` with a farm code (the config has [mqtt])."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from milkconsole.store.outbound.payloads import (
    abnormality,
    animal_row,
    canonical,
    iso_z,
    session_flags,
)
from milkconsole.store.outbox import enqueue
from milkconsole.store.schema import AlertRow, Animal, Meter, SessionRow, SyncState

_MQTT_FARM = "mqtt.farm_code"  # sync_state: set while the parlour config has [mqtt]


def set_mqtt(tx: Session, farm_code: str | None) -> None:
    """Queue MQTT messages from now on for `farm_code` (None: stop queueing them). The runtime
    calls it at start with the config's `[mqtt]` state."""
    row = tx.get(SyncState, _MQTT_FARM)
    if row is None:
        tx.add(SyncState(key=_MQTT_FARM, value=farm_code))
    else:
        row.value = farm_code


def mqtt_farm(tx: Session) -> str | None:
    row = tx.get(SyncState, _MQTT_FARM)
    return row.value if row is not None and row.value else None


def _publish(
    tx: Session,
    message_id: str,
    device: str,
    topic_kind: str,
    message: dict[str, Any],
    *,
    retain: bool = False,
) -> None:
    """Queue one MQTT message (QoS 1) for the meter `device`; nothing while MQTT is off. The
    payload stored is what the publisher sends: topic, retain flag and the message itself."""
    farm = mqtt_farm(tx)
    if farm is None:
        return
    topic = f"dairy/{farm}/milk_meters/{device}/{topic_kind}"
    body = {**message, "message_id": message_id}
    enqueue(
        tx,
        topic_kind,
        message_id,
        {"topic": topic, "retain": retain, "qos": 1, "message": body},
        channel="mqtt",
    )


def _mqtt_cow(animal: Animal | None) -> dict[str, Any]:
    """The cow in an MQTT message: `animal_id` as the seed sends it (farm.animal's name, which
    the herd pull keeps; her herd number for a cow only known here), number and tag beside."""
    if animal is None:
        return {"animal_id": None, "animal_number": None, "animal_tag": None}
    return {
        "animal_id": animal.name or animal.number,
        "animal_number": animal.number,
        "animal_tag": animal.rfid_tag,
    }


def publish_session(tx: Session, row: SessionRow) -> None:
    """The seed's `session_complete` (its keys first), plus the session key and quality. The
    seed's `session_id` is Odoo's record id, which the console does not know when the milking
    ends (Odoo may be out of reach for days): it is the session's stable key, the same key the
    Odoo record carries as its name. `timestamp` is when the milking ended, not when the
    message left, so a repeat is identical."""
    animal = animal_row(tx, row.animal_id)
    _publish(
        tx,
        f"{row.key}:completed",
        row.meter_id,
        "events",
        {
            "event": "session_complete",
            "session_id": row.key,
            "meter_id": row.meter_id,
            **_mqtt_cow(animal),
            "yield_liters": round(row.yield_l, 2),
            "duration_seconds": round(row.duration_s),
            "timestamp": iso_z(row.ended_at or row.started_at),
            "session_key": row.key,
            "stall": row.stall,
            "state": row.state,
            "started_at": iso_z(row.started_at),
            "rfid_tag": canonical(row.rfid),
            "destination": row.destination,
            "flags": session_flags(row),
            "quality": {
                "grade": row.quality_grade,
                "abnormal": bool(row.abnormal),
                "conductivity_ms_cm": row.conductivity_mean_ms_cm,
                "fat_pct": row.fat_pct,
                "protein_pct": row.protein_pct,
                "scc_cells_ml": row.scc_cells_ml,
                "blood": row.blood,
                "abnormality": abnormality(row),
            },
        },
    )


def publish_alert(tx: Session, row: AlertRow, event: str) -> None:
    """One event per change. Raised, acknowledged and resolved happen once per alert; an update
    is an escalation, and severities only go up, so the severity makes its id unique."""
    stamp = {
        "alert_acknowledged": row.acknowledged_at,
        "alert_resolved": row.resolved_at,
    }.get(event) or row.raised_at
    message_id = f"{row.key}:{event}"
    if event == "alert_updated":
        message_id += f":{row.severity}"
    assert row.meter_id is not None
    _publish(
        tx,
        message_id,
        row.meter_id,
        "events",
        {
            "event": event,
            "alert_key": row.key,
            "meter_id": row.meter_id,
            "kind": row.kind,
            "condition": row.condition,
            "severity": row.severity,
            "state": row.state,
            **_mqtt_cow(animal_row(tx, row.animal_id)),
            "session_key": row.session_key,
            "message": row.message,
            "raised_at": iso_z(row.raised_at),
            "by": row.resolved_by if row.state == "resolved" else row.acknowledged_by,
            "note": row.note,
            "timestamp": iso_z(stamp),
        },
    )


def queue_meter_status(
    tx: Session, meter_id: str, status: str, at: datetime, detail: str | None = None
) -> None:
    """A meter went ok / degraded / offline at `at` (`detail`: the last error, if any): an
    event, and the meter's retained `state` (what a subscriber that connects later is told
    first). Odoo's iot.device state follows through the registration's last-seen update."""
    meter = tx.get(Meter, meter_id)
    stamp = iso_z(at)
    message = {
        "event": "meter_status",
        "meter_id": meter_id,
        "stall": meter.stall if meter is not None else None,
        "status": status,
        "detail": detail,
        "timestamp": stamp,
    }
    _publish(tx, f"{meter_id}:status:{status}:{stamp}", meter_id, "events", message)
    _publish(tx, f"{meter_id}:state:{status}:{stamp}", meter_id, "state", message, retain=True)
