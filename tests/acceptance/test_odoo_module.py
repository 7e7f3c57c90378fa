"""The Odoo module `milkconsole_dairy` on a real Odoo 17: the contract's models, fields,
constraints and computed values, read back over JSON-RPC; and the harness's own fault tools.

One server for the whole session (tests/acceptance/real_odoo.py); every test makes its own
records under a fresh tag, so tests share the database without seeing each other's data.
"""

from __future__ import annotations

import re
import socket
import urllib.error
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.real_odoo import (
    SERVE_ENV,
    OdooGate,
    OdooRpc,
    OdooRpcError,
    RealOdoo,
    _serve_or_fail,
    find_serve,
    frozen_odoo,
    wait_until_answers,
)

pytestmark = pytest.mark.real_odoo

VALIDATION = "odoo.exceptions.ValidationError"
DELETE_REFUSED = "another model requires the record being deleted"


# -- the contract, as the spec (docs of the seed) states it ----------------------------------


def sel(*pairs: tuple[str, str], **attrs: Any) -> dict[str, Any]:
    return {"type": "selection", "selection": [list(p) for p in pairs], **attrs}


def m2o(relation: str, **attrs: Any) -> dict[str, Any]:
    return {"type": "many2one", "relation": relation, **attrs}


def o2m(relation: str, relation_field: str) -> dict[str, Any]:
    return {"type": "one2many", "relation": relation, "relation_field": relation_field}


def fl(digits: tuple[int, int] | None = None, **attrs: Any) -> dict[str, Any]:
    # fields_get lists digits only for a float that has them
    return {"type": "float", "digits": list(digits) if digits else None, **attrs}


def f(type_: str, **attrs: Any) -> dict[str, Any]:
    return {"type": type_, **attrs}


