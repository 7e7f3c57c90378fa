"""Where the console keeps its files by default (platformdirs), each overridable on the CLI."""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP = "milkconsole"


def default_db_path() -> Path:
    return Path(platformdirs.user_data_dir(APP, appauthor=False)) / "milkconsole.sqlite"


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP, appauthor=False)) / "parlour.toml"


def log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP, appauthor=False))
