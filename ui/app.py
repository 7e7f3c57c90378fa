"""Starting and stopping the console: QApplication, runtime, bridge, poller workers, window.

`run_console` is what `milkconsole` and `milkconsole demo` call. `Console` holds one running
console (tests and the benchmark build it directly): the core `ParlourRuntime` with its database
writer, one `LoopWorkerThread` per bus poller, the bridge, and the window; for the demo also the
simulated parlour and its temporary directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

from milkconsole.app.runtime import ParlourRuntime
from milkconsole.clock import SYSTEM_CLOCK, Clock, ScaledClock
from milkconsole.config import ParlourConfig, load_config, with_sections_of
from milkconsole.paths import default_config_path, default_db_path
from milkconsole.store.db import open_database
from milkconsole.technician.diagnostics import SelfTestResult, self_test
from ui.bridge import EventBridge
from ui.main_window import MainWindow
from ui.tech_actions import TechActions
from ui.tech_due_widget import CalibrationDueWidget
from ui.theme import apply_theme, get_theme
from ui.workers import LoopWorkerThread, TaskRunner, stop_workers

log = logging.getLogger(__name__)

WORKER_STOP_TIMEOUT_S = 2.0
SELF_TEST_TIMEOUT_S = 15.0  # a full poll cycle of a slow RS-485 bus, then the test itself
DEMO_STALLS = 24
# Smoke tests and bench/installer.py only: a number of seconds. The console prints
# "first paint <time.monotonic()>" on stdout when the first stall tile is painted, then closes
# its window that many seconds later (the normal shutdown, exit status 0).
QUIT_AFTER_PAINT_ENV = "MILKCONSOLE_QUIT_AFTER_PAINT_S"


@dataclass(frozen=True, slots=True)
class ShutdownReport:
    """How the console stopped: did every poller thread end within the limit, and how long."""

    workers_stopped: bool
    workers_s: float
    total_s: float


def ensure_app() -> QApplication:
    """The process's QApplication (made once; Qt allows one)."""
    app = QApplication.instance()
    if isinstance(app, QApplication):
        return app
    app = QApplication(sys.argv[:1])
    app.setApplicationName("Milk Console")
    app.setOrganizationName("milkconsole")
    return app


