"""Communication gaps: the first good reading after poll failures, and the comm timeout.

After poll failures the first good reading decides (a "return"): a different tag closes the
session `interrupted` (ended at the last good reading, its yield then) and the reading is
handled as idle; a yield drop of more than RESET_DROP_L while still milking (status not False /
flow > end_flow_l_min) is a reboot: counter-reset rule plus comm_gap; the same drop while not
milking closes it `interrupted`; otherwise the session goes on (flag comm_gap). A session whose
last good reading is comm_timeout_s old is closed `interrupted` (flag comm_timeout) by the
failure, or the reading, that finds it so. When a session ends on a return reading whose yield
has not risen, it ended at the last good one.

In flow mode a session that was quiet when the meter fell silent (and not resumed) ends at its
quiet start instead, on a new tag or a counter drop: its milking had ended before the gap.
"""

from __future__ import annotations

from milkconsole.flags import FLAG_COMM_GAP
from milkconsole.meters.events import SessionCompleted
from milkconsole.meters.readings import Reading
from milkconsole.meters.tracker import closing, detection, identity, yields
from milkconsole.meters.tracker.session import OpenSession
from milkconsole.meters.tracker.settings import Settings
from milkconsole.meters.tracker.thresholds import num


def timed_out(settings: Settings, s: OpenSession, t_mono: float) -> bool:
    """Whether the session's last good reading is comm_timeout_s old at `t_mono`."""
    return t_mono - s.last_mono >= settings.tracking.comm_timeout_s


def on_return(
    settings: Settings, s: OpenSession, r: Reading, *, resumed: bool
) -> SessionCompleted | None:
    """The first reading after a gap (failures, or a restart when `resumed`): the session it
    closed, or None when the session goes on (flagged comm_gap, its counter taken if reset)."""
    y = num(r.yield_l)
    at_quiet = detection.is_quiet(settings.detection, s) and not resumed
    if identity.tag_changed(s, r):
        if at_quiet:
            return closing.close_at_quiet(settings, s)
        return closing.close_interrupted(settings, s)
    if y is not None and yields.counter_dropped(s, y):
        if at_quiet:
            return closing.close_at_quiet(settings, s)
        if not detection.milking_now(settings.detection, r):
            return closing.close_interrupted(settings, s)
        s.flag(FLAG_COMM_GAP)
        yields.counter_restarted(s, y)
        return None
    s.flag(FLAG_COMM_GAP)
    return None
