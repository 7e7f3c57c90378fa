"""Every record bound outside the console, for Odoo and for the MQTT broker, built and queued here.

One owner: the recorder, the health hook, the alert review, the calibration wizard and the
identity corrections call these functions inside the transaction that writes the record, so the
record and its way out are stored together or not at all (DESIGN.md, invariant 1). The payloads
are in the console's own vocabulary (`yield_l`, ISO UTC times with Z, local animal ids);
`milkconsole.sync.contract` maps them onto the seed's Odoo fields at push time, when Odoo's ids
for meters and cows are known. The senders only send.

What goes to Odoo (channel 'odoo'), by outbox model:

- `iot.milk_meter` (key: meter id): the meter's registration (`iot.device` + `iot.milk_meter`
  + its milking point), created or updated by device id; calibrations and changes amend it.
- `milk.session` (key: session key): each finished session, waiting for its meter's
  registration; later corrections (a cow named by hand, re-attached) amend it.
- `farm.milk.production` (key: session key): a finished milking of a known cow whose milk went
  to the tank, waiting for its session to land.
- `iot.device.alert` (key: alert key) and its state changes; `farm.health.event` (key).
- `farm.animal.rfid` (key: the canonical tag): a tag registered at the stall, or a cow's other
  tags once Odoo knows her; it needs her Odoo id, looked up when it is sent.
- `farm.animal` (writes only, key: the local animal id): what the console changed on a cow
  Odoo keeps (a new primary tag, the keep-out flag); her Odoo id is looked up when sent.
- `farm.animal.treatment` (key: the treatment key, Odoo's `source_reference`): a treatment
  a supervisor recorded at the console.

What goes to MQTT (channel 'mqtt', only while the runtime has called `set_mqtt` with a farm
code, i.e. the parlour config has `[mqtt]`), each row's model being the topic's last level:

- `events` on `dairy/{farm}/milk_meters/{device}/events`: the seed's `session_complete` (one per
  finished session), `alert_raised` / `alert_acknowledged` / `alert_resolved` / `alert_updated`
  for an alert of a meter, and `meter_status` when a meter goes ok / degraded / offline.
- `state` on `dairy/{farm}/milk_meters/{device}/state`, retained: the meter's status now.

The record key is the message id, carried in the message as `message_id`: a repeat (after a
broker outage or a crash between the broker's PUBACK and our mark) carries the same id, so a
subscriber can drop it. docs/mqtt.md has the payloads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from milkconsole.flags import flag_text
from milkconsole.meters.rfid import InvalidTag, normalize_tag
from milkconsole.store.outbox import amend, create_row, enqueue, enqueue_many, withdraw
from milkconsole.store.schema import (
    AlertRow,
    Animal,
    Calibration,
    HealthEvent,
    Meter,
    OutboxRow,
    SessionRow,
    SyncState,
    TreatmentRow,
)

if TYPE_CHECKING:
    from milkconsole.config import ParlourConfig

SESSION = "milk.session"
PRODUCTION = "farm.milk.production"
ALERT = "iot.device.alert"
HEALTH_EVENT = "farm.health.event"
METER = "iot.milk_meter"
ANIMAL = "farm.animal"
ANIMAL_TAG = "farm.animal.rfid"
TREATMENT = "farm.animal.treatment"

FINISHED_STATES = ("completed", "incomplete", "interrupted")
_MQTT_FARM = "mqtt.farm_code"  # sync_state: set while the parlour config has [mqtt]
_METER_REGISTERED = "odoo.meter_registration."  # sync_state: the last registration queued
_CAUGHT_UP = "outbound.caught_up"  # sync_state: queue_unqueued ran


def iso_z(dt: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, the form every payload uses."""
    return None if dt is None else dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def canonical(raw: str | None) -> str | None:
    """The tag in the herd list's canonical form, or None when unreadable."""
    if not raw or not raw.strip():
        return None
    try:
        return normalize_tag(raw)
    except InvalidTag:
        return None


# -- channels -----------------------------------------------------------------------------------


def set_mqtt(tx: Session, farm_code: str | None) -> None:
    """Queue MQTT messages from now on for `farm_code` (None: stop queueing them). The runtime
    calls it at start with the config's `[mqtt]` state."""
    row = tx.get(SyncState, _MQTT_FARM)
    if row is None:
        tx.add(SyncState(key=_MQTT_FARM, value=farm_code))
    else:
        row.value = farm_code


def _mqtt_farm(tx: Session) -> str | None:
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
    farm = _mqtt_farm(tx)
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


