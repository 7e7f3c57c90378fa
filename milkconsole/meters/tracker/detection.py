"""When a milking starts and ends, by the meter's status bit or by flow (`detection.mode`).

- "status": a session starts on the first reading with `milking` True and completes on the
  first with `milking` False; that reading's yield is the final one if it is not lower (the
  meter holds the final yield). `milking` None (status register refused) changes nothing.
- "flow": idle, a session starts when flow >= start_flow_l_min or yield rose by more than
  YIELD_RISE_L since the previous reading. `started_at` is the previous good reading when the
  detecting reading already counts milk (it flowed after that reading) and that reading is
  within comm_timeout_s, else the detecting reading. The session goes quiet at the first
  reading with flow <= end_flow_l_min (no flow register: yield flat since the previous
  reading); it stays quiet while yield rises by at most YIELD_RISE_L from there; after
  end_after_s of quiet it completes, ended at the quiet start with the yield now.
  A yield drop of more than RESET_DROP_L while quiet is the meter resetting for the next
  cow: the session completes at its quiet start and the reading is handled as idle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from milkconsole.meters.events import FlowSample, SessionCompleted
from milkconsole.meters.profiles import Detection
from milkconsole.meters.readings import Reading
from milkconsole.meters.tracker import closing, curve, figures
from milkconsole.meters.tracker.session import OpenSession
from milkconsole.meters.tracker.settings import Settings
from milkconsole.meters.tracker.thresholds import EPS, YIELD_RISE_L, num


@dataclass(frozen=True, slots=True)
class LastReading:
    """The last good reading, whatever the stall was doing."""

    t_mono: float
    t_utc: datetime
    yield_l: float | None  # the last valid yield, when this reading's was refused
    flow_l_min: float | None
    conductivity_ms_cm: float | None


def last_reading(r: Reading, previous: LastReading | None) -> LastReading:
    """`r` as the last good reading, after `previous`."""
    y = num(r.yield_l)
    if y is None and previous is not None:
        y = previous.yield_l
    return LastReading(r.t_mono, r.t_utc, y, num(r.flow_l_min), num(r.conductivity_ms_cm))


# -- idle -------------------------------------------------------------------------------------
def starts(detection: Detection, r: Reading, previous_yield_l: float | None) -> bool:
    """Whether the reading of an idle stall starts a milking."""
    if detection.mode == "status":
        return r.milking is True
    y, f = num(r.yield_l), num(r.flow_l_min)
    return (f is not None and f >= detection.start_flow_l_min) or (
        y is not None and previous_yield_l is not None and y - previous_yield_l > YIELD_RISE_L
    )


def backdate_to(
    settings: Settings,
    r: Reading,
    previous: LastReading | None,
    last_end_mono: float | None,
    counted_l: float,
) -> LastReading | None:
    """The previous reading, when a flow-detected milking started there (see the module's
    docstring) and not before the last session's end; None: it starts at `r`."""
    if previous is None or counted_l <= 0:
        return None
    if r.t_mono - previous.t_mono > settings.tracking.comm_timeout_s:
        return None
    if last_end_mono is not None and previous.t_mono < last_end_mono:
        return None
    return previous


def start(
    settings: Settings,
    r: Reading,
    *,
    meter_yield_l: float,
    yield_offset_l: float,
    since: LastReading | None,
    gap_flow: bool,
    flags: tuple[str, ...],
) -> OpenSession:
    """The session reading `r` starts: at `since` (backdated) or else at `r`, with the counter
    and offset given (see `yields`), `r`'s figures taken in."""
    started_at, start_mono = (since.t_utc, since.t_mono) if since else (r.t_utc, r.t_mono)
    s = OpenSession(
        key=settings.new_key(started_at),
        started_at=started_at,
        start_mono=start_mono,
        anchored=True,
        rfid=r.rfid,
        meter_yield_l=meter_yield_l,
        yield_offset_l=yield_offset_l,
        last_mono=start_mono,
        last_utc=started_at,
        duration_s=0.0,
        last_yield_l=0.0,
    )
    for name in flags:
        s.flag(name)
    if since is not None:
        # The first point is the idle reading before the milk: nothing counted yet.
        curve.keep(s, FlowSample(0.0, 0.0, since.flow_l_min or 0.0, None))
        s.next_sample_s = curve.next_grid(settings.tracking.sample_interval_s, 0.0)
        s.last_yield_l = 0.0
    else:
        s.last_yield_l = s.yield_l
    figures.accumulate(settings.tracking, s, r, gap_flow=gap_flow)
    return s


