"""Meter to tile: how long what a simulated meter shows takes to appear on its stall tile.

Runs the whole demo console offscreen (24 stalls, real Modbus TCP and RTU meters, the real
pollers on QThreads, the bridge, the tiles), as tests/ui/test_ui_console.py does, with the cows
milking 30 times faster than real time. Again and again it takes a milking tile, waits until
its meter's registers hold a yield the tile does not show yet, and times until the tile shows at
least that much. Prints and writes `bench/results/tile_latency.json`:

- `meter_to_tile_ms`: p50 / p99 / max over the samples, and how many never arrived within
  `GIVE_UP_S`; target p99 <= 1000 ms. The demo polls every 0.5 s (`poll_interval_s` in the
  results): a new value can wait up to one poll before it is even read, so most of it is that.

The test only asserts that the yield reaches the tile; how fast is this figure.
Run: `QT_QPA_PLATFORM=offscreen .venv/bin/python bench/tile_latency.py` (`--quick`: 10 samples).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TIME_SCALE = 30.0
GIVE_UP_S = 10.0
TARGET_P99_MS = 1000.0


def milking_tiles(console: Any) -> list[Any]:
    """Tiles whose cow is being milked and whose meter shows some milk already."""
    return [
        tile
        for tile in console.window.stall_view.tiles.values()
        if tile.session_state == "milking" and (tile.yield_l or 0) > 0.3
    ]


def wait(app: Any, ok: Any, timeout_s: float) -> bool:
    deadline = time.perf_counter() + timeout_s
    while not ok():
        if time.perf_counter() > deadline:
            return False
        app.processEvents()
        time.sleep(0.002)
    return True


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 samples (smoke run)")
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    samples = 10 if args.quick else args.samples

    from bench.results_io import save
    from ui.app import ensure_app, open_demo_console

    app = ensure_app()
    console = open_demo_console(cows=40, time_scale=TIME_SCALE, seed=3, faults=None)
    latencies_ms: list[float] = []
    missed = 0
    try:
        console.window.resize(1600, 950)
        console.window.show()
        console.start()
        if not wait(app, lambda: bool(milking_tiles(console)), 60.0):
            print("no cow was being milked after 60 s", file=sys.stderr)
            return 1
        turn = 0
        while len(latencies_ms) + missed < samples:
            tiles = milking_tiles(console)
            if not tiles:
                wait(app, lambda: bool(milking_tiles(console)), 30.0)
                continue
            tile = tiles[turn % len(tiles)]
            turn += 1
            meter = console.simulator.meters[tile.meter_id]

            def ahead(m: Any = meter, t: Any = tile) -> bool:
                shown = m.reported("yield_l")
                return shown is not None and float(shown) > (t.yield_l or 0) + 1e-6

            # Time from a value the tile does not show yet, not from one it already shows.
            if not wait(app, ahead, 5.0):
                continue
            t0 = time.perf_counter()
            target = float(meter.reported("yield_l") or 0) - 1e-6
            if wait(app, lambda t=tile, y=target: (t.yield_l or 0) >= y, GIVE_UP_S):
                latencies_ms.append((time.perf_counter() - t0) * 1000.0)
            else:
                missed += 1
    finally:
        console.shutdown()

    figures = {
        "stalls": len(console.config.meters),
        "poll_interval_s": console.config.poll_interval_s,
        "time_scale": TIME_SCALE,
        "meter_to_tile_ms": {
            "n": len(latencies_ms),
            "p50": round(statistics.median(latencies_ms), 1) if latencies_ms else None,
            "p99": round(percentile(latencies_ms, 0.99), 1) if latencies_ms else None,
            "max": round(max(latencies_ms), 1) if latencies_ms else None,
            "missed": missed,
            "give_up_s": GIVE_UP_S,
        },
        "quick": args.quick,
        "qt_platform": os.environ.get("QT_QPA_PLATFORM"),
        "targets": {"meter_to_tile_p99_ms": TARGET_P99_MS},
    }
    path = save("tile_latency", figures)
    print(figures)
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
