"""Starting and stopping the console: QApplication, runtime, bridge, poller workers, window.

`run_console` is what `milkconsole` and `milkconsole demo` call. `Console` holds one running
console (tests and the benchmark build it directly): the core `ParlourRuntime` with its database
writer, one `LoopWorkerThread` per bus poller, the bridge, and the window; for the demo also the
simulated parlour and its temporary directory.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from milkconsole.config import ParlourConfig, load_config, with_sections_of
from milkconsole.diagnostics import SelfTestResult, self_test
from milkconsole.paths import default_config_path, default_db_path
from milkconsole.runtime import ParlourRuntime
from milkconsole.store.db import Database, open_database
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
    ) -> None:
        self.app = ensure_app()
        self.theme = get_theme(theme)
        apply_theme(self.app, self.theme)
        self.config = config
        self.simulator = simulator
        self.workdir = workdir
        self.db = open_database(db_path)
        self.runtime = ParlourRuntime(config, self.db)
        self.bridge = EventBridge()
        self.bridge.attach(self.runtime)
        self.tasks = TaskRunner(max_threads=2)
        self.window = MainWindow(config, self.bridge, self.db, theme=self.theme, tasks=self.tasks)
        self.workers = [
            LoopWorkerThread(f"poller {bus_id}", poller.run, poller.stop)
            for bus_id, poller in self.runtime.pollers.items()
        ]
        self.window.attach_workers(self.workers)
        self.window.on_close = self._on_window_closed
        self.window.status.backup_clicked.connect(self.backup_now)
        self._install_technician_tools()
        self.started = False
        self.report: ShutdownReport | None = None
        # Cow indexes the demo made sick (see `open_demo_console`).
        self.sick_cows: tuple[int, ...] = ()
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


DEMO_COW_NAMES = (
    "Daisy",
    "Bella",
    "Molly",
    "Rosie",
    "Clover",
    "Buttercup",
    "Luna",
    "Maisy",
    "Hazel",
    "Poppy",
    "Bramble",
    "Dot",
    "Flora",
    "Ivy",
    "Juno",
    "Lottie",
    "Mabel",
    "Nell",
    "Olive",
    "Pearl",
    "Ruby",
    "Tilly",
    "Willow",
    "Primrose",
)
# Every this-many-th cow is left out of the demo herd list, so "unknown tag" shows up.
DEMO_UNLISTED_EVERY = 23
# Days of past milkings per cow: more than the mastitis detector's minimum baseline (6).
DEMO_HISTORY_DAYS = 8
DEMO_SICK_COWS = 2
# A clinical case: the sick quarter's conductivity half as high again.
DEMO_SICK_FACTOR = 1.5


def seed_demo_herd(
    db: Database,
    scenario: Any,
    *,
    seed: int = 1,
    days: int = DEMO_HISTORY_DAYS,
    sick_cows: Mapping[int, float] | None = None,
) -> int:
    """Put the simulated herd in the demo database, with one past milking a day for `days` days.

    The console then shows numbers and names instead of raw tags, and an expected yield (so the
    target mark, the percentage and LOW YIELD have something to work with). The past milkings
    carry her conductivity (cow and quarters, as her simulated meter shows it), so the health
    hook's mastitis detector has a baseline for every cow from the start. A cow in `sick_cows`
    (index -> factor, as `ParlourScenario.make_sick`) already showed the first signs
    yesterday: her milking today is then enough to raise an alert. A few cows are left out on
    purpose. Returns how many animals were written.
    """
    import random

    from milkconsole.events import SessionSnapshot
    from milkconsole.rfid import fdx_b_to_iso, normalize_tag
    from milkconsole.store.schema import Animal, AnimalTag
    from milkconsole.store.sessions import new_session_row

    rng = random.Random(seed)
    now = datetime.now(UTC)
    planned: dict[int, Any] = {}
    for milking in scenario.plan:
        planned.setdefault(milking.cow_index, milking)
    written = 0
    with db.write() as tx:
        for cow in scenario.herd:
            if cow.index % DEMO_UNLISTED_EVERY == DEMO_UNLISTED_EVERY - 1:
                continue
            animal = Animal(
                number=str(cow.herd_number),
                name=DEMO_COW_NAMES[cow.index % len(DEMO_COW_NAMES)],
                rfid_tag=fdx_b_to_iso(cow.fdx_code),
                group_name=f"Group {1 + cow.index % 4}",
                active=True,
            )
            tx.add(animal)
            tx.flush()
            # Afimilk meters read the cow's 8-character ASCII tag, not her ISO tag.
            tx.add(
                AnimalTag(animal_id=animal.id, rfid_tag=normalize_tag(f"C{cow.herd_number:07d}"))
            )
            written += 1
            milking = planned.get(cow.index)
            if milking is None:
                continue
            # Her past milkings at the wall-clock time the demo will milk her today, so the
            # cow-swap check sees her usual time of day, not a stranger's.
            today = now + timedelta(seconds=milking.attach_s / scenario.time_scale)
            for day in range(days, 0, -1):
                started = today - timedelta(days=day, minutes=rng.uniform(-10.0, 10.0))
                duration_s = milking.curve.duration_s * rng.uniform(0.95, 1.05)
                factor = (sick_cows or {}).get(cow.index, 1.0) if day == 1 else 1.0
                ec = _demo_conductivity(cow, rng, factor)
                snap = SessionSnapshot(
                    key=f"DEMO-HIST-{cow.index}-{day}",
                    meter_id=milking.meter_id,
                    stall=milking.stall,
                    started_at=started,
                    state="completed",
                    rfid=animal.rfid_tag,
                    ended_at=started + timedelta(seconds=duration_s),
                    duration_s=round(duration_s, 1),
                    yield_l=round(milking.yield_l * rng.uniform(0.97, 1.03), 2),
                    conductivity_mean_ms_cm=ec[0],
                    conductivity_max_ms_cm=ec[0] + 0.1,
                    ec_lf_ms_cm=ec[1],
                    ec_rf_ms_cm=ec[2],
                    ec_lr_ms_cm=ec[3],
                    ec_rr_ms_cm=ec[4],
                    temperature_c=round(cow.temperature_c + rng.uniform(0.0, 0.08), 2),
                )
                row = new_session_row(snap, now)
                row.animal_id = animal.id
                row.id_source = "rfid"
                row.quality_grade = rng.choice(("A", "A", "A", "B"))
                tx.add(row)
    return written


def _demo_conductivity(
    cow: Any, rng: Any, factor: float
) -> tuple[float, float, float, float, float]:
    """A past milking's conductivity as the simulator would show it for `cow`: cow mean, then
    LF, RF, LR, RR (a sick quarter's raised by `factor`, see `simulators.parlour`)."""
    from simulators.parlour import CONDUCTIVITY_RANGE_MS_CM, SICK_QUARTER

    lo, hi = CONDUCTIVITY_RANGE_MS_CM
    base = cow.conductivity_ms_cm
    quarters = [base + off for off in cow.quarter_offsets_ms_cm]
    rise = quarters[SICK_QUARTER] * (factor - 1.0)
    quarters[SICK_QUARTER] += rise
    shown = [round(min(max(q + rng.uniform(-0.1, 0.1), lo), hi * factor), 3) for q in quarters]
    mean = round(base + rise / 4.0 + rng.uniform(-0.03, 0.03), 3)
    return mean, shown[0], shown[1], shown[2], shown[3]


def pick_sick_cows(scenario: Any, config: ParlourConfig, count: int) -> dict[int, float]:
    """The first `count` listed cows the plan milks on meters that report each quarter's
    conductivity (the detector is surest there), each with the factor DEMO_SICK_FACTOR."""
    quarter_meters = {
        m.id for m in config.meters if "ec_lf_ms_cm" in config.profiles[m.profile].fields
    }
    out: dict[int, float] = {}
    for milking in sorted(scenario.plan, key=lambda p: p.attach_s):
        if len(out) >= count:
            break
        listed = milking.cow_index % DEMO_UNLISTED_EVERY != DEMO_UNLISTED_EVERY - 1
        # Her tag must be read and known, or no cow is there to alert about.
        if milking.meter_id in quarter_meters and listed and "missed_rfid" not in milking.faults:
            out.setdefault(milking.cow_index, DEMO_SICK_FACTOR)
    return out


def open_demo_console(
    *,
    theme: str = "dark",
    stalls: int = DEMO_STALLS,
    cows: int = 200,
    time_scale: float = 20.0,
    seed: int = 1,
    db_path: Path | None = None,
    faults: Any = "typical",
    sick_cows: int = DEMO_SICK_COWS,
    sections_from: Path | None = None,
) -> Console:
    """A console on a simulated parlour in a temporary directory (removed at shutdown).

    `faults`: "typical" (a fault in about one milking in three), None, or a `FaultPlan`.
    `sick_cows`: how many cows come in with mastitis (`pick_sick_cows`; their indexes are in
    `console.sick_cows`), so the supervisor's alert review has something to show.
    `sections_from`: a config file whose optional sections ([odoo], ...) the demo takes.
    The herd is written to the database first (see `seed_demo_herd`); the simulated cows start
    walking in when the console starts.
    """
    from simulators.demo import SimulatedParlour, make_demo_config
    from simulators.parlour import FaultPlan

    workdir = Path(tempfile.mkdtemp(prefix="milkconsole-demo-"))
    simulator: Any = None
    try:
        config = load_config(make_demo_config(workdir, stalls=stalls, time_scale=time_scale))
        if sections_from is not None:
            config = with_sections_of(config, sections_from)
        plan = FaultPlan.typical(seed) if faults == "typical" else faults
        simulator = SimulatedParlour(
            config, cows=cows, seed=seed, time_scale=time_scale, faults=plan
        )
        sick = pick_sick_cows(simulator.scenario, config, sick_cows)
        for cow_index, factor in sick.items():
            simulator.scenario.make_sick(cow_index, factor)
        path = db_path or workdir / "demo.sqlite"
        db = open_database(path)
        try:
            seed_demo_herd(db, simulator.scenario, seed=seed, sick_cows=sick)
        finally:
            db.close()
        console = Console(config, path, theme=theme, simulator=simulator, workdir=workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    console.sick_cows = tuple(sorted(sick))
    console.before_start.append(simulator.start)
    return console


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
