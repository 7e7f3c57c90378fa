"""Whose milking it is: the session's tag, a tag that comes late, a tag that changes.

A tag arriving when the session has none is taken (flag rfid_late). A different tag while
milking splits the session at that reading: the old one ends there with the counter now, the
new one starts there counting only its own milk (flag rfid_split on both). A reading without a
tag never changes the session's tag. In flow mode a new tag while quiet just ends the old
session at its quiet start.
"""

from __future__ import annotations

from milkconsole.flags import FLAG_RFID_LATE, FLAG_RFID_SPLIT
from milkconsole.meters.events import SessionCompleted
from milkconsole.meters.readings import Reading
from milkconsole.meters.tracker import closing, yields
from milkconsole.meters.tracker.session import OpenSession
from milkconsole.meters.tracker.settings import Settings
from milkconsole.meters.tracker.thresholds import num


def tag_changed(s: OpenSession, r: Reading) -> bool:
    """Whether the reading names another cow than the session's (both tagged)."""
    return r.rfid is not None and s.rfid is not None and r.rfid != s.rfid


def take_late_tag(s: OpenSession, r: Reading) -> None:
    """The session has no tag yet and the reading has one: it is hers."""
    if r.rfid is not None and s.rfid is None:
        s.rfid = r.rfid
        s.flag(FLAG_RFID_LATE)


def split_off(settings: Settings, s: OpenSession, r: Reading) -> SessionCompleted:
    """End the old cow's part at the reading that names a new one (who starts there, flagged
    FLAG_RFID_SPLIT too: the caller starts her session)."""
    y = num(r.yield_l)
    # The old cow keeps the milk up to this reading; the new one counts from here.
    if y is not None and not yields.counter_dropped(s, y):
        s.meter_yield_l = max(s.meter_yield_l, y)
    s.flag(FLAG_RFID_SPLIT)
    return closing.close(
        settings,
        s,
        "by_rules",
        r.t_utc,
        r.t_mono - s.start_mono,
        flow=s.flow_l_min,
        conductivity=s.last_conductivity_ms_cm,
    )