CONTRACT: dict[str, dict[str, dict[str, Any]]] = {
    "iot.device": {
        "name": f("char", required=True),
        "device_id": f("char", string="Device ID", required=True),
        "device_type": sel(
            ("milk_meter", "Milk Meter"),
            ("sensor", "Sensor"),
            ("gateway", "Gateway"),
            ("other", "Other"),
            required=True,
        ),
        "state": sel(
            ("online", "Online"),
            ("degraded", "Degraded"),
            ("offline", "Offline"),
            ("maintenance", "Maintenance"),
        ),
        "last_seen": f("datetime"),
        "active": f("boolean"),
        "alert_ids": o2m("iot.device.alert", "device_id"),
    },
    "iot.device.alert": {
        "name": f("char", string="Title"),
        "reference": f("char"),
        "device_id": m2o("iot.device", required=True),
        "animal_id": m2o("farm.animal"),
        "alert_type": sel(
            ("offline", "Device Offline"),
            ("threshold", "Threshold Exceeded"),
            ("maintenance", "Maintenance Due"),
            ("custom", "Custom"),
            required=True,
        ),
        "severity": sel(
            ("low", "Low"), ("warning", "Warning"), ("critical", "Critical"), required=True
        ),
        "message": f("text"),
        "state": sel(
            ("active", "Active"),
            ("acknowledged", "Acknowledged"),
            ("resolved", "Resolved"),
            required=True,
        ),
        "date": f("datetime", string="Raised"),
        "acknowledged_by": f("char"),
        "acknowledged_date": f("datetime"),
        "resolved_by": f("char"),
        "resolved_date": f("datetime"),
        "resolution_note": f("text"),
    },
    "farm.pen": {"name": f("char", required=True), "code": f("char")},
    "farm.animal": {
        "name": f("char", string="Name", required=True),
        "number": f("char", string="Herd Number"),
        "rfid_tag": f("char", string="RFID Tag"),
        "rfid_ids": o2m("farm.animal.rfid", "animal_id"),
        "conductivity_baseline": fl((6, 3)),
        "herd_group": f("char", string="Group"),
        "birth_date": f("date"),
        "lactation_number": f("integer"),
        "last_calving_date": f("date"),
        "milk_withheld": f("boolean", string="Keep milk out of tank"),
        "milk_withheld_reason": f("char"),
        "active": f("boolean"),
    },
    "farm.animal.rfid": {
        "animal_id": m2o("farm.animal", required=True),
        "rfid_tag": f("char", required=True),
        "active": f("boolean"),
    },
    "farm.animal.treatment": {
        "animal_id": m2o("farm.animal", required=True),
        "product": f("char", required=True),
        "start": f("datetime", required=True),
        "withdrawal_hours": fl((8, 2)),
        "withdrawal_milkings": f("integer"),
        "withdrawal_end": f("datetime", store=True, readonly=True),
        "note": f("text"),
        "recorded_by": f("char"),
        "source": sel(("manual", "Manual"), ("console", "Milk Console")),
        "source_reference": f("char"),
        "active": f("boolean"),
    },
    "farm.milk.production": {
        "animal_id": m2o("farm.animal", required=True),
        "date": f("date", required=True),
        "milking_time": sel(("am", "Morning"), ("pm", "Evening"), required=True),
        "quantity": fl((10, 3), required=True),
        "fat_percentage": fl((5, 2)),
        "protein_percentage": fl((5, 2)),
        "somatic_cell_count": f("integer"),
        "source": sel(("manual", "Manual"), ("iot_meter", "IoT Milk Meter"), ("import", "Import")),
        "source_reference": f("char"),
    },
    "farm.health.event": {
        "animal_id": m2o("farm.animal", required=False),
        "event_type": sel(
            ("mastitis_indicator", "Mastitis Indicator"),
            ("blood_indicator", "Blood in Milk"),
            ("identity_indicator", "Identity Check"),
            ("low_yield", "Low Yield"),
            ("treatment", "Treatment"),
            ("other", "Other"),
            required=True,
        ),
        "description": f("text"),
        "source": sel(("manual", "Manual"), ("iot_milk_meter", "IoT Milk Meter")),
        "source_reference": f("char"),
        "date": f("datetime"),
    },
    "iot.milk_meter": {
        # the many2one shadows iot.device's own char device_id (expected with _inherits)
        "device_id": m2o("iot.device", required=True),
        "name": f("char", required=True),  # delegated from iot.device
        "state": f("selection"),
        "meter_type": sel(
            ("inline", "Inline Meter"),
            ("jar", "Recording Jar"),
            ("electronic", "Electronic Meter"),
            ("robotic", "Robotic System"),
        ),
        "manufacturer": sel(
            ("delaval", "DeLaval"),
            ("afimilk", "Afimilk"),
            ("gea", "GEA"),
            ("lely", "Lely"),
            ("boumatic", "BouMatic"),
            ("other", "Other"),
            required=True,
        ),
        "model_number": f("char"),
        "communication_type": sel(
            ("modbus_rtu", "Modbus RTU (Serial)"),
            ("modbus_tcp", "Modbus TCP (Ethernet)"),
            ("mqtt", "MQTT"),
            ("api", "REST API"),
            required=True,
        ),
        "modbus_address": f("integer"),
        "modbus_port": f("char", string="Serial Port / IP:Port"),
        "modbus_baudrate": sel(*((r, r) for r in ("9600", "19200", "38400", "57600", "115200"))),
        "modbus_parity": sel(("N", "None"), ("E", "Even"), ("O", "Odd")),
        "milking_point_count": f("integer"),
        "milking_point_ids": o2m("iot.milk_meter.point", "meter_id"),
        "has_rfid_reader": f("boolean"),
        "has_conductivity": f("boolean"),
        "has_temperature": f("boolean"),
        "has_flow_sensor": f("boolean"),
        "has_milk_quality": f("boolean"),
        "current_session_id": m2o("milk.session", readonly=True),
        "is_milking": f("boolean", store=False),
        "total_sessions": f("integer", store=False),
        "total_yield_liters": fl(store=False),
        "avg_session_yield": fl(store=False),
        "flow_calibration_factor": fl(),
        "conductivity_baseline": fl(),
        "last_calibration": f("datetime"),
    },
    "iot.milk_meter.point": {
        "meter_id": m2o("iot.milk_meter", required=True),
        "point_number": f("integer", required=True),
        "name": f("char"),
        "pen_id": m2o("farm.pen"),
        "position_description": f("char"),
        "rfid_reader_id": f("char"),
        "is_active": f("boolean"),
        "is_occupied": f("boolean"),
        "current_animal_id": m2o("farm.animal"),
    },
    "milk.session": {
        "name": f("char", string="Session ID"),
        "meter_id": m2o("iot.milk_meter", required=True),
        "animal_id": m2o("farm.animal"),
        "milking_point": m2o("iot.milk_meter.point"),
        "rfid_tag": f("char"),
        "start_time": f("datetime", required=True),
        "end_time": f("datetime"),
        "duration_seconds": f("integer", store=True),
        "current_yield": fl((10, 3)),
        "total_yield": fl((10, 3)),
        "current_flow_rate": fl((8, 3)),
        "peak_flow_rate": fl((8, 3)),
        "avg_flow_rate": fl((8, 3)),
        "milk_temperature": fl((5, 2)),
        "conductivity": fl((6, 3)),
        "fat_percentage": fl((5, 2)),
        "protein_percentage": fl((5, 2)),
        "lactose_percentage": fl((5, 2)),
        "somatic_cell_count": f("integer"),
        "blood_detected": f("boolean"),
        "vacuum_level": fl((5, 2)),
        "pulsation_rate": f("integer"),
        "quality_grade": sel(
            ("A", "Grade A"),
            ("B", "Grade B"),
            ("C", "Grade C"),
            ("reject", "Reject"),
            store=True,
            readonly=False,
        ),
        "is_abnormal": f("boolean", store=True, readonly=False),
        "abnormality_reason": f("char"),
        "state": sel(
            ("in_progress", "In Progress"), ("completed", "Completed"), ("cancelled", "Cancelled")
        ),
        "production_id": m2o("farm.milk.production"),
        "milk_destination": sel(("tank", "Bulk tank"), ("diverted", "Diverted")),
        "divert_reason": f("char"),
        "divert_confirmed_by": f("char"),
    },
}

DEFAULTS: dict[str, dict[str, Any]] = {
    "iot.device": {"device_type": "other", "state": "offline", "active": True},
    "iot.device.alert": {"alert_type": "custom", "severity": "warning", "state": "active"},
    "farm.animal": {"active": True},
    "farm.animal.rfid": {"active": True},
    "farm.animal.treatment": {"source": "manual", "active": True},
    "farm.milk.production": {"source": "manual"},
    "farm.health.event": {"event_type": "other", "source": "manual"},
    "iot.milk_meter": {
        "meter_type": "electronic",
        "communication_type": "modbus_rtu",
        "modbus_address": 1,
        "modbus_baudrate": "9600",
        "modbus_parity": "N",
        "milking_point_count": 1,
        "has_rfid_reader": True,
        "has_conductivity": True,
        "has_temperature": True,
        "has_flow_sensor": True,
        "has_milk_quality": False,
        "flow_calibration_factor": 1.0,
    },
    "iot.milk_meter.point": {"is_active": True, "is_occupied": False},
    "milk.session": {"blood_detected": False, "state": "in_progress", "milk_destination": "tank"},
}

