from odoo import api, fields, models

from .sql_constraints import CONSTRAINT_OBJECTS

POINT_UNIQUE = "This meter already has a milking point with this number."


class IotMilkMeterPoint(models.Model):
    """A milking point (stall) served by a meter."""

    _name = "iot.milk_meter.point"
    _description = "Milking Point"
    _order = "meter_id, point_number"

    meter_id = fields.Many2one("iot.milk_meter", required=True, ondelete="cascade")
    point_number = fields.Integer(required=True)
    name = fields.Char()
    pen_id = fields.Many2one("farm.pen")
    position_description = fields.Char()
    rfid_reader_id = fields.Char()
    is_active = fields.Boolean(default=True)
    is_occupied = fields.Boolean(default=False)
    current_animal_id = fields.Many2one("farm.animal")

    if CONSTRAINT_OBJECTS:
        _meter_point_uniq = models.Constraint("UNIQUE(meter_id, point_number)", POINT_UNIQUE)
    else:
        _sql_constraints = [("meter_point_uniq", "UNIQUE(meter_id, point_number)", POINT_UNIQUE)]

    @api.depends("name", "meter_id", "point_number")
    def _compute_display_name(self):
        for point in self:
            point.display_name = point.name or (
                f"{point.meter_id.display_name or ''} #{point.point_number}".strip()
            )
