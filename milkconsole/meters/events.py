"""Events the core publishes: facts in the past tense, frozen so they cross threads safely.

The stall tracker emits session events; pollers emit meter events. The store records them, the
console shows them; nobody mutates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from milkconsole.meters.readings import Reading

SessionState = Literal["in_progress", "completed", "incomplete", "interrupted"]
# A session in one of these has ended (what is recorded, reported and sent).
FINISHED_STATES: tuple[SessionState, ...] = ("completed", "incomplete", "interrupted")
MeterState = Literal["ok", "degraded", "offline"]


@dataclass(frozen=True, slots=True)
class FlowSample:
    """One point of a flow curve. `elapsed_s` counts from the session start."""

    elapsed_s: float
    yield_l: float
    flow_l_min: float
    conductivity_ms_cm: float | None = None


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """The session as shown: a milking session as known at one instant (in progress or
    finished), what the stall tracker emits and the live views draw. Once stored it is read
    back as the store's `SessionRecord` (docs/architecture.md, "Names").

    `key` is the stable key made when the session started; it identifies the session locally and
    in Odoo forever. `yield_l` is the session's total so far (meter resets already added in).
    `meter_yield_l` is the meter's own counter at the last reading and `yield_offset_l` what is
    added to it (non-zero after a counter reset or an RFID split), so a restarted console can
    resume the session. Quality fields are the last valid value the meter gave.
    """

    key: str
    meter_id: str
    stall: int
    started_at: datetime
    state: SessionState = "in_progress"
    rfid: str | None = None
    ended_at: datetime | None = None
    duration_s: float = 0.0
    yield_l: float = 0.0
    meter_yield_l: float = 0.0
    yield_offset_l: float = 0.0
    flow_l_min: float = 0.0
    peak_flow_l_min: float = 0.0
    avg_flow_l_min: float = 0.0
    conductivity_mean_ms_cm: float | None = None
    conductivity_max_ms_cm: float | None = None
    ec_lf_ms_cm: float | None = None
    ec_rf_ms_cm: float | None = None
    ec_lr_ms_cm: float | None = None
    ec_rr_ms_cm: float | None = None
    temperature_c: float | None = None
    fat_pct: float | None = None
    protein_pct: float | None = None
    lactose_pct: float | None = None
    scc_cells_ml: int | None = None
    blood: bool | None = None
    vacuum_kpa: float | None = None
    pulsation_cpm: float | None = None
    flags: tuple[str, ...] = ()
    conductivity_sum: float = 0.0
    conductivity_n: int = 0


@dataclass(frozen=True, slots=True)
class SessionStarted:
    session: SessionSnapshot


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """Progress: the snapshot now, and the flow-curve samples taken since the last event."""

    session: SessionSnapshot
    samples: tuple[FlowSample, ...] = ()


@dataclass(frozen=True, slots=True)
class SessionCompleted:
    """The session ended (state completed, incomplete or interrupted); last samples included."""

    session: SessionSnapshot
    samples: tuple[FlowSample, ...] = ()


SessionEvent = SessionStarted | SessionUpdated | SessionCompleted


@dataclass(frozen=True, slots=True)
class MeterHealth:
    """Communication health of one meter, as its poller sees it."""

    meter_id: str
    state: MeterState = "offline"
    last_seen: datetime | None = None
    polls: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    exceptions: int = 0
    refused_values: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class MeterStateChanged:
    health: MeterHealth
    previous: MeterState


@dataclass(frozen=True, slots=True)
class ReadingTaken:
    """Every good reading, for live displays. Not stored."""

    reading: Reading
    session_key: str | None = None


@dataclass(frozen=True, slots=True)
class PollCycleCompleted:
    """One pass over every meter on a bus, for cycle-time figures."""

    bus_id: str
    started_mono: float
    duration_s: float
    meters: int
    failures: int = 0
    health: tuple[MeterHealth, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class MeterPollFailed:
    """A meter did not give a usable answer this poll (after the bus's retries).

    `kind` is timeout, crc, exception or connection. The stall tracker uses it to time out a
    session whose meter has gone quiet.
    """

    meter_id: str
    stall: int
    t_mono: float
    t_utc: datetime
    kind: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class EquipmentAlertsRaised:
    """Vacuum or pulsation out of range: equipment alerts were stored under these keys."""

    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StorageStatus:
    """Whether the recorder can write the database. When it cannot, `problem` says why in a
    few words ('disk full', 'read-only', 'disk I/O error'), `detail` in a sentence, `waiting`
    how many events are held in memory meanwhile, and `since` when it began."""

    ok: bool
    problem: str | None = None
    detail: str = ""
    waiting: int = 0
    since: datetime | None = None
