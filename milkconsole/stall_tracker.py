"""Where the stall tracker used to live; it is now the package `milkconsole.meters.tracker`.

This module only re-exports the tracker's public names, so that the code and tests importing
them from here keep working until they import from the package.
"""

from milkconsole.meters.tracker import (
    FLAG_COMM_GAP,
    FLAG_COMM_TIMEOUT,
    FLAG_LOW_YIELD,
    FLAG_METER_RESET,
    FLAG_RECOVERED,
    FLAG_RESUMED,
    FLAG_RFID_LATE,
    FLAG_RFID_SPLIT,
    FLAG_SHORT,
    RESET_DROP_L,
    SAME_COUNTER_L,
    YIELD_RISE_L,
    KeyFactory,
    LastFinished,
    StallTracker,
    effective_detection,
    make_session_key,
)

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
