"""Live view and MQTT on the farm network: do 20 phones and a broker slow the console?

The real console (window, bridge, pollers on QThreads) polls 80 simulated Modbus TCP meters (ten
gateways of eight) at 2 Hz. The meters are driven by `simulators/steady.py` in a process of its
own: every stall milks cow after cow on the same fixed cycle (120 s cluster on, 8 s change-over,
the stalls' cycles spread evenly), so 75 stalls are milking at every moment and a cow finishes
every 1.6 s, in every run alike. The only difference between a base run and a loaded run is the
load under test (`--loads`, default `web,mqtt`):

- `web`: the live view on, with 20 Server-Sent-Events clients in another process, as 20 phones
  with the Stalls page open;
- `mqtt`: the MQTT publisher on (TLS, password, QoS 1) to a real mosquitto, with a subscriber
  in another process (`bench/mqtt_load.py`);
- `none`: nothing (an A/A test: the spread this machine gives when there is no effect at all).

Each run is a fresh console process with a fresh database (nothing carries over from one run to
the next). Base and loaded runs alternate A B B A A B B A ..., `--rounds` pairs, so a machine
that gets busier or quieter weighs on both alike, and each round's loaded run is compared with
its own base run. Per run, over the measured window:

- `gui_busy_share`: CPU time of the GUI thread (`time.thread_time()` on it) over wall time;
- `poll_cycle_ms`: the pollers' own `PollCycleCompleted.duration_s` (one pass over a gateway's
  eight meters), p50 / p95;
- `update_latency_ms` at the clients: from the meter reading's time (`read_at`, the poller's
  wall clock at the read) to the moment a client has parsed the first message carrying that
  reading, p50 / p95 / max.

Judged over the rounds (`bench/compare.py`): the loaded/base ratio of the GUI share and of the
poll-cycle p50 and p95 (target: at most 1.10), and the loaded runs' latency p95 (target: at most
1000 ms). Each figure gets the median over the rounds, a 90 % interval for it, and a verdict:
pass or fail only when the whole interval is on one side of the target, otherwise inconclusive
(the machine's noise is larger than the margin). The output also says when the spread is larger
than the effect being judged. Prints a table and writes `bench/results/lan.json` (another
choice of loads: `lan-<loads>.json`).

To read a verdict, each run also records what the GUI thread did (tile paints per second: the
same work in both kinds of run), how it was scheduled (user / system share, voluntary and
involuntary context switches), every thread's CPU share, how busy the whole machine was, and
the CPU the stand-ins for the phones took (they run on this machine; phones would not).

Run: `QT_QPA_PLATFORM=offscreen .venv/bin/python bench/lan.py` (8 rounds, about 16 minutes);
`--quick` is a smoke run (2 short rounds: too few for a verdict). On a shared machine 8 rounds
may leave a verdict inconclusive: `--append` runs more rounds and judges them together with
those already in the results file (made with the same settings), so the evidence accumulates
until the interval clears the target or the effect is shown to sit right at it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import ssl
import statistics
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

from bench.compare import Judgement, judge_at_most, relative_spread  # noqa: E402
from bench.results_io import RESULTS  # noqa: E402
from simulators.steady import SteadyCycle  # noqa: E402

STALLS = 80
PER_GATEWAY = 8
POLL_S = 0.5  # 2 Hz
CLIENTS = 20
CYCLE = SteadyCycle()  # 120 s milking + 8 s change-over, every stall
ROUNDS = 8
QUICK_ROUNDS = 2
WITHIN = 0.10
LATENCY_P95_MS = 1000.0
# (warm-up after start, settle after the loads start, measured window), seconds
TIMES = (10.0, 5.0, 30.0)
QUICK_TIMES = (6.0, 5.0, 10.0)

Figures = Callable[[tuple[float, float]], dict[str, Any]]
Load = Callable[[Any, Path, float], tuple[Figures, Callable[[], None]]]


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


# -- loads (in the measured console's process: only what must be there) -------------------------


def web_load(console: Any, work: Path, seconds: float) -> tuple[Figures, Callable[[], None]]:
    """20 live pages in another process (SSE clients over TLS) for `seconds`."""
    from milkconsole.grants import Grant
    from milkconsole.supervision.users import UserStore

    web = console.runtime.web
    assert web is not None and web.certificate is not None, "the loaded config has no [web]"
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
                    "until": time.time() + seconds,
                    "out": str(out),
                }
            ),
        ],
        cwd=ROOT,
    )

    def figures(window: tuple[float, float]) -> dict[str, Any]:
        proc.wait(seconds + 60)
        data = json.loads(out.read_text(encoding="utf-8"))
        w0, w1 = window
        latencies = [lat for recv, lat in data.pop("samples") if w0 <= recv <= w1]
        data["update_latency_ms"] = ms(latencies)
        return data

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)

    return figures, stop


def mqtt_load(console: Any, work: Path, seconds: float) -> tuple[Figures, Callable[[], None]]:
    """The console's milkings published to a real mosquitto (see `bench/mqtt_load.py`)."""
    from bench.mqtt_load import mqtt_load as start

    return start(console, work, seconds)