def idle_now(detection: Detection, r: Reading) -> bool:
    """Whether the reading says the stall is not milking (status False / flow at most end)."""
    if detection.mode == "status":
        return r.milking is False
    f = num(r.flow_l_min)
    return f is not None and f <= detection.end_flow_l_min


# -- in session -------------------------------------------------------------------------------
def milking_now(detection: Detection, r: Reading) -> bool:
    """Whether the reading says milk still flows (status not False / flow above end)."""
    if detection.mode == "status":
        return r.milking is not False
    f = num(r.flow_l_min)
    return f is not None and f > detection.end_flow_l_min


def is_quiet(detection: Detection, s: OpenSession) -> bool:
    """Whether the flow-detected session is quiet (possibly ending)."""
    return detection.mode == "flow" and s.quiet_mono is not None


def update_quiet(detection: Detection, s: OpenSession, r: Reading) -> None:
    """Start, keep or end the session's quiet with this reading (flow mode; its yield is in)."""
    f = num(r.flow_l_min)
    low = f is None or f <= detection.end_flow_l_min
    if s.quiet_mono is not None and (not low or s.yield_l - s.quiet_yield_l > YIELD_RISE_L):
        s.quiet_mono = s.quiet_utc = None
        curve.release_held_back(s)
    # Without a flow register, flat yield since the previous reading is what "low" means.
    if (
        s.quiet_mono is None
        and low
        and (f is not None or s.yield_l - s.last_yield_l <= YIELD_RISE_L)
    ):
        s.quiet_mono, s.quiet_utc = r.t_mono, r.t_utc
        s.quiet_yield_l = s.yield_l
        s.quiet_flow_l_min = f if f is not None else 0.0
        s.quiet_conductivity_ms_cm = num(r.conductivity_ms_cm)


def quiet_over(detection: Detection, s: OpenSession, r: Reading) -> bool:
    """Whether the session has been quiet for end_after_s at this reading: it has ended."""
    q = s.quiet_mono
    return detection.mode == "flow" and q is not None and r.t_mono - q >= detection.end_after_s


def ends_on_status(detection: Detection, r: Reading) -> bool:
    """Whether the reading ends a status-detected milking."""
    return detection.mode == "status" and r.milking is False


def end_on_status(
    settings: Settings, s: OpenSession, r: Reading, *, after_gap: bool
) -> SessionCompleted:
    """End the session on the status bit's `milking` False reading, with its yield and quality."""
    y = num(r.yield_l)
    before = s.yield_l
    if y is not None and y >= s.meter_yield_l:
        s.meter_yield_l = y
    figures.accumulate_quality(s, r)
    dt = r.t_mono - s.last_mono
    if after_gap and dt > 0 and s.yield_l > before:
        # The flows reported do not cover the gap; its average is a floor for the peak.
        s.peak_flow_l_min = max(s.peak_flow_l_min, (s.yield_l - before) / dt * 60.0)
    if after_gap and s.yield_l <= before + EPS:
        # No milk since the last good reading: the milking had ended by then.
        ended_at, duration = s.last_utc, s.duration_s
    else:
        ended_at, duration = r.t_utc, r.t_mono - s.start_mono
    f = num(r.flow_l_min)
    return closing.close(
        settings,
        s,
        "by_rules",
        ended_at,
        duration,
        flow=f if f is not None else 0.0,
        conductivity=num(r.conductivity_ms_cm),
    )
