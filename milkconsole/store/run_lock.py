"""One running parlour per database: a lock file beside it, held while a console or gateway runs.

`milkconsole backup restore` replaces the database file, which must never happen under a
running console (its open connections would go on writing into the file it replaced). The
runtime holds `<database>.run-lock` for its whole life; restore takes the same lock first and
refuses while it is held. The OS drops the lock when its holder dies, kill -9 included, so a
crashed console never blocks a restore. The lock file holds the holder's pid, for the message.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO

from milkconsole.errors import MilkConsoleError


class DatabaseInUse(MilkConsoleError):
    """Another process holds the database's lock (a console or gateway is running on it)."""


def try_lock(fh: IO[str]) -> bool:
    """Take an exclusive, non-blocking OS lock on an open file; False when another holds it."""
    try:
        if sys.platform == "win32":
            import msvcrt

            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def run_lock_path(db_path: Path) -> Path:
    return Path(f"{db_path}.run-lock")


class RunLock:
    """The database's run lock (see the module docstring)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.path = run_lock_path(db_path)
        self._fh: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._fh is not None

    def acquire(self, what: str = "running") -> None:
        """Take the lock or raise `DatabaseInUse` naming the holder's pid."""
        if self._fh is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        if not try_lock(fh):
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise DatabaseInUse(
                f"a Milk Console console or gateway (pid {holder}) is {what} on {self.db_path}; "
                "stop it first"
            )
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            fh.close()  # closing the file drops the lock


__all__ = ["DatabaseInUse", "RunLock", "run_lock_path", "try_lock"]
