"""The contract with the farm's Odoo: model and field names, and record -> Odoo values.

Each contract model has a short name (`session`, `production`, ...) used in the config file, a
default Odoo model (which is also the model name outbox rows carry) and contract fields named as
the default Odoo fields. `[odoo.models]` and `[odoo.fields.<model>]` rename them for a server
whose module spells them differently, or leave a field out (""). docs/odoo.md is the reference.

`Contract.vals()` turns an outbox payload (the console's own vocabulary: `yield_l`, ISO times
with Z, ...) into the Odoo values of a create or a write: datetimes as 'YYYY-MM-DD HH:MM:SS' UTC,
many2one as ids, empty values left out of a create and sent as False in a write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

from milkconsole.errors import MilkConsoleError
from milkconsole.sync.settings import OdooSettings

ODOO_DATETIME = "%Y-%m-%d %H:%M:%S"
ODOO_DATE = "%Y-%m-%d"


class MappingError(MilkConsoleError):
    """An outbox payload that cannot become Odoo values (a local bug or a damaged row)."""


@dataclass(frozen=True, slots=True)
class ContractModel:
    """One model of the contract. `key_field` holds a pushed record's stable key."""

    name: str
    default_model: str
    fields: tuple[str, ...]
    direction: Literal["push", "pull", "lookup"]
    key_field: str | None = None


CONTRACT: dict[str, ContractModel] = {
    m.name: m
    for m in (
        ContractModel(
            "animal",
            "farm.animal",
            ("name", "number", "rfid_tag", "conductivity_baseline", "active"),
            "pull",
        ),
        ContractModel("animal_rfid", "farm.animal.rfid", ("animal_id", "rfid_tag"), "pull"),
        ContractModel("meter", "iot.device", ("device_id", "last_seen"), "lookup"),
        ContractModel(
            "session",
            "milk.session",
            (
                "name",
                "meter_id",
                "animal_id",
                "rfid_tag",
                "start_time",
                "end_time",
                "total_yield",
                "peak_flow",
                "avg_flow",
                "conductivity",
                "milk_temperature",
                "fat",
                "protein",
                "lactose",
                "somatic_cell_count",
                "blood_detected",
                "quality_grade",
                "state",
            ),
            "push",
            key_field="name",
        ),
        ContractModel(
            "production",
            "farm.milk.production",
            (
                "animal_id",
                "date",
                "milking",
                "quantity",
                "fat",
                "protein",
                "somatic_cell_count",
                "source",
                "source_reference",
            ),
            "push",
            key_field="source_reference",
        ),
        ContractModel(
            "alert",
            "iot.device.alert",
            (
                "name",
                "reference",
                "device_id",
                "animal_id",
                "alert_type",
                "severity",
                "message",
                "date",
                "state",
                "acknowledged_by",
                "acknowledged_date",
                "resolved_by",
                "resolved_date",
                "resolution_note",
            ),
            "push",
            key_field="reference",
        ),
        ContractModel(
            "health_event",
            "farm.health.event",
            (
                "name",
                "reference",
                "animal_id",
                "event_type",
                "date",
                "description",
                "session_reference",
            ),
            "push",
            key_field="reference",
        ),
    )
}

# Fields without which a model is useless to the sync; the config cannot leave them out.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "animal": ("name",),
    "animal_rfid": ("animal_id", "rfid_tag"),
    "meter": ("device_id",),
    "session": ("name", "start_time"),
    "production": ("source_reference", "animal_id", "date", "quantity"),
    "alert": ("reference", "name"),
    "health_event": ("reference", "name"),
}
# The animal's herd number is its Odoo name unless the config maps it elsewhere.
_DEFAULT_FIELD_NAME = {("animal", "number"): "name"}

# Outbox rows carry the contract's default Odoo model names; pushed in this order so a write
# waits for creates of the same pass, and production (derived from sessions) follows sessions.
PUSH_ORDER: tuple[str, ...] = ("session", "production", "alert", "health_event")
OUTBOX_MODEL: dict[str, str] = {name: CONTRACT[name].default_model for name in PUSH_ORDER}

_ALERT_STATES = {
    "open": "new",
    "new": "new",
    "acknowledged": "acknowledged",
    "resolved": "resolved",
}
_SEVERITIES = {"info": "info", "warning": "warning", "critical": "critical"}