ONDELETE: dict[tuple[str, str], str] = {
    ("iot.device.alert", "device_id"): "restrict",
    ("iot.device.alert", "animal_id"): "set null",
    ("farm.animal.rfid", "animal_id"): "cascade",
    ("farm.animal.treatment", "animal_id"): "cascade",
    ("farm.milk.production", "animal_id"): "restrict",
    ("farm.health.event", "animal_id"): "set null",
    ("iot.milk_meter", "device_id"): "cascade",
    ("iot.milk_meter", "current_session_id"): "set null",
    ("iot.milk_meter.point", "meter_id"): "cascade",
    ("iot.milk_meter.point", "pen_id"): "set null",
    ("iot.milk_meter.point", "current_animal_id"): "set null",
    ("milk.session", "meter_id"): "restrict",
    ("milk.session", "animal_id"): "set null",
    ("milk.session", "milking_point"): "set null",
    ("milk.session", "production_id"): "set null",
}

INDEXED = [
    ("iot.device", "device_id"),
    ("iot.device.alert", "reference"),
    ("farm.animal", "number"),
    ("farm.animal", "rfid_tag"),
    ("farm.animal.rfid", "animal_id"),
    ("farm.animal.rfid", "rfid_tag"),
    ("farm.animal.treatment", "animal_id"),
    ("farm.animal.treatment", "source_reference"),
    ("farm.milk.production", "source_reference"),
    ("farm.health.event", "animal_id"),
    ("farm.health.event", "source_reference"),
    ("milk.session", "animal_id"),
    ("milk.session", "rfid_tag"),
]


# -- helpers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rpc(real_odoo: RealOdoo) -> OdooRpc:
    return real_odoo.rpc()


@pytest.fixture
def tag() -> str:
    """A fresh tag for this test's records (the database is shared by the session)."""
    return uuid.uuid4().hex[:10]


def make_device(rpc: OdooRpc, device_id: str, **vals: Any) -> int:
    return rpc.call(
        "iot.device", "create", {"name": f"Meter {device_id}", "device_id": device_id, **vals}
    )


def make_meter(rpc: OdooRpc, device_id: str, **vals: Any) -> int:
    device = make_device(rpc, device_id, device_type="milk_meter")
    return rpc.call(
        "iot.milk_meter", "create", {"device_id": device, "manufacturer": "delaval", **vals}
    )


def make_cow(rpc: OdooRpc, name: str, **vals: Any) -> int:
    return rpc.call("farm.animal", "create", {"name": name, **vals})


def session(meter: int, name: str | None = None, **vals: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"meter_id": meter, "start_time": "2024-05-01 05:00:00"}
    if name is not None:
        base["name"] = name
    return {**base, **vals}


def read_one(rpc: OdooRpc, model: str, record_id: int, fields: list[str]) -> dict[str, Any]:
    [row] = rpc.call(model, "read", [record_id], fields)
    return row


def m2o_id(value: Any) -> int | bool:
    return value[0] if value else False


# -- models and fields -------------------------------------------------------------------


def test_module_is_installed_with_every_contract_model(rpc: OdooRpc) -> None:
    [module] = rpc.call(
        "ir.module.module",
        "search_read",
        [("name", "=", "milkconsole_dairy")],
        ["state", "latest_version", "license"],
    )
    assert module["state"] == "installed"
    assert module["latest_version"] == "17.0.1.0.0"  # Odoo prefixes the series itself
    assert module["license"] == "LGPL-3"
    models = rpc.call(
        "ir.model", "search_read", [("model", "in", list(CONTRACT))], ["model", "name"]
    )
    assert {m["model"] for m in models} == set(CONTRACT)
    assert {m["model"]: m["name"] for m in models}["iot.device"] == "IoT Device"


