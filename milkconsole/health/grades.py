"""Milk quality grade and abnormal-milking flags for one completed session.

The default thresholds are the seed project's rules (milestone 93, `_compute_quality_grade` and
`_compute_is_abnormal`); a farm changes them in the `[health.grades]` table of its parlour
config (`GradeRules.from_config`).

Grade, first rule that applies wins:

1. blood, or SCC above `reject_scc_cells_ml` (400,000)             -> "reject"
2. fat or protein not measured                                       -> None ("not graded")
3. fat >= 3.5 and protein >= 3.0 and SCC measured < 200,000          -> "A"
   (fat/protein at grade-A level with SCC unknown or >= 200,000 is "B", as in the seed)
4. fat >= 3.0 and protein >= 2.8                                     -> "B"
5. fat >= 2.5                                                        -> "C"
6. otherwise                                                         -> "reject"
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from milkconsole.config_tables import numbers_from_table
from milkconsole.errors import ConfigError

# The reason codes `abnormal_reasons` returns and their sentences are the session flags'
# vocabulary (`milkconsole.flags`): the store writes them out without knowing these rules.
from milkconsole.flags import (
    BLOOD,
    CONDUCTIVITY_ELEVATED,
    YIELD_HIGH,
    YIELD_LOW,
)

if TYPE_CHECKING:
    from milkconsole.config import ParlourConfig

Grade = Literal["A", "B", "C", "reject"]


@dataclass(frozen=True, slots=True)
class GradeRules:
    """Thresholds for `grade` and `abnormal_reasons`. Defaults are the seed's rules."""

    reject_scc_cells_ml: int = 400_000
    a_fat_pct: float = 3.5
    a_protein_pct: float = 3.0
    a_scc_below_cells_ml: int = 200_000
    b_fat_pct: float = 3.0
    b_protein_pct: float = 2.8
    c_fat_pct: float = 2.5
    # Abnormal when the yield is more than this fraction away from the cow's 30-day mean.
    yield_deviation_frac: float = 0.30
    # Abnormal when conductivity exceeds the cow's baseline by this factor; the seed's default
    # baseline (5.5 mS/cm) applies when the cow has none yet.
    conductivity_factor: float = 1.2
    default_conductivity_baseline_ms_cm: float = 5.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"GradeRules.{f.name}: {value!r} is not a finite number >= 0")
        if self.a_scc_below_cells_ml > self.reject_scc_cells_ml:
            raise ValueError(
                "GradeRules.a_scc_below_cells_ml: above reject_scc_cells_ml "
                f"({self.a_scc_below_cells_ml} > {self.reject_scc_cells_ml})"
            )

    @classmethod
    def from_config(cls, table: Mapping[str, Any] | None, source: str) -> GradeRules:
        """Rules from the `[health.grades]` table of a config file; unknown keys are refused.

        Raises ConfigError naming `source` and the key.
        """
        return numbers_from_table(cls(), table, source, "health.grades")

    @classmethod
    def from_parlour(cls, config: ParlourConfig) -> GradeRules:
        """The rules a parlour config asks for (defaults when it has no `[health.grades]`)."""
        health = config.extra.get("health") or {}
        if not isinstance(health, Mapping):
            raise ConfigError(config.source, "health", "must be a table")
        return cls.from_config(health.get("grades"), config.source)


DEFAULT_RULES = GradeRules()


def grade(
    fat_pct: float | None,
    protein_pct: float | None,
    scc_cells_ml: int | None,
    blood: bool | None,
    rules: GradeRules = DEFAULT_RULES,
) -> Grade | None:
    """The session's grade ('A', 'B', 'C', 'reject'), or None when it cannot be graded.

    None means fat or protein was not measured and nothing already rejects the milk.
    """
    if blood:
        return "reject"
    if scc_cells_ml is not None and scc_cells_ml > rules.reject_scc_cells_ml:
        return "reject"
    if fat_pct is None or protein_pct is None:
        return None
    if fat_pct >= rules.a_fat_pct and protein_pct >= rules.a_protein_pct:
        scc_ok = scc_cells_ml is not None and scc_cells_ml < rules.a_scc_below_cells_ml
        return "A" if scc_ok else "B"
    if fat_pct >= rules.b_fat_pct and protein_pct >= rules.b_protein_pct:
        return "B"
    if fat_pct >= rules.c_fat_pct:
        return "C"
    return "reject"


def abnormal_reasons(
    yield_l: float | None,
    mean_yield_30d_l: float | None,
    conductivity_ms_cm: float | None,
    baseline_conductivity_ms_cm: float | None = None,
    blood: bool | None = None,
    rules: GradeRules = DEFAULT_RULES,
) -> tuple[str, ...]:
    """Why the milking is abnormal (reason codes, empty when it is not).

    `mean_yield_30d_l` is the cow's mean session yield over the last 30 days (None: unknown cow
    or no history, no yield check). `baseline_conductivity_ms_cm` is the cow's own baseline;
    None falls back to the rules' default baseline.
    """
    reasons: list[str] = []
    if yield_l is not None and mean_yield_30d_l is not None and mean_yield_30d_l > 0:
        deviation = (yield_l - mean_yield_30d_l) / mean_yield_30d_l
        if deviation < -rules.yield_deviation_frac:
            reasons.append(YIELD_LOW)
        elif deviation > rules.yield_deviation_frac:
            reasons.append(YIELD_HIGH)
    if conductivity_ms_cm is not None:
        baseline = baseline_conductivity_ms_cm or rules.default_conductivity_baseline_ms_cm
        if conductivity_ms_cm > baseline * rules.conductivity_factor:
            reasons.append(CONDUCTIVITY_ELEVATED)
    if blood:
        reasons.append(BLOOD)
    return tuple(reasons)


__all__ = [
    "DEFAULT_RULES",
    "Grade",
    "GradeRules",
    "abnormal_reasons",
    "grade",
]
