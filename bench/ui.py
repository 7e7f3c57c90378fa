"""Console benchmark: 80 stalls updating at 2 Hz with live flow curves, through the real bridge.

Prints and writes `bench/results/ui.json`:

- `gui_busy_share`: CPU time of the GUI thread over wall time (`time.thread_time()`; the GUI
  thread does no I/O, so its busy time is its CPU time) while 80 meters publish a reading twice
  a second and a session update every 2 s, every tile repainting its curve. Target <= 0.25.
- `click_latency_ms`: a mouse click posted to a tile every 97 ms during that load, to the
  moment its handler runs (p50 / p99 / max). Target p99 <= 50 ms.
- `rss_growth_mb`: resident memory after 30 simulated minutes of milking (fed faster than real
  time: 20 simulated seconds per wall second) minus after the first simulated minute.
  Target <= 10 MB.
- `start_to_first_paint_s`: a fresh process, from before the first import to the first painted
  stall tile of an 80-stall console (QApplication, database, runtime, window). Target < 2 s.

Synthetic core events stand in for the pollers (the poller cost is not the GUI's); they are
published from a plain thread exactly as a poller does. Run: `QT_QPA_PLATFORM=offscreen
.venv/bin/python bench/ui.py` (add `--quick` for a short smoke run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

T_START = time.perf_counter()
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STALLS = 80
READ_HZ = 2.0
UPDATE_EVERY_S = 2.0
SESSION_S = 420.0  # one cow's milking, simulated seconds
GAP_S = 60.0  # empty stall between cows


def bench_config(stalls: int, workdir: Path) -> Path:
    """An 80-stall parlour whose gateways do not answer (the pollers idle in back-off)."""
    lines = [
        "[parlour]",
        'name = "Bench 80"',
        'farm_code = "BENCH"',
        "poll_interval_s = 0.5",
        'layout = "herringbone"',
        "",
    ]
    for g in range(math.ceil(stalls / 8)):
        lines += ["[[bus]]", f'id = "tcp-{g + 1}"', 'transport = "tcp"', 'host = "127.0.0.1"']
        lines += [f"port = {1 + g}", "timeout_s = 0.2", ""]
    for s in range(1, stalls + 1):
        g, unit = divmod(s - 1, 8)
        lines += ["[[meter]]", f'id = "M{s:02d}"', f'bus = "tcp-{g + 1}"', f"unit = {unit + 1}"]
        lines += ['profile = "delaval-mm27bc"', f"stall = {s}", ""]
    path = workdir / "bench.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class SyntheticParlour:
    """Core events for `stalls` meters as their pollers would publish them, by simulated time."""

    def __init__(self, stalls: int) -> None:
        self.stalls = stalls
        self.t0 = datetime.now(UTC)
        self.sessions: dict[int, Any] = {}
        self.counter = 0

    def flow(self, t_s: float) -> float:
        if t_s < 40:
            return 4.0 * t_s / 40
        if t_s < 260:
            return 4.0
        return max(0.0, 4.0 * (SESSION_S - t_s) / (SESSION_S - 260))

    def events(self, sim_s: float, tick: int) -> list[object]:
        from milkconsole.meters.events import (
            ReadingTaken,
            SessionCompleted,
            SessionSnapshot,
            SessionStarted,
            SessionUpdated,
        )
        from milkconsole.meters.readings import Reading

        out: list[object] = []
        now = self.t0 + timedelta(seconds=sim_s)
        mono = time.monotonic()
        period = SESSION_S + GAP_S
        for stall in range(1, self.stalls + 1):
            meter = f"M{stall:02d}"
            local = (sim_s + stall * 7.3) % period
            cycle = int((sim_s + stall * 7.3) // period)
            key = f"BENCH-S{stall}-{cycle}"
            current = self.sessions.get(stall)
            if local >= SESSION_S:
                if current is not None and current.key == key:
                    done = SessionSnapshot(
                        key=key,
                        meter_id=meter,
                        stall=stall,
                        started_at=current.started_at,
                        state="completed",
                        ended_at=now,
                        yield_l=current.yield_l,
                        duration_s=SESSION_S,
                    )
                    out.append(SessionCompleted(done))
                    self.sessions.pop(stall)
                continue
            y = sum(self.flow(t) for t in range(int(local))) / 60.0
            f = self.flow(local)
            if current is None or current.key != key:
                current = SessionSnapshot(
                    key=key,
                    meter_id=meter,
                    stall=stall,
                    started_at=now,
                    rfid=f"9820000000{stall:05d}",
                )
                out.append(SessionStarted(current))
            snap = SessionSnapshot(
                key=key,
                meter_id=meter,
                stall=stall,
                started_at=current.started_at,
                rfid=current.rfid,
                yield_l=y,
                meter_yield_l=y,
                flow_l_min=f,
                duration_s=local,
            )
            self.sessions[stall] = snap
            out.append(
                ReadingTaken(
                    Reading(meter, stall, mono, now, yield_l=y, flow_l_min=f), session_key=key
                )
            )
            if tick % int(UPDATE_EVERY_S * READ_HZ) == 0:
                out.append(SessionUpdated(snap))
        return out


def rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss / 1e6)


def pump(app: Any, seconds: float) -> None:
    """Run the real event loop for `seconds` (so it blocks, as in the console, when idle)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(max(1, int(seconds * 1000)), loop.quit)
    loop.exec()


