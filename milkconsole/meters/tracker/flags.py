"""The flags a session can carry, in the order they happened (`SessionSnapshot.flags`)."""

FLAG_RFID_LATE = "rfid_late"  # the tag came after the milking had started
FLAG_RFID_SPLIT = "rfid_split"  # the tag changed while milking: the session was split there
FLAG_METER_RESET = "meter_reset"  # the meter's yield counter restarted mid-session
FLAG_COMM_GAP = "comm_gap"  # the meter stopped answering for a while and came back
FLAG_COMM_TIMEOUT = "comm_timeout"  # ... and did not come back within comm_timeout_s
FLAG_RESUMED = "resumed"  # the session was carried over a console restart
FLAG_RECOVERED = "recovered"  # milked while the console was down: read back from the meter
FLAG_SHORT = "short"  # shorter than tracking.min_duration_s
FLAG_LOW_YIELD = "low_yield"  # less than tracking.min_yield_l
