"""The `milkconsole backup` command: back up now, list the backups, put one back.

    milkconsole backup now [--config F] [--db D] [--dir DIR]
    milkconsole backup list [--config F] [--dir DIR]
    milkconsole backup restore FILE [--db D] [--yes]

`now` works while the console runs (SQLite's online backup; the console's status bar shows the
new backup within a minute). `restore` needs the console, the gateway and any sync stopped (it
takes their locks, and refuses while another process holds one); it refuses a file that is not
a whole Milk Console database or that a newer release wrote, keeps the database it replaces
beside it (`<db>.replaced-<time>`), migrates the restored one to this version (with the usual
pre-migration backup) and records the restore in its audit log. What the restored database had
not sent to Odoo goes again: the sync looks every record up by its key before creating it, so
nothing Odoo already has is created twice.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from milkconsole.config import load_config
from milkconsole.errors import ConfigError
from milkconsole.paths import default_config_path, default_db_path
from milkconsole.store.backup import (
    BackupError,
    BackupSettings,
    list_backups,
    restore_backup,
)
from milkconsole.store.backup_jobs import BackupJobs, record_restore
from milkconsole.store.db import known_revisions, open_database
from milkconsole.store.outbox import Outbox
from milkconsole.store.run_lock import RunLock
from milkconsole.store.sessions import SessionStore
from milkconsole.sync.lock import SyncLock

Common = Callable[..., None]


def add_backup_arguments(subparsers: Any, common: Common) -> None:
    """Add `backup now|list|restore` to the main parser (`common` adds --config/--db/-v)."""
    p = subparsers.add_parser("backup", help="back up the database, list backups, restore one")
    sub = p.add_subparsers(dest="backup_command", required=True)
    now = sub.add_parser("now", help="take a backup now (the console may be running)")
    common(now)
    now.add_argument("--dir", type=Path, default=None, help="backup directory (default: config)")
    ls = sub.add_parser("list", help="the backups in the backup directory, newest first")
    common(ls)
    ls.add_argument("--dir", type=Path, default=None, help="backup directory (default: config)")
    rs = sub.add_parser("restore", help="put a backup back (console, gateway and sync stopped)")
    common(rs)
    rs.add_argument("file", type=Path, help="the backup file to put back")
    rs.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _settings(args: argparse.Namespace) -> BackupSettings:
    if getattr(args, "dir", None) is not None:
        return BackupSettings(directory=args.dir.resolve())
    path = args.config or default_config_path()
    config = load_config(path)
    settings = BackupSettings.from_table(config.extra.get("backup"), config.source)
    if settings.directory is None:
        raise ConfigError(str(path), "backup.dir", "missing: say where backups go (or give --dir)")
    return settings


def run_backup(
    args: argparse.Namespace, *, out: TextIO | None = None, stdin: TextIO | None = None
) -> int:
    out = out or sys.stdout
    db_path: Path = args.db or default_db_path()
    if args.backup_command == "now":
        return _now(db_path, _settings(args), out)
    if args.backup_command == "list":
        settings = _settings(args)
        assert settings.directory is not None
        backups = list_backups(settings.directory)
        if not backups:
            print(f"no backups in {settings.directory}", file=out)
        for b in backups:
            print(b.describe(), file=out)
        return 0
    return _restore(args.file, db_path, yes=args.yes, out=out, stdin=stdin or sys.stdin)


def _now(db_path: Path, settings: BackupSettings, out: TextIO) -> int:
    if not db_path.exists():
        raise BackupError(f"{db_path}: no database to back up")
    db = open_database(db_path)
    try:
        taken = BackupJobs(db, settings).run()
    finally:
        db.close()
    print(f"backup: {taken.describe()} (checked)", file=out)
    return 0


def _restore(backup: Path, db_path: Path, *, yes: bool, out: TextIO, stdin: TextIO) -> int:
    run_lock = RunLock(db_path)
    sync_lock = SyncLock(Path(f"{db_path}.sync-lock"))
    run_lock.acquire("running")  # DatabaseInUse: a console or gateway runs on it
    try:
        sync_lock.acquire()  # SyncBusy: a `milkconsole sync` runs on it
        try:
            if not yes:
                print(
                    f"Put {backup} in place of {db_path}? The current database is kept "
                    "beside it. [y/N] ",
                    end="",
                    file=out,
                    flush=True,
                )
                if stdin.readline().strip().lower() not in ("y", "yes"):
                    print("not restored", file=out)
                    return 1
            restored = restore_backup(backup, db_path, known_revisions=known_revisions())
            db = open_database(db_path)  # migrates an older backup to this version
            try:
                record_restore(db, restored, actor=getpass.getuser(), database=db_path.name)
                sessions = SessionStore(db).count()
                waiting = Outbox(db).counts()
            finally:
                db.close()
        finally:
            sync_lock.release()
    finally:
        run_lock.release()
    print(f"restored {db_path} from {backup} ({sessions} sessions)", file=out)
    if restored.replaced is not None:
        print(f"the replaced database is kept at {restored.replaced}", file=out)
    print(
        f"{waiting['pending'] + waiting['in_flight']} records wait for Odoo; the sync looks each "
        "up by its key first, so what Odoo already has is not created again",
        file=out,
    )
    return 0


__all__ = ["add_backup_arguments", "run_backup"]