def first_paint_child() -> None:
    """Child process: time from before the first import to the first painted tile."""
    from ui.app import Console, ensure_app

    app = ensure_app()
    work = Path(tempfile.mkdtemp(prefix="milkconsole-bench-"))
    from milkconsole.config import load_config

    console = Console(load_config(bench_config(STALLS, work)), work / "bench.sqlite")
    console.window.resize(1920, 1080)
    console.window.show()
    tile = console.window.stall_view.tiles[STALLS]
    while tile.paint_count == 0:
        app.processEvents()
    elapsed = time.perf_counter() - T_START
    console.start()
    pump(app, 0.2)
    console.shutdown()
    print(json.dumps({"start_to_first_paint_s": elapsed}))


def measure_first_paint(runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, __file__, "--first-paint-child"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env={**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")},
        )
        if proc.returncode != 0:
            print(f"first-paint run failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
        out.append(float(json.loads(line)["start_to_first_paint_s"]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (smoke test)")
    parser.add_argument("--first-paint-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ui.json")
    args = parser.parse_args()
    if args.first_paint_child:
        first_paint_child()
        return 0

    from PySide6.QtCore import QEvent, QPointF, Qt, QTimer
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    from milkconsole.config import load_config
    from milkconsole.store.db import open_database
    from ui.app import ensure_app
    from ui.bridge import EventBridge
    from ui.main_window import MainWindow
    from ui.theme import DARK, apply_theme

    load_s = 8.0 if args.quick else 30.0
    memory_sim_s = 300.0 if args.quick else 1800.0
    app = ensure_app()
    apply_theme(app, DARK)
    work = Path(tempfile.mkdtemp(prefix="milkconsole-bench-"))
    config = load_config(bench_config(STALLS, work))
    db = open_database(work / "bench.sqlite")
    bridge = EventBridge()
    window = MainWindow(config, bridge, db, theme=DARK)
    window.resize(1920, 1080)
    window.show()
    window.start()
    pump(app, 1.0)
    parlour = SyntheticParlour(STALLS)

    # -- busy share and click latency at real time ------------------------------------------
    latencies: list[float] = []
    posted: dict[str, float] = {}
    target = window.stall_view.tiles[41]
    window.stall_view.tile_activated.disconnect()

    def on_activated(_stall: int) -> None:
        if "t" in posted:
            latencies.append((time.perf_counter() - posted.pop("t")) * 1000.0)

    window.stall_view.tile_activated.connect(on_activated)

    def click() -> None:
        pos = QPointF(target.width() / 2, target.height() / 2)
        gpos = QPointF(target.mapToGlobal(pos.toPoint()))
        posted["t"] = time.perf_counter()
        for kind in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease):
            QApplication.postEvent(
                target,
                QMouseEvent(
                    kind,
                    pos,
                    gpos,
                    Qt.MouseButton.LeftButton,
                    Qt.MouseButton.LeftButton
                    if kind == QEvent.Type.MouseButtonPress
                    else Qt.MouseButton.NoButton,
                    Qt.KeyboardModifier.NoModifier,
                ),
            )

    clicker = QTimer()
    clicker.timeout.connect(click)

    stop = threading.Event()
    sim_clock = {"s": 0.0}

    def feed(speed: float, until_sim_s: float) -> None:
        tick = 0
        period = 1.0 / READ_HZ
        next_t = time.monotonic()
        while not stop.is_set() and sim_clock["s"] < until_sim_s:
            for event in parlour.events(sim_clock["s"], tick):
                bridge.publish(event)
            tick += 1
            sim_clock["s"] += period
            next_t += period / speed
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    paints0 = sum(t.paint_count for t in window.stall_view.tiles.values())
    feeder = threading.Thread(target=feed, args=(1.0, load_s + 5), daemon=True)
    feeder.start()
    pump(app, 2.0)  # warm up: every tile has a session and a curve
    t_load = time.perf_counter()
    cpu_load = time.thread_time()  # CPU time of this (the GUI) thread
    clicker.start(97)
    pump(app, load_s)
    clicker.stop()
    wall = time.perf_counter() - t_load
    busy_share = (time.thread_time() - cpu_load) / wall
    paints = sum(t.paint_count for t in window.stall_view.tiles.values()) - paints0
    stop.set()
    feeder.join()
    pump(app, 0.5)

    # -- memory over 30 simulated minutes, fed 20x faster than real time ---------------------
    stop.clear()
    sim_clock["s"] = 0.0
    parlour = SyntheticParlour(STALLS)
    speed = 20.0
    feeder = threading.Thread(target=feed, args=(speed, memory_sim_s), daemon=True)
    feeder.start()
    while sim_clock["s"] < 60.0:
        pump(app, 0.1)
    rss_start = rss_mb()
    while feeder.is_alive():
        pump(app, 0.2)
    pump(app, 1.0)
    rss_end = rss_mb()

    lat = sorted(latencies)
    p99 = lat[min(len(lat) - 1, math.ceil(0.99 * len(lat)) - 1)] if lat else float("nan")
    first_paint = measure_first_paint(1 if args.quick else 3)
    results = {
        "stalls": STALLS,
        "readings_hz_per_stall": READ_HZ,
        "load_wall_s": round(wall, 2),
        "gui_busy_share": round(busy_share, 4),
        "tile_paints_per_s": round(paints / wall, 1),
        "click_latency_ms": {
            "n": len(lat),
            "p50": round(statistics.median(lat), 2) if lat else None,
            "p99": round(p99, 2),
            "max": round(lat[-1], 2) if lat else None,
        },
        "rss_growth_mb": round(rss_end - rss_start, 2),
        "rss_mb": {"after_1_sim_min": round(rss_start, 1), "after_sim": round(rss_end, 1)},
        "memory_sim_minutes": memory_sim_s / 60.0,
        "start_to_first_paint_s": {
            "runs": [round(x, 3) for x in first_paint],
            "median": round(statistics.median(first_paint), 3) if first_paint else None,
        },
        "bridge_dropped_events": bridge.dropped,
        "quick": args.quick,
        "qt_platform": os.environ.get("QT_QPA_PLATFORM"),
        "cpu_count": os.cpu_count(),
        "targets": {
            "gui_busy_share": 0.25,
            "click_latency_p99_ms": 50,
            "rss_growth_mb": 10,
            "start_to_first_paint_s": 2.0,
        },
    }
    window.refresher.stop()
    window.tasks.wait_for_done(5)
    db.close()
    print(json.dumps(results, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
