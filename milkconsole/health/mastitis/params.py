"""The detector's tunable parameters, checked when made."""

from __future__ import annotations

from dataclasses import dataclass


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
