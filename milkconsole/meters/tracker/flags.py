"""The flags a session can carry, in the order they happened (`SessionSnapshot.flags`).

Defined once with their words in `milkconsole.flags`; here are the ones the tracker sets."""

from milkconsole.flags import (
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
]
