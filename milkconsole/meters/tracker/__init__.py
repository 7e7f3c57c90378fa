"""The stall tracker: one meter's state machine that turns its readings into milking sessions.

Pure logic: no I/O, no threads, no clock reads. Every call brings its own times (`t_mono` from
`time.monotonic()` for durations, `t_utc` aware UTC for timestamps), so tests drive it with
hand-made times and a poller thread drives it with real ones.

What it decides, per reading, and where each rule is (each module's docstring states it):
- when a milking starts and ends, by the meter's status bit or by flow and yield on maps
  without one: `detection`;
- the session's yield across meter counter resets and reboots (session yield = meter counter +
  `yield_offset_l`, continuous by construction): `yields`;
- whose milking it is, a late tag, a tag that changes mid-milking (a split): `identity`;
- comm gaps and the comm timeout: `gaps`; a console restart mid-milking: `resume`; a milking
  no console saw: `recovery`;
- the session's figures (peak / average flow, conductivity, quality): `figures`; its flow
  curve: `curve`;
- its end state, completed, incomplete (too short / too little) or interrupted (meter lost):
  `closing`.

`StallTracker` (`stall_tracker`) feeds each reading and poll failure to those in order and
keeps what outlives a session; `session` holds the open session's state and the snapshot made
of it; `settings` and `thresholds` the values all of them share (the flags' names and words are
`milkconsole.flags`). The rest of the
console uses only the names exported here (and, for now, from `milkconsole.meters.tracker`).
"""

from milkconsole.meters.tracker.recovery import LastFinished
from milkconsole.meters.tracker.session import make_session_key
from milkconsole.meters.tracker.settings import KeyFactory, effective_detection
from milkconsole.meters.tracker.stall_tracker import StallTracker
from milkconsole.meters.tracker.thresholds import RESET_DROP_L, SAME_COUNTER_L, YIELD_RISE_L

__all__ = [
    "RESET_DROP_L",
    "SAME_COUNTER_L",
    "YIELD_RISE_L",
    "KeyFactory",
    "LastFinished",
    "StallTracker",
    "effective_detection",
    "make_session_key",
]
