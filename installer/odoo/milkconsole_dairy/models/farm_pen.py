from odoo import fields, models


class FarmPen(models.Model):
    _name = "farm.pen"
    _description = "Pen"
    _order = "name, id"

    name = fields.Char(required=True)
    code = fields.Char()
