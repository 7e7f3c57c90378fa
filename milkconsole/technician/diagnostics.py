"""Meter diagnostics: equipment ranges and alerts, the last hour's comms, and the self-test.

- `EquipmentRanges`: the vacuum (kPa) and pulsation (cycles/min) a healthy milking unit shows.
  `EquipmentMonitor.observe(reading)` turns readings into `EquipmentFinding`s once a value has
  stayed out of range for `hold_s` (a single noisy read raises nothing); `raise_equipment_alerts`
  stores them as alerts of kind 'equipment', at most one open alert per meter and condition.
  Vacuum and pulsation are judged only while the meter is milking: between cows the pulsator
  may be off and the line vented, which is no fault.
- `CommWindow`: polls, failures by kind and the success rate of each meter over the last hour,
  counted from the poller's events (`ReadingTaken`, `MeterPollFailed`), in 10-second buckets.
- `DiagnosticsModel`: everything the diagnostics view shows, one `MeterDiagnostics` per meter.
- `self_test(transport, meter, profile)`: every register of the meter's map read once, shown
  raw and decoded side by side. It does blocking Modbus I/O: run it on the thread that owns the
  bus's transport (the bus poller's), never on the GUI thread.

Settings (`[calibration.equipment]` in the parlour config; every key optional)::

    vacuum_min_kpa = 42.0
    vacuum_max_kpa = 50.0
    pulsation_min_cpm = 55.0
    pulsation_max_cpm = 65.0
    hold_s = 10.0                 # out of range this long before an alert
    only_while_milking = true
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from milkconsole.config_tables import config_table, settings_from_table
from milkconsole.errors import TransportError
from milkconsole.meters.decode import Value, decode_fields, decode_raw
from milkconsole.meters.events import (
    MeterHealth,
    MeterPollFailed,
    MeterStateChanged,
    PollCycleCompleted,
    ReadingTaken,
)
from milkconsole.meters.parlour import MeterConfig
from milkconsole.meters.profiles import Block, Profile
from milkconsole.meters.readings import Reading
from milkconsole.meters.transport import Transport
from milkconsole.store import alerts as alert_rows
from milkconsole.store.db import Database

if TYPE_CHECKING:
    from milkconsole.config import ParlourConfig

Condition = Literal["vacuum_low", "vacuum_high", "pulsation_low", "pulsation_high"]
RangeStatus = Literal["ok", "low", "high"]


@dataclass(frozen=True, slots=True)
class EquipmentRanges:
    """What a healthy milking unit shows; see the module docstring for the config keys."""

    vacuum_min_kpa: float = 42.0
    vacuum_max_kpa: float = 50.0
    pulsation_min_cpm: float = 55.0
    pulsation_max_cpm: float = 65.0
    hold_s: float = 10.0
    only_while_milking: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.vacuum_min_kpa < self.vacuum_max_kpa <= 100:
            raise ValueError(
                f"vacuum range {self.vacuum_min_kpa}-{self.vacuum_max_kpa} kPa: "
                "need 0 <= min < max <= 100"
            )
        if not 0 <= self.pulsation_min_cpm < self.pulsation_max_cpm <= 300:
            raise ValueError(
                f"pulsation range {self.pulsation_min_cpm}-{self.pulsation_max_cpm} cycles/min:"
                " need 0 <= min < max <= 300"
            )
        if self.hold_s < 0:
            raise ValueError(f"hold_s must be 0 or more, not {self.hold_s}")

    @classmethod
    def from_parlour(cls, config: ParlourConfig) -> EquipmentRanges:
        """`[calibration.equipment]` of a parlour config (defaults for what it leaves out)."""
        table = config_table(config, "calibration", "equipment")
        return settings_from_table(cls(), table, config.source, "calibration.equipment")

    def vacuum_status(self, kpa: float | None) -> RangeStatus | None:
        return _status(kpa, self.vacuum_min_kpa, self.vacuum_max_kpa)

    def pulsation_status(self, cpm: float | None) -> RangeStatus | None:
        return _status(cpm, self.pulsation_min_cpm, self.pulsation_max_cpm)


def _status(value: float | None, lo: float, hi: float) -> RangeStatus | None:
    if value is None:
        return None
    return "low" if value < lo else "high" if value > hi else "ok"


def is_milking(reading: Reading) -> bool:
    """The status bit when the meter has one, else milk flowing."""
    if reading.milking is not None:
        return reading.milking
    return (reading.flow_l_min or 0.0) > 0.0


@dataclass(frozen=True, slots=True)
class EquipmentFinding:
    """A value that stayed out of range for `hold_s`: what to raise an alert for."""

    meter_id: str
    stall: int
    condition: Condition
    value: float
    low: float
    high: float
    unit: str
    since_utc: datetime

    @property
    def message(self) -> str:
        what = "Vacuum" if self.condition.startswith("vacuum") else "Pulsation"
        side = "below" if self.condition.endswith("low") else "above"
        bound = self.low if side == "below" else self.high
        return (
            f"Stall {self.stall} ({self.meter_id}): {what} {self.value:.1f} {self.unit} "
            f"{side} {bound:g} (range {self.low:g}-{self.high:g} {self.unit})"
        )


def out_of_range(
    reading: Reading, ranges: EquipmentRanges
) -> list[tuple[Condition, float, float, float, str]]:
    """(condition, value, low, high, unit) for each value of `reading` outside its range."""
    out: list[tuple[Condition, float, float, float, str]] = []
    vac = reading.vacuum_kpa
    lo, hi = ranges.vacuum_min_kpa, ranges.vacuum_max_kpa
    if vac is not None and not lo <= vac <= hi:
        out.append(("vacuum_low" if vac < lo else "vacuum_high", vac, lo, hi, "kPa"))
    puls = reading.pulsation_cpm
    lo, hi = ranges.pulsation_min_cpm, ranges.pulsation_max_cpm
    if puls is not None and not lo <= puls <= hi:
        out.append(("pulsation_low" if puls < lo else "pulsation_high", puls, lo, hi, "c/min"))
    return out


@dataclass(slots=True)
class _Pending:
    since_mono: float
    since_utc: datetime
    reported: bool = False


class EquipmentMonitor:
    """Readings in, findings out (see the module docstring). One thread only; no I/O."""

    def __init__(self, ranges: EquipmentRanges) -> None:
        self.ranges = ranges
        self._pending: dict[tuple[str, Condition], _Pending] = {}

    def observe(self, reading: Reading) -> list[EquipmentFinding]:
        """Findings that became due with this reading (each reported once per episode)."""
        if self.ranges.only_while_milking and not is_milking(reading):
            # Between cows nothing is judged; an episode does not carry over to the next cow.
            self._clear(reading.meter_id, keep=())
            return []
        bad = out_of_range(reading, self.ranges)
        self._clear(reading.meter_id, keep=tuple(c for c, *_ in bad))
        found = []
        for condition, value, lo, hi, unit in bad:
            key = (reading.meter_id, condition)
            p = self._pending.get(key)
            if p is None:
                p = self._pending[key] = _Pending(reading.t_mono, reading.t_utc)
            if not p.reported and reading.t_mono - p.since_mono >= self.ranges.hold_s:
                p.reported = True
                found.append(
                    EquipmentFinding(
                        reading.meter_id, reading.stall, condition, value, lo, hi, unit, p.since_utc
                    )
                )
        return found

    def _clear(self, meter_id: str, keep: tuple[Condition, ...]) -> None:
        for key in [k for k in self._pending if k[0] == meter_id and k[1] not in keep]:
            del self._pending[key]


def raise_equipment_alerts(
    db: Database, findings: Sequence[EquipmentFinding], farm_code: str
) -> list[str]:
    """Store findings as open 'equipment' alerts; keys of the alerts made.

    A meter with an alert of the same condition not yet resolved gets no second one
    (`milkconsole.store.alerts.raise_equipment_alerts`).
    """
    return alert_rows.raise_equipment_alerts(
        db,
        [
            alert_rows.RaisedEquipmentAlert(
                key=f"{farm_code}-EQ-{f.meter_id}-{f.condition}-{f.since_utc:%Y%m%dT%H%M%S%fZ}",
                meter_id=f.meter_id,
                condition=f.condition,
                message=f.message,
            )
            for f in findings
        ],
    )


# -- comms over the last hour --------------------------------------------------------------------

BUCKET_S = 10
HISTORY_S = 3600


@dataclass(frozen=True, slots=True)
class CommStats:
    """One meter's polls over a window."""

    polls: int = 0
    failures: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    exceptions: int = 0
    connection_errors: int = 0

    @property
    def success_rate(self) -> float | None:
        return (self.polls - self.failures) / self.polls if self.polls else None


