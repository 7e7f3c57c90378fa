"""A year on the parlour PC: compact flow curves, and the indexes a year of sessions needs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

- `flow_curves`: one packed value per finished session (`milkconsole.store.curves`, format 1)
  instead of a row per sample (about 21 KB a milking as rows, well under 1 KB packed). The
  curves of finished sessions are packed here and their rows deleted; an open session keeps
  its rows (the recorder packs them when it completes).
- `milk_sessions (meter_id, started_at)` replaces `(meter_id)`: a meter's last milking at
  start (a cow's milkings, `(animal_id, started_at)`, came with the reports in 0005).
- `outbox (state, sent_at)`: retention prunes sent rows by age; `(channel, state, id)`: the
  MQTT publisher's claim (all models) walks pending rows in id order and stops at its batch,
  as the sync's does with `ix_outbox_claim` (0002).

Migrations are frozen history and use plain `sa` types. The one import from the application is
the curve codec: its packed value names its format, and the codec reads every format it ever
wrote, so packing here with it stays readable by every later release.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from milkconsole.meters.events import FlowSample
from milkconsole.store.curves import pack_curve, unpack_curve

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 500  # sessions packed per round trip


def upgrade() -> None:
    op.create_table(
        "flow_curves",
        sa.Column("session_key", sa.String(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("interval_s", sa.Float(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_key"],
            ["milk_sessions.key"],
            name=op.f("fk_flow_curves_session_key_milk_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_key", name=op.f("pk_flow_curves")),
    )
    _pack_finished_curves()
    with op.batch_alter_table("milk_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_milk_sessions_meter_id")
        batch_op.create_index(
            "ix_milk_sessions_meter_id_started_at", ["meter_id", "started_at"], unique=False
        )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_state_sent_at", ["state", "sent_at"], unique=False)
        batch_op.create_index(
            "ix_outbox_channel_state_id", ["channel", "state", "id"], unique=False
        )


def _pack_finished_curves() -> None:
    conn = op.get_bind()
    keys = [
        k
        for (k,) in conn.execute(
            sa.text(
                "SELECT DISTINCT f.session_key FROM flow_samples f "
                "JOIN milk_sessions s ON s.key = f.session_key WHERE s.state != 'in_progress' "
                "ORDER BY f.session_key"
            )
        )
    ]
    for start in range(0, len(keys), _BATCH):
        chunk = keys[start : start + _BATCH]
        curves: dict[str, list[FlowSample]] = {k: [] for k in chunk}
        rows = conn.execute(
            sa.text(
                "SELECT session_key, elapsed_s, yield_l, flow_l_min, conductivity_ms_cm "
                "FROM flow_samples WHERE session_key IN :keys ORDER BY session_key, elapsed_s, id"
            ).bindparams(sa.bindparam("keys", expanding=True)),
            {"keys": chunk},
        )
        for key, elapsed, yield_l, flow, ec in rows:
            curves[key].append(FlowSample(elapsed, yield_l, flow, ec))
        conn.execute(
            sa.text(
                "INSERT INTO flow_curves (session_key, samples, interval_s, data) "
                "VALUES (:key, :n, NULL, :data)"
            ),
            [{"key": k, "n": len(v), "data": pack_curve(v)} for k, v in curves.items()],
        )
        conn.execute(
            sa.text("DELETE FROM flow_samples WHERE session_key IN :keys").bindparams(
                sa.bindparam("keys", expanding=True)
            ),
            {"keys": chunk},
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_channel_state_id")
        batch_op.drop_index("ix_outbox_state_sent_at")
    with op.batch_alter_table("milk_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_milk_sessions_meter_id_started_at")
        batch_op.create_index("ix_milk_sessions_meter_id", ["meter_id"], unique=False)
    conn = op.get_bind()
    for key, data in conn.execute(sa.text("SELECT session_key, data FROM flow_curves")).all():
        samples = unpack_curve(data)
        if not samples:
            continue
        conn.execute(
            sa.text(
                "INSERT INTO flow_samples (session_key, elapsed_s, yield_l, flow_l_min, "
                "conductivity_ms_cm) VALUES (:key, :e, :y, :f, :c)"
            ),
            [
                {
                    "key": key,
                    "e": s.elapsed_s,
                    "y": s.yield_l,
                    "f": s.flow_l_min,
                    "c": s.conductivity_ms_cm,
                }
                for s in samples
            ],
        )
    op.drop_table("flow_curves")
