"""The recorder: the one thread that writes session events to the database.

Pollers and the stall tracker `submit()` events without ever waiting on the disk; the recorder
drains its queue and commits what it took in one transaction. A `SessionCompleted` is written
with its last samples, whatever the completion hooks add (alerts, grades, health events, more
outbox rows) and its milk.session outbox row, all in that one transaction: after a crash either
all of it is there or none of it is and the session is still in progress, ready to resume.

A transaction that fails is rolled back, its events are retried one by one so one bad event
cannot hold the others back, and whatever still fails is logged (ERROR once, DEBUG after) and
retried with back-off, in order per session. Nothing is dropped while the process lives.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from milkconsole.config import MeterConfig
from milkconsole.events import (
    FlowSample,
    SessionCompleted,
    SessionSnapshot,
    SessionStarted,
    SessionUpdated,
)
from milkconsole.store.db import Database
from milkconsole.store.outbound import queue_meter, queue_session
from milkconsole.store.schema import FlowSampleRow, Meter, MilkSession, utc_now
from milkconsole.store.sessions import (
    FINISHED_STATES,
    SNAPSHOT_FIELDS,
    _flags_text,
    apply_snapshot,
    new_session_row,
    resolve_animal,
    sample_row,
    snapshot_from_row,
)

log = logging.getLogger(__name__)

CompletionHook = Callable[[Session, SessionSnapshot], None]
SESSION_EVENTS = (SessionStarted, SessionUpdated, SessionCompleted)
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
STOP_GRACE_S = 0.5


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
    """

    def __init__(
        self,
        db: Database,
        *,
        farm_code: str,
        on_committed: Callable[[list[object]], None] | None = None,
        max_batch: int = 500,
        checkpoint_s: float = 3.0,
    ) -> None:
        if not farm_code.strip():
            raise ValueError("Recorder: farm_code must not be empty (it goes into every payload)")
        self._db = db
        self._farm_code = farm_code
        self._on_committed = on_committed
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
            self._done(batch, self._apply(batch))
            return []
        except Exception as exc:
            if len(batch) == 1:
                self._log_failure(batch[0], exc)
                return batch
        failed: list[_Item] = []
        failed_keys: set[str | None] = set()
        for item in batch:
            if item.key is not None and item.key in failed_keys:
                failed.append(item)
                continue
            try:
                self._done([item], self._apply([item]))
            except Exception as exc:
                self._log_failure(item, exc)
                failed.append(item)
                failed_keys.add(item.key)
        return failed

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
        # Last stored sample time per session in this transaction: one query per session, not
        # one per event (each query would also autoflush).
        latest: dict[str, float] = {}
        works = _coalesce([item.work for item in items])
        with self._db.write() as tx:
            now = utc_now()
            rows = self._prefetch(tx, works, latest)  # held: the identity map is weak
            completing = {w.session.key for w in works if isinstance(w, SessionCompleted)}
            # Plain progress of a known, open session (the bulk of a busy parlour's writes) goes
            # into one executemany UPDATE instead of an ORM flush per session. A session that
            # also completes in this batch skips it: its completion writes every column.
            bulk: list[dict[str, object]] = []
            for work in works:
                if isinstance(work, _MetersSeen):
                    self._write_seen(tx, work.seen)
                elif isinstance(work, SessionCompleted):
                    if self._complete(tx, work.session, work.samples, now, latest):
                        changed.append(work)
                elif isinstance(work, SessionUpdated) and self._plain_progress(tx, work.session):
                    if work.session.key not in completing:
                        bulk.append(_progress_values(work.session, now))
                    self._add_samples(tx, work.session.key, work.samples, latest)
                    changed.append(work)
                elif isinstance(work, SessionUpdated):
                    if self._progress(tx, work.session, work.samples, now, latest):
                        changed.append(work)
                elif self._progress(tx, work.session, (), now, latest):
                    changed.append(work)
            if bulk:
                tx.execute(update(MilkSession), bulk)
            del rows
        return changed

    @staticmethod
    def _plain_progress(tx: Session, snap: SessionSnapshot) -> bool:
        """True when the session is stored, still open, and keeps its tag (no identity work)."""
        row = tx.get(MilkSession, snap.key)
        return row is not None and row.state == "in_progress" and row.rfid == snap.rfid

    def _progress(
        self,
        tx: Session,
        snap: SessionSnapshot,
        samples: Sequence[FlowSample],
        now: datetime,
        latest: dict[str, float],
    ) -> bool:
        row = tx.get(MilkSession, snap.key)
        if row is None:
            # Started, or an update of a session we have not seen (resumed elsewhere): insert.
            row = new_session_row(snap, now)
            row.state = "in_progress"
            self._identify(tx, row)
            tx.add(row)
            tx.flush()
        elif row.state != "in_progress":
            # A late update must not reopen or alter a finished session.
            log.debug("ignored %s update: session already %s", snap.key, row.state)
            return False
        else:
            old_rfid = row.rfid
            apply_snapshot(row, snap, now)
            row.state = "in_progress"
            # Look the tag up only when it changes (a late read); completion looks again in case
            # the herd list arrived meanwhile.
            if row.rfid != old_rfid:
                if row.id_source == "rfid":
                    row.animal_id, row.id_source = None, None
                self._identify(tx, row)
        self._add_samples(tx, snap.key, samples, latest)
        return True

    def _complete(
        self,
        tx: Session,
        snap: SessionSnapshot,
        samples: Sequence[FlowSample],
        now: datetime,
        latest: dict[str, float],
    ) -> bool:
        row = tx.get(MilkSession, snap.key)
        if row is not None and row.state != "in_progress":
            log.debug("ignored duplicate completion of %s (already %s)", snap.key, row.state)
            return False
        if row is None:
            row = new_session_row(snap, now)
            tx.add(row)
        else:
            old_rfid = row.rfid
            apply_snapshot(row, snap, now)
            if row.rfid != old_rfid and row.id_source == "rfid":
                row.animal_id, row.id_source = None, None
        if snap.state not in FINISHED_STATES:
            log.warning(
                "completion of %s arrived in state %s; stored as completed", snap.key, snap.state
            )
            row.state = "completed"
        if row.ended_at is None:
            row.ended_at = row.started_at + timedelta(seconds=row.duration_s)
        self._identify(tx, row)
        tx.flush()
        self._add_samples(tx, snap.key, samples, latest)
        final = snapshot_from_row(row)
        with self._cond:
            hooks = list(self._hooks)
        for hook in hooks:
            hook(tx, final)
        tx.flush()
        queue_session(tx, row)
        return True

    @staticmethod
    def _prefetch(tx: Session, works: list[_Work], latest: dict[str, float]) -> list[MilkSession]:
        """Load the batch's session rows and last sample times in two queries, not two per
        session (each per-session query also autoflushed the rows changed so far)."""
        keys = {w.session.key for w in works if not isinstance(w, _MetersSeen)}
        if not keys:
            return []
        rows = list(tx.scalars(select(MilkSession).where(MilkSession.key.in_(keys))))
        last = select(FlowSampleRow.session_key, func.max(FlowSampleRow.elapsed_s))
        for key, elapsed in tx.execute(
            last.where(FlowSampleRow.session_key.in_(keys)).group_by(FlowSampleRow.session_key)
        ):
            latest[key] = elapsed
        for key in keys:
            latest.setdefault(key, float("-inf"))
        return rows

    @staticmethod
    def _identify(tx: Session, row: MilkSession) -> None:
        # Only a tag read fills the identity; a person's choice (id_source 'manual') stands.
        if row.id_source is None and row.rfid:
            animal_id = resolve_animal(tx, row.rfid)
            if animal_id is not None:
                row.animal_id, row.id_source = animal_id, "rfid"

    @staticmethod
    def _add_samples(
        tx: Session, key: str, samples: Sequence[FlowSample], latest: dict[str, float]
    ) -> None:
        if not samples:
            return
        # A replayed event (resume after restart) must not double the curve.
        if key not in latest:
            last = tx.scalar(
                select(func.max(FlowSampleRow.elapsed_s)).where(FlowSampleRow.session_key == key)
            )
            latest[key] = float("-inf") if last is None else last
        rows = []
        for sample in samples:
            if sample.elapsed_s > latest[key]:
                rows.append(sample_row(key, sample))
                latest[key] = sample.elapsed_s
        tx.add_all(rows)

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
