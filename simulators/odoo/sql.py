"""How Odoo's names and values become SQLite's: quoted identifiers, converted field values,
domains and orders as SQL. Pure functions: nothing here touches a database.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from simulators.odoo.errors import value_error
from simulators.odoo.models import AUTO_FIELDS, FieldDef, ModelDef

ODOO_DATETIME = "%Y-%m-%d %H:%M:%S"
ODOO_DATE = "%Y-%m-%d"
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# The column type each Odoo field type is stored as.
SQL_TYPES = {
    "char": "TEXT",
    "text": "TEXT",
    "selection": "TEXT",
    "datetime": "TEXT",
    "date": "TEXT",
    "float": "REAL",
    "integer": "INTEGER",
    "boolean": "INTEGER",
    "many2one": "INTEGER",
}

_OPERATORS = {"=", "!=", "<", "<=", ">", ">=", "in", "not in", "like", "ilike", "=like", "=ilike"}


def now_odoo() -> str:
    return datetime.now(UTC).strftime(ODOO_DATETIME)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table(model: str) -> str:
    """The table of `model` (dots become underscores, as in Odoo)."""
    return quote(model.replace(".", "_"))


def field_of(m: ModelDef, name: str) -> FieldDef:
    """The field `name` of `m` (automatic fields included); ValueError when it has none."""
    f = m.fields.get(name) or AUTO_FIELDS.get(name)
    if f is None:
        raise value_error(f"Invalid field {name!r} on model {m.name!r}")
    return f


def to_sql(f: FieldDef, value: Any, name: str, m: ModelDef) -> Any:
    """An RPC value converted for storage; a value Odoo would refuse raises its error."""
    t = f.type
    if t == "boolean":
        return 1 if value else 0
    if value is False or value is None:
        return None
    if t in ("char", "text"):
        if not isinstance(value, str):
            return str(value)
        return value
    if t == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise value_error(f"could not convert string to float: {value!r}")
        return float(value)
    if t == "integer":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise value_error(f"invalid literal for int() with base 10: {value!r}")
        return int(value)
    if t == "datetime":
        if not isinstance(value, str) or not (_DATETIME_RE.match(value) or _DATE_RE.match(value)):
            raise value_error(f"time data {value!r} does not match format '{ODOO_DATETIME}'")
        return value[:19] if len(value) > 10 else value + " 00:00:00"
    if t == "date":
        if not isinstance(value, str) or not _DATE_RE.match(value[:10]):
            raise value_error(f"time data {value!r} does not match format '{ODOO_DATE}'")
        return value[:10]
    if t == "selection":
        keys = [k for k, _ in f.selection]
        if value not in keys:
            raise value_error(f"Wrong value for {m.name}.{name}: {value!r}")
        return value
    if t == "many2one":
        if isinstance(value, list | tuple) and value:
            value = value[0]
        if isinstance(value, bool) or not isinstance(value, int):
            raise value_error(f"Wrong value for {m.name}.{name}: {value!r}")
        return value
    return value


def domain_sql(m: ModelDef, domain: Any, context: dict[str, Any]) -> tuple[str, list]:
    """A domain (Polish notation, leaves `[field, operator, value]`) as a WHERE clause and its
    parameters, with `active = True` added unless the domain or the context says otherwise."""
    if domain in (None, False):
        domain = []
    if not isinstance(domain, list):
        raise value_error(f"Invalid domain {domain!r}")
    items = list(domain)
    params: list[Any] = []

    def leaf(term: Any) -> str:
        if not isinstance(term, list | tuple) or len(term) != 3:
            raise value_error(f"Invalid leaf {term!r}")
        name, op, value = term
        op = str(op).lower()
        if op not in _OPERATORS:
            raise value_error(f"Invalid leaf {term!r}: unknown operator {op!r}")
        f = field_of(m, str(name))
        col = quote(name)
        if op in ("in", "not in"):
            vals = list(value) if isinstance(value, list | tuple) else [value]
            real = [to_sql(f, v, name, m) for v in vals if v is not False]
            parts = []
            if real:
                params.extend(real)
                parts.append(f"{col} {op.upper()} ({', '.join('?' * len(real))})")
            if len(real) != len(vals):
                parts.append(f"{col} IS {'NOT ' if op == 'not in' else ''}NULL")
            if not parts:
                return "0" if op == "in" else "1"
            return "(" + (" OR " if op == "in" else " AND ").join(parts) + ")"
        if value is False and op in ("=", "!="):
            if f.type == "boolean":
                return f"COALESCE({col}, 0) {'= 0' if op == '=' else '!= 0'}"
            return f"{col} IS {'NOT ' if op == '!=' else ''}NULL"
        if op in ("like", "ilike"):
            params.append(f"%{value}%")
            return f"{col} LIKE ?"
        if op in ("=like", "=ilike"):
            params.append(value)
            return f"{col} LIKE ?"
        params.append(to_sql(f, value, name, m))
        sql_op = "!=" if op == "!=" else op
        if f.type == "boolean":
            return f"COALESCE({col}, 0) {sql_op} ?"
        return f"{col} {sql_op} ?"

    def parse(pos: int) -> tuple[str, int]:
        if pos >= len(items):
            raise value_error(f"Invalid domain {domain!r}: missing operand")
        tok = items[pos]
        if tok in ("&", "|"):
            a, pos = parse(pos + 1)
            b, pos = parse(pos)
            return f"({a} {'AND' if tok == '&' else 'OR'} {b})", pos
        if tok == "!":
            a, pos = parse(pos + 1)
            return f"(NOT {a})", pos
        return leaf(tok), pos + 1

    terms: list[str] = []
    pos = 0
    while pos < len(items):
        sql, pos = parse(pos)
        terms.append(sql)
    explicit = any(isinstance(t, list | tuple) and t and t[0] == "active" for t in items)
    if "active" in m.fields and context.get("active_test", True) and not explicit:
        terms.append('COALESCE("active", 1) = 1')
    return (" AND ".join(terms) if terms else "1"), params


def order_sql(m: ModelDef, order: Any) -> str:
    """An `order` string ("field [asc|desc], ...") as an ORDER BY clause."""
    if not order:
        return "id ASC"
    parts = []
    for chunk in str(order).split(","):
        words = chunk.split()
        if not words or len(words) > 2:
            raise value_error(f"Invalid order {order!r}")
        field_of(m, words[0])
        direction = words[1].upper() if len(words) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise value_error(f"Invalid order {order!r}")
        parts.append(f"{quote(words[0])} {direction}")
    return ", ".join(parts)
