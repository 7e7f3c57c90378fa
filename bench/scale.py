"""A year on the parlour PC: size, query times, start-up, backup and restore at a year's scale.

Builds (or takes from the cache) the database of a year of a 1,000-cow herd milked three times
a day (`bench/yeardb.py`, through the real recorder), then prints and writes
`bench/results/scale.json`:

- `bytes_per_session`: the database file over its sessions, all in (target <= 2500), and what
  each table and index takes per session;
- `database_mb`, `sessions`, `build_s` (how long the build took; `build_cached` says whether
  this run reused a cached build);
- `queries`: every console query's p95 and median in ms over repeated runs, with its target
  (100 ms for the stall view start, the dashboard, the alert list and the cow history);
- `sync_claim`: `Outbox.claim` on the year database, and on the outbox a console that ran the
  year before retention existed would have (every row kept: about two million), with the first
  retention pass that prunes it;
- `start_to_first_paint_s`: a fresh console process on the year database, from before its first
  import to its first painted stall tile (as `bench/ui.py` measures it; target <= 2 s);
- `backup_s` and `restore_s`: `store.backup.take_backup` (online copy and integrity check) and
  `restore_backup` plus opening the restored database.

The reports (issue 11) are timed on the same cached year by `bench/reports.py`; `make bench-year`
runs both.

The year database is cached in `$MILKCONSOLE_BENCH_CACHE` (default `~/.cache/milkconsole-bench`)
under a name made of its parameters and a fingerprint of the migrations and `bench/yeardb.py`
(a change to either builds it again); `--rebuild` builds it again anyway.
`--quick` benchmarks 60 days of 200 cows instead (a smoke run). Run:
`QT_QPA_PLATFORM=offscreen .venv/bin/python bench/scale.py`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

T_START = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.results_io import save  # noqa: E402

QUERY_TARGET_MS = 100.0
FIRST_PAINT_TARGET_S = 2.0
BYTES_PER_SESSION_TARGET = 2500
RUNS = 20


@dataclass(frozen=True)
class Query:
    """One console query: `run(ctx)` once per timing run; `target_ms` None: reported only."""

    name: str
    run: Callable[[Context], object]
    target_ms: float | None = None
    what: str = ""


@dataclass
class Context:
    """What the queries run against: the database, the year's last instant, some picks."""

    db: Any
    now: datetime
    meter_ids: list[str]
    animal_ids: list[int]
    session_keys: list[str]
    rng: random.Random


def _stall_view_start(ctx: Context) -> object:
    from milkconsole.store.sessions import SessionStore

    store = SessionStore(ctx.db)
    return store.open_sessions(), store.last_finished(ctx.meter_ids)


def _health_prime(ctx: Context) -> object:
    from milkconsole.health.hook import HealthHook

    with ctx.db.read() as tx:
        return HealthHook().prime(tx)


def _dashboard(ctx: Context) -> object:
    from milkconsole.reports.dashboard import production_snapshot

    return production_snapshot(ctx.db, now=ctx.now)


def _alert_list(ctx: Context) -> object:
    from milkconsole.store.alerts import list_alerts

    return list_alerts(ctx.db)


def _alert_list_all(ctx: Context) -> object:
    from milkconsole.store.alerts import STATES, AlertFilter, list_alerts

    return list_alerts(ctx.db, AlertFilter(states=STATES))


def _alert_marks(ctx: Context) -> object:
    from milkconsole.store.alerts import alert_marks

    return alert_marks(ctx.db)


def _cow_history(ctx: Context) -> object:
    from milkconsole.store.cow_history import cow_history

    return cow_history(ctx.db, ctx.rng.choice(ctx.animal_ids), days=30, now=ctx.now)


def _herd(ctx: Context) -> object:
    from milkconsole.store.directory import load_herd

    return load_herd(ctx.db)


def _curve(ctx: Context) -> object:
    from milkconsole.store.sessions import SessionStore

    return SessionStore(ctx.db).samples(ctx.rng.choice(ctx.session_keys))


def _calibration(ctx: Context) -> object:
    from milkconsole.store.calibrations import CalibrationStore

    store = CalibrationStore(ctx.db)
    return store.meters(), store.test_milkings(ctx.meter_ids[:4], ctx.now - timedelta(days=1))


