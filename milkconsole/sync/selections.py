"""The console's states and kinds as the seed's selection values, and the getters that pick them.

Each mapping reads the console's word (a session's state, an alert's kind and severity, a
meter's make, link and status) and gives the value the seed's selection field accepts; the
contract's table (`sync.contract`) declares a field's selection from these, so the contract
check can name a value a server lacks before anything is sent. docs/odoo.md has the mapping
in words.

They are apart from the table because they are vocabulary, not structure: a farm's module
that adds a make or an alert kind changes a mapping here, and the contract's list of models
and fields does not move.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from milkconsole.meters.events import FINISHED_STATES

SESSION_STATES = ("in_progress", "completed")
ALERT_STATES = {"open": "active", "acknowledged": "acknowledged", "resolved": "resolved"}
SEVERITIES = {"info": "low", "low": "low", "warning": "warning", "critical": "critical"}
# iot.device.alert's types are about devices; a cow's alerts are the seed's 'custom' ones.
ALERT_TYPES = {
    "equipment": "threshold",
    "offline": "offline",
    "calibration": "maintenance",
}
EVENT_TYPES = {
    "mastitis_indicator": "mastitis_indicator",
    "blood_in_milk": "blood_indicator",
    "blood_indicator": "blood_indicator",
    "identity_indicator": "identity_indicator",
    "low_yield": "low_yield",
    "treatment": "treatment",
}
MANUFACTURERS = {
    "delaval": "delaval",
    "afimilk": "afimilk",
    "gea": "gea",
    "lely": "lely",
    "boumatic": "boumatic",
}
BAUDRATES = ("9600", "19200", "38400", "57600", "115200")
QUALITY_GRADES = ("A", "B", "C", "reject")
DESTINATIONS = {"tank": "tank", "diverted": "diverted"}
DEVICE_STATES = {"ok": "online", "degraded": "degraded", "offline": "offline"}
COMMUNICATION_TYPES = {"rtu": "modbus_rtu", "tcp": "modbus_tcp"}
PARITIES = {"N": "N", "E": "E", "O": "O"}


def session_state(p: Mapping[str, Any]) -> str | None:
    """Every finished milking is the seed's `completed`; how it went is in is_abnormal/reason."""
    state = p.get("state")
    if state is None:
        return None
    return "completed" if state in FINISHED_STATES else "in_progress"


def session_abnormal(p: Mapping[str, Any]) -> bool:
    """An incomplete or interrupted milking is abnormal, as is one the health checks flagged."""
    return bool(p.get("abnormal")) or p.get("state") in ("incomplete", "interrupted")


def is_abnormal(p: Mapping[str, Any]) -> bool | None:
    """`session_abnormal`, when the payload says anything about it (a write may not)."""
    return session_abnormal(p) if ("abnormal" in p or "state" in p) else None


def alert_title(p: Mapping[str, Any]) -> str:
    """An alert's name in Odoo: its kind, its condition (not "cow"), the cow's number."""
    kind = str(p.get("kind") or "alert").replace("_", " ")
    text = kind[:1].upper() + kind[1:]
    condition = p.get("condition")
    if condition and condition != "cow":
        text += f" ({str(condition).replace('_', ' ')})"
    if p.get("animal_number"):
        text += f" — cow {p['animal_number']}"
    return text


def alert_type(p: Mapping[str, Any]) -> str | None:
    """The seed's alert type (a cow's alerts are `custom`); None when the payload has no kind."""
    return ALERT_TYPES.get(str(p["kind"]), "custom") if p.get("kind") else None


def manufacturer(p: Mapping[str, Any]) -> str | None:
    """The seed's make ('other' for one it does not list); None when the payload has no make."""
    if "manufacturer" not in p:
        return None
    text = str(p.get("manufacturer") or "").strip().lower()
    return MANUFACTURERS.get(text, "other")


def baudrate(p: Mapping[str, Any]) -> str | None:
    """The seed's baud rate value; None for a rate its selection does not list."""
    text = str(p.get("baudrate"))
    return text if text in BAUDRATES else None
