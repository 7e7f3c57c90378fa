"""Quality grades and abnormal flags: the seed's rules by default, thresholds configurable."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from milkconsole.config import load_config
from milkconsole.errors import ConfigError
from milkconsole.flags import BLOOD, CONDUCTIVITY_ELEVATED, YIELD_HIGH, YIELD_LOW
from milkconsole.health.grades import GradeRules, abnormal_reasons, grade


@pytest.mark.parametrize(
    ("fat", "protein", "scc", "blood", "expected"),
    [
        (3.8, 3.2, 150_000, False, "A"),
        (3.5, 3.0, 199_999, None, "A"),
        (3.8, 3.2, 200_000, False, "B"),  # A-level solids, SCC not below 200,000
        (3.8, 3.2, None, False, "B"),  # A needs a measured SCC below 200,000, as in the seed
        (3.2, 2.9, None, False, "B"),
        (3.0, 2.8, 350_000, False, "B"),
        (3.0, 2.7, None, False, "C"),
        (2.5, 2.0, None, False, "C"),
        (2.4, 3.5, None, False, "reject"),
        (3.8, 3.2, 400_001, False, "reject"),
        (3.8, 3.2, 400_000, False, "B"),  # the seed rejects above 400,000, not at it
        (3.8, 3.2, 100_000, True, "reject"),
    ],
)
def test_seed_grade_rules(
    fat: float, protein: float, scc: int | None, blood: bool | None, expected: str
) -> None:
    assert grade(fat, protein, scc, blood) == expected


def test_milk_without_fat_or_protein_is_not_graded_unless_already_rejected() -> None:
    assert grade(None, None, None, None) is None
    assert grade(3.8, None, 100_000, False) is None
    assert grade(None, 3.2, None, False) is None
    assert grade(None, None, None, True) == "reject"
    assert grade(None, None, 500_000, False) == "reject"


@given(
    st.floats(0.0, 8.0),
    st.floats(0.0, 6.0),
    st.one_of(st.none(), st.integers(0, 2_000_000)),
    st.one_of(st.none(), st.booleans()),
)
def test_more_fat_never_lowers_the_grade(
    fat: float, protein: float, scc: int | None, blood: bool | None
) -> None:
    order = {"reject": 0, "C": 1, "B": 2, "A": 3}
    low = grade(fat, protein, scc, blood)
    high = grade(fat + 0.5, protein, scc, blood)
    assert low is not None and high is not None
    assert order[high] >= order[low]


def test_thresholds_come_from_the_parlour_config() -> None:
    rules = GradeRules.from_config(
        {"a_fat_pct": 4.0, "reject_scc_cells_ml": 300000}, "parlour.toml"
    )
    assert grade(3.8, 3.2, 150_000, False, rules) == "B"
    assert grade(4.1, 3.2, 150_000, False, rules) == "A"
    assert grade(4.1, 3.2, 350_000, False, rules) == "reject"
    assert isinstance(rules.reject_scc_cells_ml, int)


@pytest.mark.parametrize(
    ("table", "key", "problem"),
    [
        ({"a_fat": 4.0}, "health.grades.a_fat", "unknown key"),
        ({"a_fat_pct": "high"}, "health.grades.a_fat_pct", "not a number"),
        ({"c_fat_pct": -1}, "health.grades.c_fat_pct", ">= 0"),
        ({"a_fat_pct": True}, "health.grades.a_fat_pct", "not a number"),
        ({"a_scc_below_cells_ml": 500_000}, "health.grades", "above reject_scc_cells_ml"),
    ],
)
def test_bad_grade_thresholds_are_refused_naming_file_and_key(
    table: dict[str, object], key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        GradeRules.from_config(table, "parlour.toml")
    assert err.value.source == "parlour.toml"
    assert err.value.key == key
    assert problem in err.value.problem


def test_a_parlour_file_carries_grade_thresholds_in_its_health_table(tmp_path: Path) -> None:
    path = tmp_path / "parlour.toml"
    path.write_text(
        """
[parlour]
name = "Test"
farm_code = "T1"

[[bus]]
id = "rs485"
transport = "tcp"
host = "127.0.0.1"
port = 5020

[[meter]]
id = "MM-01"
bus = "rs485"
unit = 1
profile = "delaval-mm27bc"
stall = 1

[health.grades]
b_fat_pct = 3.2
""",
        encoding="utf-8",
    )
    rules = GradeRules.from_parlour(load_config(path))
    assert rules.b_fat_pct == 3.2
    assert grade(3.1, 2.9, None, False, rules) == "C"
    path.write_text(path.read_text().replace("b_fat_pct", "b_fat"), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        GradeRules.from_parlour(load_config(path))
    assert err.value.key == "health.grades.b_fat" and err.value.source == str(path)


def test_yield_far_from_the_cows_mean_is_abnormal_both_ways() -> None:
    assert abnormal_reasons(13.0, 20.0, None) == (YIELD_LOW,)
    assert abnormal_reasons(14.0, 20.0, None) == ()
    assert abnormal_reasons(26.5, 20.0, None) == (YIELD_HIGH,)
    assert abnormal_reasons(26.5, None, None) == ()  # no history, no yield check


def test_conductivity_over_the_cows_baseline_or_the_seed_default_is_abnormal() -> None:
    assert abnormal_reasons(20.0, 20.0, 6.7) == (CONDUCTIVITY_ELEVATED,)  # 5.5 * 1.2 = 6.6
    assert abnormal_reasons(20.0, 20.0, 6.5) == ()
    assert abnormal_reasons(20.0, 20.0, 6.5, baseline_conductivity_ms_cm=5.0) == (
        CONDUCTIVITY_ELEVATED,
    )
    rules = GradeRules(conductivity_factor=1.5)
    assert abnormal_reasons(20.0, 20.0, 7.0, rules=rules) == ()
    assert abnormal_reasons(10.0, 20.0, 7.0, blood=True) == (
        YIELD_LOW,
        CONDUCTIVITY_ELEVATED,
        BLOOD,
    )
