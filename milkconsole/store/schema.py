"""The stored rows: SQLAlchemy 2 typed mappings for every table of the local database.

These classes stay inside `milkconsole.store`; the rest of the core speaks frozen dataclasses
(`SessionSnapshot`, `SessionRecord`, `AlertRecord`, `OutboxItem`; docs/architecture.md, "Names").
A mapping whose name could be taken for the thing it stores is named as a row (`SessionRow`, the
stored session; `AlertRow`, the stored alert). Every datetime column is `UTCDateTime`:
stored as naive UTC text, handed back aware UTC, and a naive datetime is refused on the way in.
The tables are created by Alembic (`migrations/versions/`), never by `create_all`; a test checks
that the migrations and these mappings agree.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    select,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names: SQLite ALTERs go through Alembic's batch mode, which has to
# name the constraints it copies.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> datetime:
    """Now as an aware UTC datetime (the only kind the store accepts)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as naive UTC; naive input is refused, output is aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            # A naive datetime is ambiguous (local? UTC?); refusing it here keeps every stored
            # time comparable.
            raise ValueError(f"naive datetime {value.isoformat()} refused: the store keeps UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utc_from_text(value: str | None) -> datetime | None:
    """A `UTCDateTime` column read as its stored text (`type_coerce(column, String)`), as the
    aware UTC datetime the column gives: for reads of thousands of rows, where SQLAlchemy's
    own conversion costs more than the query."""
    if value is None:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Meter(Base):
    __tablename__ = "meters"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String, default="")
    bus_id: Mapped[str] = mapped_column(String)
    unit: Mapped[int] = mapped_column(Integer)
    profile: Mapped[str] = mapped_column(String)
    stall: Mapped[int] = mapped_column(Integer)
    calibration_factor: Mapped[float] = mapped_column(Float, default=1.0, server_default="1.0")
    conductivity_offset_ms_cm: Mapped[float] = mapped_column(
        Float, default=0.0, server_default="0.0"
    )
    calibration_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Odoo ids once the meter is registered: the `iot.device` (alerts link to it), the
    # `iot.milk_meter` that inherits it (sessions link to it) and its milking point.
    odoo_device_id: Mapped[int | None] = mapped_column(Integer)
    odoo_meter_id: Mapped[int | None] = mapped_column(Integer)
    odoo_point_id: Mapped[int | None] = mapped_column(Integer)


class Animal(Base):
    __tablename__ = "animals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    odoo_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    number: Mapped[str] = mapped_column(String, index=True)
    name: Mapped[str | None] = mapped_column(String)
    # The canonical tag; alternative tags (a replaced ear tag) live in animal_tags.
    rfid_tag: Mapped[str | None] = mapped_column(String, index=True)
    group_name: Mapped[str | None] = mapped_column(String)
    conductivity_baseline_ms_cm: Mapped[float | None] = mapped_column(Float)
    birth_date: Mapped[date | None] = mapped_column(Date)
    lactation_number: Mapped[int | None] = mapped_column(Integer)
    last_calving_date: Mapped[date | None] = mapped_column(Date)
    # Set: her milk must be kept out of the tank for this reason (no end date; see treatments).
    milk_withheld_reason: Mapped[str | None] = mapped_column(String)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("1"))
    write_date: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AnimalTag(Base):
    __tablename__ = "animal_tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    animal_id: Mapped[int] = mapped_column(ForeignKey("animals.id", ondelete="CASCADE"), index=True)
    rfid_tag: Mapped[str] = mapped_column(String, unique=True)


