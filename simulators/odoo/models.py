"""The simulated Odoo's data model: field and model definitions, and the contract's models.

`contract_models()` mirrors the Odoo module in `installer/odoo/milkconsole_dairy` (a test checks
it against the real module on a real Odoo 17); tests change a copy of it to play a server whose
module differs from the contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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


# Every Odoo model has these; the ORM sets them, so a client may read but never write them.
AUTO_FIELDS: dict[str, FieldDef] = {
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
