"""The contract with the farm's Odoo: the seed's models, their fields, and payload -> Odoo values.

The default contract is the user's milestone document ("the seed"): `iot.device` and the
`iot.milk_meter` that inherits it (with its `iot.milk_meter.point`), `milk.session`,
`farm.milk.production`, `farm.animal`, `farm.animal.rfid`, `iot.device.alert` and
`farm.health.event`, plus `farm.animal.treatment` for milk withdrawals. `installer/odoo/` ships
an Odoo module that provides exactly these for a farm whose Odoo lacks them.

`CONTRACT` is the one table of it: per contract model, its default Odoo model and, per field,
the payload keys it reads, the getter that turns an outbox payload (the console's own vocabulary:
`yield_l`, ISO times with Z, local animal ids) into the Odoo value, the precision the seed
declares, the model a many2one must point at, and the selection values the console may send.
`Contract` applies the table as one config file names things; `Refs` are the Odoo ids the
getters link to. `milkconsole.store.outbound` builds the payloads; a test checks that the two
agree.

The parts the table uses live beside it: `sync.odoo_values` the value conversions (ISO and
Odoo datetimes, many2one ids, text, canonical tags, the seed's precision) and `MappingError`;
`sync.selections` the console's states and kinds as the seed's selection values and the getters
that pick them.

`[odoo.models]` and `[odoo.fields.<model>]` in the config rename models and fields for a server
whose module spells them differently, or leave an optional field out (""). docs/odoo.md is the
reference, with the mapping of the console's states and flags onto the seed's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from milkconsole.sync import selections
from milkconsole.sync.odoo_values import (
    ODOO_DATE,
    MappingError,
    canonical_tag,
    parse_iso,
    rounded,
    to_odoo_datetime,
)

if TYPE_CHECKING:
    # The settings are validated against this contract (`sync.settings` imports it): the
    # contract only reads them.
    from milkconsole.sync.settings import OdooSettings


# -- references resolved at push time ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeterIds:
    """A registered meter's Odoo ids: its `iot.device`, `iot.milk_meter` and milking point."""

    device: int | None = None
    meter: int | None = None
    point: int | None = None


@dataclass(frozen=True, slots=True)
class Refs:
    """Odoo ids resolved before mapping: meters by device id, animals by local animal id (None:
    not in Odoo, the record goes without the link), and the farm's time zone (None: this PC's,
    with its daylight-saving rules applied to each date)."""

    meters: Mapping[str, MeterIds] = field(default_factory=dict)
    animals: Mapping[int, int | None] = field(default_factory=dict)
    zone: tzinfo | None = None

    def meter(self, device_id: Any) -> MeterIds:
        return self.meters.get(str(device_id), MeterIds()) if device_id else MeterIds()

    def animal(self, local_id: Any) -> int | None:
        if local_id is None or isinstance(local_id, bool):
            return None
        return self.animals.get(int(local_id))


# -- getters that need the refs (the farm's zone) or more than one key ---------------------------


def _local_start(p: Mapping[str, Any], r: Refs) -> datetime:
    return parse_iso(p.get("started_at"), "started_at").astimezone(r.zone)


def _modbus_port(p: Mapping[str, Any], _r: Refs) -> str | None:
    if p.get("transport") == "tcp":
        return f"{p.get('host')}:{p.get('port')}"
    return str(p["port"]) if p.get("port") else None


def _point_name(p: Mapping[str, Any], _r: Refs) -> str | None:
    return f"Stall {p['stall']}" if p.get("stall") else None


# -- the table ---------------------------------------------------------------------------------

Getter = Callable[[Mapping[str, Any], Refs], Any]


@dataclass(frozen=True, slots=True)
class ContractField:
    """One field: `name` is the contract name and the default server field name.

    `keys` are the payload keys `get` reads (a write maps a field only when one is present);
    `digits` the decimal places the seed declares (0: an integer field); `relation` the contract
    model a many2one points at; `selection` the values the console may send; `required` means
    the config may not leave it out.
    """

    name: str
    keys: tuple[str, ...]
    get: Getter
    digits: int | None = None
    relation: str | None = None
    selection: tuple[str, ...] = ()
    required: bool = False


Direction = Literal["push", "pull", "register"]


@dataclass(frozen=True, slots=True)
class ContractModel:
    """One model of the contract. `key_field` holds a pushed record's stable key."""

    name: str
    default_model: str
    direction: Direction
    fields: tuple[ContractField, ...]
    key_field: str | None = None

    def get(self, name: str) -> ContractField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no contract field {name!r}")


def _pulled(name: str, **kw: Any) -> ContractField:
    """A field the console only reads from Odoo (the herd): it maps no payload."""
    return ContractField(name, (), lambda _p, _r: None, **kw)


