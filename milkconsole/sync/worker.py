"""The sync worker: sync passes on their own plain thread, for the gateway and the console.

Right after `notify()` (call it after each committed session), every `idle_interval_s`
otherwise, with exponential back-off and jitter while Odoo is unreachable, and not at all after
a refused login until `notify()` / `retry_now()`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from milkconsole.meters.events import SessionCompleted
from milkconsole.store.db import Database
from milkconsole.sync.client import (
    OdooAuthError,
    OdooError,
    OdooNotConfigured,
    OdooUnavailable,
)
from milkconsole.sync.connect import connect
from milkconsole.sync.engine import ConnectFn, SyncEngine
from milkconsole.sync.lock import SyncBusy
from milkconsole.sync.secrets import SecretsError
from milkconsole.sync.settings import OdooSettings
from milkconsole.sync.status import SyncStateName, SyncStatus

log = logging.getLogger(__name__)


class SyncWorker:
    """Runs sync passes on its own plain thread; usable by the gateway and the console.

    `on_status(SyncStatus)` is called from the worker thread after every pass and during long
    pushes (the console turns it into a queued Qt signal). Call `notify()` after each committed
    session for low latency; it is ignored while backing off from an unreachable Odoo.
    """

    def __init__(
        self,
        db: Database,
        settings: OdooSettings | None,
        on_status: Callable[[SyncStatus], None] | None = None,
        *,
        idle_interval_s: float = 30.0,
        retry_first_s: float = 2.0,
        retry_max_s: float = 300.0,
        auth_retry_s: float = 900.0,
        connect_fn: ConnectFn = connect,
        rng: random.Random | None = None,
        engine: SyncEngine | None = None,
    ) -> None:
        self._rng = rng or random.Random()
        self.engine = engine or SyncEngine(db, settings, connect_fn=connect_fn, rng=self._rng)
        self.engine.on_progress = self._on_progress
        self._on_status = on_status
        self.idle_interval_s = idle_interval_s
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self.auth_retry_s = auth_retry_s
        self._wake = threading.Event()
        self._force = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state: SyncStateName = "offline" if settings else "not_configured"
        self._error: str | None = None
        self._status = SyncStatus(self._state)
        self._lock = threading.Lock()
        self.passes = 0

    @property
    def status(self) -> SyncStatus:
        with self._lock:
            return self._status

    def start(self) -> None:
        """Start the thread; it first takes the sync lock and releases rows a previous run
        left in flight (waiting, offline, while another process holds the lock)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("SyncWorker already started")
        self._stop.clear()
        self.engine.stop_requested.clear()
        self._thread = threading.Thread(target=self._run, name="milkconsole-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop after the call in progress (between batches); True when the thread ended."""
        self._stop.set()
        self.engine.stop_requested.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                return False
        self._thread = None
        self.engine.close()
        return True

    def notify(self) -> None:
        """Something was queued (a session completed): sync soon, unless backing off."""
        self._wake.set()

    def on_committed(self, events: list[object]) -> None:
        """A `ParlourRuntime` committed-listener: a finished session was stored, sync it now."""
        if any(isinstance(e, SessionCompleted) for e in events):
            self.notify()

    def retry_now(self) -> None:
        """Sync now even if backing off or after a refused login (the user fixed something)."""
        self._force.set()
        self._wake.set()

    def _publish(self) -> None:
        status = self.engine.status(self._state, self._error)
        with self._lock:
            self._status = status
        if self._on_status is not None:
            try:
                self._on_status(status)
            except Exception:
                log.exception("sync status listener failed")

    def _on_progress(self) -> None:
        # Draining again: whatever failed before is over, so the status bar stops showing it.
        self._state, self._error = "online", None
        self._publish()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            self._force.clear()
            wait: float
            try:
                if not self.engine.locked:
                    self.engine.start()
                self.engine.run_once()
                self.passes += 1
                self._state, self._error = "online", None
                failures = 0
                wait = self.idle_interval_s
            except (OdooNotConfigured, SecretsError) as exc:
                # No [odoo] section, no stored secret, or no OS keyring to hold one.
                self._state, self._error = "not_configured", str(exc)
                wait = self.auth_retry_s
            except OdooAuthError as exc:
                if self._state != "auth_failed":
                    log.error("Odoo sync stopped: %s", exc.message)
                self._state, self._error = "auth_failed", exc.message
                # Seldom: each try is a failed login on the server (which may lock the user
                # out); `milkconsole odoo login` then retry_now() resumes at once.
                wait = self.auth_retry_s
            except SyncBusy as exc:
                self._state, self._error = "offline", str(exc)
                wait = self.idle_interval_s
            except OdooUnavailable as exc:
                failures += 1
                if self._state != "offline" or failures == 1:
                    log.warning("Odoo unreachable, records wait in the outbox: %s", exc.message)
                else:
                    log.debug("Odoo still unreachable: %s", exc.message)
                self._state, self._error = "offline", exc.message
                ceiling = self._backoff_s(failures)
                wait = self._rng.uniform(ceiling / 2, ceiling)
            except OdooError as exc:  # a contract change mid-pass, a server bug: say it, back off
                failures += 1
                log.warning("sync pass failed: %s", exc.message)
                self._state, self._error = "offline", exc.message
                wait = self._backoff_s(failures)
            except Exception as exc:  # a bug must not end the thread: log it, back off
                failures += 1
                log.exception("sync pass failed")
                self._state, self._error = "offline", f"{type(exc).__name__}: {exc}"
                wait = self._backoff_s(failures)
            self._publish()
            if self._stop.is_set():
                break
            self._sleep(wait)

    def _backoff_s(self, failures: int) -> float:
        return min(self.retry_max_s, self.retry_first_s * 2 ** min(failures - 1, 30))

    def _sleep(self, wait: float) -> None:
        """Wait `wait` s; notify() cuts it short only when online, retry_now() always."""
        deadline = time.monotonic() + wait
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or not self._wake.wait(left):
                return
            self._wake.clear()
            if self._stop.is_set() or self._force.is_set() or self._state == "online":
                return
