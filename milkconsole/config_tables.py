"""A feature's settings out of its table of the parlour config (`[calibration]`,
`[calibration.access]`...): the table found, then a frozen dataclass of defaults with what the
table sets, every refusal a ConfigError naming the file and the key."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from milkconsole.config import ParlourConfig
from milkconsole.errors import ConfigError


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
