"""Values between the console and Odoo: times, many2one ids, text and tags as each side spells them.

Odoo's RPC speaks datetimes as 'YYYY-MM-DD HH:MM:SS' in UTC with no zone, a many2one as
[id, name] or False, an empty char field as False; the console's payloads speak ISO times with Z
and the herd list's canonical tags. These are the conversions both ways, used by the contract's
getters (`sync.contract`) and by the pulls (`sync.animals`, `sync.treatments`, `sync.resolve`).

They are apart from the contract because they hold no knowledge of any model or field: the
pulls read Odoo's values with them without the table, and the table stays the one place that
says which field gets what.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from milkconsole.errors import MilkConsoleError
from milkconsole.meters.rfid import InvalidTag, normalize_tag

ODOO_DATETIME = "%Y-%m-%d %H:%M:%S"
ODOO_DATE = "%Y-%m-%d"


class MappingError(MilkConsoleError):
    """An outbox payload that cannot become Odoo values (a local bug or a damaged row)."""


def parse_iso(value: Any, what: str) -> datetime:
    """An aware UTC datetime from the ISO text a payload holds (naive text is refused)."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise MappingError(f"{what}: {value!r} is not an ISO 8601 time") from exc
    else:
        raise MappingError(f"{what}: {value!r} is not a time")
    if dt.tzinfo is None:
        raise MappingError(f"{what}: {value!r} has no time zone (payload times are UTC with Z)")
    return dt.astimezone(UTC)


def to_odoo_datetime(value: Any, what: str = "time") -> str:
    """Odoo's datetime form: 'YYYY-MM-DD HH:MM:SS' in UTC, no zone, no fraction."""
    return parse_iso(value, what).strftime(ODOO_DATETIME)


def from_odoo_datetime(value: Any) -> datetime | None:
    """An aware UTC datetime from Odoo's 'YYYY-MM-DD HH:MM:SS' (False -> None)."""
    if not value:
        return None
    return datetime.strptime(str(value)[:19], ODOO_DATETIME).replace(tzinfo=UTC)


def many2one_id(value: Any) -> int | None:
    """The id of a many2one as Odoo reads it back ([id, name] or False)."""
    if isinstance(value, list | tuple) and value:
        return int(value[0])
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def odoo_text(value: Any) -> str | None:
    """A char field as Odoo reads it back (False means empty)."""
    if value is False or value is None:
        return None
    text = str(value).strip()
    return text or None


def canonical_tag(raw: Any) -> str | None:
    """The tag as the herd list keeps it (ISO 15 digits, or ASCII:...); unreadable text as is."""
    if raw in (None, ""):
        return None
    try:
        return normalize_tag(str(raw))
    except InvalidTag:
        return str(raw)


def rounded(value: Any, digits: int | None, what: str) -> Any:
    """`value` at the precision the seed declares for its field (digits 0: an integer)."""
    if digits is None or value is None or isinstance(value, bool):
        return value
    if not isinstance(value, int | float):
        raise MappingError(f"{what}: {value!r} is not a number")
    if digits == 0:
        return round(value)
    # float32 meter values carry noise (11.89781379699707): the seed's precision is the truth.
    return round(float(value), digits)
