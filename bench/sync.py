"""Odoo sync throughput: a backlog pushed in batches (one create per list) vs one call per record.

    .venv/bin/python bench/sync.py            # prints the figures, writes bench/results/sync.json
    .venv/bin/python bench/sync.py --real     # the same against a REAL Odoo 17 (the test
                                              # machine's, with installer/odoo's module):
                                              # writes bench/results/sync_real.json

`--real` starts the real Odoo 17 the tests use (`tests/acceptance/real_odoo.py`), pushes a week
offline (10,500 sessions of 500 cows plus their production records) in batches of 500, and measures
meter-to-Odoo latency with a whole simulated parlour recording into it (the time a session's
milk.session first answers a search, polled every 50 ms, against the instant the meter cleared
its milking bit).

The simulated Odoo charges what a real one costs (`--call-ms` per RPC call, `--record-ms` per
record created): with the defaults a create of 500 records in one call is ~60x faster than 500
single creates, as measured on real Odoo servers. The backlog is milk sessions recorded offline
(each identified session also makes a production record), pushed by `SyncEngine.run_once` over
real HTTP with odoorpc (`--transport jsonrpc`, Odoo 17) or JSON-2 (`--transport json2`, Odoo 19).
A "raw" run with no charged cost shows what the console side itself can do.

`sync_latency(...)` measures meter-to-Odoo latency while online: a whole simulated parlour
recorded by the runtime, with the background sync woken after each committed session.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (the Makefile does): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results_io import save
from milkconsole.meters.events import SessionSnapshot
from milkconsole.meters.parlour import MeterConfig
from milkconsole.store import open_database
from milkconsole.store.bulk import add_finished_sessions
from milkconsole.store.db import Database
from milkconsole.store.recorder import Recorder
from milkconsole.store.sessions import PastMilking, SessionStore, resolve_animal
from milkconsole.sync import secrets
from milkconsole.sync.engine import SyncEngine
from milkconsole.sync.settings import parse_odoo_settings
from simulators.keyring_memory import memory_keyring
from simulators.odoo.server import OdooSimulator

T0 = datetime(2025, 3, 1, 4, 30, tzinfo=UTC)
FIRST_TAG = 982000000000001


def register_meters(db: Database, meters: int = 24) -> None:
    """The bench parlour's meters, registered as a console start registers them."""
    ids = [f"M{n:02d}" for n in range(1, meters + 1)]
    Recorder(db, farm_code="BENCH").upsert_meters(
        [
            MeterConfig(id=mid, bus="b1", unit=n, profile="gea", stall=n, name=mid)
            for n, mid in enumerate(ids, start=1)
        ],
        {
            mid: {
                "meter_id": mid,
                "name": f"Milk meter {mid}",
                "stall": n,
                "manufacturer": "GEA",
                "model": "DemaTron",
                "transport": "tcp",
                "host": "10.0.0.5",
                "port": 502,
                "unit": n,
            }
            for n, mid in enumerate(ids, start=1)
        },
    )


def _queue_sessions(db: Database, n: int, cows: int) -> None:
    """`n` completed, identified sessions with their outbox rows (session + production)."""
    with db.read() as tx:
        cache = {c: resolve_animal(tx, str(FIRST_TAG + c)) for c in range(cows)}
    for start in range(0, n, 1000):
        milkings = []
        for i in range(start, min(n, start + 1000)):
            cow = i % cows
            began = T0 + timedelta(seconds=20 * i)
            snap = SessionSnapshot(
                key=f"B-{i:07d}",
                meter_id=f"M{i % 24 + 1:02d}",
                stall=i % 24 + 1,
                started_at=began,
                state="completed",
                rfid=str(FIRST_TAG + cow),
                ended_at=began + timedelta(minutes=7),
                duration_s=420.0,
                yield_l=9.5,
                peak_flow_l_min=3.7,
                avg_flow_l_min=1.5,
                fat_pct=4.0,
                protein_pct=3.3,
                scc_cells_ml=150_000,
            )
            milkings.append(PastMilking(snap, cache[cow], destination=None))
        add_finished_sessions(db, milkings)


