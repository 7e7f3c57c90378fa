"""The `milkconsole` program: the one place that starts the console's UI or the simulators.

The import-linter contract that keeps `ui`, `simulators` and `bench` out of the core names this
module as its only exception (pyproject.toml, `[tool.importlinter]`): the console (`ui.app`),
the PDF renderer for reports (`ui.report_pdf`) and the simulated parlour of the demo and of
`simulate` (`simulators.*`) are imported here, and only when their command runs, so a headless
command never loads Qt. Everything else is `milkconsole.app.cli`'s.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from milkconsole.app.cli import build_parser, config_path, run_headless
from milkconsole.config import load_config, with_sections_of
from milkconsole.errors import run_reporting_errors
from milkconsole.logging_setup import setup_logging


def _add_commands(sub: Any, common: Callable[..., None]) -> None:
    """The console, the demo and the simulators, added to the core's parser."""
    from simulators.cli import add_simulate_arguments

    p = sub.add_parser("console", help="open the console on the configured parlour (default)")
    common(p)
    p.add_argument("--theme", choices=("dark", "light"), default="dark")

    p = sub.add_parser("demo", help="the console on a simulated 24-stall parlour")
    common(p, config=False)
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

    p = sub.add_parser("simulate", help="run a simulated parlour for a config")
    p.add_argument("--verbose", "-v", action="store_true")
    add_simulate_arguments(p)


def parser() -> argparse.ArgumentParser:
    """The whole command line, the entry point's commands included."""
    return build_parser(_add_commands)


def _pdf_writer() -> Callable[[Any, Path], int]:
    from ui.report_pdf import write_report_pdf  # Qt only from here on

    return write_report_pdf


def _run(args: argparse.Namespace) -> int:
    done = run_headless(args, _pdf_writer)
    if done is not None:
        return done
    cmd = args.command or "console"
    if cmd == "simulate":
        from simulators.cli import run_simulate

        return run_simulate(args)
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
    return run_console(config_path(args), args.db, demo=False, theme=args.theme)


def _run_headless_demo(args: argparse.Namespace) -> int:
    from milkconsole.app.gateway import run_gateway
    from milkconsole.clock import ScaledClock
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
        simulated = SimulatedParlour(cfg, cows=args.cows, seed=1, time_scale=args.time_scale)
        database = open_database(db)
        try:
            herd = seed_demo_herd(database, simulated.scenario, start=clock.now())
        finally:
            database.close()
        print(
            f"demo parlour: {len(cfg.meters)} meters, {herd.animals} cows in the herd list "
            f"(treated: {', '.join(herd.treated)}; fresh: {', '.join(herd.fresh)}), "
            f"database {db}",
            flush=True,
        )
        with simulated:
            return run_gateway(cfg, db, clock=clock)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(verbose=getattr(args, "verbose", False))
    return run_reporting_errors(lambda: _run(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
