"""Live view on the farm network: 20 phones' live pages at 80 stalls polled at 2 Hz.

Runs the real console (window, bridge, pollers on QThreads) against 80 simulated Modbus TCP
meters (ten gateways of eight, simulator in its own process, cows milking), twice for the same
wall time: once without extra load, once with each load in `--loads` (default: the live view,
with 20 Server-Sent-Events clients in another process, as 20 phones with the Stalls page open).
Prints and writes `bench/results/lan.json`:

- `gui_busy_share`: CPU time of the GUI thread over wall time, each run; target: the loaded run
  within 10 % of the baseline.
- `poll_cycle_ms`: one pass over a gateway's eight meters (PollCycleCompleted), p50 / p95;
  target: the same 10 %.
- `update_latency_ms` at the clients: from the poller's reading (`read_at`) to the moment a
  client has parsed the message carrying it, p50 / p95 / max; target p95 <= 1000 ms.

Another load (the MQTT publisher) is added to `LOADS`: a function that starts it for a running
console and returns (figures function, stop function); `--loads web,mqtt` then runs them
together in the loaded run.

Run: `QT_QPA_PLATFORM=offscreen .venv/bin/python bench/lan.py` (`--quick` for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STALLS = 80
PER_GATEWAY = 8
POLL_S = 0.5  # 2 Hz
CLIENTS = 20
ROUNDS = 2
TIME_SCALE = 5.0  # cows milk five times as fast: every stall busy, values always moving

Load = Callable[[Any, Path, float], tuple[Callable[[], dict[str, Any]], Callable[[], None]]]


def bench_config(work: Path) -> Path:
    from simulators.demo import _free_tcp_ports

    gateways = math.ceil(STALLS / PER_GATEWAY)
    ports = _free_tcp_ports(gateways, "127.0.0.1")
    lines = [
        "[parlour]",
        'name = "LAN bench 80"',
        'farm_code = "BENCH"',
        f"poll_interval_s = {POLL_S}",
        "[tracking]",
        "min_duration_s = 5",
        "comm_timeout_s = 10",
        f"sample_interval_s = {POLL_S}",
        "end_after_s = 2",
    ]
    for g, port in enumerate(ports, start=1):
        lines += ["[[bus]]", f'id = "tcp-{g}"', 'transport = "tcp"', 'host = "127.0.0.1"']
        lines += [f"port = {port}", "timeout_s = 0.3"]
    for s in range(1, STALLS + 1):
        g, unit = divmod(s - 1, PER_GATEWAY)
        profile = ("delaval-mm27bc", "gea", "afimilk")[s % 3]
        lines += ["[[meter]]", f'id = "M{s:02d}"', f'bus = "tcp-{g + 1}"', f"unit = {unit + 1}"]
        lines += [f'profile = "{profile}"', f"stall = {s}"]
    path = work / "base.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def ms(values: list[float]) -> dict[str, Any]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 1)

    return {
        "n": len(values),
        "p50": r(pct(values, 0.5)),
        "p95": r(pct(values, 0.95)),
        "max": r(max(values) if values else None),
    }


# -- loads ------------------------------------------------------------------------------------


def web_load(
    console: Any, work: Path, seconds: float
) -> tuple[Callable[[], dict], Callable[[], None]]:
    """20 live pages in another process (SSE clients), for `seconds`."""
    from milkconsole.grants import Grant
    from milkconsole.supervision.users import UserStore

    web = console.runtime.web
    assert web is not None and web.certificate is not None
    if not UserStore(console.db).has_supervisor():
        UserStore(console.db).add("Bench", "supervisor", "1234", by=None)
    issued, _ = web.issue_token(Grant("Bench", "supervisor"), "bench")
    out = work / "clients.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--clients-child",
            json.dumps(
                {
                    "port": web.port,
                    "token": issued.secret,
                    "cafile": str(web.certificate.cert_path),
                    "clients": CLIENTS,
                    "seconds": seconds,
                    "out": str(out),
                }
            ),
        ],
        cwd=ROOT,
    )

    def figures() -> dict[str, Any]:
        proc.wait(seconds + 60)
        data = json.loads(out.read_text())
        data["connected_at_end"] = web.status.clients
        return data

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)

    return figures, stop


def _mqtt_load(console: Any, work: Path, seconds: float) -> tuple[Any, Any]:
    from bench.mqtt_load import mqtt_load

    return mqtt_load(console, work, seconds)


LOADS: dict[str, Load] = {"web": web_load, "mqtt": _mqtt_load}


# -- the SSE clients (child process) ----------------------------------------------------------


async def _client(cfg: dict[str, Any], ctx: ssl.SSLContext, until: float, sink: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", cfg["port"], ssl=ctx)
    writer.write(
        (
            f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{cfg['port']}\r\n"
            f"Authorization: Bearer {cfg['token']}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        sink["refused"] += 1
        writer.close()
        return
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    sink["connected"] += 1
    buf = b""
    try:
        while time.time() < until:
            size_line = await asyncio.wait_for(reader.readline(), until - time.time() + 1)
            size = int(size_line.strip() or b"0", 16)
            if size == 0:
                break
            buf += (await reader.readexactly(size + 2))[:-2]
            while b"\n\n" in buf:
                msg, buf = buf.split(b"\n\n", 1)
                now = time.time()
                event, data = "", b""
                for line in msg.split(b"\n"):
                    if line.startswith(b"event:"):
                        event = line[6:].strip().decode()
                    elif line.startswith(b"data:"):
                        data += line[5:].strip()
                sink["messages"] += 1
                if event == "stalls":
                    for s in json.loads(data)["stalls"]:
                        if s.get("read_at"):
                            sink["latency"].append(now - s["read_at"])
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def clients_child(spec: str) -> None:
    cfg = json.loads(spec)
    ctx = ssl.create_default_context(cafile=cfg["cafile"])
    sink: dict[str, Any] = {"connected": 0, "refused": 0, "messages": 0, "latency": []}
    until = time.time() + cfg["seconds"]

    async def main() -> None:
        await asyncio.gather(
            *(_client(cfg, ctx, until, sink) for _ in range(cfg["clients"])),
            return_exceptions=True,
        )

    cpu0 = time.process_time()
    asyncio.run(main())
    figures = {
        "clients": cfg["clients"],
        "connected": sink["connected"],
        "refused": sink["refused"],
        "messages": sink["messages"],
        "update_latency_ms": ms(sink["latency"]),
        "clients_cpu_share": round((time.process_time() - cpu0) / cfg["seconds"], 4),
    }
    Path(cfg["out"]).write_text(json.dumps(figures), encoding="utf-8")


# -- one run ------------------------------------------------------------------------------------


def pump(seconds: float) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(max(1, int(seconds * 1000)), loop.quit)
    loop.exec()


def run(config_path: Path, work: Path, loads: list[str], warm_s: float, window_s: float) -> dict:
    import psutil

    from milkconsole.config import load_config
    from milkconsole.meters.events import PollCycleCompleted
    from ui.app import Console, ensure_app

    ensure_app()
    db_path = work / f"run-{'-'.join(loads) or 'base'}.sqlite"
    console = Console(load_config(config_path), db_path)
    cycles: list[float] = []
    recording = threading.Event()

    def on_event(e: object) -> None:
        if recording.is_set() and isinstance(e, PollCycleCompleted):
            cycles.append(e.duration_s)

    console.runtime.add_listener(on_event)
    console.window.resize(1920, 1080)
    console.window.show()
    console.start()
    started = []
    try:
        pump(warm_s)
        for name in loads:
            started.append((name, *LOADS[name](console, work, window_s + 2.0)))
        pump(1.0)  # the clients connect
        proc = psutil.Process()
        recording.set()
        t0, cpu0, proc0 = time.perf_counter(), time.thread_time(), proc.cpu_times()
        pump(window_s)
        wall = time.perf_counter() - t0
        gui = (time.thread_time() - cpu0) / wall
        p1 = proc.cpu_times()
        recording.clear()
        figures: dict[str, Any] = {
            "window_s": round(wall, 1),
            "gui_busy_share": round(gui, 4),
            "console_process_cpu_share": round(
                (p1.user + p1.system - proc0.user - proc0.system) / wall, 4
            ),
            "poll_cycle_ms": ms(cycles),
            "bridge_dropped_events": console.bridge.dropped,
        }
        for name, get, _stop in started:
            figures[name] = get()
        return figures
    finally:
        for _name, _get, stop in started:
            stop()
        console.shutdown()


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs of one kind together: mean GUI share; cycle and latency percentiles over all
    samples (kept per run as p50/p95, so the mean of those)."""

    def mean(xs: list[float | None]) -> float | None:
        got = [x for x in xs if x is not None]
        return round(sum(got) / len(got), 4) if got else None

    out: dict[str, Any] = {
        "gui_busy_share": mean([r["gui_busy_share"] for r in runs]),
        "console_process_cpu_share": mean([r["console_process_cpu_share"] for r in runs]),
        "poll_cycle_ms": {
            k: mean([r["poll_cycle_ms"][k] for r in runs]) for k in ("p50", "p95", "max")
        },
    }
    webs = [r["web"] for r in runs if "web" in r]
    if webs:
        out["update_latency_ms"] = {
            "p50": mean([w["update_latency_ms"]["p50"] for w in webs]),
            "p95": mean([w["update_latency_ms"]["p95"] for w in webs]),
            "max": max((w["update_latency_ms"]["max"] or 0) for w in webs),
            "n": sum(w["update_latency_ms"]["n"] for w in webs),
        }
        out["clients_connected"] = min(w["connected"] for w in webs)
    return out


