"""The one place core events become Qt signals.

Pollers and the database writer call `EventBridge.publish` / `publish_committed` on their own
threads. Those calls only append to a locked queue and, when the queue was empty, emit one
internal signal that Qt delivers *queued* to the GUI thread; there the queue is drained and each
event is re-emitted as a typed signal. So widgets are only ever touched on the GUI thread, a burst
of events costs one cross-thread wake-up, and a poller never waits on the GUI.

The sync worker's `SyncStatus` takes a path of its own (`publish_sync_status`): only the latest
status matters, so a burst of them (one per pushed batch while a backlog drains) is coalesced
to the newest one and costs one wake-up.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from milkconsole.meters.events import (
    MeterPollFailed,
    MeterStateChanged,
    PollCycleCompleted,
    ReadingTaken,
    SessionCompleted,
    SessionStarted,
    SessionUpdated,
    StorageStatus,
)
from milkconsole.store.backup import BackupStatus

log = logging.getLogger(__name__)

# Bounded so a GUI frozen for minutes cannot grow memory without end; the oldest live readings
# are the ones worth dropping (the database has the sessions).
MAX_QUEUED_EVENTS = 20_000


class _Committed:
    """Wrapper marking a batch the recorder committed (so it is not confused with live events)."""

    __slots__ = ("events",)

    def __init__(self, events: list[object]) -> None:
        self.events = events


class EventBridge(QObject):
    """Turns core events (any thread) into signals emitted on the GUI thread.

    Signals carry the core's frozen event objects unchanged.
    """

    reading_taken = Signal(object)  # ReadingTaken
    session_started = Signal(object)  # SessionStarted
    session_updated = Signal(object)  # SessionUpdated
    session_completed = Signal(object)  # SessionCompleted
    meter_state_changed = Signal(object)  # MeterStateChanged
    meter_poll_failed = Signal(object)  # MeterPollFailed
    poll_cycle_completed = Signal(object)  # PollCycleCompleted
    sessions_committed = Signal(object)  # list[object]: what the recorder just committed
    other_event = Signal(object)  # anything else a later core version publishes
    sync_status_changed = Signal(object)  # milkconsole.sync.status.SyncStatus
    storage_status_changed = Signal(object)  # StorageStatus: can the database be written
    backup_status_changed = Signal(object)  # milkconsole.store.backup.BackupStatus

    _events_pending = Signal()
    _sync_pending = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._queue: deque[object] = deque(maxlen=MAX_QUEUED_EVENTS)
        self._wake_pending = False
        self.dropped = 0
        self._events_pending.connect(self._drain, Qt.ConnectionType.QueuedConnection)
        self._sync_latest: object = None
        self._sync_wake_pending = False
        self.sync_statuses = 0  # statuses the GUI thread re-emitted (after coalescing)
        self._sync_pending.connect(self._drain_sync, Qt.ConnectionType.QueuedConnection)

    # -- any thread ---------------------------------------------------------------------------
    def publish(self, event: object) -> None:
        """Queue one core event for the GUI thread. Cheap; never blocks on the GUI."""
        with self._lock:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
            self._queue.append(event)
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            self._events_pending.emit()

    def publish_committed(self, events: list[object]) -> None:
        """Queue a batch the recorder committed (the dashboard re-reads the database on it)."""
        self.publish(_Committed(list(events)))

    def publish_sync_status(self, status: object) -> None:
        """Hand a `SyncStatus` to the GUI thread (any thread; only the newest one is kept)."""
        with self._lock:
            self._sync_latest = status
            wake = not self._sync_wake_pending
            self._sync_wake_pending = True
        if wake:
            self._sync_pending.emit()

    def attach(self, runtime: Any) -> None:
        """Listen to a `ParlourRuntime`'s live and committed events."""
        runtime.add_listener(self.publish)
        runtime.add_committed_listener(self.publish_committed)

    # -- GUI thread ---------------------------------------------------------------------------
    @Slot()
    def _drain(self) -> None:
        with self._lock:
            batch = list(self._queue)
            self._queue.clear()
            self._wake_pending = False
        for event in batch:
            try:
                self._dispatch(event)
            except Exception:  # one bad widget update must not lose the rest of the batch
                log.exception("handling %s failed", type(event).__name__)

    @Slot()
    def _drain_sync(self) -> None:
        with self._lock:
            status, self._sync_latest = self._sync_latest, None
            self._sync_wake_pending = False
        if status is not None:
            self.sync_statuses += 1
            self.sync_status_changed.emit(status)

    def _dispatch(self, event: object) -> None:
        if isinstance(event, ReadingTaken):
            self.reading_taken.emit(event)
        elif isinstance(event, SessionUpdated):
            self.session_updated.emit(event)
        elif isinstance(event, SessionStarted):
            self.session_started.emit(event)
        elif isinstance(event, SessionCompleted):
            self.session_completed.emit(event)
        elif isinstance(event, MeterStateChanged):
            self.meter_state_changed.emit(event)
        elif isinstance(event, MeterPollFailed):
            self.meter_poll_failed.emit(event)
        elif isinstance(event, PollCycleCompleted):
            self.poll_cycle_completed.emit(event)
        elif isinstance(event, _Committed):
            self.sessions_committed.emit(event.events)
        elif isinstance(event, StorageStatus):
            self.storage_status_changed.emit(event)
        elif isinstance(event, BackupStatus):
            self.backup_status_changed.emit(event)
        else:
            self.other_event.emit(event)
