"""`milkconsole simulate`: serve a parlour config's meters from simulators until stopped.

`add_simulate_arguments` and `run_simulate` plug into the main CLI; `python -m simulators.cli`
runs the same thing on its own. Config errors propagate as `ConfigError` (exit 2 in the CLI).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from milkconsole.config import load_config
from milkconsole.errors import ConfigError
from simulators.demo import SimulatedParlour, make_demo_config
from simulators.parlour import FaultPlan

__all__ = [
    "SimulatedParlour",
    "add_simulate_arguments",
    "main",
    "make_demo_config",
    "run_simulate",
]


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """The `simulate` options: --config, --cows, --time-scale, --faults, --seed, ..."""
    parser.add_argument("--config", type=Path, required=True, help="parlour config file")
    parser.add_argument(
        "--cows", type=int, default=None, help="cows to milk (default: two per stall)"
    )
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="simulated seconds per wall second"
    )
    parser.add_argument(
        "--faults", action="store_true", help="inject meter faults (timeouts, CRC, NaN, reboots)"
    )
    parser.add_argument("--seed", type=int, default=1, help="scenario seed (same seed, same day)")
    parser.add_argument(
        "--wire-time", action="store_true", help="RTU replies take their real time on the line"
    )
    parser.add_argument(
        "--linger-s",
        type=float,
        default=5.0,
        help="keep serving this long after the last cow so a console sees her finish",
    )


def run_simulate(args: argparse.Namespace) -> int:
    """Run the simulated parlour of `args.config` until SIGINT/SIGTERM or every cow is milked
    (then `args.linger_s` more seconds). Prints one line per meter first. Returns 0."""
    config = load_config(args.config)
    cows = args.cows if args.cows is not None else 2 * len(config.meters)
    if cows < 0:
        raise ConfigError("--cows", "cows", f"must be 0 or more, not {cows}")
    if not args.time_scale > 0:
        raise ConfigError("--time-scale", "time_scale", f"must be above 0, not {args.time_scale}")
    faults = FaultPlan.typical(seed=args.seed) if args.faults else None
    parlour = SimulatedParlour(
        config,
        cows=cows,
        seed=args.seed,
        time_scale=args.time_scale,
        faults=faults,
        wire_time=args.wire_time,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _on_signal)
    try:
        with parlour:
            for line in parlour.describe():
                print(line, flush=True)
            print(
                f"simulating {cows} cows at {args.time_scale:g}x"
                f"{' with faults' if faults else ''}; Ctrl-C stops",
                flush=True,
            )
            while not stop.is_set():
                if parlour.scenario.wait_done(0.2):
                    print(f"all {cows} cows milked", flush=True)
                    stop.wait(max(0.0, args.linger_s))
                    break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m simulators.cli --config parlour.toml ...` (exit 2 on a config error)."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.cli", description="Serve a parlour's meters from simulators."
    )
    add_simulate_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_simulate(args)
    except ConfigError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