class TreatmentRow(Base):
    """A treatment with a milk withdrawal (hours or milkings), from the console or Odoo."""

    __tablename__ = "treatments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String, unique=True)  # Odoo's source_reference
    odoo_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    animal_id: Mapped[int] = mapped_column(ForeignKey("animals.id", ondelete="CASCADE"), index=True)
    product: Mapped[str] = mapped_column(String)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    withdrawal_hours: Mapped[float | None] = mapped_column(Float)
    withdrawal_milkings: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    recorded_by: Mapped[str | None] = mapped_column(String)
    source: Mapped[str] = mapped_column(String, default="console", server_default="console")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    write_date: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SessionRow(Base):
    __tablename__ = "milk_sessions"
    __table_args__ = (
        Index("ix_milk_sessions_state", "state"),
        Index("ix_milk_sessions_started_at", "started_at"),
        Index("ix_milk_sessions_ended_at", "ended_at"),
        # Reports (migration 0005): a cow's sessions by time, and a period's figures read from
        # the index alone (it carries every column they need).
        Index("ix_milk_sessions_animal_id_started_at", "animal_id", "started_at"),
        Index(
            "ix_milk_sessions_started_at_figures",
            "started_at",
            "state",
            "animal_id",
            "yield_l",
            "conductivity_max_ms_cm",
            "destination",
        ),
        # A meter's last milking (stall view start) without reading a year of sessions (0007).
        Index("ix_milk_sessions_meter_id_started_at", "meter_id", "started_at"),
    )

    key: Mapped[str] = mapped_column(String, primary_key=True)
    meter_id: Mapped[str] = mapped_column(String)
    stall: Mapped[int] = mapped_column(Integer)
    rfid: Mapped[str | None] = mapped_column(String)  # raw, as the meter gave it
    animal_id: Mapped[int | None] = mapped_column(ForeignKey("animals.id", ondelete="SET NULL"))
    id_source: Mapped[str | None] = mapped_column(String)  # 'rfid' | 'manual' | None
    state: Mapped[str] = mapped_column(String)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    yield_l: Mapped[float] = mapped_column(Float, default=0.0)
    meter_yield_l: Mapped[float] = mapped_column(Float, default=0.0)
    yield_offset_l: Mapped[float] = mapped_column(Float, default=0.0)
    flow_l_min: Mapped[float] = mapped_column(Float, default=0.0)
    peak_flow_l_min: Mapped[float] = mapped_column(Float, default=0.0)
    avg_flow_l_min: Mapped[float] = mapped_column(Float, default=0.0)
    conductivity_mean_ms_cm: Mapped[float | None] = mapped_column(Float)
    conductivity_max_ms_cm: Mapped[float | None] = mapped_column(Float)
    conductivity_sum: Mapped[float] = mapped_column(Float, default=0.0)
    conductivity_n: Mapped[int] = mapped_column(Integer, default=0)
    ec_lf_ms_cm: Mapped[float | None] = mapped_column(Float)
    ec_rf_ms_cm: Mapped[float | None] = mapped_column(Float)
    ec_lr_ms_cm: Mapped[float | None] = mapped_column(Float)
    ec_rr_ms_cm: Mapped[float | None] = mapped_column(Float)
    temperature_c: Mapped[float | None] = mapped_column(Float)
    fat_pct: Mapped[float | None] = mapped_column(Float)
    protein_pct: Mapped[float | None] = mapped_column(Float)
    lactose_pct: Mapped[float | None] = mapped_column(Float)
    scc_cells_ml: Mapped[int | None] = mapped_column(Integer)
    blood: Mapped[bool | None] = mapped_column(Boolean)
    vacuum_kpa: Mapped[float | None] = mapped_column(Float)
    pulsation_cpm: Mapped[float | None] = mapped_column(Float)
    flags: Mapped[str] = mapped_column(Text, default="")  # comma separated
    quality_grade: Mapped[str | None] = mapped_column(String)
    abnormal: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("0"))
    reattached: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("0"))
    # Milk separation: 'tank' | 'diverted' (None: not known yet), why, and who confirmed it.
    destination: Mapped[str | None] = mapped_column(String)
    divert_reason: Mapped[str | None] = mapped_column(Text)
    divert_confirmed_by: Mapped[str | None] = mapped_column(String)
    divert_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FlowSampleRow(Base):
    """One flow-curve sample of a session still in progress (packed into `FlowCurveRow` and
    deleted when the session completes)."""

    __tablename__ = "flow_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_key: Mapped[str] = mapped_column(
        ForeignKey("milk_sessions.key", ondelete="CASCADE"), index=True
    )
    elapsed_s: Mapped[float] = mapped_column(Float)
    yield_l: Mapped[float] = mapped_column(Float)
    flow_l_min: Mapped[float] = mapped_column(Float)
    conductivity_ms_cm: Mapped[float | None] = mapped_column(Float)