def no_load(console: Any, work: Path, seconds: float) -> tuple[Figures, Callable[[], None]]:
    """Nothing: `--loads none` compares base runs with base runs (an A/A test), which shows
    the spread this machine gives when there is no effect at all."""
    return (lambda window: {}), (lambda: None)


# Started in this order (the broker takes a second or two; the pages then connect last and
# their end time is planned from their own start).
LOADS: dict[str, Load] = {"mqtt": mqtt_load, "web": web_load, "none": no_load}


# -- the SSE clients (their own process) --------------------------------------------------------


async def _client(cfg: dict[str, Any], ctx: ssl.SSLContext, sink: dict[str, Any]) -> None:
    until = cfg["until"]
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
    # The reading each stall's figures came from, as this page last saw it: a message counts
    # toward the latency only for a stall whose reading is new to this page.
    seen: dict[int, float] = {}
    samples: list[list[float]] = sink["samples"]
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
                event, data = "", b""
                for line in msg.split(b"\n"):
                    if line.startswith(b"event:"):
                        event = line[6:].strip().decode()
                    elif line.startswith(b"data:"):
                        data += line[5:].strip()
                sink["messages"] += 1
                if event not in ("stalls", "snapshot"):
                    continue
                now = time.time()
                for s in json.loads(data)["stalls"]:
                    read_at = s.get("read_at")
                    if read_at is None or seen.get(s["stall"]) == read_at:
                        continue
                    seen[s["stall"]] = read_at
                    if event == "stalls":  # the snapshot at connect is not an update
                        samples.append([round(now, 4), round(now - read_at, 4)])
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def clients_child(spec: str) -> None:
    cfg = json.loads(spec)
    ctx = ssl.create_default_context(cafile=cfg["cafile"])
    sink: dict[str, Any] = {"connected": 0, "refused": 0, "messages": 0, "samples": []}

    async def main() -> None:
        await asyncio.gather(
            *(_client(cfg, ctx, sink) for _ in range(cfg["clients"])), return_exceptions=True
        )

    t0, cpu0 = time.time(), time.process_time()
    asyncio.run(main())
    wall = max(1e-9, time.time() - t0)
    figures = {
        "clients": cfg["clients"],
        "connected": sink["connected"],
        "refused": sink["refused"],
        "messages": sink["messages"],
        "clients_cpu_share": round((time.process_time() - cpu0) / wall, 4),
        "samples": sink["samples"],
    }
    Path(cfg["out"]).write_text(json.dumps(figures), encoding="utf-8")


# -- one run (its own process) -----------------------------------------------------------------


def pump(seconds: float) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(max(1, int(seconds * 1000)), loop.quit)
    loop.exec()


def thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of each thread of this process so far, by OS thread id, with a name (the
    Python thread's, else the kernel's: Qt names its threads after their objectName)."""
    import psutil

    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    out = {}
    for t in psutil.Process().threads():
        name = names.get(t.id)
        if name is None:
            try:
                name = Path(f"/proc/self/task/{t.id}/comm").read_text().strip()
            except OSError:
                name = "?"
        out[t.id] = (name, t.user_time + t.system_time)
    return out


def thread_shares(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], wall: float
) -> dict[str, float]:
    """CPU share of each kind of thread over `wall` seconds (numbers stripped from names, so
    the ten pollers add up to one entry); the main thread is the GUI thread."""
    shares: dict[str, float] = {}
    main_id = threading.main_thread().native_id
    for tid, (name, cpu) in after.items():
        used = cpu - before.get(tid, (name, 0.0))[1]
        key = "GUI (main)" if tid == main_id else name.rstrip("0123456789-_ ").strip() or "?"
        shares[key] = shares.get(key, 0.0) + used / wall
    return {k: round(v, 4) for k, v in sorted(shares.items(), key=lambda kv: -kv[1]) if v >= 0.002}


def gui_thread_counters() -> dict[str, float]:
    """The GUI (main) thread's user and system CPU seconds and its context switches so far:
    voluntary ones are waits (for the interpreter's lock among them), involuntary ones the
    kernel taking the CPU away."""
    task = Path(f"/proc/self/task/{threading.main_thread().native_id}")
    out: dict[str, float] = {}
    try:
        fields = task.joinpath("stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        out["user_s"], out["system_s"] = int(fields[11]) / ticks, int(fields[12]) / ticks
        for line in task.joinpath("status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                out[key] = float(value)
    except (OSError, ValueError, IndexError):
        pass  # not Linux: the figures go without this detail
    return out


def gui_thread_detail(
    before: dict[str, float], after: dict[str, float], wall: float
) -> dict[str, float]:
    names = {
        "user_s": "user_share",
        "system_s": "system_share",
        "voluntary_ctxt_switches": "voluntary_switches_per_s",
        "nonvoluntary_ctxt_switches": "involuntary_switches_per_s",
    }
    return {
        names[k]: round((after[k] - before[k]) / wall, 4 if k.endswith("_s") else 1)
        for k in names
        if k in before and k in after
    }


def tile_paints(console: Any) -> int:
    return sum(t.paint_count for t in console.window.stall_view.tiles.values())


def machine_shares(before: Any, after: Any) -> dict[str, float]:
    """How busy the whole machine was over a window (every process, every CPU): the busy and
    the stolen (hypervisor) share of its CPU time."""
    total = sum(after) - sum(before)
    if total <= 0:
        return {}
    idle = (after.idle + after.iowait) - (before.idle + before.iowait)
    steal = getattr(after, "steal", 0.0) - getattr(before, "steal", 0.0)
    return {"busy": round(1 - idle / total, 3), "steal": round(steal / total, 3)}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """One console, started fresh; the loads in `spec["loads"]` from after the warm-up; the
    figures of the measured window."""
    import psutil

    from milkconsole.config import load_config
    from milkconsole.meters.events import PollCycleCompleted, ReadingTaken, SessionCompleted
    from ui.app import Console, ensure_app

    work = Path(spec["work"])
    loads: list[str] = spec["loads"]
    warm_s, settle_s, window_s = spec["warm_s"], spec["settle_s"], spec["window_s"]
    ensure_app()
    console = Console(load_config(Path(spec["config"])), work / "console.sqlite")
    cycles: list[float] = []
    counts = {"readings": 0, "sessions_completed": 0, "cycles_with_failures": 0}
    recording = threading.Event()

    # Poller threads; as cheap as can be (the same in base and loaded runs).
    def on_event(e: object) -> None:
        if not recording.is_set():
            return
        if isinstance(e, PollCycleCompleted):
            cycles.append(e.duration_s)
            if e.failures:
                counts["cycles_with_failures"] += 1
        elif isinstance(e, ReadingTaken):
            counts["readings"] += 1
        elif isinstance(e, SessionCompleted):
            counts["sessions_completed"] += 1

    console.runtime.add_listener(on_event)
    console.window.resize(1920, 1080)
    console.window.show()
    console.start()
    t_start = time.monotonic()
    started: list[tuple[str, Figures, Callable[[], None]]] = []
    try:
        pump(warm_s)
        for name in [n for n in LOADS if n in loads]:
            figures_fn, stop_fn = LOADS[name](console, work, settle_s + window_s + 2.0)
            started.append((name, figures_fn, stop_fn))
        # The window opens at the same moment of the console's life in both kinds of run,
        # however long the loads took to start: what the console shows grows for a while
        # after it starts (each tile's curve since it first saw the cow), and a later window
        # would be dearer for that alone. Meanwhile pages connect, the publisher its broker.
        pump(max(0.5, t_start + warm_s + settle_s - time.monotonic()))
        proc = psutil.Process()
        load_average = os.getloadavg()[0]
        recording.set()
        w0 = time.time()
        threads0, machine0, paints0 = thread_cpu(), psutil.cpu_times(), tile_paints(console)
        gui0 = gui_thread_counters()
        t0, cpu0, proc0 = time.perf_counter(), time.thread_time(), proc.cpu_times()
        pump(window_s)
        wall = time.perf_counter() - t0
        gui = (time.thread_time() - cpu0) / wall
        p1 = proc.cpu_times()
        gui1 = gui_thread_counters()
        threads1, machine1, paints1 = thread_cpu(), psutil.cpu_times(), tile_paints(console)
        w1 = time.time()
        recording.clear()
        clients_at_end = console.runtime.web.status.clients if console.runtime.web else None
        figures: dict[str, Any] = {
            "loads": loads,
            "window_s": round(wall, 2),
            "load_average_1min": round(load_average, 2),
            "gui_busy_share": round(gui, 4),
            "gui_thread": gui_thread_detail(gui0, gui1, wall),
            "console_process_cpu_share": round(
                (p1.user + p1.system - proc0.user - proc0.system) / wall, 4
            ),
            "thread_cpu_share": thread_shares(threads0, threads1, wall),
            # The same GUI work should cost the same: a busier share with as many paints is
            # the machine (or the interpreter's lock) making each paint dearer.
            "tile_paints_per_s": round((paints1 - paints0) / wall, 1),
            "machine": machine_shares(machine0, machine1),
            "poll_cycle_ms": ms(cycles),
            "cycles_with_failures": counts["cycles_with_failures"],
            "readings_per_s": round(counts["readings"] / wall, 1),
            "sessions_completed": counts["sessions_completed"],
            "bridge_dropped_events": console.bridge.dropped,
        }
        for name, figures_fn, _stop in started:
            figures[name] = figures_fn((w0, w1))
        if "web" in figures:
            figures["web"]["connected_at_window_end"] = clients_at_end
        return figures
    finally:
        for _name, _figures, stop_fn in started:
            stop_fn()
        console.shutdown()


def run_child(spec_json: str) -> None:
    spec = json.loads(spec_json)
    figures = measure(spec)
    Path(spec["out"]).write_text(json.dumps(figures), encoding="utf-8")


def run_once(
    kind: str, config: Path, work: Path, loads: list[str], times: tuple[float, float, float]
) -> dict[str, Any]:
    """One run in a fresh process; its figures. Raises with the run's log when it fails."""
    work.mkdir(parents=True)
    out, log = work / "figures.json", work / "run.log"
    warm_s, settle_s, window_s = times
    spec = {
        "config": str(config),
        "work": str(work),
        "loads": loads if kind == "loaded" else [],
        "warm_s": warm_s,
        "settle_s": settle_s,
        "window_s": window_s,
        "out": str(out),
    }
    with log.open("w", encoding="utf-8") as log_file:
        proc = subprocess.run(
            [sys.executable, __file__, "--run-child", json.dumps(spec)],
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            timeout=warm_s + settle_s + window_s + 180,
            check=False,
        )
    if proc.returncode != 0 or not out.exists():
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{kind} run failed (exit {proc.returncode}):\n{tail}")
    figures: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return figures


# -- judging the rounds ------------------------------------------------------------------------


def _ratio(loaded: float | None, base: float | None) -> float | None:
    if loaded is None or base is None or base <= 0:
        return None
    return loaded / base


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 4) if xs else None


