"""Recovery of a milking the console never saw: the meter idles, holding another cow's milk.

`last_finished` is the meter's last recorded session. When the first reading finds the meter
idle (not milking) holding a milking that is not that one — another tag, or, with no tag, a
counter reset since and at least min_yield_l counted again — a cow was milked while no console
watched: it is recorded at once as a finished session (flag recovered) with the yield, tag and
quality the meter holds, ended at that reading and started `session_time_s` before it when the
meter says (never before the last session's end). The same tag, or a counter that only rose
without a tag, recovers nothing (it may be the last cow's own milk, already recorded), nor does
the last cow's final counter still shown beside a new tag (the next cow, identified on her way
in). The yield recovered is the counter as it stands: this assumes a meter that counts each cow
from zero, as every shipped profile's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from milkconsole.flags import FLAG_RECOVERED
from milkconsole.meters.events import SessionCompleted
from milkconsole.meters.readings import Reading
from milkconsole.meters.tracker import closing, detection, figures
from milkconsole.meters.tracker.session import OpenSession
from milkconsole.meters.tracker.settings import Settings
from milkconsole.meters.tracker.thresholds import RESET_DROP_L, SAME_COUNTER_L, num


@dataclass(frozen=True, slots=True)
class LastFinished:
    """The meter's most recent recorded session as it ended: its tag, the counter then and its
    end (the store keeps them; a tracker started later compares the meter with them)."""

    rfid: str | None
    meter_yield_l: float
    ended_at: datetime | None


def missed_milking(settings: Settings, r: Reading, last: LastFinished) -> bool:
    """Whether the tracker's first reading shows a milking that is not `last`, finished."""
    y = num(r.yield_l)
    if (
        not detection.idle_now(settings.detection, r)
        or y is None
        or y < settings.tracking.min_yield_l
    ):
        return False
    if abs(y - last.meter_yield_l) <= SAME_COUNTER_L:
        # The last cow's final still on the display: a new tag is the next cow, read as
        # she walked in, before her milking reset the counter.
        return False
    if r.rfid is not None:
        return r.rfid != last.rfid
    return y < last.meter_yield_l - RESET_DROP_L


def recovered_session(settings: Settings, r: Reading, last: LastFinished) -> OpenSession:
    """The missed milking as the meter shows it at `r` (flag recovered), still to be closed."""
    y = num(r.yield_l)
    assert y is not None
    duration = float(r.session_time_s) if r.session_time_s and r.session_time_s > 0 else 0.0
    started_at = r.t_utc - timedelta(seconds=duration)
    if last.ended_at is not None and started_at < last.ended_at:
        started_at = min(last.ended_at, r.t_utc)
        duration = (r.t_utc - started_at).total_seconds()
    s = OpenSession(
        key=settings.new_key(started_at),
        started_at=started_at,
        start_mono=r.t_mono - duration,
        anchored=True,
        rfid=r.rfid,
        meter_yield_l=y,
        yield_offset_l=0.0,
        last_mono=r.t_mono,
        last_utc=r.t_utc,
        duration_s=duration,
        last_yield_l=y,
    )
    s.flag(FLAG_RECOVERED)
    # What the meter still shows of her milk (no flow, vacuum or curve: she is gone).
    figures.accumulate_milk(s, r)
    figures.accumulate_quality(s, r)
    return s


def close_recovered(settings: Settings, s: OpenSession) -> SessionCompleted:
    """The recovered session, finished at the reading that found it."""
    # Without the meter's own session time the duration is unknown, not short.
    return closing.close(
        settings,
        s,
        "by_rules",
        s.last_utc,
        s.duration_s,
        flow=0.0,
        conductivity=s.last_conductivity_ms_cm,
        check_duration=s.duration_s > 0,
    )