# -- payloads -----------------------------------------------------------------------------------


def _animal(tx: Session, animal_id: int | None) -> Animal | None:
    return tx.get(Animal, animal_id) if animal_id is not None else None


def animal_payload(tx: Session, animal_id: int | None) -> dict[str, Any]:
    """The cow part of a payload: her local id (Odoo's id is looked up when it is sent, so a cow
    re-created in Odoo is found again), herd number and canonical tag."""
    animal = _animal(tx, animal_id)
    return {
        "animal_id": animal_id,
        "animal_number": animal.number if animal else None,
        "animal_tag": animal.rfid_tag if animal else None,
    }


def _flags(row: SessionRow) -> list[str]:
    return [f for f in (row.flags or "").split(",") if f]


def abnormality(row: SessionRow) -> str | None:
    """Why a milking is abnormal, in words: its state, then its flags (as Odoo shows them)."""
    parts: list[str] = []
    if row.state in ("incomplete", "interrupted"):
        parts.append(row.state)
    for flag in _flags(row):
        text = flag_text(flag)
        if text not in parts:
            parts.append(text)
    return "; ".join(parts) or None


def session_payload(tx: Session, row: SessionRow) -> dict[str, Any]:
    """The `milk.session` payload of a finished session."""
    return {
        "key": row.key,
        "meter_id": row.meter_id,
        "stall": row.stall,
        "state": row.state,
        "rfid": row.rfid,
        "tag": canonical(row.rfid),
        "id_source": row.id_source,
        "started_at": iso_z(row.started_at),
        "ended_at": iso_z(row.ended_at),
        "duration_s": round(row.duration_s, 1),
        "yield_l": row.yield_l,
        "peak_flow_l_min": row.peak_flow_l_min,
        "avg_flow_l_min": row.avg_flow_l_min,
        "conductivity_mean_ms_cm": row.conductivity_mean_ms_cm,
        "temperature_c": row.temperature_c,
        "fat_pct": row.fat_pct,
        "protein_pct": row.protein_pct,
        "lactose_pct": row.lactose_pct,
        "scc_cells_ml": row.scc_cells_ml,
        "blood": row.blood,
        "vacuum_kpa": row.vacuum_kpa,
        "pulsation_cpm": row.pulsation_cpm,
        "quality_grade": row.quality_grade,
        "abnormal": bool(row.abnormal),
        "abnormality": abnormality(row),
        "reattached": bool(row.reattached),
        "destination": row.destination,
        "divert_reason": row.divert_reason,
        "divert_confirmed_by": row.divert_confirmed_by,
        "flags": _flags(row),
        **animal_payload(tx, row.animal_id),
    }


def production_payload(tx: Session, row: SessionRow) -> dict[str, Any]:
    """The `farm.milk.production` payload of a finished session (its key is the session's)."""
    return {
        "key": row.key,
        "started_at": iso_z(row.started_at),
        "yield_l": row.yield_l,
        "fat_pct": row.fat_pct,
        "protein_pct": row.protein_pct,
        "scc_cells_ml": row.scc_cells_ml,
        **animal_payload(tx, row.animal_id),
    }


def _alert_state(row: AlertRow) -> dict[str, Any]:
    return {
        "state": row.state,
        "severity": row.severity,
        "message": row.message,
        "acknowledged_at": iso_z(row.acknowledged_at),
        "acknowledged_by": row.acknowledged_by,
        "resolved_at": iso_z(row.resolved_at),
        "resolved_by": row.resolved_by,
        "note": row.note,
    }


def alert_payload(tx: Session, row: AlertRow) -> dict[str, Any]:
    """The `iot.device.alert` payload of an alert."""
    return {
        "key": row.key,
        "kind": row.kind,
        "condition": row.condition,
        "meter_id": row.meter_id,
        "rfid": row.rfid,
        "session_key": row.session_key,
        "raised_at": iso_z(row.raised_at),
        **_alert_state(row),
        **animal_payload(tx, row.animal_id),
    }


def health_payload(tx: Session, row: HealthEvent) -> dict[str, Any]:
    """The `farm.health.event` payload of a health event."""
    return {
        "key": row.key,
        "kind": row.kind,
        "detail": row.detail,
        "session_key": row.session_key,
        "recorded_at": iso_z(row.recorded_at),
        **animal_payload(tx, row.animal_id),
    }


def _goes_to_tank(row: SessionRow) -> bool:
    return row.destination != "diverted"


