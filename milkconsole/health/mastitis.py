"""Mastitis detection from each cow's milkings: causal, per cow, against her own recent normal.

`MastitisDetector.observe(milking)` takes milkings (`MilkingSignals`) in time order (any mix of
cows) and returns the alerts that milking raises (`RaisedAlert`). It uses only the milking itself
and earlier ones, so the alerts up to any time T never change when later milkings arrive.

How one milking is judged (all comparisons on a log scale, so a rise is a relative rise):

1. The cow's baseline is the median of her own milkings from the last `baseline_days`, leaving
   out the most recent `baseline_gap_h` (so a rise that builds over a day or two does not drag
   its own baseline up) and leaving out milkings that were part of an alert while enough others
   remain (so a long case is not learned as normal, yet a lasting change is learned in about a
   week). Its spread (MAD) gives her own noise, shrunk towards a prior while she is new; a
   quarter's noise is mostly pooled with her other quarters' (same milk, same meter), since
   the MAD of 20 milkings alone is rough enough to make a quietly-measured quarter look noisy
   and a noisy one look alarming.
2. Herd-wide effects are taken out before comparing: the median over the herd's recent
   milkings (this session, `herd_window_h`) of each cow's deviation from her own baseline, for
   conductivity, yield rate and milk temperature (feed, weather, a hot day), and an online
   estimate of how conductivity follows the milking interval. Yield is compared as a rate for
   the interval (`yield_interval_exponent` < 1: secretion slows in a long interval).
3. Features, each a z-score against her own noise:
   * per quarter: its conductivity relative to the median of her other quarters, against that
     quarter's own usual ratio (a meter's calibration, a drifting meter, the day and the
     interval move all quarters together and cancel here), and the same quarter's rise against
     its own baseline (so a drop in the other quarters is not a rise); a quarter's evidence is
     the smaller of the two;
   * cow conductivity rise, yield shortfall, milk temperature rise, blood.
4. Four channels, one per quarter: the quarter's z plus the cow-level features (weighted sum
   scaled to unit noise; a quarter without data uses the cow-level features alone, with their
   own weights and allowance `k_cow`). Each channel is a one-sided CUSUM: it adds the evidence
   above the allowance `k`, at most `max_step` a milking (one odd reading cannot alert), and
   falls back to zero on normal milkings. A warning when a channel reaches `h_warning` (with
   `persistence` milkings over the allowance); critical at `h_critical`, or with fever or blood.
   Beside each quarter's CUSUM, a trend: a one-sided EWMA of its z (clipped, so an outlier
   moves it little) that warns when a quarter has climbed for two or three milkings, which is
   how the pre-clinical rise looks; it carries most of the alerts raised before onset.
   Without quarter data, a milking whose conductivity is up and yield down together
   (`joint_z`, `joint_sum`) warns at once: two independent readings are not one odd reading.
5. One open alert per cow and condition: after an alert the channels restart from zero and the
   cow stays quiet until they have been zero for `close_after` milkings; a warning may escalate
   once to critical (a `RaisedAlert` with `escalation=True`, which the store applies to the alert
   already open). A warning that did not escalate lapses after `warning_hold_h` once no
   channel is at warning level, so a case that starts later is not hidden behind it.

What it cannot do (measured in bench/health.py, held-out seeds 101-103, pooled): with quarter
data it finds 98 % of simulated clinical cases (2x/day) and 100 % (3x/day) at 99.3 % cow-day
specificity, 31 of 101 and 40 of 81 of them before the milking where clots show, but the
median alert is still at that milking (lead 0 h), not before it: a quarter's pre-clinical rise
is 1-3 noise sd at the milking before onset, a quarter of the cases are acute (no rise before
the previous milking), and on the tuning herds every rule on quarter conductivity alone that
alerts half the 2x/day cases early costs more than 1 % specificity. With half the meters
giving quarter data it finds 84 % (99.2 %), with cow-level data only 74 % (99.3 %), after onset.
`h_trend` is the trade: 2.7 (default, tuned for early alerts) gives about 3 false alerts per
1000 milkings; 2.9 halves that (1.3-1.6) for about a fifth fewer alerts before onset and 2 %
less sensitivity with 2x/day quarter data.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Severity = Literal["warning", "critical"]
QUARTER_NAMES = ("lf", "rf", "lr", "rr")
CONDITION = "mastitis"
_MAD_TO_SD = 1.4826


@dataclass(frozen=True, slots=True)
class MilkingSignals:
    """The signals of one finished milking of one cow that the detector reads: its input, made
    from a recorded session by the health hook (`hook.milking_signals`), from a history file by
    `evaluate.read_sessions_csv`, and by the simulated herd.

    `quarters` is the conductivity of each quarter (LF, RF, LR, RR) in mS/cm, None where the
    meter gave none. Times are aware UTC.
    """

    cow_id: str
    start: datetime
    end: datetime
    yield_l: float
    conductivity_ms_cm: float | None = None
    quarters: tuple[float | None, float | None, float | None, float | None] = (
        None,
        None,
        None,
        None,
    )
    temperature_c: float | None = None
    blood: bool | None = None


@dataclass(frozen=True, slots=True)
class RaisedAlert:
    """The alert as raised: what the detector says at one milking (`start_time` is that
    milking's start). The health hook stores it (then it is the store's `AlertRecord`).

    `escalation` is True when it raises the severity of the cow's alert already open.
    """

    cow_id: str
    start_time: datetime
    severity: Severity
    condition: str
    reason: str
    escalation: bool = False


@dataclass(frozen=True, slots=True)
class DetectorParams:
    """Everything tunable about the detector (a parlour config may override any of them in
    `[health.mastitis]`). The weights and thresholds were tuned on the bench's simulated herds
    with seeds 1-2 and are reported on seeds 101-103 (`bench/health.py`)."""

    baseline_days: float = 10.0
    baseline_gap_h: float = 20.0
    min_baseline: int = 6
    herd_window: int = 150
    herd_window_h: float = 10.0
    nominal_interval_h: float = 12.0
    yield_interval_exponent: float = 0.9
    # A cow not milked for this long starts over (dry period, sick pen, data gap).
    restart_after_h: float = 5 * 24.0
    # Prior noise (sd of log values) and its weight in milkings, for cows with little history.
    prior_sd_ec: float = 0.03
    prior_sd_quarter: float = 0.04
    prior_sd_rel: float = 0.045
    prior_sd_yield: float = 0.08
    prior_sd_temp_c: float = 0.3
    prior_weight: float = 8.0
    # How much of each quarter's noise estimate comes from the cow's four quarters pooled.
    quarter_sd_pooling: float = 0.8
    min_sd_ec: float = 0.012
    min_sd_rel: float = 0.02
    min_sd_yield: float = 0.04
    min_sd_temp_c: float = 0.12
    clip_z: float = 6.0
    # Evidence weights (z-score units) and the CUSUM.
    w_quarter: float = 1.0
    # Cow conductivity weighs less beside quarter data: it is their mix, and a meter or herd
    # effect moves it while the quarters' ratios stay put.
    w_ec_with_quarters: float = 0.0
    w_ec: float = 0.3
    w_yield: float = 0.45
    w_temp: float = 0.3
    blood_z: float = 3.0
    k: float = 1.25
    # The allowance of a channel without quarter data (cow-level features only).
    k_cow: float = 1.0
    # One milking adds at most this much evidence, so one odd reading cannot alert alone.
    max_step: float = 3.5
    h_warning: float = 3.0
    h_critical: float = 8.0
    # The early-warning trend channel: a one-sided EWMA of each quarter's conductivity z (each
    # milking clipped to +-`trend_clip`, so one odd reading moves it little), warning when it
    # exceeds `h_trend` of its healthy spread. A quarter climbing steadily for two or three
    # milkings crosses it before the CUSUM, whose per-milking allowance ignores small rises.
    trend_lambda: float = 0.5
    trend_clip: float = 2.5
    h_trend: float = 2.7
    persistence: int = 1
    # Cow-level data alone: one milking with conductivity and yield both this many sd off, and
    # together `joint_sum`, warns without waiting for a second milking.
    joint_z: float = 2.0
    joint_sum: float = 5.0
    fever_z: float = 3.0
    close_after: int = 2
    # A warning lapses after this many hours unless it escalated (None: it stays open while
    # the cow is not quiet).
    warning_hold_h: float | None = 24.0

    def __post_init__(self) -> None:
        for name in (
            "baseline_days",
            "herd_window",
            "k",
            "h_warning",
            "max_step",
            "trend_lambda",
            "trend_clip",
            "h_trend",
        ):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"DetectorParams.{name}: {value!r} must be > 0")
        if self.h_critical < self.h_warning:
            raise ValueError("DetectorParams.h_critical: must be >= h_warning")
        if self.trend_lambda > 1.0:
            raise ValueError(f"DetectorParams.trend_lambda: {self.trend_lambda!r} must be <= 1")
        if not 0.0 <= self.quarter_sd_pooling <= 1.0:
            raise ValueError(
                f"DetectorParams.quarter_sd_pooling: {self.quarter_sd_pooling!r} must be in 0..1"
            )
        if self.warning_hold_h is not None and not self.warning_hold_h > 0:
            raise ValueError(f"DetectorParams.warning_hold_h: {self.warning_hold_h!r} must be > 0")


@dataclass(frozen=True, slots=True)
class Assessment:
    """What the detector made of one milking (for health events, reports and tuning).

    `z_quarters` is each quarter's conductivity evidence (None where it has no data or no
    baseline); `evidence` the combined evidence of each quarter's channel (the cow-level
    features alone when the quarter has no data); `cusum` each channel's accumulated evidence;
    `trend` each quarter's early-warning trend in units of its healthy spread (0 without data).
    """

    cow_id: str
    start_time: datetime
    interval_h: float | None
    z_quarters: tuple[float | None, ...]
    z_ec: float | None
    z_yield: float | None
    z_temp: float | None
    blood: bool
    evidence: tuple[float, ...]
    cusum: tuple[float, ...]
    baseline_n: int
    trend: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)

    @property
    def top_channel(self) -> int:
        return max(range(len(self.cusum)), key=lambda i: self.cusum[i] + self.trend[i])

    def reason(self) -> str:
        """The findings in words, strongest first (what the operator reads on the alert)."""
        parts: list[tuple[float, str]] = []
        zq = self.z_quarters[self.top_channel]
        if zq is not None and zq >= 1.5:
            parts.append((zq, f"quarter {QUARTER_NAMES[self.top_channel].upper()} conductivity up"))
        if self.z_ec is not None and self.z_ec >= 1.5:
            parts.append((self.z_ec, "cow conductivity up"))
        if self.z_yield is not None and self.z_yield >= 1.5:
            parts.append((self.z_yield, "yield down"))
        if self.z_temp is not None and self.z_temp >= 1.5:
            parts.append((self.z_temp, "milk temperature up"))
        if self.blood:
            parts.append((0.0, "blood"))
        parts.sort(key=lambda p: -p[0])
        found = ", ".join(text if text == "blood" else f"{text} ({z:.1f} sd)" for z, text in parts)
        score = max(self.cusum)
        trend = max(self.trend)
        rising = f", rising {trend:.1f}" if trend >= 1.0 else ""
        return f"{found or 'small changes over several milkings'}; score {score:.1f}{rising}"


@dataclass(slots=True)
class _Entry:
    """One past milking of a cow, normalised for herd and interval effects (logs)."""

    start: datetime
    ec: float | None
    quarters: tuple[float | None, ...]
    rel: tuple[float | None, ...]
    rate: float | None
    temp: float | None
    flagged: bool


@dataclass(slots=True)
class CowState:
    """A cow's detector state. Rebuilt from her milkings with `MastitisDetector.from_history`."""

    cow_id: str
    history: deque[_Entry] = field(default_factory=deque)
    last_start: datetime | None = None
    cusum: list[float] = field(default_factory=lambda: [0.0] * 4)
    trend: list[float] = field(default_factory=lambda: [0.0] * 4)
    runs: list[int] = field(default_factory=lambda: [0] * 4)
    open_severity: Severity | None = None
    quiet_run: int = 0
    last_alert: datetime | None = None

    @property
    def alert_open(self) -> bool:
        return self.open_severity is not None


