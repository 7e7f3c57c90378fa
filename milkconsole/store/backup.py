"""Backups of the local database: online copies to a second disk or USB stick, checked, rotated.

While Odoo is unreachable the local database is the only copy of the farm's milk records. A
backup is taken with SQLite's online backup API from a connection of its own, in one step: in
WAL mode that step reads one consistent snapshot while the recorder keeps committing beside it.
The copy is written under a hidden `.partial` name, switched to a self-contained file (no WAL),
checked with `PRAGMA integrity_check` and for being a Milk Console database, then renamed: a
file with a backup's name is always a whole, checked copy, and a backup killed half-way leaves
only a `.partial` file (removed by the next rotation) and the database untouched.

`[backup]` in the parlour config says where and when:

    [backup]
    dir = "/media/backup/milkconsole"  # a second disk or USB stick; must exist (not created)
    daily_at = "02:30"                 # local time of the daily backup
    keep_daily = 7                     # the newest backup of each of the last 7 days
    keep_weekly = 4                    # and of each of the last 4 weeks

The directory is never created: a USB stick that is not plugged in must fail the backup (and
raise the supervisor alert), not fill the parlour PC's own disk under its mount point.

`restore_backup` puts a backup back, with the console stopped (`milkconsole backup restore`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

from milkconsole.config_tables import checked_table
from milkconsole.errors import ConfigError, DatabaseError, MilkConsoleError

log = logging.getLogger(__name__)

SECTION = "backup"
_KEYS = {"dir", "daily_at", "keep_daily", "keep_weekly"}
PREFIX = "milkconsole-"
SUFFIX = ".sqlite"
_NAME = re.compile(r"^milkconsole-(\d{8}T\d{6}Z)(?:-(\d+))?\.sqlite$")
_STAMP = "%Y%m%dT%H%M%SZ"
PARTIAL_MAX_AGE_S = 6 * 3600.0  # a .partial older than this is a dead backup's leftover
BUSY_TIMEOUT_S = 10.0


class BackupError(MilkConsoleError):
    """A backup or restore could not be done; the message says what and where."""


# -- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackupSettings:
    """Where and when backups go. `directory` None: backups are not set up."""

    directory: Path | None = None
    daily_at: clock = clock(2, 30)
    keep_daily: int = 7
    keep_weekly: int = 4

    @property
    def configured(self) -> bool:
        return self.directory is not None

    @classmethod
    def from_table(cls, table: Any, source: str) -> BackupSettings:
        """The settings of a config's `[backup]` table (None: not set up); `ConfigError`
        naming the file and key for anything wrong."""
        if table is None:
            return cls()
        checked_table(table, source, SECTION, _KEYS)
        raw_dir = table.get("dir")
        if not isinstance(raw_dir, str) or not raw_dir.strip():
            raise ConfigError(
                source,
                f"{SECTION}.dir",
                f"must name the backup directory (a second disk or USB stick), not {raw_dir!r}",
            )
        directory = Path(raw_dir).expanduser()
        if not directory.is_absolute():
            directory = Path(source).parent / directory
        at_text = table.get("daily_at", "02:30")
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", at_text) if isinstance(at_text, str) else None
        if match is None or int(match[1]) > 23 or int(match[2]) > 59:
            raise ConfigError(
                source, f"{SECTION}.daily_at", f"must be a local time HH:MM, not {at_text!r}"
            )
        return cls(
            directory=directory,
            daily_at=clock(int(match[1]), int(match[2])),
            keep_daily=_count(table, "keep_daily", source, 7, 1, 366),
            keep_weekly=_count(table, "keep_weekly", source, 4, 0, 520),
        )


def _count(table: dict[str, Any], key: str, source: str, default: int, lo: int, hi: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(
            source, f"{SECTION}.{key}", f"must be a whole number from {lo} to {hi}, not {value!r}"
        )
    return value


# -- backup files ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackupFile:
    """One checked backup: where, when it was taken (UTC) and how big."""

    path: Path
    taken_at: datetime
    size: int

    def describe(self) -> str:
        local = self.taken_at.astimezone()
        return f"{local:%Y-%m-%d %H:%M} {self.size / 1e6:.1f} MB {self.path}"


def list_backups(directory: Path) -> list[BackupFile]:
    """The checked backups in `directory`, newest first (other files are not looked at)."""
    out: list[BackupFile] = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return []
    for p in entries:
        m = _NAME.match(p.name)
        if m is None or not p.is_file():
            continue
        taken = datetime.strptime(m[1], _STAMP).replace(tzinfo=UTC)
        out.append(BackupFile(p, taken, p.stat().st_size))
    out.sort(key=lambda b: (b.taken_at, b.path.name), reverse=True)
    return out


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _connect(path: Path, *, timeout: float = BUSY_TIMEOUT_S) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, timeout=timeout)
    try:
        yield conn
    finally:
        conn.close()


def check_database(path: Path) -> str:
    """Check that `path` is a whole Milk Console database; its schema revision. Raises
    `BackupError` saying what is wrong (not SQLite, damaged, not a console database)."""
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    with path.open("rb") as fh:
        header = fh.read(16)
    if header != b"SQLite format 3\x00":
        raise BackupError(f"{path} is not an SQLite database (not a Milk Console backup)")
    try:
        with _connect(path) as conn:
            result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            if result != ["ok"]:
                raise BackupError(f"{path} is damaged: {'; '.join(result[:5])}")
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if not {"alembic_version", "milk_sessions", "outbox"} <= tables:
                raise BackupError(
                    f"{path} is not a Milk Console database (its tables: "
                    f"{', '.join(sorted(tables)) or 'none'})"
                )
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} cannot be read as a database: {exc}") from exc
    if row is None:
        raise BackupError(f"{path} is not a Milk Console database (no schema revision)")
    return str(row[0])


def take_backup(db_path: Path, directory: Path, *, now: datetime | None = None) -> BackupFile:
    """Copy the database at `db_path` into `directory` (online: the console may be recording),
    check the copy and return it. `BackupError` when the directory is missing or unwritable,
    the disk is full or the copy does not check out; nothing half-done is left named as a
    backup."""
    if not directory.is_dir():
        raise BackupError(
            f"backup place {directory} is not there (is the backup disk or USB stick plugged in "
            "and mounted?)"
        )
    taken = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    name = f"{PREFIX}{taken:{_STAMP}}{SUFFIX}"
    n = 1
    while (directory / name).exists():
        n += 1
        name = f"{PREFIX}{taken:{_STAMP}}-{n}{SUFFIX}"
    final = directory / name
    partial = directory / f".{name}.partial"
    started = time.monotonic()
    try:
        with _connect(db_path) as source, _connect(partial) as dest:
            # One step (pages=-1): one consistent snapshot. A multi-step backup would restart
            # each time the recorder commits, which it does every few seconds.
            source.backup(dest, pages=-1)
            # A backup is one self-contained file: no WAL beside it.
            dest.execute("PRAGMA journal_mode=DELETE")
        with partial.open("rb+") as fh:
            os.fsync(fh.fileno())
        check_database(partial)
        os.replace(partial, final)
        _fsync_dir(directory)
    except (OSError, sqlite3.Error, BackupError) as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        if isinstance(exc, BackupError):
            raise
        raise BackupError(f"backup of {db_path} to {directory} failed: {exc}") from exc
    size = final.stat().st_size
    log.info(
        "backup of %s to %s: %.1f MB in %.1f s",
        db_path,
        final,
        size / 1e6,
        time.monotonic() - started,
    )
    return BackupFile(final, taken, size)


def rotate(directory: Path, keep_daily: int, keep_weekly: int) -> list[Path]:
    """Delete backups beyond the rotation: the newest of each of the last `keep_daily` days
    and of each of the last `keep_weekly` weeks (local time) stay, and the newest one always.
    Leftovers of killed backups go too. Returns what was deleted."""
    backups = list_backups(directory)
    keep: set[Path] = set()
    days: set[object] = set()
    weeks: set[object] = set()
    for b in backups:  # newest first
        local = b.taken_at.astimezone()
        day, week = local.date(), local.isocalendar()[:2]
        if day not in days and len(days) < keep_daily:
            days.add(day)
            keep.add(b.path)
        if week not in weeks and len(weeks) < keep_weekly:
            weeks.add(week)
            keep.add(b.path)
    if backups:
        keep.add(backups[0].path)
    removed: list[Path] = []
    for b in backups:
        if b.path not in keep:
            try:
                b.path.unlink()
                removed.append(b.path)
            except OSError as exc:
                log.warning("old backup %s not deleted: %s", b.path, exc)
    cutoff = time.time() - PARTIAL_MAX_AGE_S
    for p in directory.glob(f".{PREFIX}*{SUFFIX}.partial"):
        try:
            if p.stat().st_mtime < cutoff:
                p.unlink()
                removed.append(p)
        except OSError:
            pass
    return removed


# -- restore --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Restored:
    """A restore done: the backup put back, its revision, and where the replaced database went."""

    backup: Path
    revision: str
    replaced: Path | None


def restore_backup(
    backup: Path, db_path: Path, *, known_revisions: set[str], now: datetime | None = None
) -> Restored:
    """Put `backup` in place of the database at `db_path` (the console must be stopped: the
    caller holds its run lock). The backup is checked first and refused when it is not a
    whole Milk Console database or was written by a newer release (revision not in
    `known_revisions`). The database it replaces, with anything in its WAL, is kept beside it
    as `<name>.replaced-<time>`; a restore that fails leaves it where it was."""
    revision = check_database(backup)
    if revision not in known_revisions:
        raise BackupError(
            f"{backup} was written by a newer Milk Console (schema revision {revision}); "
            "this version cannot use it"
        )
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime(_STAMP)
    replaced: Path | None = None
    if db_path.exists():
        replaced = db_path.with_name(f"{db_path.name}.replaced-{stamp}")
        try:
            # Through SQLite, so what only the WAL holds (a console that was killed) comes too.
            with _connect(db_path) as current, _connect(replaced) as aside:
                current.backup(aside, pages=-1)
                aside.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error as exc:
            with contextlib.suppress(OSError):
                replaced.unlink()
            raise DatabaseError(
                f"{db_path} could not be set aside before the restore ({exc}); nothing changed"
            ) from exc
    incoming = db_path.with_name(f".{db_path.name}.restoring")
    try:
        with _connect(backup) as source, _connect(incoming) as dest:
            source.backup(dest, pages=-1)
        with incoming.open("rb+") as fh:
            os.fsync(fh.fileno())
        # The old WAL and shared memory belong to the old file: left beside the new one they
        # would be replayed into it.
        for extra in (Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
            extra.unlink(missing_ok=True)
        os.replace(incoming, db_path)
        _fsync_dir(db_path.parent)
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            incoming.unlink()
        raise BackupError(f"restoring {backup} to {db_path} failed: {exc}") from exc
    log.warning(
        "restored %s from %s (revision %s); the replaced database is at %s",
        db_path,
        backup,
        revision,
        replaced,
    )
    return Restored(backup, revision, replaced)


# -- status ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackupStatus:
    """What the status bar shows: set up or not, the last good backup, the last failure."""

    configured: bool
    directory: str | None = None
    last_good_at: datetime | None = None
    last_good_path: str | None = None
    last_good_bytes: int | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None

    @property
    def failing(self) -> bool:
        """The last attempt failed (no good backup since)."""
        return self.last_error_at is not None and (
            self.last_good_at is None or self.last_error_at > self.last_good_at
        )

    def overdue(self, now: datetime, max_age: timedelta) -> bool:
        """No good backup within `max_age` of `now`."""
        return self.configured and (self.last_good_at is None or now - self.last_good_at > max_age)


def status_json(status: BackupStatus) -> str:
    def iso(dt: datetime | None) -> str | None:
        return None if dt is None else dt.astimezone(UTC).isoformat()

    return json.dumps(
        {
            "last_good_at": iso(status.last_good_at),
            "last_good_path": status.last_good_path,
            "last_good_bytes": status.last_good_bytes,
            "last_error": status.last_error,
            "last_error_at": iso(status.last_error_at),
        }
    )


def status_from_json(text: str | None, settings: BackupSettings) -> BackupStatus:
    data: dict[str, Any] = {}
    if text:
        try:
            data = json.loads(text)
        except ValueError:
            data = {}

    def when(key: str) -> datetime | None:
        v = data.get(key)
        return datetime.fromisoformat(v) if isinstance(v, str) else None

    return BackupStatus(
        configured=settings.configured,
        directory=str(settings.directory) if settings.directory else None,
        last_good_at=when("last_good_at"),
        last_good_path=data.get("last_good_path"),
        last_good_bytes=data.get("last_good_bytes"),
        last_error=data.get("last_error"),
        last_error_at=when("last_error_at"),
    )


__all__ = [
    "BackupError",
    "BackupFile",
    "BackupSettings",
    "BackupStatus",
    "Restored",
    "check_database",
    "list_backups",
    "restore_backup",
    "rotate",
    "take_backup",
]
