"""Logging: a rotating file in the log dir plus stderr; `--verbose` for debug.

The log dir is `$MILKCONSOLE_LOG_DIR` if set (the service: `/var/log/milkconsole`), else the
platformdirs one (`milkconsole.paths.log_dir`).

A technician reads the file on the phone to support, so lines are short and name the meter.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from milkconsole.paths import log_dir

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is emitted, not the one at set-up
    (a replaced stderr, as under a test runner or a service manager, may be closed later)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def setup_logging(*, verbose: bool = False, directory: Path | None = None) -> Path | None:
    """Configure the root logger once. Returns the log file path (None if it cannot be written)."""
    root = logging.getLogger()
    if getattr(root, "_milkconsole_configured", False):
        return getattr(root, "_milkconsole_file", None)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    stderr = _CurrentStderrHandler()
    stderr.setLevel(logging.DEBUG if verbose else logging.WARNING)
    stderr.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(stderr)
    path: Path | None = None
    target = directory or log_dir()
    try:
        target.mkdir(parents=True, exist_ok=True)
        path = target / "milkconsole.log"
        fh = logging.handlers.RotatingFileHandler(
            path, maxBytes=2_000_000, backupCount=5, encoding="utf-8"
        )
        fh.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(fh)
    except OSError as exc:  # a read-only home must not stop milking being recorded
        logging.getLogger(__name__).warning("cannot write log file in %s: %s", target, exc)
        path = None
    root._milkconsole_configured = True  # type: ignore[attr-defined]
    root._milkconsole_file = path  # type: ignore[attr-defined]
    return path