@dataclass(slots=True)
class _Baseline:
    n: int
    ec: float | None
    sd_ec: float
    quarters: list[float | None]
    sd_quarters: list[float]
    rel: list[float | None]
    sd_rel: list[float]
    rate: float | None
    sd_rate: float
    temp: float | None
    sd_temp: float


class _HerdEffect:
    """Median of the herd's recent deviations from the cows' own baselines: the part of today's
    readings that every cow shares (weather, feed, the wash water's temperature).

    Recent means within `window_h` of now (this milking session and the end of the last one)
    and at most the last `n` milkings, so a large herd follows a change within a session and
    a small herd is not stuck with last week's values; with fewer than `min_n` recent values
    it uses the last `min_n` whatever their age.
    """

    def __init__(self, n: int, window_h: float, min_n: int = 10) -> None:
        self.values: deque[tuple[datetime, float]] = deque(maxlen=n)
        self.window = timedelta(hours=window_h)
        self.min_n = min_n

    def add(self, at: datetime, value: float) -> None:
        self.values.append((at, value))

    def median(self, now: datetime) -> float:
        if len(self.values) < self.min_n:
            return 0.0
        since = now - self.window
        recent = [v for t, v in self.values if t >= since]
        if len(recent) < self.min_n:
            recent = [v for _, v in list(self.values)[-self.min_n :]]
        return _median(recent)


