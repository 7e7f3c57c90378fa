"""Which way this Odoo declares SQL constraints.

Odoo 17 and 18 read a model's `_sql_constraints` list. Odoo 19 ignores that list (it only logs
"Model attribute '_sql_constraints' is no longer supported") and reads `models.Constraint`
class attributes instead, which 17 and 18 do not have. Each model therefore declares its
constraints in the spelling of the running Odoo, chosen by `CONSTRAINT_OBJECTS`. Both spellings
name the database constraint `<table>_<key>` (the attribute name without its underscore), so a
database upgraded from 17 to 19 keeps the same constraint instead of gaining a second one.
"""

from odoo import models

CONSTRAINT_OBJECTS = hasattr(models, "Constraint")