def run_backlog(
    *,
    sessions: int,
    batch_size: int,
    call_ms: float,
    record_ms: float,
    transport: str,
    workdir: Path,
) -> dict[str, Any]:
    """Push a backlog of `sessions` (plus their production records); returns the figures."""
    version = "19.0" if transport == "json2" else "17.0"
    cows = 500
    with OdooSimulator(version=version) as sim:
        sim.seed_herd(cows)
        sim.seed_devices([f"M{i:02d}" for i in range(1, 25)])
        settings = parse_odoo_settings(
            {
                "url": sim.url,
                "database": sim.database,
                "login": "admin",
                "transport": transport,
                "batch_size": batch_size,
                "timeout_s": 120,
            },
            "bench",
        )
        secrets.store_secret(settings, sim.api_key)
        db = open_database(Path(tempfile.mkdtemp(dir=workdir)) / "console.sqlite")
        try:
            engine = SyncEngine(db, settings)
            engine.start()
            register_meters(db)
            # Log in, check the contract, pull the herd, register the meters: not in the figure.
            engine.run_once()
            _queue_sessions(db, sessions, cows)
            sim.set_cost(call_overhead_s=call_ms / 1000, per_record_s=record_ms / 1000)
            calls_before = sum(sim.calls.values())
            t0 = time.monotonic()
            report = engine.run_once()
            elapsed = time.monotonic() - t0
            calls = sum(sim.calls.values()) - calls_before
            engine.close()
        finally:
            db.close()
    records = report.total_created
    return {
        "transport": transport,
        "batch_size": batch_size,
        "sessions": sessions,
        "records": records,
        "seconds": round(elapsed, 3),
        "records_per_s": round(records / elapsed, 1),
        "rpc_calls": calls,
        "create_calls": report.create_calls,
    }


def sync_latency(
    *, sessions: int = 60, call_ms: float = 20.0, poll_s: float = 1.0
) -> dict[str, Any]:
    """Meter-to-Odoo latency while online: the meter clears its milking bit -> the session's
    milk.session record is committed in Odoo. Whole pipeline, real sockets and HTTP: simulated
    meters (Modbus TCP and RTU), pollers, tracker, recorder, the background sync worker."""
    from milkconsole.app.runtime import ParlourRuntime
    from milkconsole.config import load_config
    from simulators.demo import SimulatedParlour, make_demo_config

    created_at: dict[int, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="milkconsole-bench-lat-") as tmp,
        OdooSimulator(version="17.0") as sim,
    ):
        work = Path(tmp)
        sim.seed_devices([f"MM-{i:02d}" for i in range(1, 25)])
        sim.set_cost(call_overhead_s=call_ms / 1000, per_record_s=0.0003)

        def on_commit(model: str, method: str, ids: list[int]) -> None:
            if model == "milk.session" and method == "create":
                now = time.time()
                for i in ids:
                    created_at.setdefault(i, now)

        sim.on_commit = on_commit
        cfg_path = make_demo_config(work, stalls=24, time_scale=60.0)
        text = cfg_path.read_text(encoding="utf-8")
        text = text.replace("poll_interval_s = 0.5", f"poll_interval_s = {poll_s}")
        text += (
            f'\n[odoo]\nurl = "{sim.url}"\ndatabase = "{sim.database}"\nlogin = "admin"\n'
            'transport = "jsonrpc"\n'
        )
        cfg_path.write_text(text, encoding="utf-8")
        cfg = load_config(cfg_path)
        settings = parse_odoo_settings(cfg.extra["odoo"], str(cfg_path))
        secrets.store_secret(settings, sim.api_key)
        status_meters = {
            m.id for m in cfg.meters if cfg.profiles[m.profile].detection.mode == "status"
        }
        runtime = ParlourRuntime(cfg, open_database(work / "lat.sqlite"))
        latencies: list[float] = []
        with SimulatedParlour(cfg, cows=sessions * 2, seed=9, time_scale=60.0) as park:
            runtime.start_threads()
            assert runtime.start_sync()
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and len(latencies) < sessions:
                time.sleep(1.0)
                by_id = {
                    r["id"]: r for r in sim.records("milk.session", fields=["name", "rfid_tag"])
                }
                keys = {
                    (r.meter_id, r.rfid): r.key
                    for r in SessionStore(runtime.db).completed_since(None)
                }
                at_by_key = {by_id[i]["name"]: t for i, t in list(created_at.items()) if i in by_id}
                latencies = [
                    at_by_key[k] - t.ended_at.timestamp()
                    for t in park.scenario.truth
                    if t.meter_id in status_meters
                    and (k := keys.get((t.meter_id, t.rfid))) is not None
                    and k in at_by_key
                ]
            runtime.stop()
    latencies.sort()
    if not latencies:
        return {"error": "no session reached Odoo"}

    def q(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1)

    return {
        "sessions": len(latencies),
        "poll_interval_s": poll_s,
        "odoo_call_ms": call_ms,
        "p50_ms": q(0.50),
        "p95_ms": q(0.95),
        "max_ms": round(1000 * latencies[-1], 1),
        "target_p95_ms": round(1000 * poll_s + 500, 1),
    }


def _real_settings(odoo: Any, **changes: Any) -> Any:
    return parse_odoo_settings(
        {
            "url": odoo.url,
            "database": odoo.db,
            "login": odoo.login,
            "timeout_s": 120,
            **changes,
        },
        "bench",
    )


