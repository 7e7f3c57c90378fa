"""Resume after a console restart: the open session carried over from its last snapshot.

`resume`: an in-progress snapshot is an open session whose meter has been silent since the
snapshot's last moment (started_at + duration_s); the first reading is a return (see `gaps`),
except that a drop while quiet closes it `interrupted`, and times are anchored by t_utc. Only
failures for comm_timeout_s from the first call close it `interrupted`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from milkconsole.flags import FLAG_RESUMED
from milkconsole.meters.events import SessionSnapshot
from milkconsole.meters.readings import Reading
from milkconsole.meters.tracker.session import OpenSession
from milkconsole.meters.tracker.settings import Settings


@dataclass(frozen=True, slots=True)
class PendingResume:
    """A resumed session that no reading has reached yet."""

    flow_l_min: float  # the snapshot's last flow: was the session quiet when the console went?
    first_failure_mono: float | None = None  # the first failed poll since the restart

    def failed_at(self, t_mono: float) -> PendingResume:
        """This, after a failed poll at `t_mono` (the first one starts the timeout)."""
        if self.first_failure_mono is not None:
            return self
        return replace(self, first_failure_mono=t_mono)

    def timed_out(self, settings: Settings, t_mono: float) -> bool:
        """Whether polls have failed for comm_timeout_s since the first one, at `t_mono`."""
        first = self.first_failure_mono
        return first is not None and t_mono - first >= settings.tracking.comm_timeout_s


def resumed_session(settings: Settings, snap: SessionSnapshot) -> OpenSession:
    """The open session again, from its last in-progress snapshot (flag resumed); ValueError
    when the snapshot is not one this tracker can resume."""
    if snap.meter_id != settings.meter_id:
        raise ValueError(
            f"stall tracker for meter {settings.meter_id!r} cannot resume session {snap.key!r} "
            f"of meter {snap.meter_id!r}"
        )
    if snap.state != "in_progress":
        raise ValueError(
            f"meter {settings.meter_id!r}: cannot resume session {snap.key!r} in state "
            f"{snap.state!r} (only in_progress)"
        )
    if snap.started_at.tzinfo is None or snap.started_at.utcoffset() is None:
        raise ValueError(f"meter {settings.meter_id!r}: session {snap.key!r} started_at is naive")
    # The snapshot has no counts for vacuum and pulsation: weigh their means like the
    # conductivity readings, which every supported map gives on every reading.
    weight = max(1, snap.conductivity_n)
    s = OpenSession(
        key=snap.key,
        started_at=snap.started_at,
        start_mono=0.0,
        anchored=False,
        rfid=snap.rfid,
        meter_yield_l=snap.meter_yield_l,
        yield_offset_l=snap.yield_offset_l,
        last_mono=0.0,
        last_utc=snap.started_at + timedelta(seconds=snap.duration_s),
        duration_s=snap.duration_s,
        last_yield_l=snap.meter_yield_l + snap.yield_offset_l,
        flags=list(snap.flags),
        flow_l_min=snap.flow_l_min,
        peak_flow_l_min=snap.peak_flow_l_min,
        conductivity_sum=snap.conductivity_sum,
        conductivity_n=snap.conductivity_n,
        conductivity_max_ms_cm=snap.conductivity_max_ms_cm,
        ec_lf_ms_cm=snap.ec_lf_ms_cm,
        ec_rf_ms_cm=snap.ec_rf_ms_cm,
        ec_lr_ms_cm=snap.ec_lr_ms_cm,
        ec_rr_ms_cm=snap.ec_rr_ms_cm,
        temperature_max_c=snap.temperature_c,
        fat_pct=snap.fat_pct,
        protein_pct=snap.protein_pct,
        lactose_pct=snap.lactose_pct,
        scc_cells_ml=snap.scc_cells_ml,
        blood=snap.blood,
        vacuum_sum=(snap.vacuum_kpa or 0.0) * weight,
        vacuum_n=weight if snap.vacuum_kpa is not None else 0,
        pulsation_sum=(snap.pulsation_cpm or 0.0) * weight,
        pulsation_n=weight if snap.pulsation_cpm is not None else 0,
    )
    s.flag(FLAG_RESUMED)
    return s


def anchor_resumed(settings: Settings, s: OpenSession, r: Reading, pending: PendingResume) -> None:
    """Place the resumed session on this process's clock by its first reading."""
    # This process's monotonic clock means nothing for times before it: place the session
    # on it by wall time, once, then go on in monotonic seconds.
    since_start = (r.t_utc - s.started_at).total_seconds()
    s.start_mono = r.t_mono - max(since_start, s.duration_s)
    s.last_mono = s.start_mono + s.duration_s
    s.anchored = True
    if (
        settings.detection.mode == "flow"
        and pending.flow_l_min <= settings.detection.end_flow_l_min
    ):
        s.quiet_mono, s.quiet_utc = s.last_mono, s.last_utc
        s.quiet_yield_l = s.yield_l
        s.quiet_flow_l_min = pending.flow_l_min
        s.quiet_conductivity_ms_cm = None
