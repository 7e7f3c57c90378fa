"""The stall tracker: one meter's state machine that turns its readings into milking sessions.

`StallTracker` (in `stall_tracker`) is the one class the rest of the console uses; the names
below are its public surface, importable from here (and, for now, from `milkconsole.stall_tracker`).
"""

from milkconsole.meters.tracker.flags import (
    FLAG_COMM_GAP,
    FLAG_COMM_TIMEOUT,
    FLAG_LOW_YIELD,
    FLAG_METER_RESET,
    FLAG_RECOVERED,
    FLAG_RESUMED,
    FLAG_RFID_LATE,
    FLAG_RFID_SPLIT,
    FLAG_SHORT,
)
from milkconsole.meters.tracker.session import make_session_key
from milkconsole.meters.tracker.settings import KeyFactory, effective_detection
from milkconsole.meters.tracker.stall_tracker import LastFinished, StallTracker
from milkconsole.meters.tracker.thresholds import RESET_DROP_L, SAME_COUNTER_L, YIELD_RISE_L

__all__ = [
    "FLAG_COMM_GAP",
    "FLAG_COMM_TIMEOUT",
    "FLAG_LOW_YIELD",
    "FLAG_METER_RESET",
    "FLAG_RECOVERED",
    "FLAG_RESUMED",
    "FLAG_RFID_LATE",
    "FLAG_RFID_SPLIT",
    "FLAG_SHORT",
    "RESET_DROP_L",
    "SAME_COUNTER_L",
    "YIELD_RISE_L",
    "KeyFactory",
    "LastFinished",
    "StallTracker",
    "effective_detection",
    "make_session_key",
]