def _wants_production(row: SessionRow) -> bool:
    return (
        row.state in FINISHED_STATES
        and row.animal_id is not None
        and row.yield_l > 0
        and _goes_to_tank(row)
    )


# -- sessions -----------------------------------------------------------------------------------


def queue_session(tx: Session, row: SessionRow) -> None:
    """A session finished: its milk.session (after its meter's registration), its production
    record (after the session) and its MQTT event. Idempotent per session key."""
    queue_sessions(tx, [row])


def queue_sessions(tx: Session, rows: Sequence[SessionRow]) -> None:
    """`queue_session` for many finished sessions at once (one INSERT per model, not one query
    and flush per row: a week recorded offline, or a bench, queues in seconds)."""
    if not rows:
        return
    keys = [r.key for r in rows]
    # Their cows, loaded once and held (the identity map is weak): each payload looks its cow up.
    cows = sorted({r.animal_id for r in rows if r.animal_id is not None})
    held = [
        a
        for start in range(0, len(cows), 500)
        for a in tx.scalars(select(Animal).where(Animal.id.in_(cows[start : start + 500])))
    ]
    have: dict[str, set[str]] = {SESSION: set(), PRODUCTION: set()}
    for start in range(0, len(keys), 500):
        for model, key in tx.execute(
            select(OutboxRow.model, OutboxRow.record_key).where(
                OutboxRow.channel == "odoo",
                OutboxRow.operation == "create",
                OutboxRow.model.in_((SESSION, PRODUCTION)),
                OutboxRow.record_key.in_(keys[start : start + 500]),
            )
        ):
            have[model].add(key)
    fresh = [r for r in rows if r.key not in have[SESSION]]
    enqueue_many(
        tx,
        SESSION,
        [(r.key, session_payload(tx, r)) for r in fresh],
        after={r.key: (METER, r.meter_id) for r in fresh},
    )
    milked = [r for r in rows if r.key not in have[PRODUCTION] and _wants_production(r)]
    enqueue_many(
        tx,
        PRODUCTION,
        [(r.key, production_payload(tx, r)) for r in milked],
        after={r.key: (SESSION, r.key) for r in milked},
    )
    if _mqtt_farm(tx) is not None:
        for r in fresh:
            _publish_session(tx, r)
    del held


def _publish_session(tx: Session, row: SessionRow) -> None:
    """The seed's `session_complete` (its keys first), plus the session key and quality. The
    seed's `session_id` is Odoo's record id, which the console does not know when the milking
    ends (Odoo may be out of reach for days): it is the session's stable key, the same key the
    Odoo record carries as its name. `timestamp` is when the milking ended, not when the
    message left, so a repeat is identical."""
    animal = _animal(tx, row.animal_id)
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
            "flags": _flags(row),
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


def queue_session_identity(tx: Session, row: SessionRow) -> None:
    """Who the cow was changed (a tag now known, a cow named by hand): the session learns it and
    her production record is queued or amended. Only for a finished session (an open one's
    create, queued when it completes, will carry the identity)."""
    if row.state not in FINISHED_STATES:
        return
    cow = animal_payload(tx, row.animal_id)
    session_kept = create_row(tx, SESSION, row.key) is not None
    # A finished session was queued when it completed; no create row means it was sent and
    # pruned since, so it is recreated-or-found and written.
    amend(
        tx,
        SESSION,
        row.key,
        {**cow, "id_source": row.id_source},
        recreate=session_payload(tx, row),
        after=(METER, row.meter_id),
    )
    _production_change(tx, row, session_kept)


def queue_production_change(tx: Session, row: SessionRow) -> None:
    """Bring a finished session's production record in line with it (cow, destination)."""
    if row.state in FINISHED_STATES:
        _production_change(tx, row, create_row(tx, SESSION, row.key) is not None)


def _production_change(tx: Session, row: SessionRow, session_kept: bool) -> None:
    """`queue_production_change`; `session_kept`: the session's own create row was still there
    (not pruned) before this transaction touched it."""
    if not _wants_production(row):
        # No cow, or the milk did not go to the tank: a record not yet sent is taken back. One
        # Odoo already has stays (and is reported); the console never deletes in Odoo.
        withdraw(tx, PRODUCTION, row.key)
        return
    cow = animal_payload(tx, row.animal_id)
    if amend(tx, PRODUCTION, row.key, cow):
        return
    if session_kept:
        # The session's rows are still here, so no production record was ever queued.
        enqueue(tx, PRODUCTION, row.key, production_payload(tx, row), after=(SESSION, row.key))
        return
    # Both pruned: the production record may be in Odoo already (sent) or never have been
    # queued (no cow then); a create found by key or made, and the write, cover both.
    amend(
        tx,
        PRODUCTION,
        row.key,
        cow,
        recreate=production_payload(tx, row),
        after=(SESSION, row.key),
    )


