"""bench/compare.py: a figure over several benchmark rounds is judged on an interval for its
median, so noise shows as an inconclusive verdict instead of a lucky pass or fail."""

from __future__ import annotations

import pytest

from bench.compare import judge_at_most, median_interval, relative_spread


def test_the_interval_is_the_narrowest_order_statistics_pair_reaching_the_coverage() -> None:
    six = median_interval([1.3, 1.0, 1.1, 0.9, 1.2, 1.05])
    # Six values: only (min, max) reaches 90 %: 1 - 2 / 2**6.
    assert (six.n, six.low, six.high) == (6, 0.9, 1.3)
    assert six.median == pytest.approx(1.075)
    assert six.coverage == pytest.approx(1 - 2 / 64)
    ten = median_interval([float(x) for x in range(10)])
    # Ten values: the 2nd smallest and 2nd largest hold the median with 1 - 2 * 11 / 1024.
    assert (ten.low, ten.high) == (1.0, 8.0)
    assert ten.coverage == pytest.approx(1 - 22 / 1024)
    two = median_interval([1.0, 2.0])
    assert (two.low, two.high, two.coverage) == (1.0, 2.0, 0.5)
    with pytest.raises(ValueError, match="no values"):
        median_interval([])


def test_pass_and_fail_need_the_whole_interval_on_one_side_of_the_limit() -> None:
    passed = judge_at_most([1.01, 0.98, 1.04, 1.02, 0.99, 1.03], 1.10, neutral=1.0)
    assert passed.verdict == "pass"
    failed = judge_at_most([1.4, 1.5, 1.35, 1.6, 1.45, 1.38], 1.10, neutral=1.0)
    assert failed.verdict == "fail" and "beyond" in failed.reason
    # Median 1.06 looks like a pass, but one round in six says 1.30: noise, not a verdict.
    noisy = judge_at_most([1.02, 1.06, 0.95, 1.30, 1.07, 1.05], 1.10, neutral=1.0)
    assert noisy.verdict == "inconclusive" and "straddles" in noisy.reason
    few = judge_at_most([1.01, 1.02], 1.10, neutral=1.0)
    assert few.verdict == "inconclusive" and "2 round(s)" in few.reason


def test_it_says_when_the_spread_is_larger_than_the_effect() -> None:
    small_effect = judge_at_most([0.97, 1.05, 1.02, 0.99, 1.06, 1.03], 1.10, neutral=1.0)
    assert small_effect.verdict == "pass"
    assert small_effect.effect == pytest.approx(0.025)
    assert small_effect.spread == pytest.approx(0.045)
    assert small_effect.spread_exceeds_effect
    clear_effect = judge_at_most([1.4, 1.5, 1.35, 1.6, 1.45, 1.38], 1.10, neutral=1.0)
    assert not clear_effect.spread_exceeds_effect
    assert clear_effect.to_json()["values"] == [1.4, 1.5, 1.35, 1.6, 1.45, 1.38]


def test_relative_spread_is_the_range_over_the_median() -> None:
    assert relative_spread([0.1, 0.2, 0.15]) == pytest.approx(0.1 / 0.15)
    assert relative_spread([3.0]) is None
    assert relative_spread([0.0, 0.0]) is None
