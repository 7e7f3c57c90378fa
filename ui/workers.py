"""Work the GUI thread must never do itself: bus pollers in QThreads, database calls in a pool.

`LoopWorkerThread` runs one blocking loop (a core `BusPoller.run`) in its own QThread; when the
loop raises it reports the traceback by signal, logs it, waits (interruptibly) and runs it again.
`TaskRunner` runs short jobs (database reads and writes such as a manual ID) on a private
`QThreadPool` and hands the result or the error back to the GUI thread by a queued signal.
`CoalescedReader` repeats one such read on request, at most one in flight and at most one per
interval, however often it is asked (a burst of committed sessions costs one read).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThread, QThreadPool, QTimer, Signal, Slot

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
# A loop that ran this long before failing counts as healthy: the next failure starts the
# back-off from the beginning again.
HEALTHY_RUN_S = 60.0


@dataclass(frozen=True, slots=True)
class WorkerFailure:
    """A worker's loop raised; it is restarted after `restart_in_s` unless it is stopping."""

    worker: str
    error: str
    trace: str
    restart_in_s: float
    failures: int


class LoopWorkerThread(QThread):
    """Runs `target()` (a blocking loop) until `request_stop()`; restarts it when it raises.

    `stop_target()` must make a running `target()` return soon and be safe from any thread
    (`BusPoller.stop` is). A `target()` that returns on its own while no stop was asked is
    treated like a failure: the parlour must keep being polled.
    """

    failed = Signal(object)  # WorkerFailure
    restarted = Signal(str)

    def __init__(
        self,
        name: str,
        target: Callable[[], None],
        stop_target: Callable[[], None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.worker_name = name
        self.setObjectName(name)
        self._target = target
        self._stop_target = stop_target
        self._stopping = threading.Event()
        self.failures = 0
        self.runs = 0

    def request_stop(self) -> None:
        """Ask the loop to end (any thread, returns at once)."""
        self._stopping.set()
        try:
            self._stop_target()
        except Exception:
            log.exception("%s: stop failed", self.worker_name)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> None:  # the QThread body
        streak = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            self.runs += 1
            if self.runs > 1:
                self.restarted.emit(self.worker_name)
            try:
                self._target()
                if self._stopping.is_set():
                    return
                error, trace = "loop returned without being asked to stop", ""
            except Exception as exc:
                error, trace = f"{type(exc).__name__}: {exc}", traceback.format_exc()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= HEALTHY_RUN_S:
                streak = 0
            delay = RESTART_BACKOFF_S[min(streak, len(RESTART_BACKOFF_S) - 1)]
            streak += 1
            self.failures += 1
            log.error(
                "%s failed (%s); restarting in %.1f s\n%s", self.worker_name, error, delay, trace
            )
            self.failed.emit(WorkerFailure(self.worker_name, error, trace, delay, self.failures))
            if self._stopping.wait(delay):
                return


def stop_workers(workers: list[LoopWorkerThread], timeout_s: float = 2.0) -> bool:
    """Stop every worker, all at once, waiting at most `timeout_s` in total.

    Returns True when every thread has finished. Stop requests go out to all workers before
    waiting on any, so the total wait is the slowest worker's, not the sum.
    """
    for w in workers:
        w.request_stop()
    deadline = time.monotonic() + timeout_s
    ok = True
    for w in workers:
        remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
        if not w.wait(remaining_ms):
            log.error("%s did not stop within %.1f s", w.worker_name, timeout_s)
            ok = False
    return ok


class _TaskSignals(QObject):
    finished = Signal(int, object, object)  # task id, result, error (BaseException | None)


class _Task(QRunnable):
    def __init__(
        self, task_id: int, fn: Callable[[], Any], signals: _TaskSignals, name: str
    ) -> None:
        super().__init__()
        self._id = task_id
        self._fn = fn
        self._signals = signals
        self._name = name

    def run(self) -> None:
        try:
            result = self._fn()
        except Exception as exc:
            log.exception("task %s failed", self._name)
            self._signals.finished.emit(self._id, None, exc)
            return
        self._signals.finished.emit(self._id, result, None)


class TaskRunner(QObject):
    """Runs short blocking jobs off the GUI thread; callbacks run on the GUI thread.

    One long-lived signal object carries every result back (queued, by task id), so no Qt
    object is made or deleted per job: deleting a per-job receiver from inside its own slot is
    exactly the use-after-free that crashes Qt.
    """

    def __init__(self, max_threads: int = 2, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._signals = _TaskSignals(self)
        self._signals.finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self._callbacks: dict[
            int, tuple[Callable[[Any], None] | None, Callable[[BaseException], None] | None]
        ] = {}
        self._next_id = 0
        self._lock = threading.Lock()

    def submit(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        name: str = "task",
    ) -> None:
        """Run `fn()` on a pool thread; then `on_done(result)` or `on_error(exc)` on this thread."""
        with self._lock:
            self._next_id += 1
            task_id = self._next_id
            self._callbacks[task_id] = (on_done, on_error)
        self._pool.start(_Task(task_id, fn, self._signals, name))

    @Slot(int, object, object)
    def _deliver(self, task_id: int, result: object, error: object) -> None:
        with self._lock:
            on_done, on_error = self._callbacks.pop(task_id, (None, None))
        try:
            if isinstance(error, BaseException):
                if on_error is not None:
                    on_error(error)
            elif on_done is not None:
                on_done(result)
        except Exception:
            log.exception("task callback failed")

    @property
    def pending(self) -> int:
        """Jobs submitted whose callback has not run yet."""
        with self._lock:
            return len(self._callbacks)

    def wait_for_done(self, timeout_s: float) -> bool:
        """Block until every submitted job ran (shutdown only: writes must not be cut off)."""
        return bool(self._pool.waitForDone(int(timeout_s * 1000)))


class CoalescedReader(QObject):
    """Runs `read()` on a `TaskRunner` when asked (`request`), coalesced: at most one read in
    flight and at most one per `min_interval_s`; a request while one runs schedules exactly one
    more. With `idle_s`, it also reads that often on its own (figures that move with the clock).
    """

    refreshed = Signal(object)  # what read() returned
    failed = Signal(str)

    def __init__(
        self,
        read: Callable[[], Any],
        tasks: TaskRunner,
        *,
        name: str = "read",
        min_interval_s: float = 0.5,
        idle_s: float | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._read = read
        self._tasks = tasks
        self._name = name
        self.min_interval_s = min_interval_s
        self._in_flight = False
        self._again = False
        self._last_start = 0.0
        self.reads = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._start)
        self._idle = QTimer(self)
        if idle_s is not None:
            self._idle.setInterval(int(idle_s * 1000))
        self._idle.timeout.connect(self.request)
        self._idle_s = idle_s
        self._stopped = False

    def start(self) -> None:
        """Read now, then every `idle_s` (if set) and on every `request`."""
        self._stopped = False
        if self._idle_s is not None:
            self._idle.start()
        self.request()

    def stop(self) -> None:
        self._stopped = True
        self._idle.stop()
        self._timer.stop()

    @property
    def busy(self) -> bool:
        """A read is running or scheduled."""
        return self._in_flight or self._timer.isActive()

    @Slot()
    @Slot(object)
    def request(self, *_: object) -> None:
        """Something changed: read again soon (never more than one read at a time)."""
        if self._stopped:
            return
        if self._in_flight:
            self._again = True
            return
        if self._timer.isActive():
            return
        wait = self.min_interval_s - (time.monotonic() - self._last_start)
        self._timer.start(max(0, int(wait * 1000)))

    @Slot()
    def _start(self) -> None:
        if self._stopped:
            return
        self._in_flight = True
        self._again = False
        self._last_start = time.monotonic()
        self.reads += 1
        self._tasks.submit(self._read, self._done, self._error, name=self._name)

    def _done(self, result: object) -> None:
        self._in_flight = False
        if not self._stopped:
            self.refreshed.emit(result)
        if self._again:
            self.request()

    def _error(self, exc: BaseException) -> None:
        self._in_flight = False
        if not self._stopped:
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        if self._again:
            self.request()