def _field(name: str, key: str, **kw: Any) -> ContractField:
    return ContractField(name, (key,), lambda p, _r: p.get(key), **kw)


def _const(name: str, value: Any, *, keys: tuple[str, ...] = ("key",), **kw: Any) -> ContractField:
    return ContractField(name, keys, lambda _p, _r: value, **kw)


def _dt(name: str, key: str, **kw: Any) -> ContractField:
    def get(p: Mapping[str, Any], _r: Refs) -> Any:
        v = p.get(key)
        return None if v in (None, "") else to_odoo_datetime(v, key)

    return ContractField(name, (key,), get, **kw)


def _animal(name: str = "animal_id", **kw: Any) -> ContractField:
    return ContractField(
        name, ("animal_id",), lambda p, r: r.animal(p.get("animal_id")), relation="animal", **kw
    )


def _of(
    name: str, keys: tuple[str, ...], get: Callable[[Mapping[str, Any]], Any], **kw: Any
) -> ContractField:
    """A field whose value comes from the payload alone (`get` reads `keys`)."""
    return ContractField(name, keys, lambda p, _r: get(p), **kw)


_METER_PART: dict[str, Callable[[MeterIds], int | None]] = {
    "device": lambda ids: ids.device,
    "milk_meter": lambda ids: ids.meter,
    "milk_meter_point": lambda ids: ids.point,
}


def _meter(name: str, relation: str, **kw: Any) -> ContractField:
    """A many2one to the payload's meter in Odoo: its device, its milk meter or its point."""
    part = _METER_PART[relation]
    return ContractField(
        name, ("meter_id",), lambda p, r: part(r.meter(p.get("meter_id"))), relation=relation, **kw
    )


def _mapped(name: str, key: str, table: Mapping[str, str], default: str | None) -> ContractField:
    def get(p: Mapping[str, Any], _r: Refs) -> Any:
        v = p.get(key)
        return None if v in (None, "") else table.get(str(v), default)

    values = tuple(dict.fromkeys([*table.values(), *([default] if default else [])]))
    return ContractField(name, (key,), get, selection=values)


