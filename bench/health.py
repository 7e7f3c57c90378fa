"""Mastitis detection on simulated herds: the seed's rule against ours, per herd.

    .venv/bin/python -m bench.health            # held-out seeds, writes bench/results/health.json
    .venv/bin/python -m bench.health --tuning   # the seeds the defaults were tuned on, too

Columns: detected/cases, sensitivity, specificity (primary: flare days excluded), strict
specificity (flare days count as healthy), false alerts per 1000 milkings, median lead time in
hours (+ = before clinical onset), cases detected before onset. The per-variant summary pools
the herds of a group: sensitivity over all their cases, specificity over all their cow-days,
median lead over all their detected cases, and how many were detected before / at onset.

Herd variants (see `simulators/herd.py` for the effect sizes):
  A  2x/day, every meter gives quarter conductivity, 1 drifting meter
  B  3x/day, every meter gives quarter conductivity, 2 drifting meters
  C  2x/day, half the meters give quarter conductivity
  D  2x/day, no quarter conductivity (cow-level meters only)
The detector's defaults were tuned on seeds 1-2 of each variant; the table reports seeds
101-103, which were not looked at while tuning. Definitions of every column are in
`milkconsole/health/scoring.py`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from milkconsole.health.evaluate import SeedRuleDetector, run_detector
from milkconsole.health.mastitis import DetectorParams, MastitisDetector
from milkconsole.health.scoring import Score, lead_times_h, pooled, score
from simulators.herd import HerdConfig, simulate_herd

VARIANTS: dict[str, HerdConfig] = {
    "A": HerdConfig(),
    "B": HerdConfig(milkings_per_day=3, drifting_meters=2),
    "C": HerdConfig(quarter_meter_fraction=0.5),
    "D": HerdConfig(quarter_meter_fraction=0.0),
}
TUNING_SEEDS = (1, 2)
HELD_OUT_SEEDS = (101, 102, 103)
RESULTS = Path(__file__).parent / "results" / "health.json"


def _run_herd(job: tuple[str, int, HerdConfig]) -> dict[str, Any]:
    variant, seed, config = job
    t0 = time.monotonic()
    records, cases = simulate_herd(seed, config=config)
    t_sim = time.monotonic() - t0
    out: dict[str, Any] = {
        "variant": variant,
        "seed": seed,
        "cows": len({r.cow_id for r in records}),
        "days": config.days,
        "milkings": len(records),
        "clinical_cases": sum(1 for c in cases if c.kind == "clinical"),
        "subclinical_flares": sum(1 for c in cases if c.kind != "clinical"),
        "simulate_s": round(t_sim, 2),
    }
    for name, detector in (("seed_rule", SeedRuleDetector()), ("ours", MastitisDetector())):
        t0 = time.monotonic()
        alerts = [a for a in run_detector(detector, records) if not a.escalation]
        elapsed = time.monotonic() - t0
        result = score(records, cases, alerts)
        leads = [round(x, 1) for x in lead_times_h(cases, alerts)]
        out[name] = {**result.as_dict(), "detector_s": round(elapsed, 2), "leads_h": leads}
    return out


def _score_of(d: dict[str, Any]) -> Score:
    fields = {k: v for k, v in d.items() if k not in ("detector_s", "leads_h")}
    return Score(**fields)


def _row(h: dict[str, Any], who: str) -> str:
    s = h[who]
    lead = "-" if s["median_lead_h"] is None else f"{s['median_lead_h']:+.1f}"
    return (
        f"{h['variant']}{h['seed']:<4} {who:<9} {s['detected']:>3}/{s['clinical_cases']:<3} "
        f"{s['sensitivity']:>6.1%} {s['specificity']:>8.2%} {s['strict_specificity']:>8.2%} "
        f"{s['false_alerts_per_1000']:>7.2f} {lead:>7} {s['detected_before_onset']:>6}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.health", description=__doc__)
    parser.add_argument("--tuning", action="store_true", help="also run the tuning seeds")
    parser.add_argument("--seeds", type=int, nargs="*", default=None, help="held-out seeds")
    parser.add_argument("--cows", type=int, default=None)
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    seeds = tuple(args.seeds) if args.seeds else HELD_OUT_SEEDS
    groups = {"held_out": seeds, **({"tuning": TUNING_SEEDS} if args.tuning else {})}
    jobs: list[tuple[str, int, HerdConfig]] = []
    for variant, config in VARIANTS.items():
        if args.cows:
            config = replace(config, cows=args.cows)
        if args.days:
            config = replace(config, days=args.days)
        for group_seeds in groups.values():
            jobs += [(variant, seed, config) for seed in group_seeds]
    t0 = time.monotonic()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        herds = list(pool.map(_run_herd, jobs))
    wall = time.monotonic() - t0

    header = (
        f"{'herd':<8} {'detector':<9} {'cases':>7} {'sens':>6} {'spec':>8} {'strict':>8} "
        f"{'FA/1000':>7} {'lead h':>7} {'early':>6}"
    )
    summary: dict[str, Any] = {}
    for group, group_seeds in groups.items():
        print(f"\n{group} seeds {', '.join(map(str, group_seeds))}")
        print(header)
        chosen = [h for h in herds if h["seed"] in group_seeds]
        for h in chosen:
            print(_row(h, "seed_rule"))
            print(_row(h, "ours"))
        summary[group] = {}
        for variant in VARIANTS:
            per = [h for h in chosen if h["variant"] == variant]
            summary[group][variant] = {
                who: pooled([_score_of(h[who]) for h in per]) for who in ("seed_rule", "ours")
            }
            for who in ("seed_rule", "ours"):
                p = summary[group][variant][who]
                # The median over every detected case of the variant's herds (not a median of
                # per-herd medians, which hides how many cases sit on either side of onset).
                leads = [x for h in per for x in h[who]["leads_h"]]
                p["median_lead_h"] = round(statistics.median(leads), 1) if leads else None
                p["detected_at_onset"] = sum(1 for x in leads if x == 0.0)
        print(f"\n{group} pooled per variant")
        print(
            f"{'variant':<8} {'detector':<9} {'cases':>7} {'sens':>6} {'spec':>8} "
            f"{'FA/1000':>7} {'lead h':>7} {'before':>6} {'at':>4}"
        )
        for variant in VARIANTS:
            for who in ("seed_rule", "ours"):
                p = summary[group][variant][who]
                lead = "-" if p["median_lead_h"] is None else f"{p['median_lead_h']:+.1f}"
                print(
                    f"{variant:<8} {who:<9} {p['detected']:>3}/{p['clinical_cases']:<3} "
                    f"{p['sensitivity']:>6.1%} {p['specificity']:>8.2%} "
                    f"{p['false_alerts_per_1000']:>7.2f} {lead:>7} "
                    f"{p['detected_before_onset']:>6} {p['detected_at_onset']:>4}"
                )
    result = {
        "benchmark": "health",
        "what": "mastitis detection on simulated herds: seed rule (EC > 5.5*1.2) vs ours",
        "definitions": "milkconsole/health/scoring.py",
        "held_out_seeds": list(seeds),
        "tuning_seeds": list(TUNING_SEEDS),
        "variants": {k: asdict(v) | {"start": v.start.isoformat()} for k, v in VARIANTS.items()},
        "detector_params": asdict(DetectorParams()),
        "herds": herds,
        "pooled": summary,
        "wall_s": round(wall, 1),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\n{len(herds)} herds in {wall:.0f} s; written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
