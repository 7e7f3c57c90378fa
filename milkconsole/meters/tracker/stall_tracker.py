"""`StallTracker`: the order in which one stall's readings and poll failures meet the rules.

The tracker keeps the open session and what outlives one session (the last good reading, the
counter the meter holds from the previous cow, whether polls failed since, when the last
session ended, a pending resume or recovery). The rules themselves are the modules it calls;
the package docstring says which holds what.
"""

from __future__ import annotations

from milkconsole.flags import FLAG_COMM_TIMEOUT, FLAG_RFID_SPLIT
from milkconsole.meters.events import (
    MeterPollFailed,
    SessionCompleted,
    SessionEvent,
    SessionSnapshot,
    SessionStarted,
    SessionUpdated,
)
from milkconsole.meters.parlour import TrackingConfig
from milkconsole.meters.profiles import Detection
from milkconsole.meters.readings import Reading
from milkconsole.meters.tracker import (
    closing,
    curve,
    detection,
    figures,
    gaps,
    identity,
    recovery,
    yields,
)
from milkconsole.meters.tracker.detection import LastReading
from milkconsole.meters.tracker.recovery import LastFinished
from milkconsole.meters.tracker.resume import PendingResume, anchor_resumed, resumed_session
from milkconsole.meters.tracker.session import OpenSession, in_progress, make_session_key
from milkconsole.meters.tracker.settings import KeyFactory, make_settings
from milkconsole.meters.tracker.thresholds import num


