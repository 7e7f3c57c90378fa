"""Property tests of the stall tracker: whole parlour runs, cow after cow, with faults.

A small meter model (`_simulate`) milks a sequence of cows with arbitrary flow curves and feeds
the tracker what a poller would: readings, poll failures (runs shorter than the comm timeout),
meter counter resets and console restarts (a new tracker resumed from the last snapshot). The
model knows each cow's true yield; the tracker must record exactly that.

Where the truth is unknowable from the wire the model does not go: the reading just after each
cow's milk stops and each cow's attach reading always answer (without them two tag-less cows
are one long milking to any observer), a counter reset is only made when its drop (> 0.3 L)
shows on the next answered reading, and after a gap (failed polls or a console restart) only
while milk is still flowing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Literal

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from milkconsole.meters.events import (
    MeterPollFailed,
    SessionCompleted,
    SessionSnapshot,
    SessionStarted,
    SessionUpdated,
)
from milkconsole.meters.parlour import TrackingConfig
from milkconsole.meters.profiles import Detection
from milkconsole.meters.readings import Reading
from milkconsole.meters.tracker import StallTracker

BASE = datetime(2024, 5, 1, 5, 0, tzinfo=UTC)
END_AFTER_S = 10.0
TIMEOUT_S = 30.0
MAX_DT_S = 3.0
MAX_SILENT_RUN = 6  # readings in a row without an answer: 7 * 3 s < TIMEOUT_S
RESTART_CLOCK_JUMP_S = 50_000.0  # a new process's monotonic clock has nothing to do with the old

Mode = Literal["status", "flow"]


@dataclass(frozen=True)
class Cow:
    tag: str | None
    late: int  # readings before the tag shows
    flows: tuple[float, ...]  # L/min reported at reading j, flowing until reading j + 1
    dts: tuple[float, ...]  # seconds from reading j to reading j + 1
    silent: tuple[bool, ...]  # per reading 1..n: the poll fails
    resets: tuple[bool, ...]  # per reading 1..n: the counter restarts just after reading j - 1
    restart: tuple[int, int] | None  # (reading before which the console restarts, readings lost)
    idle: tuple[tuple[float, bool], ...]  # after the cow: (dt, poll fails)


@dataclass(frozen=True)
class Run:
    mode: Mode
    sample_interval_s: float
    held_l: float  # what the meter shows before the first cow
    cows: tuple[Cow, ...]
    truncate_at: int | None  # the last cow's feed stops before this reading (mid-milking)


def _flow() -> st.SearchStrategy[float]:
    # One reading in ten is a pause in the flow.
    return st.integers(0, 9).flatmap(
        lambda k: st.just(0.0) if k == 0 else st.floats(1.0, 12.0, allow_nan=False)
    )


@st.composite
def cows(draw: st.DrawFn, index: int) -> Cow:
    n = draw(st.integers(15, 40))
    flows = list(draw(st.lists(_flow(), min_size=n, max_size=n)))
    dts = draw(st.lists(st.floats(1.0, MAX_DT_S), min_size=n, max_size=n))
    flows[0] = max(flows[0], 2.0)
    # A pause must stay shorter than end_after_s, or it is (rightly) the end of the milking.
    t, pause_from = 0.0, None
    for j in range(n):
        if flows[j] == 0.0:
            pause_from = t if pause_from is None else pause_from
            if t - pause_from >= END_AFTER_S - 0.5:
                flows[j], pause_from = 2.0, None
        else:
            pause_from = None
        t += dts[j]
    # Some cows see no fault at all, some a few, some many.
    fail_1_in = draw(st.sampled_from([0, 25, 6]))
    one_in = st.integers(0, max(fail_1_in - 1, 0)).map(lambda k: fail_1_in > 0 and k == 0)
    reset_1_in = draw(st.sampled_from([0, 12]))
    reset = st.integers(0, max(reset_1_in - 1, 0)).map(lambda k: reset_1_in > 0 and k == 0)
    silent = draw(st.lists(one_in, min_size=n, max_size=n))
    resets = draw(st.lists(reset, min_size=n, max_size=n))
    restart = draw(st.none() | st.tuples(st.integers(2, n - 4), st.integers(0, 2)))
    idle = draw(st.lists(st.tuples(st.floats(1.0, MAX_DT_S), one_in), min_size=1, max_size=10))
    tagged = draw(st.booleans())
    return Cow(
        tag=f"9820001234{index:05d}" if tagged else None,
        late=draw(st.integers(0, 3)),
        flows=tuple(flows),
        dts=tuple(dts),
        silent=tuple(silent),
        resets=tuple(resets),
        restart=restart,
        idle=tuple(idle),
    )


@st.composite
def runs(draw: st.DrawFn, mode: Mode) -> Run:
    n_cows = draw(st.integers(1, 4))
    herd = tuple(draw(cows(i)) for i in range(n_cows))
    truncate = draw(st.booleans())
    last_n = len(herd[-1].flows)
    return Run(
        mode=mode,
        sample_interval_s=draw(st.sampled_from([0.0, 2.0, 5.0])),
        held_l=draw(st.sampled_from([0.0, 0.15, 7.4]) | st.floats(0.0, 30.0)),
        cows=herd,
        truncate_at=draw(st.integers(1, last_n - 1)) if truncate else None,
    )


@dataclass
class Outcome:
    events: list[object]
    current: SessionSnapshot | None
    truths: list[tuple[str | None, float]]  # per cow fed to its end: (tag, true yield)
    restarts: int


class _Feeder:
    """Plays the poller: readings and failures in time order, and console restarts."""

    def __init__(self, mode: Mode, tracking: TrackingConfig) -> None:
        self.mode = mode
        self.tracking = tracking
        self.t = 0.0
        self.clock_offset = 0.0
        self.events: list[object] = []
        self.silent_run = 0
        self.restarts = 0
        self.tracker = self._new(None)

    def _new(self, resume: SessionSnapshot | None) -> StallTracker:
        detection = Detection(mode=self.mode, end_after_s=END_AFTER_S)
        return StallTracker(
            meter_id="M1",
            stall=1,
            farm_code="F1",
            detection=detection,
            tracking=self.tracking,
            resume=resume,
        )

    def restart(self) -> None:
        self.restarts += 1
        self.clock_offset += RESTART_CLOCK_JUMP_S
        self.tracker = self._new(self.tracker.current)

    def lost(self) -> None:
        self.silent_run += 1

    def step(self, *, fails: bool, must_answer: bool = False) -> bool:
        """Decide whether this poll answers (never more than MAX_SILENT_RUN silent in a row)."""
        answers = must_answer or not fails or self.silent_run >= MAX_SILENT_RUN
        if not answers:
            self.silent_run += 1
            self.events += self.tracker.on_poll_failed(
                MeterPollFailed(
                    "M1", 1, self.t + self.clock_offset, BASE + timedelta(seconds=self.t), "timeout"
                )
            )
        return answers

    def read(
        self, yield_l: float, flow: float, milking: bool | None, rfid: str | None = None
    ) -> None:
        self.silent_run = 0
        r = Reading(
            meter_id="M1",
            stall=1,
            t_mono=self.t + self.clock_offset,
            t_utc=BASE + timedelta(seconds=self.t),
            yield_l=yield_l,
            flow_l_min=flow,
            conductivity_ms_cm=5.0 + flow / 10,
            temperature_c=37.0,
            rfid=rfid,
            milking=milking if self.mode == "status" else None,
        )
        self.events += self.tracker.on_reading(r)


def _simulate(run: Run) -> Outcome:
    tracking = TrackingConfig(
        comm_timeout_s=TIMEOUT_S,
        min_duration_s=5.0,
        min_yield_l=0.1,
        sample_interval_s=run.sample_interval_s,
    )
    feed = _Feeder(run.mode, tracking)
    status = run.mode == "status"
    counter = run.held_l
    truths: list[tuple[str | None, float]] = []
    for _ in range(2):  # the meter idles before the first cow
        feed.t += 2.0
        feed.read(counter, 0.0, False)
    for c_i, cow in enumerate(run.cows):
        last_cow = c_i == len(run.cows) - 1
        n = len(cow.flows)
        stop = run.truncate_at if last_cow and run.truncate_at is not None else None
        # Attach: the meter restarts its counter for the new cow. Always answered.
        feed.t += 2.0
        counter = 0.0
        feed.read(counter, cow.flows[0], True, cow.tag if cow.late == 0 else None)
        true_l, reported, prev_answered = 0.0, 0.0, True
        restarted = False  # a restart is a gap to the tracker: its first reading is a return
        pending_reset, shadow = False, 0.0
        lost: set[int] = set()
        if cow.restart is not None:
            lost = set(range(cow.restart[0], cow.restart[0] + cow.restart[1]))
        for j in range(1, n + 1):
            if stop is not None and j >= stop:
                return Outcome(feed.events, feed.tracker.current, truths, feed.restarts)
            if cow.restart is not None and j == cow.restart[0]:
                feed.restart()
                restarted = True
            feed.t += cow.dts[j - 1]
            milk = cow.flows[j - 1] * cow.dts[j - 1] / 60.0
            true_l += milk
            counter += milk
            shadow += milk  # what the counter would show had the pending reset not happened
            flow_now = cow.flows[j] if j < n else 0.0
            # (A reset while the flow has stopped is the next cow's to anyone watching.)
            quiet = not status and cow.flows[j - 1] == 0
            if cow.resets[j - 1] and prev_answered and not pending_reset and not quiet:
                pending_reset, shadow, counter = True, counter, milk
            if j in lost:
                feed.lost()
                prev_answered = False
                continue
            answers = feed.step(fails=cow.silent[j - 1], must_answer=(j == n and not status))
            if not answers:
                prev_answered = False
                continue
            if pending_reset:
                after_gap = not prev_answered or restarted
                visible = counter < reported - 0.3 and (status or not after_gap or flow_now > 0)
                if not visible:
                    counter = shadow
                pending_reset = False
            tag = cow.tag if j >= cow.late else None
            feed.read(counter, flow_now, True, tag)
            reported, prev_answered, restarted = counter, True, False
        if pending_reset:
            counter = shadow
        # The counter left on the meter must show the next cow's reset, or nobody could see it.
        assume(counter > 0.5)
        if status:
            feed.t += 2.0
            feed.read(counter, 0.0, False)  # the meter holds the final yield; always answered
        truths.append((cow.tag, true_l))
        idle = cow.idle
        if not status:
            # A cow change takes longer than end_after_s: keep idling until it has passed.
            spent = sum(dt for dt, _ in idle)
            if spent < END_AFTER_S + 3.0:
                idle = (*idle, (END_AFTER_S + 3.0 - spent, False))
        for dt, fails in idle:
            feed.t += dt
            if feed.step(fails=fails):
                feed.read(counter, 0.0, False)
    # Let the last cow's end be seen.
    for _ in range(int(END_AFTER_S) + 3):
        feed.t += 1.0
        feed.read(counter, 0.0, False)
    return Outcome(feed.events, feed.tracker.current, truths, feed.restarts)


def _check(run: Run, out: Outcome) -> None:
    completed = [e.session for e in out.events if isinstance(e, SessionCompleted)]
    # (1) one completed session per cow that finished, in order, for the right tag
    assert len(completed) == len(out.truths), (completed, out.truths)
    for s, (tag, true_l) in zip(completed, out.truths, strict=True):
        assert s.state == "completed", s
        assert s.rfid == tag
        # (2) the yield recorded is the cow's true total
        assert math.isclose(s.yield_l, true_l, abs_tol=1e-6), (s.yield_l, true_l, s.flags)
        assert math.isclose(s.yield_l, s.meter_yield_l + s.yield_offset_l, abs_tol=1e-9)
        # (4) a session that milked has a positive average flow its peak reached
        assert s.avg_flow_l_min > 0
        assert s.peak_flow_l_min >= s.avg_flow_l_min - 1e-9, s
    # (3) sessions never overlap and keys are unique
    every = [*completed, *([out.current] if out.current is not None else [])]
    assert len({s.key for s in every}) == len(every)
    for a, b in pairwise(every):
        assert a.ended_at is not None and a.ended_at <= b.started_at, (a, b)
    # (5) in progress only for the last cow, only when the feed stopped mid-milking
    if run.truncate_at is None:
        assert out.current is None
    else:
        assert out.current is not None and out.current.state == "in_progress"
    # Each session starts once, even across restarts; its curve only moves forward.
    started = [e.session.key for e in out.events if isinstance(e, SessionStarted)]
    assert len(started) == len(set(started)) == len(every)
    last_elapsed: dict[str, float] = {}
    for e in out.events:
        if isinstance(e, SessionUpdated | SessionCompleted):
            for sample in e.samples:
                assert sample.elapsed_s > last_elapsed.get(e.session.key, -1.0)
                assert all(math.isfinite(v) for v in (sample.yield_l, sample.flow_l_min))
                last_elapsed[e.session.key] = sample.elapsed_s
    for s in completed:
        assert s.key in last_elapsed  # at least the first and last points


PROPS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@PROPS
@given(runs("status"))
def test_status_bit_meter_records_every_cow_exactly_through_faults(run: Run) -> None:
    _check(run, _simulate(run))


@PROPS
@given(runs("flow"))
def test_flow_detected_meter_records_every_cow_exactly_through_faults(run: Run) -> None:
    _check(run, _simulate(run))
