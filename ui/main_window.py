"""The console's main window: stalls, production, the supervisor's alerts and the history (reports,
trends, meters compared) in tabs, a status bar.

The window wires the bridge's signals to the widgets, reads the database only through the task
runner (production snapshot, herd list, the alert marks on the tiles) and records the operator's
actions (manual ID, re-attach) on a pool thread. It owns no threads of its own; `ui.app.Console`
starts and stops the pollers and the sync and calls `on_close` when the window closes.

Milk separation at the stall: a tile says DIVERT the moment its cow is known to need it; the
operator confirms "milk diverted" (key D on the tile, or the stall's actions) and registers an
unknown tag to a cow from the same actions. The Herd tab shows a cow's card; the supervisor
records treatments and the keep-out flag there. The herd (with what separation needs) is read
again whenever the database's herd version moves (an import, a pull from Odoo, a treatment).

Actions that need a PIN (acknowledging and resolving alerts) go through `ask_pin(action, then)`.
Until the technician tools are installed (`install_technician`, which also hands over their PIN
prompt) the window asks with its own `PinDialog` on its `access` lock. The menu bar keeps a place
for the Technician menu, before the Supervisor menu.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QMainWindow, QMenu, QPushButton, QTabWidget, QWidget

from milkconsole.config import ParlourConfig
from milkconsole.grants import AccessDenied, Grant
from milkconsole.herd.directory import AnimalInfo, HerdDirectory
from milkconsole.herd.separation import SeparationRules
from milkconsole.meters.events import FlowSample, SessionStarted, SessionUpdated
from milkconsole.reports.dashboard import production_snapshot
from milkconsole.store.alerts import AlertMarks, alert_marks
from milkconsole.store.db import Database
from milkconsole.store.directory import load_herd
from milkconsole.store.herd import current_herd_version
from milkconsole.store.sessions import SessionRecord, SessionStore
from milkconsole.store.users import UserInfo
from milkconsole.supervision.lock import AccessControl, AccessSettings
from milkconsole.supervision.users import UserStore
from milkconsole.sync.status import SyncStatus
from ui.alert_review import AlertReviewWidget, AskPin
from ui.bridge import EventBridge
from ui.dashboard import DashboardRefresher, DashboardWidget
from ui.herd_actions import HerdActions
from ui.herd_view import HerdWidget
from ui.history_view import HistoryWidget
from ui.manual_id_dialog import ManualIdDialog, StallActionsDialog
from ui.pin_dialog import PinDialog
from ui.stall_view import StallViewWidget
from ui.status_bar import ParlourStatusBar
from ui.sync_panel import SyncPanelDialog
from ui.theme import DARK, THEMES, Theme, apply_theme
from ui.web_access import WebAccessDialog, WebStatusRelay
from ui.workers import CoalescedReader, LoopWorkerThread, TaskRunner

if TYPE_CHECKING:
    from milkconsole.web.service import WebStatus, WebView

log = logging.getLogger(__name__)

HERD_REFRESH_S = 120.0
HERD_VERSION_POLL_S = 3.0
# The recorder commits a new session within a moment; a manual ID typed in the first second of
# a milking may reach the database before the session row does, so the write waits that long.
MANUAL_ID_ROW_WAIT_S = 5.0
# The alert marks on the tiles are re-read after each commit and at least this often.
ALERT_MARKS_IDLE_S = 60.0


class MainWindow(QMainWindow):
    """The console window for one parlour. Call `start()` once the bridge is attached."""

    manual_id_recorded = Signal(str, object)  # session key, SessionRecord
    reattach_recorded = Signal(str)  # session key
    herd_loaded = Signal(object)  # HerdDirectory
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
        access: AccessControl | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__()
        self.now = now  # the parlour's clock (the demo's runs faster than the wall's)
        self.separation_rules = SeparationRules.from_parlour(config)
        self.config = config
        self.bridge = bridge
        self.db = db
        self.store = SessionStore(db)
        self._curves_restored: set[str] = set()
        self.theme = theme
        self.actor = actor
        self.tasks = tasks or TaskRunner(parent=self)
        self.access = access or AccessControl(UserStore(db), AccessSettings.from_parlour(config))
        self._ask_pin: AskPin = self._ask_pin_here
        self.pin_dialog: PinDialog | None = None
        self.sync_panel: SyncPanelDialog | None = None
        self._retry_sync: Callable[[], None] | None = None
        self.on_close: Callable[[], None] | None = None
        self.setWindowTitle(f"Milk Console — {config.name}")

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.stall_view = StallViewWidget(config, theme, now=now)
        self.dashboard = DashboardWidget(theme)
        self.dashboard.cow_text = lambda s: self.stall_view.identity_for(s)[0].line
        self.dashboard.is_diverted = lambda s: self.stall_view.decision_for(s).divert
        self.herd_view = HerdWidget(now=now)
        self.alert_review = AlertReviewWidget(
            db, self.tasks, ask_pin=lambda action, then: self.ask_pin(action, then), theme=theme
        )
        self.history = HistoryWidget(db, self.tasks, layout=config.layout, theme=theme)
        # Set by the console when the technician tools are in (the meters page's flag opens
        # the calibration wizard with the flagged meters ticked).
        self.calibrate_meters: Callable[[list[str]], None] | None = None
        self.history.calibrate_requested.connect(self._calibrate_meters)
        self.tabs.addTab(self.stall_view, "Stalls")
        self.tabs.addTab(self.dashboard, "Production")
        self.alerts_tab = self.tabs.addTab(self.alert_review, "Alerts")
        self.tabs.addTab(self.history, "History")
        self.tabs.addTab(self.herd_view, "Herd")
        corner = QWidget()
        cl = QHBoxLayout(corner)
        cl.setContentsMargins(0, 0, 6, 0)
        self.theme_button = QPushButton()
        self.theme_button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.theme_button.clicked.connect(self.toggle_theme)
        self.fullscreen_button = QPushButton("Full screen")
        self.fullscreen_button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.fullscreen_button.clicked.connect(self.toggle_fullscreen)
        # One side of the pit at a time: twice the tile size where many stalls make them small.
        self.side_button = QPushButton()
        self.side_button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.side_button.clicked.connect(self.next_side)
        self.side_button.setVisible(len(self.stall_view.sides) == 2)
        self._side_timer = QTimer(self)
        self._side_timer.setInterval(1000)
        self._side_timer.timeout.connect(self._update_side_button)
        self._side_timer.start()
        cl.addWidget(self.side_button)
        cl.addWidget(self.theme_button)
        cl.addWidget(self.fullscreen_button)
        self.tabs.setCornerWidget(corner, Qt.Corner.TopRightCorner)
        self.setCentralWidget(self.tabs)
        self.status = ParlourStatusBar(config, str(db.path), theme)
        self.setStatusBar(self.status)
        self._update_theme_button()
        self._update_side_button()

        self.refresher = DashboardRefresher(
            lambda: production_snapshot(self.db, now=self.now()), self.tasks, parent=self
        )
        self.refresher.refreshed.connect(self.dashboard.apply_snapshot)
        self.refresher.refreshed.connect(self.stall_view.apply_production)
        self.refresher.failed.connect(
            lambda msg: self.status.showMessage(f"Dashboard: {msg}", 10000)
        )
        self.marks = CoalescedReader(
            lambda: alert_marks(self.db),
            self.tasks,
            name="alert marks",
            idle_s=ALERT_MARKS_IDLE_S,
            parent=self,
        )
        self.marks.refreshed.connect(self._apply_marks)
        self._herd_timer = QTimer(self)
        self._herd_timer.setInterval(int(HERD_REFRESH_S * 1000))
        self._herd_timer.timeout.connect(self.reload_herd)
        self.herd_loads = 0
        # The herd version: a cheap read every few seconds; the herd is read again when it moves.
        self._herd_version: int | None = None
        self.herd_watch = CoalescedReader(
            lambda: current_herd_version(self.db),
            self.tasks,
            name="herd version",
            idle_s=HERD_VERSION_POLL_S,
            parent=self,
        )
        self.herd_watch.refreshed.connect(self._on_herd_version)

        b = bridge
        for sig in (b.session_started, b.session_updated, b.session_completed):
            sig.connect(self.stall_view.on_session_event)
            sig.connect(self.dashboard.on_session_event)
        b.session_started.connect(self._restore_resumed_curve)
        b.session_updated.connect(self._restore_resumed_curve)
        b.reading_taken.connect(self.stall_view.on_reading)
        b.meter_state_changed.connect(self.stall_view.on_meter_state_changed)
        b.meter_state_changed.connect(self.status.on_meter_state_changed)
        b.poll_cycle_completed.connect(self.stall_view.on_poll_cycle)
        b.poll_cycle_completed.connect(self.status.on_poll_cycle)
        b.sessions_committed.connect(self.refresher.request)
        b.sessions_committed.connect(self.marks.request)
        b.sessions_committed.connect(self.alert_review.refresh)
        b.sync_status_changed.connect(self.status.on_sync_status)
        b.storage_status_changed.connect(self.status.on_storage_status)
        b.backup_status_changed.connect(self.status.on_backup_status)
        b.sync_status_changed.connect(self._on_sync_status)
        self.status.sync_clicked.connect(self.open_sync_panel)
        # The live view for phones reports from its own thread; the relay hops to this one.
        self.web: WebView | None = None
        self.web_dialog: WebAccessDialog | None = None
        self.web_relay = WebStatusRelay(self)
        self.web_relay.changed.connect(self.status.on_web_status)
        self.web_relay.changed.connect(self._on_web_status)
        self.status.web_clicked.connect(self.open_web_access)
        self.alert_review.alert_changed.connect(self._on_alert_changed)
        self.alert_review.action_failed.connect(lambda msg: self.status.showMessage(msg, 15000))

        self.stall_view.tile_activated.connect(self.open_stall_actions)
        self.stall_view.manual_id_requested.connect(self.open_manual_id)
        self.stall_view.reattach_requested.connect(self.mark_reattached)
        # Milk separation and the herd: confirming, tags, treatments, the keep-out flag.
        self.herd_actions = HerdActions(self)
        self.stall_view.divert_confirm_requested.connect(self.herd_actions.confirm_divert)
        self.herd_view.treatment_requested.connect(self.herd_actions.open_treatment)
        self.herd_view.keep_out_requested.connect(self.herd_actions.open_keep_out)
        self.action_failed.connect(lambda msg: self.status.showMessage(msg, 15000))

        QShortcut(QKeySequence("F11"), self, self.toggle_fullscreen)
        QShortcut(QKeySequence("F6"), self, self.next_side)
        QShortcut(QKeySequence("Ctrl+1"), self, lambda: self.tabs.setCurrentIndex(0))
        QShortcut(QKeySequence("Ctrl+2"), self, lambda: self.tabs.setCurrentIndex(1))
        QShortcut(QKeySequence("Ctrl+3"), self, self.show_alerts)
        QShortcut(QKeySequence("Ctrl+4"), self, lambda: self.tabs.setCurrentWidget(self.history))
        QShortcut(QKeySequence("Ctrl+5"), self, lambda: self.tabs.setCurrentWidget(self.herd_view))
        self._build_menus()
        self.resize(1600, 950)

    @Slot()
    def next_side(self) -> None:
        """Both sides -> side A -> side B -> both (F6, or the button by the tabs)."""
        view = self.stall_view
        if len(view.sides) != 2:
            return
        order: list[int | None] = [None, 0, 1]
        view.set_side(order[(order.index(view.side) + 1) % len(order)])
        self.tabs.setCurrentWidget(view)
        self._update_side_button()

    @Slot()
    def _update_side_button(self) -> None:
        view = self.stall_view
        text = view.side_label(view.side)
        waiting = view.hidden_attention()
        divert = [s for s in waiting if view.tiles[s].display_state == "divert"]
        if waiting:
            other = "AB"[1 - view.side] if view.side is not None else ""
            if divert:
                # Milk to keep out of the tank is named first, in so many words.
                text += f" · ⚠ DIVERT on side {other}: stall {', '.join(map(str, divert[:4]))}"
                rest = len(waiting) - len(divert)
                text += f" (+{rest} more)" if rest else ""
            else:
                text += f" · ⚠ {len(waiting)} on side {other}: stall "
                text += ", ".join(map(str, waiting[:4])) + ("…" if len(waiting) > 4 else "")
        if self.side_button.text() != text:
            self.side_button.setText(text)
            # The tab bar sizes its corner once: have it take the new width.
            corner = self.tabs.cornerWidget(Qt.Corner.TopRightCorner)
            if corner is not None:
                corner.adjustSize()
                self.tabs.setCornerWidget(corner, Qt.Corner.TopRightCorner)
                corner.show()
            self.side_button.setToolTip(
                "Show one side of the pit, or both (F6). Stalls on the hidden side that need "
                "someone are named here."
            )
            if divert:
                divert_style = self.theme.state("divert")
                style = f"color: {divert_style.on_color}; background: {divert_style.color};"
            elif waiting:
                style = f"color: {self.theme.state('alert').color};"
            else:
                style = ""
            self.side_button.setStyleSheet(style)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        # The Technician menu goes here, before Supervisor (see `install_technician`).
        self.technician_menu: QMenu | None = None
        self.supervisor_menu = bar.addMenu("&Supervisor")
        self.alerts_action = QAction("Alert review", self)
        self.alerts_action.triggered.connect(self.show_alerts)
        self.sync_action = QAction("Odoo sync…", self)
        self.sync_action.triggered.connect(self.open_sync_panel)
        self.web_action = QAction("Phone access…", self)
        self.web_action.triggered.connect(self.open_web_access)
        self.web_action.setEnabled(False)  # until the config's [web] section starts the view
        self.supervisor_menu.addAction(self.alerts_action)
        self.supervisor_menu.addAction(self.sync_action)
        self.supervisor_menu.addAction(self.web_action)

    def install_technician(
        self, menu: QMenu, status_widget: QWidget | None = None, ask_pin: AskPin | None = None
    ) -> None:
        """Put the technician tools in their place: `menu` before the Supervisor menu, the lock
        status in the status bar, and their PIN prompt (`TechActions.require`) for every guarded
        action of the window, so the console has one lock. Give the window the same
        `AccessControl` the tools use (the `access` argument) when there is one."""
        bar = self.menuBar()
        if self.technician_menu is not None:
            bar.removeAction(self.technician_menu.menuAction())
        bar.insertMenu(self.supervisor_menu.menuAction(), menu)
        self.technician_menu = menu
        if status_widget is not None:
            self.status.addPermanentWidget(status_widget)
        if ask_pin is not None:
            self._ask_pin = ask_pin

    def start(self) -> None:
        """Begin reading the database (dashboard, herd list, alert marks)."""
        self.refresher.start()
        self.marks.start()
        self.reload_herd()
        self._herd_timer.start()
        self.herd_watch.start()
        # After the first paint: the chart's import is the slowest part of starting up.
        QTimer.singleShot(300, self.dashboard.build_chart)

    def stop_reading(self) -> None:
        """Stop every periodic database read (shutdown; jobs already running finish)."""
        self.refresher.stop()
        self.marks.stop()
        self.alert_review.stop()
        self._herd_timer.stop()
        self.herd_watch.stop()
        if self.sync_panel is not None:
            self.sync_panel.reader.stop()

    def attach_workers(self, workers: list[LoopWorkerThread]) -> None:
        for w in workers:
            w.failed.connect(self.status.on_worker_failed)
            w.restarted.connect(self.status.on_worker_restarted)

    def attach_sync(self, retry_now: Callable[[], None]) -> None:
        """The running sync worker's `retry_now` (the sync panel's Retry and Sync now use it)."""
        self._retry_sync = retry_now
        if self.sync_panel is not None:
            self.sync_panel.set_retry_now(retry_now)

    def attach_web(self, web: WebView) -> None:
        """The running live view for phones: its Phone access window becomes available."""
        self.web = web
        self.web_action.setEnabled(True)

    @Slot()
    def open_web_access(self) -> WebAccessDialog | None:
        """The supervisor's Phone access window (QR codes, revoking, the fingerprint)."""
        if self.web is None:
            self.status.showMessage("No live view for phones: add a [web] section", 10000)
            return None
        if self.web_dialog is None:
            self.web_dialog = WebAccessDialog(
                self.web, self.tasks, lambda action, then: self.ask_pin(action, then), self
            )
            self.web_dialog.message.connect(lambda msg: self.status.showMessage(msg, 15000))
        self.web_dialog.apply_status(self.web.status)
        self.web_dialog.reload()
        self.web_dialog.show()
        self.web_dialog.raise_()
        return self.web_dialog

    @Slot(object)
    def _on_web_status(self, status: WebStatus) -> None:
        if self.web_dialog is not None and self.web_dialog.isVisible():
            self.web_dialog.apply_status(status)

    # -- PIN ------------------------------------------------------------------------------------
    def ask_pin(self, action: str, then: Callable[[Grant], None]) -> None:
        """Run `then(grant)` now if the console is unlocked for `action`, else after a PIN."""
        self._ask_pin(action, then)

    def _ask_pin_here(self, action: str, then: Callable[[Grant], None]) -> None:
        try:
            grant = self.access.require(action)
        except AccessDenied:
            pass
        else:
            then(grant)
            return

        def show(users: list[UserInfo]) -> None:
            if self.pin_dialog is not None:
                self.pin_dialog.reject()
            dlg = PinDialog(self.access, action, users, self, tasks=self.tasks)
            dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            self.pin_dialog = dlg

            def finished(_result: int) -> None:
                if self.pin_dialog is dlg:
                    self.pin_dialog = None
                if dlg.grant is not None:
                    then(dlg.grant)

            dlg.finished.connect(finished)
            dlg.open()

        users = self.access.users
        self.tasks.submit(
            users.users,
            show,
            lambda exc: self.action_failed.emit(f"Could not list the users: {exc}"),
            name="users for PIN",
        )

    # -- history ------------------------------------------------------------------------------
    def open_cow_history(self, animal_id: int) -> None:
        """A cow's lactation trend on the History tab (from a herd list, an alert, a tile)."""
        self.tabs.setCurrentWidget(self.history)
        self.history.open_cow(animal_id)

    @Slot(list)
    def _calibrate_meters(self, meter_ids: list[str]) -> None:
        if self.calibrate_meters is None:
            self.status.showMessage(
                "Calibration needs the technician tools (Technician menu)", 10000
            )
            return
        self.calibrate_meters(meter_ids)

    # -- alerts and sync ------------------------------------------------------------------------
    @Slot()
    def show_alerts(self) -> None:
        self.tabs.setCurrentWidget(self.alert_review)

    def _apply_marks(self, marks: AlertMarks) -> None:
        self.stall_view.set_cow_alerts(marks.by_animal)
        label = f"Alerts ({marks.open_count})" if marks.open_count else "Alerts"
        if self.tabs.tabText(self.alerts_tab) != label:
            self.tabs.setTabText(self.alerts_tab, label)

    def _on_alert_changed(self, _record: object) -> None:
        self.marks.request()
        self.refresher.request()

    @Slot()
    def open_sync_panel(self) -> SyncPanelDialog:
        if self.sync_panel is None:
            self.sync_panel = SyncPanelDialog(
                self.db, self.tasks, retry_now=self._retry_sync, parent=self
            )
        if self.status.sync_status is not None:
            self.sync_panel.apply_status(self.status.sync_status)
        self.sync_panel.show()
        self.sync_panel.raise_()
        return self.sync_panel

    @Slot(object)
    def _on_sync_status(self, status: SyncStatus) -> None:
        if self.sync_panel is not None and self.sync_panel.isVisible():
            self.sync_panel.apply_status(status)

    # -- database reads -----------------------------------------------------------------------
    @Slot()
    def _restore_resumed_curve(self, event: SessionStarted | SessionUpdated) -> None:
        """A milking carried over a console restart: its tile gets back the curve stored before
        the restart (read once per session, on the task runner)."""
        session = event.session
        if "resumed" not in session.flags or session.key in self._curves_restored:
            return
        self._curves_restored.add(session.key)
        store, key, meter = self.store, session.key, session.meter_id

        def done(samples: list[FlowSample]) -> None:
            tile = self.stall_view.tile_for_meter(meter)
            if tile is not None:
                tile.restore_curve(key, [s.flow_l_min for s in samples])

        self.tasks.submit(lambda: store.samples(key), done, None, name="resumed curve")

    def reload_herd(self) -> None:
        def done(herd: HerdDirectory) -> None:
            self.herd_loads += 1
            self.stall_view.set_herd(herd)
            self.herd_view.set_herd(herd)
            self.herd_loaded.emit(herd)

        rules = self.separation_rules
        self.tasks.submit(
            lambda: load_herd(self.db, now=self.now(), rules=rules),
            done,
            lambda exc: self.status.showMessage(f"Herd list: {exc}", 10000),
            name="herd list",
        )

    def _on_herd_version(self, version: object) -> None:
        if version != self._herd_version:
            first = self._herd_version is None
            self._herd_version = version if isinstance(version, int) else None
            if not first:
                self.reload_herd()

    # -- operator actions ---------------------------------------------------------------------
    @Slot(int)
    def open_stall_actions(self, stall: int) -> StallActionsDialog:
        tile = self.stall_view.tiles[stall]
        session = self.stall_view.session_of(stall)
        unknown = tile.identity.rfid if tile.identity.status == "unknown_tag" else None
        dlg = StallActionsDialog(
            stall,
            tile.summary(),
            session is not None,
            self,
            divert=tile.divert.divert,
            diverted=tile.divert_confirmed_by is not None,
            unknown_tag=unknown,
        )
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def finished(_result: int) -> None:
            if dlg.choice == "manual_id":
                self.open_manual_id(stall)
            elif dlg.choice == "reattach":
                self.mark_reattached(stall)
            elif dlg.choice == "divert":
                self.herd_actions.confirm_divert(stall)
            elif dlg.choice == "register_tag":
                self.herd_actions.open_register_tag(stall)

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
        self.alert_review.set_theme(theme)
        self.history.set_theme(theme)
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
        self.stop_reading()
        if self.on_close is not None:
            self.on_close()
        super().closeEvent(event)
