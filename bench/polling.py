"""Polling benchmark (issue 2): RTU cycle time, TCP gateway CPU, meter-to-commit latency.

(a) RTU: 12 meters on one 19200-baud 8E1 bus; the simulator holds every reply for its real wire
    time. The achieved cycle (one block read per meter) is compared with the theoretical wire
    time of those reads, and with a naive client reading each field with its own request.
(b) TCP: 100 meters (each its own endpoint) polled at 1 Hz by the gateway runtime, simulator in
    another process: CPU use of the gateway process as a share of one core.
(c) Latency: the meter clears its milking bit -> the completed session is committed in SQLite;
    p50/p99 against the poll interval.

Run: .venv/bin/python bench/polling.py [--quick]. Writes bench/results/polling.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results_io import save
from milkconsole.app.runtime import ParlourRuntime
from milkconsole.config import load_config
from milkconsole.meters.events import SessionCompleted
from milkconsole.meters.parlour import BusConfig, MeterConfig
from milkconsole.meters.poller import BusPoller, PolledMeter
from milkconsole.meters.profiles import load_profiles
from milkconsole.meters.transport import open_transport
from milkconsole.store.db import open_database
from simulators.demo import SimulatedParlour, _free_tcp_ports
from simulators.meter import SimulatedMeter
from simulators.modbus.registers import RegisterBank
from simulators.modbus.rtu import ModbusRtuServer

GAP_CHARS = 3.5
REQUEST_BYTES = 8
REPLY_OVERHEAD_BYTES = 5  # unit, function, byte count, CRC(2)


def wire_time_s(bus: BusConfig, registers: int) -> float:
    """One read request and its reply on the wire, with the 3.5-character gap after each."""
    chars = REQUEST_BYTES + REPLY_OVERHEAD_BYTES + 2 * registers + 2 * GAP_CHARS
    return chars * bus.char_time_s


def bench_rtu(cycles: int) -> dict[str, object]:
    profiles = load_profiles()
    order = ["delaval-mm27bc"] * 6 + ["gea"] * 3 + ["afimilk"] * 3
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "ttyBENCH"
        bus = BusConfig("rs485-bench", "rtu", str(link), baudrate=19200, parity="E", timeout_s=0.5)
        bank = RegisterBank()
        meters: list[PolledMeter] = []
        for unit, pid in enumerate(order, start=1):
            profile = profiles[pid]
            sim = SimulatedMeter(bank, unit, profile, meter_id=f"M{unit}")
            sim.set_values(yield_l=10.0 + unit, flow_l_min=2.5, status=1, rfid="83D5A16C4D5E0E1F")
            cfg = MeterConfig(f"M{unit}", bus.id, unit, pid, unit)
            meters.append(PolledMeter(config=cfg, profile=profile, tracker=None))
        theory = sum(wire_time_s(bus, b.count) for m in meters for b in m.profile.blocks())
        naive_theory = sum(
            wire_time_s(bus, f.count) for m in meters for f in m.profile.fields.values()
        )
        with ModbusRtuServer(bank, link=link, baudrate=19200, parity="E", wire_time=True):
            poller = BusPoller(bus, meters, poll_interval_s=1.0, sink=lambda _e: None)
            for _ in range(2):  # connect and warm up
                poller.poll_once()
            block_cycles = []
            for _ in range(cycles):
                t0 = time.perf_counter()
                poller.poll_once()
                block_cycles.append(time.perf_counter() - t0)
            poller.close()
            transport = open_transport(bus)
            transport.connect()
            naive_cycles = []
            for _ in range(max(3, cycles // 3)):
                t0 = time.perf_counter()
                for m in meters:
                    for f in m.profile.fields.values():
                        transport.read_registers(m.config.unit, f.register, f.address, f.count)
                naive_cycles.append(time.perf_counter() - t0)
            transport.close()
    block = statistics.median(block_cycles)
    naive = statistics.median(naive_cycles)
    return {
        "meters": len(meters),
        "baudrate": 19200,
        "framing": "8E1",
        "theoretical_block_cycle_ms": round(theory * 1000, 1),
        "block_cycle_median_ms": round(block * 1000, 1),
        "block_cycle_max_ms": round(max(block_cycles) * 1000, 1),
        "block_vs_theory_ratio": round(block / theory, 3),
        "target_ratio": 1.10,
        "naive_theoretical_cycle_ms": round(naive_theory * 1000, 1),
        "naive_cycle_median_ms": round(naive * 1000, 1),
        "naive_vs_block_ratio": round(naive / block, 2),
        "cycles": cycles,
    }


def _tcp_config(workdir: Path, meters: int) -> Path:
    ports = _free_tcp_ports(meters, "127.0.0.1")
    lines = [
        "[parlour]",
        'name = "Bench 100 TCP"',
        'farm_code = "BENCH"',
        "poll_interval_s = 1.0",
        "[tracking]",
        "min_duration_s = 5",
        "comm_timeout_s = 10",
        "sample_interval_s = 2",
        "end_after_s = 2",
    ]
    for i, port in enumerate(ports, start=1):
        lines += ["[[bus]]", f'id = "tcp-{i}"', 'transport = "tcp"', 'host = "127.0.0.1"']
        lines += [f"port = {port}", "timeout_s = 0.5"]
    for i in range(1, meters + 1):
        profile = ("delaval-mm27bc", "gea", "afimilk")[i % 3]
        lines += ["[[meter]]", f'id = "T{i:03d}"', f'bus = "tcp-{i}"', "unit = 1"]
        lines += [f'profile = "{profile}"', f"stall = {i}"]
    path = workdir / "parlour.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def bench_tcp_cpu(meters: int, seconds: float, time_scale: float = 1.0) -> dict[str, float]:
    """Gateway CPU for `meters` TCP meters polled at 1 Hz while cows are milked.

    time_scale 1 is a real parlour (milkings last minutes); 5 makes every meter busy and sessions
    start and end five times as often, an upper bound."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cfg_path = _tcp_config(work, meters)
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulators.cli",
                "--config",
                str(cfg_path),
                "--cows",
                str(meters * 4),
                "--time-scale",
                str(time_scale),
                "--linger-s",
                "600",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        try:
            assert sim.stdout is not None
            for _ in range(meters):  # one line per meter once listening
                sim.stdout.readline()
            cfg = load_config(cfg_path)
            runtime = ParlourRuntime(cfg, open_database(work / "bench.sqlite"))
            completed: list[SessionCompleted] = []
            runtime.add_committed_listener(
                lambda evs: completed.extend(e for e in evs if isinstance(e, SessionCompleted))
            )
            runtime.start_threads()
            time.sleep(20.0)  # connect, let the cows fill the stalls
            cpu0, wall0 = time.process_time(), time.monotonic()
            cycles0 = sum(p.cycles for p in runtime.pollers.values())
            time.sleep(seconds)
            cpu1, wall1 = time.process_time(), time.monotonic()
            cycles1 = sum(p.cycles for p in runtime.pollers.values())
            runtime.stop()
        finally:
            sim.terminate()
            sim.wait(10)
    cpu_share = (cpu1 - cpu0) / (wall1 - wall0)
    return {
        "meters": meters,
        "poll_interval_s": 1.0,
        "time_scale": time_scale,
        "window_s": round(wall1 - wall0, 1),
        "reads_per_s": round((cycles1 - cycles0) / (wall1 - wall0), 1),
        "gateway_cpu_percent_of_one_core": round(100 * cpu_share, 2),
        "target_percent": 5.0,
        "sessions_committed": len(completed),
    }


