"""Values that cross threads: one decoded meter reading, and the field vocabulary profiles use.

Every unit lives in the name. A `Reading` holds only values that passed the profile's checks;
refused values are listed by name in `rejected` and are never stored as data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# Field names a profile may map, with the Python type a decoded value has.
# Adding a meter model never needs a new name here unless the meter measures a new quantity.
FIELD_KINDS: dict[str, type] = {
    "yield_l": float,
    "flow_l_min": float,
    "conductivity_ms_cm": float,
    "ec_lf_ms_cm": float,
    "ec_rf_ms_cm": float,
    "ec_lr_ms_cm": float,
    "ec_rr_ms_cm": float,
    "temperature_c": float,
    "session_time_s": int,
    "rfid": str,
    "status": int,
    "vacuum_kpa": float,
    "pulsation_cpm": float,
    "fat_pct": float,
    "protein_pct": float,
    "lactose_pct": float,
    "scc_cells_ml": int,
    "blood": bool,
}

# Fields the meter's calibration factor multiplies.
CALIBRATED_FIELDS = ("yield_l", "flow_l_min")
# Fields the meter's conductivity offset (from a reference-solution check) is added to.
CONDUCTIVITY_FIELDS = (
    "conductivity_ms_cm",
    "ec_lf_ms_cm",
    "ec_rf_ms_cm",
    "ec_lr_ms_cm",
    "ec_rr_ms_cm",
)


@dataclass(frozen=True, slots=True)
class Reading:
    """One successful read of one meter, decoded, validated and calibrated.

    `t_mono` is `time.monotonic()` at the read (durations); `t_utc` is the aware UTC wall time.
    `milking` is the profile's status bit when it has one, else None (the tracker then decides
    from flow). `rfid` is the tag as the meter gave it (hex digits or ASCII), None when blank.
    """

    meter_id: str
    stall: int
    t_mono: float
    t_utc: datetime
    yield_l: float | None = None
    flow_l_min: float | None = None
    conductivity_ms_cm: float | None = None
    ec_lf_ms_cm: float | None = None
    ec_rf_ms_cm: float | None = None
    ec_lr_ms_cm: float | None = None
    ec_rr_ms_cm: float | None = None
    temperature_c: float | None = None
    session_time_s: int | None = None
    rfid: str | None = None
    status: int | None = None
    milking: bool | None = None
    vacuum_kpa: float | None = None
    pulsation_cpm: float | None = None
    fat_pct: float | None = None
    protein_pct: float | None = None
    lactose_pct: float | None = None
    scc_cells_ml: int | None = None
    blood: bool | None = None
    rejected: tuple[str, ...] = field(default=())
