"""Scoring a mastitis detector's alerts against known cases (simulated herds or farm records).

Definitions (the numbers the bench reports):

* A clinical case is detected when the cow has an alert whose milking started in
  [onset - 48 h, onset + 24 h] (Hogeveen et al. 2010's window is 48 h; we also accept alerts
  up to a day after the milker would have seen clots). Sensitivity = detected / cases.
* Lead time of a detected case = onset - the first alert in that window, in hours (> 0 means
  the alert came before clinical signs; 0 means at the milking where clots show). Reported as
  the median over detected cases, and as the number detected before onset.
* Cow-days: every (cow, UTC calendar day) with at least one milking. A cow-day is excluded from
  the specificity count when it touches [onset - 7 days, case end + 3 days] of one of the cow's
  clinical cases (pre-clinical infection, treatment, recovery: an alert there is neither false
  nor a detection). Primary definition: cow-days touching [flare start - 1 day, flare end +
  1 day] of a sub-clinical flare are excluded too (the cow does have an infection, the farmer
  who checks her finds it; it is not what the sensitivity counts either). Strict definition:
  flare days count as healthy.
* Specificity = healthy cow-days without any alert / healthy cow-days.
* False alerts per 1000 milkings = alerts on healthy cow-days * 1000 / all milkings.
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Protocol

from milkconsole.health.evaluate import SessionsFileError, parse_time
from milkconsole.health.mastitis import MilkingSignals, RaisedAlert

DETECT_BEFORE = timedelta(hours=48)
DETECT_AFTER = timedelta(hours=24)
EXCLUDE_BEFORE = timedelta(days=7)
EXCLUDE_AFTER = timedelta(days=3)
FLARE_MARGIN = timedelta(days=1)


class CaseLike(Protocol):
    """What the scorer needs of a case (`simulators.herd.Case` and `TruthCase` both fit)."""

    @property
    def cow_id(self) -> str: ...
    @property
    def kind(self) -> str: ...  # "clinical" or "subclinical"
    @property
    def onset(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class TruthCase:
    """One known case read from a cases file."""

    cow_id: str
    kind: str
    onset: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Score:
    """How one detector did on one herd (see the module docstring for the definitions)."""

    milkings: int
    clinical_cases: int
    detected: int
    sensitivity: float
    specificity: float
    false_alerts_per_1000: float
    median_lead_h: float | None
    detected_before_onset: int
    healthy_cow_days: int
    strict_specificity: float
    strict_false_alerts_per_1000: float
    flares: int
    flares_alerted: int
    alerts: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "milkings": self.milkings,
            "clinical_cases": self.clinical_cases,
            "detected": self.detected,
            "sensitivity": round(self.sensitivity, 4),
            "specificity": round(self.specificity, 5),
            "false_alerts_per_1000": round(self.false_alerts_per_1000, 3),
            "median_lead_h": None if self.median_lead_h is None else round(self.median_lead_h, 1),
            "detected_before_onset": self.detected_before_onset,
            "healthy_cow_days": self.healthy_cow_days,
            "strict_specificity": round(self.strict_specificity, 5),
            "strict_false_alerts_per_1000": round(self.strict_false_alerts_per_1000, 3),
            "flares": self.flares,
            "flares_alerted": self.flares_alerted,
            "alerts": self.alerts,
        }


def _days_touched(start: datetime, end: datetime) -> Iterable[date]:
    day = start.date()
    while day <= end.date():
        yield day
        day += timedelta(days=1)


def score(
    records: Sequence[MilkingSignals], cases: Sequence[CaseLike], alerts: Sequence[RaisedAlert]
) -> Score:
    """Score `alerts` (mastitis alerts of one detector) against the herd's known cases."""
    cow_days: set[tuple[str, date]] = {(r.cow_id, r.start.date()) for r in records}
    clinical = [c for c in cases if c.kind == "clinical"]
    flares = [c for c in cases if c.kind != "clinical"]
    by_cow: dict[str, list[RaisedAlert]] = defaultdict(list)
    for a in alerts:
        by_cow[a.cow_id].append(a)
    for cow_alerts in by_cow.values():
        cow_alerts.sort(key=lambda a: a.start_time)

    leads = lead_times_h(cases, alerts)
    detected = len(leads)

    case_days: set[tuple[str, date]] = set()
    for c in clinical:
        for d in _days_touched(c.onset - EXCLUDE_BEFORE, c.end + EXCLUDE_AFTER):
            case_days.add((c.cow_id, d))
    flare_days: set[tuple[str, date]] = set()
    for c in flares:
        for d in _days_touched(c.onset - FLARE_MARGIN, c.end + FLARE_MARGIN):
            flare_days.add((c.cow_id, d))
    alert_days = {(a.cow_id, a.start_time.date()) for a in alerts}

    strict_healthy = cow_days - case_days
    healthy = strict_healthy - flare_days
    n_milkings = max(len(records), 1)

    def spec(days: set[tuple[str, date]]) -> float:
        return 1.0 - len(days & alert_days) / len(days) if days else 1.0

    def false_per_1000(days: set[tuple[str, date]]) -> float:
        n = sum(1 for a in alerts if (a.cow_id, a.start_time.date()) in days)
        return n * 1000.0 / n_milkings

    flares_alerted = sum(
        1
        for c in flares
        if any(
            c.onset - FLARE_MARGIN <= a.start_time <= c.end + FLARE_MARGIN
            for a in by_cow.get(c.cow_id, [])
        )
    )
    return Score(
        milkings=len(records),
        clinical_cases=len(clinical),
        detected=detected,
        sensitivity=detected / len(clinical) if clinical else 1.0,
        specificity=spec(healthy),
        false_alerts_per_1000=false_per_1000(healthy),
        median_lead_h=statistics.median(leads) if leads else None,
        detected_before_onset=sum(1 for lead in leads if lead > 0),
        healthy_cow_days=len(healthy),
        strict_specificity=spec(strict_healthy),
        strict_false_alerts_per_1000=false_per_1000(strict_healthy),
        flares=len(flares),
        flares_alerted=flares_alerted,
        alerts=len(alerts),
    )