@pytest.mark.parametrize("model", list(CONTRACT))
def test_fields_have_the_contract_type_target_selection_and_digits(
    rpc: OdooRpc, model: str
) -> None:
    got = rpc.call(
        model,
        "fields_get",
        [],
        attributes=[
            "type",
            "relation",
            "relation_field",
            "selection",
            "digits",
            "required",
            "readonly",
            "store",
            "string",
        ],
    )
    problems = []
    for name, want in CONTRACT[model].items():
        if name not in got:
            problems.append(f"{model}.{name}: missing")
            continue
        for attr, value in want.items():
            have = got[name].get(attr)
            if attr == "required" and not value:
                have = bool(have)
            if have != value:
                problems.append(f"{model}.{name}.{attr}: {have!r} != {value!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("model", list(DEFAULTS))
def test_defaults(rpc: OdooRpc, model: str) -> None:
    assert rpc.call(model, "default_get", list(DEFAULTS[model])) == DEFAULTS[model]


def test_raised_and_dated_records_default_to_now(rpc: OdooRpc) -> None:
    for model in ("iot.device.alert", "farm.health.event"):
        got = rpc.call(model, "default_get", ["date"])["date"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", got), (model, got)


def test_ondelete_rules(rpc: OdooRpc) -> None:
    rows = rpc.call(
        "ir.model.fields",
        "search_read",
        [("model", "in", list(CONTRACT)), ("ttype", "=", "many2one")],
        ["model", "name", "on_delete"],
    )
    got = {(r["model"], r["name"]): r["on_delete"] for r in rows}
    assert {key: got.get(key) for key in ONDELETE} == ONDELETE


def test_indexed_fields(rpc: OdooRpc) -> None:
    rows = rpc.call(
        "ir.model.fields",
        "search_read",
        [("model", "in", list(CONTRACT))],
        ["model", "name", "index"],
    )
    indexed = {(r["model"], r["name"]) for r in rows if r["index"]}
    assert [key for key in INDEXED if key not in indexed] == []


def test_every_model_is_open_to_internal_users(rpc: OdooRpc) -> None:
    rows = rpc.call(
        "ir.model.access",
        "search_read",
        [("model_id.model", "in", list(CONTRACT)), ("group_id", "!=", False)],
        ["model_id", "group_id", "perm_read", "perm_write", "perm_create", "perm_unlink"],
    )
    [user_group] = rpc.call(
        "ir.model.data",
        "search_read",
        [("module", "=", "base"), ("name", "=", "group_user")],
        ["res_id"],
    )
    full = {
        r["model_id"][0]
        for r in rows
        if r["group_id"][0] == user_group["res_id"]
        and all(r[p] for p in ("perm_read", "perm_write", "perm_create", "perm_unlink"))
    }
    model_ids = rpc.call("ir.model", "search", [("model", "in", list(CONTRACT))])
    assert set(model_ids) == full


# -- unique constraints -----------------------------------------------------------------------


def assert_refused(excinfo: pytest.ExceptionInfo[OdooRpcError], *fragments: str) -> None:
    assert excinfo.value.name == VALIDATION, excinfo.value
    for fragment in fragments:
        assert fragment in excinfo.value.message, excinfo.value.message


def test_session_name_is_unique(rpc: OdooRpc, tag: str) -> None:
    meter = make_meter(rpc, f"M-{tag}")
    rpc.call("milk.session", "create", session(meter, f"S-{tag}"))
    with pytest.raises(OdooRpcError) as excinfo:
        rpc.call("milk.session", "create", session(meter, f"S-{tag}"))
    assert_refused(excinfo, "Session ID already exists")
    assert rpc.call("milk.session", "search_count", [("name", "=", f"S-{tag}")]) == 1


def test_a_refused_record_fails_its_whole_batch(rpc: OdooRpc, tag: str) -> None:
    # What the console's batch-splitting relies on: nothing of a refused create call lands.
    meter = make_meter(rpc, f"M-{tag}")
    rpc.call("milk.session", "create", session(meter, f"S-{tag}-dup"))
    batch = [session(meter, f"S-{tag}-{i}") for i in range(5)] + [session(meter, f"S-{tag}-dup")]
    with pytest.raises(OdooRpcError):
        rpc.call("milk.session", "create", batch)
    assert rpc.call("milk.session", "search_count", [("meter_id", "=", meter)]) == 1


def test_device_id_is_unique_for_devices_and_meters(rpc: OdooRpc, tag: str) -> None:
    device = make_device(rpc, f"D-{tag}")
    with pytest.raises(OdooRpcError) as excinfo:
        make_device(rpc, f"D-{tag}")
    assert_refused(excinfo, "Device ID")
    rpc.call("iot.milk_meter", "create", {"device_id": device, "manufacturer": "gea"})
    with pytest.raises(OdooRpcError) as excinfo:
        rpc.call("iot.milk_meter", "create", {"device_id": device, "manufacturer": "lely"})
    assert_refused(excinfo, "already a milk meter")


def test_rfid_tags_are_unique_and_optional(rpc: OdooRpc, tag: str) -> None:
    rfid = f"ASCII:{tag.upper()}"
    cow = make_cow(rpc, f"Daisy {tag}", rfid_tag=rfid)
    with pytest.raises(OdooRpcError) as excinfo:
        make_cow(rpc, f"Bella {tag}", rfid_tag=rfid)
    assert_refused(excinfo, "RFID tag")
    # cows without a tag: any number of them
    rpc.call("farm.animal", "create", [{"name": f"No tag {tag} {i}"} for i in range(3)])

    rpc.call("farm.animal.rfid", "create", {"animal_id": cow, "rfid_tag": f"{rfid}-2"})
    with pytest.raises(OdooRpcError) as excinfo:
        rpc.call("farm.animal.rfid", "create", {"animal_id": cow, "rfid_tag": f"{rfid}-2"})
    assert_refused(excinfo, "RFID tag")


@pytest.mark.parametrize(
    ("model", "key", "message"),
    [
        ("farm.milk.production", "source_reference", "source reference"),
        ("farm.animal.treatment", "source_reference", "source reference"),
        ("farm.health.event", "source_reference", "source reference"),
        ("iot.device.alert", "reference", "reference"),
    ],
)
def test_console_keys_are_unique_but_may_be_empty(
    rpc: OdooRpc, tag: str, model: str, key: str, message: str
) -> None:
    cow = make_cow(rpc, f"Cow {tag}")
    device = make_device(rpc, f"D-{tag}")
    bases: dict[str, dict[str, Any]] = {
        "farm.milk.production": {
            "animal_id": cow,
            "date": "2024-05-01",
            "milking_time": "am",
            "quantity": 11.5,
        },
        "farm.animal.treatment": {
            "animal_id": cow,
            "product": "Cefquinome",
            "start": "2024-05-01 06:00:00",
        },
        "farm.health.event": {"animal_id": cow},
        "iot.device.alert": {"device_id": device, "name": "Meter offline"},
    }
    base = bases[model]
    rpc.call(model, "create", {**base, key: f"K-{tag}"})
    with pytest.raises(OdooRpcError) as excinfo:
        rpc.call(model, "create", {**base, key: f"K-{tag}"})
    assert_refused(excinfo, message)
    # records made in Odoo itself carry no key: NULL is allowed any number of times
    rpc.call(model, "create", [dict(base), dict(base)])
    assert rpc.call(model, "search_count", [(key, "=", False), *_owned(model, cow, device)]) == 2


def _owned(model: str, cow: int, device: int) -> list[tuple[str, str, int]]:
    return (
        [("device_id", "=", device)] if model == "iot.device.alert" else [("animal_id", "=", cow)]
    )


def test_a_meter_point_number_is_unique_per_meter(rpc: OdooRpc, tag: str) -> None:
    first, second = make_meter(rpc, f"M1-{tag}"), make_meter(rpc, f"M2-{tag}")
    rpc.call("iot.milk_meter.point", "create", {"meter_id": first, "point_number": 1})
    rpc.call("iot.milk_meter.point", "create", {"meter_id": second, "point_number": 1})
    with pytest.raises(OdooRpcError) as excinfo:
        rpc.call("iot.milk_meter.point", "create", {"meter_id": first, "point_number": 1})
    assert_refused(excinfo, "milking point with this number")


# -- deletion ---------------------------------------------------------------------------------


def test_a_cow_with_production_cannot_be_deleted(rpc: OdooRpc, tag: str) -> None:
    cow = make_cow(rpc, f"Daisy {tag}")
    production = rpc.call(
        "farm.milk.production",
        "create",
        {"animal_id": cow, "date": "2024-05-01", "milking_time": "pm", "quantity": 9.25},
    )
    with pytest.raises(OdooRpcError) as excinfo:
        rpc.call("farm.animal", "unlink", [cow])
    assert_refused(excinfo, DELETE_REFUSED, "farm.milk.production")
    assert rpc.call("farm.animal", "search_count", [("id", "=", cow)]) == 1
    assert rpc.call("farm.milk.production", "search_count", [("id", "=", production)]) == 1


def test_deleting_a_cow_takes_her_tags_and_treatments_and_keeps_events_and_sessions(
    rpc: OdooRpc, tag: str
) -> None:
    meter = make_meter(rpc, f"M-{tag}")
    cow = make_cow(rpc, f"Daisy {tag}")
    rfid = rpc.call("farm.animal.rfid", "create", {"animal_id": cow, "rfid_tag": f"T-{tag}"})
    treatment = rpc.call(
        "farm.animal.treatment",
        "create",
        {"animal_id": cow, "product": "Oxytetracycline", "start": "2024-05-01 06:00:00"},
    )
    event = rpc.call("farm.health.event", "create", {"animal_id": cow, "event_type": "low_yield"})
    milking = rpc.call("milk.session", "create", session(meter, f"S-{tag}", animal_id=cow))
    alert = rpc.call(
        "iot.device.alert",
        "create",
        {
            "device_id": read_one(rpc, "iot.milk_meter", meter, ["device_id"])["device_id"][0],
            "animal_id": cow,
        },
    )

    assert rpc.call("farm.animal", "unlink", [cow]) is True

    assert rpc.call("farm.animal.rfid", "search_count", [("id", "=", rfid)]) == 0
    treatments = rpc.call(
        "farm.animal.treatment",
        "search_count",
        [("id", "=", treatment), ("active", "in", [True, False])],
    )
    assert treatments == 0
    assert read_one(rpc, "farm.health.event", event, ["animal_id"])["animal_id"] is False
    assert read_one(rpc, "milk.session", milking, ["animal_id"])["animal_id"] is False
    assert read_one(rpc, "iot.device.alert", alert, ["animal_id"])["animal_id"] is False


def test_the_device_of_a_meter_with_sessions_cannot_be_deleted(rpc: OdooRpc, tag: str) -> None:
    meter = make_meter(rpc, f"M-{tag}")
    device = read_one(rpc, "iot.milk_meter", meter, ["device_id"])["device_id"][0]
    rpc.call("milk.session", "create", session(meter, f"S-{tag}"))
    with pytest.raises(OdooRpcError) as excinfo:
        rpc.call("iot.device", "unlink", [device])
    assert_refused(excinfo, DELETE_REFUSED, "milk.session")
    with pytest.raises(OdooRpcError) as excinfo:
        rpc.call("iot.milk_meter", "unlink", [meter])
    assert_refused(excinfo, DELETE_REFUSED, "milk.session")
    assert rpc.call("iot.milk_meter", "search_count", [("id", "=", meter)]) == 1


def test_deleting_an_unused_meter_device_takes_the_meter_and_its_points(
    rpc: OdooRpc, tag: str
) -> None:
    meter = make_meter(rpc, f"M-{tag}")
    device = read_one(rpc, "iot.milk_meter", meter, ["device_id"])["device_id"][0]
    point = rpc.call("iot.milk_meter.point", "create", {"meter_id": meter, "point_number": 3})
    assert rpc.call("iot.device", "unlink", [device]) is True
    assert rpc.call("iot.milk_meter", "search_count", [("id", "=", meter)]) == 0
    assert rpc.call("iot.milk_meter.point", "search_count", [("id", "=", point)]) == 0


def test_a_device_with_alerts_cannot_be_deleted(rpc: OdooRpc, tag: str) -> None:
    device = make_device(rpc, f"D-{tag}")
    rpc.call("iot.device.alert", "create", {"device_id": device, "reference": f"A-{tag}"})
    with pytest.raises(OdooRpcError) as excinfo:
        rpc.call("iot.device", "unlink", [device])
    assert_refused(excinfo, DELETE_REFUSED, "iot.device.alert")
    alerts = read_one(rpc, "iot.device", device, ["alert_ids"])["alert_ids"]
    assert len(alerts) == 1


# -- meters and devices -------------------------------------------------------------------------


def test_a_meter_is_a_device(rpc: OdooRpc, tag: str) -> None:
    meter = make_meter(rpc, f"M-{tag}", communication_type="modbus_tcp", modbus_port="10.0.0.5:502")
    row = read_one(rpc, "iot.milk_meter", meter, ["name", "device_type", "state", "display_name"])
    assert (row["name"], row["device_type"], row["state"]) == (
        f"Meter M-{tag}",
        "milk_meter",
        "offline",
    )
    assert row["display_name"] == f"Meter M-{tag}"
    # the console finds a meter by its device's id
    found = rpc.call("iot.milk_meter", "search", [("device_id.device_id", "=", f"M-{tag}")])
    assert found == [meter]
    # a delegated field written on the meter lands on the device
    rpc.call("iot.milk_meter", "write", [meter], {"state": "online"})
    device = read_one(rpc, "iot.milk_meter", meter, ["device_id"])["device_id"][0]
    assert read_one(rpc, "iot.device", device, ["state"])["state"] == "online"


def test_update_last_seen_stamps_every_device(rpc: OdooRpc, tag: str) -> None:
    devices = [make_device(rpc, f"D{i}-{tag}") for i in range(2)]
    assert rpc.call("iot.device", "update_last_seen", devices) is True
    rows = rpc.call("iot.device", "read", devices, ["last_seen"])
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r["last_seen"]) for r in rows)


