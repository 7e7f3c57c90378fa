from odoo import fields, models

from .sql_constraints import CONSTRAINT_OBJECTS

RFID_UNIQUE = "Another animal already has this RFID tag."


class FarmAnimal(models.Model):
    _name = "farm.animal"
    _description = "Animal"
    _order = "name, id"

    # The console sends the herd number as the name when a cow has none.
    name = fields.Char("Name", required=True)
    number = fields.Char("Herd Number", index=True)
    # Canonical form: ISO 11784 as 15 digits ("982000123456789") or "ASCII:AB12CD34".
    rfid_tag = fields.Char("RFID Tag", index=True, copy=False)
    rfid_ids = fields.One2many("farm.animal.rfid", "animal_id", string="Other RFID Tags")
    conductivity_baseline = fields.Float(digits=(6, 3))
    herd_group = fields.Char("Group")
    birth_date = fields.Date()
    lactation_number = fields.Integer()
    last_calving_date = fields.Date()
    milk_withheld = fields.Boolean("Keep milk out of tank")
    milk_withheld_reason = fields.Char()
    active = fields.Boolean(default=True)

    if CONSTRAINT_OBJECTS:
        _rfid_tag_uniq = models.Constraint("UNIQUE(rfid_tag)", RFID_UNIQUE)
    else:
        _sql_constraints = [("rfid_tag_uniq", "UNIQUE(rfid_tag)", RFID_UNIQUE)]
