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

The package is the one owner; its modules: `payloads` (what each record carries, the models),
`sessions`, `alerts`, `herd` and `meters` (what queues each kind of record), `mqtt_events`
(the broker's messages) and `catch_up` (a database from before). Callers import from the
package.
"""

from __future__ import annotations

from milkconsole.store.outbound.alerts import (
    queue_alert,
    queue_health_event,
)
from milkconsole.store.outbound.catch_up import (
    queue_unqueued,
)
from milkconsole.store.outbound.herd import (
    queue_animal_fields,
    queue_animal_tag,
    queue_treatment,
)
from milkconsole.store.outbound.meters import (
    meter_registration,
    queue_meter,
    queue_meter_calibrated,
    requeue_registrations,
)
from milkconsole.store.outbound.mqtt_events import (
    queue_meter_status,
    set_mqtt,
)
from milkconsole.store.outbound.payloads import (
    ALERT,
    ANIMAL,
    ANIMAL_TAG,
    HEALTH_EVENT,
    METER,
    PRODUCTION,
    SESSION,
    TREATMENT,
    abnormality,
    alert_payload,
    animal_payload,
    canonical,
    health_payload,
    iso_z,
    production_payload,
    session_payload,
    treatment_payload,
)
from milkconsole.store.outbound.sessions import (
    queue_production_change,
    queue_session,
    queue_session_fields,
    queue_session_identity,
    queue_sessions,
)

__all__ = [
    "ALERT",
    "ANIMAL",
    "ANIMAL_TAG",
    "HEALTH_EVENT",
    "METER",
    "PRODUCTION",
    "SESSION",
    "TREATMENT",
    "abnormality",
    "alert_payload",
    "animal_payload",
    "canonical",
    "health_payload",
    "iso_z",
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
