"""Running a mastitis detector over a history file, and the CSV files that go in and out.

Sessions file (header row, one milking a row, times ISO 8601 UTC such as
``2026-03-02T05:12:00Z``, empty cells for values the meter did not give)::

    cow_id,start_time,end_time,yield_l,conductivity_ms_cm,ec_lf,ec_rf,ec_lr,ec_rr,temperature_c,blood

Alerts file::

    cow_id,start_time,severity,reason

Bad input is refused with `SessionsFileError`, whose message names the file, the line and the
column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from milkconsole.errors import MilkConsoleError
from milkconsole.health.mastitis import MastitisDetector, MilkingSignals, RaisedAlert

SESSION_COLUMNS = (
    "cow_id",
    "start_time",
    "end_time",
    "yield_l",
    "conductivity_ms_cm",
    "ec_lf",
    "ec_rf",
    "ec_lr",
    "ec_rr",
    "temperature_c",
    "blood",
)
ALERT_COLUMNS = ("cow_id", "start_time", "severity", "reason")
SEED_THRESHOLD_MS_CM = 5.5 * 1.2
SEED_CRITICAL_MS_CM = 5.5 * 1.5
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}
# Physical bounds: a value outside them is a broken file, not a sick cow.
_BOUNDS = {
    "yield_l": (0.0, 60.0),
    "conductivity_ms_cm": (0.5, 30.0),
    "ec": (0.5, 30.0),
    "temperature_c": (0.0, 50.0),
}


class SessionsFileError(MilkConsoleError):
    """A history or alerts file was refused; names the file, line and column."""

    def __init__(self, path: str, line: int, column: str | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.problem = problem
        where = f"{path}:{line}" + (f": column {column}" if column else "")
        super().__init__(f"{where}: {problem}")


class Detector(Protocol):
    """Anything that turns milkings (in time order) into alerts, one milking at a time."""

    def observe(self, milking: MilkingSignals) -> list[RaisedAlert]: ...


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with a zone (``Z`` or an offset) as aware UTC; naive is refused."""
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{text!r} has no time zone (write it as UTC, e.g. 2026-03-02T05:12:00Z)")
    return value.astimezone(UTC)


def format_time(value: datetime) -> str:
    """ISO 8601 UTC with a Z and whole seconds, the files' form."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_sessions_csv(path: Path) -> list[MilkingSignals]:
    """Every milking of a sessions file, in file order. SessionsFileError on any bad cell."""
    name = str(path)
    try:
        # utf-8-sig: a file saved by a spreadsheet starts with a byte-order mark.
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise SessionsFileError(name, 0, None, f"cannot open: {exc.strerror or exc}") from exc
    records: list[MilkingSignals] = []
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise SessionsFileError(name, 1, None, "empty file (expected a header row)") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SessionsFileError(name, 1, None, f"not readable as CSV: {exc}") from exc
        columns = [c.strip() for c in header]
        missing = [c for c in SESSION_COLUMNS if c not in columns]
        if missing:
            raise SessionsFileError(name, 1, missing[0], "missing from the header row")
        unknown = [c for c in columns if c not in SESSION_COLUMNS]
        if unknown:
            raise SessionsFileError(name, 1, unknown[0], "unknown column")
        index = {c: columns.index(c) for c in SESSION_COLUMNS}
        seen: dict[tuple[str, datetime], int] = {}
        line = 1
        try:
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(columns):
                    raise SessionsFileError(
                        name, line, None, f"{len(row)} cells, the header has {len(columns)}"
                    )
                record = _record(name, line, {c: row[i] for c, i in index.items()})
                first = seen.setdefault((record.cow_id, record.start), line)
                if first != line:
                    raise SessionsFileError(
                        name,
                        line,
                        "start_time",
                        f"cow {record.cow_id} already has a milking starting then (line {first})",
                    )
                records.append(record)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SessionsFileError(name, line + 1, None, f"not readable as CSV: {exc}") from exc
    return records


def _record(name: str, line: int, cells: dict[str, str]) -> MilkingSignals:
    def fail(column: str, problem: str) -> SessionsFileError:
        return SessionsFileError(name, line, column, problem)

    def time(column: str) -> datetime:
        text = cells[column].strip()
        if not text:
            raise fail(column, "empty (a time is required)")
        try:
            return parse_time(text)
        except ValueError as exc:
            raise fail(column, f"{text!r} is not an ISO 8601 UTC time: {exc}") from None

    def number(column: str, bounds: str, required: bool = False) -> float | None:
        text = cells[column].strip()
        if not text:
            if required:
                raise fail(column, "empty (a number is required)")
            return None
        try:
            value = float(text)
        except ValueError:
            raise fail(column, f"{text!r} is not a number") from None
        low, high = _BOUNDS[bounds]
        if not math.isfinite(value) or not low <= value <= high:
            raise fail(column, f"{text} is outside {low:g}-{high:g}")
        return value

    cow_id = cells["cow_id"].strip()
    if not cow_id:
        raise fail("cow_id", "empty")
    start = time("start_time")
    end = time("end_time")
    if end < start:
        raise fail("end_time", f"{format_time(end)} is before start_time {format_time(start)}")
    yield_l = number("yield_l", "yield_l", required=True)
    assert yield_l is not None
    blood_text = cells["blood"].strip().lower()
    if blood_text and blood_text not in _TRUE | _FALSE:
        raise fail("blood", f"{cells['blood']!r} is not 0/1/true/false")
    lf, rf, lr, rr = (number(c, "ec") for c in ("ec_lf", "ec_rf", "ec_lr", "ec_rr"))
    return MilkingSignals(
        cow_id=cow_id,
        start=start,
        end=end,
        yield_l=yield_l,
        conductivity_ms_cm=number("conductivity_ms_cm", "conductivity_ms_cm"),
        quarters=(lf, rf, lr, rr),
        temperature_c=number("temperature_c", "temperature_c"),
        blood=(blood_text in _TRUE) if blood_text else None,
    )


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def write_sessions_csv(path: Path, records: Iterable[MilkingSignals]) -> None:
    """A sessions file (`SESSION_COLUMNS`) that `read_sessions_csv` reads back unchanged."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(SESSION_COLUMNS)
        for r in records:
            w.writerow(
                [
                    r.cow_id,
                    format_time(r.start),
                    format_time(r.end),
                    _cell(r.yield_l),
                    _cell(r.conductivity_ms_cm),
                    *(_cell(q) for q in r.quarters),
                    _cell(r.temperature_c),
                    "" if r.blood is None else int(r.blood),
                ]
            )


