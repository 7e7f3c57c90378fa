"""The stall tracker: one meter's state machine that turns its readings into milking sessions.

Pure logic: no I/O, no threads, no clock reads. Every call brings its own times (`t_mono` from
`time.monotonic()` for durations, `t_utc` aware UTC for timestamps), so tests drive it with
hand-made times and a poller thread drives it with real ones.

What it decides, per reading (the exact rules are in `StallTracker`'s docstring):
- when a milking starts and ends (the meter's status bit, or flow and yield on maps without one);
- the session's yield across meter counter resets, reboots, RFID changes and comm gaps
  (session yield = meter counter + `yield_offset_l`, continuous by construction);
- the session's figures (peak / average flow, conductivity, quality) and its flow curve;
- its end state: completed, incomplete (too short / too little) or interrupted (meter lost).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from milkconsole.config import TrackingConfig
from milkconsole.events import (
    MeterPollFailed,
    SessionCompleted,
    SessionEvent,
    SessionSnapshot,
    SessionStarted,
    SessionUpdated,
)
from milkconsole.meters.tracker import (
    closing,
    curve,
    detection,
    figures,
    gaps,
    identity,
    yields,
)
from milkconsole.meters.tracker.detection import LastReading
from milkconsole.meters.tracker.flags import (
    FLAG_COMM_TIMEOUT,
    FLAG_RECOVERED,
    FLAG_RESUMED,
    FLAG_RFID_SPLIT,
)
from milkconsole.meters.tracker.session import (
    OpenSession,
    in_progress,
    make_session_key,
    snapshot,
)
from milkconsole.meters.tracker.settings import KeyFactory, make_settings
from milkconsole.meters.tracker.thresholds import (
    RESET_DROP_L,
    SAME_COUNTER_L,
    num,
)
from milkconsole.profiles import Detection
from milkconsole.readings import Reading


@dataclass(frozen=True, slots=True)
class LastFinished:
    """The meter's most recent recorded session as it ended: its tag, the counter then and its
    end (the store keeps them; a tracker started later compares the meter with them)."""

    rfid: str | None
    meter_yield_l: float
    ended_at: datetime | None


class StallTracker:
    """One stall's milking sessions, from its meter's readings and poll failures.

    Resume: `resume=` an in-progress snapshot is an open session whose meter has been silent
    since the snapshot's last moment (started_at + duration_s); the first reading is a return
    (as above), except that a drop while quiet closes it `interrupted`, and times are anchored
    by t_utc. Only failures for comm_timeout_s from the first call close it `interrupted`.

    Recovery: `last_finished=` the meter's last recorded session. When the first reading finds
    the meter idle (not milking) holding a milking that is not that one — another tag, or, with
    no tag, a counter reset since and at least min_yield_l counted again — a cow was milked
    while no console watched: it is recorded at once as a finished session (flag recovered)
    with the yield, tag and quality the meter holds, ended at that reading and started
    `session_time_s` before it when the meter says (never before the last session's end). The
    same tag, or a counter that only rose without a tag, recovers nothing (it may be the last
    cow's own milk, already recorded), nor does the last cow's final counter still shown beside
    a new tag (the next cow, identified on her way in). The yield recovered is the counter as
    it stands: this assumes a meter that counts each cow from zero, as every shipped profile's.
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
        self.detection = self.settings.detection
        self.tracking = tracking
        self._open: OpenSession | None = None
        self._seen: LastReading | None = None
        self._held = yields.HeldCounter()
        self._failed_since_seen = False
        self._last_end_mono: float | None = None
        self._resume_pending = False
        self._resume_first_mono: float | None = None
        self._resume_flow_l_min = 0.0
        self._last_finished = last_finished if resume is None else None
        if resume is not None:
            self._open = self._from_snapshot(resume)
            self._resume_pending = True
            self._resume_flow_l_min = resume.flow_l_min

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
        resumed = self._resume_pending
        gap = self._failed_since_seen or resumed
        if s is not None:
            if resumed:
                self._anchor_resumed(s, r)
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
        if self._resume_pending:
            if self._resume_first_mono is None:
                self._resume_first_mono = f.t_mono
            if f.t_mono - self._resume_first_mono >= self.tracking.comm_timeout_s:
                self._end(s, closing.close_interrupted(self.settings, s, FLAG_COMM_TIMEOUT), events)
        elif gaps.timed_out(self.settings, s, f.t_mono):
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
        if self._seen is not None and not self._resume_pending and r.t_mono < self._seen.t_mono:
            raise ValueError(
                f"meter {self.meter_id!r}: reading at t_mono {r.t_mono} is older than the "
                f"previous one at {self._seen.t_mono}"
            )

    # -- idle and start -----------------------------------------------------------------------
    def _idle(self, r: Reading, events: list[SessionEvent]) -> None:
        last, self._last_finished = self._last_finished, None
        if last is not None and self._seen is None and self._missed_milking(r, last):
            self._recover(r, last, events)
            return
        y = num(r.yield_l)
        prev_y = self._seen.yield_l if self._seen is not None else None
        self._held.idle_reading(y)
        d = self.settings.detection
        if detection.starts(d, r, prev_y):
            self._start(r, events, backdate=d.mode == "flow")
        else:
            self._held.first_sight(y)

    def _missed_milking(self, r: Reading, last: LastFinished) -> bool:
        y = num(r.yield_l)
        if (
            not detection.idle_now(self.settings.detection, r)
            or y is None
            or y < self.tracking.min_yield_l
        ):
            return False
        if abs(y - last.meter_yield_l) <= SAME_COUNTER_L:
            # The last cow's final still on the display: a new tag is the next cow, read as
            # she walked in, before her milking reset the counter.
            return False
        if r.rfid is not None:
            return r.rfid != last.rfid
        return y < last.meter_yield_l - RESET_DROP_L

    def _recover(self, r: Reading, last: LastFinished, events: list[SessionEvent]) -> None:
        y = num(r.yield_l)
        assert y is not None
        duration = float(r.session_time_s) if r.session_time_s and r.session_time_s > 0 else 0.0
        started_at = r.t_utc - timedelta(seconds=duration)
        if last.ended_at is not None and started_at < last.ended_at:
            started_at = min(last.ended_at, r.t_utc)
            duration = (r.t_utc - started_at).total_seconds()
        s = OpenSession(
            key=self.settings.new_key(started_at),
            started_at=started_at,
            start_mono=r.t_mono - duration,
            anchored=True,
            rfid=r.rfid,
            meter_yield_l=y,
            yield_offset_l=0.0,
            last_mono=r.t_mono,
            last_utc=r.t_utc,
            duration_s=duration,
            last_yield_l=y,
        )
        s.flag(FLAG_RECOVERED)
        # What the meter still shows of her milk (no flow, vacuum or curve: she is gone).
        c = figures.accumulate_milk(s, r)
        figures.accumulate_quality(s, r)
        events.append(SessionStarted(snapshot(self.settings, s, "in_progress", None, duration)))
        # Without the meter's own session time the duration is unknown, not short.
        done = closing.close(
            self.settings,
            s,
            "by_rules",
            r.t_utc,
            duration,
            flow=0.0,
            conductivity=c,
            check_duration=duration > 0,
        )
        self._end(s, done, events)

    def _start(
        self, r: Reading, events: list[SessionEvent], *, backdate: bool, flags: tuple[str, ...] = ()
    ) -> None:
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
        self._resume_pending = False

    # -- snapshots and resume -----------------------------------------------------------------
    def _from_snapshot(self, snap: SessionSnapshot) -> OpenSession:
        if snap.meter_id != self.meter_id:
            raise ValueError(
                f"stall tracker for meter {self.meter_id!r} cannot resume session {snap.key!r} "
                f"of meter {snap.meter_id!r}"
            )
        if snap.state != "in_progress":
            raise ValueError(
                f"meter {self.meter_id!r}: cannot resume session {snap.key!r} in state "
                f"{snap.state!r} (only in_progress)"
            )
        if snap.started_at.tzinfo is None or snap.started_at.utcoffset() is None:
            raise ValueError(f"meter {self.meter_id!r}: session {snap.key!r} started_at is naive")
        # The snapshot has no counts for vacuum and pulsation: weigh their means like the
        # conductivity readings, which every supported map gives on every reading.
        weight = max(1, snap.conductivity_n)
        s = OpenSession(
            key=snap.key,
            started_at=snap.started_at,
            start_mono=0.0,
            anchored=False,
            rfid=snap.rfid,
            meter_yield_l=snap.meter_yield_l,
            yield_offset_l=snap.yield_offset_l,
            last_mono=0.0,
            last_utc=snap.started_at + timedelta(seconds=snap.duration_s),
            duration_s=snap.duration_s,
            last_yield_l=snap.meter_yield_l + snap.yield_offset_l,
            flags=list(snap.flags),
            flow_l_min=snap.flow_l_min,
            peak_flow_l_min=snap.peak_flow_l_min,
            conductivity_sum=snap.conductivity_sum,
            conductivity_n=snap.conductivity_n,
            conductivity_max_ms_cm=snap.conductivity_max_ms_cm,
            ec_lf_ms_cm=snap.ec_lf_ms_cm,
            ec_rf_ms_cm=snap.ec_rf_ms_cm,
            ec_lr_ms_cm=snap.ec_lr_ms_cm,
            ec_rr_ms_cm=snap.ec_rr_ms_cm,
            temperature_max_c=snap.temperature_c,
            fat_pct=snap.fat_pct,
            protein_pct=snap.protein_pct,
            lactose_pct=snap.lactose_pct,
            scc_cells_ml=snap.scc_cells_ml,
            blood=snap.blood,
            vacuum_sum=(snap.vacuum_kpa or 0.0) * weight,
            vacuum_n=weight if snap.vacuum_kpa is not None else 0,
            pulsation_sum=(snap.pulsation_cpm or 0.0) * weight,
            pulsation_n=weight if snap.pulsation_cpm is not None else 0,
        )
        s.flag(FLAG_RESUMED)
        return s

    def _anchor_resumed(self, s: OpenSession, r: Reading) -> None:
        # This process's monotonic clock means nothing for times before it: place the session
        # on it by wall time, once, then go on in monotonic seconds.
        since_start = (r.t_utc - s.started_at).total_seconds()
        s.start_mono = r.t_mono - max(since_start, s.duration_s)
        s.last_mono = s.start_mono + s.duration_s
        s.anchored = True
        if (
            self.detection.mode == "flow"
            and self._resume_flow_l_min <= self.detection.end_flow_l_min
        ):
            s.quiet_mono, s.quiet_utc = s.last_mono, s.last_utc
            s.quiet_yield_l = s.yield_l
            s.quiet_flow_l_min = self._resume_flow_l_min
            s.quiet_conductivity_ms_cm = None

    def _remember(self, r: Reading) -> None:
        self._seen = detection.last_reading(r, self._seen)
        self._failed_since_seen = False
        self._resume_pending = False
        self._resume_first_mono = None
