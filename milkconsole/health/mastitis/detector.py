"""The per-cow mastitis detector (the rules are in the package's docstring)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from milkconsole.health.mastitis.assessment import Assessment
from milkconsole.health.mastitis.cow_state import Baseline, CowState, Entry, HerdEffect
from milkconsole.health.mastitis.params import DetectorParams
from milkconsole.health.mastitis.robust import log_positive, relative_to_others, robust
from milkconsole.health.mastitis.signals import (
    CONDITION,
    MilkingSignals,
    RaisedAlert,
    Severity,
)


class MastitisDetector:
    """Per-cow mastitis detector; feed it milkings in time order with `observe`."""

    def __init__(self, params: DetectorParams | None = None) -> None:
        self.params = params or DetectorParams()
        self._cows: dict[str, CowState] = {}
        p = self.params
        self._herd_ec = HerdEffect(p.herd_window, p.herd_window_h)
        self._herd_rate = HerdEffect(p.herd_window, p.herd_window_h)
        self._herd_temp = HerdEffect(p.herd_window, p.herd_window_h)
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
    ) -> tuple[Entry, Assessment]:
        p = self.params
        interval = interval_h if interval_h is not None else p.nominal_interval_h
        d_interval = min(interval, 30.0) - p.nominal_interval_h
        herd_ec = self._herd_ec.median(r.start)
        herd_rate = self._herd_rate.median(r.start)
        herd_temp = self._herd_temp.median(r.start)
        ec_shift = herd_ec + self.interval_slope * d_interval

        ec = log_positive(r.conductivity_ms_cm)
        ec_n = None if ec is None else ec - ec_shift
        q_raw = [log_positive(q) for q in r.quarters]
        q_n = [None if q is None else q - ec_shift for q in q_raw]
        rel = relative_to_others(q_raw)
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
        entry = Entry(r.start, ec_n, tuple(q_n), tuple(rel), rate, temp, flagged=False)
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

    def _baseline(self, cow: CowState, now: datetime) -> Baseline | None:
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
        return Baseline(
            len(use), ec, sd_ec, quarters, sd_q, rel, sd_rel, rate, sd_rate, temp, sd_temp
        )

    def _quarter_centres(
        self, columns: Sequence[Sequence[float | None]], prior_sd: float
    ) -> tuple[list[float | None], list[float]]:
        """Median and noise of each quarter. A cow's quarters share her milk and her meter, so
        their noise is much alike: each quarter's MAD is pooled with her other quarters' (by
        `quarter_sd_pooling`), which steadies a noise estimate that 20 milkings leave rough."""
        p = self.params
        stats = [robust(column) for column in columns]
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
        centre, mad_sd, n = robust(values)
        if centre is None:
            return None, prior_sd
        return centre, self._shrunk_sd(mad_sd**2, n, prior_sd, min_sd)

    def _shrunk_sd(self, var: float, n: int, prior_sd: float, min_sd: float) -> float:
        """The sd of `n` values with variance `var`, shrunk towards the prior (worth
        `prior_weight` values) and at least `min_sd`."""
        n0 = self.params.prior_weight
        return max(math.sqrt((n0 * prior_sd**2 + n * var) / (n0 + n)), min_sd)
