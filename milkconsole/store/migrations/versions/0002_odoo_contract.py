"""The seed's Odoo contract: outbox channels and dependencies, meter registration ids, herd fields.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

- `outbox.channel` ('odoo' | 'mqtt'): one outbox, one state machine, one sender per channel.
- `outbox.after_model` / `after_key`: a row waits until that record's create was sent (a
  production record after its session, a session after its meter's registration).
- The unique "one create per record" index now includes the channel; the claim has an index
  that reads pending rows of one model in id order.
- `meters.odoo_id` becomes `odoo_device_id` (the `iot.device`), beside `odoo_meter_id` (the
  `iot.milk_meter` a session links to) and `odoo_point_id` (its milking point): a session and an
  alert point at different models, so one id cannot serve both.
- `animals` gain the herd fields the contract pulls (group, birth, lactation, calving, milk
  withheld).

Migrations are frozen history: use plain `sa` types here, never import the current mappings.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("channel", sa.String(), server_default="odoo", nullable=False)
        )
        batch_op.add_column(sa.Column("after_model", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("after_key", sa.String(), nullable=True))
        batch_op.drop_index("uq_outbox_create_model_record_key")
        batch_op.drop_index("ix_outbox_state_next_attempt_at")
        batch_op.create_index(
            "uq_outbox_create_channel_model_record_key",
            ["channel", "model", "record_key"],
            unique=True,
            sqlite_where=sa.text("operation = 'create'"),
        )
        # The claim walks one channel's pending rows of one model in id order and stops at
        # the batch size: with this index it reads only what it claims, however long the
        # backlog (the old (state, next_attempt_at) index made it sort every pending row).
        batch_op.create_index("ix_outbox_claim", ["channel", "state", "model", "id"], unique=False)

    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.alter_column("odoo_id", new_column_name="odoo_device_id")
        batch_op.add_column(sa.Column("odoo_meter_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("odoo_point_id", sa.Integer(), nullable=True))

    with op.batch_alter_table("animals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("birth_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("lactation_number", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("last_calving_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("milk_withheld_reason", sa.String(), nullable=True))
        batch_op.create_index("ix_animals_number", ["number"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("animals", schema=None) as batch_op:
        batch_op.drop_index("ix_animals_number")
        batch_op.drop_column("milk_withheld_reason")
        batch_op.drop_column("last_calving_date")
        batch_op.drop_column("lactation_number")
        batch_op.drop_column("birth_date")
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.drop_column("odoo_point_id")
        batch_op.drop_column("odoo_meter_id")
        batch_op.alter_column("odoo_device_id", new_column_name="odoo_id")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_claim")
        batch_op.drop_index("uq_outbox_create_channel_model_record_key")
        batch_op.create_index(
            "ix_outbox_state_next_attempt_at", ["state", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            "uq_outbox_create_model_record_key",
            ["model", "record_key"],
            unique=True,
            sqlite_where=sa.text("operation = 'create'"),
        )
        batch_op.drop_column("after_key")
        batch_op.drop_column("after_model")
        batch_op.drop_column("channel")