# -- value conversions -----------------------------------------------------------------------


def parse_iso(value: Any, what: str) -> datetime:
    """An aware UTC datetime from the ISO text a payload holds (naive text is refused)."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise MappingError(f"{what}: {value!r} is not an ISO 8601 time") from exc
    else:
        raise MappingError(f"{what}: {value!r} is not a time")
    if dt.tzinfo is None:
        raise MappingError(f"{what}: {value!r} has no time zone (payload times are UTC with Z)")
    return dt.astimezone(UTC)


def to_odoo_datetime(value: Any, what: str = "time") -> str:
    """Odoo's datetime form: 'YYYY-MM-DD HH:MM:SS' in UTC, no zone, no fraction."""
    return parse_iso(value, what).strftime(ODOO_DATETIME)


def from_odoo_datetime(value: Any) -> datetime | None:
    """An aware UTC datetime from Odoo's 'YYYY-MM-DD HH:MM:SS' (False -> None)."""
    if not value:
        return None
    return datetime.strptime(str(value)[:19], ODOO_DATETIME).replace(tzinfo=UTC)


def many2one_id(value: Any) -> int | None:
    """The id of a many2one as Odoo reads it back ([id, name] or False)."""
    if isinstance(value, list | tuple) and value:
        return int(value[0])
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def odoo_text(value: Any) -> str | None:
    """A char field as Odoo reads it back (False means empty)."""
    if value is False or value is None:
        return None
    text = str(value).strip()
    return text or None


# A field's value from a payload: (payload keys it reads, function of the payload and refs).
Getter = Callable[[Mapping[str, Any], "Refs"], Any]


@dataclass(frozen=True, slots=True)
class Refs:
    """Odoo ids resolved before mapping: meters by device id; the farm's time zone (None: this
    PC's, with its daylight-saving rules applied to each date)."""

    meters: Mapping[str, int]
    zone: tzinfo | None


def _get(key: str) -> tuple[tuple[str, ...], Getter]:
    return (key,), lambda p, _r: p.get(key)


def _dt(key: str) -> tuple[tuple[str, ...], Getter]:
    def get(p: Mapping[str, Any], _r: Refs) -> Any:
        v = p.get(key)
        return None if v in (None, "") else to_odoo_datetime(v, key)

    return (key,), get


def _meter(key: str) -> tuple[tuple[str, ...], Getter]:
    return (key,), lambda p, r: r.meters.get(str(p.get(key))) if p.get(key) else None


def _animal() -> tuple[tuple[str, ...], Getter]:
    return ("animal_odoo_id", "animal_id"), lambda p, _r: p.get("animal_odoo_id")


def _local_start(p: Mapping[str, Any], r: Refs) -> datetime:
    return parse_iso(p.get("started_at"), "started_at").astimezone(r.zone)


def _title(p: Mapping[str, Any], _r: Refs) -> str:
    kind = str(p.get("kind") or "alert").replace("_", " ")
    text = kind[:1].upper() + kind[1:]
    if p.get("condition"):
        text += f" ({p['condition']})"
    if p.get("animal_number"):
        text += f" — cow {p['animal_number']}"
    return text


