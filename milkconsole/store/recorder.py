"""The recorder: the one thread that writes session events to the database.

Pollers and the stall tracker `submit()` events without ever waiting on the disk; the recorder
drains its queue and commits what it took in one transaction. A `SessionCompleted` is written
with its last samples, whatever the completion hooks add (alerts, grades, health events, more
outbox rows) and its milk.session outbox row, all in that one transaction: after a crash either
all of it is there or none of it is and the session is still in progress, ready to resume.

A transaction that fails is rolled back, its events are retried one by one so one bad event
cannot hold the others back, and whatever still fails is logged (ERROR once, DEBUG after) and
retried with back-off, in order per session. Nothing is dropped while the process lives.

A write the disk refuses (full, read-only, failing: `store.storage`) is not any event's fault:
then every event waits in memory, in order, nothing is tried one by one, one clear ERROR names
the disk and its free space (a WARNING a minute while it lasts), `on_status` gets a
`StorageStatus` for the status bar, and the backlog is written as soon as the disk takes writes
again. SQLite rolls the refused transaction back: nothing committed before is touched.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert, or_, select, update
from sqlalchemy.orm import Session

from milkconsole.meters.events import (
    FlowSample,
    SessionCompleted,
    SessionSnapshot,
    SessionStarted,
    SessionUpdated,
    StorageStatus,
)
from milkconsole.meters.parlour import MeterConfig
from milkconsole.store.db import Database
from milkconsole.store.flow_curves import add_open_samples, close_curves, last_sample_times
from milkconsole.store.outbound import queue_meter, queue_sessions
from milkconsole.store.schema import Meter, SessionRow, utc_now
from milkconsole.store.sessions import (
    FINISHED_STATES,
    SNAPSHOT_FIELDS,
    _flags_text,
    apply_snapshot,
    new_session_row,
    new_session_values,
    snapshot_from_row,
)
from milkconsole.store.storage import free_space_text, storage_problem
from milkconsole.store.tags import animal_resolver

log = logging.getLogger(__name__)

CompletionHook = Callable[[Session, SessionSnapshot], None]
Resolve = Callable[[str | None], int | None]
SESSION_EVENTS = (SessionStarted, SessionUpdated, SessionCompleted)
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
STOP_GRACE_S = 0.5
STORAGE_LOG_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class _MetersSeen:
    """Queue marker: write the coalesced last-seen times (taken when the marker is dequeued)."""

    seen: dict[str, datetime] = field(default_factory=dict)


_STOP = object()
_FLUSH = object()  # queue marker: commit what is held now (flush() is waiting)
_Work = SessionStarted | SessionUpdated | SessionCompleted | _MetersSeen


@dataclass(frozen=True, slots=True)
class _Item:
    seq: int
    work: _Work

    @property
    def key(self) -> str | None:
        return None if isinstance(self.work, _MetersSeen) else self.work.session.key


class Recorder:
    """The one writer of session events. Start it, submit events, flush or stop it.

    `on_committed(events)` is called from the recorder thread after each commit, outside the
    transaction, with the session events that commit changed (duplicates it ignored left out).
    `on_status(StorageStatus)` is called from it when the disk stops taking writes, while it
    does not (a minute apart), and when it takes them again.
    """

    def __init__(
        self,
        db: Database,
        *,
        farm_code: str,
        on_committed: Callable[[list[object]], None] | None = None,
        on_status: Callable[[StorageStatus], None] | None = None,
        max_batch: int = 500,
        checkpoint_s: float = 3.0,
    ) -> None:
        if not farm_code.strip():
            raise ValueError("Recorder: farm_code must not be empty (it goes into every payload)")
        self._db = db
        self._farm_code = farm_code
        self._on_committed = on_committed
        self._on_status = on_status
        self._max_batch = max_batch
        # Progress of a milking (SessionUpdated) is checkpointed at most every checkpoint_s;
        # starts and completions are written at once. A crash loses at most that much of a
        # flow curve, never a session: the meter's own counter carries the yield on resume.
        self._checkpoint_s = checkpoint_s
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._next_seq = 0
        self._outstanding: set[int] = set()
        self._seen: dict[str, datetime] = {}
        self._seen_lock = threading.Lock()
        self._hooks: list[CompletionHook] = []
        self._thread: threading.Thread | None = None
        self._stop_deadline: float | None = None
        self._logged: set[int] = set()
        # The disk's refusal while it lasts: (problem, since, last logged at).
        self._down: tuple[str, datetime, float] | None = None

    # -- called from any thread -------------------------------------------------------------

    def add_completion_hook(self, hook: CompletionHook) -> None:
        """Run `hook(tx, snapshot)` inside every completion's transaction; if it raises, the
        completion is rolled back and retried later."""
        with self._cond:
            self._hooks = [*self._hooks, hook]

    def submit(self, event: object) -> None:
        """Queue a session event for writing; other events are ignored. Never blocks."""
        if isinstance(event, SESSION_EVENTS):
            self._put(event)

    def record_meter_seen(self, meter_id: str, at: datetime) -> None:
        """Note that a meter answered at `at`; written with the next batch, coalesced per meter."""
        with self._seen_lock:
            first = not self._seen
            previous = self._seen.get(meter_id)
            if previous is None or at > previous:
                self._seen[meter_id] = at
        if first:
            self._put(_MetersSeen())

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything submitted so far is committed; False if not within timeout_s."""
        self._queue.put(_FLUSH)
        with self._cond:
            target = self._next_seq
            return self._cond.wait_for(
                lambda: all(seq >= target for seq in self._outstanding), timeout=timeout_s
            )

    @property
    def outstanding(self) -> int:
        """Events submitted and not yet committed (queued, being written or waiting to retry)."""
        with self._cond:
            return len(self._outstanding)

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("Recorder already started")
        self._stop_deadline = None
        # Daemon: a process that exits without stop() must not hang on us; what was committed
        # is safe, and an unfinished session resumes from the database.
        self._thread = threading.Thread(target=self._run, name="milkconsole-recorder", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float) -> bool:
        """Write everything queued, then stop. True when all of it was committed in time."""
        thread = self._thread
        if thread is None:
            return not self._outstanding
        self._stop_deadline = time.monotonic() + timeout_s
        self._queue.put(_STOP)
        # The thread gives up retrying at the deadline; the grace lets its last attempt end.
        thread.join(timeout_s + STOP_GRACE_S)
        if thread.is_alive():
            log.error(
                "recorder did not stop within %.1f s; %d events unwritten",
                timeout_s,
                self.outstanding,
            )
            return False
        self._thread = None
        return self.outstanding == 0

    def upsert_meters(
        self,
        meters: Sequence[MeterConfig],
        registrations: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Make the meters table match the config (at start). A calibration factor already
        stored is kept: the calibration wizard, not the config file, owns it after the first run.
        Meters no longer configured are kept for their calibration history. `registrations`
        (meter id -> `outbound.meter_registration`) are queued for Odoo when they changed."""
        with self._db.write() as tx:
            for m in meters:
                row = tx.get(Meter, m.id)
                if row is None:
                    tx.add(
                        Meter(
                            id=m.id,
                            name=m.name,
                            bus_id=m.bus,
                            unit=m.unit,
                            profile=m.profile,
                            stall=m.stall,
                            calibration_factor=m.calibration_factor,
                            conductivity_offset_ms_cm=0.0,
                        )
                    )
                else:
                    row.name = m.name
                    row.bus_id = m.bus
                    row.unit = m.unit
                    row.profile = m.profile
                    row.stall = m.stall
            tx.flush()
            for meter_id, registration in (registrations or {}).items():
                row = tx.get(Meter, meter_id)
                if row is not None:
                    queue_meter(tx, row, registration)

    # -- internals ----------------------------------------------------------------------------

    def _put(self, work: _Work) -> None:
        with self._cond:
            seq = self._next_seq
            self._next_seq += 1
            self._outstanding.add(seq)
        self._queue.put(_Item(seq, work))

    def _run(self) -> None:
        backlog: list[_Item] = []
        held: list[_Item] = []
        last_commit = 0.0
        retry_at = 0.0
        delay_s = RETRY_FIRST_S
        stopping = False
        while True:
            wait = self._wait_s(backlog, retry_at, stopping)
            if held:
                hold_left = max(0.0, last_commit + self._checkpoint_s - time.monotonic())
                wait = hold_left if wait is None else min(wait, hold_left)
            fresh, saw_stop, saw_flush = self._take(wait)
            stopping = stopping or saw_stop
            now = time.monotonic()
            held += fresh
            urgent = any(isinstance(i.work, SessionStarted | SessionCompleted) for i in fresh)
            if stopping or saw_flush or urgent or now - last_commit >= self._checkpoint_s:
                fresh, held = held, []
            else:
                fresh = []
            deadline_passed = (
                self._stop_deadline is not None and now >= self._stop_deadline and stopping
            )
            if backlog and (now >= retry_at or (stopping and not fresh)):
                batch, backlog = backlog + fresh, []
            elif backlog and self._down is not None:
                # The disk refuses writes: everything waits, in order, for the next try.
                batch, backlog = [], backlog + fresh
            else:
                # Events of a session that is waiting to retry wait behind it, in order.
                blocked = {item.key for item in backlog if item.key is not None}
                batch = [item for item in fresh if item.key not in blocked]
                backlog += [item for item in fresh if item.key in blocked]
            if batch:
                last_commit = now
                failed = self._commit(batch)
                if failed:
                    backlog = failed + backlog
                    retry_at = time.monotonic() + delay_s
                    delay_s = min(delay_s * 2, RETRY_MAX_S)
                elif not backlog:
                    delay_s = RETRY_FIRST_S
            if stopping and self._queue.empty() and not held and (not backlog or deadline_passed):
                break
        for item in backlog:
            log.error(
                "recorder stopped with %s unwritten; an unfinished session resumes from the "
                "database at the next start",
                item.work,
            )

    def _wait_s(self, backlog: list[_Item], retry_at: float, stopping: bool) -> float | None:
        if not backlog:
            return 0.0 if stopping else None
        wait = max(0.0, retry_at - time.monotonic())
        if stopping and self._stop_deadline is not None:
            wait = min(wait, max(0.0, self._stop_deadline - time.monotonic()))
        return wait

    def _take(self, timeout_s: float | None) -> tuple[list[_Item], bool, bool]:
        """Block for the first item (up to timeout_s), then drain without waiting."""
        taken: list[_Item] = []
        saw_stop = saw_flush = False
        try:
            first = (
                self._queue.get_nowait() if timeout_s == 0.0 else self._queue.get(timeout=timeout_s)
            )
        except queue.Empty:
            return taken, False, False
        pending: object | None = first
        while pending is not None:
            if pending is _STOP:
                saw_stop = True
            elif pending is _FLUSH:
                saw_flush = True
            elif isinstance(pending, _Item):
                if isinstance(pending.work, _MetersSeen):
                    with self._seen_lock:
                        seen, self._seen = self._seen, {}
                    pending = _Item(pending.seq, _MetersSeen(seen))
                taken.append(pending)
            if len(taken) >= self._max_batch:
                break
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                pending = None
        return taken, saw_stop, saw_flush

    def _commit(self, batch: list[_Item]) -> list[_Item]:
        """Write the batch in one transaction, or item by item if that fails; returns failures."""
        try:
            changed = self._apply(batch)
            # Said before the waiters wake: whoever flushed sees the disk taking writes again.
            self._disk_ok()
            self._done(batch, changed)
            return []
        except Exception as exc:
            if self._disk_refused(exc, len(batch)):
                return batch
            if len(batch) == 1:
                self._log_failure(batch[0], exc)
                return batch
        failed: list[_Item] = []
        failed_keys: set[str | None] = set()
        for i, item in enumerate(batch):
            if item.key is not None and item.key in failed_keys:
                failed.append(item)
                continue
            try:
                changed = self._apply([item])
                self._disk_ok()
                self._done([item], changed)
            except Exception as exc:
                if self._disk_refused(exc, len(batch) - i):
                    return failed + batch[i:]
                self._log_failure(item, exc)
                failed.append(item)
                failed_keys.add(item.key)
        return failed

    def _disk_refused(self, exc: Exception, failing: int) -> bool:
        """True when `exc` is the disk refusing the write (logged and reported here)."""
        problem = storage_problem(exc)
        if problem is None:
            return False
        now = time.monotonic()
        waiting = self.outstanding
        path = self._db.path
        space = free_space_text(path)
        detail = (
            f"cannot write the database {path}: {problem}"
            + (f" ({space})" if space else "")
            + f"; {waiting} events wait in memory and are written as soon as it takes writes"
        )
        if self._down is None or self._down[0] != problem:
            self._down = (problem, utc_now(), now)
            log.error("%s (%s)", detail, exc)
        elif now - self._down[2] >= STORAGE_LOG_EVERY_S:
            self._down = (self._down[0], self._down[1], now)
            log.warning("still %s", detail)
        else:
            return True
        self._report(StorageStatus(False, problem, detail, waiting, self._down[1]))
        return True

    def _disk_ok(self) -> None:
        if self._down is None:
            return
        problem, since, _ = self._down
        self._down = None
        log.warning(
            "the database %s takes writes again (after %s since %s); recording goes on",
            self._db.path,
            problem,
            since.isoformat(timespec="seconds"),
        )
        self._report(StorageStatus(True, waiting=self.outstanding))

    def _report(self, status: StorageStatus) -> None:
        if self._on_status is None:
            return
        try:
            self._on_status(status)
        except Exception:
            log.exception("on_status listener failed")

    def _log_failure(self, item: _Item, exc: Exception) -> None:
        if item.seq in self._logged:
            log.debug("recording %s failed again: %s", item.work, exc)
            return
        self._logged.add(item.seq)
        log.error("could not record %s; will retry: %s", item.work, exc, exc_info=exc)

    def _done(self, items: list[_Item], changed: list[object]) -> None:
        with self._cond:
            for item in items:
                self._outstanding.discard(item.seq)
                self._logged.discard(item.seq)
            self._cond.notify_all()
        if changed and self._on_committed is not None:
            try:
                self._on_committed(changed)
            except Exception:
                log.exception("on_committed listener failed (the events are stored)")

    def _apply(self, items: list[_Item]) -> list[object]:
        changed: list[object] = []
        works = _coalesce([item.work for item in items])
        with self._db.write() as tx:
            now = utc_now()
            # Last stored sample time per session in this transaction: one query for the batch,
            # not one per event (each query would also autoflush).
            latest: dict[str, float] = {}
            # The batch's stored rows by key (held: the identity map is weak). Rows made in this
            # batch join it, so no session is looked up twice (each look-up would autoflush).
            rows = self._prefetch(tx, works, latest)
            batch = _Batch(tx, rows, now, latest, animal_resolver(tx))
            completing = {w.session.key for w in works if isinstance(w, SessionCompleted)}
            # Plain progress of a known, open session (the bulk of a busy parlour's writes) goes
            # into one executemany UPDATE instead of an ORM flush per session. A session that
            # also completes in this batch skips it: its completion writes every column.
            bulk: list[dict[str, object]] = []
            for work in works:
                if isinstance(work, _MetersSeen):
                    self._write_seen(tx, work.seen)
                    continue
                if work.session.key in batch.fresh:
                    batch.insert_fresh()  # a later event of a session completed just now
                if isinstance(work, SessionCompleted):
                    if self._complete(batch, work.session, work.samples):
                        changed.append(work)
                elif isinstance(work, SessionUpdated) and self._plain_progress(rows, work.session):
                    if work.session.key not in completing:
                        bulk.append(_progress_values(work.session, now))
                    add_open_samples(tx, work.session.key, work.samples, latest)
                    changed.append(work)
                elif isinstance(work, SessionUpdated):
                    if self._progress(batch, work.session, work.samples):
                        changed.append(work)
                elif self._progress(batch, work.session, ()):
                    changed.append(work)
            if bulk:
                tx.execute(update(SessionRow), bulk)
            self._finish(batch)
            del rows
        return changed

    def _finish(self, batch: _Batch) -> None:
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
        with self._cond:
            hooks = list(self._hooks)
        if hooks:
            for row in finished:
                final = snapshot_from_row(row)
                for hook in hooks:
                    hook(tx, final)
            tx.flush()
        queue_sessions(tx, finished)

    @staticmethod
    def _plain_progress(rows: dict[str, SessionRow], snap: SessionSnapshot) -> bool:
        """True when the session is stored, still open, and keeps its tag (no identity work)."""
        row = rows.get(snap.key)
        return row is not None and row.state == "in_progress" and row.rfid == snap.rfid

    def _progress(
        self, batch: _Batch, snap: SessionSnapshot, samples: Sequence[FlowSample]
    ) -> bool:
        tx = batch.tx
        row = batch.rows.get(snap.key)
        if row is None:
            # Started, or an update of a session we have not seen (resumed elsewhere): insert.
            row = new_session_row(snap, batch.now)
            row.state = "in_progress"
            self._identify(row, batch.resolve)
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
                self._identify(row, batch.resolve)
        add_open_samples(tx, snap.key, samples, batch.latest)
        return True

    def _complete(
        self, batch: _Batch, snap: SessionSnapshot, samples: Sequence[FlowSample]
    ) -> bool:
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
        self._identify(row, batch.resolve)
        batch.finished.append((snap.key, samples))
        return True

    @staticmethod
    def _prefetch(
        tx: Session, works: list[_Work], latest: dict[str, float]
    ) -> dict[str, SessionRow]:
        """Load the batch's session rows and last sample times in two queries, not two per
        session (each per-session query also autoflushed the rows changed so far)."""
        keys = sorted({w.session.key for w in works if not isinstance(w, _MetersSeen)})
        rows: dict[str, SessionRow] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows.update(
                (r.key, r) for r in tx.scalars(select(SessionRow).where(SessionRow.key.in_(chunk)))
            )
        latest.update(last_sample_times(tx, keys))
        return rows

    @staticmethod
    def _identify(row: SessionRow, resolve: Resolve) -> None:
        # Only a tag read fills the identity; a person's choice (id_source 'manual') stands.
        if row.id_source is None and row.rfid:
            animal_id = resolve(row.rfid)
            if animal_id is not None:
                row.animal_id, row.id_source = animal_id, "rfid"

    @staticmethod
    def _write_seen(tx: Session, seen: dict[str, datetime]) -> None:
        for meter_id, at in seen.items():
            tx.execute(
                update(Meter)
                .where(
                    Meter.id == meter_id, or_(Meter.last_seen_at.is_(None), Meter.last_seen_at < at)
                )
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


def _coalesce(works: list[_Work]) -> list[_Work]:
    """Merge each session's run of progress updates into one (last snapshot, all samples).

    A run ends at any other event of that session, so order per session is kept: an update is
    never moved past its session's start or completion.
    """
    out: list[_Work] = []
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
        elif not isinstance(work, _MetersSeen):
            open_run.pop(work.session.key, None)
        out.append(work)
    return out


def _progress_values(snap: SessionSnapshot, now: datetime) -> dict[str, object]:
    """The columns a progress checkpoint writes, keyed for a bulk UPDATE by primary key."""
    values: dict[str, object] = {name: getattr(snap, name) for name in SNAPSHOT_FIELDS}
    values.update(key=snap.key, flags=_flags_text(snap.flags), updated_at=now)
    return values
