"""One parlour at run time: its bus pollers, stall trackers, the single database writer.

The headless gateway and the console build the same `ParlourRuntime`; they differ only in who runs
the pollers (plain threads here, QThread workers in `ui/`). Every event a poller or the recorder
produces is fanned out to listeners, which must be quick and thread-safe (the console's bridge turns
them into queued Qt signals).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from milkconsole.clock import SYSTEM_CLOCK, Clock
from milkconsole.config import ParlourConfig
from milkconsole.health.hook import HealthHook
from milkconsole.herd.separation import SeparationRules
from milkconsole.housekeeping import Housekeeping
from milkconsole.meters.events import (
    EquipmentAlertsRaised,
    MeterHealth,
    MeterStateChanged,
    ReadingTaken,
    SessionCompleted,
    SessionSnapshot,
    SessionStarted,
    SessionUpdated,
)
from milkconsole.meters.poller import BusPoller, PolledMeter
from milkconsole.meters.readings import Reading
from milkconsole.meters.tracker import LastFinished, StallTracker, effective_detection
from milkconsole.store.backup import BackupSettings
from milkconsole.store.db import Database
from milkconsole.store.meters import conductivity_offset, meter_factors
from milkconsole.store.outbound import meter_registration, set_mqtt
from milkconsole.store.recorder import Recorder
from milkconsole.store.retention import RetentionPolicy
from milkconsole.store.run_lock import RunLock
from milkconsole.store.separation import SeparationHook, set_rules
from milkconsole.store.sessions import SessionStore
from milkconsole.technician.diagnostics import (
    EquipmentMonitor,
    EquipmentRanges,
    raise_equipment_alerts,
)

if TYPE_CHECKING:
    from milkconsole.mqtt.publisher import MqttPublisher
    from milkconsole.mqtt.settings import MqttSettings
    from milkconsole.mqtt.status import MqttStatus
    from milkconsole.supervision.lock import AccessControl
    from milkconsole.sync.status import SyncStatus
    from milkconsole.sync.worker import SyncWorker
    from milkconsole.web.service import WebStatus, WebView

log = logging.getLogger(__name__)

Listener = Callable[[object], None]


def _last_finished(snap: SessionSnapshot | None) -> LastFinished | None:
    if snap is None:
        return None
    return LastFinished(snap.rfid, snap.meter_yield_l, snap.ended_at)


@dataclass
class _PerMeter:
    """A number per meter id, read by pollers every cycle (a dict read is atomic)."""

    default: float
    values: dict[str, float] = field(default_factory=dict)

    def __call__(self, meter_id: str) -> float:
        return self.values.get(meter_id, self.default)


class ParlourRuntime:
    """Builds and owns the pollers and the recorder for one parlour config and database."""

    def __init__(self, config: ParlourConfig, db: Database, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.db = db
        # The readings' clock: the system's, or the demo's simulated one (`milkconsole.clock`).
        self.clock = clock
        self.store = SessionStore(db)
        self._listeners: list[Listener] = []
        self._committed_listeners: list[Callable[[list[object]], None]] = []
        self.factors = _PerMeter(1.0, {m.id: m.calibration_factor for m in config.meters})
        self.offsets = _PerMeter(0.0)
        self.recorder = Recorder(
            db,
            farm_code=config.farm_code,
            on_committed=self._on_committed,
            on_status=self._emit,
        )
        # Daily backup and retention; the status bar hears the backup status like any event.
        self.housekeeping = Housekeeping(
            db,
            BackupSettings.from_table(config.extra.get("backup"), config.source),
            RetentionPolicy.from_table(config.extra.get("retention"), config.source),
            on_status=self._emit,
        )
        # Held while running: a restore must never replace the file under a live console.
        self.run_lock = RunLock(db.path)
        self.recorder.upsert_meters(
            list(config.meters), {m.id: meter_registration(config, m.id) for m in config.meters}
        )
        # Grades, abnormal flags, mastitis alerts and health events are written in the same
        # transaction as the completed session they come from. The detector is rebuilt from
        # the stored milkings when the recorder starts (`start_recorder`), not here.
        self.health = HealthHook.from_config(config)
        self.recorder.add_completion_hook(self.health)
        # Where each milking's milk went (tank or diverted), ruled on in the same transaction,
        # after the health hook has identified the cow; the rules are kept for every writer.
        self.separation_rules = SeparationRules.from_parlour(config)
        with db.write() as tx:
            set_rules(tx, self.separation_rules)
        self.recorder.add_completion_hook(SeparationHook())
        self._starter: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._recording = False
        self.primed = threading.Event()
        self.sync: SyncWorker | None = None
        self.web: WebView | None = None
        # MQTT messages are queued with their records from the first session on, while the
        # config has [mqtt] (and not once it is gone), whether the publisher runs yet or not.
        self.mqtt: MqttPublisher | None = None
        self.meter_health: dict[str, MeterHealth] = {}  # the last state change of each meter
        self._meters_lock = threading.Lock()
        self.mqtt_settings = self._mqtt_settings()
        with db.write() as tx:
            set_mqtt(tx, self.mqtt_settings.farm_code if self.mqtt_settings else None)
        # Vacuum and pulsation out of range raise equipment alerts, headless or not.
        self.equipment = EquipmentMonitor(EquipmentRanges.from_parlour(config))
        self._equipment_lock = threading.Lock()
        self.reload_calibration()
        open_by_meter = {s.meter_id: s for s in self.store.open_sessions()}
        finished_by_meter = self.store.last_finished([m.id for m in config.meters])
        self.pollers: dict[str, BusPoller] = {}
        for bus in config.buses:
            meters = []
            for m in config.meters_on(bus.id):
                profile = config.profiles[m.profile]
                tracker = StallTracker(
                    meter_id=m.id,
                    stall=m.stall,
                    farm_code=config.farm_code,
                    detection=effective_detection(profile.detection, config.tracking),
                    tracking=config.tracking,
                    resume=open_by_meter.get(m.id),
                    last_finished=_last_finished(finished_by_meter.get(m.id)),
                )
                meters.append(PolledMeter(config=m, profile=profile, tracker=tracker))
            self.pollers[bus.id] = BusPoller(
                bus,
                meters,
                poll_interval_s=config.poll_interval_s,
                sink=self._publish,
                calibration=self.factors,
                conductivity_offset=self.offsets,
                clock=clock,
            )
        self._threads: list[threading.Thread] = []

    def reload_calibration(self) -> None:
        """Take the calibration factors and conductivity offsets the database holds (a recorded
        calibration beats the config); pollers use them from their next cycle."""
        for meter_id, stored in meter_factors(self.db).items():
            self.factors.values[meter_id] = stored.calibration_factor
            self.offsets.values[meter_id] = stored.conductivity_offset_ms_cm

    # -- events -------------------------------------------------------------------------------
    def add_listener(self, fn: Listener) -> None:
        """`fn(event)` for every event pollers publish (called on poller threads)."""
        self._listeners.append(fn)

    def add_committed_listener(self, fn: Callable[[list[object]], None]) -> None:
        """`fn(events)` after the recorder committed them (called on the writer thread)."""
        self._committed_listeners.append(fn)

    def _publish(self, event: object) -> None:
        if isinstance(event, SessionStarted | SessionUpdated | SessionCompleted):
            self.recorder.submit(event)
        elif isinstance(event, ReadingTaken):
            self._check_equipment(event.reading)
        elif isinstance(event, MeterStateChanged):
            with self._meters_lock:
                self.meter_health[event.health.meter_id] = event.health
                if self.mqtt is not None:
                    self.mqtt.meter_state_changed(event)  # queued; its thread writes it
        self._emit(event)

    def _emit(self, event: object) -> None:
        """Hand an event to every listener (the storage and backup status come this way too)."""
        for fn in self._listeners:
            try:
                fn(event)
            except Exception:  # a broken listener must never stop a poller
                log.exception("listener %r failed on %s", fn, type(event).__name__)

    def _check_equipment(self, reading: Reading) -> None:
        with self._equipment_lock:  # one monitor, fed by every bus's poller thread
            findings = self.equipment.observe(reading)
        if findings:  # rare: an episode is reported once, so this write is not on every poll
            try:
                keys = raise_equipment_alerts(self.db, findings, self.config.farm_code)
            except Exception:
                log.exception("equipment alert for %s not stored", reading.meter_id)
                return
            for fn in self._listeners:
                fn(EquipmentAlertsRaised(tuple(keys)))

    def _on_committed(self, events: list[object]) -> None:
        for fn in self._committed_listeners:
            try:
                fn(events)
            except Exception:
                log.exception("committed-listener %r failed", fn)

    def set_calibration_factor(self, meter_id: str, factor: float) -> None:
        """Apply a new factor from the next poll on (the caller records the calibration), and
        the meter's stored conductivity offset with it."""
        self.factors.values[meter_id] = factor
        offset = conductivity_offset(self.db, meter_id)
        if offset is not None:
            self.offsets.values[meter_id] = offset

    def start_sync(self, on_status: Callable[[SyncStatus], None] | None = None) -> bool:
        """Start the background Odoo sync when the config has an [odoo] section.

        The worker is woken after each committed session, so a milking reaches Odoo within
        about a second while the network is up, and waits in the outbox while it is not.
        """
        # The optional services (Odoo, the phones' view, MQTT) are imported when the config
        # has them, so a parlour without them never loads odoorpc, aiohttp or paho.
        from milkconsole.sync.settings import parse_odoo_settings

        section = self.config.extra.get("odoo")
        if section is None:
            return False
        from milkconsole.sync.worker import SyncWorker

        settings = parse_odoo_settings(section, self.config.source)
        self.sync = SyncWorker(self.db, settings, on_status)
        self.add_committed_listener(self.sync.on_committed)
        self.sync.start()
        return True

    def start_web(
        self,
        access: AccessControl | None = None,
        on_status: Callable[[WebStatus], None] | None = None,
    ) -> bool:
        """Start the live view for phones when the config has a [web] section.

        It gets every poller event and every committed batch (its own thread takes them from
        there). `access` is the console's PIN lock, so a wrong PIN typed on a phone counts
        toward the same back-off (the headless gateway has none: the view makes its own).
        Raises `WebError` when it cannot listen or keep its certificate; `self.web` then holds
        it with status "failed".
        """
        from milkconsole.web.service import WebView
        from milkconsole.web.settings import parse_web_settings

        section = self.config.extra.get("web")
        if section is None:
            return False
        settings = parse_web_settings(section, self.config.source)
        self.web = WebView(self.config, self.db, settings, access=access, on_status=on_status)
        self.add_listener(self.web.publish)
        self.add_committed_listener(self.web.committed)
        self.web.start()
        return True

    def _mqtt_settings(self) -> MqttSettings | None:
        section = self.config.extra.get("mqtt")
        if section is None:
            return None
        from milkconsole.mqtt.settings import parse_mqtt_settings

        return parse_mqtt_settings(
            section,
            self.config.source,
            self.config.farm_code,
            [m.id for m in self.config.meters],
        )

    def start_mqtt(
        self,
        on_status: Callable[[MqttStatus], None] | None = None,
        settings: MqttSettings | None = None,
    ) -> bool:
        """Start the MQTT publisher when the config has an [mqtt] section (or `settings` are
        given: the bench points a running console at its own broker). It is woken after each
        committed session and hears every meter status change."""
        if settings is not None and settings != self.mqtt_settings:
            self.mqtt_settings = settings
            with self.db.write() as tx:
                set_mqtt(tx, settings.farm_code)
        if self.mqtt_settings is None:
            return False
        if self.mqtt is not None:
            raise RuntimeError("the MQTT publisher is already running")
        from milkconsole.mqtt.publisher import MqttPublisher

        with self._meters_lock:  # no state change slips between the snapshot and the hand-over
            publisher = MqttPublisher(
                self.db,
                self.mqtt_settings,
                on_status,
                meters=[
                    self.meter_health.get(m.id, MeterHealth(m.id, "offline"))
                    for m in self.config.meters
                ],
            )
            self.mqtt = publisher
        self.add_committed_listener(publisher.on_committed)
        publisher.start()
        return True

    # -- running ------------------------------------------------------------------------------
    def start_recorder(self) -> None:
        """Take the database's run lock (`DatabaseInUse` when another console or gateway runs
        on it), then start the writer once the mastitis detector is rebuilt from the last two
        weeks of milkings. That replay takes seconds on a year's database, so it runs on a
        thread of its own: the console paints and the pollers read meanwhile, and what they
        hand over waits in the recorder's queue (`primed` is set when the writer runs)."""
        self.run_lock.acquire()
        self._starter = threading.Thread(
            target=self._prime_then_record, name="milkconsole-prime", daemon=True
        )
        self._starter.start()

    def _prime_then_record(self) -> None:
        try:
            with self.db.read() as tx:
                n = self.health.prime(tx)
            log.info("mastitis detector rebuilt from %d stored milkings", n)
        except Exception:
            log.exception("the mastitis detector could not be rebuilt; it starts with no history")
        finally:
            self._start_writer()
            self.primed.set()

    def _start_writer(self) -> None:
        with self._start_lock:
            if not self._recording:
                self._recording = True
                self.recorder.start()

    def start_housekeeping(self) -> None:
        """The daily backup and retention pass (both the console and the gateway run them)."""
        self.housekeeping.start()

    def start_threads(self) -> None:
        """Headless mode: the recorder, housekeeping and one plain thread per bus poller."""
        self.start_recorder()
        self.start_housekeeping()
        for bus_id, poller in self.pollers.items():
            t = threading.Thread(target=poller.run, name=f"poller-{bus_id}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the live view and the pollers, then drain and stop the writer so nothing
        submitted is lost."""
        if self.web is not None:
            try:
                self.web.stop(timeout_s)
            except Exception:  # the parlour's data matters more than a phone's page
                log.exception("stopping the live view failed")
        for poller in self.pollers.values():
            poller.stop()
        for t in self._threads:
            t.join(timeout_s)
        self._threads.clear()
        if self._starter is not None:
            self._starter.join(timeout_s)
            if self._starter.is_alive():
                # Still replaying: write what waits now (the detector comes in when it is done).
                log.warning("stopping before the mastitis detector was rebuilt")
                self._start_writer()
        self.recorder.stop(timeout_s)
        self.housekeeping.stop(timeout_s)
        if self.sync is not None:
            self.sync.stop(timeout_s)
        if self.mqtt is not None:
            self.mqtt.stop(timeout_s)
        self.run_lock.release()
