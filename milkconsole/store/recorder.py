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

What one transaction writes is `store.session_writes`; this module is the thread around it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from milkconsole.meters.events import (
    SessionCompleted,
    SessionStarted,
    SessionUpdated,
    StorageStatus,
)
from milkconsole.meters.parlour import MeterConfig
from milkconsole.store.db import Database
from milkconsole.store.outbound import queue_meter
from milkconsole.store.schema import Meter, utc_now
from milkconsole.store.session_writes import CompletionHook, MetersSeen, Work, write_events
from milkconsole.store.storage import free_space_text, storage_problem

log = logging.getLogger(__name__)

SESSION_EVENTS = (SessionStarted, SessionUpdated, SessionCompleted)
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
STOP_GRACE_S = 0.5
STORAGE_LOG_EVERY_S = 60.0


_STOP = object()
_FLUSH = object()  # queue marker: commit what is held now (flush() is waiting)


@dataclass(frozen=True, slots=True)
class _Item:
    seq: int
    work: Work

    @property
    def key(self) -> str | None:
        return None if isinstance(self.work, MetersSeen) else self.work.session.key


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
            self._put(MetersSeen())

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

    def _put(self, work: Work) -> None:
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
                if isinstance(pending.work, MetersSeen):
                    with self._seen_lock:
                        seen, self._seen = self._seen, {}
                    pending = _Item(pending.seq, MetersSeen(seen))
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
            changed = self._write(batch)
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
                changed = self._write([item])
                self._disk_ok()
                self._done([item], changed)
            except Exception as exc:
                if self._disk_refused(exc, len(batch) - i):
                    return failed + batch[i:]
                self._log_failure(item, exc)
                failed.append(item)
                failed_keys.add(item.key)
        return failed

    def _write(self, items: list[_Item]) -> list[object]:
        with self._cond:
            hooks = list(self._hooks)
        return write_events(self._db, [item.work for item in items], hooks)

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
