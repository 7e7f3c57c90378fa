"""What the detector made of one milking, and its reason in words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from milkconsole.health.mastitis.signals import QUARTER_NAMES


@dataclass(frozen=True, slots=True)
class Assessment:
    """What the detector made of one milking (for health events, reports and tuning).

    `z_quarters` is each quarter's conductivity evidence (None where it has no data or no
    baseline); `evidence` the combined evidence of each quarter's channel (the cow-level
    features alone when the quarter has no data); `cusum` each channel's accumulated evidence;
    `trend` each quarter's early-warning trend in units of its healthy spread (0 without data).
    """

    cow_id: str
    start_time: datetime
    interval_h: float | None
    z_quarters: tuple[float | None, ...]
    z_ec: float | None
    z_yield: float | None
    z_temp: float | None
    blood: bool
    evidence: tuple[float, ...]
    cusum: tuple[float, ...]
    baseline_n: int
    trend: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)

    @property
    def top_channel(self) -> int:
        return max(range(len(self.cusum)), key=lambda i: self.cusum[i] + self.trend[i])

    def reason(self) -> str:
        """The findings in words, strongest first (what the operator reads on the alert)."""
        parts: list[tuple[float, str]] = []
        zq = self.z_quarters[self.top_channel]
        if zq is not None and zq >= 1.5:
            parts.append((zq, f"quarter {QUARTER_NAMES[self.top_channel].upper()} conductivity up"))
        if self.z_ec is not None and self.z_ec >= 1.5:
            parts.append((self.z_ec, "cow conductivity up"))
        if self.z_yield is not None and self.z_yield >= 1.5:
            parts.append((self.z_yield, "yield down"))
        if self.z_temp is not None and self.z_temp >= 1.5:
            parts.append((self.z_temp, "milk temperature up"))
        if self.blood:
            parts.append((0.0, "blood"))
        parts.sort(key=lambda p: -p[0])
        found = ", ".join(text if text == "blood" else f"{text} ({z:.1f} sd)" for z, text in parts)
        score = max(self.cusum)
        trend = max(self.trend)
        rising = f", rising {trend:.1f}" if trend >= 1.0 else ""
        return f"{found or 'small changes over several milkings'}; score {score:.1f}{rising}"
