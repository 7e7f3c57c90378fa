"""The simulated Odoo's database: one SQLite table per model, behind Odoo's ORM methods.

`Store` runs search/read/create/write/unlink/fields_get/default_get (and `ir.model` lookups) the
way Odoo does where the sync depends on it (the SQL translation is in `sql`): many2one read back
as `[id, display_name]`, empty values as `False`, `write_date` on every change, `active` records
only unless `active_test` is off, and `unique` constraints checked inside the call's one
transaction, so one duplicate fails the whole batch. Refusals (a test's "this value is refused")
are checked before anything is written.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulators.odoo.errors import OdooFault, user_error, validation_error, value_error
from simulators.odoo.models import AUTO_FIELDS, FieldDef, ModelDef
from simulators.odoo.sql import (
    SQL_TYPES,
    domain_sql,
    field_of,
    now_odoo,
    order_sql,
    quote,
    table,
    to_sql,
)


@dataclass(slots=True)
class _Refusal:
    model: str
    field: str
    value: Any
    fault: OdooFault


class Store:
    """The simulated database: one SQLite table per model, one lock, one transaction per call."""

    def __init__(self, models: dict[str, ModelDef], path: Path | None) -> None:
        self.models = models
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(
            str(path) if path else ":memory:", check_same_thread=False, isolation_level=None
        )
        self.refusals: list[_Refusal] = []
        for m in models.values():
            cols = ["id INTEGER PRIMARY KEY AUTOINCREMENT", "create_date TEXT", "write_date TEXT"]
            cols += [
                f"{quote(n)} {SQL_TYPES.get(f.type, 'TEXT')}"
                for n, f in m.fields.items()
                if n not in AUTO_FIELDS
            ]
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS {table(m.name)} ({', '.join(cols)})")
            for i, (fields, _msg) in enumerate(m.unique):
                self.conn.execute(
                    f"CREATE UNIQUE INDEX IF NOT EXISTS {quote(f'uq_{m.name}_{i}')} "
                    f"ON {table(m.name)} ({', '.join(quote(f) for f in fields)})"
                )
            self.conn.execute(
                f"CREATE INDEX IF NOT EXISTS {quote(f'ix_{m.name}_wd')} "
                f"ON {table(m.name)} (write_date, id)"
            )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock:
            self.conn.execute("BEGIN")
            try:
                yield
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    # -- the simulator's side -----------------------------------------------------------------
    def ensure_user(self, uid: int, name: str, login: str) -> None:
        """The `res.users` record the credentials belong to (kept if the file already has it)."""
        with self.transaction():
            now = now_odoo()
            self.conn.execute(
                "INSERT OR IGNORE INTO res_users (id, name, login, create_date, write_date) "
                "VALUES (?, ?, ?, ?, ?)",
                (uid, name, login, now, now),
            )

    def add_refusal(self, model: str, field: str, value: Any, fault: OdooFault) -> None:
        """Refuse any create or write whose `field` equals `value` with `fault`."""
        with self.lock:
            self.refusals.append(_Refusal(model, field, value, fault))

    def clear_refusals(self) -> None:
        with self.lock:
            self.refusals.clear()

    # -- helpers ------------------------------------------------------------------------------
    def model(self, name: str) -> ModelDef:
        m = self.models.get(name)
        if m is None:
            # What odoo.service.model.execute_cr raises for an unknown model.
            raise user_error(f"Object {name} doesn't exist")
        return m

    def _to_sql(self, f: FieldDef, value: Any, name: str, m: ModelDef) -> Any:
        """`to_sql`, and a many2one must name a record that exists."""
        value = to_sql(f, value, name, m)
        if f.type == "many2one" and value is not None and f.relation:
            target = self.models.get(f.relation)
            row = (
                self.conn.execute(
                    f"SELECT 1 FROM {table(f.relation)} WHERE id = ?", (value,)
                ).fetchone()
                if target
                else None
            )
            if row is None:
                # What a foreign key violation comes back as through Odoo's RPC layer.
                raise validation_error(
                    "The operation cannot be completed: another model requires the record "
                    f"being deleted or the record does not exist.\n\nModel: {m.description} "
                    f"({m.name}), Field: {f.string} ({name}), Value: {f.relation}({value},)"
                )
        return value

    def _from_sql(self, f: FieldDef, value: Any, cache: dict[tuple[str, int], str]) -> Any:
        t = f.type
        if t == "boolean":
            return bool(value)
        if t == "float":
            return float(value) if value is not None else 0.0
        if t == "integer":
            return int(value) if value is not None else 0
        if value is None:
            return False
        if t == "many2one" and f.relation:
            key = (f.relation, int(value))
            if key not in cache:
                target = self.models.get(f.relation)
                name = f"{f.relation},{value}"
                if target is not None:
                    row = self.conn.execute(
                        f"SELECT {quote(target.rec_name)} FROM {table(f.relation)} WHERE id = ?",
                        (value,),
                    ).fetchone()
                    if row and row[0]:
                        name = str(row[0])
                cache[key] = name
            return [int(value), cache[key]]
        return value

    def _check_refusals(self, m: ModelDef, vals: dict[str, Any]) -> None:
        for r in self.refusals:
            if r.model == m.name and r.field in vals and vals[r.field] == r.value:
                raise r.fault

    def _prepare(self, m: ModelDef, vals: Any, creating: bool) -> dict[str, Any]:
        if not isinstance(vals, dict):
            raise value_error(f"Invalid values {vals!r}: a dictionary is expected")
        self._check_refusals(m, vals)
        out: dict[str, Any] = {}
        for name, value in vals.items():
            if name in AUTO_FIELDS:
                continue
            f = m.fields.get(name)
            if f is None:
                raise value_error(f"Invalid field {name!r} on model {m.name!r}")
            out[name] = self._to_sql(f, value, name, m)
        if creating:
            for name, f in m.fields.items():
                if name not in out and f.default is not None:
                    out[name] = self._to_sql(f, f.default, name, m)
        for name, f in m.fields.items():
            if f.required and (name in out or creating) and out.get(name) in (None, ""):
                raise validation_error(
                    "The operation cannot be completed:\n"
                    "- Create/update: a mandatory field is not set.\n"
                    "- Delete: another model requires the record being deleted. If possible, "
                    f"archive it instead.\n\nModel: {m.description} ({m.name})\n"
                    f"Field: {f.string} ({name})"
                )
        return out

    def _unique_fault(self, m: ModelDef, exc: sqlite3.IntegrityError) -> OdooFault:
        text = str(exc)
        for fields, message in m.unique:
            if all(f"{m.name.replace('.', '_')}.{f}" in text for f in fields):
                return validation_error(message)
        return validation_error(f"The operation cannot be completed: {text}")

    # -- ORM methods --------------------------------------------------------------------------
    def search(
        self,
        model: str,
        domain: Any = None,
        offset: int = 0,
        limit: int | None = None,
        order: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> list[int]:
        if model == "ir.model":
            return [i + 1 for i, _ in enumerate(self._ir_model(domain))]
        m = self.model(model)
        where, params = domain_sql(m, domain, context or {})
        sql = f"SELECT id FROM {table(model)} WHERE {where} ORDER BY {order_sql(m, order)}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        if offset:
            sql += f"{'' if limit else ' LIMIT -1'} OFFSET {int(offset)}"
        with self.lock:
            return [r[0] for r in self.conn.execute(sql, params)]

    def read(
        self, model: str, ids: list[int], fields: list[str] | None = None
    ) -> list[dict[str, Any]]:
        m = self.model(model)
        names = list(fields) if fields else list(m.fields)
        for n in names:
            field_of(m, n)
        cols = [n for n in names if n not in ("id", "display_name")]
        if not ids:
            return []
        cache: dict[tuple[str, int], str] = {}
        out: dict[int, dict[str, Any]] = {}
        with self.lock:
            for start in range(0, len(ids), 500):
                chunk = [int(i) for i in ids[start : start + 500]]
                sel = ", ".join(["id", quote(m.rec_name), *(quote(c) for c in cols)])
                rows = self.conn.execute(
                    f"SELECT {sel} FROM {table(model)} WHERE id IN ({', '.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for row in rows:
                    rec: dict[str, Any] = {"id": row[0]}
                    for n, v in zip(cols, row[2:], strict=True):
                        rec[n] = self._from_sql(field_of(m, n), v, cache)
                    if "display_name" in names:
                        rec["display_name"] = row[1] or f"{model},{row[0]}"
                    out[row[0]] = rec
        return [out[i] for i in ids if i in out]

    def search_read(
        self,
        model: str,
        domain: Any = None,
        fields: list[str] | None = None,
        offset: int = 0,
        limit: int | None = None,
        order: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        if model == "ir.model":
            rows = self._ir_model(domain)
            return [
                {"id": i + 1, **{k: v for k, v in r.items() if not fields or k in fields}}
                for i, r in enumerate(rows)
            ]
        ids = self.search(model, domain, offset, limit, order, context)
        return self.read(model, ids, fields)

    def search_count(
        self, model: str, domain: Any = None, context: dict[str, Any] | None = None
    ) -> int:
        return len(self.search(model, domain, context=context))

    def create(self, model: str, vals_list: Any) -> list[int]:
        m = self.model(model)
        if isinstance(vals_list, dict):
            vals_list = [vals_list]
        if not isinstance(vals_list, list):
            raise value_error(f"Invalid values {vals_list!r}")
        now = now_odoo()
        ids: list[int] = []
        # One transaction for the whole list: Odoo's create() of a list is one statement batch
        # in one cursor, so one bad record fails them all.
        with self.transaction():
            for vals in vals_list:
                row = self._prepare(m, vals, creating=True)
                row["create_date"] = now
                row["write_date"] = now
                cols = ", ".join(quote(c) for c in row)
                try:
                    cur = self.conn.execute(
                        f"INSERT INTO {table(model)} ({cols}) VALUES ({', '.join('?' * len(row))})",
                        list(row.values()),
                    )
                except sqlite3.IntegrityError as exc:
                    raise self._unique_fault(m, exc) from exc
                assert cur.lastrowid is not None
                ids.append(cur.lastrowid)
        return ids

    def write(self, model: str, ids: list[int], vals: Any) -> bool:
        m = self.model(model)
        with self.transaction():
            row = self._prepare(m, vals, creating=False)
            row["write_date"] = now_odoo()
            sets = ", ".join(f"{quote(c)} = ?" for c in row)
            for i in ids:
                try:
                    cur = self.conn.execute(
                        f"UPDATE {table(model)} SET {sets} WHERE id = ?", [*row.values(), i]
                    )
                except sqlite3.IntegrityError as exc:
                    raise self._unique_fault(m, exc) from exc
                if cur.rowcount == 0:
                    raise OdooFault(
                        "odoo.exceptions.MissingError",
                        "Record does not exist or has been deleted.\n"
                        f"(Record: {model}({i},), User: 2)",
                        404,
                    )
        return True

    def unlink(self, model: str, ids: list[int]) -> bool:
        self.model(model)
        with self.transaction():
            for i in ids:
                self.conn.execute(f"DELETE FROM {table(model)} WHERE id = ?", (i,))
        return True

    def fields_get(
        self, model: str, allfields: list[str] | None = None, attributes: list[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        m = self.model(model)
        out: dict[str, dict[str, Any]] = {}
        for name, f in {**AUTO_FIELDS, **m.fields}.items():
            if allfields and name not in allfields:
                continue
            desc: dict[str, Any] = {
                "type": f.type,
                "string": f.string or name,
                "required": f.required,
                "readonly": name in AUTO_FIELDS,
            }
            if f.relation:
                desc["relation"] = f.relation
            if f.selection:
                desc["selection"] = [list(s) for s in f.selection]
            out[name] = {k: v for k, v in desc.items() if not attributes or k in attributes}
        return out

    def default_get(self, model: str, fields_list: list[str]) -> dict[str, Any]:
        m = self.model(model)
        out: dict[str, Any] = {}
        for name in fields_list:
            f = m.fields.get(name)
            if f is not None and f.default is not None:
                out[name] = f.default
        return out

    def _ir_model(self, domain: Any) -> list[dict[str, Any]]:
        rows = [{"model": m.name, "name": m.description} for m in self.models.values()]
        for term in domain or []:
            if isinstance(term, list | tuple) and len(term) == 3 and term[0] == "model":
                op, value = term[1], term[2]
                if op == "=":
                    rows = [r for r in rows if r["model"] == value]
                elif op == "in":
                    rows = [r for r in rows if r["model"] in value]
        return rows
