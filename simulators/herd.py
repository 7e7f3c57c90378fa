"""A dairy herd's milking history with known mastitis cases, for evaluating the detector.

`simulate_herd(seed, ...)` returns one `MilkingSignals` per milking (what the evaluation CSV
holds) and the ground truth: every clinical case with its onset (the first milking at which the
milker would see clinical signs) and every sub-clinical flare. `python -m simulators.herd --out
sessions.csv --cases cases.csv` writes both files.

Effect sizes and how they were chosen (literature anchors in brackets; the simulator is meant
to be hard, not flattering):

* Cow-to-cow: cow baseline EC ~ N(5.0, 0.35) mS/cm [normal milk 4.0-6.0 mS/cm; Norberg 2004];
  fixed quarter-to-quarter offsets sd 4 %; per-milking measurement noise: cow-level 1.5-3.5 %
  CV, each quarter 2-4 % CV, plus a shared per-milking wobble of 1.5 %.
* Interval: yield follows the interval with a slight slowing of secretion for long intervals
  (24 h after a missed milking gives ~1.75x a 12 h yield) and EC rises 0.4 % per hour above
  12 h. 2x herds milk at 11/13 h intervals, 3x herds at 8 h; 0.3 % of milkings are missed
  (the next interval doubles) and 1 % are incomplete (kick-off; the rest comes next time).
* Herd-wide day effects (feed, weather): AR(1) per day, EC sd ~2 %, yield sd ~3 %, milk
  temperature sd 0.25 C.
* Lactation: Wood curves peaking at 38 +- 6 L/day; cows dry off at 305 days and are replaced by
  fresh cows whose transition milk has EC up to +30 % decaying within ~4 days, and blood in
  8 % of their first week's milkings.
* Meters: each stall's meter has its own EC calibration (sd 2 %); `drifting_meters` of them
  drift upward 0.4-1 %/day until recalibrated after 2-5 weeks, half of them in all channels,
  half in one quarter's electrode only (which also moves the cow value a quarter as much).
  Cows use their usual stall half the time. Outliers: 0.5 % of quarter values are off by
  -25..+40 %, 0.3 % of cow values by -15..+25 % (air in the cell, a short milking). Meters that
  do not give quarter EC leave the quarter columns empty; 3 % of cows have a blind quarter
  (always empty); 1 % of quarter values and 0.3 % of cow values drop out.
* Clinical cases (the truth the scorer counts), 60 per 100 cow-years by default (above the
  usual 25-40 so that a 90-day herd has enough cases; incidence does not change per-case
  sensitivity or per-healthy-day specificity), hazard 2.5x in the first 30 days in milk, onset
  at >= 4 days in milk. 75 % develop gradually (pre-clinical phase 24-72 h), 25 % are acute
  (4-16 h) [E. coli vs. Strep./Staph.]. The affected quarter's EC rises 10-30 % by the onset
  milking [Milner 1996; Norberg 2004: 10-30 % over 1-3 days before clinical signs], shaped
  as x^p with p in 1-2 over the pre-clinical phase (from linear to most of the rise near
  onset, as bacterial growth accelerates); 8 % of cases rise only 3-10 % by onset. It climbs
  to +30-100 % within 12 h and stays 3-7 days before recovering. The affected quarter's
  yield falls 5-30 % by onset, 30-70 % after.
  25 % are systemic: milk temperature +0.6-1.5 C from 6 h before onset and the whole cow's
  yield drops another 10-30 %. Blood at 15 % of onset milkings. 10 % affect two quarters.
* Sub-clinical: 15 % of cows carry one quarter with a steady +5-20 % EC (chronic; they are
  healthy cows for the scorer: a detector must learn them); flares at 1.0 per cow-year raise
  one quarter +5-15 % for 1-4 days and never turn clinical (the scorer's primary definition
  excludes flare days from specificity; its strict one counts them as healthy).
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from milkconsole.health.evaluate import write_sessions_csv
from milkconsole.health.mastitis import MilkingSignals

QUARTERS = ("lf", "rf", "lr", "rr")
START = datetime(2026, 1, 5, tzinfo=UTC)
CaseKind = Literal["clinical", "subclinical"]


@dataclass(frozen=True, slots=True)
class Case:
    """Ground truth for one case.

    Clinical: `onset` is the start of the first milking with clinical signs, `end` when the
    quarter is back to normal. Sub-clinical flare: `onset`..`end` is the flare. `preclinical_h`
    is how long before onset the quarter's EC began to rise; `ec_rise_at_onset` the affected
    quarter's relative EC rise at the onset milking.
    """

    cow_id: str
    kind: CaseKind
    onset: datetime
    end: datetime
    quarters: tuple[str, ...]
    preclinical_h: float
    ec_rise_at_onset: float
    systemic: bool = False


@dataclass(frozen=True, slots=True)
class HerdConfig:
    """Everything about one simulated herd except its random seed."""

    cows: int = 200
    days: int = 90
    milkings_per_day: int = 2
    stalls: int = 16
    quarter_meter_fraction: float = 1.0  # of stalls whose meter gives quarter EC
    drifting_meters: int = 1
    clinical_per_cow_year: float = 0.6
    chronic_subclinical_fraction: float = 0.15
    flares_per_cow_year: float = 1.0
    warmup_days: int = 5  # no clinical onset before this day: the farm had history before
    start: datetime = START


@dataclass(slots=True)
class _Effect:
    """A time-varying effect on some quarters (clinical case or flare), times in hours."""

    quarters: tuple[int, ...]
    start_h: float  # rise begins
    onset_h: float  # clinical onset (for a flare: end of the ramp)
    shape: float
    rise_onset: float
    rise_peak: float
    drop_onset: float
    drop_peak: float
    plateau_h: float
    recovery_h: float
    systemic: bool = False
    temp_rise_c: float = 0.0
    cow_drop: float = 0.0
    clinical: bool = True

    def quarter(self, t_h: float) -> tuple[float, float]:
        """(relative EC rise, yield drop fraction) of an affected quarter at t."""
        if t_h < self.start_h:
            return 0.0, 0.0
        if t_h <= self.onset_h:
            span = max(self.onset_h - self.start_h, 1e-6)
            x = ((t_h - self.start_h) / span) ** self.shape
            return self.rise_onset * x, self.drop_onset * x
        if not self.clinical:
            # A flare decays from the end of its ramp after its plateau.
            after = t_h - self.onset_h - self.plateau_h
            k = 1.0 if after <= 0 else math.exp(-after / self.recovery_h)
            return self.rise_onset * k, self.drop_onset * k
        since = t_h - self.onset_h
        if since <= 12.0:
            x = since / 12.0
            return (
                self.rise_onset + (self.rise_peak - self.rise_onset) * x,
                self.drop_onset + (self.drop_peak - self.drop_onset) * x,
            )
        after = since - self.plateau_h
        k = 1.0 if after <= 0 else math.exp(-after / self.recovery_h)
        return self.rise_peak * k, self.drop_peak * k

    def cow(self, t_h: float) -> tuple[float, float]:
        """(milk temperature rise C, whole-cow yield drop fraction) at t."""
        if not self.systemic or t_h < self.onset_h - 6.0:
            return 0.0, 0.0
        since = t_h - self.onset_h
        if since > 48.0:
            k = math.exp(-(since - 48.0) / 24.0)
            return self.temp_rise_c * k, self.cow_drop * k
        return self.temp_rise_c, self.cow_drop * min(1.0, max(0.0, (since + 6.0) / 18.0))

    @property
    def end_h(self) -> float:
        if self.clinical:
            return self.onset_h + self.plateau_h + 3 * self.recovery_h
        return self.onset_h + self.plateau_h + 2 * self.recovery_h


@dataclass(slots=True)
class _Cow:
    cow_id: str
    enter_h: float
    dim0: float  # days in milk at enter_h
    leave_h: float
    rank: float  # position in the milking order
    stall: int
    base_ec: float
    quarter_offset: tuple[float, ...]
    chronic: tuple[float, ...]
    share: tuple[float, ...]
    blind: int | None
    ec_noise: float
    q_noise: float
    peak_l_day: float
    wood_b: float
    wood_c: float
    base_temp_c: float
    effects: list[_Effect] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


def simulate_herd(
    seed: int,
    cows: int = 200,
    days: int = 90,
    *,
    config: HerdConfig | None = None,
) -> tuple[list[MilkingSignals], list[Case]]:
    """One herd's milkings in start order, and its cases (clinical and sub-clinical flares).

    `config` overrides everything but the seed; without it `cows` and `days` size a default herd.
    The same seed and config always give the same herd.
    """
    cfg = config or HerdConfig(cows=cows, days=days)
    rng = random.Random(seed)
    sim = _Simulation(cfg, rng)
    return sim.run()


class _Simulation:
    def __init__(self, cfg: HerdConfig, rng: random.Random) -> None:
        self.cfg = cfg
        self.rng = rng
        self.hours = cfg.days * 24.0
        self.cows: list[_Cow] = []
        self.next_id = 1
        self.day_ec = self._ar1(cfg.days + 2, 0.7, 0.015)
        self.day_yield = self._ar1(cfg.days + 2, 0.7, 0.022)
        self.day_temp = [0.25 * x for x in self._ar1(cfg.days + 2, 0.6, 0.8)]
        self.meter_ec = [rng.gauss(1.0, 0.02) for _ in range(cfg.stalls)]
        self.meter_yield = [rng.gauss(1.0, 0.02) for _ in range(cfg.stalls)]
        n_quarter = round(cfg.quarter_meter_fraction * cfg.stalls)
        self.meter_quarters = [i < n_quarter for i in range(cfg.stalls)]
        rng.shuffle(self.meter_quarters)
        # stall, start_h, end_h, relative drift per hour, channel (None: all; else one quarter)
        self.drifts: list[tuple[int, float, float, float, int | None]] = []
        for stall in rng.sample(range(cfg.stalls), min(cfg.drifting_meters, cfg.stalls)):
            start_h = rng.uniform(0.0, max(1.0, self.hours - 14 * 24.0))
            end_h = start_h + rng.uniform(14, 35) * 24.0
            channel = rng.randrange(4) if rng.random() < 0.5 else None
            self.drifts.append((stall, start_h, end_h, rng.uniform(0.004, 0.01) / 24.0, channel))

    def _ar1(self, n: int, rho: float, sd: float) -> list[float]:
        values = [self.rng.gauss(0.0, sd / math.sqrt(1 - rho * rho))]
        for _ in range(n - 1):
            values.append(rho * values[-1] + self.rng.gauss(0.0, sd))
        return values

    def _day_value(self, series: list[float], t_h: float) -> float:
        # Interpolated between day midpoints so a day effect changes smoothly, as weather does.
        x = t_h / 24.0 - 0.5
        i = max(0, min(len(series) - 2, math.floor(x)))
        f = min(1.0, max(0.0, x - i))
        return series[i] * (1 - f) + series[i + 1] * f

    def _new_cow(self, enter_h: float, dim0: float) -> _Cow:
        rng = self.rng
        blind = rng.randrange(4) if rng.random() < 0.03 else None
        share = [0.2, 0.2, 0.3, 0.3]
        share = [s * rng.gauss(1.0, 0.1) for s in share]
        if blind is not None:
            share[blind] = 0.0
        total = sum(share)
        chronic = [0.0, 0.0, 0.0, 0.0]
        if rng.random() < self.cfg.chronic_subclinical_fraction:
            q = rng.choice([i for i in range(4) if i != blind])
            chronic[q] = rng.uniform(0.05, 0.20)
        cow = _Cow(
            cow_id=f"C{self.next_id:04d}",
            enter_h=enter_h,
            dim0=dim0,
            leave_h=enter_h + (305.0 - dim0) * 24.0,
            rank=rng.random(),
            stall=rng.randrange(self.cfg.stalls),
            base_ec=rng.gauss(5.0, 0.35),
            quarter_offset=tuple(rng.gauss(0.0, 0.04) for _ in range(4)),
            chronic=tuple(chronic),
            share=tuple(s / total for s in share),
            blind=blind,
            ec_noise=rng.uniform(0.015, 0.035),
            q_noise=rng.uniform(0.02, 0.04),
            peak_l_day=max(20.0, rng.gauss(38.0, 6.0)),
            wood_b=rng.uniform(0.15, 0.25),
            wood_c=rng.uniform(0.003, 0.005),
            base_temp_c=rng.gauss(36.8, 0.3),
        )
        self.next_id += 1
        return cow

    def _session_starts(self) -> list[float]:
        per_day = self.cfg.milkings_per_day
        offsets = [4.5, 15.5] if per_day == 2 else [4.0 + 8.0 * i for i in range(per_day)]
        return [d * 24.0 + o for d in range(self.cfg.days) for o in offsets]

    def run(self) -> tuple[list[MilkingSignals], list[Case]]:
        cfg, rng = self.cfg, self.rng
        for _ in range(cfg.cows):
            self.cows.append(self._new_cow(0.0, rng.uniform(5.0, 300.0)))
        session_h = cfg.cows / (cfg.stalls * 4.5)  # a 16-stall parlour turns ~4.5 times an hour
        herd = list(self.cows)
        for s_start in self._session_starts():
            for i, cow in enumerate(herd):
                if s_start >= cow.leave_h:
                    # Dried off: a fresh cow takes her place from this session on.
                    herd[i] = cow = self._new_cow(s_start, 0.0)
                    self.cows.append(cow)
                if rng.random() < 0.003:
                    continue  # missed milking
                t = s_start + session_h * min(1.0, max(0.0, cow.rank + rng.gauss(0.0, 0.08)))
                if not cow.times or t > cow.times[-1] + 2.0:
                    cow.times.append(t)
        cases: list[Case] = []
        for cow in self.cows:
            cases += self._cases_for(cow)
        records: list[MilkingSignals] = []
        for cow in self.cows:
            records += self._milkings(cow)
        records.sort(key=lambda r: (r.start, r.cow_id))
        cases.sort(key=lambda c: (c.onset, c.cow_id))
        return records, cases

    def _dim(self, cow: _Cow, t_h: float) -> float:
        return cow.dim0 + (t_h - cow.enter_h) / 24.0

    def _cases_for(self, cow: _Cow) -> list[Case]:
        cfg, rng = self.cfg, self.rng
        cases: list[Case] = []
        free_from = cfg.warmup_days * 24.0
        last_interval = 24.0 / cfg.milkings_per_day
        for i, t in enumerate(cow.times):
            interval = t - cow.times[i - 1] if i else last_interval
            dim = self._dim(cow, t)
            if t < free_from or dim < 4.0 or t > self.hours - 36.0:
                continue
            hazard = cfg.clinical_per_cow_year / (365.0 * 24.0) * interval
            if dim < 30.0:
                hazard *= 2.5
            if rng.random() < hazard:
                effect = self._clinical(cow, t)
                cow.effects.append(effect)
                cases.append(self._case(cow, effect, "clinical"))
                free_from = t + 21 * 24.0
        # Flares: anywhere away from the clinical cases (they are a different question).
        n_flares = _poisson(
            rng, cfg.flares_per_cow_year * len(cow.times) / (cfg.milkings_per_day * 365.0)
        )
        clinical = list(cow.effects)
        for _ in range(n_flares):
            t0 = rng.uniform(cow.times[0], cow.times[-1]) if cow.times else 0.0
            if any(e.start_h - 7 * 24.0 < t0 < e.end_h + 7 * 24.0 for e in clinical):
                continue
            effect = self._flare(cow, t0)
            cow.effects.append(effect)
            cases.append(self._case(cow, effect, "subclinical"))
        return cases

    def _quarters(self, cow: _Cow) -> tuple[int, ...]:
        usable = [q for q in range(4) if q != cow.blind]
        n = 2 if self.rng.random() < 0.10 else 1
        return tuple(sorted(self.rng.sample(usable, n)))

    def _clinical(self, cow: _Cow, onset_h: float) -> _Effect:
        rng = self.rng
        acute = rng.random() < 0.25
        lead_h = rng.uniform(4.0, 16.0) if acute else rng.uniform(24.0, 72.0)
        # A few cases show little conductivity change until after clinical signs.
        weak = rng.random() < 0.08
        rise_onset = rng.uniform(0.03, 0.10) if weak else rng.uniform(0.10, 0.30)
        systemic = rng.random() < 0.25
        return _Effect(
            quarters=self._quarters(cow),
            start_h=onset_h - lead_h,
            onset_h=onset_h,
            shape=rng.uniform(1.0, 2.0),
            rise_onset=rise_onset,
            rise_peak=rise_onset + rng.uniform(0.2, 0.7),
            drop_onset=rng.uniform(0.05, 0.30),
            drop_peak=rng.uniform(0.30, 0.70),
            plateau_h=rng.uniform(3.0, 7.0) * 24.0,
            recovery_h=rng.uniform(24.0, 72.0),
            systemic=systemic,
            temp_rise_c=rng.uniform(0.6, 1.5) if systemic else 0.0,
            cow_drop=rng.uniform(0.10, 0.30) if systemic else 0.0,
        )

    def _flare(self, cow: _Cow, start_h: float) -> _Effect:
        rng = self.rng
        ramp_h = rng.uniform(12.0, 24.0)
        return _Effect(
            quarters=self._quarters(cow)[:1],
            start_h=start_h,
            onset_h=start_h + ramp_h,
            shape=1.0,
            rise_onset=rng.uniform(0.05, 0.15),
            rise_peak=0.0,
            drop_onset=rng.uniform(0.0, 0.08),
            drop_peak=0.0,
            plateau_h=rng.uniform(0.0, 48.0),
            recovery_h=rng.uniform(8.0, 16.0),
            clinical=False,
        )

    def _case(self, cow: _Cow, e: _Effect, kind: CaseKind) -> Case:
        start = self.cfg.start
        onset = e.onset_h if kind == "clinical" else e.start_h
        return Case(
            cow_id=cow.cow_id,
            kind=kind,
            # Whole seconds, as the milking records have them: the onset is a milking's start.
            onset=(start + timedelta(hours=onset)).replace(microsecond=0),
            end=(start + timedelta(hours=e.end_h)).replace(microsecond=0),
            quarters=tuple(QUARTERS[q] for q in e.quarters),
            preclinical_h=round(e.onset_h - e.start_h, 2),
            ec_rise_at_onset=round(e.rise_onset, 4),
            systemic=e.systemic,
        )

    def _meter_ec(self, stall: int, t_h: float) -> tuple[float, list[float]]:
        """(cow-level factor, per-quarter-channel factors) of a stall's meter at t."""
        base = self.meter_ec[stall]
        channels = [base] * 4
        for d_stall, start_h, end_h, per_h, channel in self.drifts:
            if d_stall == stall and start_h <= t_h < end_h:
                drift = per_h * (t_h - start_h)
                if channel is None:
                    channels = [c * (1.0 + drift) for c in channels]
                else:
                    channels[channel] *= 1.0 + drift
        # The cow-level cell sees the mixed milk: a fouled quarter electrode moves it a quarter.
        return sum(channels) / 4.0, channels

    def _milkings(self, cow: _Cow) -> list[MilkingSignals]:
        cfg, rng = self.cfg, self.rng
        out: list[MilkingSignals] = []
        nominal = 24.0 / cfg.milkings_per_day
        carry_l = 0.0
        for i, t in enumerate(cow.times):
            interval = t - cow.times[i - 1] if i else nominal
            dim = self._dim(cow, t)
            stall = cow.stall if rng.random() < 0.5 else rng.randrange(cfg.stalls)
            # Quarter state: EC rise and yield drop from every effect.
            rise = [0.0] * 4
            drop = [0.0] * 4
            temp_rise = 0.0
            cow_drop = 0.0
            blood_p = 0.08 if dim < 7 else 0.001
            for e in cow.effects:
                for q in e.quarters:
                    r, d = e.quarter(t)
                    rise[q] = max(rise[q], r)
                    drop[q] = max(drop[q], d)
                tr, cd = e.cow(t)
                temp_rise = max(temp_rise, tr)
                cow_drop = max(cow_drop, cd)
                if e.clinical and abs(t - e.onset_h) < 0.5:
                    blood_p = max(blood_p, 0.15)
                elif e.clinical and 0 < t - e.onset_h < 48.0:
                    blood_p = max(blood_p, 0.10)
            # Yield: Wood curve, interval with slowing secretion, day effect, noise.
            d = max(dim, 0.0) + 1.0
            wood_peak_dim = cow.wood_b / cow.wood_c
            scale = cow.peak_l_day / (wood_peak_dim**cow.wood_b * math.exp(-cow.wood_b))
            daily_l = scale * d**cow.wood_b * math.exp(-cow.wood_c * d)
            eff_h = interval * max(0.5, 1.0 - 0.01 * (interval - 12.0))
            q_yield = [daily_l / 24.0 * eff_h * cow.share[q] * (1.0 - drop[q]) for q in range(4)]
            yield_l = sum(q_yield) * (1.0 - cow_drop) * (1.0 + self._day_value(self.day_yield, t))
            yield_l *= max(0.5, rng.gauss(1.0, 0.06)) * self.meter_yield[stall]
            yield_l += carry_l
            carry_l = 0.0
            if rng.random() < 0.01:
                kept = rng.uniform(0.3, 0.8)
                carry_l = yield_l * (1.0 - kept) * 0.8
                yield_l *= kept
            # EC: cow, quarter, interval, lactation stage, day, meter, noise.
            fresh = 0.30 * math.exp(-max(dim, 0.0) / 1.2) + 0.0002 * max(dim, 0.0)
            common = (
                (1.0 + self._day_value(self.day_ec, t))
                * (1.0 + 0.004 * (min(interval, 30.0) - 12.0))
                * (1.0 + fresh)
                * (1.0 + rng.gauss(0.0, 0.015))
            )
            true_q = [
                cow.base_ec * (1 + cow.quarter_offset[q]) * (1 + cow.chronic[q]) * (1 + rise[q])
                for q in range(4)
            ]
            weights = [cow.share[q] * (1.0 - drop[q]) for q in range(4)]
            cow_true = sum(w * e for w, e in zip(weights, true_q, strict=True)) / sum(weights)
            meter, channels = self._meter_ec(stall, t)
            ec_value = cow_true * common * meter * (1.0 + rng.gauss(0.0, cow.ec_noise))
            if rng.random() < 0.003:
                ec_value *= rng.uniform(0.85, 1.25)  # air in the cell, a short milking
            ec = None if rng.random() < 0.003 else ec_value
            quarters: list[float | None] = [None] * 4
            if self.meter_quarters[stall]:
                for q in range(4):
                    if q == cow.blind or rng.random() < 0.01:
                        continue
                    value = true_q[q] * common * channels[q] * (1.0 + rng.gauss(0.0, cow.q_noise))
                    if rng.random() < 0.005:
                        value *= rng.uniform(0.75, 1.4)
                    quarters[q] = round(value, 3)
            temp: float | None = (
                cow.base_temp_c
                + self._day_value(self.day_temp, t)
                + temp_rise
                + rng.gauss(0.0, 0.2)
            )
            if rng.random() < 0.003:
                temp = None
            blood = rng.random() < blood_p
            flow_l_min = rng.uniform(2.0, 3.2)
            start = cfg.start + timedelta(hours=t)
            start = start.replace(microsecond=0)
            end = start + timedelta(minutes=round(yield_l / flow_l_min + 1.0, 1))
            out.append(
                MilkingSignals(
                    cow_id=cow.cow_id,
                    start=start,
                    end=end.replace(microsecond=0),
                    yield_l=round(yield_l, 2),
                    conductivity_ms_cm=None if ec is None else round(ec, 3),
                    quarters=(quarters[0], quarters[1], quarters[2], quarters[3]),
                    temperature_c=None if temp is None else round(temp, 2),
                    blood=blood,
                )
            )
        return out


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method: lam is small here (flares per cow over the run).
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