class FlowCurveRow(Base):
    """A finished session's flow curve, packed (`milkconsole.store.curves`)."""

    __tablename__ = "flow_curves"

    session_key: Mapped[str] = mapped_column(
        ForeignKey("milk_sessions.key", ondelete="CASCADE"), primary_key=True
    )
    samples: Mapped[int] = mapped_column(Integer)
    # None: every sample as recorded; else the curve was thinned to one sample per interval_s.
    interval_s: Mapped[float | None] = mapped_column(Float)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class AlertRow(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_state", "state"),
        Index("ix_alerts_raised_at", "raised_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String, unique=True)
    kind: Mapped[str] = mapped_column(String)  # mastitis, blood, equipment, low_yield, ...
    condition: Mapped[str | None] = mapped_column(String)
    severity: Mapped[str] = mapped_column(String)  # warning | critical
    state: Mapped[str] = mapped_column(String, default="open")  # open | acknowledged | resolved
    animal_id: Mapped[int | None] = mapped_column(ForeignKey("animals.id", ondelete="SET NULL"))
    rfid: Mapped[str | None] = mapped_column(String)
    session_key: Mapped[str | None] = mapped_column(
        ForeignKey("milk_sessions.key", ondelete="SET NULL"), index=True
    )
    meter_id: Mapped[str | None] = mapped_column(String)
    message: Mapped[str] = mapped_column(Text, default="")
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String)
    note: Mapped[str | None] = mapped_column(Text)


class HealthEvent(Base):
    __tablename__ = "health_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String, unique=True)
    animal_id: Mapped[int | None] = mapped_column(ForeignKey("animals.id", ondelete="SET NULL"))
    session_key: Mapped[str | None] = mapped_column(
        ForeignKey("milk_sessions.key", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String)
    detail: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        # The claim walks a channel's pending rows of one model (the sync), or of every model
        # (the MQTT publisher), in id order and stops at its batch: a year's backlog is not
        # sorted on every claim.
        Index("ix_outbox_claim", "channel", "state", "model", "id"),
        Index("ix_outbox_channel_state_id", "channel", "state", "id"),
        Index("ix_outbox_model_record_key", "model", "record_key"),
        # Retention finds the sent rows to prune by age.
        Index("ix_outbox_state_sent_at", "state", "sent_at"),
        # One create per record and channel: the stable key is what makes a retry safe.
        Index(
            "uq_outbox_create_channel_model_record_key",
            "channel",
            "model",
            "record_key",
            unique=True,
            sqlite_where=text("operation = 'create'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Who sends it: 'odoo' (the sync) or 'mqtt' (the publisher).
    channel: Mapped[str] = mapped_column(String, default="odoo", server_default="odoo")
    record_key: Mapped[str] = mapped_column(String)
    model: Mapped[str] = mapped_column(String)  # Odoo model, e.g. 'milk.session'
    # The row waits while this record's create (same channel) is unsent: a production record
    # after its session, a session after its meter's registration.
    after_model: Mapped[str | None] = mapped_column(String)
    after_key: Mapped[str | None] = mapped_column(String)
    operation: Mapped[str] = mapped_column(String)  # create | write
    payload: Mapped[str] = mapped_column(Text)  # JSON
    state: Mapped[str] = mapped_column(String, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    odoo_id: Mapped[int | None] = mapped_column(Integer)


class Calibration(Base):
    __tablename__ = "calibrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meter_id: Mapped[str] = mapped_column(String, index=True)
    performed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    performed_by: Mapped[str] = mapped_column(String)
    method: Mapped[str] = mapped_column(String)
    readings: Mapped[Any] = mapped_column(JSON)
    references: Mapped[Any] = mapped_column(JSON)
    old_factor: Mapped[float] = mapped_column(Float)
    new_factor: Mapped[float] = mapped_column(Float)
    mean_deviation_pct: Mapped[float | None] = mapped_column(Float)
    sd_deviation_pct: Mapped[float | None] = mapped_column(Float)
    result: Mapped[str] = mapped_column(String)  # pass | fail
    conductivity_offset_ms_cm: Mapped[float | None] = mapped_column(Float)
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """One row of the append-only audit log (triggers in the migration refuse UPDATE/DELETE)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String)
    role: Mapped[str | None] = mapped_column(String)
    action: Mapped[str] = mapped_column(String)
    target: Mapped[str] = mapped_column(String)
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    role: Mapped[str] = mapped_column(String)  # technician | supervisor
    pin_hash: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebToken(Base):
    """A phone's access to the live view: only the SHA-256 of its secret is kept."""

    __tablename__ = "web_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String)
    token_hash: Mapped[str] = mapped_column(String, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SyncState(Base):
    __tablename__ = "sync_state"

    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)


def append_audit(
    tx: Session,
    *,
    actor: str,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
    role: str | None = None,
    at: datetime | None = None,
) -> None:
    """Append one audit row inside the caller's transaction (so it lives or dies with the change).

    `role` defaults to the role of the user named `actor`, when there is one.
    """
    if role is None:
        role = tx.scalar(select(User.role).where(User.name == actor))
    tx.add(
        AuditEntry(
            at=at or utc_now(),
            actor=actor,
            role=role,
            action=action,
            target=target,
            before=before,
            after=after,
        )
    )
