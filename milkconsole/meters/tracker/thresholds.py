"""The tolerances that tell milk from noise in a meter's numbers, and the guard against NaN."""

from __future__ import annotations

import math

# A rise of more than this between readings is milk, not register noise or drainage drips.
YIELD_RISE_L = 0.05
# A drop of more than this means the meter's counter restarted (reset, reboot, next cow).
# Smaller drops are noise: the session keeps the higher value, so its yield never goes down.
RESET_DROP_L = 0.2
# Two counter values this close are the same milking's (float32 registers, scaled).
SAME_COUNTER_L = 0.01
# Float slack when comparing elapsed seconds (sample grid, last curve point).
EPS = 1e-9


def num(value: float | None) -> float | None:
    """The value as a float, or None when it is missing or not finite."""
    # Decode already refuses NaN; this keeps a stray one from ever reaching a stored figure.
    if value is None or not math.isfinite(value):
        return None
    return float(value)
