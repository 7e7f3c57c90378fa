"""The stall tracker, one behaviour per test, driven by hand-built readings at chosen seconds."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from itertools import count, pairwise
from typing import Any

import pytest

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
    LastFinished,
    StallTracker,
    effective_detection,
    make_session_key,
)

BASE = datetime(2024, 5, 1, 5, 0, tzinfo=UTC)
MONO0 = 1000.0  # the poller's monotonic clock when the test's second 0 happens
STATUS = Detection(mode="status")
FLOW = Detection(mode="flow", start_flow_l_min=0.3, end_flow_l_min=0.05, end_after_s=20.0)
TRACKING = TrackingConfig(
    comm_timeout_s=60.0, min_duration_s=120.0, min_yield_l=2.0, sample_interval_s=0.0
)


def at(t: float) -> datetime:
    return BASE + timedelta(seconds=t)


def reading(t: float, yield_l: float | None = None, **kw: Any) -> Reading:
    """A reading of meter M1 at test second `t` (monotonic and wall clock agree)."""
    return Reading(meter_id="M1", stall=3, t_mono=MONO0 + t, t_utc=at(t), yield_l=yield_l, **kw)


def failed(t: float) -> MeterPollFailed:
    return MeterPollFailed("M1", 3, MONO0 + t, at(t), "timeout", "no answer")


def keys() -> Iterator[str]:
    return (f"K{i}" for i in count(1))


def tracker(
    detection: Detection = STATUS,
    resume: SessionSnapshot | None = None,
    last_finished: LastFinished | None = None,
    **tracking: float,
) -> StallTracker:
    made = keys()
    return StallTracker(
        meter_id="M1",
        stall=3,
        farm_code="F1",
        detection=detection,
        tracking=replace(TRACKING, **tracking),
        resume=resume,
        last_finished=last_finished,
        key_factory=lambda farm, meter, started: next(made),
    )


def feed(tr: StallTracker, *items: Reading | MeterPollFailed) -> list[SessionEvent]:
    out: list[SessionEvent] = []
    for item in items:
        out += tr.on_reading(item) if isinstance(item, Reading) else tr.on_poll_failed(item)
    return out


def completed(events: list[SessionEvent]) -> list[SessionSnapshot]:
    return [e.session for e in events if isinstance(e, SessionCompleted)]


def started(events: list[SessionEvent]) -> list[SessionSnapshot]:
    return [e.session for e in events if isinstance(e, SessionStarted)]


def milking(t: float, yield_l: float, flow: float = 6.0, **kw: Any) -> Reading:
    return reading(t, yield_l, flow_l_min=flow, milking=True, **kw)


def cow(t0: float, seconds: int, rate_l_s: float = 0.1, **kw: Any) -> list[Reading]:
    """A status-bit cow milking from t0, one reading a second, yield rising rate_l_s a second."""
    return [milking(t0 + i, rate_l_s * i, rate_l_s * 60, **kw) for i in range(seconds + 1)]


def flowing(t0: float, seconds: int, rate_l_s: float = 0.1, y0: float = 0.0) -> list[Reading]:
    """A flow-detected cow (no status register): yield rising rate_l_s a second from y0."""
    return [
        reading(t0 + i, y0 + rate_l_s * i, flow_l_min=rate_l_s * 60) for i in range(seconds + 1)
    ]


# -- keys and detection ------------------------------------------------------------------------
def test_session_key_names_farm_meter_and_utc_start_with_a_random_suffix() -> None:
    cest = timezone(timedelta(hours=2))
    key = make_session_key("F1", "M7", datetime(2024, 5, 1, 7, 30, 12, tzinfo=cest))
    assert re.fullmatch(r"F1-M7-20240501T053012Z-[0-9a-f]{4}", key)
    suffixes = {make_session_key("F1", "M7", BASE)[-4:] for _ in range(50)}
    assert len(suffixes) > 40  # random, not a counter or a hash of the inputs


def test_session_key_refuses_a_naive_start_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        make_session_key("F1", "M7", datetime(2024, 5, 1, 5, 0))


def test_tracking_overrides_replace_only_the_profile_values_they_set() -> None:
    profile = Detection(mode="flow", start_flow_l_min=0.3, end_flow_l_min=0.05, end_after_s=20)
    d = effective_detection(profile, TrackingConfig(end_after_s=45.0, end_flow_l_min=0.1))
    assert (d.mode, d.start_flow_l_min, d.end_flow_l_min, d.end_after_s) == (
        "flow",
        0.3,
        0.1,
        45.0,
    )
    assert effective_detection(profile, TrackingConfig()) == profile


def test_tracker_applies_tracking_overrides_to_the_detection_it_is_given() -> None:
    tr = tracker(FLOW, end_after_s=5.0)
    events = feed(tr, *flowing(0, 30), *[reading(31 + i, 3.0, flow_l_min=0.0) for i in range(7)])
    (s,) = completed(events)
    assert s.ended_at == at(31)  # 5 s of quiet, not the profile's 20


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"comm_timeout_s": 0.0}, "comm_timeout_s"),
        ({"sample_interval_s": -1.0}, "sample_interval_s"),
        ({"min_yield_l": math.nan}, "min_yield_l"),
        ({"end_flow_l_min": 1.0}, "end_flow_l_min"),
    ],
)
def test_tracker_refuses_thresholds_that_make_no_sense(
    overrides: dict[str, float], named: str
) -> None:
    tracking = replace(TRACKING, **overrides)
    with pytest.raises(ValueError, match=named):
        StallTracker(meter_id="M1", stall=3, farm_code="F1", detection=FLOW, tracking=tracking)


def test_tracker_refuses_readings_of_another_meter_or_with_naive_times() -> None:
    tr = tracker()
    with pytest.raises(ValueError, match="M2"):
        tr.on_reading(replace(reading(0, 0.0), meter_id="M2"))
    with pytest.raises(ValueError, match="naive"):
        tr.on_reading(replace(reading(0, 0.0), t_utc=datetime(2024, 5, 1)))
    tr.on_reading(reading(10, 0.0))
    with pytest.raises(ValueError, match="older"):
        tr.on_reading(reading(5, 0.0))


# -- idle --------------------------------------------------------------------------------------
def test_idle_stall_emits_nothing_for_readings_or_failures() -> None:
    tr = tracker()
    events = feed(tr, reading(0, 8.0, milking=False), failed(1), reading(2, 8.0, milking=False))
    assert events == [] and tr.current is None
    tr = tracker(FLOW)
    events = feed(tr, reading(0, 8.0, flow_l_min=0.0), failed(100), reading(200, 8.0))
    assert events == [] and tr.current is None


def test_unknown_status_neither_starts_nor_ends_a_session() -> None:
    tr = tracker()
    assert feed(tr, reading(0, 0.0)) == []  # status register refused: milking None
    feed(tr, *cow(1, 10))
    events = feed(tr, reading(12, 1.1))
    assert [type(e) for e in events] == [SessionUpdated]
    assert tr.current is not None and tr.current.yield_l == pytest.approx(1.1)


# -- status-bit detection ----------------------------------------------------------------------
def test_status_session_starts_on_first_milking_reading_and_ends_on_first_not_milking() -> None:
    tr = tracker()
    events = feed(tr, reading(0, 0.0, milking=False), milking(10, 0.0))
    assert [type(e) for e in events] == [SessionStarted, SessionUpdated]
    assert started(events)[0].started_at == at(10)
    events = feed(tr, *cow(10, 300)[1:])
    assert {type(e) for e in events} == {SessionUpdated}
    events = feed(tr, reading(311, 30.4, milking=False))
    (s,) = completed(events)
    assert (s.state, s.started_at, s.ended_at, s.duration_s) == ("completed", at(10), at(311), 301)
    assert s.yield_l == pytest.approx(30.4)  # the meter holds the final yield: it is taken
    assert tr.current is None
    assert feed(tr, reading(312, 30.4, milking=False)) == []


def test_status_end_keeps_the_last_yield_when_the_meter_clears_its_counter_at_the_end() -> None:
    tr = tracker()
    feed(tr, *cow(0, 200))
    (s,) = completed(feed(tr, reading(201, 0.0, milking=False)))
    assert s.yield_l == pytest.approx(20.0) and s.meter_yield_l == pytest.approx(20.0)


# -- flow detection ----------------------------------------------------------------------------
def test_flow_session_starts_when_flow_reaches_the_start_threshold() -> None:
    tr = tracker(FLOW)
    assert feed(tr, reading(0, 0.0, flow_l_min=0.2)) == []
    events = feed(tr, reading(1, 0.0, flow_l_min=0.3))
    (s,) = started(events)
    assert s.started_at == at(1) and s.yield_l == 0.0


def test_flow_session_starts_on_a_yield_rise_when_the_meter_gives_no_flow() -> None:
    tr = tracker(FLOW)
    assert feed(tr, reading(0, 0.0), reading(1, 0.04)) == []  # drips, not milk
    (s,) = started(feed(tr, reading(2, 0.2)))
    # The milk came after the previous reading: the session is dated from it.
    assert s.started_at == at(1) and s.yield_l == pytest.approx(0.2)


def test_flow_session_ends_after_quiet_period_dated_when_the_flow_stopped() -> None:
    tr = tracker(FLOW)
    events = feed(tr, *flowing(0, 200))  # 20 L in 200 s
    quiet = [reading(201 + i, 20.0, flow_l_min=0.0) for i in range(21)]
    events = feed(tr, *quiet[:20])
    assert completed(events) == []  # 19 s of quiet: not yet
    (s,) = completed(feed(tr, quiet[20]))  # 20 s after the flow stopped
    assert (s.state, s.ended_at, s.duration_s) == ("completed", at(201), 201.0)
    assert s.yield_l == pytest.approx(20.0)
    assert s.flow_l_min == 0.0
    assert feed(tr, reading(300, 20.0, flow_l_min=0.0)) == []


def test_flow_pause_shorter_than_end_after_keeps_one_session() -> None:
    tr = tracker(FLOW)
    pause = [reading(101 + i, 10.0, flow_l_min=0.0) for i in range(15)]
    events = feed(tr, *flowing(0, 100), *pause, *flowing(116, 100, y0=10.0))
    events += feed(tr, *[reading(217 + i, 20.0, flow_l_min=0.0) for i in range(21)])
    (s,) = completed(events)
    assert s.yield_l == pytest.approx(20.0) and s.ended_at == at(217)


def test_yield_rising_slowly_with_no_flow_keeps_the_session_going() -> None:
    tr = tracker(FLOW)
    feed(tr, *flowing(0, 100))  # 10 L
    # Flow reads 0 (stuck register) but the milk still comes, 0.1 L every 2 s.
    slow = [reading(101 + 2 * i, 10.0 + 0.1 * i, flow_l_min=0.0) for i in range(30)]
    assert completed(feed(tr, *slow)) == []
    assert tr.current is not None and tr.current.yield_l == pytest.approx(12.9)


def test_previous_cows_yield_held_while_idle_starts_nothing_and_its_reset_is_no_milk() -> None:
    tr = tracker(FLOW)
    idle = [reading(i, 14.2, flow_l_min=0.0) for i in range(10)]
    assert feed(tr, *idle) == []
    # The next cow is attached: the meter clears its counter. A drop is not milk.
    assert feed(tr, reading(10, 0.0, flow_l_min=0.0), reading(11, 0.0, flow_l_min=0.1)) == []
    events = feed(tr, *flowing(12, 100))
    (s,) = started(events)
    assert s.yield_l == 0.0 and s.yield_offset_l == 0.0  # the counter is all this cow's
    assert tr.current is not None and tr.current.yield_l == pytest.approx(10.0)


def test_console_starting_while_a_cow_lets_down_counts_her_first_drops() -> None:
    # The meter cleared its counter for her before the console's first poll: the few
    # centilitres it shows, below the start flow, are hers, not an earlier cow's.
    tr = tracker(FLOW)
    assert feed(tr, reading(0, 0.0114, flow_l_min=0.2)) == []
    events = feed(tr, *flowing(1, 100, y0=0.0114))
    events += feed(tr, *[reading(102 + i, 10.0114, flow_l_min=0.0) for i in range(21)])
    (s,) = completed(events)
    assert s.yield_l == pytest.approx(10.0114)


def test_console_starting_on_a_finished_cows_counter_still_holds_it_back() -> None:
    tr = tracker(FLOW)
    feed(tr, reading(0, 0.25, flow_l_min=0.0))  # a short earlier milking left 0.25 L
    events = feed(tr, *flowing(1, 100, y0=0.25))
    events += feed(tr, *[reading(102 + i, 10.25, flow_l_min=0.0) for i in range(21)])
    (s,) = completed(events)
    assert s.yield_l == pytest.approx(10.0)


def test_slow_start_after_an_idle_reset_counts_all_the_new_cows_milk() -> None:
    tr = tracker(FLOW)
    feed(tr, reading(0, 6.0, flow_l_min=0.0), reading(1, 0.0, flow_l_min=0.0))  # reset
    # Milk creeps in below the start thresholds until the counter passes the old value.
    creep = [reading(2 + i, 0.04 * i, flow_l_min=0.25) for i in range(160)]
    assert feed(tr, *creep) == []
    (s,) = started(feed(tr, reading(162, 6.5, flow_l_min=3.0)))
    assert s.yield_l == pytest.approx(6.5)


def test_meter_that_never_resets_its_counter_gives_each_cow_only_its_own_milk() -> None:
    tr = tracker(FLOW)
    events = feed(tr, *flowing(0, 200))  # the first cow: 20 L
    events += feed(tr, *[reading(201 + i, 20.0, flow_l_min=0.0) for i in range(30)])
    # The next cow milks on top of the same counter.
    events += feed(tr, *flowing(231, 150, y0=20.0))
    events += feed(tr, *[reading(382 + i, 35.0, flow_l_min=0.0) for i in range(21)])
    first, second = completed(events)
    assert first.yield_l == pytest.approx(20.0)
    assert second.yield_l == pytest.approx(15.0)
    assert second.yield_offset_l == pytest.approx(-20.0)


def test_meter_reset_while_quiet_is_the_next_cow_not_more_milk() -> None:
    tr = tracker(FLOW)
    events = feed(tr, *flowing(0, 200), reading(201, 20.0, flow_l_min=0.0))
    # Only 9 s later the next cow is on: counter cleared, flow again.
    events += feed(tr, reading(210, 0.0, flow_l_min=2.0), *flowing(211, 150, y0=0.1)[1:])
    (first,) = completed(events)
    assert (first.state, first.ended_at, first.yield_l) == ("completed", at(201), 20.0)
    second = tr.current
    assert second is not None and second.key != first.key
    assert first.ended_at is not None and second.started_at >= first.ended_at
    assert second.yield_l == pytest.approx(15.1)  # every drop since the reset is the new cow's


# -- figures -----------------------------------------------------------------------------------
def test_session_figures_use_valid_values_only() -> None:
    tr = tracker(comm_timeout_s=600.0)  # a reading a minute keeps the arithmetic plain
    rows: list[dict[str, Any]] = [
        dict(flow_l_min=2.0, conductivity_ms_cm=5.0, temperature_c=37.0, vacuum_kpa=42.0,
             ec_lf_ms_cm=5.1, fat_pct=4.1, blood=False, rfid="982000123456789"),
        dict(flow_l_min=7.5, conductivity_ms_cm=6.0, temperature_c=38.9, vacuum_kpa=44.0,
             ec_lf_ms_cm=5.4, fat_pct=None, pulsation_cpm=60.0, blood=True, scc_cells_ml=90000),
        dict(flow_l_min=3.0, conductivity_ms_cm=None, temperature_c=38.0, vacuum_kpa=None,
             ec_lf_ms_cm=None, fat_pct=3.9, protein_pct=3.3, lactose_pct=4.8, blood=False,
             rejected=("conductivity_ms_cm",)),
        dict(flow_l_min=1.0, conductivity_ms_cm=math.nan, temperature_c=math.nan),
    ]  # fmt: skip
    events = feed(
        tr, *[reading(60 * i, 3.0 * i, milking=True, **row) for i, row in enumerate(rows)]
    )
    (s,) = completed(events + feed(tr, reading(240, 12.0, milking=False, fat_pct=4.0)))
    assert s.rfid == "982000123456789"
    assert (s.yield_l, s.duration_s) == (12.0, 240.0)
    assert s.peak_flow_l_min == 7.5
    assert s.avg_flow_l_min == pytest.approx(3.0)  # 12 L in 4 minutes
    assert (s.conductivity_sum, s.conductivity_n) == (11.0, 2)
    assert (s.conductivity_mean_ms_cm, s.conductivity_max_ms_cm) == (5.5, 6.0)
    assert s.ec_lf_ms_cm == 5.4  # quarter ECs: the latest valid value
    assert s.temperature_c == 38.9  # the highest seen
    assert (s.vacuum_kpa, s.pulsation_cpm) == (43.0, 60.0)  # means of the valid values
    assert (s.fat_pct, s.protein_pct, s.lactose_pct) == (4.0, 3.3, 4.8)  # latest valid
    assert s.scc_cells_ml == 90000
    assert s.blood is True  # once seen, it stays
    numbers = [v for v in vars_of(s) if isinstance(v, float)]
    assert all(math.isfinite(v) for v in numbers)


def vars_of(s: SessionSnapshot) -> list[object]:
    return [getattr(s, name) for name in SessionSnapshot.__dataclass_fields__]


def test_blood_is_unknown_until_a_reading_says_and_false_when_all_say_no() -> None:
    tr = tracker()
    feed(tr, milking(0, 0.0))
    assert tr.current is not None and tr.current.blood is None
    feed(tr, milking(1, 0.1, blood=False))
    assert tr.current is not None and tr.current.blood is False


# -- flow curve --------------------------------------------------------------------------------
def test_flow_curve_has_one_sample_per_interval_plus_first_and_last_points() -> None:
    tr = tracker(sample_interval_s=10.0)
    readings = [milking(3 * i + 0.5 * (i % 2), 0.3 * i, flow=6.0) for i in range(34)]
    events = feed(tr, *readings, reading(101, 10.0, milking=False))
    samples = [
        x for e in events if isinstance(e, SessionUpdated | SessionCompleted) for x in e.samples
    ]
    elapsed = [x.elapsed_s for x in samples]
    assert elapsed[0] == 0.0 and samples[0].yield_l == 0.0
    assert elapsed[-1] == 101.0 and samples[-1].yield_l == 10.0
    # Readings come at 0, 3.5, 6, 9.5, 12, ...: each sample is the first reading on or after
    # its 10 s mark, and the grid does not drift with the readings.
    assert elapsed[1:-1] == [12.0, 21.5, 30.0, 42.0, 51.5, 60.0, 72.0, 81.5, 90.0]
    assert all(b > a for a, b in pairwise(elapsed))


def test_interval_zero_samples_every_reading_and_each_update_carries_only_new_samples() -> None:
    tr = tracker(sample_interval_s=0.0)
    events = feed(tr, *cow(0, 20))
    updates = [e for e in events if isinstance(e, SessionUpdated)]
    assert len(updates) == 21  # one per reading while milking
    assert [[x.elapsed_s for x in u.samples] for u in updates] == [[float(i)] for i in range(21)]
    assert updates[-1].session.yield_l == pytest.approx(2.0)


def test_flow_curve_ends_where_the_flow_stopped_not_where_the_end_was_noticed() -> None:
    tr = tracker(FLOW, sample_interval_s=5.0)
    quiet = [reading(201 + i, 20.0, flow_l_min=0.0) for i in range(21)]
    events = feed(tr, *flowing(0, 200), *quiet)
    samples = [
        x for e in events if isinstance(e, SessionUpdated | SessionCompleted) for x in e.samples
    ]
    assert samples[-1].elapsed_s == 201.0 and samples[-1].flow_l_min == 0.0
    assert max(x.elapsed_s for x in samples) == 201.0


# -- RFID --------------------------------------------------------------------------------------
def test_tag_arriving_after_the_start_is_taken_and_flagged_late() -> None:
    tr = tracker()
    feed(tr, *cow(0, 10))
    feed(tr, milking(11, 1.1, rfid="982000123456789"), milking(12, 1.2))
    s = tr.current
    assert s is not None and s.rfid == "982000123456789" and s.flags == ("rfid_late",)


def test_tag_changing_while_milking_splits_the_session_without_losing_or_doubling_milk() -> None:
    tr = tracker()
    events = feed(tr, *cow(0, 150, rfid="A"))  # 15 L
    events = feed(tr, milking(151, 15.1, rfid="B"))
    (a,) = completed(events)
    (b,) = started(events)
    assert (a.rfid, a.yield_l, a.ended_at) == ("A", pytest.approx(15.1), at(151))
    assert a.flags == ("rfid_split",) and a.state == "completed"
    assert (b.rfid, b.started_at, b.yield_l) == ("B", at(151), 0.0)
    assert b.yield_offset_l == pytest.approx(-15.1) and b.flags == ("rfid_split",)
    feed(tr, milking(152, 15.3, rfid="B"))
    assert tr.current is not None and tr.current.yield_l == pytest.approx(0.2)


def test_tag_change_with_a_meter_reset_starts_the_new_cow_on_the_fresh_counter() -> None:
    tr = tracker()
    feed(tr, *cow(0, 150, rfid="A"))
    (a,) = completed(feed(tr, milking(151, 0.1, rfid="B")))
    assert a.yield_l == pytest.approx(15.0)
    assert tr.current is not None and tr.current.yield_l == pytest.approx(0.1)
    assert tr.current.yield_offset_l == 0.0


def test_reading_without_a_tag_never_takes_the_sessions_tag_away() -> None:
    tr = tracker()
    feed(tr, *cow(0, 5, rfid="A"), milking(6, 0.6))
    assert tr.current is not None and tr.current.rfid == "A" and tr.current.flags == ()


# -- counter resets ----------------------------------------------------------------------------
def test_counter_reset_while_milking_continues_the_session_with_continuous_yield() -> None:
    tr = tracker()
    feed(tr, *cow(0, 80))  # 8 L
    events = feed(tr, milking(81, 0.1), milking(82, 0.2))
    assert completed(events) == [] and started(events) == []
    s = tr.current
    assert s is not None and s.flags == ("meter_reset",)
    assert (s.yield_offset_l, s.meter_yield_l, s.yield_l) == (8.0, 0.2, pytest.approx(8.2))


def test_small_yield_dip_is_noise_and_the_session_yield_never_goes_down() -> None:
    tr = tracker()
    feed(tr, *cow(0, 80), milking(81, 7.9))
    s = tr.current
    assert s is not None and s.yield_l == pytest.approx(8.0) and s.flags == ()


def test_meters_own_reset_arriving_just_after_the_start_is_not_flagged() -> None:
    tr = tracker()
    feed(tr, reading(0, 9.0, milking=False), milking(1, 9.0), milking(2, 0.1), milking(3, 0.3))
    s = tr.current
    assert s is not None and s.yield_l == pytest.approx(0.3) and s.flags == ()


# -- communication lost ------------------------------------------------------------------------
def test_meter_back_within_timeout_continues_the_session_flagged_comm_gap() -> None:
    tr = tracker()
    feed(tr, *cow(0, 100, rfid="A"))
    events = feed(tr, *[failed(101 + i) for i in range(40)], milking(141, 14.1, rfid="A"))
    assert started(events) == [] and completed(events) == []
    s = tr.current
    assert s is not None and s.flags == ("comm_gap",) and s.yield_l == pytest.approx(14.1)
    assert s.duration_s == 141.0


def test_peak_flow_covers_the_milk_that_came_while_the_meter_was_silent() -> None:
    tr = tracker()
    feed(tr, *cow(0, 60, rate_l_s=0.05))  # 3 L/min, 3 L
    feed(tr, *[failed(61 + i) for i in range(29)], milking(90, 7.5, flow=3.0))
    s = tr.current
    # 4.5 L in 30 s: the flow reached at least 9 L/min while nobody could see it.
    assert s is not None and s.peak_flow_l_min == pytest.approx(9.0)


def test_meter_rebooted_during_the_gap_is_a_counter_reset() -> None:
    tr = tracker()
    feed(tr, *cow(0, 100, rfid="A"))
    feed(tr, failed(101), failed(102), milking(103, 0.2, rfid="A"))
    s = tr.current
    assert s is not None and s.flags == ("comm_gap", "meter_reset")
    assert s.yield_l == pytest.approx(10.2)


def test_meter_back_with_another_cows_tag_closes_the_old_as_interrupted() -> None:
    tr = tracker()
    feed(tr, *cow(0, 100, rfid="A"))
    events = feed(tr, failed(101), failed(130), milking(131, 0.5, rfid="B"))
    (a,) = completed(events)
    (b,) = started(events)
    assert (a.state, a.rfid, a.yield_l, a.ended_at) == ("interrupted", "A", 10.0, at(100))
    assert (b.rfid, b.yield_l, b.started_at) == ("B", 0.5, at(131))


def test_meter_back_not_milking_with_a_cleared_counter_closes_the_session_interrupted() -> None:
    tr = tracker()
    feed(tr, *cow(0, 100))
    (s,) = completed(feed(tr, failed(101), reading(120, 0.0, milking=False)))
    assert (s.state, s.yield_l, s.ended_at) == ("interrupted", 10.0, at(100))


def test_meter_back_not_milking_with_no_more_milk_ended_at_the_last_good_reading() -> None:
    tr = tracker()
    feed(tr, *cow(0, 200))
    (s,) = completed(feed(tr, failed(201), reading(230, 20.0, milking=False)))
    assert (s.state, s.yield_l, s.ended_at, s.flags) == ("completed", 20.0, at(200), ("comm_gap",))


def test_meter_silent_past_the_timeout_closes_the_session_interrupted_at_its_last_reading() -> None:
    tr = tracker()
    feed(tr, *cow(0, 100))
    assert feed(tr, *[failed(101 + i) for i in range(59)]) == []
    (s,) = completed(feed(tr, failed(160)))  # 60 s after the last good reading
    assert (s.state, s.ended_at, s.duration_s, s.yield_l) == ("interrupted", at(100), 100.0, 10.0)
    assert s.flags == ("comm_timeout",)
    assert tr.current is None
    assert feed(tr, failed(200)) == []
    # It answers again, cow still on: a new session counting only what is new.
    (new,) = started(feed(tr, milking(210, 10.5)))
    assert new.yield_l == pytest.approx(0.5) and new.key != s.key


def test_reading_after_a_long_unreported_silence_also_times_the_session_out() -> None:
    tr = tracker()
    feed(tr, *cow(0, 100))
    events = feed(tr, reading(500, 10.0, milking=False))
    (s,) = completed(events)
    assert s.state == "interrupted" and s.ended_at == at(100) and started(events) == []


# -- end states --------------------------------------------------------------------------------
def test_short_or_low_yield_sessions_are_incomplete_and_say_why() -> None:
    tr = tracker()
    (kick,) = completed(feed(tr, *cow(0, 30, rate_l_s=0.01), reading(31, 0.3, milking=False)))
    assert (kick.state, kick.flags) == ("incomplete", ("short", "low_yield"))
    tr = tracker()
    (short,) = completed(feed(tr, *cow(0, 100), reading(101, 10.0, milking=False)))
    assert (short.state, short.flags) == ("incomplete", ("short",))
    tr = tracker()
    (low,) = completed(feed(tr, *cow(0, 200, rate_l_s=0.005), reading(201, 1.0, milking=False)))
    assert (low.state, low.flags) == ("incomplete", ("low_yield",))


# -- resume after a restart --------------------------------------------------------------------
def stored(**kw: Any) -> SessionSnapshot:
    """An in-progress session as the database gives it back: 100 s in, 8 L on a reset meter."""
    values: dict[str, Any] = dict(
        key="F1-M1-20240501T050000Z-abcd", meter_id="M1", stall=3, started_at=at(0),
        rfid="A", duration_s=100.0, yield_l=8.0, meter_yield_l=5.0, yield_offset_l=3.0,
        flow_l_min=6.0, peak_flow_l_min=7.0, conductivity_sum=500.0, conductivity_n=100,
        conductivity_max_ms_cm=5.5, temperature_c=38.0, vacuum_kpa=42.0, flags=("meter_reset",),
    )  # fmt: skip
    values.update(kw)
    return SessionSnapshot(**values)


def later(t: float, yield_l: float | None = None, **kw: Any) -> Reading:
    """A reading of the restarted console: its monotonic clock starts over."""
    return replace(reading(t, yield_l, **kw), t_mono=5.0 + t)


def test_resumed_session_is_current_before_any_reading() -> None:
    tr = tracker(resume=stored())
    s = tr.current
    assert s is not None and s.key == stored().key and s.yield_l == 8.0
    assert s.flags == ("meter_reset", "resumed")


def test_resumed_session_continues_under_its_key_when_the_cow_is_still_milking() -> None:
    tr = tracker(resume=stored())
    events = feed(
        tr, later(130, 7.0, flow_l_min=6.0, milking=True, rfid="A", conductivity_ms_cm=7.0)
    )
    assert started(events) == [] and completed(events) == []
    (u,) = events
    s = u.session
    assert s.key == stored().key and s.started_at == at(0)
    assert (s.yield_l, s.yield_offset_l, s.duration_s) == (10.0, 3.0, 130.0)
    assert (s.conductivity_n, s.conductivity_max_ms_cm) == (101, 7.0)
    assert s.flags == ("meter_reset", "resumed", "comm_gap")
    assert s.peak_flow_l_min == 7.0
    feed(tr, later(131, 7.1, milking=True))
    assert tr.current is not None and tr.current.duration_s == 131.0
    (done,) = completed(feed(tr, later(132, 9.0, milking=False)))
    assert (done.state, done.yield_l, done.duration_s) == ("completed", 12.0, 132.0)


def test_resumed_session_with_a_lower_counter_while_milking_is_a_counter_reset() -> None:
    tr = tracker(resume=stored())
    feed(tr, later(130, 0.5, milking=True, rfid="A"))
    s = tr.current
    assert s is not None and s.key == stored().key
    assert (s.yield_l, s.yield_offset_l) == (8.5, 8.0)


def test_resumed_session_that_ended_meanwhile_completes_with_the_final_yield() -> None:
    tr = tracker(resume=stored(duration_s=200.0))
    (s,) = completed(feed(tr, later(900, 9.5, milking=False)))
    assert (s.key, s.state, s.yield_l, s.ended_at) == (stored().key, "completed", 12.5, at(900))
    tr = tracker(resume=stored(duration_s=200.0))
    (s,) = completed(feed(tr, later(900, 5.0, milking=False)))
    # No milk since the snapshot: it ended then, not when the console came back.
    assert (s.state, s.yield_l, s.ended_at, s.duration_s) == ("completed", 8.0, at(200), 200.0)


def test_resumed_session_with_a_cleared_counter_and_no_milking_is_interrupted() -> None:
    tr = tracker(resume=stored())
    events = feed(tr, later(900, 0.0, milking=False))
    (s,) = completed(events)
    assert (s.state, s.yield_l, s.ended_at) == ("interrupted", 8.0, at(100))
    assert started(events) == []


def test_resumed_session_meeting_another_cows_tag_is_interrupted_and_a_new_one_starts() -> None:
    tr = tracker(resume=stored())
    events = feed(tr, later(900, 0.4, milking=True, rfid="B"))
    (old,) = completed(events)
    (new,) = started(events)
    assert (old.key, old.state, old.yield_l) == (stored().key, "interrupted", 8.0)
    assert (new.rfid, new.yield_l, new.started_at) == ("B", 0.4, at(900))


def test_resumed_session_whose_meter_stays_silent_is_interrupted_after_the_timeout() -> None:
    tr = tracker(resume=stored())
    assert feed(tr, *[replace(failed(900 + i), t_mono=5.0 + i) for i in range(60)]) == []
    (s,) = completed(feed(tr, replace(failed(960), t_mono=65.0)))
    assert (s.state, s.yield_l, s.ended_at, s.duration_s) == ("interrupted", 8.0, at(100), 100.0)


def test_resumed_flow_session_that_had_stopped_flowing_completes_when_it_stopped() -> None:
    tr = tracker(FLOW, resume=stored(flow_l_min=0.0, duration_s=250.0))
    (s,) = completed(feed(tr, later(400, 5.0, flow_l_min=0.0)))
    assert (s.state, s.yield_l, s.ended_at) == ("completed", 8.0, at(250))


def test_resume_refuses_a_finished_session_or_another_meters() -> None:
    with pytest.raises(ValueError, match="completed"):
        tracker(resume=stored(state="completed"))
    with pytest.raises(ValueError, match="M9"):
        tracker(resume=stored(meter_id="M9"))


def test_next_cow_found_after_a_gap_that_began_once_the_flow_had_stopped_completes_the_first() -> (
    None
):
    tr = tracker(FLOW)
    feed(tr, *flowing(0, 200), reading(201, 20.0, flow_l_min=0.0))
    events = feed(tr, failed(202), failed(205), reading(208, 0.0, flow_l_min=2.5, rfid="B"))
    (first,) = completed(events)
    assert (first.state, first.ended_at, first.yield_l) == ("completed", at(201), 20.0)
    assert first.flags == ()  # the gap came after its milking
    (second,) = started(events)
    assert (second.rfid, second.started_at) == ("B", at(208))


# -- milkings the console did not see ---------------------------------------------------------
LAST = LastFinished(rfid="TAG-A", meter_yield_l=12.0, ended_at=at(-1000))


def test_milking_done_while_the_console_was_down_is_recovered_from_what_the_meter_holds() -> None:
    tr = tracker(STATUS, last_finished=LAST)
    held = reading(
        0, 9.5, rfid="TAG-B", milking=False, session_time_s=300, conductivity_ms_cm=5.1, fat_pct=4.0
    )
    events = feed(tr, held)
    (s,) = completed(events)
    assert (s.rfid, s.yield_l, s.state, s.flags) == ("TAG-B", 9.5, "completed", ("recovered",))
    assert (s.started_at, s.ended_at, s.duration_s) == (at(-300), at(0), 300.0)
    assert (s.conductivity_mean_ms_cm, s.fat_pct) == (5.1, 4.0)
    # Her milk is not the next cow's: the next one counts from the meter's reset.
    events = feed(tr, reading(5, 0.0, milking=False), *cow(10, 200, rfid="TAG-C"))
    events += feed(tr, reading(211, 20.0, milking=False, rfid="TAG-C"))
    (nxt,) = completed(events)
    assert nxt.yield_l == pytest.approx(20.0) and "recovered" not in nxt.flags


def test_recovered_milking_never_starts_before_the_last_recorded_one_ended() -> None:
    last = replace(LAST, ended_at=at(-100))
    tr = tracker(STATUS, last_finished=last)
    (s,) = completed(feed(tr, reading(0, 9.5, rfid="TAG-B", milking=False, session_time_s=300)))
    assert (s.started_at, s.duration_s) == (at(-100), 100.0)


def test_meter_still_holding_the_last_recorded_milking_recovers_nothing() -> None:
    same_tag = tracker(STATUS, last_finished=LAST)
    assert feed(same_tag, reading(0, 12.0, rfid="TAG-A", milking=False)) == []
    # Without a tag, a counter that only rose may be the last cow's own milk: not a new cow.
    untagged = tracker(STATUS, last_finished=replace(LAST, rfid=None))
    assert feed(untagged, reading(0, 14.0, milking=False)) == []
    # The next cow's tag read as she walks in, the last cow's 12 L still on the display.
    walking_in = tracker(STATUS, last_finished=LAST)
    assert feed(walking_in, reading(0, 12.0, rfid="TAG-B", milking=False)) == []
    (s,) = completed(
        feed(walking_in, *cow(5, 200, rfid="TAG-B"), reading(206, 20.0, milking=False))
    )
    assert (s.rfid, s.yield_l, s.flags) == ("TAG-B", pytest.approx(20.0), ())
    # Too little to be a milking.
    little = tracker(STATUS, last_finished=LAST)
    assert feed(little, reading(0, 1.0, rfid="TAG-B", milking=False)) == []
    # A cow on the meter now is tracked as usual, not recovered.
    busy = tracker(STATUS, last_finished=LAST)
    (s,) = started(feed(busy, milking(0, 3.0, rfid="TAG-B")))
    assert "recovered" not in s.flags


def test_untagged_milking_after_a_counter_reset_is_recovered_with_unknown_duration() -> None:
    tr = tracker(FLOW, last_finished=replace(LAST, rfid=None))
    (s,) = completed(feed(tr, reading(0, 8.0, flow_l_min=0.0)))
    # The flow meter keeps no session time: how long it took is unknown, not short.
    assert (s.yield_l, s.state, s.duration_s, s.flags) == (8.0, "completed", 0.0, ("recovered",))
