"""Report figures on a fabricated week (tests/helpers/report_week.py), checked against the
values worked out by hand in that module's docstring; the herd and cow trends; the statistics."""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, timedelta

import pytest

from milkconsole.reports import cow, day, herd, milking, periods, stats
from milkconsole.reports.csv_out import cell, write_table
from milkconsole.reports.tables import MILKING_COLUMNS, write_report_csv
from milkconsole.store import history
from tests.helpers.report_week import AM, CALVED, DAY, fabricate_week

NOW = AM + timedelta(hours=2)


@pytest.fixture
def week(db):
    return fabricate_week(db)


def test_the_last_milking_is_found_whole_and_named_by_its_shift(db, week):
    period = periods.last_milking(db, NOW, UTC)
    assert period is not None
    assert period.start == AM and period.end == AM + timedelta(minutes=15, microseconds=1)
    assert period.label.startswith("AM milking Tue 10 Mar 2026")
    # Before today's first cow the last milking is yesterday's PM.
    before = periods.last_milking(db, AM, UTC)
    assert before is not None and before.start == AM - timedelta(hours=13)
    assert periods.shift_name(before.start, UTC) == "PM"


def test_milking_report_figures_match_the_hand_computed_values(db, week):
    period = periods.last_milking(db, NOW, UTC)
    assert period is not None
    r = milking.build_milking_report(db, period, now=NOW)
    assert (r.figures.cows_milked, r.figures.sessions, r.figures.yield_l) == (6, 6, 48.5)
    assert r.figures.per_cow_l == pytest.approx(48.5 / 6)
    assert r.yesterday is not None
    assert (r.yesterday.cows_milked, r.yesterday.yield_l) == (4, 46.0)
    assert r.week_days == 7 and r.week_mean is not None
    assert r.week_mean.yield_l == pytest.approx(310 / 7)
    assert r.week_mean.cows_milked == 4
    # Bea: 6 L of her expected 12 L (the median of her last 6 completed milkings).
    assert [(d.cow, d.yield_l, d.expected_l) for d in r.drops] == [("102 Bea", 6.0, 12.0)]
    counts = {k: [n.cow for n in v] for k, v in r.exceptions.items()}
    assert counts == {
        "unidentified": ["no ID", "tag 982 000000000999"],
        "incomplete": ["103 Cleo"],
        "kicked_off": ["103 Cleo"],
        "reattached": ["102 Bea"],
        "interrupted": ["no ID"],
        "recovered": ["101 Ada"],
    }
    assert [(a.kind, a.cow) for a in r.alerts] == [("mastitis", "103 Cleo")]
    assert [(d.cow, d.yield_l, d.reason) for d in r.diverted] == [
        ("104 Dot", 14.0, "antibiotic treatment")
    ]
    assert (r.tank_l, r.diverted_l) == (34.5, 14.0)
    assert r.duration_s == 1320.0
    assert r.cows_per_hour == pytest.approx(6 / (1320 / 3600))
    assert [(s.name, s.sessions, s.yield_l, s.busy_s) for s in r.sides] == [
        ("A", 2, 16.0, 900.0),
        ("B", 4, 32.5, 1260.0),
    ]
    assert [(s.name, s.meter_id, s.sessions, s.yield_l) for s in r.stalls] == [
        ("1", "M1", 1, 10.0),
        ("2", "M2", 1, 6.0),
        ("3", "M3", 2, 9.5),
        ("4", "M4", 2, 23.0),
    ]


def test_a_smaller_drop_share_lists_more_cows(db, week):
    period = periods.last_milking(db, NOW, UTC)
    assert period is not None
    r = milking.build_milking_report(db, period, drop_share=0.05, now=NOW)
    # Cleo gave 7.5 of 8 L (6.25 % down): a drop at 5 %, not at 30 %.
    assert [d.cow for d in r.drops] == ["102 Bea", "103 Cleo"]
    with pytest.raises(ValueError, match="drop_share"):
        milking.build_milking_report(db, period, drop_share=1.5)


def test_an_explicit_period_compares_with_the_same_hours_on_earlier_days(db, week):
    period = periods.range_period(AM - timedelta(minutes=30), AM + timedelta(hours=1), UTC)
    r = milking.build_milking_report(db, period, now=NOW)
    assert r.figures.yield_l == 48.5
    assert r.yesterday is not None and r.yesterday.yield_l == 46.0