def test_meter_totals_count_its_sessions_but_not_cancelled_ones(rpc: OdooRpc, tag: str) -> None:
    busy, idle = make_meter(rpc, f"M1-{tag}"), make_meter(rpc, f"M2-{tag}")
    rpc.call(
        "milk.session",
        "create",
        [
            session(busy, f"S1-{tag}", total_yield=10.0, state="completed"),
            session(busy, f"S2-{tag}", total_yield=12.5, state="completed"),
            session(busy, f"S3-{tag}", total_yield=99.0, state="cancelled"),
        ],
    )
    rows = {
        r["id"]: r
        for r in rpc.call(
            "iot.milk_meter",
            "read",
            [busy, idle],
            ["total_sessions", "total_yield_liters", "avg_session_yield"],
        )
    }
    assert (rows[busy]["total_sessions"], rows[busy]["total_yield_liters"]) == (2, 22.5)
    assert rows[busy]["avg_session_yield"] == pytest.approx(11.25)
    assert (rows[idle]["total_sessions"], rows[idle]["total_yield_liters"]) == (0, 0.0)
    assert rows[idle]["avg_session_yield"] == 0.0


def test_a_meter_is_milking_while_its_current_session_is_in_progress(
    rpc: OdooRpc, tag: str
) -> None:
    meter = make_meter(rpc, f"M-{tag}")
    assert read_one(rpc, "iot.milk_meter", meter, ["is_milking"])["is_milking"] is False
    current = rpc.call("milk.session", "create", session(meter, f"S-{tag}"))
    rpc.call("iot.milk_meter", "write", [meter], {"current_session_id": current})
    assert read_one(rpc, "iot.milk_meter", meter, ["is_milking"])["is_milking"] is True
    rpc.call("milk.session", "write", [current], {"state": "completed"})
    assert read_one(rpc, "iot.milk_meter", meter, ["is_milking"])["is_milking"] is False