def bench_latency(sessions: int, poll_s: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        from simulators.demo import make_demo_config

        cfg_path = make_demo_config(work, stalls=24, time_scale=60.0)
        text = cfg_path.read_text().replace("poll_interval_s = 0.5", f"poll_interval_s = {poll_s}")
        cfg_path.write_text(text)
        cfg = load_config(cfg_path)
        status_meters = {
            m.id for m in cfg.meters if cfg.profiles[m.profile].detection.mode == "status"
        }
        runtime = ParlourRuntime(cfg, open_database(work / "lat.sqlite"))
        committed: dict[str, float] = {}  # (meter, rfid, yield) key -> commit wall time
        lock = threading.Lock()

        def on_commit(events: list[object]) -> None:
            now = time.time()
            with lock:
                for e in events:
                    if isinstance(e, SessionCompleted) and e.session.meter_id in status_meters:
                        committed[f"{e.session.meter_id}/{e.session.rfid}"] = now

        runtime.add_committed_listener(on_commit)
        latencies: list[float] = []
        with SimulatedParlour(cfg, cows=sessions * 2, seed=7, time_scale=60.0) as park:
            runtime.start_threads()
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                time.sleep(1.0)
                truths = [t for t in park.scenario.truth if t.meter_id in status_meters]
                with lock:
                    matched = [
                        committed[k] - t.ended_at.timestamp()
                        for t in truths
                        if (k := f"{t.meter_id}/{t.rfid}") in committed
                    ]
                if len(matched) >= sessions:
                    latencies = matched
                    break
            runtime.stop()
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    return {
        "sessions": len(latencies),
        "poll_interval_s": poll_s,
        "p50_ms": round(1000 * p(0.50), 1),
        "p99_ms": round(1000 * p(0.99), 1),
        "max_ms": round(1000 * latencies[-1], 1),
        "target_p99_ms": round(1000 * poll_s + 50, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs")
    args = ap.parse_args()
    quick = args.quick
    figures: dict[str, object] = {}
    print("(a) RTU: 12 meters, one 19200-baud bus, wire-time simulator ...", flush=True)
    figures["rtu"] = rtu = bench_rtu(10 if quick else 30)
    print(
        f"    block cycle median {rtu['block_cycle_median_ms']} ms vs theory "
        f"{rtu['theoretical_block_cycle_ms']} ms = {rtu['block_vs_theory_ratio']}x "
        "(target <= 1.10x); "
        f"naive per-field {rtu['naive_cycle_median_ms']} ms = {rtu['naive_vs_block_ratio']}x slower"
    )
    print("(b) TCP: 100 meters at 1 Hz, gateway CPU ...", flush=True)
    figures["tcp"] = tcp = bench_tcp_cpu(100, 15.0 if quick else 60.0)
    print(
        f"    gateway CPU {tcp['gateway_cpu_percent_of_one_core']} % of one core "
        f"(target <= 5 %), {tcp['reads_per_s']} meter reads/s, real-time parlour"
    )
    figures["tcp_stress"] = st = bench_tcp_cpu(100, 15.0 if quick else 30.0, time_scale=5.0)
    print(
        f"    stress (sessions 5x as often): {st['gateway_cpu_percent_of_one_core']} % of one core"
    )
    print("(c) latency: milking bit cleared -> completed session committed ...", flush=True)
    figures["latency"] = lat = bench_latency(30 if quick else 100, 1.0)
    print(
        f"    p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms over {lat['sessions']} sessions "
        f"(target p99 <= {lat['target_p99_ms']} ms)"
    )
    path = save("polling", figures)
    print(f"saved {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
