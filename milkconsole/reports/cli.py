"""`milkconsole report ...` and `milkconsole export ...`.

    milkconsole report milking|day|cow|meter|herd [--from T] [--to T] [--cow N]
                       --format pdf|csv [--out F]
    milkconsole export ade|calibrations|audit [--from T] [--to T] [--out F]

Without a period a milking report is the last milking, a day report today, a cow report her
lactation (since her last calving), a meter comparison the last 7 days and a herd trend the last 365
days. Times are the farm's local time unless they carry an offset; a date alone is that day's
midnight, and a `--to` date includes that whole day. CSV goes to standard output without `--out`; a
PDF is written to `--out` or a file named after the report in the current directory. The PDF is
drawn with Qt (`ui.report_pdf`), which `milkconsole.app.entry` imports only for `--format pdf`, on
the offscreen platform when there is no display.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, TextIO

from milkconsole.clock import local_zone
from milkconsole.errors import ConfigError, MilkConsoleError

REPORT_KINDS = ("milking", "day", "cow", "meter", "herd")
EXPORT_KINDS = ("ade", "calibrations", "audit")
METER_DAYS = 7
HERD_DAYS = 365


class ReportError(MilkConsoleError):
    """A report cannot be made as asked (no milking yet, no such cow, a bad period)."""


def parse_local_time(text: str, *, end: bool = False, zone: tzinfo | None = None) -> datetime:
    """An ISO 8601 date or time; without an offset it is the farm's local time. A date alone
    is that day's midnight, or the next midnight when it ends a period (`end`)."""
    zone = zone or local_zone()
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            if end:
                day += timedelta(days=1)
            return datetime.combine(day, time(0), zone).astimezone(UTC)
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {text!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _period_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="start", metavar="T", help="start (date or time, local)")
    p.add_argument("--to", dest="end", metavar="T", help="end (a date includes that day)")


