"""The bus poller: one blocking loop per bus that reads every meter on it, at a fixed rate.

Each cycle reads each meter's `profile.blocks()` (one request per block, one block per meter
where the map allows), decodes and calibrates the registers into a `Reading`, feeds the meter's
stall tracker, and publishes core events to `sink`: `ReadingTaken`, the tracker's session events,
`MeterPollFailed`, `MeterStateChanged` and `PollCycleCompleted`. The poller is the only user of
its bus's transport (a serial bus carries one transaction at a time), so a technician's write to
a meter is queued here with `request_write` and runs between cycles.

No Qt here: the console runs `run()` in a QThread worker, the headless gateway in a thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from milkconsole.clock import SYSTEM_CLOCK, Clock
from milkconsole.errors import TransportError
from milkconsole.meters.decode import decode_reading
from milkconsole.meters.events import (
    MeterHealth,
    MeterPollFailed,
    PollCycleCompleted,
    ReadingTaken,
    SessionSnapshot,
)
from milkconsole.meters.meter_health import MeterHealthTracker, log_poll_failed
from milkconsole.meters.parlour import BusConfig, MeterConfig
from milkconsole.meters.profiles import Block, Profile
from milkconsole.meters.readings import Reading
from milkconsole.meters.transport import Interruptible, Transport, open_transport

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class SessionTracker(Protocol):
    """What the poller needs of a stall tracker (`milkconsole.meters.tracker.StallTracker`)."""

    # Sequence, not list: it is covariant, so a tracker returning list[SessionEvent] fits.
    def on_reading(self, reading: Reading) -> Sequence[object]: ...

    def on_poll_failed(self, failed: MeterPollFailed) -> Sequence[object]: ...

    @property
    def current(self) -> SessionSnapshot | None: ...


@dataclass(frozen=True)
class PolledMeter:
    """One meter on the bus: its config, its register map and (optionally) its stall tracker."""

    config: MeterConfig
    profile: Profile
    tracker: SessionTracker | None = None


@dataclass(frozen=True, slots=True)
class _WriteJob:
    meter_id: str
    unit: int
    address: int
    values: tuple[int, ...]
    future: Future[None]


class BusPoller:
    """Polls every meter of one bus; see the module docstring.

    `run()` and `poll_once()` must be called from one thread (the one that owns the transport);
    `stop()`, `request_write()` and `health` are safe from any thread.
    """

    def __init__(
        self,
        bus: BusConfig,
        meters: Sequence[PolledMeter],
        *,
        poll_interval_s: float,
        sink: Callable[[object], None],
        calibration: Callable[[str], float] = lambda _id: 1.0,
        conductivity_offset: Callable[[str], float] = lambda _id: 0.0,
        transport_factory: Callable[[BusConfig], Transport] = open_transport,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be positive, not {poll_interval_s!r}")
        for m in meters:
            if m.config.bus != bus.id:
                raise ValueError(f"meter {m.config.id} is on bus {m.config.bus!r}, not {bus.id!r}")
            if m.config.profile != m.profile.id:
                raise ValueError(
                    f"meter {m.config.id}: profile {m.profile.id!r} given,"
                    f" config says {m.config.profile!r}"
                )
        self.bus = bus
        self.meters = tuple(meters)
        self.poll_interval_s = poll_interval_s
        self._sink = sink
        self._calibration = calibration
        self._conductivity_offset = conductivity_offset
        self._transport_factory = transport_factory
        # Readings' times (a milking's duration); polling itself keeps to the wall clock.
        self._clock = clock
        self._transport: Transport | None = None
        self._blocks: dict[str, list[Block]] = {m.config.id: m.profile.blocks() for m in meters}
        self._trackers = {m.config.id: MeterHealthTracker(m.config.id) for m in meters}
        self._health: dict[str, MeterHealth] = {
            mid: t.snapshot() for mid, t in self._trackers.items()
        }
        self._refusals_logged: set[tuple[str, str]] = set()
        # (meter, kind, message) of each failure streak begun this cycle, logged at its end.
        self._first_failures: list[tuple[str, str, str]] = []
        self._stop = threading.Event()
        self._writes: list[_WriteJob] = []
        self._calls: list[tuple[Callable[[Transport], Any], Future[Any]]] = []
        self._writes_lock = threading.Lock()
        self.loop_errors = 0  # exceptions caught inside the loop (each logged with traceback)
        self.cycles = 0

    # -- thread-safe API ----------------------------------------------------------------------

    @property
    def health(self) -> dict[str, MeterHealth]:
        """Each meter's health as of the last poll (a fresh dict; values are frozen)."""
        return dict(self._health)

    def stop(self) -> None:
        """Ask `run()` to return; it does within about one request timeout."""
        self._stop.set()
        transport = self._transport
        if isinstance(transport, Interruptible):
            transport.interrupt()

    def request_write(self, meter_id: str, address: int, values: Sequence[int]) -> Future[None]:
        """Queue a technician's write of holding registers to a meter; it runs between cycles.

        The future completes when the meter acknowledged it, or fails with TransportError.
        """
        meter = next((m for m in self.meters if m.config.id == meter_id), None)
        if meter is None:
            raise ValueError(f"bus {self.bus.id} has no meter {meter_id!r}")
        job = _WriteJob(meter_id, meter.config.unit, address, tuple(values), Future())
        with self._writes_lock:
            self._writes.append(job)
        return job.future

    def submit(self, fn: Callable[[Transport], _T]) -> Future[_T]:
        """Run `fn(transport)` on the poller thread between cycles (a meter self-test, say):
        the poller stays the bus's only user, so an RS-485 bus never sees two masters."""
        future: Future[_T] = Future()
        with self._writes_lock:
            self._calls.append((fn, future))
        return future

    # -- the loop (poller thread) -------------------------------------------------------------

    def run(self) -> None:
        """Poll at a fixed rate until `stop()`. Opens the transport in this thread, closes it.

        A stopped poller stays stopped (a `stop()` that lands before `run()` starts still counts).
        """
        log.info(
            "bus %s: polling %d meter(s) on %s every %g s",
            self.bus.id,
            len(self.meters),
            self.bus.endpoint,
            self.poll_interval_s,
        )
        next_start = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    self._run_writes()
                    self.poll_once()
                except Exception:
                    self.loop_errors += 1
                    log.exception("bus %s: poll cycle failed; continuing", self.bus.id)
                # Fixed rate: the next start is a multiple of the interval after the first, so
                # there is no drift; after an overrun it starts at once, and never twice at once.
                next_start += self.poll_interval_s
                now = time.monotonic()
                if next_start < now:
                    next_start = now
                self._stop.wait(next_start - now)
        finally:
            self._cancel_writes()
            self.close()
            log.info("bus %s: poller stopped", self.bus.id)

    def close(self) -> None:
        """Close the transport (`run()` does this itself when it returns)."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    def poll_once(self) -> None:
        """One cycle over every meter on the bus, then `PollCycleCompleted`."""
        transport = self._open()
        started = time.monotonic()
        failures = 0
        self._first_failures = []
        for meter in self.meters:
            if self._stop.is_set():
                break
            try:
                if not self._poll_meter(transport, meter):
                    failures += 1
            except Exception:
                self.loop_errors += 1
                failures += 1
                log.exception("bus %s: polling meter %s failed", self.bus.id, meter.config.id)
        self.cycles += 1
        self._log_first_failures(all_failed=failures == len(self.meters))
        health = self._health
        self._sink(
            PollCycleCompleted(
                bus_id=self.bus.id,
                started_mono=started,
                duration_s=time.monotonic() - started,
                meters=len(self.meters),
                failures=failures,
                health=tuple(health[m.config.id] for m in self.meters),
            )
        )

    # -- internals ----------------------------------------------------------------------------

    def _open(self) -> Transport:
        if self._transport is None:
            self._transport = self._transport_factory(self.bus)
            try:
                self._transport.connect()
            except TransportError as exc:
                # Not fatal: reads fail as `connection` (counted per meter) and reconnect.
                log.debug("bus %s: %s", self.bus.id, exc)
        return self._transport

    def _poll_meter(self, transport: Transport, meter: PolledMeter) -> bool:
        cfg = meter.config
        block_regs: dict[Block, list[int]] = {}
        try:
            for block in self._blocks[cfg.id]:
                block_regs[block] = transport.read_registers(
                    cfg.unit, block.register, block.address, block.count
                )
        except TransportError as exc:
            if self._stop.is_set():
                return True  # interrupted by stop(): not the meter's fault
            self._on_failure(meter, exc)
            return False
        t_mono = self._clock.monotonic()
        t_utc = self._clock.now()
        # Read every cycle so a factor the technician just calibrated applies at once.
        factor = self._calibration(cfg.id)
        reading, refusals = decode_reading(
            meter.profile,
            block_regs,
            meter_id=cfg.id,
            stall=cfg.stall,
            t_mono=t_mono,
            t_utc=t_utc,
            calibration_factor=factor,
            conductivity_offset_ms_cm=self._conductivity_offset(cfg.id),
        )
        tracker = self._trackers[cfg.id]
        self._publish_change(tracker.on_success(datetime.now(UTC)))
        if refusals:
            tracker.on_refused(len(refusals))
            for r in refusals:
                key = (cfg.id, r.field)
                if key not in self._refusals_logged:
                    self._refusals_logged.add(key)
                    log.warning(
                        "meter %s: refused %s = %r (%s); further refusals of it at DEBUG",
                        cfg.id,
                        r.field,
                        r.raw,
                        r.reason,
                    )
                else:
                    log.debug("meter %s: refused %s = %r (%s)", cfg.id, r.field, r.raw, r.reason)
        self._update_health(cfg.id)
        session_key: str | None = None
        if meter.tracker is not None:
            # The tracker's events go first, so a display sees SessionStarted before the
            # readings that carry its key.
            tracker_ = meter.tracker
            self._feed_tracker(cfg.id, lambda: tracker_.on_reading(reading))
            current = tracker_.current
            session_key = current.key if current is not None else None
        self._sink(ReadingTaken(reading, session_key))
        return True

    def _log_first_failures(self, *, all_failed: bool) -> None:
        # A bus whose every meter stopped answering is one fault (cable, gateway, port): one
        # ERROR line for it, not one per meter. Meters failing alone get their own line.
        first, self._first_failures = self._first_failures, []
        if all_failed and len(first) >= 2:
            kinds = sorted({kind for _, kind, _ in first})
            log.error(
                "bus %s: no meter answered (%s): %s; first error: %s",
                self.bus.id,
                ", ".join(kinds),
                ", ".join(meter_id for meter_id, _, _ in first),
                first[0][2],
            )
            return
        for meter_id, kind, message in first:
            log_poll_failed(meter_id, kind, message)

    def _on_failure(self, meter: PolledMeter, exc: TransportError) -> None:
        cfg = meter.config
        tracker = self._trackers[cfg.id]
        if tracker.snapshot().consecutive_failures == 0:
            self._first_failures.append((cfg.id, exc.kind, str(exc)))
        change = tracker.on_failure(exc.kind, str(exc), datetime.now(UTC), log_first=False)
        self._update_health(cfg.id)
        self._publish_change(change)
        failed = MeterPollFailed(
            meter_id=cfg.id,
            stall=cfg.stall,
            t_mono=self._clock.monotonic(),
            t_utc=self._clock.now(),
            kind=exc.kind,
            message=str(exc),
        )
        self._sink(failed)
        if meter.tracker is not None:
            tracker_ = meter.tracker
            self._feed_tracker(cfg.id, lambda: tracker_.on_poll_failed(failed))

    def _feed_tracker(self, meter_id: str, feed: Callable[[], Sequence[object]]) -> None:
        # A bug in the stall tracker must not stop the readings (or the other meters).
        try:
            events = feed()
        except Exception:
            self.loop_errors += 1
            log.exception("meter %s: stall tracker failed", meter_id)
            return
        for event in events:
            self._sink(event)

    def _publish_change(self, change: object | None) -> None:
        if change is not None:
            self._sink(change)

    def _update_health(self, meter_id: str) -> None:
        # Swap the whole dict: readers on other threads see either the old or the new one.
        health = dict(self._health)
        health[meter_id] = self._trackers[meter_id].snapshot()
        self._health = health

    def _run_writes(self) -> None:
        with self._writes_lock:
            jobs, self._writes = self._writes, []
            calls, self._calls = self._calls, []
        for fn, future in calls:
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(self._open()))
            except Exception as exc:
                future.set_exception(exc)
        if not jobs:
            return
        transport = self._open()
        for job in jobs:
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                # The transport logs the write itself (every write is logged, whoever asks).
                transport.write_registers(job.unit, job.address, list(job.values))
            except Exception as exc:
                log.error("meter %s: technician write failed: %s", job.meter_id, exc)
                job.future.set_exception(exc)
            else:
                log.info("meter %s: technician write acknowledged", job.meter_id)
                job.future.set_result(None)

    def _cancel_writes(self) -> None:
        with self._writes_lock:
            jobs, self._writes = self._writes, []
            calls, self._calls = self._calls, []
        for job in jobs:
            job.future.cancel()
        for _fn, future in calls:
            future.cancel()
