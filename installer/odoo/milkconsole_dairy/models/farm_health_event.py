from odoo import api, fields, models

from .sql_constraints import CONSTRAINT_OBJECTS

REFERENCE_UNIQUE = "A health event with this source reference already exists."
EVENT_TYPES = [
    ("mastitis_indicator", "Mastitis Indicator"),
    ("blood_indicator", "Blood in Milk"),
    ("identity_indicator", "Identity Check"),
    ("low_yield", "Low Yield"),
    ("treatment", "Treatment"),
    ("other", "Other"),
]


class FarmHealthEvent(models.Model):
    _name = "farm.health.event"
    _description = "Animal Health Event"
    _order = "date desc, id desc"

    # Not required: an event may concern a milking whose cow was never identified.
    animal_id = fields.Many2one("farm.animal", ondelete="set null", index=True)
    event_type = fields.Selection(EVENT_TYPES, required=True, default="other")
    description = fields.Text()
    source = fields.Selection(
        [("manual", "Manual"), ("iot_milk_meter", "IoT Milk Meter")], default="manual"
    )
    source_reference = fields.Char(index=True, copy=False)
    date = fields.Datetime(default=fields.Datetime.now)

    if CONSTRAINT_OBJECTS:
        _source_reference_uniq = models.Constraint("UNIQUE(source_reference)", REFERENCE_UNIQUE)
    else:
        _sql_constraints = [("source_reference_uniq", "UNIQUE(source_reference)", REFERENCE_UNIQUE)]

    @api.depends("event_type", "animal_id")
    def _compute_display_name(self):
        for event in self:
            label = dict(EVENT_TYPES).get(event.event_type, "")
            cow = event.animal_id.display_name
            event.display_name = f"{label} - {cow}" if cow else label