def write_alerts_csv(path: Path, alerts: Iterable[RaisedAlert]) -> int:
    """The alerts file (`ALERT_COLUMNS`); returns how many rows were written."""
    n = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(ALERT_COLUMNS)
        for a in alerts:
            w.writerow([a.cow_id, format_time(a.start_time), a.severity, a.reason])
            n += 1
    return n


def read_alerts_csv(path: Path) -> list[RaisedAlert]:
    """Alerts written by `write_alerts_csv` (condition taken as mastitis)."""
    name = str(path)
    alerts: list[RaisedAlert] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or set(ALERT_COLUMNS) - set(reader.fieldnames):
            raise SessionsFileError(name, 1, None, f"header must be {','.join(ALERT_COLUMNS)}")
        for row in reader:
            line = reader.line_num
            severity = row["severity"].strip()
            if severity not in ("warning", "critical"):
                raise SessionsFileError(name, line, "severity", f"{severity!r} is not a severity")
            try:
                start = parse_time(row["start_time"])
            except ValueError as exc:
                raise SessionsFileError(name, line, "start_time", str(exc)) from None
            alerts.append(
                RaisedAlert(
                    cow_id=row["cow_id"].strip(),
                    start_time=start,
                    severity=severity,  # type: ignore[arg-type]
                    condition="mastitis",
                    reason=row["reason"],
                    escalation=row["reason"].startswith("escalated:"),
                )
            )
    return alerts


def time_ordered(records: Iterable[MilkingSignals]) -> list[MilkingSignals]:
    """Milkings in the order a live console completes them: by start time, then cow."""
    return sorted(records, key=lambda r: (r.start, r.cow_id))


def run_detector(detector: Detector, records: Sequence[MilkingSignals]) -> list[RaisedAlert]:
    """Feed every milking to the detector in time order; every alert it raises, in order."""
    alerts: list[RaisedAlert] = []
    for record in time_ordered(records):
        alerts.extend(detector.observe(record))
    return alerts


class SeedRuleDetector:
    """The seed project's rule, for comparison: cow conductivity above 5.5 * 1.2 mS/cm.

    As the seed wrote it (milestone 93, `_check_mastitis_indicators`): every such milking
    raises an alert, critical above 5.5 * 1.5 mS/cm; the default baseline is used because the
    seed's per-animal `conductivity_baseline` is never filled in.
    """

    def observe(self, milking: MilkingSignals) -> list[RaisedAlert]:
        ec = milking.conductivity_ms_cm
        if ec is None or ec <= SEED_THRESHOLD_MS_CM:
            return []
        return [
            RaisedAlert(
                cow_id=milking.cow_id,
                start_time=milking.start,
                severity="critical" if ec >= SEED_CRITICAL_MS_CM else "warning",
                condition="mastitis",
                reason=f"conductivity {ec:.2f} mS/cm > {SEED_THRESHOLD_MS_CM:.1f}",
            )
        ]


def evaluate_file(
    sessions: Path, alerts_out: Path, detector: Detector | None = None
) -> tuple[int, int]:
    """Run `detector` (ours by default) over a sessions file and write its alerts.

    Returns (milkings read, alerts written).
    """
    records = read_sessions_csv(sessions)
    found = run_detector(detector or MastitisDetector(), records)
    return len(records), write_alerts_csv(alerts_out, found)
