from odoo import api, fields, models

from .sql_constraints import CONSTRAINT_OBJECTS

REFERENCE_UNIQUE = "A production record with this source reference already exists."
MILKING_TIMES = [("am", "Morning"), ("pm", "Evening")]


class FarmMilkProduction(models.Model):
    _name = "farm.milk.production"
    _description = "Milk Production"
    _order = "date desc, milking_time desc, id desc"

    # RESTRICT: deleting a cow must never take her production history with her.
    animal_id = fields.Many2one("farm.animal", required=True, ondelete="restrict", index=True)
    date = fields.Date(required=True)
    milking_time = fields.Selection(MILKING_TIMES, required=True)
    quantity = fields.Float(digits=(10, 3), required=True)
    fat_percentage = fields.Float(digits=(5, 2))
    protein_percentage = fields.Float(digits=(5, 2))
    somatic_cell_count = fields.Integer()
    source = fields.Selection(
        [("manual", "Manual"), ("iot_meter", "IoT Milk Meter"), ("import", "Import")],
        default="manual",
    )
    # For source iot_meter: the name of the milk.session this record was made from.
    source_reference = fields.Char(index=True, copy=False)

    if CONSTRAINT_OBJECTS:
        _source_reference_uniq = models.Constraint("UNIQUE(source_reference)", REFERENCE_UNIQUE)
    else:
        _sql_constraints = [("source_reference_uniq", "UNIQUE(source_reference)", REFERENCE_UNIQUE)]

    @api.depends("animal_id", "date", "milking_time")
    def _compute_display_name(self):
        times = dict(MILKING_TIMES)
        for record in self:
            parts = [
                record.animal_id.display_name or "",
                fields.Date.to_string(record.date) if record.date else "",
                times.get(record.milking_time, ""),
            ]
            record.display_name = " ".join(part for part in parts if part)

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        records._link_meter_sessions()
        return records

    def _link_meter_sessions(self):
        """Point each meter session at the production record made from it.

        The console creates production records in batches with the session's name as
        source_reference; linking here spares it a write call per session. One UPDATE for the
        whole batch (a write per session, even batched by the ORM, is one statement each, and
        made a week's backlog of 10,500 records half again as slow); sessions that already
        have a production record keep it.
        """
        pairs = [
            (record.source_reference, record.id)
            for record in self
            if record.source == "iot_meter" and record.source_reference
        ]
        if not pairs:
            return
        sessions = self.env["milk.session"]
        sessions.flush_model(["name", "production_id"])
        self.env.cr.execute(
            """
            UPDATE milk_session AS s
               SET production_id = v.production_id,
                   write_uid = %s,
                   write_date = (now() at time zone 'UTC')
              FROM unnest(%s::varchar[], %s::int[]) AS v(name, production_id)
             WHERE s.name = v.name AND s.production_id IS NULL
         RETURNING s.id
            """,
            [self.env.uid, [name for name, _ in pairs], [pid for _, pid in pairs]],
        )
        linked = [row[0] for row in self.env.cr.fetchall()]
        # The ORM's cache must learn what SQL changed under it.
        sessions.browse(linked).invalidate_recordset(["production_id", "write_uid", "write_date"])
