"""The `milkconsole` command's parser and its headless commands: gateway, reports, exports,
health, herd, users, sync, Odoo, the phones' view, MQTT, backup, the database.

The console, the demo and the simulators are not the core's: `milkconsole.app.entry` (the
program's entry point, the one module allowed to start the UI) adds them to this parser and runs
them; everything else runs here. Exit status: `milkconsole.errors.exit_status`.

Each command's module is imported when that command runs, not when the parser is built: a
`milkconsole check-config` does not load aiohttp, odoorpc or paho. (No import here avoids a
cycle: the core has none, `lint-imports` checks it.)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from milkconsole.config import load_config
from milkconsole.paths import default_config_path, default_db_path


class _VersionAction(argparse.Action):
    """`--version`: the version and the build's git commit. Worked out only when asked for
    (a source checkout asks git), not every time the parser is built."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from milkconsole.version import build_info

        print(build_info().describe())
        parser.exit()


def _common(p: argparse.ArgumentParser, *, config: bool = True) -> None:
    if config:
        p.add_argument(
            "--config",
            type=Path,
            default=None,
            help=f"parlour config file (default: {default_config_path()})",
        )
    p.add_argument(
        "--db", type=Path, default=None, help=f"SQLite database (default: {default_db_path()})"
    )
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")


def parse_since(text: str) -> datetime:
    """An ISO 8601 time or date; naive means UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--since: not an ISO 8601 time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def build_parser(
    extend: Callable[[Any, Callable[..., None]], None] | None = None,
) -> argparse.ArgumentParser:
    """The whole command line. `extend(subparsers, common)` adds the entry point's own commands
    (console, demo, simulate)."""
    from milkconsole.app.backup_cli import add_backup_arguments
    from milkconsole.health.cli import add_health_arguments
    from milkconsole.mqtt.cli import add_mqtt_arguments
    from milkconsole.reports.cli import add_report_arguments
    from milkconsole.supervision.herd_cli import add_herd_arguments
    from milkconsole.supervision.users_cli import add_users_arguments
    from milkconsole.sync.cli import add_odoo_arguments, add_sync_arguments
    from milkconsole.web.cli import add_web_arguments

    parser = argparse.ArgumentParser(
        prog="milkconsole", description="Milk Console: parlour milk recording."
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="print the version and build commit, then exit"
    )
    _common(parser)
    parser.add_argument("--theme", choices=("dark", "light"), default="dark")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("gateway", help="poll and record headless; one line per session")
    _common(p)

    p = sub.add_parser("sessions", help="recorded sessions")
    ss = p.add_subparsers(dest="sessions_command", required=True)
    e = ss.add_parser("export", help="print sessions as CSV")
    _common(e, config=False)
    e.add_argument("--format", choices=("csv",), default="csv")
    e.add_argument("--since", type=parse_since, default=None, help="ISO 8601 start time (UTC)")

    p = sub.add_parser("check-config", help="validate a parlour config and exit")
    p.add_argument("config_file", type=Path)

    p = sub.add_parser("db", help="the local database: schema status, upgrade")
    ds = p.add_subparsers(dest="db_command", required=True)
    d = ds.add_parser("status", help="the database's schema revision against this version's")
    _common(d, config=False)
    d = ds.add_parser("upgrade", help="migrate the database to this version (backup first)")
    _common(d, config=False)

    add_backup_arguments(sub, _common)
    add_health_arguments(sub)
    add_report_arguments(sub, _common)
    add_herd_arguments(sub)
    add_users_arguments(sub)
    add_sync_arguments(sub, _common)
    add_odoo_arguments(sub, _common)
    add_web_arguments(sub, _common)
    add_mqtt_arguments(sub)
    if extend is not None:
        extend(sub, _common)
    return parser


def config_path(args: argparse.Namespace) -> Path:
    return args.config or default_config_path()


PdfWriter = Callable[[], Callable[[Any, Path], int]]


def run_headless(args: argparse.Namespace, pdf_writer: PdfWriter | None = None) -> int | None:
    """Run a headless command; None when `args` names one of the entry point's (console, demo,
    simulate). `pdf_writer` gives the report command its PDF renderer (Qt, so the entry
    point's)."""
    cmd = args.command or "console"
    if cmd == "check-config":
        cfg = load_config(args.config_file)
        print(f"{args.config_file}: ok — {len(cfg.meters)} meters on {len(cfg.buses)} buses")
        return 0
    if cmd == "db":
        return _run_db(args)
    if cmd == "gateway":
        from milkconsole.app.gateway import run_gateway

        cfg = load_config(config_path(args))
        return run_gateway(cfg, args.db or default_db_path())
    if cmd == "sessions":
        from milkconsole.reports.csv_out import write_sessions
        from milkconsole.store.db import open_database
        from milkconsole.store.sessions import SessionStore

        store = SessionStore(open_database(args.db or default_db_path()))
        write_sessions(sys.stdout, store.completed_since(args.since))
        return 0
    if cmd == "report":
        from milkconsole.reports.cli import run_report

        return run_report(args, pdf_writer, lambda: _layout(args))
    if cmd == "export":
        from milkconsole.reports.cli import run_export

        return run_export(args)
    if cmd == "backup":
        from milkconsole.app.backup_cli import run_backup

        return run_backup(args)
    if cmd == "health":
        from milkconsole.health.cli import run_health

        return run_health(args)
    if cmd == "users":
        from milkconsole.supervision.users_cli import run_users

        return run_users(args)
    if cmd == "herd":
        from milkconsole.supervision.herd_cli import run_herd

        return run_herd(args)
    if cmd == "sync":
        from milkconsole.sync.cli import run_sync

        return run_sync(args)
    if cmd == "odoo":
        from milkconsole.sync.cli import run_odoo

        return run_odoo(args)
    if cmd == "web":
        from milkconsole.web.cli import run_web

        return run_web(args, load_config(config_path(args)))
    if cmd == "mqtt":
        from milkconsole.mqtt.cli import run_mqtt

        return run_mqtt(args)
    return None


def _layout(args: argparse.Namespace) -> str:
    """The parlour's layout from its config; a herringbone when no config was named and the
    default one does not exist."""
    path = config_path(args)
    if args.config is None and not path.exists():
        return "herringbone"
    return load_config(path).layout


def _run_db(args: argparse.Namespace) -> int:
    from milkconsole.store.upgrade import database_status, upgrade_database

    path = args.db or default_db_path()
    if args.db_command == "status":
        status = database_status(path)
        print(status.describe())
        return 3 if status.state == "newer" else 0
    owner = _other_owner(path)
    if owner is not None:
        print(
            f"milkconsole: {path} belongs to the user {owner}: run this as that user "
            f"(runuser -u {owner} -- milkconsole db upgrade --db {path}), so the files SQLite "
            "writes beside it stay theirs",
            file=sys.stderr,
        )
        return 2
    print(upgrade_database(path).describe())
    return 0


def _other_owner(path: Path) -> str | None:
    """When root is about to write to another user's database: that user's name."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not path.exists():
        return None
    uid = path.stat().st_uid
    if uid == 0:
        return None
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
