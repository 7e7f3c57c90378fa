"""Milking sessions in the store: reading them back and correcting their identity.

Everything here speaks core types (`SessionSnapshot`, the session as shown; `FlowSample`) or
`SessionRecord`, the session as recorded: a frozen copy of one stored row (`schema.SessionRow`)
with its cow's number and name, built by `record_from_row` alone. ORM rows never leave the store.
The row <-> snapshot conversions live here, so the recorder and the corrections agree on them;
what goes to Odoo is built by `milkconsole.store.outbound`, and CSV exports are written by
`milkconsole.reports.csv_out`. The names: docs/architecture.md, "Names".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import func, literal, select, union_all
from sqlalchemy.orm import Session

from milkconsole.herd.directory import cow_label
from milkconsole.meters.events import FINISHED_STATES, FlowSample, SessionSnapshot, SessionState
from milkconsole.store.db import Database
from milkconsole.store.flow_curves import read_curve
from milkconsole.store.outbound import queue_session_fields, queue_session_identity
from milkconsole.store.schema import Animal, SessionRow, append_audit
from milkconsole.store.separation import review_destination

# Who wears a tag is `store.tags`; the recorder and the tests find it here too.
from milkconsole.store.tags import animal_resolver, resolve_animal

# Columns a snapshot owns; the rest of a row (identity, grade, flags set by people) is not
# overwritten when a later snapshot arrives.
SNAPSHOT_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(SessionSnapshot) if f.name not in ("key", "flags")
)


def iso_z(dt: datetime) -> str:
    """ISO 8601 in UTC with a Z, the form every payload and export uses."""
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _flags_text(flags: tuple[str, ...]) -> str:
    # The column is comma separated; a flag with a comma in it would split on the way back.
    return ",".join(f.replace(",", ";") for f in flags if f)


def _flags_tuple(text: str | None) -> tuple[str, ...]:
    return tuple(f for f in (text or "").split(",") if f)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """The session as recorded: one stored milking session, every column, plus the animal's
    number and name (`record_from_row` builds it; the dashboard, the reports, the health hook,
    the calibration and the cow's chart read it)."""

    key: str
    meter_id: str
    stall: int
    rfid: str | None
    animal_id: int | None
    animal_number: str | None
    animal_name: str | None
    id_source: str | None
    state: str
    started_at: datetime
    ended_at: datetime | None
    duration_s: float
    yield_l: float
    meter_yield_l: float
    yield_offset_l: float
    flow_l_min: float
    peak_flow_l_min: float
    avg_flow_l_min: float
    conductivity_mean_ms_cm: float | None
    conductivity_max_ms_cm: float | None
    conductivity_sum: float
    conductivity_n: int
    ec_lf_ms_cm: float | None
    ec_rf_ms_cm: float | None
    ec_lr_ms_cm: float | None
    ec_rr_ms_cm: float | None
    temperature_c: float | None
    fat_pct: float | None
    protein_pct: float | None
    lactose_pct: float | None
    scc_cells_ml: int | None
    blood: bool | None
    vacuum_kpa: float | None
    pulsation_cpm: float | None
    flags: tuple[str, ...]
    quality_grade: str | None
    abnormal: bool
    reattached: bool
    created_at: datetime
    updated_at: datetime
    # Milk separation: 'tank' | 'diverted' (None while unknown), why, who confirmed it.
    destination: str | None = None
    divert_reason: str | None = None
    divert_confirmed_by: str | None = None
    divert_confirmed_at: datetime | None = None

    @property
    def cow_label(self) -> str:
        """'1002 Daisy', '1002', or '' for a session of no known cow."""
        return cow_label(self.animal_number, self.animal_name)

    @property
    def diverted(self) -> bool:
        """Her milk went to the divert line (treated, colostrum, kept out): not in the tank."""
        return self.destination == "diverted"

    @property
    def quarters_ms_cm(self) -> tuple[float | None, float | None, float | None, float | None]:
        """The conductivity of each quarter (LF, RF, LR, RR), None where the meter gave none."""
        return (self.ec_lf_ms_cm, self.ec_rf_ms_cm, self.ec_lr_ms_cm, self.ec_rr_ms_cm)

    @property
    def done_at(self) -> datetime:
        """When what it raises is dated: its end, else its start."""
        return self.ended_at or self.started_at

    def snapshot(self) -> SessionSnapshot:
        """The session as shown (what the stall tracker and the live views speak)."""
        values = {name: getattr(self, name) for name in SNAPSHOT_FIELDS}
        return SessionSnapshot(key=self.key, flags=self.flags, **values)


@dataclass(frozen=True, slots=True)
class PastMilking:
    """A finished milking recorded elsewhere, for `SessionStore.add_past_milkings`."""

    session: SessionSnapshot
    animal_id: int | None = None
    quality_grade: str | None = None
    destination: str | None = "tank"


def record_from_row(row: SessionRow, animal: Animal | None) -> SessionRecord:
    """The session as recorded, from its row and its cow's row (None: no cow, or not known)."""
    values: dict[str, Any] = {
        f.name: getattr(row, f.name)
        for f in fields(SessionRecord)
        if f.name not in ("animal_number", "animal_name", "flags")
    }
    return SessionRecord(
        animal_number=animal.number if animal else None,
        animal_name=animal.name if animal else None,
        flags=_flags_tuple(row.flags),
        **values,
    )


def snapshot_from_row(row: SessionRow) -> SessionSnapshot:
    values = {name: getattr(row, name) for name in SNAPSHOT_FIELDS}
    values["state"] = cast(SessionState, row.state)
    return SessionSnapshot(key=row.key, flags=_flags_tuple(row.flags), **values)


def apply_snapshot(row: SessionRow, snap: SessionSnapshot, now: datetime) -> None:
    """Write the snapshot's columns onto a row (identity, grade and reattached stay as they are)."""
    for name in SNAPSHOT_FIELDS:
        setattr(row, name, getattr(snap, name))
    row.flags = _flags_text(snap.flags)
    row.updated_at = now


def new_session_row(snap: SessionSnapshot, now: datetime) -> SessionRow:
    row = SessionRow(key=snap.key, created_at=now, abnormal=False, reattached=False)
    apply_snapshot(row, snap, now)
    return row


def new_session_values(snap: SessionSnapshot, now: datetime) -> dict[str, Any]:
    """`new_session_row` as column values, for a plain INSERT of many rows at once."""
    values: dict[str, Any] = {name: getattr(snap, name) for name in SNAPSHOT_FIELDS}
    values.update(
        key=snap.key,
        flags=_flags_text(snap.flags),
        created_at=now,
        updated_at=now,
        abnormal=False,
        reattached=False,
        animal_id=None,
        id_source=None,
    )
    return values


def read_record(tx: Session, key: str) -> SessionRecord | None:
    """One session with every stored column, whatever its state (None: not stored)."""
    row = tx.get(SessionRow, key)
    if row is None:
        return None
    animal = tx.get(Animal, row.animal_id) if row.animal_id is not None else None
    return record_from_row(row, animal)


class SessionStore:
    """Reading sessions back and the people's corrections to them (audited)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def open_sessions(self) -> list[SessionSnapshot]:
        """Sessions still in progress (to resume after a restart), by stall."""
        with self._db.read() as tx:
            rows = tx.scalars(
                select(SessionRow)
                .where(SessionRow.state == "in_progress")
                .order_by(SessionRow.stall, SessionRow.started_at)
            )
            return [snapshot_from_row(row) for row in rows]

    def last_finished(self, meter_ids: list[str]) -> dict[str, SessionSnapshot]:
        """Each meter's most recently started finished session (meters with none are left
        out): what the meter should still hold when a console starts."""
        if not meter_ids:
            return {}
        # One statement: per meter, the newest finished session found by walking that meter's
        # (meter_id, started_at) index backwards; a year of sessions is never scanned.
        # A parlour has at most 200 stalls; SQLite joins at most 500 SELECTs in one UNION.
        if len(meter_ids) > 400:
            return {
                **self.last_finished(meter_ids[:400]),
                **self.last_finished(meter_ids[400:]),
            }
        meters = union_all(*(select(literal(m).label("meter_id")) for m in meter_ids)).subquery()
        newest = (
            select(SessionRow.key)
            .where(
                SessionRow.meter_id == meters.c.meter_id,
                SessionRow.state.in_(FINISHED_STATES),
            )
            .order_by(SessionRow.started_at.desc())
            .limit(1)
            .scalar_subquery()
        )
        with self._db.read() as tx:
            rows = tx.scalars(
                select(SessionRow).where(SessionRow.key.in_(select(newest).select_from(meters)))
            )
            return {row.meter_id: snapshot_from_row(row) for row in rows}

    def get(self, key: str) -> SessionSnapshot | None:
        with self._db.read() as tx:
            row = tx.get(SessionRow, key)
            return None if row is None else snapshot_from_row(row)

    def record(self, key: str) -> SessionRecord | None:
        """One session with every stored column, whatever its state."""
        with self._db.read() as tx:
            return read_record(tx, key)

    def samples(self, key: str) -> list[FlowSample]:
        """The session's flow curve, in time order (packed once finished, rows while open)."""
        with self._db.read() as tx:
            return read_curve(tx, key)

    def completed_since(self, since: datetime | None) -> list[SessionRecord]:
        """Finished sessions (completed, incomplete, interrupted) that ended at or after `since`
        (all of them when None), in start order."""
        query = (
            select(SessionRow, Animal)
            .outerjoin(Animal, Animal.id == SessionRow.animal_id)
            .where(SessionRow.state.in_(FINISHED_STATES))
            .order_by(SessionRow.started_at, SessionRow.stall)
        )
        if since is not None:
            query = query.where(SessionRow.ended_at >= since)
        with self._db.read() as tx:
            return [record_from_row(row, animal) for row, animal in tx.execute(query).all()]

    def set_manual_animal(
        self, key: str, animal_id: int | None, actor: str, *, role: str | None = None
    ) -> SessionRecord:
        """Say by hand which animal a session was (None: nobody known), audited.

        In the same transaction: the session's id_source becomes 'manual', an audit_log row
        ('manual_id', before/after) is appended, and Odoo is told — the pending create's payload
        is amended, or a 'write' is enqueued when the create already went.
        """
        with self._db.write() as tx:
            row = self._row(tx, key)
            if animal_id is not None and tx.get(Animal, animal_id) is None:
                raise LookupError(f"no animal with id {animal_id} (session {key})")
            before = {"animal_id": row.animal_id, "id_source": row.id_source}
            row.animal_id = animal_id
            row.id_source = "manual"
            row.updated_at = datetime.now(UTC)
            after = {"animal_id": animal_id, "id_source": "manual"}
            append_audit(
                tx,
                actor=actor,
                role=role,
                action="manual_id",
                target=f"milk_session:{key}",
                before=before,
                after=after,
            )
            tx.flush()
            queue_session_identity(tx, row)
            # Another cow: her milk may have had to be kept out (or this one's may go back).
            review_destination(tx, row)
            animal = tx.get(Animal, animal_id) if animal_id is not None else None
            return record_from_row(row, animal)

    def mark_reattached(self, key: str, actor: str, *, role: str | None = None) -> None:
        """Record that the cluster was put back on during this session, audited."""
        with self._db.write() as tx:
            row = self._row(tx, key)
            if row.reattached:
                return
            row.reattached = True
            row.updated_at = datetime.now(UTC)
            append_audit(
                tx,
                actor=actor,
                role=role,
                action="reattached",
                target=f"milk_session:{key}",
                before={"reattached": False},
                after={"reattached": True},
            )
            queue_session_fields(tx, row, {"reattached": True})

    @staticmethod
    def _row(tx: Session, key: str) -> SessionRow:
        row = tx.get(SessionRow, key)
        if row is None:
            raise LookupError(f"no milk session with key {key!r}")
        return row

    def add_past_milkings(self, milkings: Sequence[PastMilking]) -> int:
        """Store finished milkings recorded elsewhere (another program's history, the demo's
        past days): identified as given, graded, and not sent to Odoo (it has them, or never
        will). One transaction; returns how many."""
        now = datetime.now(UTC)
        with self._db.write() as tx:
            for m in milkings:
                row = new_session_row(m.session, now)
                row.animal_id = m.animal_id
                row.id_source = "rfid" if m.animal_id is not None else None
                row.quality_grade = m.quality_grade
                row.destination = m.destination
                tx.add(row)
        return len(milkings)

    def count(self, state: str | None = None) -> int:
        """How many sessions are stored (in one state, when given)."""
        query = select(func.count()).select_from(SessionRow)
        if state is not None:
            query = query.where(SessionRow.state == state)
        with self._db.read() as tx:
            return int(tx.scalar(query) or 0)


__all__ = [
    "PastMilking",
    "SessionRecord",
    "SessionStore",
    "animal_resolver",
    "iso_z",
    "read_record",
    "record_from_row",
    "resolve_animal",
]