def lead_times_h(cases: Sequence[CaseLike], alerts: Sequence[RaisedAlert]) -> list[float]:
    """Lead time in hours of every detected clinical case, in case order (see the module
    docstring: onset minus the first alert in [onset - 48 h, onset + 24 h])."""
    first: dict[str, list[datetime]] = defaultdict(list)
    for a in alerts:
        first[a.cow_id].append(a.start_time)
    leads: list[float] = []
    for c in cases:
        if c.kind != "clinical":
            continue
        hits = [
            t
            for t in first.get(c.cow_id, [])
            if c.onset - DETECT_BEFORE <= t <= c.onset + DETECT_AFTER
        ]
        if hits:
            leads.append((c.onset - min(hits)).total_seconds() / 3600.0)
    return leads


def pooled(scores: Sequence[Score]) -> dict[str, float | int | None]:
    """Totals over several herds (sensitivity over all cases, specificity over all cow-days)."""
    cases = sum(s.clinical_cases for s in scores)
    detected = sum(s.detected for s in scores)
    early = sum(s.detected_before_onset for s in scores)
    days = sum(s.healthy_cow_days for s in scores)
    milkings = sum(s.milkings for s in scores)
    fp_days = sum((1.0 - s.specificity) * s.healthy_cow_days for s in scores)
    fa = sum(s.false_alerts_per_1000 * s.milkings / 1000.0 for s in scores)
    return {
        "clinical_cases": cases,
        "detected": detected,
        "detected_before_onset": early,
        "sensitivity": round(detected / cases, 4) if cases else None,
        "specificity": round(1.0 - fp_days / days, 5) if days else None,
        "false_alerts_per_1000": round(fa * 1000.0 / milkings, 3) if milkings else None,
    }


def read_cases_csv(path: Path) -> list[TruthCase]:
    """Known cases from a file with at least cow_id, kind, onset_time, end_time columns."""
    name = str(path)
    out: list[TruthCase] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = {"cow_id", "kind", "onset_time", "end_time"}
        if reader.fieldnames is None or need - set(reader.fieldnames):
            missing = sorted(need - set(reader.fieldnames or []))
            raise SessionsFileError(name, 1, missing[0], "missing from the header row")
        for row in reader:
            line = reader.line_num
            kind = row["kind"].strip()
            if kind not in ("clinical", "subclinical"):
                raise SessionsFileError(name, line, "kind", f"{kind!r} is not clinical/subclinical")
            times = {}
            for column in ("onset_time", "end_time"):
                try:
                    times[column] = parse_time(row[column])
                except ValueError as exc:
                    raise SessionsFileError(name, line, column, str(exc)) from None
            out.append(
                TruthCase(row["cow_id"].strip(), kind, times["onset_time"], times["end_time"])
            )
    return out
