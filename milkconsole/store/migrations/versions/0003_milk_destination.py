"""Milk separation: where a session's milk went (tank or diverted), why, and who confirmed it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

`destination` is None while nobody knows (an unidentified or in-progress milking); the tank
totals, the bulk-tank reconciliation and the production record leave out `diverted` milk.

Migrations are frozen history: use plain `sa` types here, never import the current mappings.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("milk_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("destination", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("divert_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("divert_confirmed_by", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("divert_confirmed_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("milk_sessions", schema=None) as batch_op:
        batch_op.drop_column("divert_confirmed_at")
        batch_op.drop_column("divert_confirmed_by")
        batch_op.drop_column("divert_reason")
        batch_op.drop_column("destination")
