"""What each outbound record carries: the payloads in the console's own vocabulary, and the
Odoo models they are queued under (`milkconsole.sync.contract` maps them onto the seed's fields
when they are sent)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from milkconsole.flags import flag_text
from milkconsole.meters.events import FINISHED_STATES
from milkconsole.meters.rfid import InvalidTag, normalize_tag
from milkconsole.store.schema import AlertRow, Animal, HealthEvent, SessionRow, TreatmentRow

SESSION = "milk.session"
PRODUCTION = "farm.milk.production"
ALERT = "iot.device.alert"
HEALTH_EVENT = "farm.health.event"
METER = "iot.milk_meter"
ANIMAL = "farm.animal"
ANIMAL_TAG = "farm.animal.rfid"
TREATMENT = "farm.animal.treatment"


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


def animal_row(tx: Session, animal_id: int | None) -> Animal | None:
    """The cow's row (None: no cow, or not known)."""
    return tx.get(Animal, animal_id) if animal_id is not None else None


def animal_payload(tx: Session, animal_id: int | None) -> dict[str, Any]:
    """The cow part of a payload: her local id (Odoo's id is looked up when it is sent, so a cow
    re-created in Odoo is found again), herd number and canonical tag."""
    animal = animal_row(tx, animal_id)
    return {
        "animal_id": animal_id,
        "animal_number": animal.number if animal else None,
        "animal_tag": animal.rfid_tag if animal else None,
    }


def session_flags(row: SessionRow) -> list[str]:
    """The session's flags as a list (stored comma-separated)."""
    return [f for f in (row.flags or "").split(",") if f]


def abnormality(row: SessionRow) -> str | None:
    """Why a milking is abnormal, in words: its state, then its flags (as Odoo shows them)."""
    parts: list[str] = []
    if row.state in ("incomplete", "interrupted"):
        parts.append(row.state)
    for flag in session_flags(row):
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
        "flags": session_flags(row),
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


def alert_state(row: AlertRow) -> dict[str, Any]:
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
        **alert_state(row),
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


def goes_to_tank(row: SessionRow) -> bool:
    return row.destination != "diverted"


def wants_production(row: SessionRow) -> bool:
    return (
        row.state in FINISHED_STATES
        and row.animal_id is not None
        and row.yield_l > 0
        and goes_to_tank(row)
    )
