from odoo import fields, models

from .sql_constraints import CONSTRAINT_OBJECTS

REFERENCE_UNIQUE = "An alert with this reference already exists."


class IotDeviceAlert(models.Model):
    _name = "iot.device.alert"
    _description = "IoT Device Alert"
    _order = "date desc, id desc"

    name = fields.Char("Title")
    # The console's stable key for the alert: how it finds the record again after a retry.
    reference = fields.Char(index=True, copy=False)
    device_id = fields.Many2one("iot.device", required=True, ondelete="restrict")
    animal_id = fields.Many2one("farm.animal", ondelete="set null")
    alert_type = fields.Selection(
        [
            ("offline", "Device Offline"),
            ("threshold", "Threshold Exceeded"),
            ("maintenance", "Maintenance Due"),
            ("custom", "Custom"),
        ],
        required=True,
        default="custom",
    )
    severity = fields.Selection(
        [("low", "Low"), ("warning", "Warning"), ("critical", "Critical")],
        required=True,
        default="warning",
    )
    message = fields.Text()
    state = fields.Selection(
        [("active", "Active"), ("acknowledged", "Acknowledged"), ("resolved", "Resolved")],
        required=True,
        default="active",
    )
    date = fields.Datetime("Raised", default=fields.Datetime.now)
    acknowledged_by = fields.Char()
    acknowledged_date = fields.Datetime()
    resolved_by = fields.Char()
    resolved_date = fields.Datetime()
    resolution_note = fields.Text()

    # UNIQUE lets any number of NULLs through: alerts raised in Odoo itself have no reference.
    if CONSTRAINT_OBJECTS:
        _reference_uniq = models.Constraint("UNIQUE(reference)", REFERENCE_UNIQUE)
    else:
        _sql_constraints = [("reference_uniq", "UNIQUE(reference)", REFERENCE_UNIQUE)]