def real_backlog(odoo: Any, rpc: Any, *, cows: int, milkings: int, workdir: Path) -> dict[str, Any]:
    """A week recorded offline (`cows` x `milkings`) pushed to the real Odoo in one pass."""
    rpc.call(
        "farm.animal",
        "create",
        [
            {"name": str(c + 1), "number": str(c + 1), "rfid_tag": str(FIRST_TAG + c)}
            for c in range(cows)
        ],
    )
    settings = _real_settings(odoo, batch_size=500)
    secrets.store_secret(settings, odoo.password)
    db = open_database(Path(tempfile.mkdtemp(dir=workdir)) / "console.sqlite")
    try:
        engine = SyncEngine(db, settings)
        engine.start()
        register_meters(db)
        engine.run_once()  # log in, check the contract, pull the herd, register the meters
        _queue_sessions(db, cows * milkings, cows)
        t0 = time.monotonic()
        report = engine.run_once()
        elapsed = time.monotonic() - t0
        status = engine.status("online")
        engine.close()
    finally:
        db.close()
    return {
        "sessions": report.created.get("session", 0),
        "production_records": report.created.get("production", 0),
        "records": report.total_created,
        "seconds": round(elapsed, 2),
        "records_per_s": round(report.total_created / elapsed, 1),
        "create_calls": report.create_calls,
        "left_in_outbox": status.backlog,
        "refused": status.dead,
        "target_s": 10.0,
    }


def real_latency(odoo: Any, rpc: Any, *, sessions: int = 60, poll_s: float = 1.0) -> dict[str, Any]:
    """Meter-to-Odoo latency with a whole simulated parlour recording into the real Odoo."""
    import threading

    from milkconsole.app.runtime import ParlourRuntime
    from milkconsole.config import load_config
    from simulators.demo import SimulatedParlour, make_demo_config

    seen_at: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        # Odoo stamps create_date with its transaction start, to the second; polling the names
        # every 50 ms gives the instant a session is readable in Odoo to within ~50 ms.
        while not stop.is_set():
            rows = rpc.call(
                "milk.session", "search_read", [["name", "=like", "LAT%"]], fields=["name"]
            )
            now = time.time()
            for r in rows:
                seen_at.setdefault(r["name"], now)
            time.sleep(0.05)

    with tempfile.TemporaryDirectory(prefix="milkconsole-bench-lat-") as tmp:
        work = Path(tmp)
        cfg_path = make_demo_config(work, stalls=24, time_scale=60.0)
        text = cfg_path.read_text(encoding="utf-8")
        text = text.replace("poll_interval_s = 0.5", f"poll_interval_s = {poll_s}")
        text = text.replace('farm_code = "', 'farm_code = "LAT')
        text += f'\n[odoo]\nurl = "{odoo.url}"\ndatabase = "{odoo.db}"\nlogin = "{odoo.login}"\n'
        cfg_path.write_text(text, encoding="utf-8")
        cfg = load_config(cfg_path)
        settings = parse_odoo_settings(cfg.extra["odoo"], str(cfg_path))
        secrets.store_secret(settings, odoo.password)
        status_meters = {
            m.id for m in cfg.meters if cfg.profiles[m.profile].detection.mode == "status"
        }
        runtime = ParlourRuntime(cfg, open_database(work / "lat.sqlite"))
        latencies: list[float] = []
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        with SimulatedParlour(cfg, cows=sessions * 2, seed=9, time_scale=60.0) as park:
            runtime.start_threads()
            assert runtime.start_sync()
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and len(latencies) < sessions:
                time.sleep(1.0)
                keys = {
                    (r.meter_id, r.rfid): r.key
                    for r in SessionStore(runtime.db).completed_since(None)
                }
                latencies = [
                    seen_at[k] - t.ended_at.timestamp()
                    for t in park.scenario.truth
                    if t.meter_id in status_meters
                    and (k := keys.get((t.meter_id, t.rfid))) is not None
                    and k in seen_at
                ]
            runtime.stop()
        stop.set()
        watcher.join(5)
    latencies.sort()
    if not latencies:
        return {"error": "no session reached Odoo"}

    def q(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1)

    return {
        "sessions": len(latencies),
        "poll_interval_s": poll_s,
        "p50_ms": q(0.50),
        "p95_ms": q(0.95),
        "max_ms": round(1000 * latencies[-1], 1),
        "target_p95_ms": round(1000 * poll_s + 500, 1),
    }


