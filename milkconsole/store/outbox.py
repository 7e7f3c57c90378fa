"""The outbox: records waiting to go to Odoo or the MQTT broker, and their state machine.

A row is enqueued in the same transaction as the record it carries, so a record and its way out
are stored together or not at all. Only `milkconsole.store.outbound` enqueues (it builds every
payload); the senders (the Odoo sync, the MQTT publisher) claim the rows of their `channel` and
mark them. States:

    pending --claim--> in_flight --mark_sent--> sent
       ^                  |  \\--mark_retry--> pending (with next_attempt_at, last_error)
       |                  \\----mark_dead---> dead --requeue_dead--> pending
       \\---- reset_in_flight (at start: whatever was in flight when we stopped) ----/

There is one `create` per (channel, model, record_key) — the stable key is what lets the sync
look a record up before creating it, so a retry never makes a duplicate. `write` rows carry
changed fields for a record already created; a write is not claimed while its record's create is
unsent, and pending writes for one record are merged into one row. A row with `after` set is not
claimed while that record's create is unsent either (a production record waits for its session).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import Integer, Table, and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from milkconsole.store.db import Database
from milkconsole.store.schema import OutboxRow, utc_now

OutboxState = Literal["pending", "in_flight", "sent", "dead"]
Operation = Literal["create", "write"]
Channel = Literal["odoo", "mqtt"]
STATES: tuple[OutboxState, ...] = ("pending", "in_flight", "sent", "dead")
# (model, record_key) of the record a row waits for.
After = tuple[str, str]


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
    channel: str = "odoo"


def _item_of(row: RowMapping) -> OutboxItem:
    """An item from a row's column values (a Core result, not an ORM object)."""
    return OutboxItem(
        id=row["id"],
        channel=row["channel"],
        model=row["model"],
        record_key=row["record_key"],
        operation=row["operation"],
        payload=json.loads(row["payload"]),
        attempts=row["attempts"],
        state=row["state"],
        last_error=row["last_error"],
        created_at=_aware(row["created_at"]),
        next_attempt_at=_aware(row["next_attempt_at"]),
        odoo_id=row["odoo_id"],
    )


def _aware(value: Any) -> datetime | None:
    """Core results of a UTCDateTime column come back through its type: aware already; a raw
    naive value (none expected) is read as UTC."""
    if value is None or getattr(value, "tzinfo", None) is not None:
        return value
    return value.replace(tzinfo=UTC)


