"""Backups as the console runs them: take one, rotate, remember how it went, alert on failure.

The outcome of every attempt is kept in `sync_state` (`backup.status`), so the status bar of a
running console shows a backup taken by `milkconsole backup now` from another process too. A
failed backup, and a backup missing for longer than `MISSING_AFTER`, is a supervisor alert
(kind `backup`), raised once per day at most and queued like every alert
(`outbound.queue_alert`). A restore is recorded in the restored database's audit log
(`record_restore`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from milkconsole.store.backup import (
    BackupError,
    BackupFile,
    BackupSettings,
    BackupStatus,
    Restored,
    rotate,
    status_from_json,
    status_json,
    take_backup,
)
from milkconsole.store.db import Database
from milkconsole.store.outbound import queue_alert
from milkconsole.store.schema import AlertRow, SyncState, append_audit

log = logging.getLogger(__name__)

STATUS_KEY = "backup.status"
ALERT_KIND = "backup"
# A daily backup more than this late is missing (a day and a few hours of slack).
MISSING_AFTER = timedelta(hours=30)


class BackupJobs:
    """Backups of one database with one set of settings (see the module docstring)."""

    def __init__(self, db: Database, settings: BackupSettings) -> None:
        self.db = db
        self.settings = settings

    def status(self) -> BackupStatus:
        with self.db.read() as tx:
            row = tx.get(SyncState, STATUS_KEY)
            return status_from_json(row.value if row is not None else None, self.settings)

    def run(self, now: datetime | None = None) -> BackupFile:
        """Take a backup now, rotate, remember the outcome; `BackupError` (after the alert is
        raised) when it failed."""
        now = now or datetime.now(UTC)
        if self.settings.directory is None:
            raise BackupError("backups are not set up: add a [backup] section with dir = ...")
        try:
            taken = take_backup(self.db.path, self.settings.directory, now=now)
        except BackupError as exc:
            log.error("backup failed: %s", exc)
            self._remember(error=str(exc), at=now)
            self._alert("failed", f"Backup failed: {exc}", now)
            raise
        try:
            removed = rotate(
                self.settings.directory, self.settings.keep_daily, self.settings.keep_weekly
            )
            if removed:
                log.info("backup rotation removed %d old file(s)", len(removed))
        except OSError as exc:  # the backup itself is good
            log.warning("backup rotation in %s failed: %s", self.settings.directory, exc)
        self._remember(good=taken)
        return taken

    def check_missing(self, now: datetime | None = None) -> bool:
        """Raise the 'missing' alert when no good backup is recent enough; True when missing."""
        now = now or datetime.now(UTC)
        status = self.status()
        if not status.overdue(now, MISSING_AFTER):
            return False
        last = status.last_good_at
        since = f"since {last.astimezone():%Y-%m-%d %H:%M}" if last else "ever"
        self._alert("missing", f"No good backup of the milk records {since}.", now)
        return True

    # -- internals ------------------------------------------------------------------------------

    def _remember(
        self,
        *,
        good: BackupFile | None = None,
        error: str | None = None,
        at: datetime | None = None,
    ) -> None:
        try:
            with self.db.write() as tx:
                row = tx.get(SyncState, STATUS_KEY)
                old = status_from_json(row.value if row is not None else None, self.settings)
                if good is not None:
                    new = BackupStatus(
                        configured=True,
                        directory=old.directory,
                        last_good_at=good.taken_at,
                        last_good_path=str(good.path),
                        last_good_bytes=good.size,
                        last_error=old.last_error,
                        last_error_at=old.last_error_at,
                    )
                else:
                    new = BackupStatus(
                        configured=old.configured,
                        directory=old.directory,
                        last_good_at=old.last_good_at,
                        last_good_path=old.last_good_path,
                        last_good_bytes=old.last_good_bytes,
                        last_error=error,
                        last_error_at=at,
                    )
                if row is None:
                    tx.add(SyncState(key=STATUS_KEY, value=status_json(new)))
                else:
                    row.value = status_json(new)
        except Exception:
            # A full database disk must not hide that the backup (on another disk) went fine.
            log.exception("the backup's outcome could not be recorded in %s", self.db.path)

    def _alert(self, condition: str, message: str, now: datetime) -> None:
        key = f"backup:{condition}:{now.astimezone():%Y-%m-%d}"
        try:
            with self.db.write() as tx:
                if tx.scalar(select(AlertRow.id).where(AlertRow.key == key)) is not None:
                    return
                alert = AlertRow(
                    key=key,
                    kind=ALERT_KIND,
                    condition=condition,
                    severity="critical",
                    state="open",
                    message=message,
                    raised_at=now,
                )
                tx.add(alert)
                queue_alert(tx, alert)
        except Exception:
            log.exception("the backup alert could not be stored: %s", message)


def record_restore(db: Database, restored: Restored, *, actor: str, database: str) -> None:
    """Say in the restored database's audit log who put which backup back (`database`: the
    database file's name), and what it replaced."""
    with db.write() as tx:
        append_audit(
            tx,
            actor=actor,
            role="system",
            action="database_restored",
            target=f"database:{database}",
            before={"replaced": str(restored.replaced) if restored.replaced else None},
            after={"backup": str(restored.backup), "revision": restored.revision},
        )
