"""An Odoo server stand-in that speaks Odoo's wire protocols over real HTTP, for tests and the demo.

What it serves is what odoorpc 0.10.1 and Odoo 19's JSON-2 clients send:

- `POST /web/webclient/version_info` (JSON-RPC): the server version, which odoorpc asks first.
- `POST /jsonrpc`: services `common` (login, authenticate, version), `object` (execute,
  execute_kw) and `db` (list, server_version). Odoo 19 deprecates it; `jsonrpc_enabled=False`
  plays the Odoo 22 that removes it.
- `POST /web/session/authenticate` (JSON-RPC), for clients of Odoo < 10 habits.
- `POST /json/2/<model>/<method>` (Odoo >= 19): `Authorization: bearer <api key>`, named
  arguments in the JSON body, the plain result or an error object with a 4xx/5xx status.
- `GET /web/version` (Odoo >= 19).

The contract models (`contract_models()`) live in SQLite, one table per model, with Odoo's
behaviour where the sync depends on it: datetimes as 'YYYY-MM-DD HH:MM:SS' UTC strings, many2one
read back as `[id, display_name]`, empty values as `False`, `write_date` on every change, `active`
records only unless `active_test` is off, and `unique` constraints checked inside the call's one
transaction, so one duplicate fails the whole batch. Errors have Odoo's shapes (JSON-RPC:
`{"code": 200, "message": "Odoo Server Error", "data": {"name": ..., "message": ...}}`).

Faults for tests: `set_down` (connections dropped unanswered), `set_slow`, `fail_next` (HTTP 500
from a proxy), `set_password` (the stored credentials stop working), `refuse` (one record value
refused with a ValidationError or AccessError), `on_commit` (a hook run after a create or write
committed and before the answer leaves: a test kills its client there). `set_cost` models a real
Odoo's price per call and per record (a list of 500 in one create is ~60x faster than 500 calls).

`python -m simulators.odoo_server --port 8069 --animals 500` runs one standalone.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import inspect
import json
import re
import secrets
import socket
import sqlite3
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ODOO_DATETIME = "%Y-%m-%d %H:%M:%S"
ODOO_DATE = "%Y-%m-%d"
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MODEL_NAME_RE = re.compile(r"^[a-z_][a-z0-9_.]*$")
_FIELD_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


# -- the data model ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldDef:
    """One field of a simulated model. `type` is an Odoo field type name."""

    type: str
    string: str = ""
    relation: str | None = None
    selection: tuple[tuple[str, str], ...] = ()
    required: bool = False
    default: Any = None


@dataclass(frozen=True, slots=True)
class ModelDef:
    """One simulated model: its fields and its SQL `unique` constraints (fields, message)."""

    name: str
    description: str
    fields: dict[str, FieldDef]
    unique: tuple[tuple[tuple[str, ...], str], ...] = ()
    rec_name: str = "name"


_AUTO_FIELDS: dict[str, FieldDef] = {
    "id": FieldDef("integer", "ID"),
    "display_name": FieldDef("char", "Display Name"),
    "create_date": FieldDef("datetime", "Created on"),
    "write_date": FieldDef("datetime", "Last Updated on"),
}


def _sel(*pairs: str) -> tuple[tuple[str, str], ...]:
    """Selection pairs from "value:Label" strings."""
    return tuple((p.split(":", 1)[0], p.split(":", 1)[1]) for p in pairs)


def _f(type_: str, string: str = "", **kw: Any) -> FieldDef:
    return FieldDef(type_, string, **kw)


def contract_models() -> dict[str, ModelDef]:
    """The models of the seed's contract as `installer/odoo/milkconsole_dairy` provides them,
    by model name (a test checks this against the real module on a real Odoo 17).

    Tests take this, remove a model or a field, or change one, and hand the result to
    `OdooSimulator(models=)` to play a server whose module differs from the contract.
    `iot.milk_meter` inherits `iot.device` in Odoo (`_inherits`); here it only links to it,
    which is all the console relies on.
    """
    models = [
        ModelDef(
            "res.users",
            "User",
            {"name": _f("char", "Name", required=True), "login": _f("char", "Login")},
        ),
        ModelDef(
            "iot.device",
            "IoT Device",
            {
                "name": _f("char", "Name", required=True),
                "device_id": _f("char", "Device ID", required=True),
                "device_type": _f(
                    "selection",
                    "Device Type",
                    selection=_sel(
                        "milk_meter:Milk Meter", "sensor:Sensor", "gateway:Gateway", "other:Other"
                    ),
                    required=True,
                    default="other",
                ),
                "state": _f(
                    "selection",
                    "State",
                    selection=_sel(
                        "online:Online",
                        "degraded:Degraded",
                        "offline:Offline",
                        "maintenance:Maintenance",
                    ),
                    default="offline",
                ),
                "last_seen": _f("datetime", "Last Seen"),
                "active": _f("boolean", "Active", default=True),
            },
            unique=((("device_id",), "The device ID must be unique."),),
        ),
        ModelDef(
            "iot.device.alert",
            "IoT Device Alert",
            {
                "name": _f("char", "Title"),
                "reference": _f("char", "Reference"),
                "device_id": _f("many2one", "Device", relation="iot.device", required=True),
                "animal_id": _f("many2one", "Animal", relation="farm.animal"),
                "alert_type": _f(
                    "selection",
                    "Alert Type",
                    selection=_sel(
                        "offline:Device Offline",
                        "threshold:Threshold Exceeded",
                        "maintenance:Maintenance Due",
                        "custom:Custom",
                    ),
                    required=True,
                    default="custom",
                ),
                "severity": _f(
                    "selection",
                    "Severity",
                    selection=_sel("low:Low", "warning:Warning", "critical:Critical"),
                    required=True,
                    default="warning",
                ),
                "message": _f("text", "Message"),
                "state": _f(
                    "selection",
                    "State",
                    selection=_sel(
                        "active:Active", "acknowledged:Acknowledged", "resolved:Resolved"
                    ),
                    required=True,
                    default="active",
                ),
                "date": _f("datetime", "Raised"),
                "acknowledged_by": _f("char", "Acknowledged By"),
                "acknowledged_date": _f("datetime", "Acknowledged On"),
                "resolved_by": _f("char", "Resolved By"),
                "resolved_date": _f("datetime", "Resolved On"),
                "resolution_note": _f("text", "Resolution Note"),
            },
            unique=((("reference",), "An alert with this reference already exists."),),
            rec_name="reference",
        ),
        ModelDef(
            "farm.animal",
            "Animal",
            {
                "name": _f("char", "Name", required=True),
                "number": _f("char", "Herd Number"),
                "rfid_tag": _f("char", "RFID Tag"),
                "conductivity_baseline": _f("float", "Conductivity Baseline (mS/cm)"),
                "herd_group": _f("char", "Group"),
                "birth_date": _f("date", "Birth Date"),
                "lactation_number": _f("integer", "Lactation"),
                "last_calving_date": _f("date", "Last Calving"),
                "milk_withheld": _f("boolean", "Keep milk out of tank"),
                "milk_withheld_reason": _f("char", "Reason"),
                "active": _f("boolean", "Active", default=True),
            },
            unique=((("rfid_tag",), "This RFID tag is already assigned to another animal."),),
        ),
        ModelDef(
            "farm.animal.rfid",
            "Animal RFID Tag",
            {
                "animal_id": _f("many2one", "Animal", relation="farm.animal", required=True),
                "rfid_tag": _f("char", "RFID Tag", required=True),
                "active": _f("boolean", "Active", default=True),
            },
            unique=((("rfid_tag",), "This RFID tag is already assigned."),),
            rec_name="rfid_tag",
        ),
        ModelDef(
            "farm.animal.treatment",
            "Animal Treatment",
            {
                "animal_id": _f("many2one", "Animal", relation="farm.animal", required=True),
                "product": _f("char", "Product", required=True),
                "start": _f("datetime", "Start", required=True),
                "withdrawal_hours": _f("float", "Withdrawal (h)"),
                "withdrawal_milkings": _f("integer", "Withdrawal (milkings)"),
                "withdrawal_end": _f("datetime", "Withdrawal End"),
                "note": _f("text", "Note"),
                "recorded_by": _f("char", "Recorded By"),
                "source": _f(
                    "selection",
                    "Source",
                    selection=_sel("manual:Manual", "console:Milk Console"),
                    default="manual",
                ),
                "source_reference": _f("char", "Source Reference"),
                "active": _f("boolean", "Active", default=True),
            },
            unique=((("source_reference",), "This treatment was already recorded."),),
            rec_name="product",
        ),
        ModelDef(
            "farm.pen",
            "Pen",
            {"name": _f("char", "Name", required=True), "code": _f("char", "Code")},
        ),
        ModelDef(
            "iot.milk_meter",
            "IoT Milk Meter",
            {
                "device_id": _f("many2one", "Device", relation="iot.device", required=True),
                "meter_type": _f(
                    "selection",
                    "Meter Type",
                    selection=_sel(
                        "inline:Inline Meter",
                        "jar:Recording Jar",
                        "electronic:Electronic Meter",
                        "robotic:Robotic System",
                    ),
                    default="electronic",
                ),
                "manufacturer": _f(
                    "selection",
                    "Manufacturer",
                    selection=_sel(
                        "delaval:DeLaval",
                        "afimilk:Afimilk",
                        "gea:GEA",
                        "lely:Lely",
                        "boumatic:BouMatic",
                        "other:Other",
                    ),
                    required=True,
                ),
                "model_number": _f("char", "Model Number"),
                "communication_type": _f(
                    "selection",
                    "Communication Type",
                    selection=_sel(
                        "modbus_rtu:Modbus RTU (Serial)",
                        "modbus_tcp:Modbus TCP (Ethernet)",
                        "mqtt:MQTT",
                        "api:REST API",
                    ),
                    required=True,
                    default="modbus_rtu",
                ),
                "modbus_address": _f("integer", "Modbus Slave Address", default=1),
                "modbus_port": _f("char", "Serial Port / IP:Port"),
                "modbus_baudrate": _f(
                    "selection",
                    "Baud Rate",
                    selection=_sel(
                        "9600:9600", "19200:19200", "38400:38400", "57600:57600", "115200:115200"
                    ),
                    default="9600",
                ),
                "modbus_parity": _f(
                    "selection",
                    "Parity",
                    selection=_sel("N:None", "E:Even", "O:Odd"),
                    default="N",
                ),
                "milking_point_count": _f("integer", "Milking Points", default=1),
                "has_rfid_reader": _f("boolean", "Has RFID Reader", default=True),
                "has_conductivity": _f("boolean", "Measures Conductivity", default=True),
                "has_temperature": _f("boolean", "Measures Temperature", default=True),
                "has_flow_sensor": _f("boolean", "Has Flow Sensor", default=True),
                "has_milk_quality": _f("boolean", "Inline Quality Analysis"),
                "flow_calibration_factor": _f("float", "Flow Calibration Factor", default=1.0),
                "conductivity_baseline": _f("float", "Conductivity Baseline (mS/cm)"),
                "last_calibration": _f("datetime", "Last Calibration"),
            },
            unique=((("device_id",), "A device can be one milk meter only."),),
            rec_name="model_number",
        ),
        ModelDef(
            "iot.milk_meter.point",
            "Milk Meter Milking Point",
            {
                "meter_id": _f("many2one", "Meter", relation="iot.milk_meter", required=True),
                "point_number": _f("integer", "Point Number", required=True),
                "name": _f("char", "Point Name"),
                "pen_id": _f("many2one", "Pen/Stall", relation="farm.pen"),
                "position_description": _f("char", "Position Description"),
                "rfid_reader_id": _f("char", "RFID Reader ID"),
                "is_active": _f("boolean", "Active", default=True),
                "is_occupied": _f("boolean", "Occupied"),
                "current_animal_id": _f("many2one", "Current Animal", relation="farm.animal"),
            },
            unique=((("meter_id", "point_number"), "Point number must be unique per meter!"),),
        ),
        ModelDef(
            "farm.milk.production",
            "Milk Production",
            {
                "animal_id": _f("many2one", "Animal", relation="farm.animal", required=True),
                "date": _f("date", "Date", required=True),
                "milking_time": _f(
                    "selection",
                    "Milking Time",
                    selection=_sel("am:Morning", "pm:Evening"),
                    required=True,
                ),
                "quantity": _f("float", "Quantity (L)", required=True),
                "fat_percentage": _f("float", "Fat %"),
                "protein_percentage": _f("float", "Protein %"),
                "somatic_cell_count": _f("integer", "Somatic Cell Count"),
                "source": _f(
                    "selection",
                    "Source",
                    selection=_sel("manual:Manual", "iot_meter:IoT Milk Meter", "import:Import"),
                    default="manual",
                ),
                "source_reference": _f("char", "Source Reference"),
            },
            unique=((("source_reference",), "This production record was already imported."),),
            rec_name="source_reference",
        ),
        ModelDef(
            "farm.health.event",
            "Health Event",
            {
                "animal_id": _f("many2one", "Animal", relation="farm.animal"),
                "event_type": _f(
                    "selection",
                    "Event Type",
                    selection=_sel(
                        "mastitis_indicator:Mastitis Indicator",
                        "blood_indicator:Blood in Milk",
                        "identity_indicator:Identity Check",
                        "low_yield:Low Yield",
                        "treatment:Treatment",
                        "other:Other",
                    ),
                    required=True,
                    default="other",
                ),
                "description": _f("text", "Description"),
                "source": _f(
                    "selection",
                    "Source",
                    selection=_sel("manual:Manual", "iot_milk_meter:IoT Milk Meter"),
                    default="manual",
                ),
                "source_reference": _f("char", "Source Reference"),
                "date": _f("datetime", "Date"),
            },
            unique=((("source_reference",), "This health event was already recorded."),),
            rec_name="source_reference",
        ),
        ModelDef(
            "milk.session",
            "Milking Session",
            {
                "name": _f("char", "Session ID"),
                "meter_id": _f("many2one", "Milk Meter", relation="iot.milk_meter", required=True),
                "animal_id": _f("many2one", "Animal", relation="farm.animal"),
                "milking_point": _f("many2one", "Milking Point", relation="iot.milk_meter.point"),
                "rfid_tag": _f("char", "RFID Tag"),
                "start_time": _f("datetime", "Start Time", required=True),
                "end_time": _f("datetime", "End Time"),
                "duration_seconds": _f("integer", "Duration (seconds)"),
                "current_yield": _f("float", "Current Yield (L)"),
                "total_yield": _f("float", "Total Yield (L)"),
                "current_flow_rate": _f("float", "Current Flow Rate (L/min)"),
                "peak_flow_rate": _f("float", "Peak Flow Rate (L/min)"),
                "avg_flow_rate": _f("float", "Avg Flow Rate (L/min)"),
                "milk_temperature": _f("float", "Milk Temperature (°C)"),
                "conductivity": _f("float", "Conductivity (mS/cm)"),
                "fat_percentage": _f("float", "Fat %"),
                "protein_percentage": _f("float", "Protein %"),
                "lactose_percentage": _f("float", "Lactose %"),
                "somatic_cell_count": _f("integer", "Somatic Cell Count"),
                "blood_detected": _f("boolean", "Blood Detected"),
                "vacuum_level": _f("float", "Vacuum Level (kPa)"),
                "pulsation_rate": _f("integer", "Pulsation Rate (cycles/min)"),
                "quality_grade": _f(
                    "selection",
                    "Quality Grade",
                    selection=_sel("A:Grade A", "B:Grade B", "C:Grade C", "reject:Reject"),
                ),
                "is_abnormal": _f("boolean", "Abnormal"),
                "abnormality_reason": _f("char", "Abnormality Reason"),
                "state": _f(
                    "selection",
                    "Status",
                    selection=_sel(
                        "in_progress:In Progress", "completed:Completed", "cancelled:Cancelled"
                    ),
                    default="in_progress",
                ),
                "production_id": _f(
                    "many2one", "Production Record", relation="farm.milk.production"
                ),
                "milk_destination": _f(
                    "selection",
                    "Milk Destination",
                    selection=_sel("tank:Bulk tank", "diverted:Diverted"),
                    default="tank",
                ),
                "divert_reason": _f("char", "Divert Reason"),
                "divert_confirmed_by": _f("char", "Divert Confirmed By"),
            },
            unique=((("name",), "Session ID must be unique!"),),
        ),
    ]
    return {m.name: m for m in models}


# -- errors with Odoo's names -----------------------------------------------------------------


class OdooFault(Exception):
    """An exception as Odoo serialises it: fully qualified `name`, `message`, JSON-2 status."""

    def __init__(self, name: str, message: str, http_status: int = 500) -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.http_status = http_status


def _validation(message: str) -> OdooFault:
    return OdooFault("odoo.exceptions.ValidationError", message, 422)


def _user_error(message: str) -> OdooFault:
    return OdooFault("odoo.exceptions.UserError", message, 422)


def _access_error(message: str) -> OdooFault:
    return OdooFault("odoo.exceptions.AccessError", message, 403)


def _access_denied() -> OdooFault:
    return OdooFault("odoo.exceptions.AccessDenied", "Access Denied", 403)


def _value_error(message: str) -> OdooFault:
    return OdooFault("builtins.ValueError", message, 500)


def _not_found(message: str) -> OdooFault:
    return OdooFault("werkzeug.exceptions.NotFound", message, 404)


# -- storage ----------------------------------------------------------------------------------


def _now_odoo() -> str:
    return datetime.now(UTC).strftime(ODOO_DATETIME)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table(model: str) -> str:
    return _quote(model.replace(".", "_"))


_SQL_TYPES = {
    "char": "TEXT",
    "text": "TEXT",
    "selection": "TEXT",
    "datetime": "TEXT",
    "date": "TEXT",
    "float": "REAL",
    "integer": "INTEGER",
    "boolean": "INTEGER",
    "many2one": "INTEGER",
}

_OPERATORS = {"=", "!=", "<", "<=", ">", ">=", "in", "not in", "like", "ilike", "=like", "=ilike"}


@dataclass(slots=True)
class _Refusal:
    model: str
    field: str
    value: Any
    fault: OdooFault


class _Store:
    """The simulated database: one SQLite table per model, one lock, one transaction per call."""

    def __init__(self, models: dict[str, ModelDef], path: Path | None) -> None:
        self.models = models
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(
            str(path) if path else ":memory:", check_same_thread=False, isolation_level=None
        )
        self.refusals: list[_Refusal] = []
        for m in models.values():
            cols = ["id INTEGER PRIMARY KEY AUTOINCREMENT", "create_date TEXT", "write_date TEXT"]
            cols += [
                f"{_quote(n)} {_SQL_TYPES.get(f.type, 'TEXT')}"
                for n, f in m.fields.items()
                if n not in _AUTO_FIELDS
            ]
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS {_table(m.name)} ({', '.join(cols)})")
            for i, (fields, _msg) in enumerate(m.unique):
                self.conn.execute(
                    f"CREATE UNIQUE INDEX IF NOT EXISTS {_quote(f'uq_{m.name}_{i}')} "
                    f"ON {_table(m.name)} ({', '.join(_quote(f) for f in fields)})"
                )
            self.conn.execute(
                f"CREATE INDEX IF NOT EXISTS {_quote(f'ix_{m.name}_wd')} "
                f"ON {_table(m.name)} (write_date, id)"
            )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock:
            self.conn.execute("BEGIN")
            try:
                yield
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    # -- helpers ------------------------------------------------------------------------------
    def model(self, name: str) -> ModelDef:
        m = self.models.get(name)
        if m is None:
            # What odoo.service.model.execute_cr raises for an unknown model.
            raise _user_error(f"Object {name} doesn't exist")
        return m

    def _field(self, m: ModelDef, name: str) -> FieldDef:
        f = m.fields.get(name) or _AUTO_FIELDS.get(name)
        if f is None:
            raise _value_error(f"Invalid field {name!r} on model {m.name!r}")
        return f

    def _domain_sql(self, m: ModelDef, domain: Any, context: dict[str, Any]) -> tuple[str, list]:
        if domain in (None, False):
            domain = []
        if not isinstance(domain, list):
            raise _value_error(f"Invalid domain {domain!r}")
        items = list(domain)
        params: list[Any] = []

        def leaf(term: Any) -> str:
            if not isinstance(term, list | tuple) or len(term) != 3:
                raise _value_error(f"Invalid leaf {term!r}")
            name, op, value = term
            op = str(op).lower()
            if op not in _OPERATORS:
                raise _value_error(f"Invalid leaf {term!r}: unknown operator {op!r}")
            f = self._field(m, str(name))
            col = _quote(name)
            if op in ("in", "not in"):
                vals = list(value) if isinstance(value, list | tuple) else [value]
                real = [self._to_sql(f, v, name, m, check=False) for v in vals if v is not False]
                parts = []
                if real:
                    params.extend(real)
                    parts.append(f"{col} {op.upper()} ({', '.join('?' * len(real))})")
                if len(real) != len(vals):
                    parts.append(f"{col} IS {'NOT ' if op == 'not in' else ''}NULL")
                if not parts:
                    return "0" if op == "in" else "1"
                return "(" + (" OR " if op == "in" else " AND ").join(parts) + ")"
            if value is False and op in ("=", "!="):
                if f.type == "boolean":
                    return f"COALESCE({col}, 0) {'= 0' if op == '=' else '!= 0'}"
                return f"{col} IS {'NOT ' if op == '!=' else ''}NULL"
            if op in ("like", "ilike"):
                params.append(f"%{value}%")
                return f"{col} LIKE ?"
            if op in ("=like", "=ilike"):
                params.append(value)
                return f"{col} LIKE ?"
            params.append(self._to_sql(f, value, name, m, check=False))
            sql_op = "!=" if op == "!=" else op
            if f.type == "boolean":
                return f"COALESCE({col}, 0) {sql_op} ?"
            return f"{col} {sql_op} ?"

        def parse(pos: int) -> tuple[str, int]:
            if pos >= len(items):
                raise _value_error(f"Invalid domain {domain!r}: missing operand")
            tok = items[pos]
            if tok in ("&", "|"):
                a, pos = parse(pos + 1)
                b, pos = parse(pos)
                return f"({a} {'AND' if tok == '&' else 'OR'} {b})", pos
            if tok == "!":
                a, pos = parse(pos + 1)
                return f"(NOT {a})", pos
            return leaf(tok), pos + 1

        terms: list[str] = []
        pos = 0
        while pos < len(items):
            sql, pos = parse(pos)
            terms.append(sql)
        explicit = any(isinstance(t, list | tuple) and t and t[0] == "active" for t in items)
        if "active" in m.fields and context.get("active_test", True) and not explicit:
            terms.append('COALESCE("active", 1) = 1')
        return (" AND ".join(terms) if terms else "1"), params

    def _order_sql(self, m: ModelDef, order: Any) -> str:
        if not order:
            return "id ASC"
        parts = []
        for chunk in str(order).split(","):
            words = chunk.split()
            if not words or len(words) > 2:
                raise _value_error(f"Invalid order {order!r}")
            self._field(m, words[0])
            direction = words[1].upper() if len(words) == 2 else "ASC"
            if direction not in ("ASC", "DESC"):
                raise _value_error(f"Invalid order {order!r}")
            parts.append(f"{_quote(words[0])} {direction}")
        return ", ".join(parts)

    def _to_sql(self, f: FieldDef, value: Any, name: str, m: ModelDef, check: bool = True) -> Any:
        """An RPC value converted for storage; a value Odoo would refuse raises its error."""
        t = f.type
        if t == "boolean":
            return 1 if value else 0
        if value is False or value is None:
            return None
        if t in ("char", "text"):
            if not isinstance(value, str):
                return str(value)
            return value
        if t == "boolean":
            return 1 if value else 0
        if t == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _value_error(f"could not convert string to float: {value!r}")
            return float(value)
        if t == "integer":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _value_error(f"invalid literal for int() with base 10: {value!r}")
            return int(value)
        if t == "datetime":
            if not isinstance(value, str) or not (
                _DATETIME_RE.match(value) or _DATE_RE.match(value)
            ):
                raise _value_error(f"time data {value!r} does not match format '{ODOO_DATETIME}'")
            return value[:19] if len(value) > 10 else value + " 00:00:00"
        if t == "date":
            if not isinstance(value, str) or not _DATE_RE.match(value[:10]):
                raise _value_error(f"time data {value!r} does not match format '{ODOO_DATE}'")
            return value[:10]
        if t == "selection":
            keys = [k for k, _ in f.selection]
            if value not in keys:
                raise _value_error(f"Wrong value for {m.name}.{name}: {value!r}")
            return value
        if t == "many2one":
            if isinstance(value, list | tuple) and value:
                value = value[0]
            if isinstance(value, bool) or not isinstance(value, int):
                raise _value_error(f"Wrong value for {m.name}.{name}: {value!r}")
            if check and f.relation:
                target = self.models.get(f.relation)
                row = (
                    self.conn.execute(
                        f"SELECT 1 FROM {_table(f.relation)} WHERE id = ?", (value,)
                    ).fetchone()
                    if target
                    else None
                )
                if row is None:
                    # What a foreign key violation comes back as through Odoo's RPC layer.
                    raise _validation(
                        "The operation cannot be completed: another model requires the record "
                        f"being deleted or the record does not exist.\n\nModel: {m.description} "
                        f"({m.name}), Field: {f.string} ({name}), Value: {f.relation}({value},)"
                    )
            return value
        return value

    def _from_sql(self, f: FieldDef, value: Any, cache: dict[tuple[str, int], str]) -> Any:
        t = f.type
        if t == "boolean":
            return bool(value)
        if t == "float":
            return float(value) if value is not None else 0.0
        if t == "integer":
            return int(value) if value is not None else 0
        if value is None:
            return False
        if t == "many2one" and f.relation:
            key = (f.relation, int(value))
            if key not in cache:
                target = self.models.get(f.relation)
                name = f"{f.relation},{value}"
                if target is not None:
                    row = self.conn.execute(
                        f"SELECT {_quote(target.rec_name)} FROM {_table(f.relation)} WHERE id = ?",
                        (value,),
                    ).fetchone()
                    if row and row[0]:
                        name = str(row[0])
                cache[key] = name
            return [int(value), cache[key]]
        return value

    def _check_refusals(self, m: ModelDef, vals: dict[str, Any]) -> None:
        for r in self.refusals:
            if r.model == m.name and r.field in vals and vals[r.field] == r.value:
                raise r.fault

    def _prepare(self, m: ModelDef, vals: Any, creating: bool) -> dict[str, Any]:
        if not isinstance(vals, dict):
            raise _value_error(f"Invalid values {vals!r}: a dictionary is expected")
        self._check_refusals(m, vals)
        out: dict[str, Any] = {}
        for name, value in vals.items():
            if name in _AUTO_FIELDS:
                continue
            f = m.fields.get(name)
            if f is None:
                raise _value_error(f"Invalid field {name!r} on model {m.name!r}")
            out[name] = self._to_sql(f, value, name, m)
        if creating:
            for name, f in m.fields.items():
                if name not in out and f.default is not None:
                    out[name] = self._to_sql(f, f.default, name, m)
        for name, f in m.fields.items():
            if f.required and (name in out or creating) and out.get(name) in (None, ""):
                raise _validation(
                    "The operation cannot be completed:\n"
                    "- Create/update: a mandatory field is not set.\n"
                    "- Delete: another model requires the record being deleted. If possible, "
                    f"archive it instead.\n\nModel: {m.description} ({m.name})\n"
                    f"Field: {f.string} ({name})"
                )
        return out

    def _unique_fault(self, m: ModelDef, exc: sqlite3.IntegrityError) -> OdooFault:
        text = str(exc)
        for fields, message in m.unique:
            if all(f"{m.name.replace('.', '_')}.{f}" in text for f in fields):
                return _validation(message)
        return _validation(f"The operation cannot be completed: {text}")

    # -- ORM methods --------------------------------------------------------------------------
    def search(
        self,
        model: str,
        domain: Any = None,
        offset: int = 0,
        limit: int | None = None,
        order: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> list[int]:
        if model == "ir.model":
            return [i + 1 for i, _ in enumerate(self._ir_model(domain))]
        m = self.model(model)
        where, params = self._domain_sql(m, domain, context or {})
        sql = f"SELECT id FROM {_table(model)} WHERE {where} ORDER BY {self._order_sql(m, order)}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        if offset:
            sql += f"{'' if limit else ' LIMIT -1'} OFFSET {int(offset)}"
        with self.lock:
            return [r[0] for r in self.conn.execute(sql, params)]

    def read(
        self, model: str, ids: list[int], fields: list[str] | None = None
    ) -> list[dict[str, Any]]:
        m = self.model(model)
        names = list(fields) if fields else list(m.fields)
        for n in names:
            self._field(m, n)
        cols = [n for n in names if n not in ("id", "display_name")]
        if not ids:
            return []
        cache: dict[tuple[str, int], str] = {}
        out: dict[int, dict[str, Any]] = {}
        with self.lock:
            for start in range(0, len(ids), 500):
                chunk = [int(i) for i in ids[start : start + 500]]
                sel = ", ".join(["id", _quote(m.rec_name), *(_quote(c) for c in cols)])
                rows = self.conn.execute(
                    f"SELECT {sel} FROM {_table(model)} WHERE id IN "
                    f"({', '.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for row in rows:
                    rec: dict[str, Any] = {"id": row[0]}
                    for n, v in zip(cols, row[2:], strict=True):
                        rec[n] = self._from_sql(self._field(m, n), v, cache)
                    if "display_name" in names:
                        rec["display_name"] = row[1] or f"{model},{row[0]}"
                    out[row[0]] = rec
        return [out[i] for i in ids if i in out]

    def search_read(
        self,
        model: str,
        domain: Any = None,
        fields: list[str] | None = None,
        offset: int = 0,
        limit: int | None = None,
        order: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        if model == "ir.model":
            rows = self._ir_model(domain)
            return [
                {"id": i + 1, **{k: v for k, v in r.items() if not fields or k in fields}}
                for i, r in enumerate(rows)
            ]
        ids = self.search(model, domain, offset, limit, order, context)
        return self.read(model, ids, fields)

    def search_count(
        self, model: str, domain: Any = None, context: dict[str, Any] | None = None
    ) -> int:
        return len(self.search(model, domain, context=context))

    def create(self, model: str, vals_list: Any) -> list[int]:
        m = self.model(model)
        if isinstance(vals_list, dict):
            vals_list = [vals_list]
        if not isinstance(vals_list, list):
            raise _value_error(f"Invalid values {vals_list!r}")
        now = _now_odoo()
        ids: list[int] = []
        # One transaction for the whole list: Odoo's create() of a list is one statement batch
        # in one cursor, so one bad record fails them all.
        with self.transaction():
            for vals in vals_list:
                row = self._prepare(m, vals, creating=True)
                row["create_date"] = now
                row["write_date"] = now
                cols = ", ".join(_quote(c) for c in row)
                try:
                    cur = self.conn.execute(
                        f"INSERT INTO {_table(model)} ({cols}) VALUES "
                        f"({', '.join('?' * len(row))})",
                        list(row.values()),
                    )
                except sqlite3.IntegrityError as exc:
                    raise self._unique_fault(m, exc) from exc
                assert cur.lastrowid is not None
                ids.append(cur.lastrowid)
        return ids

    def write(self, model: str, ids: list[int], vals: Any) -> bool:
        m = self.model(model)
        with self.transaction():
            row = self._prepare(m, vals, creating=False)
            row["write_date"] = _now_odoo()
            sets = ", ".join(f"{_quote(c)} = ?" for c in row)
            for i in ids:
                try:
                    cur = self.conn.execute(
                        f"UPDATE {_table(model)} SET {sets} WHERE id = ?", [*row.values(), i]
                    )
                except sqlite3.IntegrityError as exc:
                    raise self._unique_fault(m, exc) from exc
                if cur.rowcount == 0:
                    raise OdooFault(
                        "odoo.exceptions.MissingError",
                        "Record does not exist or has been deleted.\n"
                        f"(Record: {model}({i},), User: 2)",
                        404,
                    )
        return True

    def unlink(self, model: str, ids: list[int]) -> bool:
        self.model(model)
        with self.transaction():
            for i in ids:
                self.conn.execute(f"DELETE FROM {_table(model)} WHERE id = ?", (i,))
        return True

    def fields_get(
        self, model: str, allfields: list[str] | None = None, attributes: list[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        m = self.model(model)
        out: dict[str, dict[str, Any]] = {}
        for name, f in {**_AUTO_FIELDS, **m.fields}.items():
            if allfields and name not in allfields:
                continue
            desc: dict[str, Any] = {
                "type": f.type,
                "string": f.string or name,
                "required": f.required,
                "readonly": name in _AUTO_FIELDS,
            }
            if f.relation:
                desc["relation"] = f.relation
            if f.selection:
                desc["selection"] = [list(s) for s in f.selection]
            out[name] = {k: v for k, v in desc.items() if not attributes or k in attributes}
        return out

    def default_get(self, model: str, fields_list: list[str]) -> dict[str, Any]:
        m = self.model(model)
        out: dict[str, Any] = {}
        for name in fields_list:
            f = m.fields.get(name)
            if f is not None and f.default is not None:
                out[name] = f.default
        return out

    def _ir_model(self, domain: Any) -> list[dict[str, Any]]:
        rows = [{"model": m.name, "name": m.description} for m in self.models.values()]
        for term in domain or []:
            if isinstance(term, list | tuple) and len(term) == 3 and term[0] == "model":
                op, value = term[1], term[2]
                if op == "=":
                    rows = [r for r in rows if r["model"] == value]
                elif op == "in":
                    rows = [r for r in rows if r["model"] in value]
        return rows


# -- the server -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Faults:
    down: bool = False
    slow_s: float = 0.0
    fail_next: int = 0
    fail_status: int = 500
    call_overhead_s: float = 0.0
    per_record_s: float = 0.0


@dataclass(slots=True)
class _Users:
    login: str
    password: str
    api_key: str
    uid: int = 2
    name: str = "Milk Console"


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, addr: tuple[str, int], sim: OdooSimulator) -> None:
        self.sim = sim
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.sim.tls_context is not None:
            # The handshake happens on the handler thread (finish_request), not here, so one
            # slow client cannot block the accept loop.
            sock = self.sim.tls_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.sockets_lock:
            self.open_sockets.add(sock)
        return sock, addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            if isinstance(request, ssl.SSLSocket):
                request.settimeout(10)
                request.do_handshake()
                request.settimeout(None)
            super().finish_request(request, client_address)
        except (ssl.SSLError, OSError):
            pass

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self.sockets_lock:
            socks = list(self.open_sockets)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class OdooSimulator:
    """An Odoo server on a real TCP port. Use as a context manager or `start()` / `stop()`.

    `version` is the Odoo series it claims ('16.0' ... '19.0'); JSON-2 exists from 19.0.
    Credentials: `login` / `password`, and `api_key`, which (as in a real Odoo) also works as the
    password over JSON-RPC. `port=0` picks a free port; `stop()` then `start()` keeps the port.
    """

    def __init__(
        self,
        *,
        version: str = "17.0",
        database: str = "farm",
        login: str = "admin",
        password: str = "admin",
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        models: dict[str, ModelDef] | None = None,
        db_path: Path | None = None,
        jsonrpc_enabled: bool = True,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.version = version
        self.major = int(version.split(".")[0])
        self.database = database
        self.user = _Users(login, password, api_key or secrets.token_hex(20))
        self.host = host
        self.port = port
        self.jsonrpc_enabled = jsonrpc_enabled
        self.store = _Store(models or contract_models(), db_path)
        self.faults = _Faults()
        self.calls: Counter[tuple[str, str]] = Counter()
        self.requests = 0
        self.on_commit: Callable[[str, str, list[int]], None] | None = None
        self._lock = threading.Lock()
        self.tls_context: ssl.SSLContext | None = None
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.tls_context = ctx
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        with self.store.transaction():
            now = _now_odoo()
            self.store.conn.execute(
                "INSERT OR IGNORE INTO res_users (id, name, login, create_date, write_date) "
                "VALUES (?, ?, ?, ?, ?)",
                (self.user.uid, self.user.name, login, now, now),
            )

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        scheme = "https" if self.tls_context else "http"
        host = "localhost" if self.tls_context and self.host == "127.0.0.1" else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def api_key(self) -> str:
        return self.user.api_key

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> OdooSimulator:
        if self._server is not None:
            return self
        server = _HTTPServer((self.host, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection (as a server that went away)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.drop_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OdooSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults -------------------------------------------------------------------------------
    def set_down(self, down: bool = True) -> None:
        """While down, every connection is dropped without an answer."""
        self.faults.down = down
        if down and self._server is not None:
            self._server.drop_connections()

    def set_slow(self, seconds: float) -> None:
        """Answer every request `seconds` late (a client timeout shorter than that fails)."""
        self.faults.slow_s = seconds

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """The next `count` requests get an HTTP `status` with an HTML body, as from a proxy."""
        with self._lock:
            self.faults.fail_next = count
            self.faults.fail_status = status

    def set_password(self, password: str, api_key: str | None = None) -> None:
        """Change the user's credentials: the ones a client holds stop working."""
        self.user.password = password
        if api_key is not None:
            self.user.api_key = api_key

    def set_cost(self, call_overhead_s: float = 0.0, per_record_s: float = 0.0) -> None:
        """Charge each RPC call a fixed time and each created/written record a time of its own."""
        self.faults.call_overhead_s = call_overhead_s
        self.faults.per_record_s = per_record_s

    def refuse(
        self,
        model: str,
        field_name: str,
        value: Any,
        message: str = "Invalid value",
        error: str = "ValidationError",
    ) -> None:
        """Refuse any create or write whose `field_name` equals `value`, with Odoo's error."""
        fault = _access_error(message) if error == "AccessError" else _validation(message)
        with self.store.lock:
            self.store.refusals.append(_Refusal(model, field_name, value, fault))

    def clear_refusals(self) -> None:
        with self.store.lock:
            self.store.refusals.clear()

    # -- direct access (tests, seeding) -------------------------------------------------------
    def records(
        self,
        model: str,
        domain: list[Any] | None = None,
        fields: list[str] | None = None,
        active_test: bool = False,
    ) -> list[dict[str, Any]]:
        return self.store.search_read(
            model, domain or [], fields, context={"active_test": active_test}
        )

    def count(self, model: str, domain: list[Any] | None = None) -> int:
        return self.store.search_count(model, domain or [], context={"active_test": False})

    def create(self, model: str, vals: dict[str, Any] | list[dict[str, Any]]) -> list[int]:
        return self.store.create(model, vals)

    def write(self, model: str, ids: list[int], vals: dict[str, Any]) -> None:
        self.store.write(model, ids, vals)

    def seed_herd(self, cows: int, *, first_tag: int = 982000000000001) -> list[int]:
        """Create `cows` animals numbered and named '1', '2', ... with 15-digit tags; returns
        their ids."""
        vals = [
            {
                "name": str(i + 1),
                "number": str(i + 1),
                "rfid_tag": str(first_tag + i),
                "conductivity_baseline": round(4.6 + (i % 7) * 0.1, 2),
            }
            for i in range(cows)
        ]
        return self.store.create("farm.animal", vals)

    def seed_devices(self, device_ids: list[str]) -> list[int]:
        """Devices a farm registered by hand before the console did (the console then adds
        its `iot.milk_meter` to each)."""
        return self.store.create(
            "iot.device",
            [
                {"name": f"Milk meter {d}", "device_id": d, "device_type": "milk_meter"}
                for d in device_ids
            ],
        )

    # -- dispatch -----------------------------------------------------------------------------
    def _count(self, model: str, method: str) -> None:
        with self._lock:
            self.calls[(model, method)] += 1

    def _cost(self, method: str, args: list[Any], kwargs: dict[str, Any]) -> float:
        records = 0
        if method == "create":
            v = kwargs.get("vals_list", args[0] if args else [])
            records = len(v) if isinstance(v, list) else 1
        elif method == "write":
            ids = kwargs.get("ids", args[0] if args else [])
            records = len(ids) if isinstance(ids, list) else 1
        return self.faults.call_overhead_s + self.faults.per_record_s * records

    def call(
        self,
        model: str,
        method: str,
        ids: list[int] | None,
        args: list[Any],
        kwargs: dict[str, Any],
    ) -> Any:
        """Run one ORM method as Odoo's RPC layer would (ids given for record methods)."""
        self._count(model, method)
        cost = self._cost(method, [ids, *args] if ids is not None else args, kwargs)
        if cost:
            time.sleep(cost)
        context = kwargs.pop("context", None) or {}
        if not isinstance(context, dict):
            raise _value_error(f"Invalid context {context!r}")
        if model == "res.users" and method == "context_get":
            return {"lang": "en_US", "tz": "UTC", "uid": self.user.uid}
        if model != "ir.model":
            self.store.model(model)
        record_methods = {"read", "write", "unlink"}
        methods: dict[str, Callable[..., Any]] = {
            "search_read": self.store.search_read,
            "search": self.store.search,
            "search_count": self.store.search_count,
            "create": self.store.create,
            "fields_get": self.store.fields_get,
            "default_get": self.store.default_get,
            "read": self.store.read,
            "write": self.store.write,
            "unlink": self.store.unlink,
        }
        fn = methods.get(method)
        if fn is None:
            raise OdooFault(
                "builtins.AttributeError",
                f"The method '{method}' does not exist on the model '{model}'",
                404,
            )
        if method in ("search_read", "search", "search_count"):
            kwargs["context"] = context
        call_args: list[Any] = [model]
        if method in record_methods:
            call_args.append(list(ids or []))
        call_args.extend(args)
        try:
            inspect.signature(fn).bind(*call_args, **kwargs)
        except TypeError as exc:
            raise OdooFault("builtins.TypeError", str(exc), 422) from exc
        result = fn(*call_args, **kwargs)
        if method in ("create", "write") and self.on_commit is not None:
            self.on_commit(model, method, result if method == "create" else list(ids or []))
        return result

    def check_password(self, login: str, password: str) -> int | None:
        if login == self.user.login and password in (self.user.password, self.user.api_key):
            return self.user.uid
        return None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffered: headers and body leave in one write. Two small writes on a kept-alive
    # connection meet the client's delayed ACK (Nagle) and stall each answer ~40 ms.
    wbufsize = -1
    server: _HTTPServer
    server_version = "Werkzeug/3.0.1"
    sys_version = "Python/3.11"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests and the demo want quiet; faults are visible in the client's behaviour

    @property
    def sim(self) -> OdooSimulator:
        return self.server.sim

    # -- plumbing -----------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json; charset=utf-8")

    def _send_html(self, status: int, title: str, text: str) -> None:
        body = (
            "<!doctype html>\n<html lang=en>\n"
            f"<title>{status} {title}</title>\n<h1>{title}</h1>\n<p>{text}</p>\n"
        ).encode()
        self._send(status, body, "text/html; charset=utf-8")

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _pre(self) -> bool:
        """Apply the faults; False when the request got no normal answer."""
        with self.sim._lock:
            self.sim.requests += 1
            failing = self.sim.faults.fail_next > 0
            if failing:
                self.sim.faults.fail_next -= 1
            status = self.sim.faults.fail_status
        if self.sim.faults.down:
            self._drop()
            return False
        if self.sim.faults.slow_s:
            time.sleep(self.sim.faults.slow_s)
        if failing:
            self._read_body()
            self._send_html(status, "Internal Server Error", "The server is overloaded.")
            return False
        return True

    # -- routes -------------------------------------------------------------------------------
    def do_GET(self) -> None:
        if not self._pre():
            return
        if self.path.split("?")[0] == "/web/version" and self.sim.major >= 19:
            self._send_json(
                200, {"version_info": self._version_info(), "version": self.sim.version}
            )
            return
        self._send_html(404, "Not Found", "The requested URL was not found on the server.")

    def do_POST(self) -> None:
        if not self._pre():
            return
        path = self.path.split("?")[0]
        raw = self._read_body()
        try:
            if path.startswith("/json/2/") and self.sim.major >= 19:
                self._json2(path, raw)
            elif path == "/jsonrpc" and self.sim.jsonrpc_enabled:
                self._jsonrpc(raw, self._rpc_service)
            elif path == "/web/webclient/version_info":
                self._jsonrpc(raw, lambda _p: self._version())
            elif path == "/web/session/authenticate" and self.sim.jsonrpc_enabled:
                self._jsonrpc(raw, self._session_authenticate)
            else:
                self._send_html(404, "Not Found", "The requested URL was not found on the server.")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _version_info(self) -> list[Any]:
        return [self.sim.major, 0, 0, "final", 0, ""]

    def _version(self) -> dict[str, Any]:
        return {
            "server_version": self.sim.version,
            "server_version_info": self._version_info(),
            "server_serie": self.sim.version,
            "protocol_version": 1,
        }

    # -- JSON-RPC -----------------------------------------------------------------------------
    def _jsonrpc(self, raw: bytes, handler: Callable[[dict[str, Any]], Any]) -> None:
        req_id: Any = None
        try:
            req = json.loads(raw or b"{}")
            req_id = req.get("id")
            params = req.get("params") or {}
            result = handler(params)
            self._send_json(200, {"jsonrpc": "2.0", "id": req_id, "result": result})
        except OdooFault as exc:
            self._send_json(200, {"jsonrpc": "2.0", "id": req_id, "error": _rpc_error(exc)})
        except json.JSONDecodeError as exc:
            self._send_html(400, "Bad Request", f"Invalid JSON data: {exc}")
        except Exception as exc:
            fault = OdooFault(f"builtins.{type(exc).__name__}", str(exc))
            self._send_json(200, {"jsonrpc": "2.0", "id": req_id, "error": _rpc_error(fault)})

    def _session_authenticate(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("db") != self.sim.database:
            raise _access_denied()
        uid = self.sim.check_password(str(params.get("login")), str(params.get("password")))
        if uid is None:
            raise _access_denied()
        return {
            "uid": uid,
            "db": self.sim.database,
            "username": self.sim.user.login,
            "user_context": {"lang": "en_US", "tz": "UTC", "uid": uid},
            "server_version": self.sim.version,
            "server_version_info": self._version_info(),
        }

    def _rpc_service(self, params: dict[str, Any]) -> Any:
        service = params.get("service")
        method = params.get("method")
        args = list(params.get("args") or [])
        if service == "common":
            if method == "version":
                return self._version()
            if method in ("login", "authenticate"):
                if len(args) < 3:
                    raise OdooFault("builtins.TypeError", f"{method}() missing arguments")
                db, login, password = args[0], args[1], args[2]
                self._check_db(db)
                uid = self.sim.check_password(str(login), str(password))
                return uid if uid is not None else False
            raise OdooFault("builtins.KeyError", f"Method not available {method}")
        if service == "db":
            if method == "list":
                return [self.sim.database]
            if method == "server_version":
                return self.sim.version
            raise OdooFault("builtins.KeyError", f"Method not available {method}")
        if service == "object":
            if method not in ("execute", "execute_kw"):
                raise OdooFault("builtins.NameError", f"Method not available {method}")
            if len(args) < 5:
                raise OdooFault("builtins.TypeError", f"{method}() missing arguments")
            db, uid, password, model, orm_method = args[:5]
            self._check_db(db)
            if self.sim.check_password(self.sim.user.login, str(password)) != uid:
                raise _access_denied()
            rest = args[5:]
            if method == "execute_kw":
                call_args = list(rest[0]) if rest else []
                call_kwargs = dict(rest[1]) if len(rest) > 1 and rest[1] else {}
            else:
                call_args, call_kwargs = list(rest), {}
            ids = None
            if orm_method in ("read", "write", "unlink"):
                if not call_args:
                    raise OdooFault("builtins.TypeError", f"{orm_method}() missing ids")
                first = call_args.pop(0)
                ids = first if isinstance(first, list) else [first]
            return self.sim.call(str(model), str(orm_method), ids, call_args, call_kwargs)
        raise OdooFault("builtins.Exception", f"No such service: {service!r}")

    def _check_db(self, db: Any) -> None:
        if db != self.sim.database:
            raise OdooFault(
                "psycopg2.OperationalError",
                f'connection to server failed: FATAL:  database "{db}" does not exist',
            )

    # -- JSON-2 -------------------------------------------------------------------------------
    def _json2(self, path: str, raw: bytes) -> None:
        parts = path[len("/json/2/") :].split("/")
        if len(parts) != 2 or not all(parts):
            self._send_json_error(_not_found("Did you mean POST /json/2/<model>/<method>?"))
            return
        model, method = parts
        auth = self.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.sim.user.api_key:
            self._send_json_error(
                OdooFault("werkzeug.exceptions.Unauthorized", "Invalid apikey", 401)
            )
            return
        db = self.headers.get("X-Odoo-Database")
        if db is not None and db != self.sim.database:
            self._send_json_error(_not_found(f"database {db!r} not found"))
            return
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            self._send_json_error(OdooFault("werkzeug.exceptions.BadRequest", "Bad Request", 400))
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise TypeError
        except (ValueError, TypeError):
            self._send_json_error(
                OdooFault(
                    "werkzeug.exceptions.BadRequest",
                    "could not parse the body, expecting a json object",
                    400,
                )
            )
            return
        if model not in self.sim.store.models and model != "ir.model":
            self._send_json_error(_not_found(f"the model {model!r} does not exist"))
            return
        ids = body.pop("ids", None)
        kwargs = dict(body)
        if method == "write" and "vals" not in kwargs:
            self._send_json_error(
                OdooFault(
                    "werkzeug.exceptions.UnprocessableEntity",
                    "missing a required argument: 'vals'",
                    422,
                )
            )
            return
        try:
            result = self.sim.call(model, method, list(ids) if ids else [], [], kwargs)
        except OdooFault as exc:
            self._send_json_error(exc)
            return
        except Exception as exc:
            self._send_json_error(OdooFault(f"builtins.{type(exc).__name__}", str(exc), 500))
            return
        self._send_json(200, result)

    def _send_json_error(self, exc: OdooFault) -> None:
        self._send_json(
            exc.http_status,
            {
                "name": exc.name,
                "message": exc.message,
                "arguments": [exc.message],
                "context": {},
                "debug": _debug(exc),
            },
        )


def _debug(exc: OdooFault) -> str:
    return (
        "Traceback (most recent call last):\n"
        '  File "/opt/odoo/odoo/service/model.py", line 176, in retrying\n'
        "    result = func()\n"
        f"{exc.name}: {exc.message}\n"
    )


def _rpc_error(exc: OdooFault) -> dict[str, Any]:
    return {
        "code": 200,
        "message": "Odoo Server Error",
        "data": {
            "name": exc.name,
            "debug": _debug(exc),
            "message": exc.message,
            "arguments": [exc.message],
            "context": {},
        },
    }


def make_self_signed_cert(directory: Path, hostname: str = "localhost") -> tuple[Path, Path]:
    """A throw-away certificate for `hostname` and 127.0.0.1 (needs the openssl command)."""
    import subprocess

    cert, key = directory / "odoo-sim.crt", directory / "odoo-sim.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={hostname}",
            "-addext",
            f"subjectAltName=DNS:{hostname},IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="A simulated Odoo server for Milk Console.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8069)
    p.add_argument("--version", default="17.0", help="Odoo series to claim (16.0 .. 19.0)")
    p.add_argument("--database", default="farm")
    p.add_argument("--login", default="admin")
    p.add_argument("--password", default="admin")
    p.add_argument("--api-key", default=None)
    p.add_argument("--animals", type=int, default=0, help="seed this many cows")
    p.add_argument("--devices", default="", help="comma-separated meter device ids to seed")
    p.add_argument("--sqlite", type=Path, default=None, help="keep the data in this file")
    args = p.parse_args(argv)
    sim = OdooSimulator(
        version=args.version,
        database=args.database,
        login=args.login,
        password=args.password,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        db_path=args.sqlite,
    )
    if args.animals and sim.count("farm.animal") == 0:
        sim.seed_herd(args.animals)
    if args.devices:
        known = {r["device_id"] for r in sim.records("iot.device", fields=["device_id"])}
        new = [d for d in args.devices.split(",") if d and d not in known]
        if new:
            sim.seed_devices(new)
    sim.start()
    print(f"simulated Odoo {args.version} at {sim.url} database {args.database!r}", flush=True)
    print(f"login {args.login!r}, API key {sim.api_key}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sim.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