class Console:
    """One console on one parlour config and database; `start()`, then `shutdown()` (idempotent).

    `simulator` (any object with `stop()`) and `workdir` belong to the console and are stopped /
    removed at shutdown: that is how the demo cleans up its simulated parlour.
    """

    def __init__(
        self,
        config: ParlourConfig,
        db_path: Path,
        *,
        theme: str = "dark",
        simulator: Any = None,
        workdir: Path | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.app = ensure_app()
        self.theme = get_theme(theme)
        apply_theme(self.app, self.theme)
        self.config = config
        self.simulator = simulator
        self.workdir = workdir
        self.db = open_database(db_path)
        self.clock = clock
        self.runtime = ParlourRuntime(config, self.db, clock=clock)
        self.bridge = EventBridge()
        self.bridge.attach(self.runtime)
        self.tasks = TaskRunner(max_threads=2)
        self.window = MainWindow(
            config, self.bridge, self.db, theme=self.theme, tasks=self.tasks, now=clock.now
        )
        self.workers = [
            LoopWorkerThread(f"poller {bus_id}", poller.run, poller.stop)
            for bus_id, poller in self.runtime.pollers.items()
        ]
        self.window.attach_workers(self.workers)
        self.window.on_close = self._on_window_closed
        # The MQTT publisher's status rides the bridge's general event path (rare: on a change
        # of state, at most once a second while messages drain).
        self.bridge.other_event.connect(self._on_other_event)
        self.window.status.mqtt_clicked.connect(self._mqtt_retry_now)
        self.window.status.backup_clicked.connect(self.backup_now)
        self._install_technician_tools()
        self.started = False
        self.report: ShutdownReport | None = None
        # Cow indexes the demo made sick, and its special cows (see `open_demo_console`).
        self.sick_cows: tuple[int, ...] = ()
        self.demo_herd: Any = None
        # Called at start before the pollers (the demo starts its simulated parlour here).
        self.before_start: list[Callable[[], object]] = []

    def _install_technician_tools(self) -> None:
        """Calibration, diagnostics, users and audit log, behind the window's one PIN lock.
        (Equipment alerts need no widget here: the runtime raises them, headless or not.)"""
        self.tech = TechActions(
            self.config,
            self.db,
            self.window.access,
            self.tasks,
            bridge=self.bridge,
            apply_factor=self.runtime.set_calibration_factor,
            run_self_test=self._run_self_test,
            theme=self.theme,
            window=self.window,
            ask_pin=self.window.ask_pin,  # one lock, one PIN prompt for the whole console
        )
        self.window.install_technician(
            self.tech.menu(self.window, supervisor_items=False), self.tech.status_widget()
        )
        self.window.supervisor_menu.addActions(self.tech.supervisor_actions())
        due = CalibrationDueWidget(
            self.db, self.tasks, meter_ids=[m.id for m in self.config.meters], theme=self.theme
        )
        self.window.status.addPermanentWidget(due)
        due.clicked.connect(self.tech.open_calibration_wizard)
        self.window.calibrate_meters = self.tech.calibrate
        self.tech.calibration_saved.connect(lambda _records: due.refresh())
        self.due_widget = due

    def _run_self_test(self, meter_id: str) -> SelfTestResult:
        """Read every register of a meter once, on its bus's poller thread (called from the
        task runner, never the GUI thread): an RS-485 bus must not see a second master."""
        meter = next(m for m in self.config.meters if m.id == meter_id)
        profile = self.config.profiles[meter.profile]
        poller = self.runtime.pollers[meter.bus]
        return poller.submit(lambda t: self_test(t, meter, profile)).result(SELF_TEST_TIMEOUT_S)

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        for fn in self.before_start:
            fn()
        self.runtime.start_recorder()
        self.runtime.start_housekeeping()
        self.start_sync()
        self.start_web()
        self.start_mqtt()
        for w in self.workers:
            w.start()
        self.window.start()

    def backup_now(self) -> None:
        """Back up the database now, on the task runner (the status bar shows the outcome; a
        failure is also a supervisor alert). Does nothing when backups are not set up."""
        keeper = self.runtime.housekeeping
        if not keeper.settings.configured:
            return
        self.window.status.backup_button.setText("Backup: running…")

        def failed(exc: BaseException) -> None:
            log.warning("backup on demand failed: %s", exc)
            keeper.publish_status(force=True)

        self.tasks.submit(keeper.backup_now, None, failed, name="backup now")

    def start_sync(self) -> bool:
        """Start the Odoo sync when the config has an [odoo] section (else the status bar keeps
        saying "not configured"). Its status reaches the status bar through the bridge."""
        try:
            started = self.runtime.start_sync(self.bridge.publish_sync_status)
        except Exception as exc:  # a bad [odoo] section must not keep the parlour from milking
            log.exception("the Odoo sync could not start")
            self.window.status.set_sync_status(f"not started: {exc}", "error")
            return False
        sync = self.runtime.sync
        if started and sync is not None:
            self.window.attach_sync(sync.retry_now)
        return started

    def start_web(self) -> bool:
        """Start the live view for phones when the config has a [web] section. It checks
        phone PINs on the window's own lock, and its status reaches the status bar."""
        from milkconsole.web.service import WebError

        try:
            started = self.runtime.start_web(
                access=self.window.access, on_status=self.window.web_relay.publish
            )
        except WebError:  # the status bar says FAILED; milking goes on without the phones
            log.exception("the live view for phones did not start")
            started = False
        if self.runtime.web is not None:
            self.window.attach_web(self.runtime.web)
        return started

    def start_mqtt(self) -> bool:
        """Start the MQTT publisher when the config has an [mqtt] section; its status reaches
        the status bar through the bridge."""
        try:
            return self.runtime.start_mqtt(self.bridge.publish)
        except Exception:  # a broken publisher must not keep the parlour from milking
            log.exception("the MQTT publisher could not start")
            self.window.status.showMessage("MQTT publisher could not start (see the log)", 15000)
            return False

    def _on_other_event(self, event: object) -> None:
        from milkconsole.mqtt.status import MqttStatus

        if isinstance(event, MqttStatus):
            self.window.status.on_mqtt_status(event)

    def _mqtt_retry_now(self) -> None:
        if self.runtime.mqtt is not None:
            self.runtime.mqtt.retry_now()

    def _on_window_closed(self) -> None:
        self.shutdown()

    def shutdown(self) -> ShutdownReport:
        """Stop pollers (within WORKER_STOP_TIMEOUT_S), finish database jobs, drain the writer,
        close the database, stop the simulator. Safe to call twice."""
        if self.report is not None:
            return self.report
        t0 = time.monotonic()
        self.window.stop_reading()
        ok = stop_workers(self.workers, WORKER_STOP_TIMEOUT_S)
        t_workers = time.monotonic() - t0
        self.tasks.wait_for_done(5.0)
        try:
            self.runtime.stop(timeout_s=5.0)  # drains the writer: nothing submitted is lost
        except Exception:
            log.exception("stopping the runtime failed")
        if self.simulator is not None:
            try:
                self.simulator.stop()
            except Exception:
                log.exception("stopping the simulated parlour failed")
        self.db.close()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.report = ShutdownReport(ok, t_workers, time.monotonic() - t0)
        log.info(
            "console stopped: workers %s in %.2f s, total %.2f s",
            "stopped" if ok else "NOT all stopped",
            t_workers,
            self.report.total_s,
        )
        return self.report


def open_demo_console(
    *,
    theme: str = "dark",
    stalls: int = DEMO_STALLS,
    cows: int = 200,
    time_scale: float = 20.0,
    seed: int = 1,
    db_path: Path | None = None,
    faults: Any = "typical",
    sick_cows: int = 2,
    sections_from: Path | None = None,
    simulated_clock: bool = True,
) -> Console:
    """A console on a simulated parlour in a temporary directory (removed at shutdown).

    `simulated_clock`: the console reads the cows in the scenario's time, so a milking lasts
    minutes however fast the demo runs (tests that compare with the scenario's wall-time truth
    turn it off).
    `faults`: "typical" (a fault in about one milking in three), None, or a `FaultPlan`.
    `sick_cows`: how many cows come in with mastitis (`pick_sick_cows`; their indexes are in
    `console.sick_cows`), so the supervisor's alert review has something to show.
    `sections_from`: a config file whose optional sections ([odoo], ...) the demo takes.
    The herd is written to the database first (`simulators.demo_herd.seed_demo_herd`: the herd
    import and treatment records, with a few treated and fresh cows); the simulated cows start
    walking in when the console starts.
    """
    from simulators.demo import SimulatedParlour, make_demo_config
    from simulators.demo_herd import pick_sick_cows, seed_demo_herd
    from simulators.parlour import FaultPlan

    workdir = Path(tempfile.mkdtemp(prefix="milkconsole-demo-"))
    simulator: Any = None
    try:
        config = load_config(
            make_demo_config(
                workdir, stalls=stalls, time_scale=time_scale, simulated_clock=simulated_clock
            )
        )
        if sections_from is not None:
            config = with_sections_of(config, sections_from)
        plan = FaultPlan.typical(seed) if faults == "typical" else faults
        simulator = SimulatedParlour(
            config, cows=cows, seed=seed, time_scale=time_scale, faults=plan
        )
        sick = pick_sick_cows(simulator.scenario, config, sick_cows)
        for cow_index, factor in sick.items():
            simulator.scenario.make_sick(cow_index, factor)
        # The console reads the cows in the scenario's own time (see milkconsole.clock).
        clock: Clock = ScaledClock(time_scale) if simulated_clock else SYSTEM_CLOCK
        path = db_path or workdir / "demo.sqlite"
        db = open_database(path)
        try:
            demo_herd = seed_demo_herd(
                db, simulator.scenario, start=clock.now(), seed=seed, sick_cows=sick
            )
        finally:
            db.close()
        console = Console(
            config, path, theme=theme, simulator=simulator, workdir=workdir, clock=clock
        )
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    console.sick_cows = tuple(sorted(sick))
    console.demo_herd = demo_herd
    console.before_start.append(simulator.start)
    return console


class FirstPaintExit(QObject):
    """Watches the stall tiles for the first paint, reports it and closes the window later
    (see QUIT_AFTER_PAINT_ENV). Installed only when that variable is set."""

    def __init__(self, console: Console, delay_s: float) -> None:
        super().__init__(console.window)
        self.console = console
        self.delay_s = delay_s
        self.painted = False
        for tile in console.window.stall_view.tiles.values():
            tile.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if not self.painted and event.type() == QEvent.Type.Paint:
            self.painted = True
            # Reported once this paint event has been handled, not before it.
            QTimer.singleShot(0, self._report)
        return False

    def _report(self) -> None:
        print(f"first paint {time.monotonic():.6f}", flush=True)
        QTimer.singleShot(round(self.delay_s * 1000), self.console.window.close)


def _quit_after_paint_s() -> float | None:
    raw = os.environ.get(QUIT_AFTER_PAINT_ENV, "")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        log.warning("%s=%r is not a number of seconds; ignored", QUIT_AFTER_PAINT_ENV, raw)
        return None
    return max(0.0, value)


def run_console(
    config_path: Path | None,
    db_path: Path | None,
    *,
    demo: bool,
    theme: str,
    cows: int = 200,
    time_scale: float = 20.0,
) -> int:
    """Open the console window and run until it is closed; returns the exit status.

    `demo`: a simulated 24-stall parlour with a temporary database (unless `db_path` is given),
    taking the optional sections of `config_path` when given; otherwise the parlour at
    `config_path` (default: the platform config dir). Config and
    database errors propagate as `ConfigError` / `DatabaseError` for the CLI to report.
    """
    app = ensure_app()
    if demo:
        console = open_demo_console(
            theme=theme,
            cows=cows,
            time_scale=time_scale,
            db_path=db_path,
            sections_from=config_path,
        )
    else:
        config = load_config(config_path or default_config_path())
        console = Console(config, db_path or default_db_path(), theme=theme)
    quit_after = _quit_after_paint_s()
    if quit_after is not None:
        FirstPaintExit(console, quit_after)
    try:
        console.window.showMaximized()  # fit the parlour PC's screen, whatever its size
        # Start polling once the window is up, so the first paint is not behind the pollers.
        QTimer.singleShot(0, console.start)
        status = app.exec()
    finally:
        report = console.shutdown()
    if not report.workers_stopped:
        log.error("some poller threads did not stop within %.1f s", WORKER_STOP_TIMEOUT_S)
    return int(status)