def _sync_status(ctx: Context) -> object:
    from milkconsole.store.outbox import Outbox

    box = Outbox(ctx.db)
    return box.counts(), box.oldest_pending_at(), box.dead()


def _export_day(ctx: Context) -> object:
    import io

    from milkconsole.reports.csv_out import write_sessions
    from milkconsole.store.sessions import SessionStore

    records = SessionStore(ctx.db).completed_since(ctx.now - timedelta(days=1))
    return write_sessions(io.StringIO(), records)


QUERIES: list[Query] = [
    Query(
        "stall_view_start", _stall_view_start, QUERY_TARGET_MS, "open sessions + each meter's last"
    ),
    Query("dashboard", _dashboard, QUERY_TARGET_MS, "production_snapshot in the evening"),
    Query("alert_list", _alert_list, QUERY_TARGET_MS, "alerts needing attention"),
    Query("alert_list_all_states", _alert_list_all, QUERY_TARGET_MS, "the newest 500, any state"),
    Query("alert_marks", _alert_marks, QUERY_TARGET_MS, "stall tiles' alert chips"),
    Query("cow_history", _cow_history, QUERY_TARGET_MS, "a cow's 30 days, random cows"),
    Query("health_prime", _health_prime, None, "the detector's two weeks, at start"),
    Query("herd_load", _herd, None, "herd list with each cow's expected yield"),
    Query("session_curve", _curve, None, "one session's flow curve, random sessions"),
    Query("calibration", _calibration, None, "meters and a day's test milkings"),
    Query("sync_status", _sync_status, None, "outbox counts, oldest pending, dead rows"),
    Query("export_last_day", _export_day, None, "a day's sessions as CSV"),
]


def cache_dir() -> Path:
    base = os.environ.get("MILKCONSOLE_BENCH_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "milkconsole-bench"


def year_database(cows: int, days: int, seed: int, *, rebuild: bool) -> tuple[Path, float, bool]:
    """The cached year database (built when missing): path, build seconds, whether cached."""
    from bench import yeardb

    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"yeardb-c{cows}-m3-d{days}-s{seed}-{build_fingerprint()}.sqlite"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists() and not rebuild:
        return path, float(json.loads(meta.read_text())["build_s"]), True
    t = time.perf_counter()
    yeardb.build(path, cows=cows, days=days, seed=seed, progress=lambda m: print(m, flush=True))
    build_s = time.perf_counter() - t
    meta.write_text(json.dumps({"build_s": round(build_s, 1), "built_at": _now_iso()}))
    return path, build_s, False


def build_fingerprint() -> str:
    """What a cached build depends on: the schema's migrations and the builder itself (a change
    to either builds the year again)."""
    from milkconsole.store.db import MIGRATIONS_DIR

    digest = hashlib.sha256()
    for source in [*sorted((MIGRATIONS_DIR / "versions").glob("*.py")), ROOT / "bench/yeardb.py"]:
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def time_query(q: Query, ctx: Context, runs: int) -> dict[str, Any]:
    for _ in range(2):  # warm: the page cache and SQLAlchemy's statement cache
        q.run(ctx)
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        q.run(ctx)
        ms.append((time.perf_counter() - t) * 1000.0)
    out: dict[str, Any] = {
        "p95_ms": round(percentile(ms, 0.95), 1),
        "median_ms": round(statistics.median(ms), 1),
        "runs": runs,
        "what": q.what,
    }
    if q.target_ms is not None:
        out["target_ms"] = q.target_ms
        out["ok"] = out["p95_ms"] <= q.target_ms
    return out


def size_breakdown(path: Path, sessions: int) -> dict[str, float]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
        ).fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()
    return {name: round(size / sessions, 1) for name, size in rows if size / sessions >= 1.0}


def context(db: Any, seed: int) -> Context:
    from milkconsole.store import history
    from milkconsole.technician.calibration import CalibrationStore

    end = history.last_session_end(db)
    assert end is not None, "the year's database has no finished session"
    meters = [m.meter_id for m in CalibrationStore(db).meters()]
    animals = list(history.cows(db))
    keys = history.session_keys(db, end - timedelta(days=60))
    return Context(db, end, meters, animals, keys, random.Random(seed))