class MastitisDetector:
    """Per-cow mastitis detector; feed it milkings in time order with `observe`."""

    def __init__(self, params: DetectorParams | None = None) -> None:
        self.params = params or DetectorParams()
        self._cows: dict[str, CowState] = {}
        p = self.params
        self._herd_ec = _HerdEffect(p.herd_window, p.herd_window_h)
        self._herd_rate = _HerdEffect(p.herd_window, p.herd_window_h)
        self._herd_temp = _HerdEffect(p.herd_window, p.herd_window_h)
        # Online least squares of the herd-corrected log EC on (interval - nominal), shrunk to 0
        # by a prior worth a few hundred milkings, slowly forgetting.
        self._sxx = 200.0
        self._sxy = 0.0
        self.last_assessment: Assessment | None = None

    @classmethod
    def from_history(
        cls, milkings: Iterable[MilkingSignals], params: DetectorParams | None = None
    ) -> MastitisDetector:
        """A detector in the state it would have after seeing `milkings`, which are replayed in
        time order (their alerts are dropped: they were raised when the milkings happened).

        The health hook calls this at start (`HealthHook.prime`) with the last `baseline_days` +
        a few days of milkings of the whole herd (herd effects need the other cows). The state
        depends only on that window, except a CUSUM or an open alert that began before it.
        """
        detector = cls(params)
        for milking in sorted(milkings, key=lambda r: (r.start, r.cow_id)):
            detector.observe(milking)
        return detector

    def state_of(self, cow_id: str) -> CowState | None:
        """The cow's current state (None: never seen). Read it, do not modify it."""
        return self._cows.get(cow_id)

    def knows(self, milking: MilkingSignals) -> bool:
        """True when this cow's milking at this start (or a later one) was already observed."""
        cow = self._cows.get(milking.cow_id)
        return cow is not None and cow.last_start is not None and milking.start <= cow.last_start

    @property
    def interval_slope(self) -> float:
        """Estimated relative EC change per hour of milking interval beyond the nominal."""
        return self._sxy / self._sxx

    def observe(self, milking: MilkingSignals) -> list[RaisedAlert]:
        """Judge one finished milking; the alerts it raises (none, one, or an escalation).

        Milkings of one cow must come in start order; an older or repeated one is refused with
        ValueError (it would make the result depend on arrival order).
        """
        p = self.params
        cow = self._cows.get(milking.cow_id)
        if cow is None:
            cow = self._cows[milking.cow_id] = CowState(milking.cow_id)
        if cow.last_start is not None and milking.start <= cow.last_start:
            raise ValueError(
                f"cow {milking.cow_id}: milking at {milking.start.isoformat()} is not after "
                f"her last one at {cow.last_start.isoformat()}"
            )
        interval_h: float | None = None
        if cow.last_start is not None:
            interval_h = (milking.start - cow.last_start).total_seconds() / 3600.0
            if interval_h > p.restart_after_h:
                # A long gap (dry period, sick pen): her old normal no longer applies.
                self._cows[milking.cow_id] = cow = CowState(milking.cow_id)
                interval_h = None
        entry, assessment = self._assess(cow, milking, interval_h)
        alerts = self._decide(cow, milking, assessment)
        entry.flagged = (
            cow.alert_open
            or max(assessment.cusum) >= p.h_warning
            or max(assessment.trend) >= p.h_trend
        )
        cow.history.append(entry)
        cow.last_start = milking.start
        horizon = milking.start - timedelta(days=p.baseline_days)
        while cow.history and cow.history[0].start < horizon:
            cow.history.popleft()
        self.last_assessment = assessment
        return alerts

    # -- one milking ------------------------------------------------------------------------

    def _assess(
        self, cow: CowState, r: MilkingSignals, interval_h: float | None
    ) -> tuple[_Entry, Assessment]:
        p = self.params
        interval = interval_h if interval_h is not None else p.nominal_interval_h
        d_interval = min(interval, 30.0) - p.nominal_interval_h
        herd_ec = self._herd_ec.median(r.start)
        herd_rate = self._herd_rate.median(r.start)
        herd_temp = self._herd_temp.median(r.start)
        ec_shift = herd_ec + self.interval_slope * d_interval

        ec = _log(r.conductivity_ms_cm)
        ec_n = None if ec is None else ec - ec_shift
        q_raw = [_log(q) for q in r.quarters]
        q_n = [None if q is None else q - ec_shift for q in q_raw]
        rel = _relative(q_raw)
        rate: float | None = None
        if interval_h is not None and r.yield_l > 0:
            hours = p.nominal_interval_h * (interval / p.nominal_interval_h) ** (
                p.yield_interval_exponent
            )
            rate = math.log(r.yield_l / hours) - herd_rate
        temp = None if r.temperature_c is None else r.temperature_c - herd_temp

        base = self._baseline(cow, r.start)
        z_ec = z_yield = z_temp = None
        z_q: list[float | None] = [None] * 4
        if base is not None:
            if ec is not None and ec_n is not None and base.ec is not None:
                z_ec = self._clip((ec_n - base.ec) / base.sd_ec)
                self._herd_ec.add(r.start, ec - (base.ec + self.interval_slope * d_interval))
                self._learn_interval(ec - herd_ec - base.ec, d_interval)
            if rate is not None and base.rate is not None:
                z_yield = self._clip((base.rate - rate) / base.sd_rate)
                self._herd_rate.add(r.start, rate + herd_rate - base.rate)
            if temp is not None and base.temp is not None:
                z_temp = self._clip((temp - base.temp) / base.sd_temp)
                self._herd_temp.add(r.start, temp + herd_temp - base.temp)
            for i in range(4):
                qi, reli, bq, brel = q_n[i], rel[i], base.quarters[i], base.rel[i]
                if qi is None or reli is None or bq is None or brel is None:
                    continue
                # Against her other quarters (meter, day and interval effects cancel) and
                # against the quarter's own past (a drop in the other quarters is not a rise):
                # only a quarter that rose on both counts carries evidence.
                z_rel = (reli - brel) / base.sd_rel[i]
                z_abs = (qi - bq) / base.sd_quarters[i]
                z_q[i] = self._clip(min(z_rel, z_abs))
        blood = bool(r.blood)
        evidence: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
        cusum: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
        trend: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
        if base is not None:
            evidence = tuple(self._evidence(zq, z_ec, z_yield, z_temp, blood) for zq in z_q)
            cusum = tuple(
                max(0.0, c + min(e, p.max_step) - self._allowance(zq))
                for c, e, zq in zip(cow.cusum, evidence, z_q, strict=True)
            )
            trend = tuple(self._trend(t, zq) for t, zq in zip(cow.trend, z_q, strict=True))
        entry = _Entry(r.start, ec_n, tuple(q_n), tuple(rel), rate, temp, flagged=False)
        assessment = Assessment(
            cow_id=r.cow_id,
            start_time=r.start,
            interval_h=interval_h,
            z_quarters=tuple(z_q),
            z_ec=z_ec,
            z_yield=z_yield,
            z_temp=z_temp,
            blood=blood,
            evidence=evidence,
            cusum=cusum,
            baseline_n=0 if base is None else base.n,
            trend=trend,
        )
        return entry, assessment

    def _evidence(
        self,
        z_quarter: float | None,
        z_ec: float | None,
        z_yield: float | None,
        z_temp: float | None,
        blood: bool,
    ) -> float:
        """Weighted sum of the available features scaled back to unit noise, plus blood."""
        p = self.params
        total = 0.0
        weights = 0.0
        for z, w in (
            (z_quarter, p.w_quarter),
            (z_ec, p.w_ec if z_quarter is None else p.w_ec_with_quarters),
            (z_yield, p.w_yield),
            (z_temp, p.w_temp),
        ):
            if z is not None and w > 0:
                total += w * z
                weights += w * w
        value = total / math.sqrt(weights) if weights > 0 else 0.0
        return value + (p.blood_z if blood else 0.0)

    def _trend(self, previous: float, z_quarter: float | None) -> float:
        """The quarter's trend after this milking, in units of its healthy spread.

        Floored at zero (like the CUSUM) so that a normal milking clears it exactly and the
        state rebuilt from a window of history is the state watched all along. A milking
        without the quarter's value leaves it as it was.
        """
        if z_quarter is None:
            return previous
        p = self.params
        # Healthy spread of an EWMA of unit-noise values: sqrt(lambda / (2 - lambda)).
        spread = math.sqrt(p.trend_lambda / (2.0 - p.trend_lambda))
        z = max(-p.trend_clip, min(p.trend_clip, z_quarter))
        value = (1.0 - p.trend_lambda) * previous * spread + p.trend_lambda * z
        return max(0.0, value / spread)

    def _allowance(self, z_quarter: float | None) -> float:
        return self.params.k if z_quarter is not None else self.params.k_cow

    def _decide(self, cow: CowState, r: MilkingSignals, a: Assessment) -> list[RaisedAlert]:
        p = self.params
        cow.cusum = list(a.cusum)
        cow.trend = list(a.trend)
        cow.runs = [
            n + 1 if e > self._allowance(zq) else 0
            for n, e, zq in zip(cow.runs, a.evidence, a.z_quarters, strict=True)
        ]
        ready = [i for i in range(4) if a.cusum[i] >= p.h_warning and cow.runs[i] >= p.persistence]
        rising = [i for i in range(4) if a.trend[i] >= p.h_trend]
        if self._cow_level_jump(a) and not ready:
            ready = [0]
        if cow.alert_open and not ready and not rising and self._warning_lapsed(cow, r):
            cow.open_severity, cow.quiet_run = None, 0
        if cow.alert_open:
            if max(a.cusum) == 0.0 and max(a.trend) < p.h_trend:
                cow.quiet_run += 1
                if cow.quiet_run >= p.close_after:
                    cow.open_severity, cow.quiet_run = None, 0
                return []
            cow.quiet_run = 0
            if cow.open_severity == "warning" and ready and self._critical(a):
                cow.open_severity = "critical"
                return [self._alert(r, "critical", a, escalation=True)]
            return []
        if not ready and not rising:
            return []
        severity: Severity = "critical" if self._critical(a) else "warning"
        cow.open_severity, cow.quiet_run, cow.last_alert = severity, 0, r.start
        alert = self._alert(r, severity, a, escalation=False)
        # Count afresh: the open alert covers what has been seen; a cow that stays abnormal
        # lifts her CUSUM above zero again and so keeps her alert open.
        cow.cusum = [0.0] * 4
        cow.trend = [0.0] * 4
        return [alert]

    def _warning_lapsed(self, cow: CowState, r: MilkingSignals) -> bool:
        """True when the cow's open warning is `warning_hold_h` old and never escalated (the
        caller checks that no channel is at warning level now). It then lapses, so that a case
        starting days later in another quarter, or the real onset after an early false start,
        raises its own alert instead of hiding behind a warning nobody acted on."""
        p = self.params
        if p.warning_hold_h is None or cow.open_severity != "warning" or cow.last_alert is None:
            return False
        return (r.start - cow.last_alert).total_seconds() / 3600.0 >= p.warning_hold_h

    def _cow_level_jump(self, a: Assessment) -> bool:
        """Without quarter data: conductivity up and yield down together at one milking.

        Two independent readings moving the way mastitis moves them are not one odd reading
        (an incomplete milking drops the yield but not the conductivity; air in the cell moves
        the conductivity but not the yield)."""
        p = self.params
        if any(z is not None for z in a.z_quarters) or a.z_ec is None or a.z_yield is None:
            return False
        return min(a.z_ec, a.z_yield) >= p.joint_z and a.z_ec + a.z_yield >= p.joint_sum

    def _critical(self, a: Assessment) -> bool:
        p = self.params
        fever = a.z_temp is not None and a.z_temp >= p.fever_z
        return max(a.cusum) >= p.h_critical or fever or a.blood

    @staticmethod
    def _alert(
        r: MilkingSignals, severity: Severity, a: Assessment, escalation: bool
    ) -> RaisedAlert:
        return RaisedAlert(
            cow_id=r.cow_id,
            start_time=r.start,
            severity=severity,
            condition=CONDITION,
            reason=("escalated: " if escalation else "") + a.reason(),
            escalation=escalation,
        )

    # -- baselines and herd effects -----------------------------------------------------------

    def _clip(self, z: float) -> float:
        c = self.params.clip_z
        return max(-c, min(c, z))

    def _learn_interval(self, residual: float, d_interval: float) -> None:
        if abs(residual) < 0.3:  # a sick cow's rise says nothing about intervals
            self._sxx = self._sxx * 0.9995 + d_interval * d_interval
            self._sxy = self._sxy * 0.9995 + d_interval * residual

    def _baseline(self, cow: CowState, now: datetime) -> _Baseline | None:
        p = self.params
        cutoff = now - timedelta(hours=p.baseline_gap_h)
        older = [e for e in cow.history if e.start <= cutoff]
        clean = [e for e in older if not e.flagged]
        use = clean if len(clean) >= p.min_baseline else older
        if len(use) < p.min_baseline:
            # A new cow: her most recent milkings as they are, once there are a few.
            use = list(cow.history)
            if len(use) < max(3, p.min_baseline // 2):
                return None
        ec, sd_ec = self._centre([e.ec for e in use], p.prior_sd_ec, p.min_sd_ec)
        rate, sd_rate = self._centre([e.rate for e in use], p.prior_sd_yield, p.min_sd_yield)
        temp, sd_temp = self._centre([e.temp for e in use], p.prior_sd_temp_c, p.min_sd_temp_c)
        quarters, sd_q = self._quarter_centres(
            [[e.quarters[i] for e in use] for i in range(4)], p.prior_sd_quarter
        )
        rel, sd_rel = self._quarter_centres(
            [[e.rel[i] for e in use] for i in range(4)], p.prior_sd_rel
        )
        return _Baseline(
            len(use), ec, sd_ec, quarters, sd_q, rel, sd_rel, rate, sd_rate, temp, sd_temp
        )

    def _quarter_centres(
        self, columns: Sequence[Sequence[float | None]], prior_sd: float
    ) -> tuple[list[float | None], list[float]]:
        """Median and noise of each quarter. A cow's quarters share her milk and her meter, so
        their noise is much alike: each quarter's MAD is pooled with her other quarters' (by
        `quarter_sd_pooling`), which steadies a noise estimate that 20 milkings leave rough."""
        p = self.params
        stats = [_robust(column) for column in columns]
        pooled_n = sum(n for _, _, n in stats)
        pooled_var = (
            sum(n * sd * sd for _, sd, n in stats) / pooled_n if pooled_n > 0 else prior_sd**2
        )
        centres: list[float | None] = []
        sds: list[float] = []
        a = p.quarter_sd_pooling
        for centre, sd, n in stats:
            centres.append(centre)
            if centre is None:
                sds.append(prior_sd)
                continue
            own = (1.0 - a) * sd * sd + a * pooled_var
            sds.append(self._shrunk_sd(own, n, prior_sd, p.min_sd_rel))
        return centres, sds

    def _centre(
        self, values: Sequence[float | None], prior_sd: float, min_sd: float
    ) -> tuple[float | None, float]:
        """Median and robust sd (MAD) of the values present, the sd shrunk towards the prior."""
        centre, mad_sd, n = _robust(values)
        if centre is None:
            return None, prior_sd
        return centre, self._shrunk_sd(mad_sd**2, n, prior_sd, min_sd)

    def _shrunk_sd(self, var: float, n: int, prior_sd: float, min_sd: float) -> float:
        """The sd of `n` values with variance `var`, shrunk towards the prior (worth
        `prior_weight` values) and at least `min_sd`."""
        n0 = self.params.prior_weight
        return max(math.sqrt((n0 * prior_sd**2 + n * var) / (n0 + n)), min_sd)


def _log(value: float | None) -> float | None:
    return math.log(value) if value is not None and value > 0 else None


def _relative(q: Sequence[float | None]) -> list[float | None]:
    """Each quarter's log EC minus the median of the cow's other quarters (None if < 2 others)."""
    out: list[float | None] = []
    for i, qi in enumerate(q):
        others = [v for j, v in enumerate(q) if j != i and v is not None]
        out.append(None if qi is None or len(others) < 2 else qi - _median(others))
    return out


def _robust(values: Sequence[float | None]) -> tuple[float | None, float, int]:
    """Median, MAD-based sd and count of the values present (None, 0, n below three)."""
    present = [v for v in values if v is not None]
    if len(present) < 3:
        return None, 0.0, 0
    centre = _median(present)
    return centre, _MAD_TO_SD * _median([abs(v - centre) for v in present]), len(present)


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else 0.5 * (s[mid - 1] + s[mid])
