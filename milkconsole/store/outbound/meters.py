"""The meters' registrations in Odoo (`iot.milk_meter`): queued when a meter's registration
changed, amended by calibrations, queued again for another Odoo server. A memo in sync_state
remembers what was queued last, so an unchanged config queues nothing and pruned rows (retention)
do not look unregistered."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from milkconsole.store.outbound.payloads import METER, iso_z
from milkconsole.store.outbox import amend, create_row, enqueue
from milkconsole.store.schema import Calibration, Meter, OutboxRow, SyncState

if TYPE_CHECKING:
    from milkconsole.config import ParlourConfig

_METER_REGISTERED = "odoo.meter_registration."  # sync_state: the last registration queued


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
