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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from milkconsole.config import ParlourConfig, load_config
from milkconsole.paths import default_config_path, default_db_path
from milkconsole.runtime import ParlourRuntime
from milkconsole.store.db import Database, open_database
from ui.bridge import EventBridge
from ui.main_window import MainWindow
from ui.theme import apply_theme, get_theme
from ui.workers import LoopWorkerThread, TaskRunner, stop_workers

log = logging.getLogger(__name__)

WORKER_STOP_TIMEOUT_S = 2.0
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
        self.started = False
        self.report: ShutdownReport | None = None
        # Called at start before the pollers (the demo starts its simulated parlour here).
        self.before_start: list[Callable[[], object]] = []

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        for fn in self.before_start:
            fn()
        self.runtime.start_recorder()
        for w in self.workers:
            w.start()
        self.window.start()

    def _on_window_closed(self) -> None:
        self.shutdown()

    def shutdown(self) -> ShutdownReport:
        """Stop pollers (within WORKER_STOP_TIMEOUT_S), finish database jobs, drain the writer,
        close the database, stop the simulator. Safe to call twice."""
        if self.report is not None:
            return self.report
        t0 = time.monotonic()
        self.window.refresher.stop()
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


def seed_demo_herd(db: Database, scenario: Any, *, seed: int = 1) -> int:
    """Put the simulated herd in the demo database, with three past milkings per cow.

    The console then shows numbers and names instead of raw tags, and an expected yield (so the
    target mark, the percentage and LOW YIELD have something to work with). A few cows are
    left out on purpose. Returns how many animals were written.
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
            for day in (1, 2, 3):
                started = now - timedelta(days=day, hours=rng.uniform(0, 2))
                snap = SessionSnapshot(
                    key=f"DEMO-HIST-{cow.index}-{day}",
                    meter_id=milking.meter_id,
                    stall=milking.stall,
                    started_at=started,
                    state="completed",
                    rfid=animal.rfid_tag,
                    ended_at=started + timedelta(minutes=7),
                    duration_s=420.0,
                    yield_l=round(milking.yield_l * rng.uniform(0.92, 1.12), 2),
                )
                row = new_session_row(snap, now)
                row.animal_id = animal.id
                row.id_source = "rfid"
                row.quality_grade = rng.choice(("A", "A", "A", "B"))
                tx.add(row)
    return written


def open_demo_console(
    *,
    theme: str = "dark",
    stalls: int = DEMO_STALLS,
    cows: int = 200,
    time_scale: float = 20.0,
    seed: int = 1,
    db_path: Path | None = None,
    faults: Any = "typical",
) -> Console:
    """A console on a simulated parlour in a temporary directory (removed at shutdown).

    `faults`: "typical" (a fault in about one milking in three), None, or a `FaultPlan`.
    The herd is written to the database first (see `seed_demo_herd`); the simulated cows start
    walking in when the console starts.
    """
    from simulators.demo import SimulatedParlour, make_demo_config
    from simulators.parlour import FaultPlan

    workdir = Path(tempfile.mkdtemp(prefix="milkconsole-demo-"))
    simulator: Any = None
    try:
        config = load_config(make_demo_config(workdir, stalls=stalls, time_scale=time_scale))
        plan = FaultPlan.typical(seed) if faults == "typical" else faults
        simulator = SimulatedParlour(
            config, cows=cows, seed=seed, time_scale=time_scale, faults=plan
        )
        path = db_path or workdir / "demo.sqlite"
        db = open_database(path)
        try:
            seed_demo_herd(db, simulator.scenario, seed=seed)
        finally:
            db.close()
        console = Console(config, path, theme=theme, simulator=simulator, workdir=workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
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

    `demo`: a simulated 24-stall parlour with a temporary database (unless `db_path` is given);
    otherwise the parlour at `config_path` (default: the platform config dir). Config and
    database errors propagate as `ConfigError` / `DatabaseError` for the CLI to report.
    """
    app = ensure_app()
    if demo:
        console = open_demo_console(theme=theme, cows=cows, time_scale=time_scale, db_path=db_path)
    else:
        config = load_config(config_path or default_config_path())
        console = Console(config, db_path or default_db_path(), theme=theme)
    try:
        console.window.show()
        # Start polling once the window is up, so the first paint is not behind the pollers.
        QTimer.singleShot(0, console.start)
        status = app.exec()
    finally:
        report = console.shutdown()
    if not report.workers_stopped:
        log.error("some poller threads did not stop within %.1f s", WORKER_STOP_TIMEOUT_S)
    return int(status)