def summarise(rounds: list[dict[str, Any]], loads: list[str]) -> dict[str, Any]:
    """Per figure: base and loaded medians and run-to-run spread, the judgement, and notes."""

    def series(kind: str, get: Callable[[dict[str, Any]], float | None]) -> list[float]:
        return [v for r in rounds if (v := get(r[kind])) is not None]

    def ratios(get: Callable[[dict[str, Any]], float | None]) -> list[float]:
        return [x for r in rounds if (x := _ratio(get(r["loaded"]), get(r["base"]))) is not None]

    compared: dict[str, Callable[[dict[str, Any]], float | None]] = {
        "gui_busy_share": lambda run: run["gui_busy_share"],
        "poll_cycle_p50_ms": lambda run: run["poll_cycle_ms"]["p50"],
        "poll_cycle_p95_ms": lambda run: run["poll_cycle_ms"]["p95"],
    }
    figures: dict[str, Any] = {}
    judgements: dict[str, Judgement] = {}
    for name, get in compared.items():
        base, loaded, rs = series("base", get), series("loaded", get), ratios(get)
        entry: dict[str, Any] = {
            "base_median": _median(base),
            "loaded_median": _median(loaded),
            "base_spread": _round(relative_spread(base)),
            "loaded_spread": _round(relative_spread(loaded)),
        }
        if rs:
            j = judge_at_most(rs, 1.0 + WITHIN, neutral=1.0)
            judgements[name] = j
            entry["loaded_over_base"] = j.to_json()
        figures[name] = entry
    if "web" in loads:
        p95s = series("loaded", lambda run: run["web"]["update_latency_ms"]["p95"])
        entry = {
            "loaded_median": _median(p95s),
            "loaded_spread": _round(relative_spread(p95s)),
            "p50_median": _median(series("loaded", lambda r: r["web"]["update_latency_ms"]["p50"])),
            "max": max(series("loaded", lambda r: r["web"]["update_latency_ms"]["max"]) or [0.0]),
            "samples": sum(r["loaded"]["web"]["update_latency_ms"]["n"] for r in rounds),
        }
        if p95s:
            j = judge_at_most(p95s, LATENCY_P95_MS)
            judgements["update_latency_p95_ms"] = j
            entry["judged"] = j.to_json()
        figures["update_latency_p95_ms"] = entry

    notes: list[str] = []
    for name, j in judgements.items():
        if j.verdict != "pass":
            notes.append(f"{name}: {j.verdict.upper()}: {j.reason}")
        if j.spread_exceeds_effect and name != "update_latency_p95_ms":
            notes.append(
                f"{name}: the spread (±{j.spread * 100:.1f} %) is larger than the effect being"
                f" judged ({j.effect * 100:+.1f} %): the loads' effect on it is not told apart"
                " from the machine's noise"
            )
    notes += _load_checks(rounds, loads)

    def both(get: Callable[[dict[str, Any]], float | None]) -> dict[str, float | None]:
        return {"base": _median(series("base", get)), "loaded": _median(series("loaded", get))}

    context: dict[str, Any] = {
        "tile_paints_per_s": both(lambda r: r["tile_paints_per_s"]),
        "gui_involuntary_switches_per_s": both(
            lambda r: r["gui_thread"].get("involuntary_switches_per_s")
        ),
        "gui_voluntary_switches_per_s": both(
            lambda r: r["gui_thread"].get("voluntary_switches_per_s")
        ),
        "console_process_cpu_share": both(lambda r: r["console_process_cpu_share"]),
        "machine_busy": both(lambda r: r["machine"].get("busy")),
        "load_average_1min": both(lambda r: r["load_average_1min"]),
    }
    if "web" in loads:
        context["clients_cpu_share"] = _median(
            series("loaded", lambda r: r["web"]["clients_cpu_share"])
        )
    if "mqtt" in loads:
        mq = [r["loaded"]["mqtt"] for r in rounds]
        context["mqtt"] = {
            "sessions_committed": sum(m["sessions_committed"] for m in mq),
            "sessions_received": sum(m["sessions_received"] for m in mq),
            "latency_commit_to_subscriber_p95_ms": _median(
                [
                    m["latency_commit_to_subscriber_ms"]["p95"]
                    for m in mq
                    if m["latency_commit_to_subscriber_ms"]["p95"] is not None
                ]
            ),
        }
    return {
        "context": context,
        "figures": figures,
        "verdicts": {name: j.verdict for name, j in judgements.items()},
        "notes": notes,
        "meter_load": {
            "base_readings_per_s": _median(series("base", lambda r: r["readings_per_s"])),
            "loaded_readings_per_s": _median(series("loaded", lambda r: r["readings_per_s"])),
            "base_sessions_completed": _median(
                series("base", lambda r: float(r["sessions_completed"]))
            ),
            "loaded_sessions_completed": _median(
                series("loaded", lambda r: float(r["sessions_completed"]))
            ),
        },
    }