def main_real() -> int:
    """`--real`: the figures issue 9 asks for, against a real Odoo 17."""
    from tests.acceptance.real_odoo import ADDONS_DIR, MODULES, ServeProcess, find_serve

    serve = find_serve()
    if serve is None:
        print("bench/sync.py --real: no real Odoo 17 here (set MILKCONSOLE_ODOO17_SERVE)")
        return 2
    with memory_keyring(), tempfile.TemporaryDirectory(prefix="milkconsole-bench-real-") as tmp:
        work = Path(tmp)
        process = ServeProcess(serve, work / "serve.log", ADDONS_DIR, MODULES)
        try:
            odoo = process.start()
            rpc = odoo.rpc()
            backlog = real_backlog(odoo, rpc, cows=500, milkings=21, workdir=work)
            latency = real_latency(odoo, rpc)
        finally:
            process.stop()
    figures = {
        "server": "Odoo 17.0 Community (real), milkconsole_dairy",
        "backlog": backlog,
        "latency": latency,
    }
    print(
        f"real Odoo 17: {backlog['sessions']} sessions + {backlog['production_records']} "
        f"production records in {backlog['seconds']} s = {backlog['records_per_s']} records/s "
        f"({backlog['create_calls']} create calls; target < {backlog['target_s']} s)"
    )
    if "p95_ms" in latency:
        print(
            f"meter -> real Odoo latency: p50 {latency['p50_ms']} ms, p95 {latency['p95_ms']} ms "
            f"over {latency['sessions']} sessions (target p95 <= {latency['target_p95_ms']} ms)"
        )
    else:
        print(f"meter -> real Odoo latency: {latency}")
    print(f"wrote {save('sync_real', figures)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sessions", type=int, default=3000, help="backlog for the batched runs")
    p.add_argument("--single-sessions", type=int, default=120, help="backlog, one per call")
    p.add_argument("--call-ms", type=float, default=20.0, help="charged per RPC call")
    p.add_argument("--record-ms", type=float, default=0.3, help="charged per record created")
    p.add_argument("--transport", choices=("jsonrpc", "json2"), default="jsonrpc")
    p.add_argument("--real", action="store_true", help="against a real Odoo 17 (see above)")
    args = p.parse_args(argv)
    if args.real:
        return main_real()

    with memory_keyring():  # noqa: SIM117 (one block per resource reads better here)
        with tempfile.TemporaryDirectory(prefix="milkconsole-bench-sync-") as tmp:
            work = Path(tmp)
            common = {"transport": args.transport, "workdir": work}
            batched = run_backlog(
                sessions=args.sessions,
                batch_size=500,
                call_ms=args.call_ms,
                record_ms=args.record_ms,
                **common,
            )
            single = run_backlog(
                sessions=args.single_sessions,
                batch_size=1,
                call_ms=args.call_ms,
                record_ms=args.record_ms,
                **common,
            )
            raw = run_backlog(
                sessions=args.sessions, batch_size=500, call_ms=0, record_ms=0, **common
            )
            other = "json2" if args.transport == "jsonrpc" else "jsonrpc"
            latency = sync_latency()
            raw_other = run_backlog(
                sessions=args.sessions,
                batch_size=500,
                call_ms=0,
                record_ms=0,
                transport=other,
                workdir=work,
            )

    one_call_500 = args.call_ms + 500 * args.record_ms
    figures = {
        "cost_model": {
            "call_ms": args.call_ms,
            "record_ms": args.record_ms,
            "list_of_500_vs_500_calls": round(
                500 * (args.call_ms + args.record_ms) / one_call_500, 1
            ),
        },
        "batched": batched,
        "one_call_per_record": single,
        "speedup_batched_vs_single": round(batched["records_per_s"] / single["records_per_s"], 1),
        "raw_no_server_cost": [raw, raw_other],
        "latency": latency,
    }
    print(
        f"cost model: {args.call_ms} ms/call + {args.record_ms} ms/record "
        f"(a list of 500 is {figures['cost_model']['list_of_500_vs_500_calls']}x faster "
        "than 500 calls)"
    )
    for name, r in (
        ("batched (500/call)", batched),
        ("one call per record", single),
        ("raw, no server cost", raw),
        ("raw, no server cost", raw_other),
    ):
        print(
            f"{name:22s} {r['transport']:7s} {r['records']:6d} records in {r['seconds']:7.2f} s "
            f"= {r['records_per_s']:8.1f} records/s ({r['rpc_calls']} RPC calls)"
        )
    print(f"batched is {figures['speedup_batched_vs_single']}x faster than one call per record")
    lat = figures["latency"]
    if "p95_ms" in lat:
        print(
            f"meter -> Odoo latency: p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms over "
            f"{lat['sessions']} sessions (target p95 <= {lat['target_p95_ms']} ms)"
        )
    path = save("sync", figures)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