def add_report_arguments(
    subparsers: Any, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Register `report` and `export` on the `milkconsole` subparsers."""
    p = subparsers.add_parser("report", help="milking, day, cow, meter and herd reports")
    p.add_argument("kind", choices=REPORT_KINDS)
    common(p)
    _period_arguments(p)
    p.add_argument("--cow", help="the cow's herd number (cow report)")
    p.add_argument("--format", choices=("pdf", "csv"), default="pdf")
    p.add_argument("--out", type=Path, default=None, help="file to write (CSV: default stdout)")
    p.add_argument(
        "--drop-share",
        type=float,
        default=None,
        help="a cow has dropped when she gives this share less than expected (default 0.30)",
    )

    p = subparsers.add_parser("export", help="ICAR ADE milkings, calibrations, audit log")
    p.add_argument("kind", choices=EXPORT_KINDS)
    common(p)
    _period_arguments(p)
    p.add_argument("--out", type=Path, default=None, help="file to write (default stdout)")
    p.add_argument("--as", dest="as_user", metavar="SUPERVISOR", help="audit: who reads it")
    p.add_argument(
        "--pin-stdin", action="store_true", help="audit: read the PIN from standard input"
    )


def _when(args: argparse.Namespace, name: str, *, end: bool = False) -> datetime | None:
    text = getattr(args, name, None)
    if text is None:
        return None
    try:
        return parse_local_time(text, end=end)
    except argparse.ArgumentTypeError as exc:
        raise ConfigError("command line", f"--{'to' if end else 'from'}", str(exc)) from exc


# The parlour's layout (its sides, for throughput), asked for only by the reports that use it.
Layout = Callable[[], str]


def build_report(
    args: argparse.Namespace,
    db: Any,
    now: datetime | None = None,
    layout: Layout = lambda: "herringbone",
) -> Any:
    """The report the command line asks for (a `milkconsole.reports.tables.Report`)."""
    from milkconsole.reports import cow, day, herd, meters, milking, periods

    now = now or datetime.now(UTC)
    zone = local_zone()
    start, end = _when(args, "start"), _when(args, "end", end=True)
    if start is not None and end is not None and not end > start:
        raise ReportError(f"--to ({end.isoformat()}) must be after --from ({start.isoformat()})")
    share = args.drop_share if args.drop_share is not None else milking.DEFAULT_DROP_SHARE
    if args.kind == "milking":
        if start is None and end is None:
            period = periods.last_milking(db, now, zone)
            if period is None:
                raise ReportError("no milking recorded yet")
        else:
            period = periods.range_period(start or (end or now) - timedelta(hours=12), end or now)
        return milking.build_milking_report(db, period, drop_share=share, layout=layout(), now=now)
    if args.kind == "day":
        the_day = (start or now).astimezone(zone).date()
        return day.build_day_report(
            db, the_day, zone=zone, drop_share=share, layout=layout(), now=now
        )
    if args.kind == "cow":
        if not args.cow:
            raise ReportError("a cow report needs --cow NUMBER")
        found = cow.find_cow(db, args.cow)
        return cow.build_cow_trend(db, found.id, start=start, end=end, zone=zone)
    if args.kind == "meter":
        end = end or now
        return meters.build_meter_comparison(db, start or end - timedelta(days=METER_DAYS), end)
    last = ((end or now) - timedelta(microseconds=1)).astimezone(zone).date()
    first = start.astimezone(zone).date() if start else last - timedelta(days=HERD_DAYS - 1)
    return herd.build_herd_trend(db, first, last, zone=zone)


def default_pdf_name(report: Any, now: datetime) -> Path:
    kind = type(report).__name__.replace("Report", "").replace("Trend", "").lower()
    return Path(f"{kind}-report-{now.astimezone(local_zone()):%Y%m%d-%H%M}.pdf")


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8", newline="") as f:
        yield f


def ensure_display_for_qt() -> None:
    """Qt draws the PDF offscreen when the machine has no display (a headless gateway)."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


PdfWriter = Callable[[Any, Path], int]


def run_report(
    args: argparse.Namespace, write_pdf: Callable[[], PdfWriter] | None, layout: Layout
) -> int:
    """Make the report and write it; `write_pdf()` gives the Qt PDF writer (`ui.report_pdf`),
    asked for only when a PDF is wanted (the entry point, `milkconsole.app.entry`, gives it);
    `layout()` the parlour's layout from its config (`milkconsole.app.cli` reads it)."""
    from milkconsole.paths import default_db_path
    from milkconsole.reports.tables import write_report_csv
    from milkconsole.store.db import open_database

    db = open_database(args.db or default_db_path())
    try:
        now = datetime.now(UTC)
        report = build_report(args, db, now, layout)
        if args.format == "csv":
            with _output(args.out) as out:
                write_report_csv(out, report)
            return 0
        if write_pdf is None:
            raise MilkConsoleError("report: PDF needs the console's Qt; use --format csv here")
        ensure_display_for_qt()
        target = args.out or default_pdf_name(report, now)
        pages = write_pdf()(report, target)
        print(f"{target}: {pages} page{'s' if pages != 1 else ''}", file=sys.stderr)
        return 0
    finally:
        db.close()


def run_export(args: argparse.Namespace, *, stdin: TextIO | None = None) -> int:
    from milkconsole.paths import default_db_path
    from milkconsole.store.db import open_database

    db = open_database(args.db or default_db_path())
    try:
        if args.kind == "ade":
            return _export_ade(args, db)
        if args.kind == "calibrations":
            from milkconsole.reports.tables import write_calibrations_csv
            from milkconsole.store.calibrations import CalibrationStore

            records = CalibrationStore(db).history(limit=1_000_000)
            start, end = _when(args, "start"), _when(args, "end", end=True)
            records = [
                r
                for r in records
                if (start is None or r.performed_at >= start)
                and (end is None or r.performed_at < end)
            ]
            with _output(args.out) as out:
                write_calibrations_csv(out, records)
            return 0
        return _export_audit(args, db, stdin or sys.stdin)
    finally:
        db.close()


def _export_ade(args: argparse.Namespace, db: Any) -> int:
    from milkconsole.reports.ade import export_ade, write_ade

    zone = local_zone()
    now = datetime.now(UTC)
    start = _when(args, "start")
    end = _when(args, "end", end=True)
    if start is None:
        today = (end or now).astimezone(zone).date()
        start = datetime.combine(today, time(0), zone).astimezone(UTC)
    end = end or now
    if not end > start:
        raise ReportError(f"--to ({end.isoformat()}) must be after --from ({start.isoformat()})")
    export = export_ade(db, start, end)
    with _output(args.out) as out:
        write_ade(out, export)
    if export.skipped:
        print(
            f"{len(export.skipped)} milking(s) left out: no ISO 11784 tag to identify the cow "
            f"(first: {export.skipped[0]})",
            file=sys.stderr,
        )
    return 0


def _export_audit(args: argparse.Namespace, db: Any, stdin: TextIO) -> int:
    import getpass

    from milkconsole.grants import AccessDenied, Grant
    from milkconsole.reports.audit import export_audit_csv
    from milkconsole.store.audit import AuditFilter
    from milkconsole.supervision.users import UserStore

    if not args.as_user:
        print("milkconsole export audit: a supervisor must read it: add --as NAME", file=sys.stderr)
        return 4
    pin = (
        stdin.readline().strip() if args.pin_stdin else getpass.getpass(f"PIN of {args.as_user}: ")
    )
    user = UserStore(db).verify(args.as_user, pin)
    if user is None:
        print("milkconsole export audit: wrong name or PIN", file=sys.stderr)
        return 4
    f = AuditFilter(since=_when(args, "start"), until=_when(args, "end", end=True), limit=10**9)
    try:
        with _output(args.out) as out:
            export_audit_csv(db, Grant(user.name, user.role), out, f)
    except AccessDenied as exc:
        print(f"milkconsole export audit: {exc}", file=sys.stderr)
        return 4
    return 0
