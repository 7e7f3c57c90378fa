"""The clock a parlour's readings are stamped with: the real one, or a simulated one for the demo.

A reading carries two times, `t_mono` (durations: how long a milking took, how long a meter
was silent) and `t_utc` (when it happened). On a farm both come from the system clock. The demo
plays its cows `time_scale` times faster than real time; its console reads them with a
`ScaledClock`, so a 6-minute milking is recorded as 6 minutes (not 3 wall seconds) and its
average flow reads 2 L/min, not 240. Poll scheduling, timeouts of the Modbus link and meter
health stay on the wall clock: they are about the wire, not the cow.

The store keeps UTC; people read the farm's clock, `local_zone()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol


class Clock(Protocol):
    """Where readings and the console's "now" take their times from."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (only differences mean anything)."""
        ...

    def now(self) -> datetime:
        """The time now, aware UTC."""
        ...


class SystemClock:
    """The real clock: `time.monotonic()` and the system's UTC time."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


SYSTEM_CLOCK = SystemClock()


class ScaledClock:
    """Simulated time running `scale` times as fast as the wall clock, from when it was made
    (or from `start_utc`): the demo parlour's time. Thread-safe (it only reads)."""

    def __init__(
        self,
        scale: float,
        *,
        start_utc: datetime | None = None,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        if not scale > 0:
            raise ValueError(f"a clock's scale must be above 0, not {scale}")
        if start_utc is not None and start_utc.utcoffset() is None:
            raise ValueError(f"ScaledClock: start_utc {start_utc!r} is naive, need aware UTC")
        self.scale = float(scale)
        self._wall = wall
        self._mono0 = wall()
        self.start_utc = (start_utc or datetime.now(UTC)).astimezone(UTC)

    def elapsed_s(self) -> float:
        """Simulated seconds since the clock started."""
        return (self._wall() - self._mono0) * self.scale

    def monotonic(self) -> float:
        return self._mono0 + self.elapsed_s()

    def now(self) -> datetime:
        return self.start_utc + timedelta(seconds=self.elapsed_s())


def local_zone() -> tzinfo:
    """The machine's local time zone (the farm's clock)."""
    zone = datetime.now().astimezone().tzinfo
    return zone if zone is not None else UTC
