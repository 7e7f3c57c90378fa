"""What one stall tracker is set up with: its meter and stall, the detection rules with the
parlour's `tracking` overrides applied, and the check that refuses thresholds it cannot use."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from milkconsole.meters.parlour import TrackingConfig
from milkconsole.meters.profiles import Detection

# (farm code, meter id, started_at) -> session key; `session.make_session_key` by default.
KeyFactory = Callable[[str, str, datetime], str]


def effective_detection(profile_detection: Detection, tracking: TrackingConfig) -> Detection:
    """The profile's detection with the parlour config's `tracking` overrides applied.

    `end_after_s`, `start_flow_l_min` and `end_flow_l_min` replace the profile's value when they
    are set (not None); everything else is the profile's. Applying it twice changes nothing.
    """
    d = profile_detection
    return replace(
        d,
        end_after_s=d.end_after_s if tracking.end_after_s is None else tracking.end_after_s,
        start_flow_l_min=(
            d.start_flow_l_min if tracking.start_flow_l_min is None else tracking.start_flow_l_min
        ),
        end_flow_l_min=(
            d.end_flow_l_min if tracking.end_flow_l_min is None else tracking.end_flow_l_min
        ),
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """One tracker's fixed settings, read by all its parts (made by `make_settings`)."""

    meter_id: str
    stall: int
    farm_code: str
    detection: Detection  # the effective one (overrides applied)
    tracking: TrackingConfig
    key_factory: KeyFactory

    def new_key(self, started_at: datetime) -> str:
        """The key of a session of this meter started at `started_at`."""
        return self.key_factory(self.farm_code, self.meter_id, started_at)


def make_settings(
    *,
    meter_id: str,
    stall: int,
    farm_code: str,
    detection: Detection,
    tracking: TrackingConfig,
    key_factory: KeyFactory,
) -> Settings:
    """The tracker's settings, its thresholds checked; ValueError names the one that is wrong."""
    made = Settings(
        meter_id=meter_id,
        stall=stall,
        farm_code=farm_code,
        detection=effective_detection(detection, tracking),
        tracking=tracking,
        key_factory=key_factory,
    )
    _check_thresholds(made)
    return made


def _check_thresholds(settings: Settings) -> None:
    t, d = settings.tracking, settings.detection
    checks: list[tuple[str, float, bool]] = [
        ("tracking.comm_timeout_s", t.comm_timeout_s, t.comm_timeout_s > 0),
        ("tracking.min_duration_s", t.min_duration_s, t.min_duration_s >= 0),
        ("tracking.min_yield_l", t.min_yield_l, t.min_yield_l >= 0),
        ("tracking.sample_interval_s", t.sample_interval_s, t.sample_interval_s >= 0),
        ("detection.end_after_s", d.end_after_s, d.end_after_s >= 0),
        ("detection.start_flow_l_min", d.start_flow_l_min, d.start_flow_l_min > 0),
        ("detection.end_flow_l_min", d.end_flow_l_min, d.end_flow_l_min >= 0),
    ]
    for name, value, ok in checks:
        if not (ok and math.isfinite(value)):
            raise ValueError(f"stall tracker for meter {settings.meter_id!r}: {name} = {value}")
    if d.end_flow_l_min > d.start_flow_l_min:
        raise ValueError(
            f"stall tracker for meter {settings.meter_id!r}: detection.end_flow_l_min "
            f"{d.end_flow_l_min} is above start_flow_l_min {d.start_flow_l_min}"
        )