def within(loaded: float | None, base: float | None, share: float = 0.10) -> bool | None:
    if loaded is None or base is None or base == 0:
        return None
    return loaded <= base * (1 + share)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (smoke test)")
    parser.add_argument("--loads", default="web", help="comma-separated loads (known: web)")
    parser.add_argument("--clients-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients_child:
        clients_child(args.clients_child)
        return 0
    from bench.results_io import save

    loads = [n for n in args.loads.split(",") if n]
    unknown = [n for n in loads if n not in LOADS]
    if unknown:
        parser.error(f"unknown load(s) {unknown} (known: {', '.join(LOADS)})")
    warm_s, window_s = (8.0, 10.0) if args.quick else (10.0, 30.0)
    prewarm_s = 20.0 if args.quick else 60.0
    with tempfile.TemporaryDirectory(prefix="milkconsole-lan-") as tmp:
        work = Path(tmp)
        base_cfg = bench_config(work)
        web_cfg = base_cfg.with_name("web.toml")
        web_cfg.write_text(
            base_cfg.read_text() + '[web]\nhost = "127.0.0.1"\nport = 0\n', encoding="utf-8"
        )
        sim = subprocess.Popen(
            [
                *(sys.executable, "-m", "simulators.cli", "--config", str(base_cfg)),
                *("--cows", str(STALLS * 40), "--time-scale", str(TIME_SCALE)),
                *("--linger-s", "600"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        try:
            assert sim.stdout is not None
            for _ in range(STALLS):  # one line per meter once it listens
                sim.stdout.readline()
            # The simulated parlour fills up for a while (more cows milking, more events):
            # let it, then run base and loaded in the order A B B A so what drift is left
            # weighs on both alike.
            time.sleep(prewarm_s)
            rounds = []
            for i in range(ROUNDS):
                loaded_cfg = web_cfg if "web" in loads else base_cfg
                if i % 2 == 0:
                    base = run(base_cfg, work, [], warm_s, window_s)
                    with_loads = run(loaded_cfg, work, loads, warm_s, window_s)
                else:
                    with_loads = run(loaded_cfg, work, loads, warm_s, window_s)
                    base = run(base_cfg, work, [], warm_s, window_s)
                rounds.append((base, with_loads))
        finally:
            sim.terminate()
            sim.wait(10)
    baseline = combine([b for b, _ in rounds])
    loaded = combine([w for _, w in rounds])
    lat = loaded.get("update_latency_ms", {})
    figures = {
        "stalls": STALLS,
        "poll_hz": 1 / POLL_S,
        "loads": loads,
        "clients": CLIENTS if "web" in loads else 0,
        "quick": args.quick,
        "rounds": [{"baseline": b, "loaded": w} for b, w in rounds],
        "baseline": baseline,
        "loaded": loaded,
        "gui_busy_share_ratio": round(loaded["gui_busy_share"] / baseline["gui_busy_share"], 3)
        if baseline["gui_busy_share"]
        else None,
        "poll_cycle_p50_ratio": round(
            loaded["poll_cycle_ms"]["p50"] / baseline["poll_cycle_ms"]["p50"], 3
        )
        if baseline["poll_cycle_ms"]["p50"]
        else None,
        "checks": {
            "gui_busy_within_10pct": within(loaded["gui_busy_share"], baseline["gui_busy_share"]),
            "poll_cycle_p50_within_10pct": within(
                loaded["poll_cycle_ms"]["p50"], baseline["poll_cycle_ms"]["p50"]
            ),
            "poll_cycle_p95_within_10pct": within(
                loaded["poll_cycle_ms"]["p95"], baseline["poll_cycle_ms"]["p95"]
            ),
            "update_latency_p95_le_1s": (lat.get("p95") or math.inf) <= 1000.0 if lat else None,
        },
        "targets": {"within_share": 0.10, "update_latency_p95_ms": 1000},
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(figures, indent=2))
    path = save("lan", figures)
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