CASE_COLUMNS = (
    "cow_id",
    "kind",
    "onset_time",
    "end_time",
    "quarters",
    "preclinical_h",
    "ec_rise_at_onset",
    "systemic",
)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_cases_csv(path: Path, cases: Sequence[Case]) -> None:
    """The ground truth as CSV (`CASE_COLUMNS`), read back by `milkconsole.health.scoring`."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CASE_COLUMNS)
        for c in cases:
            w.writerow(
                [
                    c.cow_id,
                    c.kind,
                    _iso(c.onset),
                    _iso(c.end),
                    ";".join(c.quarters),
                    c.preclinical_h,
                    c.ec_rise_at_onset,
                    int(c.systemic),
                ]
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.herd",
        description="Simulate a herd's milkings with known mastitis cases.",
    )
    parser.add_argument("--out", type=Path, required=True, help="sessions CSV to write")
    parser.add_argument("--cases", type=Path, required=True, help="ground-truth CSV to write")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cows", type=int, default=200)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--milkings-per-day", type=int, choices=(2, 3), default=2)
    parser.add_argument(
        "--quarter-meters",
        type=float,
        default=1.0,
        help="fraction of stalls whose meter gives quarter conductivity (0-1)",
    )
    parser.add_argument("--drifting-meters", type=int, default=1)
    args = parser.parse_args(argv)
    if not 0.0 <= args.quarter_meters <= 1.0:
        parser.error("--quarter-meters must be between 0 and 1")
    cfg = HerdConfig(
        cows=args.cows,
        days=args.days,
        milkings_per_day=args.milkings_per_day,
        quarter_meter_fraction=args.quarter_meters,
        drifting_meters=args.drifting_meters,
    )
    records, cases = simulate_herd(args.seed, config=cfg)
    write_sessions_csv(args.out, records)
    write_cases_csv(args.cases, cases)
    clinical = sum(1 for c in cases if c.kind == "clinical")
    print(
        f"{len(records)} milkings of {len({r.cow_id for r in records})} cows, "
        f"{clinical} clinical cases, {len(cases) - clinical} sub-clinical flares"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
