"""The `milkconsole health` commands: `health evaluate` runs the mastitis detector over a file.

    milkconsole health evaluate --sessions IN.csv --alerts OUT.csv [--detector seed]
                                [--cases CASES.csv]

Exit status 0 when the alerts were written, 2 when an input file was refused (the message names
the file, the line and the column).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from milkconsole.health.evaluate import (
    SeedRuleDetector,
    SessionsFileError,
    read_sessions_csv,
    run_detector,
    write_alerts_csv,
)
from milkconsole.health.mastitis import MastitisDetector


def add_health_arguments(subparsers: Any) -> None:
    """Register `health evaluate` on the `milkconsole` command's subparsers."""
    health = subparsers.add_parser("health", help="milk health: evaluate the mastitis detector")
    commands = health.add_subparsers(dest="health_command", required=True)
    ev = commands.add_parser(
        "evaluate",
        help="run the mastitis detector over a sessions history file, write its alerts",
        description=(
            "Input columns: cow_id,start_time,end_time,yield_l,conductivity_ms_cm,"
            "ec_lf,ec_rf,ec_lr,ec_rr,temperature_c,blood (times ISO 8601 UTC). "
            "Output columns: cow_id,start_time,severity,reason."
        ),
    )
    ev.add_argument("--sessions", type=Path, required=True, help="history CSV to read")
    ev.add_argument("--alerts", type=Path, required=True, help="alerts CSV to write")
    ev.add_argument(
        "--detector",
        choices=("adaptive", "seed"),
        default="adaptive",
        help="adaptive (default) or the seed's fixed 5.5*1.2 mS/cm rule, for comparison",
    )
    ev.add_argument(
        "--cases",
        type=Path,
        default=None,
        help="known cases CSV (cow_id,kind,onset_time,end_time): print the score too",
    )
    ev.add_argument("--verbose", "-v", action="store_true", help="debug logging")


def run_health(args: argparse.Namespace) -> int:
    """Run the `health` command `args` asks for; the exit status."""
    if args.health_command != "evaluate":
        print(f"milkconsole health: unknown command {args.health_command!r}", file=sys.stderr)
        return 2
    try:
        records = read_sessions_csv(args.sessions)
        detector = SeedRuleDetector() if args.detector == "seed" else MastitisDetector()
        alerts = run_detector(detector, records)
        cases = None
        if args.cases is not None:
            from milkconsole.health.scoring import read_cases_csv

            cases = read_cases_csv(args.cases)
    except SessionsFileError as exc:
        print(f"milkconsole: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"milkconsole: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        written = write_alerts_csv(args.alerts, alerts)
    except OSError as exc:
        print(f"milkconsole: {args.alerts}: cannot write: {exc.strerror}", file=sys.stderr)
        return 2
    cows = len({r.cow_id for r in records})
    print(f"{len(records)} milkings of {cows} cows -> {written} alerts in {args.alerts}")
    if cases is not None:
        from milkconsole.health.scoring import score

        s = score(records, cases, [a for a in alerts if not a.escalation])
        lead = "-" if s.median_lead_h is None else f"{s.median_lead_h:.1f} h"
        print(
            f"sensitivity {s.sensitivity:.1%} ({s.detected}/{s.clinical_cases}), "
            f"specificity {s.specificity:.2%}, false alerts {s.false_alerts_per_1000:.2f}/1000 "
            f"milkings, median lead {lead}"
        )
    return 0