def claim_figures(db: Any, now: datetime) -> dict[str, Any]:
    """Claim 100 (the sync's batch) from the year's outbox, then put them back."""
    from milkconsole.store.outbox import Outbox

    box = Outbox(db)
    ms = []
    claimed = 0
    for _ in range(10):
        t = time.perf_counter()
        items = box.claim(None, 100, now + timedelta(days=1))
        ms.append((time.perf_counter() - t) * 1000.0)
        claimed = len(items)
        box.reset_in_flight()
    counts = box.counts()
    return {
        "outbox_rows": sum(counts.values()),
        "pending": counts["pending"],
        "claimed": claimed,
        "p95_ms": round(percentile(ms, 0.95), 1),
        "median_ms": round(statistics.median(ms), 1),
    }


def unpruned_outbox(year: Path, work: Path, now: datetime) -> dict[str, Any]:
    """The outbox of a console that ran the year before retention: every session's rows kept
    (re-created from the year's sessions with a real payload's size), the claim on it, and
    the first retention pass, which prunes it."""
    from milkconsole.store.db import open_database
    from milkconsole.store.outbox import Outbox
    from milkconsole.store.retention import RetentionPolicy, apply_retention

    copy = work / "unpruned.sqlite"
    src = sqlite3.connect(year)
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    template = dst.execute(
        "SELECT payload FROM outbox WHERE model = 'milk.session' LIMIT 1"
    ).fetchone()[0]
    sent_at = (now - timedelta(days=180)).replace(tzinfo=None).isoformat(sep=" ")
    with dst:
        for model, after_model, after_key in (
            ("milk.session", "iot.milk_meter", "s.meter_id"),
            ("farm.milk.production", "milk.session", "s.key"),
        ):
            dst.execute(
                "INSERT INTO outbox (channel, record_key, model, after_model, after_key, "
                "operation, payload, state, attempts, created_at, sent_at, odoo_id) "
                f"SELECT 'odoo', s.key, ?, ?, {after_key}, 'create', ?, 'sent', 1, s.ended_at, "
                "?, 1 FROM milk_sessions s WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE "
                "o.record_key = s.key AND o.model = ? AND o.operation = 'create' AND "
                "o.channel = 'odoo')",
                (model, after_model, template, sent_at, model),
            )
    dst.close()
    db = open_database(copy)
    try:
        box = Outbox(db)
        rows = sum(box.counts().values())
        ms = []
        for _ in range(10):
            t = time.perf_counter()
            box.claim(None, 100, now + timedelta(days=1))
            ms.append((time.perf_counter() - t) * 1000.0)
            box.reset_in_flight()
        t = time.perf_counter()
        report = apply_retention(db, RetentionPolicy(), now)
        prune_s = time.perf_counter() - t
    finally:
        db.close()
    copy.unlink()
    return {
        "outbox_rows": rows,
        "claim_p95_ms": round(percentile(ms, 0.95), 1),
        "claim_median_ms": round(statistics.median(ms), 1),
        "first_retention_pass_s": round(prune_s, 1),
        "rows_pruned": report.outbox_rows_pruned,
    }


def backup_restore(year: Path, work: Path) -> dict[str, Any]:
    from milkconsole.store.backup import restore_backup, take_backup
    from milkconsole.store.db import known_revisions, open_database

    # The cached database itself stays untouched: the backup is taken from it (read only), the
    # restore goes to a scratch path.
    t = time.perf_counter()
    backup = take_backup(year, work)
    backup_s = time.perf_counter() - t
    target = work / "restored.sqlite"
    t = time.perf_counter()
    restore_backup(backup.path, target, known_revisions=known_revisions())
    open_database(target).close()
    restore_s = time.perf_counter() - t
    size = backup.size
    backup.path.unlink()
    target.unlink()
    return {
        "backup_s": round(backup_s, 1),
        "backup_mb": round(size / 1e6, 1),
        "restore_s": round(restore_s, 1),
    }


