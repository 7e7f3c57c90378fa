"""How a session ends: its end state, the last point of its curve, the SessionCompleted event.

End state: `interrupted` when the meter was lost (see `gaps`); otherwise `incomplete` when
shorter than min_duration_s (flag short) or below min_yield_l (flag low_yield), else
`completed`.

These functions only finish the session and make the event; the tracker records the end (the
meter's final counter, the end time) for the sessions that follow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from milkconsole.flags import FLAG_LOW_YIELD, FLAG_SHORT
from milkconsole.meters.events import FlowSample, SessionCompleted, SessionState
from milkconsole.meters.tracker import curve
from milkconsole.meters.tracker.session import OpenSession, snapshot
from milkconsole.meters.tracker.settings import Settings


def close(
    settings: Settings,
    s: OpenSession,
    how: Literal["by_rules", "interrupted"],
    ended_at: datetime,
    duration_s: float,
    *,
    flow: float,
    conductivity: float | None,
    check_duration: bool = True,
) -> SessionCompleted:
    """End the session at `ended_at`, `duration_s` after its start, with that last flow and
    conductivity. `check_duration` False: the duration is unknown, so it is not `short`."""
    duration_s = max(0.0, duration_s)
    state: SessionState = "interrupted"
    if how == "by_rules":
        if check_duration and duration_s < settings.tracking.min_duration_s:
            s.flag(FLAG_SHORT)
        if s.yield_l < settings.tracking.min_yield_l:
            s.flag(FLAG_LOW_YIELD)
        state = "incomplete" if FLAG_SHORT in s.flags or FLAG_LOW_YIELD in s.flags else "completed"
    curve.end_point(s, FlowSample(duration_s, s.yield_l, flow, conductivity))
    s.flow_l_min = flow
    return SessionCompleted(
        snapshot(settings, s, state, ended_at, duration_s), curve.take_pending(s)
    )


def close_at_quiet(settings: Settings, s: OpenSession) -> SessionCompleted:
    """End a quiet session (flow mode) where its quiet began, with the yield it has now."""
    assert s.quiet_mono is not None and s.quiet_utc is not None
    s.held_back.clear()  # they lie after the end
    return close(
        settings,
        s,
        "by_rules",
        s.quiet_utc,
        s.quiet_mono - s.start_mono,
        flow=s.quiet_flow_l_min,
        conductivity=s.quiet_conductivity_ms_cm,
    )


def close_interrupted(settings: Settings, s: OpenSession, *flags: str) -> SessionCompleted:
    """End the session `interrupted` at its last good reading, adding `flags`."""
    for name in flags:
        s.flag(name)
    curve.release_held_back(s)
    return close(
        settings,
        s,
        "interrupted",
        s.last_utc,
        s.duration_s,
        flow=s.flow_l_min,
        conductivity=s.last_conductivity_ms_cm,
    )
