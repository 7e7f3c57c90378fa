"""`milkconsole db status` / `db upgrade`: where a database's schema stands, and migrating it.

A package upgrade runs `db upgrade` on the service's database before the service starts again,
so the migration (and its backup) happens once, as the service user, with its outcome printed
to the installer's output, not later inside the service's log. Migrating itself is
`open_database` (backup first, refuse a newer database): this module only reads the revision
beforehand and afterwards and finds the backup it left.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alembic.config import Config
from alembic.script import ScriptDirectory

from milkconsole.errors import DatabaseError
from milkconsole.store.db import MIGRATIONS_DIR, open_database

State = Literal["missing", "empty", "current", "behind", "newer"]


@dataclass(frozen=True, slots=True)
class DatabaseStatus:
    """`revision`: what the file is at (None: no file, or no schema yet); `head`: the newest
    revision this version of Milk Console knows."""

    path: Path
    revision: str | None
    head: str
    state: State

    def describe(self) -> str:
        what = {
            "missing": "no database yet (it is made on first start)",
            "empty": "no schema yet (it is made on first open)",
            "current": "up to date",
            "behind": "older than this version: `milkconsole db upgrade` migrates it "
            "(a backup is made first)",
            "newer": "written by a newer Milk Console: this version refuses it",
        }[self.state]
        return f"{self.path}: revision {self.revision or '-'} (this version: {self.head}): {what}"


@dataclass(frozen=True, slots=True)
class UpgradeReport:
    """`backup`: the copy made before migrating (None when nothing needed migrating)."""

    path: Path
    before: str | None
    after: str | None
    backup: Path | None

    def describe(self) -> str:
        if self.after is None:
            return f"{self.path}: no database yet; nothing to upgrade (it is made on first start)"
        if self.before == self.after:
            return f"{self.path}: already at revision {self.after}; nothing to do"
        kept = f"; backup at {self.backup}" if self.backup else ""
        return f"{self.path}: upgraded from {self.before or 'empty'} to {self.after}{kept}"


def _scripts(migrations_dir: Path | None) -> ScriptDirectory:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir or MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg)


def read_revision(path: Path) -> str | None:
    """The Alembic revision recorded in the database at `path`, read without migrating,
    creating or writing anything (None when it has no schema yet).

    With no write-ahead log beside it the file is complete and is read as immutable, so not
    even SQLite's -wal/-shm files appear: made by root beside the service's database, they
    would lock the service out of it. A database in use (its -wal and -shm there) is read
    through them, as any reader does."""
    in_use = all(path.with_name(path.name + s).exists() for s in ("-wal", "-shm"))
    mode = "mode=ro" if in_use else "mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=10.0)
    except sqlite3.Error as exc:
        raise DatabaseError(f"{path}: cannot open the database: {exc}") from exc
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise DatabaseError(f"{path}: cannot read the database: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{path}: not a usable SQLite database: {exc}") from exc
    finally:
        conn.close()
    return str(row[0]) if row else None


def database_status(path: Path, *, migrations_dir: Path | None = None) -> DatabaseStatus:
    """Where the database at `path` stands against this version's migrations."""
    scripts = _scripts(migrations_dir)
    head = scripts.get_current_head() or "-"
    if not path.exists():
        return DatabaseStatus(path, None, head, "missing")
    revision = read_revision(path)
    known = {rev.revision for rev in scripts.walk_revisions()}
    state: State
    if revision is None:
        state = "empty"
    elif revision == head:
        state = "current"
    elif revision in known:
        state = "behind"
    else:
        state = "newer"
    return DatabaseStatus(path, revision, head, state)


def _backups(path: Path) -> set[Path]:
    return set(path.parent.glob(f"{path.name}.bak-*"))


def upgrade_database(path: Path, *, migrations_dir: Path | None = None) -> UpgradeReport:
    """Migrate the database at `path` to this version's head, backing it up first (through
    `open_database`). A missing file is left missing: the service creates it, as its own
    user, when it first starts. Raises `DatabaseError` for a newer or unusable database."""
    if not path.exists():
        return UpgradeReport(path, None, None, None)
    before = read_revision(path)
    existing = _backups(path)
    open_database(path, migrations_dir=migrations_dir).close()
    after = read_revision(path)
    made = sorted(_backups(path) - existing)
    return UpgradeReport(path, before, after, made[-1] if made else None)
