"""A feature's settings out of its table of the parlour config (`[calibration]`,
`[calibration.access]`...): the table found, then a frozen dataclass of defaults with what the
table sets, every refusal a ConfigError naming the file and the key."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from milkconsole.errors import ConfigError

if TYPE_CHECKING:
    from milkconsole.config import ParlourConfig

_T = TypeVar("_T")


def read_toml_file(path: Path) -> dict[str, Any] | None:
    """A config file's TOML, for a command that reads one section of it before the rest is set
    up (None: no such file); ConfigError naming the file when it cannot be read or parsed."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(source, "-", f"cannot read: {exc.strerror or exc}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "-", f"not valid TOML: {exc}") from exc


def checked_table(
    table: Any,
    source: str,
    where: str,
    allowed: Collection[str],
    *,
    secrets: Collection[str] = (),
    login_command: str = "",
) -> Mapping[str, Any]:
    """`table` when it is a table whose keys are all `allowed`; else a ConfigError naming
    `source` and `where.key`. A key named like a secret (`secrets`, lower case) is refused
    with the command that keeps it in the OS keyring instead."""
    if not isinstance(table, Mapping):
        raise ConfigError(source, where, "must be a table")
    for key in table:
        if key.lower() in secrets:
            raise ConfigError(
                source,
                f"{where}.{key}",
                "secrets do not belong in the config file; remove it and run "
                f"`{login_command}` to keep it in the OS keyring",
            )
        if key not in allowed:
            raise ConfigError(
                source, f"{where}.{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})"
            )
    return table


def config_table(config: ParlourConfig, section: str, sub: str | None = None) -> Any:
    """`config.extra[section][sub]` (None when absent); a non-table is a ConfigError."""
    table: Any = config.extra.get(section)
    where = section
    if table is not None and not isinstance(table, Mapping):
        raise ConfigError(config.source, where, "must be a table")
    if sub is not None and table is not None:
        where = f"{section}.{sub}"
        table = table.get(sub)
        if table is not None and not isinstance(table, Mapping):
            raise ConfigError(config.source, where, "must be a table")
    return table


def settings_from_table(
    defaults: Any,
    table: Mapping[str, Any] | None,
    source: str,
    where: str,
    skip: tuple[str, ...] = (),
) -> Any:
    """`defaults` (a frozen dataclass of numbers/bools) with what a config table sets.

    Unknown keys, wrong types and values the dataclass refuses raise ConfigError naming
    `source` and `where.key`. Keys in `skip` (sub-tables) are left for their own reader.
    """
    if table is None:
        return defaults
    known = {f: type(getattr(defaults, f)) for f in defaults.__dataclass_fields__}
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key in skip:
            continue
        at = f"{where}.{key}"
        if key not in known:
            raise ConfigError(source, at, f"unknown key (known: {', '.join(sorted(known))})")
        kind = known[key]
        if kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(source, at, f"{value!r} is not true or false")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(source, at, f"{value!r} is not a number")
        elif not math.isfinite(value):
            raise ConfigError(source, at, f"{value!r} is not a finite number")
        elif kind is int and value != int(value):
            raise ConfigError(source, at, f"{value!r} is not a whole number")
        changes[key] = kind(value)
    try:
        return replace(defaults, **changes)
    except ValueError as exc:
        raise ConfigError(source, where, str(exc)) from exc


def numbers_from_table(
    defaults: _T, table: Mapping[str, Any] | None, source: str, where: str
) -> _T:
    """`defaults` (a frozen dataclass of numbers) with the values a config table sets.

    Unknown keys, non-numbers and negative values are refused with a ConfigError naming
    `source` and the key (`where.key`), as is anything the dataclass itself refuses.
    """
    if table is None:
        return defaults
    if not isinstance(table, Mapping):
        raise ConfigError(source, where, "must be a table")
    known = {f.name: f for f in fields(defaults)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for key, value in table.items():
        at = f"{where}.{key}"
        if key not in known:
            raise ConfigError(source, at, f"unknown key (known: {', '.join(known)})")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(source, at, f"{value!r} is not a number")
        if not math.isfinite(value) or value < 0:
            raise ConfigError(source, at, f"{value!r} is not a finite number >= 0")
        changes[key] = int(value) if known[key].type == "int" else float(value)
    try:
        return replace(defaults, **changes)  # type: ignore[type-var]
    except ValueError as exc:
        raise ConfigError(source, where, str(exc)) from exc
