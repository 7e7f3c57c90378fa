"""The session's yield across meter counter resets: session yield = meter counter +
yield_offset_l, continuous by construction.

A new session's offset is minus the counter the meter still holds from before (a previous
session's final, or what it showed when the tracker first saw it idle, if at least
RESET_DROP_L), unless the counter has dropped by more than RESET_DROP_L since (the meter reset
for this cow): then the counter is all this cow's.
While milking, a drop of more than RESET_DROP_L adds the last counter to the offset (flag
meter_reset; no flag when nothing had been counted yet: that is the per-cow reset arriving
late), a smaller drop is noise and the counter is held at its highest.
"""

from __future__ import annotations

from dataclasses import dataclass

from milkconsole.flags import FLAG_METER_RESET
from milkconsole.meters.tracker.session import OpenSession
from milkconsole.meters.tracker.thresholds import RESET_DROP_L, YIELD_RISE_L


@dataclass(slots=True)
class HeldCounter:
    """The meter counter that does not belong to the next cow (None: all of it will be hers)."""

    yield_l: float | None = None
    known: bool = False  # seen since the tracker started (a session's end, or the idle meter)

    def idle_reading(self, y: float | None) -> None:
        """An idle stall's reading: a counter reset since means the next cow counts from zero."""
        if y is not None and self.yield_l is not None and y < self.yield_l - RESET_DROP_L:
            self.yield_l = None  # the meter reset for the next cow: its count is fresh

    def first_sight(self, y: float | None) -> None:
        """An idle stall's reading that started nothing: the first one tells what is held."""
        if self.known or y is None:
            return
        # First sight of an idle meter: what it shows is some earlier cow's milk. Less than
        # RESET_DROP_L is a counter the meter just cleared for a cow coming on (a console
        # started while her milk lets down): hers, as a reset to it would be.
        self.yield_l = y if y >= RESET_DROP_L else None
        self.known = True

    def session_ended(self, meter_yield_l: float) -> None:
        """A session ended with this counter: it is the previous cow's."""
        self.yield_l, self.known = meter_yield_l, True

    def start(self, y: float | None) -> tuple[float, float]:
        """(meter counter, yield offset) for a session starting on a reading with yield `y`."""
        held = self.yield_l
        if y is None:
            return (held, -held) if held is not None else (0.0, 0.0)
        if held is not None and y >= held - RESET_DROP_L:
            return y, -min(held, y)
        return y, 0.0


def counter_dropped(s: OpenSession, y: float) -> bool:
    """Whether the meter's counter `y` dropped enough below the session's to be a restart."""
    return y < s.meter_yield_l - RESET_DROP_L


def counter_restarted(s: OpenSession, y: float) -> None:
    """The meter's counter restarted at `y` mid-session: what it had counted goes to the offset."""
    # Nothing counted yet: the meter's own per-cow reset came after our start, not a fault.
    if s.yield_l > YIELD_RISE_L:
        s.flag(FLAG_METER_RESET)
    s.yield_offset_l += s.meter_yield_l
    s.meter_yield_l = y


def take_counter(s: OpenSession, y: float | None) -> None:
    """Take a milking reading's counter: a restart, a rise, or noise (the highest is kept)."""
    if y is None:
        return
    if counter_dropped(s, y):
        counter_restarted(s, y)
    elif y > s.meter_yield_l:
        s.meter_yield_l = y
