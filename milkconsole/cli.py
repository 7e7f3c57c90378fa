"""The `milkconsole` command: console, demo, gateway, simulators, reports, exports, health, sync,
mqtt, backup.

Exit status: 0 ok, 2 bad input (config, profile, CSV: the message names the file and key),
3 database refused, 1 anything else. The console (Qt) is imported only when it is asked for,
so the headless commands never load Qt.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from milkconsole.config import load_config, with_sections_of
from milkconsole.errors import ConfigError, DatabaseError, MilkConsoleError
from milkconsole.logging_setup import setup_logging
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


def build_parser() -> argparse.ArgumentParser:
    from milkconsole.backup_cli import add_backup_arguments
    from milkconsole.health.cli import add_health_arguments
    from milkconsole.herd_cli import add_herd_arguments
    from milkconsole.mqtt.cli import add_mqtt_arguments
    from milkconsole.reports.cli import add_report_arguments
    from milkconsole.roles import add_users_arguments
    from milkconsole.sync.cli import add_odoo_arguments, add_sync_arguments
    from milkconsole.web.cli import add_web_arguments
    from simulators.cli import add_simulate_arguments

    parser = argparse.ArgumentParser(
        prog="milkconsole", description="Milk Console: parlour milk recording."
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="print the version and build commit, then exit"
    )
    _common(parser)
    parser.add_argument("--theme", choices=("dark", "light"), default="dark")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("console", help="open the console on the configured parlour (default)")
    _common(p)
    p.add_argument("--theme", choices=("dark", "light"), default="dark")

    p = sub.add_parser("demo", help="the console on a simulated 24-stall parlour")
    _common(p, config=False)
    p.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,  # `milkconsole --config F demo` works too
        help="a config file whose optional sections ([odoo], [mqtt], [web], [health]) the "
        "demo parlour takes, so a farm can watch it reach its own Odoo or broker",
    )
    p.add_argument("--headless", action="store_true", help="run simulators + gateway, no window")
    p.add_argument("--cows", type=int, default=200)
    p.add_argument("--time-scale", type=float, default=20.0, help="simulated s per wall s")
    p.add_argument("--theme", choices=("dark", "light"), default="dark")

    p = sub.add_parser("gateway", help="poll and record headless; one line per session")
    _common(p)

    p = sub.add_parser("simulate", help="run a simulated parlour for a config")
    p.add_argument("--verbose", "-v", action="store_true")
    add_simulate_arguments(p)

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
    return parser


def _config_path(args: argparse.Namespace) -> Path:
    return args.config or default_config_path()


def _run(args: argparse.Namespace) -> int:
    cmd = args.command or "console"
    if cmd == "check-config":
        cfg = load_config(args.config_file)
        print(f"{args.config_file}: ok — {len(cfg.meters)} meters on {len(cfg.buses)} buses")
        return 0
    if cmd == "db":
        return _run_db(args)
    if cmd == "simulate":
        from simulators.cli import run_simulate

        return run_simulate(args)
    if cmd == "gateway":
        from milkconsole.gateway import run_gateway

        cfg = load_config(_config_path(args))
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

        return run_report(args, _pdf_writer)
    if cmd == "export":
        from milkconsole.reports.cli import run_export

        return run_export(args)
    if cmd == "backup":
        from milkconsole.backup_cli import run_backup

        return run_backup(args)
    if cmd == "health":
        from milkconsole.health.cli import run_health

        return run_health(args)
    if cmd == "users":
        from milkconsole.roles import run_users

        return run_users(args)
    if cmd == "herd":
        from milkconsole.herd_cli import run_herd

        return run_herd(args)
    if cmd == "sync":
        from milkconsole.sync.cli import run_sync

        return run_sync(args)
    if cmd == "odoo":
        from milkconsole.sync.cli import run_odoo

        return run_odoo(args)
    if cmd == "web":
        from milkconsole.web.cli import run_web

        return run_web(args)
    if cmd == "mqtt":
        from milkconsole.mqtt.cli import run_mqtt

        return run_mqtt(args)
    if cmd == "demo" and args.headless:
        return _run_headless_demo(args)
    from ui.app import run_console  # Qt only from here on

    if cmd == "demo":
        return run_console(
            args.config,
            args.db,
            demo=True,
            theme=args.theme,
            cows=args.cows,
            time_scale=args.time_scale,
        )
    return run_console(_config_path(args), args.db, demo=False, theme=args.theme)


def _pdf_writer() -> Callable[[Any, Path], int]:
    from ui.report_pdf import write_report_pdf  # Qt only from here on

    return write_report_pdf


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


def _run_headless_demo(args: argparse.Namespace) -> int:
    from milkconsole.clock import ScaledClock
    from milkconsole.gateway import run_gateway
    from milkconsole.store.db import open_database
    from simulators.cli import SimulatedParlour
    from simulators.demo import make_demo_config
    from simulators.demo_herd import seed_demo_herd

    with tempfile.TemporaryDirectory(prefix="milkconsole-demo-") as tmp:
        work = Path(tmp)
        cfg = load_config(
            make_demo_config(work, stalls=24, time_scale=args.time_scale, simulated_clock=True)
        )
        if args.config is not None:
            cfg = with_sections_of(cfg, args.config)
        db = args.db or work / "demo.sqlite"
        # Milkings are read in the scenario's own time: a 6-minute milking lasts 6 minutes in
        # the record whatever --time-scale plays it at.
        clock = ScaledClock(args.time_scale)
        parlour = SimulatedParlour(cfg, cows=args.cows, seed=1, time_scale=args.time_scale)
        database = open_database(db)
        try:
            herd = seed_demo_herd(database, parlour.scenario, start=clock.now())
        finally:
            database.close()
        print(
            f"demo parlour: {len(cfg.meters)} meters, {herd.animals} cows in the herd list "
            f"(treated: {', '.join(herd.treated)}; fresh: {', '.join(herd.fresh)}), "
            f"database {db}",
            flush=True,
        )
        with parlour:
            return run_gateway(cfg, db, clock=clock)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(verbose=getattr(args, "verbose", False))
    return run_reporting_errors(lambda: _run(args))


def run_reporting_errors(command: Callable[[], int]) -> int:
    """Run a command, turning the core's errors into the documented exit statuses and one
    line on stderr (the message already names the file and key)."""
    try:
        return command()
    except ConfigError as exc:
        print(f"milkconsole: {exc}", file=sys.stderr)
        return 2
    except DatabaseError as exc:
        print(f"milkconsole: {exc}", file=sys.stderr)
        return 3
    except MilkConsoleError as exc:
        print(f"milkconsole: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