@dataclass(slots=True)
class _CommBucket:
    start_s: int
    polls: int = 0
    failures: int = 0
    timeout: int = 0
    crc: int = 0
    exception: int = 0
    connection: int = 0


class CommWindow:
    """Each meter's polls and failures in 10-second buckets over the last hour. One thread."""

    def __init__(self) -> None:
        self._buckets: dict[str, deque[_CommBucket]] = {}

    def on_success(self, meter_id: str, t_utc: datetime) -> None:
        self._bucket(meter_id, t_utc).polls += 1

    def on_failure(self, meter_id: str, kind: str, t_utc: datetime) -> None:
        b = self._bucket(meter_id, t_utc)
        b.polls += 1
        b.failures += 1
        if kind in ("timeout", "crc", "exception", "connection"):
            setattr(b, kind, getattr(b, kind) + 1)

    def on_event(self, event: object) -> None:
        """Count a poller event (others are ignored)."""
        if isinstance(event, ReadingTaken):
            self.on_success(event.reading.meter_id, event.reading.t_utc)
        elif isinstance(event, MeterPollFailed):
            self.on_failure(event.meter_id, event.kind, event.t_utc)

    def stats(self, meter_id: str, now: datetime, seconds: float = HISTORY_S) -> CommStats:
        since = now.timestamp() - seconds
        polls = failures = timeouts = crc = exc = conn = 0
        for b in self._buckets.get(meter_id, ()):
            if b.start_s + BUCKET_S > since:
                polls += b.polls
                failures += b.failures
                timeouts += b.timeout
                crc += b.crc
                exc += b.exception
                conn += b.connection
        return CommStats(polls, failures, timeouts, crc, exc, conn)

    def _bucket(self, meter_id: str, t_utc: datetime) -> _CommBucket:
        q = self._buckets.get(meter_id)
        if q is None:
            q = self._buckets[meter_id] = deque(maxlen=HISTORY_S // BUCKET_S + 1)
        start = int(t_utc.timestamp()) // BUCKET_S * BUCKET_S
        if not q or q[-1].start_s < start:
            q.append(_CommBucket(start))
        # A clock stepped back counts in the newest bucket rather than rewriting history.
        return q[-1]


# -- the diagnostics model -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeterDiagnostics:
    """One row of the diagnostics view."""

    meter_id: str
    stall: int
    name: str
    profile: str
    bus: str
    state: str
    last_seen: datetime | None
    comm: CommStats
    vacuum_kpa: float | None
    pulsation_cpm: float | None
    vacuum_status: RangeStatus | None
    pulsation_status: RangeStatus | None
    milking: bool | None
    last_error: str | None
    calibration_due_at: datetime | None = None
    calibration_factor: float | None = None


@dataclass(slots=True)
class _MeterSeen:
    health: MeterHealth | None = None
    reading: Reading | None = None


class DiagnosticsModel:
    """What the diagnostics view shows, fed the poller's events. One thread (the GUI's)."""

    def __init__(self, config: ParlourConfig, ranges: EquipmentRanges) -> None:
        self.config = config
        self.ranges = ranges
        self.comm = CommWindow()
        self._seen: dict[str, _MeterSeen] = {m.id: _MeterSeen() for m in config.meters}
        self._due: dict[str, tuple[datetime | None, float]] = {}

    def on_event(self, event: object) -> None:
        self.comm.on_event(event)
        if isinstance(event, ReadingTaken):
            seen = self._seen.get(event.reading.meter_id)
            if seen is not None:
                seen.reading = event.reading
        elif isinstance(event, MeterStateChanged):
            self._health(event.health)
        elif isinstance(event, PollCycleCompleted):
            for h in event.health:
                self._health(h)

    def _health(self, h: MeterHealth) -> None:
        seen = self._seen.get(h.meter_id)
        if seen is not None:
            seen.health = h

    def set_calibration(self, due: Mapping[str, tuple[datetime | None, float]]) -> None:
        """Each meter's (calibration due date, factor), as read from the database."""
        self._due = dict(due)

    def last_reading(self, meter_id: str) -> Reading | None:
        seen = self._seen.get(meter_id)
        return seen.reading if seen else None

    def rows(self, now: datetime) -> list[MeterDiagnostics]:
        out = []
        for m in sorted(self.config.meters, key=lambda m: m.stall):
            seen = self._seen[m.id]
            r, h = seen.reading, seen.health
            due, factor = self._due.get(m.id, (None, None))
            out.append(
                MeterDiagnostics(
                    meter_id=m.id,
                    stall=m.stall,
                    name=m.name,
                    profile=m.profile,
                    bus=m.bus,
                    state=h.state if h else "offline",
                    last_seen=h.last_seen if h else (r.t_utc if r else None),
                    comm=self.comm.stats(m.id, now),
                    vacuum_kpa=r.vacuum_kpa if r else None,
                    pulsation_cpm=r.pulsation_cpm if r else None,
                    vacuum_status=self.ranges.vacuum_status(r.vacuum_kpa if r else None),
                    pulsation_status=self.ranges.pulsation_status(r.pulsation_cpm if r else None),
                    milking=is_milking(r) if r else None,
                    last_error=h.last_error if h else None,
                    calibration_due_at=due,
                    calibration_factor=factor,
                )
            )
        return out


# -- self-test -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SelfTestField:
    """One field of the map: its registers as read, the raw value, the decoded value."""

    name: str
    register: str
    address: int
    data_type: str
    registers: tuple[int, ...]
    raw: int | float | str | None
    value: Value | None
    unit: str
    refused: str | None = None

    @property
    def registers_hex(self) -> str:
        return " ".join(f"{r:04X}" for r in self.registers)


@dataclass(frozen=True, slots=True)
class SelfTestBlock:
    register: str
    address: int
    count: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SelfTestResult:
    """Every register of one meter read once (block by block), raw next to decoded."""

    meter_id: str
    unit: int
    profile_id: str
    at: datetime
    duration_s: float
    blocks: tuple[SelfTestBlock, ...]
    fields: tuple[SelfTestField, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return all(b.error is None for b in self.blocks) and not any(f.refused for f in self.fields)

    @property
    def summary(self) -> str:
        failed = [b for b in self.blocks if b.error]
        refused = [f.name for f in self.fields if f.refused]
        if failed:
            return f"{len(failed)} of {len(self.blocks)} block read(s) failed: {failed[0].error}"
        if refused:
            return f"all registers answered; refused values: {', '.join(refused)}"
        return f"all {len(self.fields)} fields read and decoded ({self.duration_s * 1000:.0f} ms)"


def self_test(
    transport: Transport,
    meter: MeterConfig,
    profile: Profile,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> SelfTestResult:
    """Read each block of the meter's map once and decode every field (see module docstring).

    A block that fails is reported (kind and message) and the others are still read.
    """
    started = clock()
    at = datetime.now(UTC)
    blocks: list[SelfTestBlock] = []
    regs_by_block: dict[Block, list[int]] = {}
    for block in profile.blocks():
        try:
            regs = transport.read_registers(meter.unit, block.register, block.address, block.count)
        except TransportError as exc:
            blocks.append(
                SelfTestBlock(block.register, block.address, block.count, f"{exc.kind}: {exc}")
            )
            continue
        regs_by_block[block] = regs
        blocks.append(SelfTestBlock(block.register, block.address, block.count))
    values, refusals = decode_fields(profile, regs_by_block)
    refused = {r.field: r.reason for r in refusals}
    out = []
    for spec in sorted(profile.fields.values(), key=lambda f: (f.register, f.address)):
        regs_of: tuple[int, ...] = ()
        for block, regs in regs_by_block.items():
            if (
                block.register == spec.register
                and block.address <= spec.address
                and spec.end <= block.address + block.count
            ):
                off = spec.address - block.address
                regs_of = tuple(regs[off : off + spec.count])
                break
        out.append(
            SelfTestField(
                name=spec.name,
                register=spec.register,
                address=spec.address,
                data_type=spec.data_type,
                registers=regs_of,
                raw=decode_raw(spec, regs_of) if regs_of else None,
                value=values.get(spec.name),
                unit=spec.unit,
                refused=refused.get(spec.name) if regs_of else "not read",
            )
        )
    return SelfTestResult(
        meter_id=meter.id,
        unit=meter.unit,
        profile_id=profile.id,
        at=at,
        duration_s=clock() - started,
        blocks=tuple(blocks),
        fields=tuple(out),
    )
