"""Robust statistics the detector uses: logs, medians, MAD-based spreads, quarter ratios."""

from __future__ import annotations

import math
from collections.abc import Sequence

MAD_TO_SD = 1.4826


def log_positive(value: float | None) -> float | None:
    return math.log(value) if value is not None and value > 0 else None


def relative_to_others(q: Sequence[float | None]) -> list[float | None]:
    """Each quarter's log EC minus the median of the cow's other quarters (None if < 2 others)."""
    out: list[float | None] = []
    for i, qi in enumerate(q):
        others = [v for j, v in enumerate(q) if j != i and v is not None]
        out.append(None if qi is None or len(others) < 2 else qi - median(others))
    return out


def robust(values: Sequence[float | None]) -> tuple[float | None, float, int]:
    """Median, MAD-based sd and count of the values present (None, 0, n below three)."""
    present = [v for v in values if v is not None]
    if len(present) < 3:
        return None, 0.0, 0
    centre = median(present)
    return centre, MAD_TO_SD * median([abs(v - centre) for v in present]), len(present)


def median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else 0.5 * (s[mid - 1] + s[mid])
