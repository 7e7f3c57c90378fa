"""Where the console keeps its files by default (platformdirs), each overridable on the CLI.

On Linux the Debian package installs the parlour config system-wide (`/etc/milkconsole`): a
user with no config of their own gets that one, so `milkconsole` just works for whoever logs in
at the parlour PC. The log directory can be set with `MILKCONSOLE_LOG_DIR` (the service uses
`/var/log/milkconsole`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP = "milkconsole"
SYSTEM_CONFIG_DIR = Path("/etc/milkconsole")
LOG_DIR_ENV = "MILKCONSOLE_LOG_DIR"


def default_db_path() -> Path:
    return Path(platformdirs.user_data_dir(APP, appauthor=False)) / "milkconsole.sqlite"


def user_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP, appauthor=False)) / "parlour.toml"


def system_config_path() -> Path | None:
    """The package's config (`/etc/milkconsole/parlour.toml`); None where there is no such
    place (Windows)."""
    return None if sys.platform == "win32" else SYSTEM_CONFIG_DIR / "parlour.toml"


def default_config_path() -> Path:
    """The user's own config if there is one, else the system's if there is one, else the
    user's (so a "cannot read" error names where to put it)."""
    user = user_config_path()
    system = system_config_path()
    if not user.exists() and system is not None and system.exists():
        return system
    return user


def log_dir() -> Path:
    """`$MILKCONSOLE_LOG_DIR` if set, else the platform's per-user log directory."""
    return Path(os.environ.get(LOG_DIR_ENV, "") or platformdirs.user_log_dir(APP, appauthor=False))
