"""The cow-swap check as plain arithmetic: a group's milkings in, a suspect (or none) out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from milkconsole.herd.identity import SwapRules, pattern_of, suspect_in_group

T0 = datetime(2025, 3, 1, 5, 0, tzinfo=UTC)


def mornings(animal_id: int, yield_l: float, minute: int, days: int = 10) -> list:
    """Her morning milkings of the `days` before T0's day: (animal, start, yield)."""
    return [
        (
            animal_id,
            T0 - timedelta(days=d) + timedelta(minutes=minute + (d % 3)),
            yield_l + 0.3 * (d % 2),
        )
        for d in range(1, days + 1)
    ]


def test_a_milking_like_another_cows_is_suspected_to_be_hers() -> None:
    group = mornings(1, 9.0, 0) + mornings(2, 20.0, 15) + mornings(3, 14.0, 40)
    # Cow 1's tag, cow 2's yield and time.
    suspect = suspect_in_group(1, 20.2, T0 + timedelta(minutes=16), group)
    assert suspect is not None
    assert (suspect.tagged_animal_id, suspect.likely_animal_id) == (1, 2)
    assert suspect.likely_distance < 1.5 < 4.0 < suspect.tagged_distance
    assert "cow 2" in suspect.reason("2")


def test_her_own_usual_milking_is_not_suspected() -> None:
    group = mornings(1, 9.0, 0) + mornings(2, 20.0, 15)
    assert suspect_in_group(1, 9.1, T0 + timedelta(minutes=1), group) is None


def test_a_cow_milked_this_milking_already_is_no_candidate() -> None:
    group = mornings(1, 9.0, 0) + mornings(2, 20.0, 15)
    # Cow 2 was milked ten minutes ago, in another stall: this cannot be her.
    group.append((2, T0 + timedelta(minutes=6), 19.8))
    assert suspect_in_group(1, 20.2, T0 + timedelta(minutes=16), group) is None


def test_too_little_history_or_no_milk_suspects_nobody() -> None:
    rules = SwapRules()
    few = mornings(1, 9.0, 0, days=rules.min_milkings - 1) + mornings(2, 20.0, 15)
    assert suspect_in_group(1, 20.2, T0 + timedelta(minutes=16), few) is None
    group = mornings(1, 9.0, 0) + mornings(2, 20.0, 15)
    assert suspect_in_group(1, 0.0, T0 + timedelta(minutes=16), group) is None
    # Sessions of no cow (unidentified) are left out.
    assert suspect_in_group(1, 9.1, T0, [*group, (None, T0 - timedelta(days=1), 30.0)]) is None


def test_a_pattern_is_her_milkings_at_that_time_of_day_only() -> None:
    rules = SwapRules()
    morning = [(t, y) for _, t, y in mornings(1, 9.0, 0)]
    evening = [(t + timedelta(hours=12), 14.0) for t, _ in morning]
    pattern = pattern_of(1, morning + evening, T0, rules)
    assert pattern is not None and pattern.n == len(morning)
    assert 9.0 <= pattern.mean_yield_l <= 9.3
    assert pattern.sd_yield_l >= rules.min_yield_sd_l
