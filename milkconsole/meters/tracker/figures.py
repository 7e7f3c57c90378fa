"""The session's figures, taken from each reading.

Peak flow = highest reported flow, raised to the average flow across any comm gap (the true
peak reached at least that); average flow = yield / (duration_s / 60); conductivity mean
(sum / n) and max; quarter ECs = latest valid value; temperature = the highest seen (a warm
quarter is the mastitis sign); fat, protein, lactose, SCC = latest valid; blood = True once any
reading says so; vacuum and pulsation = mean of valid values. In status mode the closing (not
milking) reading gives yield and quality only.
"""

from __future__ import annotations

from milkconsole.meters.parlour import TrackingConfig
from milkconsole.meters.readings import Reading
from milkconsole.meters.tracker import curve
from milkconsole.meters.tracker.session import OpenSession
from milkconsole.meters.tracker.thresholds import num


def accumulate(tracking: TrackingConfig, s: OpenSession, r: Reading, *, gap_flow: bool) -> None:
    """Take the reading's figures into the session and advance its last-good-reading marks.

    `gap_flow`: the reading comes after a comm gap, so the average flow across the gap is a
    floor for the peak. The reading's yield must already be in the session's counter.
    """
    elapsed = r.t_mono - s.start_mono
    dt = r.t_mono - s.last_mono
    rate = (s.yield_l - s.last_yield_l) / dt * 60.0 if dt > 0 else None
    f = num(r.flow_l_min)
    if f is None and rate is not None and rate >= 0:
        f = rate  # no flow register (or refused): the yield says how fast it came
    if f is not None:
        s.flow_l_min = f
        s.peak_flow_l_min = max(s.peak_flow_l_min, f)
    if gap_flow and rate is not None and rate > 0:
        s.peak_flow_l_min = max(s.peak_flow_l_min, rate)
    c = accumulate_milk(s, r)
    v = num(r.vacuum_kpa)
    if v is not None:
        s.vacuum_sum += v
        s.vacuum_n += 1
    p = num(r.pulsation_cpm)
    if p is not None:
        s.pulsation_sum += p
        s.pulsation_n += 1
    accumulate_quality(s, r)
    s.last_mono, s.last_utc, s.duration_s = r.t_mono, r.t_utc, elapsed
    s.last_yield_l = s.yield_l
    curve.sample_if_due(s, tracking.sample_interval_s, elapsed, c)


def accumulate_milk(s: OpenSession, r: Reading) -> float | None:
    """Take the reading's conductivity (cow and quarters) and temperature; returns the cow
    conductivity (None when refused)."""
    c = num(r.conductivity_ms_cm)
    s.last_conductivity_ms_cm = c
    if c is not None:
        s.conductivity_sum += c
        s.conductivity_n += 1
        m = s.conductivity_max_ms_cm
        s.conductivity_max_ms_cm = c if m is None else max(m, c)
    for name in ("ec_lf_ms_cm", "ec_rf_ms_cm", "ec_lr_ms_cm", "ec_rr_ms_cm"):
        v = num(getattr(r, name))
        if v is not None:
            setattr(s, name, v)
    t = num(r.temperature_c)
    if t is not None:
        s.temperature_max_c = t if s.temperature_max_c is None else max(s.temperature_max_c, t)
    return c


def accumulate_quality(s: OpenSession, r: Reading) -> None:
    """Take the reading's milk quality: fat, protein, lactose, SCC (latest valid) and blood."""
    for name in ("fat_pct", "protein_pct", "lactose_pct"):
        v = num(getattr(r, name))
        if v is not None:
            setattr(s, name, v)
    if r.scc_cells_ml is not None:
        s.scc_cells_ml = r.scc_cells_ml
    if r.blood is not None:
        s.blood = bool(s.blood) or r.blood