def _load_checks(rounds: list[dict[str, Any]], loads: list[str]) -> list[str]:
    """Notes when a loaded run did not carry its whole load, or the meters' work differed."""
    notes = []
    for i, r in enumerate(rounds, start=1):
        run = r["loaded"]
        web = run.get("web")
        if "web" in loads and web is not None and web["connected"] < CLIENTS:
            notes.append(
                f"round {i}: only {web['connected']} of {CLIENTS} clients connected"
                f" ({web['refused']} refused): that loaded run carried less than the load"
            )
        mq = run.get("mqtt")
        if "mqtt" in loads and mq is not None:
            if mq["sessions_received"] < mq["sessions_committed"]:
                notes.append(
                    f"round {i}: the MQTT subscriber got {mq['sessions_received']} of"
                    f" {mq['sessions_committed']} sessions"
                )
            if mq["sessions_committed"] == 0:
                notes.append(f"round {i}: no session was published over MQTT")
        for kind in ("base", "loaded"):
            if r[kind]["cycles_with_failures"]:
                notes.append(
                    f"round {i} {kind}: {r[kind]['cycles_with_failures']} poll cycles had a"
                    " meter not answering in time (the machine was too busy to answer within"
                    " the 0.3 s timeout)"
                )
    return notes


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def print_table(doc: dict[str, Any]) -> None:
    figs = doc["figures"]
    print(
        f"\nLAN bench: {doc['stalls']} stalls at {doc['poll_hz']:g} Hz, steady milking"
        f" ({doc['meter_load']['milk_s']:g} s + {doc['meter_load']['gap_s']:g} s a cow,"
        f" {doc['meter_load']['milking_stalls']} stalls milking);"
        f" loads: {', '.join(doc['loads'])}; {doc['rounds']} rounds {doc['order']};"
        f" {doc['window_s']:g} s windows"
    )
    head = f"{'figure':<24}{'base':>10}{'loaded':>10}  {'loaded/base [90% interval]':<30}"
    print(head + f"{'target':>10}  verdict")
    for name in ("gui_busy_share", "poll_cycle_p50_ms", "poll_cycle_p95_ms"):
        f = figs[name]
        j = f.get("loaded_over_base")
        judged = f"{j['median']:.3f} [{j['low']:.3f}, {j['high']:.3f}]" if j else "-"
        print(
            f"{name:<24}{_fmt(f['base_median']):>10}{_fmt(f['loaded_median']):>10}  "
            f"{judged:<30}{f'<= {1 + WITHIN:.2f}':>10}  "
            f"{(j['verdict'] if j else 'n/a').upper()}"
        )
    lat = figs.get("update_latency_p95_ms")
    if lat:
        j = lat.get("judged")
        judged = f"[{j['low']:.0f}, {j['high']:.0f}] ms" if j else "-"
        print(
            f"{'update_latency_p95_ms':<24}{'-':>10}{_fmt(lat['loaded_median']):>10}  "
            f"{judged:<30}{f'<= {LATENCY_P95_MS:.0f}':>10}  "
            f"{(j['verdict'] if j else 'n/a').upper()}"
        )
    ml = doc["meter_load"]
    print(
        f"meter load, base vs loaded (medians): {ml['base_readings_per_s']} vs"
        f" {ml['loaded_readings_per_s']} readings/s, {ml['base_sessions_completed']} vs"
        f" {ml['loaded_sessions_completed']} cows finished per window"
    )
    print("base spread between rounds (max-min)/median: " + _spreads(figs, "base_spread"))
    ctx = doc["context"]
    print(
        "GUI thread, base vs loaded (medians):"
        f" {ctx['tile_paints_per_s']['base']} vs {ctx['tile_paints_per_s']['loaded']}"
        " tile paints/s,"
        f" {ctx['gui_involuntary_switches_per_s']['base']} vs"
        f" {ctx['gui_involuntary_switches_per_s']['loaded']} involuntary switches/s;"
        f" machine busy {ctx['machine_busy']['base']} vs {ctx['machine_busy']['loaded']};"
        f" console process CPU {ctx['console_process_cpu_share']['base']} vs"
        f" {ctx['console_process_cpu_share']['loaded']}"
    )
    if "clients_cpu_share" in ctx:
        print(f"the 20 page clients' process took {ctx['clients_cpu_share']} of a CPU")
    if "mqtt" in ctx:
        m = ctx["mqtt"]
        print(
            f"MQTT: {m['sessions_received']} of {m['sessions_committed']} sessions committed in"
            f" the windows reached the subscriber, p95 {m['latency_commit_to_subscriber_p95_ms']}"
            " ms after their commit (median over rounds)"
        )
    for note in doc["notes"]:
        print(f"NOTE {note}")


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _spreads(figs: dict[str, Any], key: str) -> str:
    parts = []
    for name, f in figs.items():
        if f.get(key) is not None:
            parts.append(f"{name} {f[key] * 100:.0f} %")
    return ", ".join(parts)


