"""What a failed write says about the disk: full, read-only, failing, rather than bad data.

The recorder treats these apart from a bad event: the fault is the disk's, so every event
waits in memory, in order, and is written once the disk takes writes again (no event is set
aside as the culprit), and the console says so plainly.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

_SQLITE = {
    13: "disk full",  # SQLITE_FULL
    10: "disk I/O error",  # SQLITE_IOERR
    8: "read-only",  # SQLITE_READONLY
    14: "cannot open the database file",  # SQLITE_CANTOPEN
}
_ERRNO = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk full",
    errno.EROFS: "read-only",
    errno.EIO: "disk I/O error",
}


def storage_problem(exc: BaseException) -> str | None:
    """'disk full', 'read-only', 'disk I/O error'... when `exc` (or what caused it) is the
    disk refusing a write; None for anything else."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        e = pending.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, sqlite3.Error):
            code = getattr(e, "sqlite_errorcode", None)
            if isinstance(code, int) and code & 0xFF in _SQLITE:
                return _SQLITE[code & 0xFF]
            text = str(e).lower()
            if "database or disk is full" in text:
                return "disk full"
        if isinstance(e, OSError) and e.errno in _ERRNO:
            return _ERRNO[e.errno]
        pending += [getattr(e, "orig", None), e.__cause__, e.__context__]
    return None


def free_space_text(path: Path) -> str:
    """'212 MB free on /var/lib/milkconsole' (or '' when the disk cannot be asked)."""
    try:
        usage = shutil.disk_usage(path.parent)
    except OSError:
        return ""
    return f"{usage.free / 1e6:.0f} MB free on {path.parent}"


__all__ = ["free_space_text", "storage_problem"]
