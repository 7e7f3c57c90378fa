"""Withdrawal arithmetic and the divert decision: hours and milkings, across midnight and
daylight-saving changes, several treatments at once, colostrum and the keep-out flag."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from milkconsole.errors import ConfigError
from milkconsole.herd.separation import CowSeparation, SeparationRules, decide
from milkconsole.herd.withdrawal import (
    DEFAULT_INTERVAL,
    Treatment,
    TreatmentError,
    combine,
    local_text,
    milking_interval,
    withdrawal_at,
)

DUBLIN = ZoneInfo("Europe/Dublin")
NEW_YORK = ZoneInfo("America/New_York")
T0 = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)


def treat(start: datetime, *, hours: float | None = None, milkings: int | None = None, **kw):
    return Treatment(
        key=kw.pop("key", "T1"),
        animal_id=1,
        product=kw.pop("product", "Mastiplan LC"),
        start=start,
        withdrawal_hours=hours,
        withdrawal_milkings=milkings,
        **kw,
    )


def twice_a_day(first: datetime, n: int) -> list[datetime]:
    return [first + timedelta(hours=12 * i) for i in range(n)]


# -- hours ----------------------------------------------------------------------------------------


def test_an_hours_withdrawal_holds_milkings_that_start_before_its_end_and_frees_the_next():
    t = treat(T0, hours=72)
    end = T0 + timedelta(hours=72)
    assert withdrawal_at(t, T0).withheld  # a milking at the very start is held
    assert withdrawal_at(t, end - timedelta(seconds=1)).withheld
    after = withdrawal_at(t, end)
    assert not after.withheld and after.ends_at == end and after.back_to_tank
    # A milking after the end with another one between: not the first any more.
    later = withdrawal_at(t, end + timedelta(hours=12), [end + timedelta(minutes=5)])
    assert not later.withheld and not later.back_to_tank


def test_a_milking_that_started_before_the_treatment_is_not_held():
    t = treat(T0, hours=72)
    assert not withdrawal_at(t, T0 - timedelta(minutes=10)).withheld


def test_an_hours_withdrawal_across_the_spring_change_ends_after_real_hours_shown_local():
    # Dublin goes from GMT to IST at 01:00 UTC on 31 March 2024: 72 real hours from 20:00 on
    # the 30th end at 21:00 local on 2 April, not 20:00.
    start = datetime(2024, 3, 30, 20, 0, tzinfo=DUBLIN)
    w = withdrawal_at(treat(start, hours=72), start)
    assert w.ends_at - start.astimezone(UTC) == timedelta(hours=72)
    local = w.ends_at.astimezone(DUBLIN)
    assert (local.day, local.hour, local.minute) == (2, 21, 0)
    now = datetime(2024, 3, 31, 9, 0, tzinfo=DUBLIN)
    assert local_text(w.ends_at, DUBLIN, now) == "Tue 21:00"


def test_an_hours_withdrawal_across_the_autumn_change_ends_an_hour_earlier_on_the_wall():
    # New York leaves DST at 06:00 UTC on 3 November 2024: 48 h from 18:00 on the 2nd end at
    # 17:00 local on the 4th.
    start = datetime(2024, 11, 2, 18, 0, tzinfo=NEW_YORK)
    w = withdrawal_at(treat(start, hours=48), start)
    local = w.ends_at.astimezone(NEW_YORK)
    assert (local.day, local.hour) == (4, 17)
    assert w.ends_at == start.astimezone(UTC) + timedelta(hours=48)


def test_a_withdrawal_across_midnight_shows_tomorrow():
    start = datetime(2025, 6, 10, 21, 30, tzinfo=DUBLIN)
    w = withdrawal_at(treat(start, hours=12), start)
    assert local_text(w.ends_at, DUBLIN, start) == "tomorrow 09:30"
    assert local_text(w.ends_at, DUBLIN, start + timedelta(hours=3)) == "09:30"


# -- milkings -------------------------------------------------------------------------------------


def test_a_withdrawal_in_milkings_holds_exactly_that_many_and_flags_the_next():
    t = treat(T0, milkings=4)
    milkings = twice_a_day(T0 + timedelta(hours=1), 6)
    held = []
    for i, at in enumerate(milkings):
        w = withdrawal_at(t, at, milkings[:i])
        held.append(w.withheld)
        if w.withheld:
            assert w.milkings_left == 4 - i and w.estimated
    assert held == [True, True, True, True, False, False]
    fifth = withdrawal_at(t, milkings[4], milkings[:4])
    assert fifth.back_to_tank and fifth.ends_at == milkings[3] and not fifth.estimated
    assert not withdrawal_at(t, milkings[5], milkings[:5]).back_to_tank


def test_the_end_of_a_milkings_withdrawal_is_estimated_from_her_own_interval():
    # She is milked three times a day: 8 h apart.
    history = [T0 - timedelta(hours=8 * i) for i in range(1, 8)]
    assert milking_interval(history) == timedelta(hours=8)
    assert milking_interval([]) == DEFAULT_INTERVAL
    t = treat(T0 - timedelta(minutes=30), milkings=3)
    w = withdrawal_at(t, T0, history)
    assert w.withheld and w.milkings_left == 3
    assert w.ends_at == T0 + timedelta(hours=24)


def test_the_milking_being_recorded_never_counts_itself():
    t = treat(T0, milkings=1)
    # Her own in-progress milking (same start) is in the list: it must not end the withdrawal.
    assert withdrawal_at(t, T0 + timedelta(hours=1), [T0 + timedelta(hours=1)]).withheld


# -- several at once ------------------------------------------------------------------------------


def test_several_treatments_at_once_the_latest_end_wins():
    a = treat(T0, hours=36, key="A", product="Cobactan")
    b = treat(T0 + timedelta(hours=2), hours=96, key="B", product="Mastiplan")
    c = treat(T0 - timedelta(days=30), hours=48, key="C", product="Old")
    at = T0 + timedelta(hours=12)
    together = combine(withdrawal_at(t, at) for t in (a, b, c))
    assert together.withheld and together.ends_at == T0 + timedelta(hours=98)
    assert {w.treatment.key for w in together.withholding} == {"A", "B"}
    cow = CowSeparation(1, treatments=(a, b, c))
    d = decide(cow, at)
    assert d.divert and d.until == T0 + timedelta(hours=98)
    assert "Cobactan" in d.reason_text and "Mastiplan" in d.reason_text
    assert "Old" not in d.reason_text


def test_a_treatment_ending_later_in_hours_beats_an_estimate_and_the_reverse():
    hours = treat(T0, hours=24, key="H")
    milk = treat(T0, milkings=6, key="M")
    d = decide(CowSeparation(1, treatments=(hours, milk)), T0 + timedelta(hours=1))
    assert d.until == T0 + timedelta(hours=1) + DEFAULT_INTERVAL * 6 and d.estimated
    short = treat(T0, milkings=1, key="M1")
    d = decide(CowSeparation(1, treatments=(hours, short)), T0 + timedelta(hours=1))
    assert d.until == T0 + timedelta(hours=24) and not d.estimated


# -- colostrum and the keep-out flag --------------------------------------------------------------


def test_colostrum_holds_the_first_eight_milkings_after_calving_then_lets_the_milk_back():
    calved = date(2025, 3, 1)
    milkings = twice_a_day(datetime(2025, 3, 1, 17, 0, tzinfo=UTC), 10)
    cow = CowSeparation(1, calved_on=calved)
    held = []
    for i, at in enumerate(milkings):
        d = decide(CowSeparation(1, calved_on=calved, milkings=tuple(milkings[:i])), at, zone=UTC)
        held.append(d.divert)
        if d.divert:
            assert d.reasons[0].text == f"colostrum, milking {i + 1} of 8"
    assert held == [True] * 8 + [False, False]
    ninth = decide(
        CowSeparation(1, calved_on=calved, milkings=tuple(milkings[:8])), milkings[8], zone=UTC
    )
    assert ninth.back_to_tank == ("colostrum period",)
    assert decide(cow, milkings[0], SeparationRules(colostrum_milkings=0), zone=UTC).divert is False


def test_colostrum_ends_after_the_day_cap_when_milkings_went_unrecorded():
    cow = CowSeparation(1, calved_on=date(2025, 3, 1))
    rules = SeparationRules(colostrum_milkings=8, colostrum_max_days=7)
    assert decide(cow, datetime(2025, 3, 7, 23, 0, tzinfo=UTC), rules, zone=UTC).divert
    late = decide(cow, datetime(2025, 3, 8, 6, 0, tzinfo=UTC), rules, zone=UTC)
    assert not late.divert and late.back_to_tank == ("colostrum period",)


def test_the_keep_out_flag_holds_until_cleared_and_says_so():
    d = decide(CowSeparation(1, withheld_reason="high SCC"), T0)
    assert d.divert and d.open_ended and d.until is None
    assert d.reason_text == "kept out: high SCC"
    assert d.until_text() == "until the keep-out flag is cleared"
    both = decide(CowSeparation(1, withheld_reason="blood", treatments=(treat(T0, hours=12),)), T0)
    assert both.open_ended and len(both.reasons) == 2


def test_a_cow_with_nothing_on_record_goes_to_the_tank():
    assert not decide(None, T0).divert
    assert not decide(CowSeparation(1), T0).divert


def test_the_last_milking_to_divert_is_said_in_advance():
    t = treat(T0, milkings=2)
    first = decide(CowSeparation(1, treatments=(t,)), T0 + timedelta(hours=1))
    assert first.divert and not first.last_milking
    second = decide(
        CowSeparation(1, treatments=(t,), milkings=(T0 + timedelta(hours=1),)),
        T0 + timedelta(hours=13),
    )
    assert second.divert and second.last_milking
    assert second.until_text(UTC, T0) == "last one: the next milking goes to the tank"
    hours = decide(CowSeparation(1, treatments=(treat(T0, hours=20),)), T0 + timedelta(hours=12))
    assert hours.last_milking and hours.until_text(UTC, T0) == "last one: tank from tomorrow 02:00"


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "milkings", "words"),
    [
        (None, None, "one of them"),
        (72, 6, "one of them"),
        (0, None, "above 0"),
        (-5, None, "above 0"),
        (float("nan"), None, "above 0"),
        (None, 0, ">= 1"),
        (100000, None, "check the label"),
    ],
)
def test_a_withdrawal_must_be_hours_or_milkings_and_sensible(hours, milkings, words):
    with pytest.raises(TreatmentError, match=words):
        treat(T0, hours=hours, milkings=milkings)


def test_separation_rules_are_checked_like_the_rest_of_the_config():
    assert SeparationRules.from_table({"colostrum_milkings": 6}, "p.toml").colostrum_milkings == 6
    with pytest.raises(ConfigError, match=r"separation\.colostrum_days"):
        SeparationRules.from_table({"colostrum_days": 6}, "p.toml")
    with pytest.raises(ConfigError, match="colostrum_milkings 99"):
        SeparationRules.from_table({"colostrum_milkings": 99}, "p.toml")


# -- properties -----------------------------------------------------------------------------------

ZONES = st.sampled_from(
    [DUBLIN, NEW_YORK, ZoneInfo("Australia/Sydney"), ZoneInfo("Europe/Berlin"), UTC]
)
instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(
    start=instants,
    hours=st.floats(min_value=0.5, max_value=24 * 60, allow_nan=False),
    offset_h=st.floats(min_value=-48, max_value=24 * 70, allow_nan=False),
    zone=ZONES,
)
def test_property_hours_withheld_exactly_inside_the_real_hours_whatever_the_zone(
    start, hours, offset_h, zone
):
    local_start = start.astimezone(zone)  # the same instant written in local time
    t = treat(local_start, hours=hours)
    at = start + timedelta(hours=offset_h)
    w = withdrawal_at(t, at.astimezone(zone))
    end = start + timedelta(hours=hours)
    assert w.ends_at == end
    assert w.withheld == (start <= at < end)
    # Shown local, read back: the same instant (the wall clock may have jumped in between).
    assert w.ends_at.astimezone(zone).astimezone(UTC) == end


@settings(max_examples=200, deadline=None)
@given(
    start=instants,
    n=st.integers(min_value=1, max_value=12),
    gaps=st.lists(st.floats(min_value=4.0, max_value=20.0), min_size=1, max_size=30),
    lead_h=st.floats(min_value=0.0, max_value=10.0),
)
def test_property_exactly_n_milkings_from_the_start_are_held_and_the_next_one_is_flagged(
    start, n, gaps, lead_h
):
    t = treat(start, milkings=n)
    milkings = [start + timedelta(hours=lead_h)]
    for g in gaps:
        milkings.append(milkings[-1] + timedelta(hours=g))
    results = [withdrawal_at(t, at, milkings[:i]) for i, at in enumerate(milkings)]
    assert sum(r.withheld for r in results) == min(n, len(milkings))
    assert [r.withheld for r in results] == [i < n for i in range(len(milkings))]
    flagged = [i for i, r in enumerate(results) if r.back_to_tank]
    assert flagged == ([n] if len(milkings) > n else [])


@settings(max_examples=200, deadline=None)
@given(
    base=instants,
    specs=st.lists(
        st.tuples(
            st.floats(min_value=-200, max_value=200),
            st.one_of(
                st.tuples(st.just("h"), st.floats(min_value=1, max_value=500)),
                st.tuples(st.just("m"), st.integers(min_value=1, max_value=14)),
            ),
        ),
        min_size=1,
        max_size=6,
    ),
    history=st.lists(st.floats(min_value=-400, max_value=0), max_size=20),
)
def test_property_several_treatments_withhold_while_any_does_until_the_latest_end(
    base, specs, history
):
    at = base
    milkings = sorted(base + timedelta(hours=h) for h in history if h < 0)
    treatments = []
    for i, (offset, (kind, amount)) in enumerate(specs):
        start = base + timedelta(hours=offset)
        if kind == "h":
            treatments.append(treat(start, hours=amount, key=f"T{i}"))
        else:
            treatments.append(treat(start, milkings=int(amount), key=f"T{i}"))
    each = [withdrawal_at(t, at, milkings) for t in treatments]
    together = combine(each)
    assert together.withheld == any(w.withheld for w in each)
    if together.withheld:
        assert together.ends_at is not None
        assert all(together.ends_at >= w.ends_at for w in each if w.withheld)
        assert together.ends_at > at or together.estimated
    d = decide(CowSeparation(1, treatments=tuple(treatments), milkings=tuple(milkings)), at)
    assert d.divert == together.withheld
    if d.divert:
        assert d.until == together.ends_at
