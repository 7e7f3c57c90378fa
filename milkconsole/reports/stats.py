"""Small robust statistics for the reports (no SciPy on a parlour PC): the median and the
Wilcoxon signed-rank test with its normal approximation."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# Below this many non-zero differences the normal approximation is not trusted: p = 1.
MIN_SIGNED_RANK_N = 10


@dataclass(frozen=True, slots=True)
class SignedRank:
    """A two-sided Wilcoxon signed-rank test of "the differences are centred on 0"."""

    n: int  # non-zero differences ranked
    w_plus: float  # sum of the ranks of the positive differences
    z: float
    p_value: float


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks of `values`, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        mean_rank = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            out[order[k]] = mean_rank
        i = j + 1
    return out


def signed_rank_test(differences: Sequence[float]) -> SignedRank:
    """Wilcoxon signed-rank, zeros dropped, ties corrected, continuity corrected, two-sided."""
    d = [x for x in differences if x != 0.0]
    n = len(d)
    if n < MIN_SIGNED_RANK_N:
        return SignedRank(n, 0.0, 0.0, 1.0)
    r = ranks([abs(x) for x in d])
    w_plus = sum(rk for rk, x in zip(r, d, strict=True) if x > 0)
    mean = n * (n + 1) / 4.0
    ties: dict[float, int] = {}
    for rk in r:
        ties[rk] = ties.get(rk, 0) + 1
    var = n * (n + 1) * (2 * n + 1) / 24.0 - sum(t**3 - t for t in ties.values()) / 48.0
    if var <= 0:
        return SignedRank(n, w_plus, 0.0, 1.0)
    diff = w_plus - mean
    corrected = max(0.0, abs(diff) - 0.5)
    z = math.copysign(corrected / math.sqrt(var), diff)
    return SignedRank(n, w_plus, z, math.erfc(abs(z) / math.sqrt(2.0)))


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