# -- sessions -------------------------------------------------------------------------------------


def test_a_batch_of_500_sessions_is_created_in_one_call(rpc: OdooRpc, tag: str) -> None:
    meter = make_meter(rpc, f"M-{tag}")
    named = [session(meter, f"{tag}-{i:03d}", total_yield=8 + i / 100) for i in range(250)]
    unnamed = [session(meter, total_yield=7.0) for _ in range(250)]
    ids = rpc.call("milk.session", "create", named + unnamed)
    assert len(ids) == len(set(ids)) == 500
    rows = rpc.call("milk.session", "read", ids, ["name", "total_yield"])
    names = [r["name"] for r in rows]
    assert names[:250] == [f"{tag}-{i:03d}" for i in range(250)]
    assert all(re.fullmatch(r"MS/\d{4}/\d{6}", n) for n in names[250:]), names[250:253]
    assert len(set(names)) == 500
    assert rows[1]["total_yield"] == 8.01
    assert rpc.call("milk.session", "search_count", [("meter_id", "=", meter)]) == 500


def test_duration_is_computed_from_start_and_end(rpc: OdooRpc, tag: str) -> None:
    meter = make_meter(rpc, f"M-{tag}")
    ids = rpc.call(
        "milk.session",
        "create",
        [
            session(
                meter, f"S1-{tag}", start_time="2024-05-01 05:00:00", end_time="2024-05-01 05:07:30"
            ),
            session(meter, f"S2-{tag}"),
        ],
    )
    durations = [
        r["duration_seconds"] for r in rpc.call("milk.session", "read", ids, ["duration_seconds"])
    ]
    assert durations == [450, 0]
    rpc.call("milk.session", "write", [ids[1]], {"end_time": "2024-05-01 05:01:00"})
    assert read_one(rpc, "milk.session", ids[1], ["duration_seconds"])["duration_seconds"] == 60


# (blood, scc, fat, protein) -> the seed's grade
GRADES = [
    ((True, 100_000, 4.0, 3.5), "reject"),
    ((False, 450_000, 4.0, 3.5), "reject"),
    ((False, 100_000, 0.0, 3.2), False),
    ((False, 100_000, 3.8, 0.0), False),
    ((False, 150_000, 3.8, 3.1), "A"),
    ((False, 200_000, 3.5, 3.0), "B"),  # A needs SCC below 200 000
    ((False, 400_000, 3.8, 3.1), "B"),  # 400 000 itself is not rejected
    ((False, 0, 3.2, 2.9), "B"),
    ((False, 0, 3.0, 2.8), "B"),
    ((False, 0, 2.7, 2.5), "C"),
    ((False, 0, 3.6, 2.7), "C"),
    ((False, 0, 2.0, 3.0), "reject"),
]


