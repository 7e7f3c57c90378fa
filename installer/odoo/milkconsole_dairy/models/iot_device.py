from odoo import fields, models

from .sql_constraints import CONSTRAINT_OBJECTS

DEVICE_UNIQUE = "Another device already has this Device ID."


class IotDevice(models.Model):
    """The device registry; a milk meter is an iot.device (see iot.milk_meter's _inherits)."""

    _name = "iot.device"
    _description = "IoT Device"
    _order = "name, id"

    name = fields.Char(required=True)
    device_id = fields.Char("Device ID", required=True, index=True)
    device_type = fields.Selection(
        [
            ("milk_meter", "Milk Meter"),
            ("sensor", "Sensor"),
            ("gateway", "Gateway"),
            ("other", "Other"),
        ],
        required=True,
        default="other",
    )
    state = fields.Selection(
        [
            ("online", "Online"),
            ("degraded", "Degraded"),
            ("offline", "Offline"),
            ("maintenance", "Maintenance"),
        ],
        default="offline",
    )
    last_seen = fields.Datetime()
    active = fields.Boolean(default=True)
    alert_ids = fields.One2many("iot.device.alert", "device_id", string="Alerts")

    if CONSTRAINT_OBJECTS:
        _device_id_uniq = models.Constraint("UNIQUE(device_id)", DEVICE_UNIQUE)
    else:
        _sql_constraints = [("device_id_uniq", "UNIQUE(device_id)", DEVICE_UNIQUE)]

    def update_last_seen(self):
        """Stamp these devices as heard from now (one UPDATE for the whole recordset)."""
        self.write({"last_seen": fields.Datetime.now()})
        # True, not None: XML-RPC clients cannot unmarshal None.
        return True
