"""One write transaction of session events: what the recorder's thread commits at once.

`write_events` takes a batch of events in order (a session's progress updates coalesced), writes
every session row, sample and meter's last-seen time in one transaction, and for the batch's
completions packs their curves, runs the completion hooks and queues their outbox rows, all in
that transaction. The recorder (`store.recorder`) owns the thread, the queue, the retries and
the disk's state; this module only writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert, or_, select, update
from sqlalchemy.orm import Session

from milkconsole.meters.events import (
    FINISHED_STATES,
    FlowSample,
    SessionCompleted,
    SessionSnapshot,
    SessionStarted,
    SessionUpdated,
)
from milkconsole.store.db import Database
from milkconsole.store.flow_curves import add_open_samples, close_curves, last_sample_times
from milkconsole.store.outbound import queue_sessions
from milkconsole.store.schema import Meter, SessionRow, utc_now
from milkconsole.store.sessions import (
    SNAPSHOT_FIELDS,
    _flags_text,
    apply_snapshot,
    new_session_row,
    new_session_values,
    snapshot_from_row,
)
from milkconsole.store.tags import animal_resolver

log = logging.getLogger(__name__)

CompletionHook = Callable[[Session, SessionSnapshot], None]
Resolve = Callable[[str | None], int | None]


@dataclass(frozen=True, slots=True)
class MetersSeen:
    """Queue marker: write the coalesced last-seen times (taken when the marker is dequeued)."""

    seen: dict[str, datetime] = field(default_factory=dict)


Work = SessionStarted | SessionUpdated | SessionCompleted | MetersSeen


def write_events(db: Database, works: list[Work], hooks: Sequence[CompletionHook]) -> list[object]:
    """Write `works` in one transaction; returns the session events it changed (duplicates and
    late updates of finished sessions are left out)."""
    return _apply(db, coalesce(works), hooks)


def _apply(db: Database, works: list[Work], hooks: Sequence[CompletionHook]) -> list[object]:
    changed: list[object] = []
    with db.write() as tx:
        now = utc_now()
        # Last stored sample time per session in this transaction: one query for the batch,
        # not one per event (each query would also autoflush).
        latest: dict[str, float] = {}
        # The batch's stored rows by key (held: the identity map is weak). Rows made in this
        # batch join it, so no session is looked up twice (each look-up would autoflush).
        rows = _prefetch(tx, works, latest)
        batch = _Batch(tx, rows, now, latest, animal_resolver(tx))
        completing = {w.session.key for w in works if isinstance(w, SessionCompleted)}
        # Plain progress of a known, open session (the bulk of a busy parlour's writes) goes
        # into one executemany UPDATE instead of an ORM flush per session. A session that
        # also completes in this batch skips it: its completion writes every column.
        bulk: list[dict[str, object]] = []
        for work in works:
            if isinstance(work, MetersSeen):
                _write_seen(tx, work.seen)
                continue
            if work.session.key in batch.fresh:
                batch.insert_fresh()  # a later event of a session completed just now
            if isinstance(work, SessionCompleted):
                if _complete(batch, work.session, work.samples):
                    changed.append(work)
            elif isinstance(work, SessionUpdated) and _plain_progress(rows, work.session):
                if work.session.key not in completing:
                    bulk.append(_progress_values(work.session, now))
                add_open_samples(tx, work.session.key, work.samples, latest)
                changed.append(work)
            elif isinstance(work, SessionUpdated):
                if _progress(batch, work.session, work.samples):
                    changed.append(work)
            elif _progress(batch, work.session, ()):
                changed.append(work)
        if bulk:
            tx.execute(update(SessionRow), bulk)
        _finish(batch, hooks)
        del rows
    return changed


def _finish(batch: _Batch, hooks: Sequence[CompletionHook]) -> None:
    """The batch's completions, together: their curves packed, the completion hooks run
    (in order) and their outbox rows queued, with one flush for all their rows rather than
    several per session."""
    if not batch.finished:
        return
    tx = batch.tx
    batch.insert_fresh()
    tx.flush()
    close_curves(tx, batch.finished, batch.latest)
    finished = [batch.rows[key] for key, _ in batch.finished]
    if hooks:
        for row in finished:
            final = snapshot_from_row(row)
            for hook in hooks:
                hook(tx, final)
        tx.flush()
    queue_sessions(tx, finished)


def _plain_progress(rows: dict[str, SessionRow], snap: SessionSnapshot) -> bool:
    """True when the session is stored, still open, and keeps its tag (no identity work)."""
    row = rows.get(snap.key)
    return row is not None and row.state == "in_progress" and row.rfid == snap.rfid


def _progress(batch: _Batch, snap: SessionSnapshot, samples: Sequence[FlowSample]) -> bool:
    tx = batch.tx
    row = batch.rows.get(snap.key)
    if row is None:
        # Started, or an update of a session we have not seen (resumed elsewhere): insert.
        row = new_session_row(snap, batch.now)
        row.state = "in_progress"
        _identify(row, batch.resolve)
        tx.add(row)
        batch.rows[snap.key] = row
    elif row.state != "in_progress":
        # A late update must not reopen or alter a finished session.
        log.debug("ignored %s update: session already %s", snap.key, row.state)
        return False
    else:
        old_rfid = row.rfid
        apply_snapshot(row, snap, batch.now)
        row.state = "in_progress"
        # Look the tag up only when it changes (a late read); completion looks again in case
        # the herd list arrived meanwhile.
        if row.rfid != old_rfid:
            if row.id_source == "rfid":
                row.animal_id, row.id_source = None, None
            _identify(row, batch.resolve)
    add_open_samples(tx, snap.key, samples, batch.latest)
    return True


def _complete(batch: _Batch, snap: SessionSnapshot, samples: Sequence[FlowSample]) -> bool:
    """Store the completed session's row (its curve, hooks and outbox rows follow in
    `_finish`); False for a duplicate completion."""
    state = snap.state
    if state not in FINISHED_STATES:
        log.warning(
            "completion of %s arrived in state %s; stored as completed", snap.key, snap.state
        )
        state = "completed"
    row = batch.rows.get(snap.key)
    if row is None:
        # Never seen open (recovered after a restart, or a backlog): one INSERT for all of
        # the batch's, instead of an ORM object each.
        values = new_session_values(snap, batch.now)
        values["state"] = state
        if values["ended_at"] is None:
            values["ended_at"] = snap.started_at + timedelta(seconds=snap.duration_s)
        animal_id = batch.resolve(snap.rfid) if snap.rfid else None
        if animal_id is not None:
            values.update(animal_id=animal_id, id_source="rfid")
        batch.fresh[snap.key] = values
        batch.finished.append((snap.key, samples))
        return True
    if row.state != "in_progress":
        log.debug("ignored duplicate completion of %s (already %s)", snap.key, row.state)
        return False
    old_rfid = row.rfid
    apply_snapshot(row, snap, batch.now)
    if row.rfid != old_rfid and row.id_source == "rfid":
        row.animal_id, row.id_source = None, None
    row.state = state
    if row.ended_at is None:
        row.ended_at = row.started_at + timedelta(seconds=row.duration_s)
    _identify(row, batch.resolve)
    batch.finished.append((snap.key, samples))
    return True


def _prefetch(tx: Session, works: list[Work], latest: dict[str, float]) -> dict[str, SessionRow]:
    """Load the batch's session rows and last sample times in two queries, not two per
    session (each per-session query also autoflushed the rows changed so far)."""
    keys = sorted({w.session.key for w in works if not isinstance(w, MetersSeen)})
    rows: dict[str, SessionRow] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        rows.update(
            (r.key, r) for r in tx.scalars(select(SessionRow).where(SessionRow.key.in_(chunk)))
        )
    latest.update(last_sample_times(tx, keys))
    return rows


def _identify(row: SessionRow, resolve: Resolve) -> None:
    # Only a tag read fills the identity; a person's choice (id_source 'manual') stands.
    if row.id_source is None and row.rfid:
        animal_id = resolve(row.rfid)
        if animal_id is not None:
            row.animal_id, row.id_source = animal_id, "rfid"


def _write_seen(tx: Session, seen: dict[str, datetime]) -> None:
    for meter_id, at in seen.items():
        tx.execute(
            update(Meter)
            .where(Meter.id == meter_id, or_(Meter.last_seen_at.is_(None), Meter.last_seen_at < at))
            .values(last_seen_at=at)
        )


@dataclass
class _Batch:
    """One write transaction's working set: its session rows by key, the completions it holds,
    and the completed sessions not stored before (inserted together by `insert_fresh`)."""

    tx: Session
    rows: dict[str, SessionRow]
    now: datetime
    latest: dict[str, float]
    resolve: Resolve
    finished: list[tuple[str, Sequence[FlowSample]]] = field(default_factory=list)
    fresh: dict[str, dict[str, Any]] = field(default_factory=dict)

    def insert_fresh(self) -> None:
        if not self.fresh:
            return
        keys = list(self.fresh)
        self.tx.execute(insert(cast(Table, SessionRow.__table__)), list(self.fresh.values()))
        self.fresh.clear()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            self.rows.update(
                (r.key, r)
                for r in self.tx.scalars(select(SessionRow).where(SessionRow.key.in_(chunk)))
            )


def coalesce(works: list[Work]) -> list[Work]:
    """Merge each session's run of progress updates into one (last snapshot, all samples).

    A run ends at any other event of that session, so order per session is kept: an update is
    never moved past its session's start or completion.
    """
    out: list[Work] = []
    open_run: dict[str, int] = {}  # session key -> index in `out` of its mergeable update
    for work in works:
        if isinstance(work, SessionUpdated):
            key = work.session.key
            at = open_run.get(key)
            if at is not None:
                prev = out[at]
                assert isinstance(prev, SessionUpdated)
                out[at] = SessionUpdated(work.session, prev.samples + work.samples)
                continue
            open_run[key] = len(out)
        elif not isinstance(work, MetersSeen):
            open_run.pop(work.session.key, None)
        out.append(work)
    return out


def _progress_values(snap: SessionSnapshot, now: datetime) -> dict[str, object]:
    """The columns a progress checkpoint writes, keyed for a bulk UPDATE by primary key."""
    values: dict[str, object] = {name: getattr(snap, name) for name in SNAPSHOT_FIELDS}
    values.update(key=snap.key, flags=_flags_text(snap.flags), updated_at=now)
    return values
