"""The one CSV writer: every CSV the console writes goes through `write_table`.

Numbers are written to the precision a milk meter measures, whatever float noise they carry
(`8.40999984741211` L is written `8.41`): the precision is chosen by the column's unit suffix
(`PRECISION`). Times are ISO 8601 UTC with a Z, booleans 1/0, lists `;`-separated, nothing
empty. docs/exports.md documents every column of every table.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, TextIO

from milkconsole.store.sessions import SessionRecord, iso_z

# Decimals by the column's unit suffix, first match wins (yield 0.01 L, duration 1 s,
# conductivity 0.01 mS/cm, as the meters measure them).
PRECISION: tuple[tuple[str, int], ...] = (
    ("_l_min", 2),
    ("_ms_cm", 2),
    ("_l", 2),
    ("_s", 0),
    ("_pct", 2),
    ("_c", 1),
    ("_kpa", 1),
    ("_cpm", 0),
    ("_ml", 0),
    ("_share", 3),
    ("_factor", 4),
    ("_kg", 2),
    ("p_value", 4),
)


def decimals_for(column: str) -> int | None:
    """How many decimals a number in `column` is written with (None: as it is)."""
    for suffix, places in PRECISION:
        if column.endswith(suffix):
            return places
    return None


def cell(column: str, value: Any) -> str:
    """One value as the CSV writes it in `column`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, float):
        places = decimals_for(column)
        if places is None:
            return repr(value)
        if places == 0:
            return str(round(value))
        return f"{value:.{places}f}"
    return str(value)


def write_table(out: TextIO, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Write a header and one line per row (missing keys are empty); returns the row count.
    Open `out` with newline="" (the csv module writes its own line ends)."""
    writer = csv.writer(out)
    writer.writerow(columns)
    n = 0
    for row in rows:
        writer.writerow([cell(c, row.get(c)) for c in columns])
        n += 1
    return n


SESSION_COLUMNS: tuple[str, ...] = (
    "key",
    "stall",
    "meter_id",
    "rfid",
    "animal",
    "start",
    "end",
    "duration_s",
    "yield_l",
    "peak_flow_l_min",
    "avg_flow_l_min",
    "conductivity_mean_ms_cm",
    "conductivity_max_ms_cm",
    "ec_lf_ms_cm",
    "ec_rf_ms_cm",
    "ec_lr_ms_cm",
    "ec_rr_ms_cm",
    "temperature_c",
    "fat_pct",
    "protein_pct",
    "lactose_pct",
    "scc_cells_ml",
    "blood",
    "quality_grade",
    "abnormal",
    "vacuum_kpa",
    "pulsation_cpm",
    "state",
    "id_source",
    "reattached",
    "destination",
    "flags",
)


def session_row(rec: SessionRecord) -> dict[str, Any]:
    """A session as SESSION_COLUMNS name its values."""
    row: dict[str, Any] = {c: getattr(rec, c) for c in SESSION_COLUMNS if hasattr(rec, c)}
    row.update(animal=rec.animal_number, start=rec.started_at, end=rec.ended_at)
    return row


def write_sessions(out: TextIO, records: Iterable[SessionRecord]) -> int:
    """Sessions as CSV (SESSION_COLUMNS): `milkconsole sessions export`."""
    return write_table(out, SESSION_COLUMNS, (session_row(r) for r in records))
