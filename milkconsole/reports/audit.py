"""The audit log as CSV: what a supervisor hands an inspector (`milkconsole export audit`, or
the console's audit view). The rows come from the store (`milkconsole.store.audit`, which
checks the supervisor's grant); the export is itself recorded there."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO

from milkconsole.grants import Grant
from milkconsole.reports.csv_out import write_table  # the one CSV writer
from milkconsole.store.audit import AuditFilter, AuditRecord, query_audit, record_audit_export
from milkconsole.store.db import Database

CSV_COLUMNS: tuple[str, ...] = ("id", "at", "actor", "role", "action", "target", "before", "after")


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def write_audit_csv(out: TextIO, records: Sequence[AuditRecord]) -> int:
    """CSV with header `CSV_COLUMNS`: times ISO 8601 UTC with Z, before/after as JSON."""
    rows = (
        {
            "id": r.id,
            "at": r.at,
            "actor": r.actor,
            "role": r.role,
            "action": r.action,
            "target": r.target,
            "before": _json(r.before),
            "after": _json(r.after),
        }
        for r in records
    )
    return write_table(out, CSV_COLUMNS, rows)


def export_audit_csv(
    db: Database, grant: Grant | None, out: TextIO, f: AuditFilter | None = None
) -> int:
    """Write the matching rows (oldest first) as CSV to `out`; the count. The export is
    itself recorded. Open `out` with newline=""."""
    f = f or AuditFilter()
    records = list(reversed(query_audit(db, grant, f)))
    n = write_audit_csv(out, records)
    record_audit_export(db, grant, n, f)
    return n
