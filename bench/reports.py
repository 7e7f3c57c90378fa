"""Reports on a year of a 1,000-cow herd milked 3 times a day (1.1 million sessions).

    .venv/bin/python -m bench.reports                      # builds the year (bench.yeardb) once
    .venv/bin/python -m bench.reports --db year.sqlite     # any console database, as it is
    .venv/bin/python -m bench.reports --days 30            # a shorter history, built

Targets (issue 11): a milking report <= 2 s, a cow's lactation trend <= 200 ms, the herd's
trend over a year <= 1 s, the ADE export of one day <= 2 s. Each figure is the median of
`--repeat` runs (the slowest is printed too), each in a fresh read transaction, with the
database opened as the console opens it. The year is the one `bench/scale.py` builds and caches
(through the real recorder, every milking with its flow curve: about half an hour here); other
sizes are built into the temporary directory (`milkconsole-bench/`) and reused while their
parameters match. Writes bench/results/reports.json.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.results_io import save  # noqa: E402
from milkconsole.reports import cow, herd, meters, milking, periods  # noqa: E402
from milkconsole.reports.ade import export_ade, write_ade  # noqa: E402
from milkconsole.store import history  # noqa: E402
from milkconsole.store.db import Database, open_database  # noqa: E402

TARGETS_S = {
    "milking_report": 2.0,
    "cow_trend": 0.2,
    "herd_trend_year": 1.0,
    "ade_export_day": 2.0,
}


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(median s, slowest s, last result) of `repeat` runs."""
    times = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), max(times), result


def year_db(cows: int, per_day: int, days: int, seed: int) -> Path:
    """The bench database of this size, built through `bench.yeardb` when it is not there.

    Three milkings a day is the scale benchmark's year: the same cached file (`bench.scale`),
    so `make bench-year` builds it once for both."""
    if per_day == 3:
        from bench.scale import year_database

        return year_database(cows, days, seed, rebuild=False)[0]
    from bench.yeardb import build

    folder = Path(tempfile.gettempdir()) / "milkconsole-bench"
    folder.mkdir(exist_ok=True)
    path = folder / f"year-{cows}x{per_day}x{days}-s{seed}.sqlite"
    if not path.exists():
        print(f"building {path} (cows={cows}, {per_day}/day, {days} days)…", flush=True)
        build(path, cows=cows, milkings_per_day=per_day, days=days, seed=seed, progress=print)
    return path


def run(db: Database, repeat: int, seed: int) -> dict[str, Any]:
    last = history.last_session_start(db, datetime.now(UTC) + timedelta(days=3650))
    if last is None:
        raise SystemExit("the database holds no finished milking")
    figures: dict[str, Any] = {}
    sessions = history.window_totals(db, [(last - timedelta(days=3650), last + timedelta(1))])
    figures["sessions"] = sessions[0].sessions
    print(f"{sessions[0].sessions:,} finished sessions, the last started {last:%Y-%m-%d %H:%M} UTC")

    def report() -> milking.MilkingReport:
        period = periods.last_milking(db, last + timedelta(seconds=1))
        assert period is not None
        return milking.build_milking_report(db, period)

    med, worst, r = timed(report, repeat)
    figures["milking_report"] = {"median_s": med, "max_s": worst, "cows": r.figures.cows_milked}
    print(f"milking report ({int(r.figures.sessions)} milkings): {med:.3f} s (max {worst:.3f})")

    ids = sorted(history.cows(db))
    picks = random.Random(seed).sample(ids, min(len(ids), 20))
    per_cow = []
    points = 0
    for animal_id in picks:

        def trend(a: int = animal_id) -> cow.CowTrend:
            return cow.build_cow_trend(db, a, end=last + timedelta(1))

        med_c, _, t = timed(trend, repeat)
        per_cow.append(med_c)
        points = max(points, len(t.milkings))
    figures["cow_trend"] = {
        "median_s": statistics.median(per_cow),
        "max_s": max(per_cow),
        "cows": len(picks),
        "most_milkings": points,
    }
    print(
        f"cow lactation trend ({len(picks)} cows, up to {points} milkings): "
        f"{statistics.median(per_cow) * 1000:.0f} ms (slowest cow {max(per_cow) * 1000:.0f} ms)"
    )

    last_day = last.astimezone(periods.local_zone()).date()
    first_day = last_day - timedelta(days=364)
    med, worst, h = timed(lambda: herd.build_herd_trend(db, first_day, last_day), repeat)
    figures["herd_trend_year"] = {"median_s": med, "max_s": worst, "days": len(h.days)}
    print(f"herd trend, {len(h.days)} days: {med:.3f} s (max {worst:.3f})")

    start, end = periods.day_bounds(last_day - timedelta(days=1))

    def ade() -> int:
        export = export_ade(db, start, end)
        out = io.StringIO()
        write_ade(out, export)
        return export.exported

    med, worst, n = timed(ade, repeat)
    figures["ade_export_day"] = {"median_s": med, "max_s": worst, "milkings": n}
    print(
        f"ADE export of {last_day - timedelta(days=1)} ({n} milkings): "
        f"{med:.3f} s (max {worst:.3f})"
    )

    med, worst, mc = timed(
        lambda: meters.build_meter_comparison(db, last - timedelta(days=7), last + timedelta(1)),
        repeat,
    )
    figures["meter_comparison_week"] = {"median_s": med, "max_s": worst, "meters": len(mc.rows)}
    print(f"meter comparison, 7 days, {len(mc.rows)} meters: {med:.3f} s (max {worst:.3f})")
    for name, target in TARGETS_S.items():
        got = figures[name]["median_s"]
        figures[name]["target_s"] = target
        figures[name]["within_target"] = got <= target
        print(f"  {name}: {got:.3f} s, target {target} s: {'ok' if got <= target else 'OVER'}")
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--db", type=Path, default=None, help="measure this database as it is")
    p.add_argument("--cows", type=int, default=1000)
    p.add_argument("--milkings-per-day", type=int, default=3)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--name", default="reports", help="bench/results/<name>.json")
    p.add_argument("--note", default=None, help="what the database is, kept with the figures")
    args = p.parse_args(argv)
    path = args.db or year_db(args.cows, args.milkings_per_day, args.days, args.seed)
    db = open_database(path)
    try:
        figures = run(db, args.repeat, args.seed)
    finally:
        db.close()
    size = {"cows": args.cows, "milkings_per_day": args.milkings_per_day, "days": args.days}
    doc = {"database": path.name, "built_as": None if args.db else size, "note": args.note}
    out = save(args.name, {**doc, **figures})
    print(f"figures in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