def earlier_rounds(
    path: Path, settings: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[str], list[dict[str, Any]]]:
    """The rounds, run order and batches of an earlier results file, if it was made with the
    same `settings` (else ValueError naming the file and the setting that differs)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"--append: {path} does not exist yet (run without --append)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--append: {path} is not JSON: {exc}") from None
    earlier = {
        "stalls": doc.get("stalls"),
        "poll_hz": doc.get("poll_hz"),
        "loads": doc.get("loads"),
        "quick": doc.get("quick"),
        "window_s": doc.get("window_s"),
        "meter_cycle_s": [doc.get("meter_load", {}).get(k) for k in ("milk_s", "gap_s")],
    }
    for key, value in settings.items():
        if earlier[key] != value:
            raise ValueError(
                f"--append: {path} has {key} = {earlier[key]!r}, this run {value!r}:"
                " rounds made differently cannot be judged together"
            )
    runs = doc.get("runs") or []
    rounds = [{"base": r["base"], "loaded": r["loaded"]} for r in runs]
    order = str(doc.get("order", "")).split()
    batches = doc.get("batches") or [{"at": doc.get("at"), "first_round": 1}]
    return rounds, order, batches


def start_meters(config: Path) -> subprocess.Popen[str]:
    """The steady parlour in its own process; returns once every meter answers."""
    sim = subprocess.Popen(
        [
            *(sys.executable, "-m", "simulators.steady", "--config", str(config)),
            *("--milk-s", str(CYCLE.milk_s), "--gap-s", str(CYCLE.gap_s)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert sim.stdout is not None
    for _ in range(STALLS + 1):  # one line per meter, then the steady line
        if not sim.stdout.readline():
            raise RuntimeError(f"the steady parlour stopped (exit {sim.wait(10)})")
    return sim


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (2 short rounds)")
    parser.add_argument(
        "--loads", default="web,mqtt", help=f"comma-separated loads (known: {', '.join(LOADS)})"
    )
    parser.add_argument("--rounds", type=int, help=f"base/loaded pairs (default {ROUNDS})")
    parser.add_argument("--window-s", type=float, help="measured seconds per run")
    parser.add_argument(
        "--append",
        action="store_true",
        help="add the rounds to those already in the results file (same settings) and judge"
        " them all: on a noisy machine the interval narrows as rounds accumulate",
    )
    parser.add_argument("--clients-child", help=argparse.SUPPRESS)
    parser.add_argument("--run-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients_child:
        clients_child(args.clients_child)
        return 0
    if args.run_child:
        run_child(args.run_child)
        return 0
    from bench.results_io import save

    loads = [n for n in args.loads.split(",") if n]
    unknown = [n for n in loads if n not in LOADS]
    if unknown or not loads:
        parser.error(f"unknown load(s) {unknown} (known: {', '.join(LOADS)})")
    n_rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    if n_rounds < 1:
        parser.error("--rounds must be at least 1")
    warm_s, settle_s, window_s = QUICK_TIMES if args.quick else TIMES
    if args.window_s:
        window_s = args.window_s
    times = (warm_s, settle_s, window_s)
    name = "lan" if sorted(loads) == ["mqtt", "web"] else "lan-" + "-".join(loads)
    settings = {
        "stalls": STALLS,
        "poll_hz": 1 / POLL_S,
        "loads": loads,
        "quick": args.quick,
        "window_s": window_s,
        "meter_cycle_s": [CYCLE.milk_s, CYCLE.gap_s],
    }
    rounds: list[dict[str, Any]] = []
    order: list[str] = []
    batches: list[dict[str, Any]] = []
    if args.append:
        try:
            rounds, order, batches = earlier_rounds(RESULTS / f"{name}.json", settings)
        except ValueError as exc:
            parser.error(str(exc))
    first = len(rounds)
    with tempfile.TemporaryDirectory(prefix="milkconsole-lan-") as tmp:
        work = Path(tmp)
        base_cfg = bench_config(work)
        loaded_cfg = base_cfg.with_name("loaded.toml")
        web_section = '[web]\nhost = "127.0.0.1"\nport = 0\n' if "web" in loads else ""
        loaded_cfg.write_text(base_cfg.read_text() + web_section, encoding="utf-8")
        sim = start_meters(base_cfg)
        try:
            for i in range(first, first + n_rounds):
                kinds = ("base", "loaded") if i % 2 == 0 else ("loaded", "base")
                pair: dict[str, Any] = {}
                for kind in kinds:
                    cfg = loaded_cfg if kind == "loaded" else base_cfg
                    pair[kind] = run_once(kind, cfg, work / f"r{i + 1}-{kind}", loads, times)
                    order.append("A" if kind == "base" else "B")
                    r = pair[kind]
                    print(
                        f"round {i + 1}/{first + n_rounds} {kind:<6}:"
                        f" GUI {r['gui_busy_share']:.4f},"
                        f" poll cycle p50 {r['poll_cycle_ms']['p50']} ms"
                        f" p95 {r['poll_cycle_ms']['p95']} ms,"
                        f" load average {r['load_average_1min']}",
                        file=sys.stderr,
                        flush=True,
                    )
                rounds.append(pair)
        finally:
            sim.terminate()
            sim.wait(10)
    from datetime import UTC, datetime

    batches.append(
        {"at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "first_round": first + 1}
    )
    summary = summarise(rounds, loads)
    doc: dict[str, Any] = {
        "stalls": STALLS,
        "poll_hz": 1 / POLL_S,
        "loads": loads,
        "clients": CLIENTS if "web" in loads else 0,
        "quick": args.quick,
        "rounds": len(rounds),
        "order": " ".join(order),
        "batches": batches,
        "window_s": window_s,
        "targets": {
            "loaded_over_base_at_most": 1.0 + WITHIN,
            "update_latency_p95_ms_at_most": LATENCY_P95_MS,
            "interval_coverage": 0.90,
        },
        "verdicts": summary["verdicts"],
        "figures": summary["figures"],
        "notes": summary["notes"],
        "context": summary["context"],
        "meter_load": {
            "driver": "simulators/steady.py",
            "milk_s": CYCLE.milk_s,
            "gap_s": CYCLE.gap_s,
            "milking_stalls": round(STALLS * CYCLE.milk_s / CYCLE.period_s),
            "cows_finished_per_min": round(60 * STALLS / CYCLE.period_s, 1),
            **summary["meter_load"],
        },
        "cpu_count": os.cpu_count(),
        "runs": [
            {"round": i + 1, "base": r["base"], "loaded": r["loaded"]} for i, r in enumerate(rounds)
        ],
    }
    print_table(doc)
    print(f"written {save(name, doc)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
