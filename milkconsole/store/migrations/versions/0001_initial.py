"""Initial schema: every table of the first release, and the append-only audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Migrations are frozen history: use plain `sa` types here, never import the current mappings.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AUDIT_TRIGGERS = {"audit_log_no_update": "UPDATE", "audit_log_no_delete": "DELETE"}


def upgrade() -> None:
    op.create_table(
        "animals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("odoo_id", sa.Integer(), nullable=True),
        sa.Column("number", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("rfid_tag", sa.String(), nullable=True),
        sa.Column("group_name", sa.String(), nullable=True),
        sa.Column("conductivity_baseline_ms_cm", sa.Float(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("1"), nullable=False),
        sa.Column("write_date", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_animals")),
        sa.UniqueConstraint("odoo_id", name=op.f("uq_animals_odoo_id")),
    )
    with op.batch_alter_table("animals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_animals_rfid_tag"), ["rfid_tag"], unique=False)

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=True),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_at", ["at"], unique=False)

    op.create_table(
        "calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meter_id", sa.String(), nullable=False),
        sa.Column("performed_at", sa.DateTime(), nullable=False),
        sa.Column("performed_by", sa.String(), nullable=False),
        sa.Column("method", sa.String(), nullable=False),
        sa.Column("readings", sa.JSON(), nullable=False),
        sa.Column("references", sa.JSON(), nullable=False),
        sa.Column("old_factor", sa.Float(), nullable=False),
        sa.Column("new_factor", sa.Float(), nullable=False),
        sa.Column("mean_deviation_pct", sa.Float(), nullable=True),
        sa.Column("sd_deviation_pct", sa.Float(), nullable=True),
        sa.Column("result", sa.String(), nullable=False),
        sa.Column("conductivity_offset_ms_cm", sa.Float(), nullable=True),
        sa.Column("next_due_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calibrations")),
    )
    with op.batch_alter_table("calibrations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calibrations_meter_id"), ["meter_id"], unique=False)

    op.create_table(
        "meters",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("bus_id", sa.String(), nullable=False),
        sa.Column("unit", sa.Integer(), nullable=False),
        sa.Column("profile", sa.String(), nullable=False),
        sa.Column("stall", sa.Integer(), nullable=False),
        sa.Column("calibration_factor", sa.Float(), server_default="1.0", nullable=False),
        sa.Column("conductivity_offset_ms_cm", sa.Float(), server_default="0.0", nullable=False),
        sa.Column("calibration_due_at", sa.DateTime(), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(), nullable=True),
        sa.Column("odoo_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meters")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_key", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("operation", sa.String(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("odoo_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_model_record_key", ["model", "record_key"], unique=False)
        batch_op.create_index(
            "ix_outbox_state_next_attempt_at", ["state", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            "uq_outbox_create_model_record_key",
            ["model", "record_key"],
            unique=True,
            sqlite_where=sa.text("operation = 'create'"),
        )

    op.create_table(
        "sync_state",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sync_state")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("pin_hash", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "animal_tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("animal_id", sa.Integer(), nullable=False),
        sa.Column("rfid_tag", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["animal_id"],
            ["animals.id"],
            name=op.f("fk_animal_tags_animal_id_animals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_animal_tags")),
        sa.UniqueConstraint("rfid_tag", name=op.f("uq_animal_tags_rfid_tag")),
    )
    with op.batch_alter_table("animal_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_animal_tags_animal_id"), ["animal_id"], unique=False)

    op.create_table(
        "milk_sessions",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("meter_id", sa.String(), nullable=False),
        sa.Column("stall", sa.Integer(), nullable=False),
        sa.Column("rfid", sa.String(), nullable=True),
        sa.Column("animal_id", sa.Integer(), nullable=True),
        sa.Column("id_source", sa.String(), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("yield_l", sa.Float(), nullable=False),
        sa.Column("meter_yield_l", sa.Float(), nullable=False),
        sa.Column("yield_offset_l", sa.Float(), nullable=False),
        sa.Column("flow_l_min", sa.Float(), nullable=False),
        sa.Column("peak_flow_l_min", sa.Float(), nullable=False),
        sa.Column("avg_flow_l_min", sa.Float(), nullable=False),
        sa.Column("conductivity_mean_ms_cm", sa.Float(), nullable=True),
        sa.Column("conductivity_max_ms_cm", sa.Float(), nullable=True),
        sa.Column("conductivity_sum", sa.Float(), nullable=False),
        sa.Column("conductivity_n", sa.Integer(), nullable=False),
        sa.Column("ec_lf_ms_cm", sa.Float(), nullable=True),
        sa.Column("ec_rf_ms_cm", sa.Float(), nullable=True),
        sa.Column("ec_lr_ms_cm", sa.Float(), nullable=True),
        sa.Column("ec_rr_ms_cm", sa.Float(), nullable=True),
        sa.Column("temperature_c", sa.Float(), nullable=True),
        sa.Column("fat_pct", sa.Float(), nullable=True),
        sa.Column("protein_pct", sa.Float(), nullable=True),
        sa.Column("lactose_pct", sa.Float(), nullable=True),
        sa.Column("scc_cells_ml", sa.Integer(), nullable=True),
        sa.Column("blood", sa.Boolean(), nullable=True),
        sa.Column("vacuum_kpa", sa.Float(), nullable=True),
        sa.Column("pulsation_cpm", sa.Float(), nullable=True),
        sa.Column("flags", sa.Text(), nullable=False),
        sa.Column("quality_grade", sa.String(), nullable=True),
        sa.Column("abnormal", sa.Boolean(), server_default=sa.text("0"), nullable=False),
        sa.Column("reattached", sa.Boolean(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["animal_id"],
            ["animals.id"],
            name=op.f("fk_milk_sessions_animal_id_animals"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_milk_sessions")),
    )
    with op.batch_alter_table("milk_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_milk_sessions_ended_at", ["ended_at"], unique=False)
        batch_op.create_index("ix_milk_sessions_meter_id", ["meter_id"], unique=False)
        batch_op.create_index("ix_milk_sessions_started_at", ["started_at"], unique=False)
        batch_op.create_index("ix_milk_sessions_state", ["state"], unique=False)

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("condition", sa.String(), nullable=True),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("animal_id", sa.Integer(), nullable=True),
        sa.Column("rfid", sa.String(), nullable=True),
        sa.Column("session_key", sa.String(), nullable=True),
        sa.Column("meter_id", sa.String(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raised_at", sa.DateTime(), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["animal_id"],
            ["animals.id"],
            name=op.f("fk_alerts_animal_id_animals"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_key"],
            ["milk_sessions.key"],
            name=op.f("fk_alerts_session_key_milk_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("key", name=op.f("uq_alerts_key")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_raised_at", ["raised_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_alerts_session_key"), ["session_key"], unique=False)
        batch_op.create_index("ix_alerts_state", ["state"], unique=False)

    op.create_table(
        "flow_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_key", sa.String(), nullable=False),
        sa.Column("elapsed_s", sa.Float(), nullable=False),
        sa.Column("yield_l", sa.Float(), nullable=False),
        sa.Column("flow_l_min", sa.Float(), nullable=False),
        sa.Column("conductivity_ms_cm", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_key"],
            ["milk_sessions.key"],
            name=op.f("fk_flow_samples_session_key_milk_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_samples")),
    )
    with op.batch_alter_table("flow_samples", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_flow_samples_session_key"), ["session_key"], unique=False
        )

    op.create_table(
        "health_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("animal_id", sa.Integer(), nullable=True),
        sa.Column("session_key", sa.String(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["animal_id"],
            ["animals.id"],
            name=op.f("fk_health_events_animal_id_animals"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_key"],
            ["milk_sessions.key"],
            name=op.f("fk_health_events_session_key_milk_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_events")),
        sa.UniqueConstraint("key", name=op.f("uq_health_events_key")),
    )
    with op.batch_alter_table("health_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_health_events_session_key"), ["session_key"], unique=False
        )

    # The audit log is evidence: nothing may rewrite or remove a row once written.
    for name, verb in _AUDIT_TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} BEFORE {verb} ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
        )


def downgrade() -> None:
    for name in _AUDIT_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("health_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_health_events_session_key"))

    op.drop_table("health_events")
    with op.batch_alter_table("flow_samples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_samples_session_key"))

    op.drop_table("flow_samples")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_state")
        batch_op.drop_index(batch_op.f("ix_alerts_session_key"))
        batch_op.drop_index("ix_alerts_raised_at")

    op.drop_table("alerts")
    with op.batch_alter_table("milk_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_milk_sessions_state")
        batch_op.drop_index("ix_milk_sessions_started_at")
        batch_op.drop_index("ix_milk_sessions_meter_id")
        batch_op.drop_index("ix_milk_sessions_ended_at")

    op.drop_table("milk_sessions")
    with op.batch_alter_table("animal_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_animal_tags_animal_id"))

    op.drop_table("animal_tags")
    op.drop_table("users")
    op.drop_table("sync_state")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_outbox_create_model_record_key", sqlite_where=sa.text("operation = 'create'")
        )
        batch_op.drop_index("ix_outbox_state_next_attempt_at")
        batch_op.drop_index("ix_outbox_model_record_key")

    op.drop_table("outbox")
    op.drop_table("meters")
    with op.batch_alter_table("calibrations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calibrations_meter_id"))

    op.drop_table("calibrations")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_at")

    op.drop_table("audit_log")
    with op.batch_alter_table("animals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_animals_rfid_tag"))

    op.drop_table("animals")
