"""Judging a benchmark figure over several rounds, so a noisy machine shows as spread.

One round of an A/B benchmark gives one value (or one loaded/base ratio) per figure; a shared
machine moves it from round to round. Over `n` rounds this module takes the median and a
distribution-free confidence interval for it (order statistics, as the sign test does: the
interval [x(k), x(n+1-k)] holds the true median with probability 1 - 2 P(Binomial(n, 1/2) < k)),
and judges a target against the whole interval:

- pass: the interval lies within the target;
- fail: the interval lies beyond it;
- inconclusive: the interval straddles it (the machine's noise is larger than the margin), or
  there are too few rounds for the interval to reach the coverage asked for.

It also says when the spread (the interval's half-width) is larger than the effect being judged
(the median's distance from "no effect"): the effect is then not told apart from the noise, even
when the verdict is a pass.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

Verdict = Literal["pass", "fail", "inconclusive"]
COVERAGE = 0.90


@dataclass(frozen=True, slots=True)
class MedianInterval:
    """The median of `n` values and an order-statistic interval around it with `coverage`."""

    n: int
    median: float
    low: float
    high: float
    coverage: float


def median_interval(values: Sequence[float], coverage: float = COVERAGE) -> MedianInterval:
    """The median and the narrowest order-statistic interval [x(k), x(n+1-k)] whose coverage
    is at least `coverage`; with too few values for that, the full range (min, max) and the
    lower coverage it has."""
    xs = sorted(float(v) for v in values)
    n = len(xs)
    if n == 0:
        raise ValueError("median_interval: no values")
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be between 0 and 1, not {coverage}")

    def cover(k: int) -> float:  # P(x(k) <= median <= x(n+1-k))
        return 1.0 - 2.0 * sum(math.comb(n, i) for i in range(k)) / 2.0**n

    k = 1
    while k + 1 <= (n + 1) // 2 and cover(k + 1) >= coverage:
        k += 1
    return MedianInterval(n, statistics.median(xs), xs[k - 1], xs[n - k], cover(k))


@dataclass(frozen=True, slots=True)
class Judgement:
    """A figure over the rounds against an upper limit: `values` one per round, `verdict`,
    `effect` (median minus `neutral`, the value meaning "no effect"), `spread` (half the
    interval's width) and whether the spread is larger than the effect."""

    values: tuple[float, ...]
    median: float
    low: float
    high: float
    coverage: float
    limit: float
    verdict: Verdict
    effect: float
    spread: float
    spread_exceeds_effect: bool
    reason: str

    def to_json(self, digits: int = 4) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = round(value, digits)
        out["values"] = [round(v, digits) for v in self.values]
        return out


def judge_at_most(
    values: Sequence[float],
    limit: float,
    *,
    neutral: float = 0.0,
    coverage: float = COVERAGE,
) -> Judgement:
    """Is the figure's median at most `limit`, over the rounds' `values`? See the module
    docstring. `neutral` is what the figure would be with no effect at all (1.0 for a
    loaded/base ratio; 0 for a latency), for the spread-versus-effect note."""
    iv = median_interval(values, coverage)
    effect = iv.median - neutral
    spread = (iv.high - iv.low) / 2.0
    interval = f"median {iv.median:.4g}, {iv.coverage:.0%} interval [{iv.low:.4g}, {iv.high:.4g}]"
    verdict: Verdict
    if iv.coverage < coverage:
        verdict = "inconclusive"
        reason = (
            f"{iv.n} round(s) give at most a {iv.coverage:.0%} interval, below the"
            f" {coverage:.0%} asked for: {interval} against {limit:.4g}"
        )
    elif iv.high <= limit:
        verdict, reason = "pass", f"{interval} lies within {limit:.4g}"
    elif iv.low > limit:
        verdict, reason = "fail", f"{interval} lies beyond {limit:.4g}"
    else:
        verdict = "inconclusive"
        reason = f"{interval} straddles {limit:.4g}: the spread is larger than the margin"
    return Judgement(
        values=tuple(float(v) for v in values),
        median=iv.median,
        low=iv.low,
        high=iv.high,
        coverage=iv.coverage,
        limit=limit,
        verdict=verdict,
        effect=effect,
        spread=spread,
        spread_exceeds_effect=spread > abs(effect),
        reason=reason,
    )


def relative_spread(values: Sequence[float]) -> float | None:
    """(max - min) / median of `values`: how much a figure moved between rounds of the same
    kind (None when the median is 0 or there are fewer than two values)."""
    if len(values) < 2:
        return None
    med = statistics.median(values)
    if med == 0:
        return None
    return (max(values) - min(values)) / med