def test_quality_grade_follows_the_seed_rule_when_not_given(rpc: OdooRpc, tag: str) -> None:
    meter = make_meter(rpc, f"M-{tag}")
    vals = [
        session(
            meter,
            f"S{i}-{tag}",
            blood_detected=blood,
            somatic_cell_count=scc,
            fat_percentage=fat,
            protein_percentage=protein,
        )
        for i, ((blood, scc, fat, protein), _) in enumerate(GRADES)
    ]
    ids = rpc.call("milk.session", "create", vals)
    got = [r["quality_grade"] for r in rpc.call("milk.session", "read", ids, ["quality_grade"])]
    assert got == [grade for _, grade in GRADES]


def test_a_given_quality_grade_is_kept(rpc: OdooRpc, tag: str) -> None:
    meter = make_meter(rpc, f"M-{tag}")
    ids = rpc.call(
        "milk.session",
        "create",
        [
            # the rule would say reject (blood) and A: the console's grade stands
            session(meter, f"S1-{tag}", blood_detected=True, quality_grade="B"),
            session(
                meter,
                f"S2-{tag}",
                fat_percentage=4.0,
                protein_percentage=3.4,
                somatic_cell_count=50_000,
                quality_grade="reject",
            ),
        ],
    )
    got = [r["quality_grade"] for r in rpc.call("milk.session", "read", ids, ["quality_grade"])]
    assert got == ["B", "reject"]


def test_abnormality_follows_the_seed_rule_when_not_given(rpc: OdooRpc, tag: str) -> None:
    meter = make_meter(rpc, f"M-{tag}")
    cow = make_cow(rpc, f"Daisy {tag}", conductivity_baseline=5.0)  # limit 6.0 mS/cm
    cases = [
        (cow, 6.5, True),
        (cow, 5.9, False),
        (False, 6.7, True),  # no cow: baseline 5.5, limit 6.6
        (False, 6.5, False),
        (False, 0.0, False),
    ]
    ids = rpc.call(
        "milk.session",
        "create",
        [
            session(meter, f"S{i}-{tag}", animal_id=animal, conductivity=ec)
            for i, (animal, ec, _) in enumerate(cases)
        ],
    )
    rows = rpc.call("milk.session", "read", ids, ["is_abnormal", "abnormality_reason"])
    assert [r["is_abnormal"] for r in rows] == [abnormal for *_, abnormal in cases]
    assert [r["abnormality_reason"] for r in rows] == [
        "Elevated conductivity" if abnormal else False for *_, abnormal in cases
    ]


def test_a_given_abnormality_is_kept_even_when_the_cow_is_named_later(
    rpc: OdooRpc, tag: str
) -> None:
    meter = make_meter(rpc, f"M-{tag}")
    sensitive = make_cow(rpc, f"Daisy {tag}", conductivity_baseline=3.0)
    ids = rpc.call(
        "milk.session",
        "create",
        [
            session(meter, f"S1-{tag}", conductivity=9.0, is_abnormal=False),
            session(
                meter,
                f"S2-{tag}",
                conductivity=4.0,
                is_abnormal=True,
                abnormality_reason="Mastitis suspicion (quarter LF)",
            ),
        ],
    )
    # the console names the cow afterwards: what was decided about the milking stays
    rpc.call("milk.session", "write", ids, {"animal_id": sensitive})
    rows = rpc.call("milk.session", "read", ids, ["is_abnormal", "abnormality_reason"])
    assert [(r["is_abnormal"], r["abnormality_reason"]) for r in rows] == [
        (False, False),
        (True, "Mastitis suspicion (quarter LF)"),
    ]
    # a hand correction of the measured conductivity applies the rule again
    rpc.call("milk.session", "write", [ids[1]], {"conductivity": 3.1})
    assert read_one(rpc, "milk.session", ids[1], ["is_abnormal"])["is_abnormal"] is False


# -- production and treatments ---------------------------------------------------------------------


def test_meter_production_links_its_session_by_reference(rpc: OdooRpc, tag: str) -> None:
    meter = make_meter(rpc, f"M-{tag}")
    cow = make_cow(rpc, f"Daisy {tag}")
    s1, s2, s3 = rpc.call(
        "milk.session",
        "create",
        [session(meter, f"S1-{tag}"), session(meter, f"S2-{tag}"), session(meter, f"S3-{tag}")],
    )
    day = {"animal_id": cow, "date": "2024-05-01", "milking_time": "am", "quantity": 10.0}
    earlier = rpc.call("farm.milk.production", "create", {**day, "source": "import"})
    rpc.call("milk.session", "write", [s2], {"production_id": earlier})

    p1, p2, p3, p4 = rpc.call(
        "farm.milk.production",
        "create",
        [
            {**day, "source": "iot_meter", "source_reference": f"S1-{tag}"},
            {**day, "source": "iot_meter", "source_reference": f"S2-{tag}"},
            {**day, "source": "manual", "source_reference": f"S3-{tag}"},
            {**day, "source": "iot_meter", "source_reference": f"nosuch-{tag}"},
        ],
    )
    links = {
        r["id"]: m2o_id(r["production_id"])
        for r in rpc.call("milk.session", "read", [s1, s2, s3], ["production_id"])
    }
    assert links == {s1: p1, s2: earlier, s3: False}
    assert p2 and p3 and p4  # created all the same