_SPECS: dict[str, dict[str, tuple[tuple[str, ...], Getter]]] = {
    "session": {
        "name": _get("key"),
        "meter_id": _meter("meter_id"),
        "animal_id": _animal(),
        "rfid_tag": _get("rfid"),
        "start_time": _dt("started_at"),
        "end_time": _dt("ended_at"),
        "total_yield": _get("yield_l"),
        "peak_flow": _get("peak_flow_l_min"),
        "avg_flow": _get("avg_flow_l_min"),
        "conductivity": _get("conductivity_mean_ms_cm"),
        "milk_temperature": _get("temperature_c"),
        "fat": _get("fat_pct"),
        "protein": _get("protein_pct"),
        "lactose": _get("lactose_pct"),
        "somatic_cell_count": _get("scc_cells_ml"),
        "blood_detected": _get("blood"),
        "quality_grade": _get("quality_grade"),
        "state": _get("state"),
    },
    "production": {
        "animal_id": _animal(),
        "date": (("started_at",), lambda p, r: _local_start(p, r).strftime(ODOO_DATE)),
        "milking": (("started_at",), lambda p, r: "am" if _local_start(p, r).hour < 12 else "pm"),
        "quantity": _get("yield_l"),
        "fat": _get("fat_pct"),
        "protein": _get("protein_pct"),
        "somatic_cell_count": _get("scc_cells_ml"),
        "source": (("key",), lambda _p, _r: "iot_meter"),
        "source_reference": _get("key"),
    },
    "alert": {
        "name": (("kind", "condition", "animal_number"), _title),
        "reference": _get("key"),
        "device_id": _meter("meter_id"),
        "animal_id": _animal(),
        "alert_type": _get("kind"),
        "severity": (
            ("severity",),
            lambda p, _r: (
                _SEVERITIES.get(str(p.get("severity")), "warning") if p.get("severity") else None
            ),
        ),
        "message": _get("message"),
        "date": _dt("raised_at"),
        "state": (
            ("state",),
            lambda p, _r: _ALERT_STATES.get(str(p.get("state")), "new") if p.get("state") else None,
        ),
        "acknowledged_by": _get("acknowledged_by"),
        "acknowledged_date": _dt("acknowledged_at"),
        "resolved_by": _get("resolved_by"),
        "resolved_date": _dt("resolved_at"),
        "resolution_note": _get("note"),
    },
    "health_event": {
        "name": (("kind", "animal_number"), _title),
        "reference": _get("key"),
        "animal_id": _animal(),
        "event_type": _get("kind"),
        "date": _dt("recorded_at"),
        "description": _get("detail"),
        "session_reference": _get("session_key"),
    },
}


class Contract:
    """The contract as one config file sets it: names on the server, and the value mapping."""

    def __init__(self, settings: OdooSettings | None = None) -> None:
        self._models = dict(settings.models) if settings else {}
        self._fields = {k: dict(v) for k, v in settings.fields.items()} if settings else {}
        self.zone: tzinfo | None = (
            ZoneInfo(settings.timezone) if settings and settings.timezone else None
        )

    def model(self, name: str) -> str:
        """The server's model name for contract model `name`."""
        return self._models.get(name) or CONTRACT[name].default_model

    def field(self, model: str, name: str) -> str | None:
        """The server's field for contract field `name`, or None when the config left it out."""
        mapped = self._fields.get(model, {}).get(name)
        if mapped is None:
            return _DEFAULT_FIELD_NAME.get((model, name), name)
        return mapped or None

    def fields(self, model: str) -> dict[str, str]:
        """Contract field -> server field, for the fields the config keeps."""
        out = {}
        for name in CONTRACT[model].fields:
            server = self.field(model, name)
            if server:
                out[name] = server
        return out

    def key_field(self, model: str) -> str:
        key = CONTRACT[model].key_field
        assert key is not None, f"{model} is not pushed"
        server = self.field(model, key)
        assert server, f"{model}.{key} cannot be left out"  # refused by the settings parser
        return server

    @staticmethod
    def for_outbox(outbox_model: str) -> str | None:
        """The contract model of an outbox row's model name (None: not ours)."""
        for name, default in OUTBOX_MODEL.items():
            if default == outbox_model:
                return name
        return None

    def vals(
        self,
        model: str,
        payload: Mapping[str, Any],
        refs: Refs,
        operation: str = "create",
    ) -> dict[str, Any]:
        """Odoo values (server field names) for a create or a write of `payload`.

        A create leaves empty values out (Odoo's defaults apply); a write maps only the fields
        whose payload keys are present, and sends an empty one as False to clear it.
        """
        specs = _SPECS[model]
        out: dict[str, Any] = {}
        for name, server in self.fields(model).items():
            spec = specs.get(name)
            if spec is None:
                continue
            keys, getter = spec
            if operation == "write" and not any(k in payload for k in keys):
                continue
            try:
                value = getter(payload, refs)
            except MappingError:
                raise
            except (TypeError, ValueError, KeyError) as exc:
                raise MappingError(f"{model}.{name}: cannot map {payload!r}: {exc}") from exc
            if value is None:
                if operation == "write":
                    out[server] = False
                continue
            out[server] = value
        return out

    def payload_meters(self, model: str, payload: Mapping[str, Any]) -> set[str]:
        """The meter device ids a payload refers to (resolved to Odoo ids before mapping)."""
        if model in ("session", "alert") and payload.get("meter_id"):
            return {str(payload["meter_id"])}
        return set()
