"""The open session: its running state, the key it is made with, the snapshot made of it.

`OpenSession` is what every part of the tracker works on; `snapshot` is the only way it is
shown outside (a frozen `SessionSnapshot`, safe to hand to other threads).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from milkconsole.meters.events import FlowSample, SessionSnapshot, SessionState
from milkconsole.meters.tracker.settings import Settings


def make_session_key(farm_code: str, meter_id: str, started_at: datetime) -> str:
    """A stable, unique, readable session key: `F1-M3-20240501T053012Z-a3f9`.

    Made once when the session starts and never changed; Odoo looks records up by it. The four
    random hex digits keep two sessions started on one meter in the same second apart.
    """
    if not farm_code:
        raise ValueError("make_session_key: farm_code is empty")
    if not meter_id:
        raise ValueError("make_session_key: meter_id is empty")
    if started_at.tzinfo is None or started_at.utcoffset() is None:
        raise ValueError(f"make_session_key: started_at {started_at!r} is naive, need aware UTC")
    started = started_at.astimezone(UTC)
    return f"{farm_code}-{meter_id}-{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


@dataclass(slots=True)
class OpenSession:
    """The open session's running state. Mutable, and it never leaves the tracker package: the
    rest of the console sees `SessionSnapshot`s made of it."""

    key: str
    started_at: datetime
    start_mono: float  # meaningless while `anchored` is False (resumed, no reading yet)
    anchored: bool
    rfid: str | None
    meter_yield_l: float
    yield_offset_l: float
    # The last good reading of this session: its time, elapsed seconds and session yield.
    last_mono: float
    last_utc: datetime
    duration_s: float
    last_yield_l: float
    flags: list[str] = field(default_factory=list)
    flow_l_min: float = 0.0
    peak_flow_l_min: float = 0.0
    last_conductivity_ms_cm: float | None = None
    conductivity_sum: float = 0.0
    conductivity_n: int = 0
    conductivity_max_ms_cm: float | None = None
    ec_lf_ms_cm: float | None = None
    ec_rf_ms_cm: float | None = None
    ec_lr_ms_cm: float | None = None
    ec_rr_ms_cm: float | None = None
    temperature_max_c: float | None = None
    fat_pct: float | None = None
    protein_pct: float | None = None
    lactose_pct: float | None = None
    scc_cells_ml: int | None = None
    blood: bool | None = None
    vacuum_sum: float = 0.0
    vacuum_n: int = 0
    pulsation_sum: float = 0.0
    pulsation_n: int = 0
    # Flow mode: since when flow has been low and yield flat (None while milk flows).
    quiet_mono: float | None = None
    quiet_utc: datetime | None = None
    quiet_yield_l: float = 0.0
    quiet_flow_l_min: float = 0.0
    quiet_conductivity_ms_cm: float | None = None
    # Flow curve: due time of the next sample, samples not yet handed out, and samples taken
    # while quiet (kept back: if the quiet turns out to be the end, they lie after it).
    next_sample_s: float = 0.0
    pending: list[FlowSample] = field(default_factory=list)
    held_back: list[FlowSample] = field(default_factory=list)
    last_kept_elapsed_s: float | None = None

    @property
    def yield_l(self) -> float:
        return self.meter_yield_l + self.yield_offset_l

    def flag(self, name: str) -> None:
        if name not in self.flags:
            self.flags.append(name)


def snapshot(
    settings: Settings,
    s: OpenSession,
    state: SessionState,
    ended_at: datetime | None,
    duration_s: float,
) -> SessionSnapshot:
    """The session as it stands, in `state`, ended at `ended_at` (None while in progress)."""
    y = s.yield_l
    return SessionSnapshot(
        key=s.key,
        meter_id=settings.meter_id,
        stall=settings.stall,
        started_at=s.started_at,
        state=state,
        rfid=s.rfid,
        ended_at=ended_at,
        duration_s=duration_s,
        yield_l=y,
        meter_yield_l=s.meter_yield_l,
        yield_offset_l=s.yield_offset_l,
        flow_l_min=s.flow_l_min,
        peak_flow_l_min=s.peak_flow_l_min,
        avg_flow_l_min=y / (duration_s / 60.0) if duration_s > 0 and y > 0 else 0.0,
        conductivity_mean_ms_cm=(
            s.conductivity_sum / s.conductivity_n if s.conductivity_n else None
        ),
        conductivity_max_ms_cm=s.conductivity_max_ms_cm,
        ec_lf_ms_cm=s.ec_lf_ms_cm,
        ec_rf_ms_cm=s.ec_rf_ms_cm,
        ec_lr_ms_cm=s.ec_lr_ms_cm,
        ec_rr_ms_cm=s.ec_rr_ms_cm,
        temperature_c=s.temperature_max_c,
        fat_pct=s.fat_pct,
        protein_pct=s.protein_pct,
        lactose_pct=s.lactose_pct,
        scc_cells_ml=s.scc_cells_ml,
        blood=s.blood,
        vacuum_kpa=s.vacuum_sum / s.vacuum_n if s.vacuum_n else None,
        pulsation_cpm=s.pulsation_sum / s.pulsation_n if s.pulsation_n else None,
        flags=tuple(s.flags),
        conductivity_sum=s.conductivity_sum,
        conductivity_n=s.conductivity_n,
    )


def in_progress(settings: Settings, s: OpenSession) -> SessionSnapshot:
    """The open session as it stands now (state in_progress)."""
    return snapshot(settings, s, "in_progress", None, s.duration_s)
