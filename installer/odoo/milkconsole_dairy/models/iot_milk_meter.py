from odoo import api, fields, models

from .sql_constraints import CONSTRAINT_OBJECTS

DEVICE_UNIQUE = "This device is already a milk meter."


class IotMilkMeter(models.Model):
    """A milk meter: an iot.device (name, state, last_seen, ... are the device's) plus how the
    console talks to it.

    Through _inherits, the device's own char `device_id` is shadowed here by the many2one to the
    device: a meter is made by creating its iot.device (device_id = the meter id of the parlour
    config) and then the meter with device_id = that record. The delegate many2one is joined
    automatically (Odoo sets auto_join on every _inherits field: the access rules of iot.device
    apply when searching meters), so it is not repeated here, which also keeps Odoo 19 (where
    auto_join became bypass_search_access) free of an unknown-parameter warning.
    """

    _name = "iot.milk_meter"
    _description = "Milk Meter"
    _inherits = {"iot.device": "device_id"}
    _order = "id"

    device_id = fields.Many2one("iot.device", required=True, ondelete="cascade")
    meter_type = fields.Selection(
        [
            ("inline", "Inline Meter"),
            ("jar", "Recording Jar"),
            ("electronic", "Electronic Meter"),
            ("robotic", "Robotic System"),
        ],
        default="electronic",
    )
    manufacturer = fields.Selection(
        [
            ("delaval", "DeLaval"),
            ("afimilk", "Afimilk"),
            ("gea", "GEA"),
            ("lely", "Lely"),
            ("boumatic", "BouMatic"),
            ("other", "Other"),
        ],
        required=True,
    )
    model_number = fields.Char()
    communication_type = fields.Selection(
        [
            ("modbus_rtu", "Modbus RTU (Serial)"),
            ("modbus_tcp", "Modbus TCP (Ethernet)"),
            ("mqtt", "MQTT"),
            ("api", "REST API"),
        ],
        required=True,
        default="modbus_rtu",
    )
    modbus_address = fields.Integer(default=1)
    modbus_port = fields.Char("Serial Port / IP:Port")
    modbus_baudrate = fields.Selection(
        [(rate, rate) for rate in ("9600", "19200", "38400", "57600", "115200")],
        default="9600",
    )
    modbus_parity = fields.Selection([("N", "None"), ("E", "Even"), ("O", "Odd")], default="N")
    milking_point_count = fields.Integer(default=1)
    milking_point_ids = fields.One2many("iot.milk_meter.point", "meter_id", string="Milking Points")
    has_rfid_reader = fields.Boolean(default=True)
    has_conductivity = fields.Boolean(default=True)
    has_temperature = fields.Boolean(default=True)
    has_flow_sensor = fields.Boolean(default=True)
    has_milk_quality = fields.Boolean(default=False)
    current_session_id = fields.Many2one("milk.session", readonly=True)
    is_milking = fields.Boolean(compute="_compute_is_milking")
    total_sessions = fields.Integer(compute="_compute_session_totals")
    total_yield_liters = fields.Float(compute="_compute_session_totals")
    avg_session_yield = fields.Float(compute="_compute_session_totals")
    flow_calibration_factor = fields.Float(default=1.0)
    conductivity_baseline = fields.Float()
    last_calibration = fields.Datetime()

    if CONSTRAINT_OBJECTS:
        _device_id_uniq = models.Constraint("UNIQUE(device_id)", DEVICE_UNIQUE)
    else:
        _sql_constraints = [("device_id_uniq", "UNIQUE(device_id)", DEVICE_UNIQUE)]

    @api.depends("current_session_id.state")
    def _compute_is_milking(self):
        for meter in self:
            meter.is_milking = meter.current_session_id.state == "in_progress"

    def _compute_session_totals(self):
        # One grouped query for all meters at once; cancelled sessions yielded nothing.
        totals = {
            meter.id: (count, total or 0.0)
            for meter, count, total in self.env["milk.session"]._read_group(
                [("meter_id", "in", self.ids), ("state", "!=", "cancelled")],
                groupby=["meter_id"],
                aggregates=["__count", "total_yield:sum"],
            )
        }
        for meter in self:
            count, total = totals.get(meter.id, (0, 0.0))
            meter.total_sessions = count
            meter.total_yield_liters = total
            meter.avg_session_yield = total / count if count else 0.0
