"""The words a milking session is flagged with, and how each one reads to people.

One vocabulary for everyone who sets or shows a flag: the stall tracker (`meters.tracker`), the
health rules (`health.grades`, `health.hook`) and the store, which writes them into what goes
to Odoo (`store.outbound`). It imports nothing of the console, so any layer can use it.

A session's `flags` hold, in the order they happened:

- what the tracker saw (`FLAG_*` below, from `meters.tracker`);
- why the health rules found the milking abnormal (`YIELD_LOW` ... `BLOOD`, the reason codes
  `health.grades.abnormal_reasons` returns);
- what the health hook suspects (`MASTITIS_SUSPECTED`, `COW_SWAP_SUSPECTED`).
"""

from __future__ import annotations

# -- what the stall tracker saw ------------------------------------------------------------------

FLAG_RFID_LATE = "rfid_late"  # the tag came after the milking had started
FLAG_RFID_SPLIT = "rfid_split"  # the tag changed while milking: the session was split there
FLAG_METER_RESET = "meter_reset"  # the meter's yield counter restarted mid-session
FLAG_COMM_GAP = "comm_gap"  # the meter stopped answering for a while and came back
FLAG_COMM_TIMEOUT = "comm_timeout"  # ... and did not come back within comm_timeout_s
FLAG_RESUMED = "resumed"  # the session was carried over a console restart
FLAG_RECOVERED = "recovered"  # milked while the console was down: read back from the meter
FLAG_SHORT = "short"  # shorter than tracking.min_duration_s
FLAG_LOW_YIELD = "low_yield"  # less than tracking.min_yield_l

# -- why the milking is abnormal (`health.grades.abnormal_reasons`) ----------------------------

YIELD_LOW = "yield_low"
YIELD_HIGH = "yield_high"
CONDUCTIVITY_ELEVATED = "conductivity_elevated"
BLOOD = "blood"

# -- what the health hook suspects --------------------------------------------------------------

MASTITIS_SUSPECTED = "mastitis_suspected"
COW_SWAP_SUSPECTED = "cow_swap_suspected"

# The console's sentence for a reason code.
_REASON_WORDS = {
    YIELD_LOW: "yield far below the cow's 30-day mean",
    YIELD_HIGH: "yield far above the cow's 30-day mean",
    CONDUCTIVITY_ELEVATED: "conductivity elevated over the cow's baseline",
    BLOOD: "blood in the milk",
}

# How a flag reads in Odoo's abnormality_reason (a reason code reads as its sentence).
_FLAG_WORDS = {
    FLAG_SHORT: "short milking",
    FLAG_LOW_YIELD: "low yield",
    FLAG_RFID_LATE: "tag read late",
    FLAG_RFID_SPLIT: "tag changed mid-milking (split)",
    FLAG_METER_RESET: "meter counter reset",
    FLAG_COMM_GAP: "meter silent for a while",
    FLAG_COMM_TIMEOUT: "meter silent, milking closed",
    FLAG_RESUMED: "carried over a console restart",
    FLAG_RECOVERED: "recovered from the meter after a restart",
    MASTITIS_SUSPECTED: "mastitis suspected",
    COW_SWAP_SUSPECTED: "cow swap suspected",
}


def describe_reason(code: str) -> str:
    """A sentence for the console for a reason code from `abnormal_reasons` (else the code)."""
    return _REASON_WORDS.get(code, code)


def flag_text(flag: str) -> str:
    """How one flag reads to a person outside the console (Odoo's abnormality reason)."""
    return _FLAG_WORDS.get(flag) or describe_reason(flag).rstrip(".")
