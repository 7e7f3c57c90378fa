"""What the mastitis detector reads and says: a finished milking's signals, and the alert as
raised (the health hook stores it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Severity = Literal["warning", "critical"]


QUARTER_NAMES = ("lf", "rf", "lr", "rr")


CONDITION = "mastitis"


@dataclass(frozen=True, slots=True)
class MilkingSignals:
    """The signals of one finished milking of one cow that the detector reads: its input, made
    from a recorded session by the health hook (`hook.milking_signals`), from a history file by
    `evaluate.read_sessions_csv`, and by the simulated herd.

    `quarters` is the conductivity of each quarter (LF, RF, LR, RR) in mS/cm, None where the
    meter gave none. Times are aware UTC.
    """

    cow_id: str
    start: datetime
    end: datetime
    yield_l: float
    conductivity_ms_cm: float | None = None
    quarters: tuple[float | None, float | None, float | None, float | None] = (
        None,
        None,
        None,
        None,
    )
    temperature_c: float | None = None
    blood: bool | None = None


@dataclass(frozen=True, slots=True)
class RaisedAlert:
    """The alert as raised: what the detector says at one milking (`start_time` is that
    milking's start). The health hook stores it (then it is the store's `AlertRecord`).

    `escalation` is True when it raises the severity of the cow's alert already open.
    """

    cow_id: str
    start_time: datetime
    severity: Severity
    condition: str
    reason: str
    escalation: bool = False
