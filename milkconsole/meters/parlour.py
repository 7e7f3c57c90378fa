"""The parlour as the meter pipeline sees it: the buses (an RS-485 line or a Modbus TCP
gateway), the meters on them (unit, stall, profile, factor), the stall tracker's thresholds, and
the pit's sides.

`milkconsole.config` reads these from the parlour's config file; the pipeline, the recorder and the
screens take them from here, so none of them needs the config file's reader.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

LAYOUTS = ("herringbone", "parallel", "rotary")


@dataclass(frozen=True, slots=True)
class TrackingConfig:
    """Stall-tracker thresholds. `end_after_s` etc. override the profile when set."""

    comm_timeout_s: float = 60.0
    min_duration_s: float = 120.0
    min_yield_l: float = 2.0
    sample_interval_s: float = 2.0
    end_after_s: float | None = None
    start_flow_l_min: float | None = None
    end_flow_l_min: float | None = None


@dataclass(frozen=True, slots=True)
class BusConfig:
    id: str
    transport: Literal["rtu", "tcp"]
    port: str | int
    host: str | None = None
    baudrate: int = 19200
    parity: Literal["N", "E", "O"] = "E"
    stopbits: int = 1
    bytesize: int = 8
    timeout_s: float = 0.3
    retries: int = 1
    reconnect_max_s: float = 30.0

    @property
    def char_time_s(self) -> float:
        """Seconds one character takes on the wire (start + data + parity + stop bits)."""
        bits = 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits
        return bits / self.baudrate

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}" if self.transport == "tcp" else str(self.port)


@dataclass(frozen=True, slots=True)
class MeterConfig:
    id: str
    bus: str
    unit: int
    profile: str
    stall: int
    calibration_factor: float = 1.0
    name: str = ""


def parlour_sides(stalls: list[int], layout: str) -> list[list[int]]:
    """The stall numbers as the parlour's sides (two for herringbone/parallel, one for rotary):
    the stall view shows them and the milking report counts throughput per side."""
    ordered = sorted(stalls)
    if layout == "rotary" or len(ordered) < 4:
        return [ordered]
    half = math.ceil(len(ordered) / 2)
    return [ordered[:half], ordered[half:]]


def side_name(index: int, sides: int) -> str:
    """ "A" / "B" for the two sides of a pit; "All" when the parlour has one (a rotary)."""
    return "AB"[index] if sides == 2 else "All"
