"""The outbox: records waiting to go to Odoo, and their state machine.

A row is enqueued in the same transaction as the record it carries, so a record and its way to
Odoo are stored together or not at all. States:

    pending --claim--> in_flight --mark_sent--> sent
       ^                  |  \\--mark_retry--> pending (with next_attempt_at, last_error)
       |                  \\----mark_dead---> dead --requeue_dead--> pending
       \\---- reset_in_flight (at start: whatever was in flight when we stopped) ----/

There is one `create` per (model, record_key) — the stable key is what lets the sync look a
record up before creating it, so a retry never makes a duplicate. `write` rows carry changed
fields for a record already created; a write is not claimed while its record's create is unsent,
and pending writes for one record are merged into one row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Integer, Table, and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from milkconsole.store.db import Database
from milkconsole.store.schema import OutboxRow, utc_now

OutboxState = Literal["pending", "in_flight", "sent", "dead"]
Operation = Literal["create", "write"]
STATES: tuple[OutboxState, ...] = ("pending", "in_flight", "sent", "dead")


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One outbox row as the sync sees it. `attempts` counts this attempt too once claimed."""

    id: int
    model: str
    record_key: str
    operation: str
    payload: dict[str, Any]
    attempts: int
    state: str = "pending"
    last_error: str | None = None
    created_at: datetime | None = None
    next_attempt_at: datetime | None = None
    odoo_id: int | None = None


def _item(row: OutboxRow) -> OutboxItem:
    return OutboxItem(
        id=row.id,
        model=row.model,
        record_key=row.record_key,
        operation=row.operation,
        payload=json.loads(row.payload),
        attempts=row.attempts,
        state=row.state,
        last_error=row.last_error,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        odoo_id=row.odoo_id,
    )


def _dump(model: str, record_key: str, payload: dict[str, Any]) -> str:
    try:
        # allow_nan=False: Odoo's JSON-RPC would refuse NaN later, far from its cause.
        return json.dumps(payload, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"outbox payload for {model} {record_key!r} is not JSON: {exc}") from exc


def enqueue_many(tx: Session, model: str, rows: list[tuple[str, dict[str, Any]]]) -> None:
    """`enqueue` for many new creates at once, inside the caller's transaction.

    The caller has checked that none of the keys has a create row yet. One INSERT for the lot:
    `enqueue` costs a query and a flush per row, which for a week's backlog is most of a pass.
    """
    if not rows:
        return
    now = utc_now()
    tx.execute(
        insert(OutboxRow),
        [
            {
                "record_key": key,
                "model": model,
                "operation": "create",
                "payload": _dump(model, key, payload),
                "state": "pending",
                "attempts": 0,
                "created_at": now,
            }
            for key, payload in rows
        ],
    )


def enqueue(
    tx: Session,
    model: str,
    record_key: str,
    payload: dict[str, Any],
    operation: Operation = "create",
) -> int:
    """Add a row to the outbox inside the caller's transaction; returns its id.

    A second `create` for the same (model, record_key) returns the first row's id and changes
    nothing. A `write` is merged into a still-pending write for the same record (later fields
    win), else it is a new row.
    """
    if operation not in ("create", "write"):
        raise ValueError(f"outbox operation {operation!r} refused: use 'create' or 'write'")
    text = _dump(model, record_key, payload)
    same = select(OutboxRow).where(
        OutboxRow.model == model,
        OutboxRow.record_key == record_key,
        OutboxRow.operation == operation,
    )
    if operation == "create":
        existing = tx.scalars(same).first()
        if existing is not None:
            return existing.id
    else:
        waiting = tx.scalars(
            same.where(OutboxRow.state == "pending").order_by(OutboxRow.id)
        ).first()
        if waiting is not None:
            merged = {**json.loads(waiting.payload), **payload}
            waiting.payload = _dump(model, record_key, merged)
            return waiting.id
    row = OutboxRow(
        record_key=record_key,
        model=model,
        operation=operation,
        payload=text,
        state="pending",
        attempts=0,
        created_at=utc_now(),
    )
    tx.add(row)
    tx.flush()
    return row.id


def create_row(tx: Session, model: str, record_key: str) -> OutboxRow | None:
    """The `create` row of a record, if it has one (for callers that amend a pending payload)."""
    return tx.scalars(
        select(OutboxRow).where(
            OutboxRow.model == model,
            OutboxRow.record_key == record_key,
            OutboxRow.operation == "create",
        )
    ).first()


def amend(tx: Session, model: str, record_key: str, fields: dict[str, Any]) -> None:
    """Make Odoo learn `fields` of a record, whatever its create row's state.

    Unsent (pending or dead) create: the fields go into its payload. In flight or sent: a
    `write` is enqueued. No create row yet: nothing (the create will be built from the record).
    """
    row = create_row(tx, model, record_key)
    if row is None:
        return
    if row.state in ("pending", "dead"):
        row.payload = _dump(model, record_key, {**json.loads(row.payload), **fields})
    else:
        enqueue(tx, model, record_key, fields, operation="write")


