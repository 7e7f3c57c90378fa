from datetime import timedelta

from odoo import api, fields, models

from .sql_constraints import CONSTRAINT_OBJECTS

REFERENCE_UNIQUE = "A treatment with this source reference already exists."


class FarmAnimalTreatment(models.Model):
    """A treatment whose milk must stay out of the tank until its withdrawal ends."""

    _name = "farm.animal.treatment"
    _description = "Animal Treatment"
    _rec_name = "product"
    _order = "start desc, id desc"

    animal_id = fields.Many2one("farm.animal", required=True, ondelete="cascade", index=True)
    product = fields.Char(required=True)
    start = fields.Datetime(required=True)
    withdrawal_hours = fields.Float(digits=(8, 2))
    withdrawal_milkings = fields.Integer()
    withdrawal_end = fields.Datetime(compute="_compute_withdrawal_end", store=True)
    note = fields.Text()
    recorded_by = fields.Char()
    source = fields.Selection([("manual", "Manual"), ("console", "Milk Console")], default="manual")
    source_reference = fields.Char(index=True, copy=False)
    active = fields.Boolean(default=True)

    if CONSTRAINT_OBJECTS:
        _source_reference_uniq = models.Constraint("UNIQUE(source_reference)", REFERENCE_UNIQUE)
    else:
        _sql_constraints = [("source_reference_uniq", "UNIQUE(source_reference)", REFERENCE_UNIQUE)]

    @api.depends("start", "withdrawal_hours")
    def _compute_withdrawal_end(self):
        for treatment in self:
            if treatment.start and treatment.withdrawal_hours:
                treatment.withdrawal_end = treatment.start + timedelta(
                    hours=treatment.withdrawal_hours
                )
            else:
                treatment.withdrawal_end = False
