"""One sync per database across processes: a lock file beside the database."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from milkconsole.errors import MilkConsoleError
from milkconsole.store.run_lock import try_lock


class SyncBusy(MilkConsoleError):
    """Another process (or engine) is already syncing this database."""


class SyncLock:
    """One sync engine per database, across processes: an exclusive lock on a file next to it.

    Without it a `milkconsole sync --once` run beside the console would put the console's
    in-flight rows back to pending and create them a second time. The OS drops the lock when
    its holder dies, kill -9 included.
    """

    def __init__(self, path: Path, activity: str = "syncing {database} with Odoo") -> None:
        # `activity` ends the refusal's message; the MQTT publisher takes a lock of its own.
        self.path = path
        self.activity = activity
        self._fh: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._fh is not None

    def acquire(self) -> None:
        if self._fh is not None:
            return
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        if not try_lock(fh):
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            database = self.path.with_suffix("").name
            raise SyncBusy(
                f"another Milk Console process (pid {holder}) is "
                f"{self.activity.format(database=database)}; only one may"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            fh.close()  # closing the file drops the lock