def first_paint_child(db_path: str, stalls: int) -> None:
    """Child process: a console on the year database, to its first painted tile."""
    from bench.yeardb import _config
    from ui.app import Console, ensure_app

    app = ensure_app()
    console = Console(_config(stalls), Path(db_path))
    console.window.resize(1920, 1080)
    console.window.show()
    tile = console.window.stall_view.tiles[stalls]
    while tile.paint_count == 0:
        app.processEvents()
    elapsed = time.perf_counter() - T_START
    console.shutdown()
    print(json.dumps({"start_to_first_paint_s": elapsed}))


def first_paint(db_path: Path, stalls: int, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, __file__, "--first-paint-child", str(db_path), str(stalls)],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            env={**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")},
        )
        if proc.returncode != 0:
            print(f"first-paint run failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
        out.append(float(json.loads(line)["start_to_first_paint_s"]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 days of 200 cows (smoke run)")
    parser.add_argument("--rebuild", action="store_true", help="build the year database again")
    parser.add_argument("--cows", type=int, default=None)
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--first-paint-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument(
        "--out", default=None, help="results name (bench/results/NAME.json; scale, scale-quick)"
    )
    args = parser.parse_args()
    if args.first_paint_child:
        first_paint_child(args.first_paint_child[0], int(args.first_paint_child[1]))
        return 0
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    cows = args.cows or (200 if args.quick else 1000)
    days = args.days or (60 if args.quick else 365)

    from bench.yeardb import COWS_PER_STALL
    from milkconsole.store.db import open_database

    path, build_s, cached = year_database(cows, days, args.seed, rebuild=args.rebuild)
    stalls = min(200, max(1, math.ceil(cows / COWS_PER_STALL)))
    conn = sqlite3.connect(path)
    sessions = conn.execute("SELECT COUNT(*) FROM milk_sessions").fetchone()[0]
    conn.close()
    size = path.stat().st_size
    results: dict[str, Any] = {
        "cows": cows,
        "milkings_per_day": 3,
        "days": days,
        "sessions": sessions,
        "database_mb": round(size / 1e6, 1),
        "bytes_per_session": round(size / sessions),
        "bytes_per_session_target": BYTES_PER_SESSION_TARGET,
        "bytes_per_session_by_object": size_breakdown(path, sessions),
        "build_s": round(build_s, 1),
        "build_cached": cached,
    }
    print(json.dumps({k: v for k, v in results.items() if k != "bytes_per_session_by_object"}))

    with tempfile.TemporaryDirectory(prefix="milkconsole-scale-") as tmp:
        work = Path(tmp)
        # Queries run on a scratch copy: the claim figures change the outbox.
        scratch = work / "year.sqlite"
        shutil.copyfile(path, scratch)
        db = open_database(scratch)
        try:
            ctx = context(db, args.seed)
            results["queries"] = {}
            for q in QUERIES:
                results["queries"][q.name] = time_query(q, ctx, args.runs)
                print(q.name, json.dumps(results["queries"][q.name]), flush=True)
            results["sync_claim"] = {"year": claim_figures(db, ctx.now)}
            print("sync_claim", json.dumps(results["sync_claim"]["year"]), flush=True)
            now = ctx.now
        finally:
            db.close()
        scratch.unlink()
        results["sync_claim"]["without_retention"] = unpruned_outbox(path, work, now)
        print("without_retention", json.dumps(results["sync_claim"]["without_retention"]))
        results.update(backup_restore(path, work))
        print("backup/restore", results["backup_s"], results["restore_s"], flush=True)
    paints = first_paint(path, stalls, 1 if args.quick else 3)
    results["start_to_first_paint_s"] = {
        "runs": [round(x, 3) for x in paints],
        "median": round(statistics.median(paints), 3) if paints else None,
        "target": FIRST_PAINT_TARGET_S,
    }
    results["targets"] = {
        "bytes_per_session": BYTES_PER_SESSION_TARGET,
        "query_p95_ms": QUERY_TARGET_MS,
        "start_to_first_paint_s": FIRST_PAINT_TARGET_S,
    }
    results["quick"] = args.quick
    results["cpu_count"] = os.cpu_count()
    out = save(args.out or ("scale-quick" if args.quick else "scale"), results)
    print(json.dumps(results, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
