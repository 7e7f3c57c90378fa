"""The session's flow curve: the FlowSamples it hands out with its events.

A FlowSample at the start (elapsed 0), then one per `sample_interval_s` of elapsed time on a
fixed grid (0: every reading), then one at the end. Samples ride on the next SessionUpdated /
SessionCompleted and their elapsed_s strictly increase.

Samples taken while the session is quiet (flow mode) are held back: if the quiet turns out to
be the end they lie after it and are dropped, otherwise they are released into the curve.
"""

from __future__ import annotations

import math
from dataclasses import replace

from milkconsole.meters.events import FlowSample
from milkconsole.meters.tracker.session import OpenSession
from milkconsole.meters.tracker.thresholds import EPS


def next_grid(interval_s: float, elapsed: float) -> float:
    """The due time of the grid point after `elapsed` (0 when every reading is a sample)."""
    iv = interval_s
    return (math.floor(elapsed / iv + EPS) + 1) * iv if iv > 0 else 0.0


def sample_if_due(
    s: OpenSession, interval_s: float, elapsed: float, conductivity: float | None
) -> None:
    """Sample the session as it stands at `elapsed` if a grid point is due."""
    if interval_s == 0 or elapsed >= s.next_sample_s - EPS:
        sample = FlowSample(elapsed, s.yield_l, s.flow_l_min, conductivity)
        if s.quiet_mono is not None:
            s.held_back.append(sample)
        else:
            keep(s, sample)
        s.next_sample_s = next_grid(interval_s, elapsed)


def keep(s: OpenSession, sample: FlowSample) -> None:
    """Add the sample to those to hand out, unless it is not later than the last one kept."""
    # The recorder drops a sample not later than the last one it has: keep them increasing.
    if s.last_kept_elapsed_s is not None and sample.elapsed_s <= s.last_kept_elapsed_s:
        return
    s.pending.append(sample)
    s.last_kept_elapsed_s = sample.elapsed_s


def release_held_back(s: OpenSession) -> None:
    """The quiet was not the end (or the session is cut off): its samples belong to the curve."""
    for sample in s.held_back:
        keep(s, sample)
    s.held_back.clear()


def end_point(s: OpenSession, last: FlowSample) -> None:
    """Close the curve with the session's last point (it replaces a sample taken that late)."""
    if s.pending and s.pending[-1].elapsed_s >= last.elapsed_s - EPS:
        s.pending[-1] = replace(last, elapsed_s=s.pending[-1].elapsed_s)
    else:
        keep(s, last)


def take_pending(s: OpenSession) -> tuple[FlowSample, ...]:
    """The samples not yet handed out, now handed out."""
    if not s.pending:
        return ()
    out = tuple(s.pending)
    s.pending.clear()
    return out
