from odoo import api, fields, models

from .sql_constraints import CONSTRAINT_OBJECTS

NAME_UNIQUE = "A milking session with this Session ID already exists."
SEQUENCE_CODE = "milk.session.sequence"

# The seed's quality rule (percentages in %, somatic cells per mL).
SCC_REJECT = 400_000
SCC_GRADE_A = 200_000
# The seed's abnormality rule: conductivity above this factor of the cow's baseline (mS/cm).
CONDUCTIVITY_FACTOR = 1.2
DEFAULT_CONDUCTIVITY_BASELINE = 5.5


def quality_grade(blood, scc, fat, protein):
    """The seed's grade for one milking, or False when fat or protein is unknown."""
    if blood or scc > SCC_REJECT:
        return "reject"
    if not fat or not protein:
        return False
    if fat >= 3.5 and protein >= 3.0:
        return "A" if scc < SCC_GRADE_A else "B"
    if fat >= 3.0 and protein >= 2.8:
        return "B"
    if fat >= 2.5:
        return "C"
    return "reject"


class MilkSession(models.Model):
    """One cow's milking at one meter. The console sends finished sessions named with its own
    key; sessions entered by hand get a name from the milk.session.sequence sequence."""

    _name = "milk.session"
    _description = "Milking Session"
    _order = "start_time desc"

    name = fields.Char("Session ID", copy=False)
    meter_id = fields.Many2one("iot.milk_meter", required=True, ondelete="restrict")
    animal_id = fields.Many2one("farm.animal", ondelete="set null", index=True)
    milking_point = fields.Many2one("iot.milk_meter.point", ondelete="set null")
    rfid_tag = fields.Char(index=True)
    start_time = fields.Datetime(required=True)
    end_time = fields.Datetime()
    duration_seconds = fields.Integer(compute="_compute_duration_seconds", store=True)
    current_yield = fields.Float(digits=(10, 3))
    total_yield = fields.Float(digits=(10, 3))
    current_flow_rate = fields.Float(digits=(8, 3))
    peak_flow_rate = fields.Float(digits=(8, 3))
    avg_flow_rate = fields.Float(digits=(8, 3))
    milk_temperature = fields.Float(digits=(5, 2))
    conductivity = fields.Float(digits=(6, 3))
    fat_percentage = fields.Float(digits=(5, 2))
    protein_percentage = fields.Float(digits=(5, 2))
    lactose_percentage = fields.Float(digits=(5, 2))
    somatic_cell_count = fields.Integer()
    blood_detected = fields.Boolean(default=False)
    vacuum_level = fields.Float(digits=(5, 2))
    pulsation_rate = fields.Integer()
    # Computed only for what arrives without one (sessions entered by hand): a grade or an
    # abnormality the console sends is kept, as Odoo does not recompute an editable computed
    # field given at create.
    quality_grade = fields.Selection(
        [("A", "Grade A"), ("B", "Grade B"), ("C", "Grade C"), ("reject", "Reject")],
        compute="_compute_quality_grade",
        store=True,
        readonly=False,
    )
    is_abnormal = fields.Boolean(compute="_compute_abnormality", store=True, readonly=False)
    abnormality_reason = fields.Char(compute="_compute_abnormality", store=True, readonly=False)
    state = fields.Selection(
        [("in_progress", "In Progress"), ("completed", "Completed"), ("cancelled", "Cancelled")],
        default="in_progress",
    )
    production_id = fields.Many2one("farm.milk.production", ondelete="set null")
    milk_destination = fields.Selection(
        [("tank", "Bulk tank"), ("diverted", "Diverted")], default="tank"
    )
    divert_reason = fields.Char()
    divert_confirmed_by = fields.Char()

    if CONSTRAINT_OBJECTS:
        _name_uniq = models.Constraint("UNIQUE(name)", NAME_UNIQUE)
    else:
        _sql_constraints = [("name_uniq", "UNIQUE(name)", NAME_UNIQUE)]

    @api.model_create_multi
    def create(self, vals_list):
        unnamed = [vals for vals in vals_list if not vals.get("name")]
        if unnamed:
            # The sequence is looked up once for the batch (next_by_code would search for it
            # again for every record); the same choice as next_by_code: this company's first.
            sequence = self.env["ir.sequence"].search(
                [("code", "=", SEQUENCE_CODE), ("company_id", "in", [self.env.company.id, False])],
                order="company_id",
                limit=1,
            )
            for vals in unnamed:
                vals["name"] = sequence._next() if sequence else False
        return super().create(vals_list)

    @api.depends("start_time", "end_time")
    def _compute_duration_seconds(self):
        for session in self:
            if session.start_time and session.end_time:
                delta = session.end_time - session.start_time
                session.duration_seconds = int(delta.total_seconds())
            else:
                session.duration_seconds = 0

    @api.depends("blood_detected", "somatic_cell_count", "fat_percentage", "protein_percentage")
    def _compute_quality_grade(self):
        for session in self:
            session.quality_grade = quality_grade(
                session.blood_detected,
                session.somatic_cell_count,
                session.fat_percentage,
                session.protein_percentage,
            )

    # Depends on the conductivity only, not on the cow: naming the cow afterwards (the console
    # writes animal_id when a cow is identified by hand) or changing her baseline later must
    # not rewrite what was decided about a past milking.
    @api.depends("conductivity")
    def _compute_abnormality(self):
        for session in self:
            baseline = session.animal_id.conductivity_baseline or DEFAULT_CONDUCTIVITY_BASELINE
            elevated = session.conductivity > CONDUCTIVITY_FACTOR * baseline
            session.is_abnormal = elevated
            session.abnormality_reason = "Elevated conductivity" if elevated else False