CONTRACT: dict[str, ContractModel] = {
    m.name: m
    for m in (
        # -- pulled: the herd (the console only writes a new primary tag and the keep-out
        # flag onto a cow Odoo has; she is found by local id, tag or number when it is sent) --
        ContractModel(
            "animal",
            "farm.animal",
            "pull",
            (
                _pulled("name", required=True),
                _pulled("number"),
                _field("rfid_tag", "rfid_tag"),
                _pulled("conductivity_baseline"),
                _pulled("herd_group"),
                _pulled("birth_date"),
                _pulled("lactation_number"),
                _pulled("last_calving_date"),
                _field("milk_withheld", "milk_withheld"),
                _field("milk_withheld_reason", "milk_withheld_reason"),
                _pulled("active"),
            ),
        ),
        ContractModel(
            "animal_rfid",
            "farm.animal.rfid",
            "push",
            (
                _field("rfid_tag", "tag", required=True),
                _animal(required=True),
            ),
            key_field="rfid_tag",
        ),
        ContractModel(
            "treatment",
            "farm.animal.treatment",
            "push",
            (
                _field("source_reference", "key", required=True),
                _animal(required=True),
                _field("product", "product"),
                _dt("start", "started_at"),
                _field("withdrawal_hours", "withdrawal_hours", digits=2),
                _field("withdrawal_milkings", "withdrawal_milkings", digits=0),
                _field("note", "note"),
                _field("recorded_by", "recorded_by"),
                _const("source", "console", selection=("console",)),
                _pulled("active"),
            ),
            key_field="source_reference",
        ),
        # -- registered: the meters ----------------------------------------------------------------
        ContractModel(
            "device",
            "iot.device",
            "register",
            (
                _field("device_id", "meter_id", required=True),
                _field("name", "name", required=True),
                _const("device_type", "milk_meter", selection=("milk_meter",)),
                _dt("last_seen", "last_seen_at"),
                _mapped("state", "status", selections.DEVICE_STATES, None),
            ),
            key_field="device_id",
        ),
        ContractModel(
            "milk_meter",
            "iot.milk_meter",
            "register",
            (
                _meter("device_id", "device", required=True),
                _const("meter_type", "electronic", keys=("meter_id",), selection=("electronic",)),
                _of(
                    "manufacturer",
                    ("manufacturer",),
                    selections.manufacturer,
                    selection=(*selections.MANUFACTURERS.values(), "other"),
                    required=True,
                ),
                _field("model_number", "model"),
                _mapped("communication_type", "transport", selections.COMMUNICATION_TYPES, None),
                _field("modbus_address", "unit", digits=0),
                ContractField("modbus_port", ("transport", "port", "host"), _modbus_port),
                _of(
                    "modbus_baudrate",
                    ("baudrate",),
                    selections.baudrate,
                    selection=selections.BAUDRATES,
                ),
                _mapped("modbus_parity", "parity", selections.PARITIES, None),
                _const("milking_point_count", 1, keys=("meter_id",), digits=0),
                _field("has_rfid_reader", "has_rfid"),
                _field("has_conductivity", "has_conductivity"),
                _field("has_temperature", "has_temperature"),
                _field("has_flow_sensor", "has_flow"),
                _field("has_milk_quality", "has_quality"),
                _field("flow_calibration_factor", "calibration_factor", digits=4),
                _dt("last_calibration", "last_calibration_at"),
            ),
            key_field="device_id",
        ),
        ContractModel(
            "milk_meter_point",
            "iot.milk_meter.point",
            "register",
            (
                _meter("meter_id", "milk_meter", required=True),
                _const("point_number", 1, keys=("meter_id",), digits=0, required=True),
                ContractField("name", ("stall",), _point_name),
                _field("position_description", "position"),
            ),
        ),
        # -- pushed: what the parlour records ------------------------------------------------------
        ContractModel(
            "session",
            "milk.session",
            "push",
            (
                _field("name", "key", required=True),
                _meter("meter_id", "milk_meter", required=True),
                _meter("milking_point", "milk_meter_point"),
                _animal(),
                ContractField(
                    "rfid_tag",
                    ("tag", "rfid"),
                    lambda p, _r: p.get("tag") or canonical_tag(p.get("rfid")),
                ),
                _dt("start_time", "started_at", required=True),
                _dt("end_time", "ended_at"),
                _field("total_yield", "yield_l", digits=3),
                _field("peak_flow_rate", "peak_flow_l_min", digits=3),
                _field("avg_flow_rate", "avg_flow_l_min", digits=3),
                _field("conductivity", "conductivity_mean_ms_cm", digits=3),
                _field("milk_temperature", "temperature_c", digits=2),
                _field("fat_percentage", "fat_pct", digits=2),
                _field("protein_percentage", "protein_pct", digits=2),
                _field("lactose_percentage", "lactose_pct", digits=2),
                _field("somatic_cell_count", "scc_cells_ml", digits=0),
                _field("blood_detected", "blood"),
                _field("vacuum_level", "vacuum_kpa", digits=2),
                _field("pulsation_rate", "pulsation_cpm", digits=0),
                _field("quality_grade", "quality_grade", selection=selections.QUALITY_GRADES),
                _of("is_abnormal", ("abnormal", "state"), selections.is_abnormal),
                _field("abnormality_reason", "abnormality"),
                _of(
                    "state",
                    ("state",),
                    selections.session_state,
                    selection=selections.SESSION_STATES,
                ),
                _mapped("milk_destination", "destination", selections.DESTINATIONS, None),
                _field("divert_reason", "divert_reason"),
                _field("divert_confirmed_by", "divert_confirmed_by"),
            ),
            key_field="name",
        ),
        ContractModel(
            "production",
            "farm.milk.production",
            "push",
            (
                _field("source_reference", "key", required=True),
                _animal(required=True),
                ContractField(
                    "date",
                    ("started_at",),
                    lambda p, r: _local_start(p, r).strftime(ODOO_DATE),
                    required=True,
                ),
                ContractField(
                    "milking_time",
                    ("started_at",),
                    lambda p, r: "am" if _local_start(p, r).hour < 12 else "pm",
                    selection=("am", "pm"),
                ),
                _field("quantity", "yield_l", digits=3, required=True),
                _field("fat_percentage", "fat_pct", digits=2),
                _field("protein_percentage", "protein_pct", digits=2),
                _field("somatic_cell_count", "scc_cells_ml", digits=0),
                _const("source", "iot_meter", selection=("iot_meter",)),
            ),
            key_field="source_reference",
        ),
        ContractModel(
            "alert",
            "iot.device.alert",
            "push",
            (
                _field("reference", "key", required=True),
                ContractField(
                    "name",
                    ("kind", "condition", "animal_number"),
                    lambda p, _r: selections.alert_title(p) if p.get("kind") else None,
                ),
                _meter("device_id", "device"),
                _animal(),
                _of(
                    "alert_type",
                    ("kind",),
                    selections.alert_type,
                    selection=(*selections.ALERT_TYPES.values(), "custom"),
                ),
                _mapped("severity", "severity", selections.SEVERITIES, "warning"),
                _field("message", "message"),
                _mapped("state", "state", selections.ALERT_STATES, "active"),
                _dt("date", "raised_at"),
                _field("acknowledged_by", "acknowledged_by"),
                _dt("acknowledged_date", "acknowledged_at"),
                _field("resolved_by", "resolved_by"),
                _dt("resolved_date", "resolved_at"),
                _field("resolution_note", "note"),
            ),
            key_field="reference",
        ),
        ContractModel(
            "health_event",
            "farm.health.event",
            "push",
            (
                _field("source_reference", "key", required=True),
                _animal(),
                _mapped("event_type", "kind", selections.EVENT_TYPES, "other"),
                _field("description", "detail"),
                _const("source", "iot_milk_meter", selection=("iot_milk_meter",)),
                _dt("date", "recorded_at"),
            ),
            key_field="source_reference",
        ),
    )
}

