"""The technician's and supervisor's entry points: one menu, the PIN lock, and its status.

`TechActions` owns the console's `AccessControl`. Every guarded action goes through
`require(action, then)`: when the current grant allows it, `then(grant)` runs at once; otherwise
the PIN dialog opens and `then` runs after a good PIN. Any key press, click or touch anywhere in
the application counts as activity; after `lock_after_s` without any the console locks again
(checked every second) and `lock_changed` says so.

The main window installs `menu()`, `status_widget()` and `require` as its PIN prompt
(`MainWindow.install_technician`); the rest (wizard, diagnostics, bulk tank, audit log, users)
opens from the menu.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection

from PySide6.QtCore import QEvent, QObject, QTimer, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QLabel, QMenu, QMessageBox, QWidget

from milkconsole.config import ParlourConfig
from milkconsole.grants import AccessDenied, Grant
from milkconsole.store.calibrations import CalibrationRecord
from milkconsole.store.db import Database
from milkconsole.store.users import UserInfo
from milkconsole.supervision.lock import AccessControl
from milkconsole.supervision.users import UserStore
from milkconsole.technician.calibration import CalibrationSettings
from milkconsole.technician.diagnostics import EquipmentRanges, SelfTestResult
from ui.bridge import EventBridge
from ui.pin_dialog import PinDialog
from ui.theme import DARK, Theme
from ui.workers import TaskRunner

log = logging.getLogger(__name__)

SUPERVISOR_WINDOWS = ("audit", "users")
_ACTIVITY = {
    QEvent.Type.KeyPress,
    QEvent.Type.MouseButtonPress,
    QEvent.Type.TouchBegin,
    QEvent.Type.Wheel,
}


class TechActions(QObject):
    """Menu, PIN lock and the technician/supervisor windows for one console."""

    lock_changed = Signal(object)  # Grant | None
    calibration_saved = Signal(object)  # list[CalibrationRecord]

    def __init__(
        self,
        config: ParlourConfig,
        db: Database,
        access: AccessControl,
        tasks: TaskRunner,
        *,
        bridge: EventBridge | None = None,
        apply_factor: Callable[[str, float], None] | None = None,
        run_self_test: Callable[[str], SelfTestResult] | None = None,
        calibration: CalibrationSettings | None = None,
        ranges: EquipmentRanges | None = None,
        theme: Theme = DARK,
        window: QWidget | None = None,
        ask_pin: Callable[[str, Callable[[Grant], None]], None] | None = None,
    ) -> None:
        super().__init__(window)
        self.config = config
        self.db = db
        self.access = access
        self.users: UserStore = access.users
        self.tasks = tasks
        self.bridge = bridge
        self.apply_factor = apply_factor
        self.run_self_test = run_self_test
        self.calibration = calibration or CalibrationSettings.from_parlour(config)
        self.ranges = ranges or EquipmentRanges.from_parlour(config)
        self.theme = theme
        self.window = window
        self.pin_dialog: PinDialog | None = None
        # The console's one PIN prompt, when there is one (else these tools ask themselves).
        self._console_ask_pin = ask_pin
        self.open_windows: dict[str, QWidget] = {}
        self._last_grant: Grant | None = None

        self.login_action = QAction("Log in (technician / supervisor)…", self)
        self.login_action.triggered.connect(self.log_in)
        self.lock_action = QAction("Lock now", self)
        self.lock_action.triggered.connect(self.lock)
        self.calibrate_action = QAction("Calibrate meters…", self)
        self.calibrate_action.triggered.connect(self.open_calibration_wizard)
        self.bulk_tank_action = QAction("Bulk-tank check…", self)
        self.bulk_tank_action.triggered.connect(self.open_bulk_tank)
        self.diagnostics_action = QAction("Meter diagnostics", self)
        self.diagnostics_action.triggered.connect(self.open_diagnostics)
        self.audit_action = QAction("Audit log…", self)
        self.audit_action.triggered.connect(self.open_audit_log)
        self.users_action = QAction("Users…", self)
        self.users_action.triggered.connect(self.open_users)

        self.status_label = QLabel()
        self.status_label.setObjectName("lockStatus")
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.check_lock)
        self._timer.start()
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)
        self.check_lock()

    # -- what the main window puts up ------------------------------------------------------------
    def menu(self, parent: QWidget | None = None, *, supervisor_items: bool = True) -> QMenu:
        """The Technician menu. With `supervisor_items=False` the audit log and users are left
        for the Supervisor menu (`supervisor_actions()`)."""
        m = QMenu("&Technician", parent)
        m.addAction(self.login_action)
        m.addAction(self.lock_action)
        m.addSeparator()
        m.addAction(self.calibrate_action)
        m.addAction(self.bulk_tank_action)
        m.addAction(self.diagnostics_action)
        if supervisor_items:
            m.addSeparator()
            for a in self.supervisor_actions():
                m.addAction(a)
        return m

    def supervisor_actions(self) -> list[QAction]:
        """Audit log and users: the supervisor's entries."""
        return [self.audit_action, self.users_action]

    def status_widget(self) -> QLabel:
        """'Locked' or 'Tom (technician) · locks in 4:32', kept current."""
        return self.status_label

    # -- the lock -------------------------------------------------------------------------------
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in _ACTIVITY:
            self.access.touch()
        return False

    @Slot()
    def check_lock(self) -> None:
        grant = self.access.grant
        left = self.access.seconds_until_lock()
        if grant is None:
            self.status_label.setText("Locked")
            self.status_label.setToolTip("Technician and supervisor actions need a PIN")
        else:
            secs = max(0, math.ceil(left or 0))
            self.status_label.setText(
                f"{grant.user} ({grant.role}) · locks in {secs // 60}:{secs % 60:02d}"
            )
        self.lock_action.setEnabled(grant is not None)
        if grant != self._last_grant:
            self._last_grant = grant
            if grant is None:
                # What only a supervisor may see does not stay on screen for the next person.
                # The wizard stays (its typed references are work); saving asks for the PIN.
                for key in SUPERVISOR_WINDOWS:
                    w = self.open_windows.get(key)
                    if w is not None:
                        w.close()
            self.lock_changed.emit(grant)

    @Slot()
    def lock(self) -> None:
        self.access.lock()
        self.check_lock()

    @Slot()
    def log_in(self) -> None:
        self.require("self_test", lambda _g: None)

    def require(
        self, action: str, then: Callable[[Grant], None], parent: QWidget | None = None
    ) -> None:
        """Run `then(grant)` now if the console is unlocked for `action`, else after a PIN."""
        if self._console_ask_pin is not None:

            def granted(grant: Grant) -> None:
                self.check_lock()
                then(grant)

            self._console_ask_pin(action, granted)
            return
        try:
            grant = self.access.require(action)
        except AccessDenied:
            self._ask_pin(action, then, parent)
            return
        then(grant)

    def _ask_pin(self, action: str, then: Callable[[Grant], None], parent: QWidget | None) -> None:
        users = self.users

        def show(found: list[UserInfo]) -> None:
            if self.pin_dialog is not None:
                self.pin_dialog.reject()
            dlg = PinDialog(self.access, action, found, parent or self.window, tasks=self.tasks)
            self.pin_dialog = dlg

            def finished(_result: int) -> None:
                self.pin_dialog = None
                self.check_lock()
                if dlg.grant is not None:
                    then(dlg.grant)

            dlg.finished.connect(finished)
            dlg.open()

        self.tasks.submit(users.users, show, self._show_error, name="users for PIN")

    def _show_error(self, exc: BaseException) -> None:
        QMessageBox.warning(self.window, "Milk Console", str(exc))

    # -- the windows ----------------------------------------------------------------------------
    def _raise_existing(self, key: str) -> bool:
        w = self.open_windows.get(key)
        if w is not None and w.isVisible():
            w.raise_()
            w.activateWindow()
            return True
        return False

    def _track(self, key: str, w: QWidget) -> None:
        self.open_windows[key] = w
        w.destroyed.connect(lambda _=None, k=key: self.open_windows.pop(k, None))

    @Slot()
    def open_calibration_wizard(self) -> None:
        self.calibrate(())

    def calibrate(self, meter_ids: Collection[str]) -> None:
        """The calibration wizard (after a technician's PIN) with `meter_ids` ticked: the
        meters the meter comparison flagged."""
        if self._raise_existing("calibration"):
            from ui.calibration_wizard import CalibrationWizard

            wiz = self.open_windows.get("calibration")
            if isinstance(wiz, CalibrationWizard):
                for meter_id in meter_ids:
                    wiz.meters_page.set_checked(meter_id)
            return

        def opened(_grant: Grant) -> None:
            from ui.calibration_wizard import CalibrationWizard

            wiz = CalibrationWizard(
                self.db,
                self.config,
                self.tasks,
                access=self.access,
                settings=self.calibration,
                bridge=self.bridge,
                apply_factor=self.apply_factor,
                ask_pin=lambda action, then: self.require(action, then),
                theme=self.theme,
                preselect=tuple(meter_ids),
                parent=self.window,
            )
            wiz.saved.connect(self._on_calibration_saved)
            self._track("calibration", wiz)
            wiz.show()

        self.require("calibrate", opened)

    def _on_calibration_saved(self, records: list[CalibrationRecord]) -> None:
        self.calibration_saved.emit(records)

    @Slot()
    def open_bulk_tank(self) -> None:
        if self._raise_existing("bulk_tank"):
            return

        def opened(_grant: Grant) -> None:
            from ui.tech_bulk_tank_dialog import BulkTankDialog

            dlg = BulkTankDialog(
                self.db,
                self.config,
                self.tasks,
                access=self.access,
                settings=self.calibration,
                apply_factor=self.apply_factor,
                ask_pin=lambda action, then: self.require(action, then),
                parent=self.window,
            )
            dlg.saved.connect(self._on_calibration_saved)
            self._track("bulk_tank", dlg)
            dlg.show()

        self.require("bulk_tank", opened)

    @Slot()
    def open_diagnostics(self) -> None:
        """Diagnostics are for reading: open to anyone; the self-test asks for a PIN."""
        if self._raise_existing("diagnostics"):
            return
        from ui.diagnostics_view import DiagnosticsWidget

        w = DiagnosticsWidget(
            self.config,
            self.db,
            self.tasks,
            bridge=self.bridge,
            ranges=self.ranges,
            settings=self.calibration,
            run_self_test=self.run_self_test,
            ask_pin=lambda action, then: self.require(action, then),
            theme=self.theme,
        )
        w.setWindowTitle(f"Meter diagnostics — {self.config.name}")
        w.resize(1500, 900)
        self._track("diagnostics", w)
        w.show()

    @Slot()
    def open_audit_log(self) -> None:
        if self._raise_existing("audit"):
            return

        def opened(_grant: Grant) -> None:
            from ui.audit_view import AuditLogDialog

            dlg = AuditLogDialog(
                self.db,
                self.tasks,
                access=self.access,
                ask_pin=lambda action, then: self.require(action, then),
                parent=self.window,
            )
            self._track("audit", dlg)
            dlg.show()

        self.require("view_audit", opened)

    @Slot()
    def open_users(self) -> None:
        if self._raise_existing("users"):
            return

        def opened(_grant: Grant) -> None:
            from ui.tech_users_dialog import UsersDialog

            dlg = UsersDialog(
                self.users,
                self.tasks,
                access=self.access,
                ask_pin=lambda action, then: self.require(action, then),
                parent=self.window,
            )
            self._track("users", dlg)
            dlg.show()

        self.require("manage_users", opened)
