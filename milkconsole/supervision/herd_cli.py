"""The `milkconsole herd` command: the herd from a CSV file into the console, and back out.

    milkconsole herd import herd.csv --as SUPERVISOR   # PIN asked; all rows or none
    milkconsole herd export [--out herd.csv]

An import is refused as a whole, with every bad cell named by line and column (exit status 2).
Until the console has a supervisor, the first import needs no `--as` (it is audited as
"setup"); after that a supervisor authorises it with their PIN.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from milkconsole.errors import ConfigError
from milkconsole.grants import AccessDenied, Grant
from milkconsole.herd.file import HerdFileError, read_herd_csv
from milkconsole.supervision.herd_changes import export_herd, import_herd
from milkconsole.supervision.users import UserStore


def add_herd_arguments(subparsers: Any) -> None:
    herd = subparsers.add_parser("herd", help="the herd list: import from or export to CSV")
    cmds = herd.add_subparsers(dest="herd_command", required=True)
    p = cmds.add_parser("import", help="add or update cows from a CSV file (all rows or none)")
    p.add_argument("file", type=Path, help="CSV: number,name,rfid_tag,other_tags,group,...")
    p.add_argument("--db", type=Path, default=None, help="SQLite database")
    p.add_argument("--as", dest="as_user", metavar="SUPERVISOR", help="who authorises it")
    p.add_argument("--pin-stdin", action="store_true", help="read the PIN from standard input")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    p = cmds.add_parser("export", help="write the herd as CSV")
    p.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    p.add_argument("--db", type=Path, default=None, help="SQLite database")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")


def run_herd(args: argparse.Namespace, *, stdin: TextIO | None = None) -> int:
    """Run a `herd` command: 0 ok, 2 refused file, 4 refused authorisation."""
    from milkconsole.paths import default_db_path
    from milkconsole.store.db import open_database

    db = open_database(args.db or default_db_path())
    try:
        if args.herd_command == "export":
            if args.out is None:
                n = export_herd(db, sys.stdout)
            else:
                with args.out.open("w", encoding="utf-8", newline="") as out:
                    n = export_herd(db, out)
                print(f"{n} cows written to {args.out}")
            return 0
        try:
            with args.file.open(encoding="utf-8-sig", newline="") as f:
                herd = read_herd_csv(f, str(args.file))
        except OSError as exc:
            raise ConfigError(str(args.file), "-", f"cannot read: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(
                str(args.file), "-", f"not UTF-8 text (save it as CSV UTF-8): {exc.reason}"
            ) from exc
        except HerdFileError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        try:
            grant = _grant(UserStore(db), args, stdin or sys.stdin)
            report = import_herd(db, herd, grant=grant)
        except AccessDenied as exc:
            print(f"milkconsole herd: {exc}", file=sys.stderr)
            return 4
        except HerdFileError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        print(f"{args.file}: {len(herd.rows)} cows read; {report.summary}")
        for line in report.conflicts:
            print(f"  kept as in Odoo: {line}")
        return 0
    finally:
        db.close()


def _grant(store: UserStore, args: argparse.Namespace, stdin: TextIO) -> Grant | None:
    if args.as_user is None:
        if not store.has_supervisor():
            return None
        raise AccessDenied("a supervisor must authorise an import: add --as SUPERVISOR")
    if args.pin_stdin:
        pin = stdin.readline().strip()
    else:
        import getpass

        pin = getpass.getpass(f"PIN of {args.as_user}: ")
    user = store.verify(args.as_user, pin)
    if user is None:
        raise AccessDenied("wrong name or PIN")
    return Grant(user.name, user.role)