# Outbox rows carry the contract's default Odoo model names; pushed in this order, so a meter is
# registered before its sessions and a session lands before its production record. `animal`
# only ever gets writes (a cow's new primary tag, her keep-out flag).
PUSH_ORDER: tuple[str, ...] = (
    "milk_meter",
    "session",
    "production",
    "alert",
    "health_event",
    "animal",
    "animal_rfid",
    "treatment",
)
OUTBOX_MODEL: dict[str, str] = {name: CONTRACT[name].default_model for name in PUSH_ORDER}
_BY_OUTBOX_MODEL = {v: k for k, v in OUTBOX_MODEL.items()}
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    m.name: tuple(f.name for f in m.fields if f.required) for m in CONTRACT.values()
}


class Contract:
    """The contract as one config file sets it: names on the server, and the value mapping."""

    def __init__(self, settings: OdooSettings | None = None) -> None:
        self._models = dict(settings.models) if settings else {}
        self._fields = {k: dict(v) for k, v in settings.fields.items()} if settings else {}
        self.zone: tzinfo | None = (
            ZoneInfo(settings.timezone) if settings and settings.timezone else None
        )
        self._plans: dict[str, list[tuple[str, ContractField]]] = {}

    def model(self, name: str) -> str:
        """The server's model name for contract model `name`."""
        return self._models.get(name) or CONTRACT[name].default_model

    def field(self, model: str, name: str) -> str | None:
        """The server's field for contract field `name`, or None when the config left it out."""
        mapped = self._fields.get(model, {}).get(name)
        if mapped is None:
            return name
        return mapped or None

    def fields(self, model: str) -> dict[str, str]:
        """Contract field -> server field, for the fields the config keeps."""
        out = {}
        for f in CONTRACT[model].fields:
            server = self.field(model, f.name)
            if server:
                out[f.name] = server
        return out

    def key_field(self, model: str) -> str:
        key = CONTRACT[model].key_field
        assert key is not None, f"{model} has no key field"
        server = self.field(model, key)
        assert server, f"{model}.{key} cannot be left out"  # refused by the settings parser
        return server

    @staticmethod
    def for_outbox(outbox_model: str) -> str | None:
        """The contract model of an outbox row's model name (None: not ours)."""
        return _BY_OUTBOX_MODEL.get(outbox_model)

    def vals(
        self,
        model: str,
        payload: Mapping[str, Any],
        refs: Refs,
        operation: str = "create",
    ) -> dict[str, Any]:
        """Odoo values (server field names) for a create or a write of `payload`.

        A create leaves empty values out (Odoo's defaults apply); a write maps only the fields
        whose payload keys are present, and sends an empty one as False to clear it. Numbers
        are rounded to the precision the seed declares.
        """
        out: dict[str, Any] = {}
        writing = operation == "write"
        for server, f in self._plan(model):
            if writing and not any(k in payload for k in f.keys):
                continue
            try:
                value = f.get(payload, refs)
                if f.digits is not None and value is not None:
                    value = rounded(value, f.digits, f"{model}.{f.name}")
            except MappingError:
                raise
            except (TypeError, ValueError, KeyError) as exc:
                raise MappingError(f"{model}.{f.name}: cannot map {payload!r}: {exc}") from exc
            if value is None:
                if writing:
                    out[server] = False
                continue
            out[server] = value
        return out

    def _plan(self, model: str) -> list[tuple[str, ContractField]]:
        """(server field, contract field) for the fields this config keeps (made once: a
        week's backlog maps 20,000 records)."""
        plan = self._plans.get(model)
        if plan is None:
            plan = [
                (server, f) for f in CONTRACT[model].fields if (server := self.field(model, f.name))
            ]
            self._plans[model] = plan
        return plan