def _item(row: OutboxRow) -> OutboxItem:
    return OutboxItem(
        id=row.id,
        channel=row.channel,
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


def enqueue_many(
    tx: Session,
    model: str,
    rows: list[tuple[str, dict[str, Any]]],
    *,
    channel: Channel = "odoo",
    after: dict[str, After] | None = None,
) -> None:
    """`enqueue` for many new creates at once, inside the caller's transaction.

    The caller has checked that none of the keys has a create row yet. One INSERT for the lot:
    `enqueue` costs a query and a flush per row, which for a week's backlog is most of a pass.
    `after` maps a key to the record its row waits for.
    """
    if not rows:
        return
    now = utc_now()
    waits = after or {}
    # The table, not the mapped class: a plain executemany, without the ORM's bulk bookkeeping.
    tx.execute(
        insert(cast(Table, OutboxRow.__table__)),
        [
            {
                "channel": channel,
                "record_key": key,
                "model": model,
                "operation": "create",
                "payload": _dump(model, key, payload),
                "state": "pending",
                "attempts": 0,
                "created_at": now,
                "after_model": waits[key][0] if key in waits else None,
                "after_key": waits[key][1] if key in waits else None,
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
    *,
    channel: Channel = "odoo",
    after: After | None = None,
) -> int:
    """Add a row to the outbox inside the caller's transaction; returns its id.

    A second `create` for the same (channel, model, record_key) returns the first row's id and
    changes nothing. A `write` is merged into a still-pending write for the same record (later
    fields win), else it is a new row. `after` names the record whose create must be sent first.
    """
    if operation not in ("create", "write"):
        raise ValueError(f"outbox operation {operation!r} refused: use 'create' or 'write'")
    text = _dump(model, record_key, payload)
    same = select(OutboxRow).where(
        OutboxRow.channel == channel,
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
        channel=channel,
        record_key=record_key,
        model=model,
        operation=operation,
        payload=text,
        state="pending",
        attempts=0,
        created_at=utc_now(),
        after_model=after[0] if after else None,
        after_key=after[1] if after else None,
    )
    tx.add(row)
    tx.flush()
    return row.id


def create_row(
    tx: Session, model: str, record_key: str, *, channel: Channel = "odoo"
) -> OutboxRow | None:
    """The `create` row of a record, if it has one (for callers that amend a pending payload)."""
    return tx.scalars(
        select(OutboxRow).where(
            OutboxRow.channel == channel,
            OutboxRow.model == model,
            OutboxRow.record_key == record_key,
            OutboxRow.operation == "create",
        )
    ).first()


def amend(
    tx: Session,
    model: str,
    record_key: str,
    fields: dict[str, Any],
    *,
    recreate: dict[str, Any] | None = None,
    after: After | None = None,
) -> bool:
    """Make Odoo learn `fields` of a record, whatever its create row's state; False when the
    record has no create row and no `recreate` was given (nothing was queued).

    Unsent (pending or dead) create: the fields go into its payload. In flight or sent: a
    `write` is enqueued. No create row, but `recreate` (the record's whole payload): the record
    may have been sent and its sent rows pruned since (retention), or never queued. A create
    carrying `recreate` (waiting for `after`) and a write of `fields` behind it are queued: the
    sync finds a record Odoo already has by its key instead of creating it again, and the
    write brings it up to date; a record Odoo never had is created, already up to date.
    """
    row = create_row(tx, model, record_key)
    if row is None:
        if recreate is None:
            return False
        enqueue(tx, model, record_key, {**recreate, **fields}, after=after)
        enqueue(tx, model, record_key, fields, operation="write")
        return True
    if row.state in ("pending", "dead"):
        row.payload = _dump(model, record_key, {**json.loads(row.payload), **fields})
    else:
        enqueue(tx, model, record_key, fields, operation="write")
    return True


def withdraw(tx: Session, model: str, record_key: str) -> bool:
    """Take back a record's create that has not left yet (pending or dead): True when it was
    removed. A create in flight or sent stays (Odoo has it, or may)."""
    row = create_row(tx, model, record_key)
    if row is None or row.state not in ("pending", "dead"):
        return False
    tx.delete(row)
    return True


class Outbox:
    """One channel's outbox state changes, each one short transaction through the database's
    writer. `channel` is 'odoo' for the sync and 'mqtt' for the publisher."""

    def __init__(self, db: Database, channel: Channel = "odoo") -> None:
        self._db = db
        self.channel = channel

    def _mine(self) -> ColumnElement[bool]:
        return OutboxRow.channel == self.channel

    def reset_in_flight(self) -> int:
        """Put rows left in flight by a stopped process back to pending; returns how many."""
        with self._db.write() as tx:
            result = tx.execute(
                update(OutboxRow)
                .where(self._mine(), OutboxRow.state == "in_flight")
                .values(state="pending")
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def claim(self, model: str | None, limit: int, now: datetime) -> list[OutboxItem]:
        """Move up to `limit` due pending rows (oldest first) to in_flight and return them.

        Due means next_attempt_at is unset or <= now. A write waits while its record's create
        is unsent and while an older row of the same record is in flight; a row with `after`
        waits while that record's create is unsent.
        """
        if limit <= 0:
            return []
        create = aliased(OutboxRow)
        older = aliased(OutboxRow)
        before = aliased(OutboxRow)
        unsent_create = exists().where(
            create.channel == OutboxRow.channel,
            create.model == OutboxRow.model,
            create.record_key == OutboxRow.record_key,
            create.operation == "create",
            create.state != "sent",
        )
        older_in_flight = exists().where(
            older.channel == OutboxRow.channel,
            older.model == OutboxRow.model,
            older.record_key == OutboxRow.record_key,
            older.state == "in_flight",
            older.id < OutboxRow.id,
        )
        waits_for = exists().where(
            before.channel == OutboxRow.channel,
            before.model == OutboxRow.after_model,
            before.record_key == OutboxRow.after_key,
            before.operation == "create",
            before.state != "sent",
        )
        due = (
            select(OutboxRow.id)
            .where(
                self._mine(),
                OutboxRow.state == "pending",
                or_(OutboxRow.next_attempt_at.is_(None), OutboxRow.next_attempt_at <= now),
                or_(OutboxRow.operation != "write", ~unsent_create),
                or_(OutboxRow.after_model.is_(None), ~waits_for),
                ~older_in_flight,
            )
            .order_by(OutboxRow.id)
            .limit(limit)
        )
        if model is not None:
            due = due.where(OutboxRow.model == model)
        # One UPDATE ... RETURNING for the lot: loading and flushing 500 ORM rows per batch was
        # half of a backlog's time on the console's side.
        table = cast(Table, OutboxRow.__table__)
        claim = (
            update(table)
            .where(table.c.id.in_(due.scalar_subquery()))
            .values(state="in_flight", attempts=table.c.attempts + 1)
            .returning(*table.c)
        )
        with self._db.write() as tx:
            rows = tx.execute(claim).mappings().all()
        return sorted((_item_of(r) for r in rows), key=lambda i: i.id)

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

    def defer(self, outbox_id: int, reason: str, next_attempt_at: datetime) -> bool:
        """An in-flight row cannot go yet for a reason outside it (its cow or meter is not in
        Odoo yet): pending again, due later, and the claim does not count as an attempt."""
        with self._db.write() as tx:
            result = tx.execute(
                update(OutboxRow)
                .where(OutboxRow.id == outbox_id, OutboxRow.state == "in_flight")
                .values(
                    state="pending",
                    last_error=reason,
                    next_attempt_at=next_attempt_at,
                    attempts=func.max(OutboxRow.attempts - 1, 0),
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def release(self, ids: list[int], reason: str) -> int:
        """In-flight rows whose send was cut short (the MQTT connection dropped before the
        broker's ack): pending again at once, the claim not counted as an attempt. Returns how
        many. One statement for the lot."""
        if not ids:
            return 0
        with self._db.write() as tx:
            result = tx.execute(
                update(OutboxRow)
                .where(self._mine(), OutboxRow.id.in_(ids), OutboxRow.state == "in_flight")
                .values(
                    state="pending",
                    last_error=reason,
                    next_attempt_at=None,
                    attempts=func.max(OutboxRow.attempts - 1, 0),
                )
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def waiting(self) -> int:
        """Rows not sent yet (pending or in flight): what the status bar calls waiting."""
        with self._db.read() as tx:
            return int(
                tx.scalar(
                    select(func.count()).where(
                        self._mine(), OutboxRow.state.in_(("pending", "in_flight"))
                    )
                )
                or 0
            )

    def pending_ids(self, after_id: int = 0) -> list[int]:
        """The ids of the pending rows above `after_id`, oldest first (what a test or benchmark
        standing in for a receiver that kept up marks sent)."""
        with self._db.read() as tx:
            return list(
                tx.scalars(
                    select(OutboxRow.id)
                    .where(self._mine(), OutboxRow.state == "pending", OutboxRow.id > after_id)
                    .order_by(OutboxRow.id)
                )
            )

    def mark_dead(self, outbox_id: int, error: str) -> bool:
        """A row the receiver refuses for good: dead, shown to the supervisor, others go on."""
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
                .where(self._mine(), OutboxRow.id.in_(ids), OutboxRow.state == "dead")
                .values(state="pending", attempts=0, next_attempt_at=None)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def counts(self) -> dict[str, int]:
        """Rows per state; every state is present, zero when empty."""
        out: dict[str, int] = dict.fromkeys(STATES, 0)
        with self._db.read() as tx:
            for state, n in tx.execute(
                select(OutboxRow.state, func.count()).where(self._mine()).group_by(OutboxRow.state)
            ):
                out[state] = int(n)
        return out

    def dead(self) -> list[OutboxItem]:
        """Every dead row, oldest first, with its last error."""
        with self._db.read() as tx:
            rows = tx.scalars(
                select(OutboxRow)
                .where(self._mine(), OutboxRow.state == "dead")
                .order_by(OutboxRow.id)
            )
            return [_item(row) for row in rows]

    def oldest_pending_at(self) -> datetime | None:
        """When the oldest row still waiting to be sent (pending or in flight) was enqueued."""
        with self._db.read() as tx:
            return tx.scalar(
                select(func.min(OutboxRow.created_at)).where(
                    self._mine(), OutboxRow.state.in_(("pending", "in_flight"))
                )
            )

    def odoo_id_for(self, model: str, record_key: str) -> int | None:
        """The Odoo id a record's sent create got, if known (writes need it)."""
        with self._db.read() as tx:
            return tx.scalar(
                select(OutboxRow.odoo_id).where(
                    and_(
                        self._mine(),
                        OutboxRow.model == model,
                        OutboxRow.record_key == record_key,
                        OutboxRow.operation == "create",
                    )
                )
            )

    def odoo_ids_for(self, model: str, record_keys: list[str]) -> dict[str, int]:
        """`odoo_id_for` for many records at once (those with a known id)."""
        out: dict[str, int] = {}
        with self._db.read() as tx:
            for start in range(0, len(record_keys), 500):
                chunk = record_keys[start : start + 500]
                for key, odoo_id in tx.execute(
                    select(OutboxRow.record_key, OutboxRow.odoo_id).where(
                        self._mine(),
                        OutboxRow.model == model,
                        OutboxRow.record_key.in_(chunk),
                        OutboxRow.operation == "create",
                        OutboxRow.odoo_id.is_not(None),
                    )
                ):
                    if odoo_id is not None:
                        out[key] = int(odoo_id)
        return out

    def get(self, outbox_id: int) -> OutboxItem | None:
        """One row by id, whatever its state."""
        with self._db.read() as tx:
            row = tx.get(OutboxRow, outbox_id)
            return None if row is None else _item(row)
