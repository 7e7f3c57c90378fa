"""Opening the local SQLite database: engine, pragmas, Alembic migration, backup, one writer.

`open_database(path)` is the only way in. It refuses a database a newer Milk Console wrote,
backs up a database before migrating it, and migrates to head with Alembic run in-process.
`Database.write()` is the one writer (a lock around a `BEGIN IMMEDIATE` transaction);
`Database.read()` gives a consistent snapshot and may run in any thread at the same time (WAL).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

from milkconsole.errors import DatabaseError
from milkconsole.paths import default_db_path as default_db_path  # one definition

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 10_000
_WRITE_OPTION = "milkconsole_write"


class Database:
    """An open local database: the engine, a session factory, and the single writer.

    Use `read()` for queries (any thread, concurrently) and `write()` for every change: it holds
    the process-wide write lock for the length of one `BEGIN IMMEDIATE` transaction, so SQLite
    never has to arbitrate between our own writers. `write()` must not be nested in one thread.
    """

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self.engine = engine
        self.session_factory: sessionmaker[Session] = sessionmaker(
            bind=engine, expire_on_commit=False
        )
        self._write_engine = engine.execution_options(**{_WRITE_OPTION: True})
        self._write_session_factory: sessionmaker[Session] = sessionmaker(
            bind=self._write_engine, expire_on_commit=False
        )
        self._write_lock = threading.Lock()
        self._local = threading.local()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session over one read transaction (a stable snapshot); nothing it changes is kept.

        Rows loaded inside stay readable after the block (detached, not expired).
        """
        with self.session_factory() as tx:
            # Leaving the block closes the session: its connection goes back to the pool,
            # which rolls the read transaction back.
            yield tx

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session over one write transaction: committed on normal exit, rolled back on error."""
        if getattr(self._local, "writing", False):
            # A nested write would wait on its own outer transaction until busy_timeout.
            raise RuntimeError("Database.write() is already open in this thread")
        with self._write_lock:
            self._local.writing = True
            try:
                with self._write_session_factory() as tx, tx.begin():
                    yield tx
            finally:
                self._local.writing = False

    def close(self) -> None:
        """Release every pooled connection (the WAL is checkpointed by the last one closing)."""
        self.engine.dispose()


def _make_engine(path: Path) -> Engine:
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own implicit BEGIN is both late (only before DML) and unaware of
        # IMMEDIATE; turn it off and issue BEGIN ourselves in _on_begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on the platter before we report it; a power cut in the parlour
            # must not lose a session we said was recorded.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the write lock up front, so it cannot fail half-way with SQLITE_BUSY
        # when it upgrades from a read lock.
        if conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def _alembic_config(script_location: Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    return cfg


def _backup(path: Path, old_rev: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.bak-{old_rev}-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.bak-{old_rev}-{stamp}-{n}")
    # The caller holds the write lock (BEGIN IMMEDIATE) and has written nothing yet, so a second
    # connection reads exactly the database about to be migrated (WAL lets it read meanwhile).
    # Backing up through the locked connection itself would spin on SQLITE_BUSY forever.
    # Written under a temporary name and renamed when whole: a process killed half-way through
    # the copy leaves a `.partial` file, never one that looks like a good backup.
    partial = target.with_name(f"{target.name}.partial")
    source = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
    dest = sqlite3.connect(partial)
    try:
        source.backup(dest)
        dest.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        dest.close()
        source.close()
    with partial.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(partial, target)
    return target


def _migrate(engine: Engine, path: Path, script_location: Path) -> None:
    cfg = _alembic_config(script_location)
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head()
    known = {rev.revision for rev in script.walk_revisions()}
    with engine.execution_options(**{_WRITE_OPTION: True}).begin() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        if current is not None and current not in known:
            raise DatabaseError(
                f"{path} was written by a newer Milk Console (revision {current}); "
                f"this version knows up to {head}"
            )
        if current is None:
            tables = [t for t in inspect(conn).get_table_names() if not t.startswith("sqlite_")]
            if tables:
                raise DatabaseError(
                    f"{path} is not a Milk Console database (it has tables {sorted(tables)} "
                    "but no schema revision)"
                )
        if current == head:
            return
        backup = None
        if current is not None:
            backup = _backup(path, current)
            log.warning("migrating %s from %s to %s; backup at %s", path, current, head, backup)
        cfg.attributes["connection"] = conn
        try:
            command.upgrade(cfg, "head")
        except Exception as exc:
            # The transaction rolls back on the way out, so the file is still at `current`.
            kept = f"; backup at {backup}" if backup else ""
            raise DatabaseError(
                f"{path}: migration from {current or 'empty'} to {head} failed, database left "
                f"at {current or 'empty'}{kept}: {exc}"
            ) from exc


def open_database(path: Path, *, migrations_dir: Path | None = None) -> Database:
    """Open (creating if needed) and migrate the database at `path`.

    Raises `DatabaseError` naming the path when the file is not a usable SQLite database or
    when a newer Milk Console wrote it. `migrations_dir` replaces the packaged Alembic scripts
    (tests use it to stand in for a newer release).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = _make_engine(path)
    try:
        _migrate(engine, path, migrations_dir or MIGRATIONS_DIR)
    except DatabaseError:
        engine.dispose()
        raise
    except sqlalchemy.exc.DatabaseError as exc:
        engine.dispose()
        raise DatabaseError(f"{path}: cannot open the database: {exc.orig}") from exc
    return Database(path, engine)


def known_revisions(migrations_dir: Path | None = None) -> set[str]:
    """Every schema revision this version can open (and migrate to its head)."""
    script = ScriptDirectory.from_config(_alembic_config(migrations_dir or MIGRATIONS_DIR))
    return {rev.revision for rev in script.walk_revisions()}


def schema_revision(db: Database) -> str | None:
    """The Alembic revision the database is at."""
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