def test_withdrawal_end_is_start_plus_withdrawal_hours(rpc: OdooRpc, tag: str) -> None:
    cow = make_cow(rpc, f"Daisy {tag}")
    base = {"animal_id": cow, "product": "Cefalexin", "start": "2024-05-01 06:00:00"}
    with_hours, without = rpc.call(
        "farm.animal.treatment",
        "create",
        [
            {**base, "withdrawal_hours": 72.5, "source": "console", "source_reference": f"T-{tag}"},
            {**base, "withdrawal_milkings": 6},
        ],
    )
    assert read_one(rpc, "farm.animal.treatment", with_hours, ["withdrawal_end"]) == {
        "id": with_hours,
        "withdrawal_end": "2024-05-04 06:30:00",
    }
    assert (
        read_one(rpc, "farm.animal.treatment", without, ["withdrawal_end"])["withdrawal_end"]
        is False
    )
    rpc.call("farm.animal.treatment", "write", [without], {"withdrawal_hours": 12})
    assert (
        read_one(rpc, "farm.animal.treatment", without, ["withdrawal_end"])["withdrawal_end"]
        == "2024-05-01 18:00:00"
    )


def test_records_without_a_name_field_have_readable_display_names(rpc: OdooRpc, tag: str) -> None:
    meter = make_meter(rpc, f"M-{tag}")
    cow = make_cow(rpc, f"Daisy {tag}")
    production = rpc.call(
        "farm.milk.production",
        "create",
        {"animal_id": cow, "date": "2024-05-01", "milking_time": "pm", "quantity": 10.0},
    )
    event = rpc.call(
        "farm.health.event", "create", {"animal_id": cow, "event_type": "mastitis_indicator"}
    )
    point = rpc.call("iot.milk_meter.point", "create", {"meter_id": meter, "point_number": 7})
    rfid = rpc.call("farm.animal.rfid", "create", {"animal_id": cow, "rfid_tag": f"R-{tag}"})
    names = {
        "farm.milk.production": (production, f"Daisy {tag} 2024-05-01 Evening"),
        "farm.health.event": (event, f"Mastitis Indicator - Daisy {tag}"),
        "iot.milk_meter.point": (point, f"Meter M-{tag} #7"),
        "farm.animal.rfid": (rfid, f"R-{tag}"),
    }
    for model, (record_id, want) in names.items():
        assert read_one(rpc, model, record_id, ["display_name"])["display_name"] == want


# -- the harness's own tools -------------------------------------------------------------------


def test_find_serve_prefers_the_environment_then_walks_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "a" / "b" / "repo"
    repo.mkdir(parents=True)
    assert find_serve(repo, {}) is None
    serve = tmp_path / "a" / "shared" / "odoo17" / "serve"
    serve.parent.mkdir(parents=True)
    serve.write_text("#!/bin/sh\n")
    assert find_serve(repo, {}) == serve
    assert find_serve(repo, {SERVE_ENV: "/elsewhere/serve"}) == Path("/elsewhere/serve")

    monkeypatch.delenv(SERVE_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match=SERVE_ENV):
        _serve_or_fail(tmp_path / "x" / "repo")
    monkeypatch.setenv(SERVE_ENV, str(tmp_path / "missing"))
    with pytest.raises(pytest.fail.Exception, match="not an executable file"):
        _serve_or_fail(repo)


def test_the_gate_refuses_and_cuts_connections_then_lets_them_through_again(
    real_odoo: RealOdoo, odoo_gate: OdooGate, tag: str
) -> None:
    through = real_odoo.rpc(url=odoo_gate.url, timeout_s=10)
    device = make_device(through, f"G-{tag}")
    # a request half sent when the gate closes: the client sees its connection cut
    held = socket.create_connection(("127.0.0.1", odoo_gate.port), timeout=10)
    held.sendall(b"POST /jsonrpc HTTP/1.1\r\nHost: odoo\r\nContent-Length: 500\r\n\r\n{")

    odoo_gate.close()

    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        held.sendall(b"x" * 1000)
        held.recv(1)  # a clean end (b"") would not raise: the test wants a cut
    held.close()
    with pytest.raises(urllib.error.URLError) as excinfo:
        through.call("iot.device", "read", [device], ["name"])
    assert isinstance(excinfo.value.reason, ConnectionRefusedError)
    # the server itself never went away
    assert read_one(real_odoo.rpc(), "iot.device", device, ["name"])["name"] == f"Meter G-{tag}"

    port = odoo_gate.port
    odoo_gate.open()
    assert odoo_gate.port == port
    assert read_one(through, "iot.device", device, ["name"])["name"] == f"Meter G-{tag}"


def test_a_frozen_server_accepts_and_never_answers_until_thawed(
    real_odoo: RealOdoo, rpc: OdooRpc, tag: str
) -> None:
    device = make_device(rpc, f"F-{tag}")
    impatient = real_odoo.rpc(timeout_s=1.5)
    assert impatient.uid  # logged in before the freeze: the call below is a plain read
    with frozen_odoo(real_odoo):
        with pytest.raises((TimeoutError, urllib.error.URLError)) as excinfo:
            impatient.call("iot.device", "read", [device], ["name"])
        if isinstance(excinfo.value, urllib.error.URLError):
            assert isinstance(excinfo.value.reason, TimeoutError)
    wait_until_answers(real_odoo.url)
    assert read_one(rpc, "iot.device", device, ["name"])["name"] == f"Meter F-{tag}"
