"""Treatments with a milk withdrawal: recorded at the console or pulled from Odoo.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

One row per `farm.animal.treatment`: `key` is its `source_reference` (a console-recorded one's
own key, or `odoo:<id>` for one made in Odoo without a reference), `odoo_id` once known. The
withdrawal is in hours or in milkings (exactly one). `source` says where it was recorded
('console' | 'odoo'); `active` False means cancelled. A cow's deletion takes her treatments.

Migrations are frozen history: use plain `sa` types here, never import the current mappings.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "treatments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("odoo_id", sa.Integer(), nullable=True),
        sa.Column("animal_id", sa.Integer(), nullable=False),
        sa.Column("product", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("withdrawal_hours", sa.Float(), nullable=True),
        sa.Column("withdrawal_milkings", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recorded_by", sa.String(), nullable=True),
        sa.Column("source", sa.String(), server_default="console", nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("write_date", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["animal_id"],
            ["animals.id"],
            name=op.f("fk_treatments_animal_id_animals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_treatments")),
        sa.UniqueConstraint("key", name=op.f("uq_treatments_key")),
        sa.UniqueConstraint("odoo_id", name=op.f("uq_treatments_odoo_id")),
    )
    with op.batch_alter_table("treatments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_treatments_animal_id"), ["animal_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("treatments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_treatments_animal_id"))
    op.drop_table("treatments")
