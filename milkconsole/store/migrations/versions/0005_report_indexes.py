"""Reports over a year of milkings: a cow's sessions by time, and the figures of a period from
one index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

- `ix_milk_sessions_animal_id_started_at`: a cow's lactation trend and her expected yield (the
  median of her last milkings) read her sessions only, newest first, whatever the herd's size.
- `ix_milk_sessions_started_at_figures`: the herd's day-by-day trend and a milking's comparison
  periods are counted and summed from this index alone (it carries every column those figures
  need), so a year of a large herd is read without touching the table.

Migrations are frozen history: use plain `sa` types here, never import the current mappings.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIGURES_COLUMNS = [
    "started_at",
    "state",
    "animal_id",
    "yield_l",
    "conductivity_max_ms_cm",
    "destination",
]


def upgrade() -> None:
    with op.batch_alter_table("milk_sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_milk_sessions_animal_id_started_at", ["animal_id", "started_at"], unique=False
        )
        batch_op.create_index("ix_milk_sessions_started_at_figures", FIGURES_COLUMNS, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("milk_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_milk_sessions_started_at_figures")
        batch_op.drop_index("ix_milk_sessions_animal_id_started_at")