class StallTracker:
    """One stall's milking sessions, from its meter's readings and poll failures.

    A reading meets the rules in this order: a resumed session is anchored on this process's
    clock (`resume`), a session silent for comm_timeout_s is closed (`gaps`), the first reading
    after a gap decides whether the session goes on (`gaps.on_return`); then the open session
    takes the reading (`_in_session`: `detection`, `identity`, `yields`, `figures`) or the idle
    stall does (`_idle`: `recovery` on the very first reading, then `detection` starts one).
    Every session ends through `_end`, which keeps what the next one needs.

    `resume`: the in-progress snapshot of the session a previous console had open on this
    meter. `last_finished`: the meter's last recorded session, for `recovery`. `key_factory`:
    makes session keys (default `make_session_key`).
    """

    def __init__(
        self,
        *,
        meter_id: str,
        stall: int,
        farm_code: str,
        detection: Detection,
        tracking: TrackingConfig,
        resume: SessionSnapshot | None = None,
        last_finished: LastFinished | None = None,
        key_factory: KeyFactory | None = None,
    ) -> None:
        self.settings = make_settings(
            meter_id=meter_id,
            stall=stall,
            farm_code=farm_code,
            detection=detection,
            tracking=tracking,
            key_factory=key_factory or make_session_key,
        )
        self.meter_id = meter_id
        self.stall = stall
        self.farm_code = farm_code
        self.detection = self.settings.detection  # the effective one: overrides applied
        self.tracking = tracking
        self._open: OpenSession | None = None
        self._seen: LastReading | None = None
        self._held = yields.HeldCounter()
        self._failed_since_seen = False
        self._last_end_mono: float | None = None
        self._resume: PendingResume | None = None
        self._last_finished = last_finished if resume is None else None
        if resume is not None:
            self._open = resumed_session(self.settings, resume)
            self._resume = PendingResume(resume.flow_l_min)

    # -- public -------------------------------------------------------------------------------
    @property
    def current(self) -> SessionSnapshot | None:
        """The open session as it stands (state in_progress), or None while the stall is idle."""
        s = self._open
        if s is None:
            return None
        return in_progress(self.settings, s)

    def on_reading(self, r: Reading) -> list[SessionEvent]:
        """Feed one good reading; returns the session events it caused (none while idle)."""
        self._check_reading(r)
        events: list[SessionEvent] = []
        s = self._open
        pending = self._resume
        resumed = pending is not None
        gap = self._failed_since_seen or resumed
        if s is not None:
            if pending is not None:
                anchor_resumed(self.settings, s, r, pending)
            elif gaps.timed_out(self.settings, s, r.t_mono):
                self._end(s, closing.close_interrupted(self.settings, s, FLAG_COMM_TIMEOUT), events)
                s = None
            if s is not None and gap:
                done = gaps.on_return(self.settings, s, r, resumed=resumed)
                if done is not None:
                    self._end(s, done, events)
                    s = None
        if s is not None:
            self._in_session(s, r, events, after_gap=gap)
        else:
            self._idle(r, events)
        self._remember(r)
        return events

    def on_poll_failed(self, f: MeterPollFailed) -> list[SessionEvent]:
        """Feed one failed poll; returns [SessionCompleted] when it times the session out."""
        if f.meter_id != self.meter_id:
            raise ValueError(
                f"stall tracker for meter {self.meter_id!r} was given a poll failure of meter "
                f"{f.meter_id!r}"
            )
        self._failed_since_seen = True
        s = self._open
        events: list[SessionEvent] = []
        if s is None:
            return events
        if self._resume is not None:
            self._resume = self._resume.failed_at(f.t_mono)
            timed_out = self._resume.timed_out(self.settings, f.t_mono)
        else:
            timed_out = gaps.timed_out(self.settings, s, f.t_mono)
        if timed_out:
            self._end(s, closing.close_interrupted(self.settings, s, FLAG_COMM_TIMEOUT), events)
        return events

    # -- checks -------------------------------------------------------------------------------
    def _check_reading(self, r: Reading) -> None:
        if r.meter_id != self.meter_id:
            raise ValueError(
                f"stall tracker for meter {self.meter_id!r} was given a reading of meter "
                f"{r.meter_id!r}"
            )
        if r.t_utc.tzinfo is None or r.t_utc.utcoffset() is None:
            raise ValueError(f"meter {self.meter_id!r}: reading t_utc {r.t_utc!r} is naive")
        if self._seen is not None and self._resume is None and r.t_mono < self._seen.t_mono:
            raise ValueError(
                f"meter {self.meter_id!r}: reading at t_mono {r.t_mono} is older than the "
                f"previous one at {self._seen.t_mono}"
            )

    # -- idle and start -----------------------------------------------------------------------
    def _idle(self, r: Reading, events: list[SessionEvent]) -> None:
        """A reading of a stall with no open session: a missed milking, a start, or nothing."""
        last, self._last_finished = self._last_finished, None
        if (
            last is not None
            and self._seen is None
            and recovery.missed_milking(self.settings, r, last)
        ):
            s = recovery.recovered_session(self.settings, r, last)
            events.append(SessionStarted(in_progress(self.settings, s)))
            self._end(s, recovery.close_recovered(self.settings, s), events)
            return
        y = num(r.yield_l)
        prev_y = self._seen.yield_l if self._seen is not None else None
        self._held.idle_reading(y)
        d = self.settings.detection
        if detection.starts(d, r, prev_y):
            self._start(r, events, backdate=d.mode == "flow")
        else:
            self._held.first_sight(y)

    def _start(
        self, r: Reading, events: list[SessionEvent], *, backdate: bool, flags: tuple[str, ...] = ()
    ) -> None:
        """Open a session on `r` (`backdate`: it may have started at the previous reading)."""
        meter, offset = self._held.start(num(r.yield_l))
        since = None
        if backdate:
            since = detection.backdate_to(
                self.settings, r, self._seen, self._last_end_mono, meter + offset
            )
        s = detection.start(
            self.settings,
            r,
            meter_yield_l=meter,
            yield_offset_l=offset,
            since=since,
            gap_flow=since is not None and self._failed_since_seen,
            flags=flags,
        )
        self._open = s
        snap = in_progress(self.settings, s)
        events.append(SessionStarted(snap))
        events.append(SessionUpdated(snap, curve.take_pending(s)))

    # -- in session ---------------------------------------------------------------------------
    def _in_session(
        self, s: OpenSession, r: Reading, events: list[SessionEvent], *, after_gap: bool
    ) -> None:
        """A reading of the open session: its end, a split, or its figures taken in."""
        d = self.settings.detection
        y = num(r.yield_l)
        quiet = detection.is_quiet(d, s)
        if detection.ends_on_status(d, r):
            self._end(s, detection.end_on_status(self.settings, s, r, after_gap=after_gap), events)
            return
        if identity.tag_changed(s, r):
            if quiet:
                self._end(s, closing.close_at_quiet(self.settings, s), events)
                self._idle(r, events)
            else:
                self._end(s, identity.split_off(self.settings, s, r), events)
                self._start(r, events, backdate=False, flags=(FLAG_RFID_SPLIT,))
            return
        if y is not None and quiet and yields.counter_dropped(s, y):
            self._end(s, closing.close_at_quiet(self.settings, s), events)
            self._idle(r, events)
            return
        yields.take_counter(s, y)
        identity.take_late_tag(s, r)
        if d.mode == "flow":
            detection.update_quiet(d, s, r)
        figures.accumulate(self.settings.tracking, s, r, gap_flow=after_gap)
        if detection.quiet_over(d, s, r):
            self._end(s, closing.close_at_quiet(self.settings, s), events)
            return
        events.append(SessionUpdated(in_progress(self.settings, s), curve.take_pending(s)))

    # -- ending -------------------------------------------------------------------------------
    def _end(self, s: OpenSession, done: SessionCompleted, events: list[SessionEvent]) -> None:
        """`s` ended as `done`: keep what the sessions after it need to know of it."""
        events.append(done)
        self._open = None
        self._held.session_ended(s.meter_yield_l)
        self._last_end_mono = s.start_mono + done.session.duration_s if s.anchored else None
        self._resume = None

    def _remember(self, r: Reading) -> None:
        """`r` was handled: it is the last good reading, and the gap (or restart) is over."""
        self._seen = detection.last_reading(r, self._seen)
        self._failed_since_seen = False
        self._resume = None
