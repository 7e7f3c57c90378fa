from odoo import fields, models

from .sql_constraints import CONSTRAINT_OBJECTS

RFID_UNIQUE = "This RFID tag is already registered."


class FarmAnimalRfid(models.Model):
    """A cow's alternative tags (a replacement ear tag, a bolus), besides farm.animal.rfid_tag."""

    _name = "farm.animal.rfid"
    _description = "Animal RFID Tag"
    _rec_name = "rfid_tag"
    _order = "animal_id, id"

    animal_id = fields.Many2one("farm.animal", required=True, ondelete="cascade", index=True)
    rfid_tag = fields.Char("RFID Tag", required=True, index=True, copy=False)
    active = fields.Boolean(default=True)

    if CONSTRAINT_OBJECTS:
        _rfid_tag_uniq = models.Constraint("UNIQUE(rfid_tag)", RFID_UNIQUE)
    else:
        _sql_constraints = [("rfid_tag_uniq", "UNIQUE(rfid_tag)", RFID_UNIQUE)]