def queue_session_fields(tx: Session, row: SessionRow, changed: Mapping[str, Any]) -> None:
    """Other corrections of a finished session (re-attached, milk destination...)."""
    if row.state not in FINISHED_STATES:
        return
    amend(
        tx,
        SESSION,
        row.key,
        dict(changed),
        recreate=session_payload(tx, row),
        after=(METER, row.meter_id),
    )


# -- alerts and health events -----------------------------------------------------------------


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
            _alert_state(row),
            recreate=alert_payload(tx, row),
            after=_meter_of(row.meter_id),
        )
        event = {"acknowledged": "alert_acknowledged", "resolved": "alert_resolved"}.get(
            row.state, "alert_updated"
        )
    if row.meter_id:  # the seed's topics are per meter: an alert of no meter has none
        _publish_alert(tx, row, event)


def _publish_alert(tx: Session, row: AlertRow, event: str) -> None:
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
            **_mqtt_cow(_animal(tx, row.animal_id)),
            "session_key": row.session_key,
            "message": row.message,
            "raised_at": iso_z(row.raised_at),
            "by": row.resolved_by if row.state == "resolved" else row.acknowledged_by,
            "note": row.note,
            "timestamp": iso_z(stamp),
        },
    )


def queue_health_event(tx: Session, row: HealthEvent) -> None:
    tx.flush()
    enqueue(tx, HEALTH_EVENT, row.key, health_payload(tx, row))


def _meter_of(meter_id: str | None) -> tuple[str, str] | None:
    return (METER, meter_id) if meter_id else None


# -- the herd: tags, cows' fields, treatments -------------------------------------------------


def queue_animal_tag(tx: Session, animal_id: int, tag: str) -> None:
    """A cow's other tag for Odoo's `farm.animal.rfid` (one create per canonical tag; waits
    while Odoo does not know the cow)."""
    enqueue(tx, ANIMAL_TAG, tag, {"tag": tag, **animal_payload(tx, animal_id)})


def queue_animal_fields(tx: Session, animal_id: int, changed: Mapping[str, Any]) -> None:
    """What the console changed on a cow, for Odoo's `farm.animal` (a write, merged with one
    still waiting): `rfid_tag` (canonical), `milk_withheld` and `milk_withheld_reason`."""
    fields = dict(changed)
    if "milk_withheld_reason" in fields:
        fields["milk_withheld"] = fields["milk_withheld_reason"] is not None
    enqueue(
        tx, ANIMAL, str(animal_id), {**animal_payload(tx, animal_id), **fields}, operation="write"
    )


def treatment_payload(tx: Session, row: TreatmentRow) -> dict[str, Any]:
    """The `farm.animal.treatment` payload of a treatment recorded at the console."""
    return {
        "key": row.key,
        "product": row.product,
        "started_at": iso_z(row.started_at),
        "withdrawal_hours": row.withdrawal_hours,
        "withdrawal_milkings": row.withdrawal_milkings,
        "note": row.note,
        "recorded_by": row.recorded_by,
        **animal_payload(tx, row.animal_id),
    }


def queue_treatment(tx: Session, row: TreatmentRow) -> None:
    """A treatment recorded at the console, for Odoo (one create per treatment key)."""
    tx.flush()
    enqueue(tx, TREATMENT, row.key, treatment_payload(tx, row))


# -- catching up ------------------------------------------------------------------------------


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
        if _wants_production(row):
            enqueue(tx, PRODUCTION, row.key, production_payload(tx, row), after=(SESSION, row.key))
            n += 1
    return n


# -- meters -------------------------------------------------------------------------------------


def meter_registration(config: ParlourConfig, meter_id: str) -> dict[str, Any]:
    """A configured meter as Odoo registers it: device, model, link and capabilities."""
    m = next(x for x in config.meters if x.id == meter_id)
    bus = config.bus(m.bus)
    profile = config.profiles[m.profile]
    have = set(profile.fields)
    payload: dict[str, Any] = {
        "meter_id": m.id,
        "name": m.name or f"{profile.manufacturer} {profile.model} {m.id} (stall {m.stall})",
        "stall": m.stall,
        "profile": profile.id,
        "manufacturer": profile.manufacturer,
        "model": profile.model,
        "transport": bus.transport,
        "unit": m.unit,
        "has_rfid": "rfid" in have,
        "has_conductivity": bool(have & {"conductivity_ms_cm", "ec_lf_ms_cm"}),
        "has_temperature": "temperature_c" in have,
        "has_flow": "flow_l_min" in have,
        "has_quality": bool(have & {"fat_pct", "protein_pct", "lactose_pct", "scc_cells_ml"}),
    }
    if bus.transport == "tcp":
        payload.update(host=bus.host, port=bus.port)
    else:
        payload.update(port=str(bus.port), baudrate=bus.baudrate, parity=bus.parity)
    return payload


