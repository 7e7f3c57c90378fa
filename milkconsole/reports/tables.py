"""Reports as tables: the rows and columns each report's CSV holds (written by `csv_out`).

A report's CSV is its detail table, one line per thing counted (per milking of the shift, per
milking of the cow, per meter, per day); the headline figures are the sums of those lines.
docs/exports.md documents the columns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

from milkconsole.reports.cow import CowTrend
from milkconsole.reports.csv_out import write_table
from milkconsole.reports.day import DayReport
from milkconsole.reports.herd import HerdTrend
from milkconsole.reports.meters import MeterComparison
from milkconsole.reports.milking import CowLine, MilkingReport
from milkconsole.store.calibrations import CalibrationRecord

MILKING_COLUMNS: tuple[str, ...] = (
    "milking",
    "key",
    "stall",
    "meter_id",
    "animal",
    "name",
    "rfid",
    "start",
    "end",
    "duration_s",
    "yield_l",
    "expected_l",
    "of_expected_share",
    "peak_flow_l_min",
    "conductivity_max_ms_cm",
    "state",
    "reattached",
    "destination",
    "flags",
)
COW_COLUMNS: tuple[str, ...] = (
    "animal",
    "key",
    "start",
    "day",
    "days_in_milk",
    "stall",
    "yield_l",
    "expected_l",
    "conductivity_mean_ms_cm",
    "conductivity_max_ms_cm",
    "peak_flow_l_min",
    "duration_s",
    "state",
    "abnormal",
    "diverted",
    "flags",
)
METER_COLUMNS: tuple[str, ...] = (
    "stall",
    "meter_id",
    "sessions",
    "completed",
    "incomplete",
    "incomplete_share",
    "interrupted",
    "comm_errors",
    "yield_l",
    "mean_yield_l",
    "mean_flow_l_min",
    "mean_peak_flow_l_min",
    "mean_duration_s",
    "calibration_factor",
    "last_calibrated",
    "last_result",
    "calibration_due",
    "cows_compared",
    "deviation_pct",
    "p_value",
    "flagged",
)
HERD_COLUMNS: tuple[str, ...] = (
    "day",
    "sessions",
    "cows_milked",
    "yield_l",
    "per_cow_l",
    "unidentified",
    "ec_outliers",
    "diverted_l",
)
CALIBRATION_COLUMNS: tuple[str, ...] = (
    "id",
    "meter_id",
    "performed_at",
    "performed_by",
    "method",
    "old_factor",
    "new_factor",
    "mean_deviation_pct",
    "sd_deviation_pct",
    "result",
    "conductivity_offset_ms_cm",
    "next_due_at",
    "readings",
    "references",
)


def _line(label: str, line: CowLine) -> dict[str, Any]:
    r = line.record
    return {
        "milking": label,
        "key": r.key,
        "stall": r.stall,
        "meter_id": r.meter_id,
        "animal": r.animal_number,
        "name": r.animal_name,
        "rfid": r.rfid,
        "start": r.started_at,
        "end": r.ended_at,
        "duration_s": r.duration_s,
        "yield_l": r.yield_l,
        "expected_l": line.expected_l,
        "of_expected_share": line.share,
        "peak_flow_l_min": r.peak_flow_l_min,
        "conductivity_max_ms_cm": r.conductivity_max_ms_cm,
        "state": r.state,
        "reattached": r.reattached,
        "destination": r.destination,
        "flags": r.flags,
    }


def milking_rows(report: MilkingReport) -> Iterator[dict[str, Any]]:
    for line in report.lines:
        yield _line(report.period.label, line)


def day_rows(report: DayReport) -> Iterator[dict[str, Any]]:
    for m in report.milkings:
        yield from milking_rows(m)


def cow_rows(trend: CowTrend) -> Iterator[dict[str, Any]]:
    for m in trend.milkings:
        yield {
            "animal": trend.cow.number,
            "key": m.session_key,
            "start": m.started_at,
            "day": m.day,
            "days_in_milk": m.dim,
            "stall": m.stall,
            "yield_l": m.yield_l,
            "expected_l": m.expected_l,
            "conductivity_mean_ms_cm": m.conductivity_mean_ms_cm,
            "conductivity_max_ms_cm": m.conductivity_max_ms_cm,
            "peak_flow_l_min": m.peak_flow_l_min,
            "duration_s": m.duration_s,
            "state": m.state,
            "abnormal": m.abnormal,
            "diverted": m.diverted,
            "flags": m.flags,
        }


def meter_rows(comparison: MeterComparison) -> Iterator[dict[str, Any]]:
    for r in comparison.rows:
        d = r.deviation
        yield {
            "stall": r.stall,
            "meter_id": r.meter_id,
            "sessions": r.sessions,
            "completed": r.completed,
            "incomplete": r.incomplete,
            "incomplete_share": r.incomplete_share,
            "interrupted": r.interrupted,
            "comm_errors": r.comm_errors,
            "yield_l": r.yield_l,
            "mean_yield_l": r.mean_yield_l,
            "mean_flow_l_min": r.mean_flow_l_min,
            "mean_peak_flow_l_min": r.mean_peak_flow_l_min,
            "mean_duration_s": r.mean_duration_s,
            "calibration_factor": r.calibration_factor,
            "last_calibrated": r.last_calibrated_at,
            "last_result": r.last_result,
            "calibration_due": r.calibration_due_at,
            "cows_compared": d.cows if d else 0,
            "deviation_pct": 100.0 * d.deviation if d else None,
            "p_value": d.p_value if d else None,
            "flagged": r.flagged,
        }


def herd_rows(trend: HerdTrend) -> Iterator[dict[str, Any]]:
    for d in trend.days:
        yield {
            "day": d.day,
            "sessions": d.sessions,
            "cows_milked": d.cows_milked,
            "yield_l": d.yield_l,
            "per_cow_l": d.per_cow_l,
            "unidentified": d.unidentified,
            "ec_outliers": d.ec_outliers,
            "diverted_l": d.diverted_l,
        }


def calibration_rows(records: list[CalibrationRecord]) -> Iterator[dict[str, Any]]:
    for c in records:
        yield {
            "id": c.id,
            "meter_id": c.meter_id,
            "performed_at": c.performed_at,
            "performed_by": c.performed_by,
            "method": c.method,
            "old_factor": c.old_factor,
            "new_factor": c.new_factor,
            "mean_deviation_pct": c.mean_deviation_pct,
            "sd_deviation_pct": c.sd_deviation_pct,
            "result": c.result,
            "conductivity_offset_ms_cm": c.conductivity_offset_ms_cm,
            "next_due_at": c.next_due_at,
            "readings": _json(c.readings),
            "references": _json(c.references),
        }


def _json(value: Any) -> str:
    # The test milkings and weighed references are records: one JSON cell each.
    return "" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


Report = MilkingReport | DayReport | CowTrend | MeterComparison | HerdTrend


def write_report_csv(out: TextIO, report: Report) -> int:
    """A report's detail table as CSV; the number of lines written."""
    if isinstance(report, MilkingReport):
        return write_table(out, MILKING_COLUMNS, milking_rows(report))
    if isinstance(report, DayReport):
        return write_table(out, MILKING_COLUMNS, day_rows(report))
    if isinstance(report, CowTrend):
        return write_table(out, COW_COLUMNS, cow_rows(report))
    if isinstance(report, MeterComparison):
        return write_table(out, METER_COLUMNS, meter_rows(report))
    return write_table(out, HERD_COLUMNS, herd_rows(report))


def write_calibrations_csv(out: TextIO, records: list[CalibrationRecord]) -> int:
    """Calibration history (oldest first) as CSV."""
    ordered = sorted(records, key=lambda c: (c.performed_at, c.id))
    return write_table(out, CALIBRATION_COLUMNS, calibration_rows(ordered))