class Outbox:
    """The outbox's state changes, each one short transaction through the database's writer."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def reset_in_flight(self) -> int:
        """Put rows left in flight by a stopped process back to pending; returns how many."""
        with self._db.write() as tx:
            result = tx.execute(
                update(OutboxRow).where(OutboxRow.state == "in_flight").values(state="pending")
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def claim(self, model: str | None, limit: int, now: datetime) -> list[OutboxItem]:
        """Move up to `limit` due pending rows (oldest first) to in_flight and return them.

        Due means next_attempt_at is unset or <= now. A write waits while its record's create
        is unsent and while an older row of the same record is in flight.
        """
        if limit <= 0:
            return []
        create = aliased(OutboxRow)
        older = aliased(OutboxRow)
        unsent_create = exists().where(
            create.model == OutboxRow.model,
            create.record_key == OutboxRow.record_key,
            create.operation == "create",
            create.state != "sent",
        )
        older_in_flight = exists().where(
            older.model == OutboxRow.model,
            older.record_key == OutboxRow.record_key,
            older.state == "in_flight",
            older.id < OutboxRow.id,
        )
        query = (
            select(OutboxRow)
            .where(
                OutboxRow.state == "pending",
                or_(OutboxRow.next_attempt_at.is_(None), OutboxRow.next_attempt_at <= now),
                or_(OutboxRow.operation != "write", ~unsent_create),
                ~older_in_flight,
            )
            .order_by(OutboxRow.id)
            .limit(limit)
        )
        if model is not None:
            query = query.where(OutboxRow.model == model)
        with self._db.write() as tx:
            rows = list(tx.scalars(query))
            for row in rows:
                row.state = "in_flight"
                row.attempts += 1
            tx.flush()
            return [_item(row) for row in rows]

    def mark_sent(
        self, ids_to_odoo_ids: Mapping[int, int | None], now: datetime | None = None
    ) -> None:
        """Record rows as sent, with the Odoo id each got (None keeps any id already known);
        rows already sent are left as they are. One UPDATE statement run for all rows: a week's
        backlog is marked in one pass, not a query per row."""
        if not ids_to_odoo_ids:
            return
        table = cast(Table, OutboxRow.__table__)
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.state != "sent")
            .values(
                state="sent",
                sent_at=now or utc_now(),
                last_error=None,
                next_attempt_at=None,
                odoo_id=func.coalesce(bindparam("b_odoo", type_=Integer), table.c.odoo_id),
            )
        )
        with self._db.write() as tx:
            tx.connection().execute(
                stmt, [{"b_id": k, "b_odoo": v} for k, v in ids_to_odoo_ids.items()]
            )

    def mark_retry(self, outbox_id: int, error: str, next_attempt_at: datetime) -> bool:
        """An in-flight row failed for a reason that may pass: pending again, due later."""
        with self._db.write() as tx:
            result = tx.execute(
                update(OutboxRow)
                .where(OutboxRow.id == outbox_id, OutboxRow.state == "in_flight")
                .values(state="pending", last_error=error, next_attempt_at=next_attempt_at)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def mark_dead(self, outbox_id: int, error: str) -> bool:
        """A row Odoo refuses for good: dead, shown to the supervisor, other rows go on."""
        with self._db.write() as tx:
            result = tx.execute(
                update(OutboxRow)
                .where(OutboxRow.id == outbox_id, OutboxRow.state.in_(("in_flight", "pending")))
                .values(state="dead", last_error=error, next_attempt_at=None)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def requeue_dead(self, ids: list[int]) -> int:
        """Give dead rows another go (after someone fixed the cause); returns how many."""
        if not ids:
            return 0
        with self._db.write() as tx:
            result = tx.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(ids), OutboxRow.state == "dead")
                .values(state="pending", attempts=0, next_attempt_at=None)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def counts(self) -> dict[str, int]:
        """Rows per state; every state is present, zero when empty."""
        out: dict[str, int] = dict.fromkeys(STATES, 0)
        with self._db.read() as tx:
            for state, n in tx.execute(
                select(OutboxRow.state, func.count()).group_by(OutboxRow.state)
            ):
                out[state] = int(n)
        return out

    def dead(self) -> list[OutboxItem]:
        """Every dead row, oldest first, with its last error."""
        with self._db.read() as tx:
            rows = tx.scalars(
                select(OutboxRow).where(OutboxRow.state == "dead").order_by(OutboxRow.id)
            )
            return [_item(row) for row in rows]

    def oldest_pending_at(self) -> datetime | None:
        """When the oldest row still waiting to be sent (pending or in flight) was enqueued."""
        with self._db.read() as tx:
            return tx.scalar(
                select(func.min(OutboxRow.created_at)).where(
                    OutboxRow.state.in_(("pending", "in_flight"))
                )
            )

    def odoo_id_for(self, model: str, record_key: str) -> int | None:
        """The Odoo id a record's sent create got, if known (writes need it)."""
        with self._db.read() as tx:
            return tx.scalar(
                select(OutboxRow.odoo_id).where(
                    and_(
                        OutboxRow.model == model,
                        OutboxRow.record_key == record_key,
                        OutboxRow.operation == "create",
                    )
                )
            )

    def get(self, outbox_id: int) -> OutboxItem | None:
        """One row by id, whatever its state."""
        with self._db.read() as tx:
            row = tx.get(OutboxRow, outbox_id)
            return None if row is None else _item(row)
