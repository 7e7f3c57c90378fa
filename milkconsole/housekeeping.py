"""The running parlour's daily jobs: the backup and the retention pass, on a thread of their own.

Both the console and the headless gateway run one (`ParlourRuntime.start_housekeeping`). Once a
minute it looks at the clock:

- the daily backup (`[backup]`): due once per local day from `daily_at` on, so a console that
  was off at that hour backs up when it starts; a failure is retried after `RETRY_AFTER`;
  a backup missing for more than a day is a supervisor alert (`store.backup_jobs`);
- the retention pass (`[retention]`): once per local day;
- the backup status for the status bar, handed to `on_status` whenever it changes (a backup
  taken by `milkconsole backup now` from another process shows up within the minute).

`backup_now()` takes one on demand (from any thread; one backup at a time).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from milkconsole.store.backup import BackupFile, BackupSettings, BackupStatus
from milkconsole.store.backup_jobs import BackupJobs
from milkconsole.store.db import Database
from milkconsole.store.retention import RetentionPolicy, apply_retention

log = logging.getLogger(__name__)

TICK_S = 60.0
FIRST_TICK_S = 60.0
RETRY_AFTER = timedelta(hours=1)
MISSING_CHECK_EVERY = timedelta(hours=1)


class Housekeeping:
    """Daily backup and retention for one database (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        backup: BackupSettings,
        retention: RetentionPolicy,
        *,
        on_status: Callable[[BackupStatus], None] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.backup = BackupJobs(db, backup)
        self.settings = backup
        self.retention = retention
        self._on_status = on_status
        self._clock = clock or (lambda: datetime.now(UTC))
        self._backup_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._retained_on: date | None = None
        self._missing_checked: datetime | None = None
        self._last_status: BackupStatus | None = None
        self._first = True

    # -- any thread ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="milkconsole-housekeeping", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)

    def backup_now(self) -> BackupFile:
        """Take a backup now (`BackupError` when it fails: alert raised, status updated)."""
        with self._backup_lock:
            try:
                return self.backup.run(self._clock())
            finally:
                self.publish_status(force=True)

    def status(self) -> BackupStatus:
        return self.backup.status()

    def publish_status(self, *, force: bool = False) -> None:
        try:
            status = self.backup.status()
        except Exception:
            log.exception("backup status not readable")
            return
        if (force or status != self._last_status) and self._on_status is not None:
            self._last_status = status
            try:
                self._on_status(status)
            except Exception:
                log.exception("backup status listener failed")

    # -- the jobs -----------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> None:
        """One look at the clock: run whatever is due (the thread calls it every minute)."""
        now = now or self._clock()
        if self.settings.configured:
            self._maybe_backup(now)
            if self._missing_checked is None or now - self._missing_checked >= MISSING_CHECK_EVERY:
                self._missing_checked = now
                self.backup.check_missing(now)
        today = now.astimezone().date()
        if self._retained_on != today:
            self._retained_on = today
            try:
                apply_retention(self.db, self.retention, now)
            except Exception:
                log.exception("the retention pass failed (it runs again tomorrow)")
        self.publish_status()

    def _maybe_backup(self, now: datetime) -> None:
        local = now.astimezone()
        if local.time() < self.settings.daily_at:
            return
        status = self.backup.status()
        good = status.last_good_at
        if good is not None and good.astimezone().date() == local.date():
            return
        failed = status.last_error_at
        if failed is not None and status.failing and now - failed < RETRY_AFTER:
            return
        if not self._backup_lock.acquire(blocking=False):
            return  # one on demand is running
        try:
            self.backup.run(now)
        except Exception as exc:  # BackupError: recorded and alerted by BackupJobs
            log.debug("daily backup failed: %s", exc)
        finally:
            self._backup_lock.release()

    def _run(self) -> None:
        self.publish_status(force=True)
        # The first pass waits a minute: a console that starts comes up first, then catches up
        # on a backup it missed while it was off.
        while not self._stop.wait(FIRST_TICK_S if self._first else TICK_S):
            self._first = False
            try:
                self.tick()
            except Exception:
                log.exception("housekeeping pass failed")
