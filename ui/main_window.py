"""The console's main window: the stall view and the production dashboard in tabs, the status bar.

The window wires the bridge's signals to the widgets, reads the database only through the task
runner (production snapshot, herd list) and records the operator's actions (manual ID,
re-attach) on a pool thread. It owns no threads of its own; `ui.app.Console` starts and stops the
pollers and calls `on_close` when the window closes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QMainWindow, QPushButton, QTabWidget, QWidget

from milkconsole.config import ParlourConfig
from milkconsole.production import AnimalInfo, HerdDirectory, load_herd, production_snapshot
from milkconsole.store.db import Database
from milkconsole.store.sessions import SessionRecord, SessionStore
from ui.bridge import EventBridge
from ui.dashboard import DashboardRefresher, DashboardWidget
from ui.manual_id_dialog import ManualIdDialog, StallActionsDialog
from ui.stall_view import StallViewWidget
from ui.status_bar import ParlourStatusBar
from ui.theme import DARK, THEMES, Theme, apply_theme
from ui.workers import LoopWorkerThread, TaskRunner

log = logging.getLogger(__name__)

HERD_REFRESH_S = 120.0
# The recorder commits a new session within a moment; a manual ID typed in the first second of
# a milking may reach the database before the session row does, so the write waits that long.
MANUAL_ID_ROW_WAIT_S = 5.0


class MainWindow(QMainWindow):
    """The console window for one parlour. Call `start()` once the bridge is attached."""

    manual_id_recorded = Signal(str, object)  # session key, SessionRecord
    reattach_recorded = Signal(str)  # session key
    action_failed = Signal(str)  # message shown to the operator

    def __init__(
        self,
        config: ParlourConfig,
        bridge: EventBridge,
        db: Database,
        *,
        theme: Theme = DARK,
        tasks: TaskRunner | None = None,
        actor: str = "operator",
    ) -> None:
        super().__init__()
        self.config = config
        self.bridge = bridge
        self.db = db
        self.store = SessionStore(db)
        self.theme = theme
        self.actor = actor
        self.tasks = tasks or TaskRunner(parent=self)
        self.on_close: Callable[[], None] | None = None
        self.setWindowTitle(f"Milk Console — {config.name}")

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.stall_view = StallViewWidget(config, theme)
        self.dashboard = DashboardWidget(theme)
        self.dashboard.cow_text = lambda s: self.stall_view.identity_for(s)[0].line
        self.tabs.addTab(self.stall_view, "Stalls")
        self.tabs.addTab(self.dashboard, "Production")
        corner = QWidget()
        cl = QHBoxLayout(corner)
        cl.setContentsMargins(0, 0, 6, 0)
        self.theme_button = QPushButton()
        self.theme_button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.theme_button.clicked.connect(self.toggle_theme)
        self.fullscreen_button = QPushButton("Full screen")
        self.fullscreen_button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.fullscreen_button.clicked.connect(self.toggle_fullscreen)
        cl.addWidget(self.theme_button)
        cl.addWidget(self.fullscreen_button)
        self.tabs.setCornerWidget(corner, Qt.Corner.TopRightCorner)
        self.setCentralWidget(self.tabs)
        self.status = ParlourStatusBar(config, str(db.path), theme)
        self.setStatusBar(self.status)
        self._update_theme_button()

        self.refresher = DashboardRefresher(
            lambda: production_snapshot(self.db), self.tasks, parent=self
        )
        self.refresher.refreshed.connect(self.dashboard.apply_snapshot)
        self.refresher.refreshed.connect(self.stall_view.apply_production)
        self.refresher.failed.connect(
            lambda msg: self.status.showMessage(f"Dashboard: {msg}", 10000)
        )
        self._herd_timer = QTimer(self)
        self._herd_timer.setInterval(int(HERD_REFRESH_S * 1000))
        self._herd_timer.timeout.connect(self.reload_herd)
        self.herd_loads = 0

        b = bridge
        for sig in (b.session_started, b.session_updated, b.session_completed):
            sig.connect(self.stall_view.on_session_event)
            sig.connect(self.dashboard.on_session_event)
        b.reading_taken.connect(self.stall_view.on_reading)
        b.meter_state_changed.connect(self.stall_view.on_meter_state_changed)
        b.meter_state_changed.connect(self.status.on_meter_state_changed)
        b.poll_cycle_completed.connect(self.stall_view.on_poll_cycle)
        b.poll_cycle_completed.connect(self.status.on_poll_cycle)
        b.sessions_committed.connect(self.refresher.request)

        self.stall_view.tile_activated.connect(self.open_stall_actions)
        self.stall_view.manual_id_requested.connect(self.open_manual_id)
        self.stall_view.reattach_requested.connect(self.mark_reattached)
        self.action_failed.connect(lambda msg: self.status.showMessage(msg, 15000))

        QShortcut(QKeySequence("F11"), self, self.toggle_fullscreen)
        QShortcut(QKeySequence("Ctrl+1"), self, lambda: self.tabs.setCurrentIndex(0))
        QShortcut(QKeySequence("Ctrl+2"), self, lambda: self.tabs.setCurrentIndex(1))
        self.resize(1600, 950)

    def start(self) -> None:
        """Begin reading the database (dashboard, herd list)."""
        self.refresher.start()
        self.reload_herd()
        self._herd_timer.start()
        # After the first paint: the chart's import is the slowest part of starting up.
        QTimer.singleShot(300, self.dashboard.build_chart)

    def attach_workers(self, workers: list[LoopWorkerThread]) -> None:
        for w in workers:
            w.failed.connect(self.status.on_worker_failed)
            w.restarted.connect(self.status.on_worker_restarted)

    # -- database reads -----------------------------------------------------------------------
    @Slot()
    def reload_herd(self) -> None:
        def done(herd: HerdDirectory) -> None:
            self.herd_loads += 1
            self.stall_view.set_herd(herd)

        self.tasks.submit(
            lambda: load_herd(self.db),
            done,
            lambda exc: self.status.showMessage(f"Herd list: {exc}", 10000),
            name="herd list",
        )

    # -- operator actions ---------------------------------------------------------------------
    @Slot(int)
    def open_stall_actions(self, stall: int) -> StallActionsDialog:
        tile = self.stall_view.tiles[stall]
        session = self.stall_view.session_of(stall)
        dlg = StallActionsDialog(stall, tile.summary(), session is not None, self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def finished(_result: int) -> None:
            if dlg.choice == "manual_id":
                self.open_manual_id(stall)
            elif dlg.choice == "reattach":
                self.mark_reattached(stall)

        dlg.finished.connect(finished)
        dlg.open()
        return dlg

    @Slot(int)
    def open_manual_id(self, stall: int) -> ManualIdDialog | None:
        session = self.stall_view.session_of(stall)
        if session is None:
            self.action_failed.emit(f"Stall {stall}: no cow in the stall to identify")
            return None
        key = session.key
        identity, _ = self.stall_view.identity_for(session)
        dlg = ManualIdDialog(stall, self.stall_view.herd, identity.line, self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def finished(result: int) -> None:
            if result == ManualIdDialog.DialogCode.Accepted and dlg.animal is not None:
                self.record_manual_id(stall, key, dlg.animal)

        dlg.finished.connect(finished)
        dlg.open()
        return dlg

    def record_manual_id(self, stall: int, session_key: str, animal: AnimalInfo) -> None:
        """Re-associate the session with `animal` in the database (pool thread), then show it."""
        store, actor = self.store, self.actor

        def write() -> SessionRecord:
            deadline = time.monotonic() + MANUAL_ID_ROW_WAIT_S
            while True:
                try:
                    return store.set_manual_animal(session_key, animal.id, actor)
                except LookupError as exc:
                    if "no milk session" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

        def done(record: SessionRecord) -> None:
            self.stall_view.set_manual_identity(session_key, animal)
            self.status.showMessage(
                f"Stall {stall}: cow {animal.label} recorded (manual ID)", 10000
            )
            self.manual_id_recorded.emit(session_key, record)
            self.refresher.request()

        def failed(exc: BaseException) -> None:
            self.action_failed.emit(f"Stall {stall}: manual ID not recorded: {exc}")

        self.tasks.submit(write, done, failed, name=f"manual id stall {stall}")

    @Slot(int)
    def mark_reattached(self, stall: int) -> None:
        session = self.stall_view.session_of(stall)
        if session is None:
            self.action_failed.emit(f"Stall {stall}: no cow in the stall")
            return
        key, store, actor = session.key, self.store, self.actor

        def done(_: object) -> None:
            self.stall_view.tiles[stall].set_note("re-attached")
            self.status.showMessage(f"Stall {stall}: re-attach recorded", 10000)
            self.reattach_recorded.emit(key)

        def failed(exc: BaseException) -> None:
            self.action_failed.emit(f"Stall {stall}: re-attach not recorded: {exc}")

        self.tasks.submit(
            lambda: store.mark_reattached(key, actor), done, failed, name=f"reattach {stall}"
        )

    # -- look ---------------------------------------------------------------------------------
    @Slot()
    def toggle_theme(self) -> None:
        names = sorted(THEMES)
        self.set_theme(THEMES[names[(names.index(self.theme.name) + 1) % len(names)]])

    def set_theme(self, theme: Theme) -> None:
        from PySide6.QtWidgets import QApplication

        self.theme = theme
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, theme)
        self.stall_view.set_theme(theme)
        self.dashboard.set_theme(theme)
        self.status.set_theme(theme)
        self._update_theme_button()

    def _update_theme_button(self) -> None:
        other = "Light" if self.theme.name == "dark" else "Dark"
        self.theme_button.setText(f"{other} theme")

    @Slot()
    def toggle_fullscreen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
            self.fullscreen_button.setText("Full screen")
        else:
            self.showFullScreen()
            self.fullscreen_button.setText("Leave full screen")

    def closeEvent(self, event: QCloseEvent) -> None:
        self.refresher.stop()
        self._herd_timer.stop()
        if self.on_close is not None:
            self.on_close()
        super().closeEvent(event)