def _calibration(tx: Session, meter: Meter) -> dict[str, Any]:
    last = tx.scalar(
        select(func.max(Calibration.performed_at)).where(Calibration.meter_id == meter.id)
    )
    return {
        "calibration_factor": meter.calibration_factor,
        "last_calibration_at": iso_z(last),
    }


def queue_meter(tx: Session, meter: Meter, registration: Mapping[str, Any]) -> bool:
    """Register a meter in Odoo, or update its registration when it changed; True when queued.

    The registration queued last is remembered, so a console start with an unchanged config
    queues nothing."""
    payload = {**registration, **_calibration(tx, meter)}
    text = json.dumps(payload, sort_keys=True)
    memo = tx.get(SyncState, _METER_REGISTERED + meter.id)
    # The memo says what was queued last; its outbox rows may have been pruned since they went
    # (retention), so the memo, not the rows, says whether the meter is registered.
    if memo is not None and memo.value == text:
        return False
    previous = json.loads(memo.value) if memo is not None and memo.value else {}
    if memo is None and create_row(tx, METER, meter.id) is None:
        enqueue(tx, METER, meter.id, payload)
    else:
        changed = {k: v for k, v in payload.items() if previous.get(k) != v}
        amend(tx, METER, meter.id, {"meter_id": meter.id, **changed}, recreate=payload)
    if memo is None:
        tx.add(SyncState(key=_METER_REGISTERED + meter.id, value=text))
    else:
        memo.value = text
    return True


def queue_meter_calibrated(tx: Session, meter: Meter) -> None:
    """A calibration changed a meter's factor: Odoo's flow_calibration_factor and
    last_calibration follow."""
    tx.flush()
    fields_now = _calibration(tx, meter)
    memo = tx.get(SyncState, _METER_REGISTERED + meter.id)
    registered = json.loads(memo.value) if memo is not None and memo.value else None
    # With a memo the meter was registered, even if its rows were pruned since.
    recreate = {**registered, **fields_now} if registered is not None else None
    amend(tx, METER, meter.id, {"meter_id": meter.id, **fields_now}, recreate=recreate)
    if memo is not None and registered is not None:
        memo.value = json.dumps({**registered, **fields_now}, sort_keys=True)


def requeue_registrations(tx: Session) -> int:
    """Register every meter again (another Odoo server: it has none of them). Creates still
    here go back to pending; a meter whose rows were pruned is queued again from its memo.
    A registration finds what the server already has by device id. Returns how many."""
    n = 0
    for memo in tx.scalars(select(SyncState).where(SyncState.key.startswith(_METER_REGISTERED))):
        meter_id = memo.key[len(_METER_REGISTERED) :]
        row = create_row(tx, METER, meter_id)
        if row is not None:
            row.state, row.attempts, row.next_attempt_at = "pending", 0, None
        elif memo.value:
            enqueue(tx, METER, meter_id, json.loads(memo.value))
        else:
            continue
        n += 1
    for row in tx.scalars(
        select(OutboxRow).where(
            OutboxRow.channel == "odoo", OutboxRow.model == METER, OutboxRow.operation == "create"
        )
    ):
        # A meter registered before memos were kept.
        if row.state != "pending":
            row.state, row.attempts, row.next_attempt_at = "pending", 0, None
            n += 1
    return n


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


__all__ = [
    "alert_payload",
    "animal_payload",
    "health_payload",
    "meter_registration",
    "production_payload",
    "queue_alert",
    "queue_animal_fields",
    "queue_animal_tag",
    "queue_health_event",
    "queue_meter",
    "queue_meter_calibrated",
    "queue_meter_status",
    "queue_production_change",
    "queue_session",
    "queue_session_fields",
    "queue_session_identity",
    "queue_sessions",
    "queue_treatment",
    "queue_unqueued",
    "requeue_registrations",
    "session_payload",
    "set_mqtt",
    "treatment_payload",
]
