"""A feature's settings out of its table of the parlour config (`[calibration]`,
`[calibration.access]`...): the table found, then a frozen dataclass of defaults with what the
table sets, every refusal a ConfigError naming the file and the key."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

from milkconsole.errors import ConfigError

if TYPE_CHECKING:
    from milkconsole.config import ParlourConfig

_T = TypeVar("_T")


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
