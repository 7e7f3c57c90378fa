"""The detector's memory: each cow's past milkings and channels, her baseline, and the herd's
shared effect of the day."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from milkconsole.health.mastitis.robust import median
from milkconsole.health.mastitis.signals import Severity


@dataclass(slots=True)
class Entry:
    """One past milking of a cow, normalised for herd and interval effects (logs)."""

    start: datetime
    ec: float | None
    quarters: tuple[float | None, ...]
    rel: tuple[float | None, ...]
    rate: float | None
    temp: float | None
    flagged: bool


@dataclass(slots=True)
class CowState:
    """A cow's detector state. Rebuilt from her milkings with `MastitisDetector.from_history`."""

    cow_id: str
    history: deque[Entry] = field(default_factory=deque)
    last_start: datetime | None = None
    cusum: list[float] = field(default_factory=lambda: [0.0] * 4)
    trend: list[float] = field(default_factory=lambda: [0.0] * 4)
    runs: list[int] = field(default_factory=lambda: [0] * 4)
    open_severity: Severity | None = None
    quiet_run: int = 0
    last_alert: datetime | None = None

    @property
    def alert_open(self) -> bool:
        return self.open_severity is not None


@dataclass(slots=True)
class Baseline:
    n: int
    ec: float | None
    sd_ec: float
    quarters: list[float | None]
    sd_quarters: list[float]
    rel: list[float | None]
    sd_rel: list[float]
    rate: float | None
    sd_rate: float
    temp: float | None
    sd_temp: float


class HerdEffect:
    """Median of the herd's recent deviations from the cows' own baselines: the part of today's
    readings that every cow shares (weather, feed, the wash water's temperature).

    Recent means within `window_h` of now (this milking session and the end of the last one)
    and at most the last `n` milkings, so a large herd follows a change within a session and
    a small herd is not stuck with last week's values; with fewer than `min_n` recent values
    it uses the last `min_n` whatever their age.
    """

    def __init__(self, n: int, window_h: float, min_n: int = 10) -> None:
        self.values: deque[tuple[datetime, float]] = deque(maxlen=n)
        self.window = timedelta(hours=window_h)
        self.min_n = min_n

    def add(self, at: datetime, value: float) -> None:
        self.values.append((at, value))

    def median(self, now: datetime) -> float:
        if len(self.values) < self.min_n:
            return 0.0
        since = now - self.window
        recent = [v for t, v in self.values if t >= since]
        if len(recent) < self.min_n:
            recent = [v for _, v in list(self.values)[-self.min_n :]]
        return median(recent)