def test_day_report_totals_and_comparisons(db, week):
    r = day.build_day_report(db, DAY, zone=UTC, now=NOW)
    assert (r.figures.cows_milked, r.figures.yield_l) == (6, 48.5)
    assert r.yesterday is not None and (r.yesterday.cows_milked, r.yesterday.yield_l) == (4, 90.0)
    assert r.week_mean is not None and r.week_mean.yield_l == pytest.approx(618 / 7)
    assert [m.period.start for m in r.milkings] == [AM]
    assert (r.diverted_l, r.tank_l) == (14.0, 34.5)


def test_cow_trend_runs_over_days_in_milk_with_a_moving_expectation(db, week):
    t = cow.build_cow_trend(db, week["Dot"], end=NOW, zone=UTC)
    assert t.start.date() == CALVED  # her lactation, from her calving day
    assert len(t.milkings) == 15
    first, yesterday_am, today = t.milkings[0], t.milkings[12], t.milkings[-1]
    assert first.dim == (DAY - timedelta(days=7) - CALVED).days
    assert first.expected_l is None  # nothing before her first milking
    assert yesterday_am.yield_l == 16.0 and yesterday_am.expected_l == 14.0
    assert today.expected_l == 14.0 and today.diverted
    assert [d.yield_l for d in t.days[-2:]] == [30.0, 14.0]
    assert t.days[-2].expected_l == 28.0
    cleo = cow.build_cow_trend(db, week["Cleo"], end=NOW, zone=UTC)
    assert [a.key for a in cleo.alerts] == ["A-before", "A-today"]
    assert cow.find_cow(db, "103").id == week["Cleo"]
    with pytest.raises(cow.CowNotFound):
        cow.find_cow(db, "999")


def test_herd_trend_counts_each_local_day(db, week):
    t = herd.build_herd_trend(db, DAY - timedelta(days=8), DAY, zone=UTC)
    assert [d.yield_l for d in t.days] == [0.0] + [88.0] * 6 + [90.0, 48.5]
    last = t.days[-1]
    assert (last.cows_milked, last.unidentified, last.diverted_l, last.sessions) == (6, 2, 14.0, 6)
    assert t.days[0].per_cow_l is None
    with pytest.raises(ValueError):
        herd.build_herd_trend(db, DAY, DAY - timedelta(days=1), zone=UTC)


def test_expected_yield_is_taken_before_a_time(db, week):
    # Before yesterday's AM milking Dot's last six were all 14 L; after it, still 14 (median).
    assert history.expected_yields(db, before=AM - timedelta(days=1))[week["Dot"]] == 14.0
    assert history.expected_from([16.0, 14.0]) == 15.0
    assert history.expected_from([]) is None


def test_csv_rounds_to_the_meters_precision(db, week):
    assert cell("yield_l", 8.40999984741211) == "8.41"
    assert cell("duration_s", 45.493943196000146) == "45"
    assert cell("conductivity_max_ms_cm", 5.4049999) == "5.40"
    assert cell("peak_flow_l_min", 3.14159) == "3.14"
    assert cell("temperature_c", 37.449) == "37.4"
    assert cell("flags", ("short", "kickoff")) == "short;kickoff"
    assert cell("blood", True) == "1" and cell("fat_pct", None) == ""
    out = io.StringIO(newline="")
    write_table(out, ("a_l", "b"), [{"a_l": 1.0}])
    assert out.getvalue().splitlines() == ["a_l,b", "1.00,"]


def test_milking_report_csv_has_one_line_per_milking(db, week):
    period = periods.last_milking(db, NOW, UTC)
    assert period is not None
    r = milking.build_milking_report(db, period, now=NOW)
    out = io.StringIO(newline="")
    assert write_report_csv(out, r) == 6
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == MILKING_COLUMNS
    bea = next(x for x in rows if x["animal"] == "102")
    assert (bea["yield_l"], bea["expected_l"], bea["of_expected_share"]) == (
        "6.00",
        "12.00",
        "0.500",
    )
    assert (bea["reattached"], bea["stall"], bea["duration_s"]) == ("1", "2", "500")


def test_signed_rank_test_against_worked_values():
    # 20 positive differences, all ranks distinct: W+ = 210, E = 105, Var = 717.5.
    r = stats.signed_rank_test([float(i) for i in range(1, 21)])
    assert r.w_plus == 210
    assert r.z == pytest.approx((105 - 0.5) / math.sqrt(717.5))
    assert r.p_value == pytest.approx(math.erfc(r.z / math.sqrt(2)))
    sym = stats.signed_rank_test([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0] * 3)
    assert sym.p_value == pytest.approx(1.0)
    assert stats.signed_rank_test([1.0] * 5).p_value == 1.0  # too few to say
    assert stats.ranks([3.0, 1.0, 3.0]) == [2.5, 1.0, 2.5]
