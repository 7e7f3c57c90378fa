"""The PIN dialog: a technician or supervisor unlocks the actions of their role.

Made for a finger in a glove as well as a keyboard: the user is picked from a list of the names
that may do the action, the PIN typed on a large number pad (or the keys), Enter to unlock. The
PIN is checked by `AccessControl.unlock` — on the task runner when one is given, since a PIN
hash costs tens of milliseconds — and a back-off after wrong PINs is shown as a countdown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeySequence, QRegularExpressionValidator, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from milkconsole.grants import ACTION_LABELS, AccessDenied, Grant, allowed_roles, needs_text
from milkconsole.store.users import UserInfo
from milkconsole.supervision.lock import AccessControl, PinBackoff, PinRefused
from ui.workers import TaskRunner


class PinDialog(QDialog):
    """Unlock `access` for `action`. `grant` holds the result once the dialog is accepted."""

    granted = Signal(object)  # Grant

    def __init__(
        self,
        access: AccessControl,
        action: str,
        users: Sequence[UserInfo],
        parent: QWidget | None = None,
        *,
        tasks: TaskRunner | None = None,
    ) -> None:
        super().__init__(parent)
        self.access = access
        self.action = action
        self.tasks = tasks
        self.grant: Grant | None = None
        self._busy = False
        roles = allowed_roles(action)
        self.setWindowTitle("Enter PIN")
        self.setModal(True)
        lay = QVBoxLayout(self)
        lay.setSpacing(12)
        title = QLabel(f"To {ACTION_LABELS.get(action, action)}, enter {needs_text(action)}")
        title.setObjectName("dialogTitle")
        title.setWordWrap(True)
        lay.addWidget(title)

        self.user_combo = QComboBox()
        self.user_combo.setMinimumHeight(56)
        for u in users:
            if u.role in roles:
                self.user_combo.addItem(f"{u.name}  ({u.role})", u.name)
        lay.addWidget(self.user_combo)
        self.no_users = QLabel(
            "Nobody may do this yet: a supervisor adds users under Technician → Users, "
            "or at the PC: milkconsole users add --role supervisor NAME"
        )
        self.no_users.setWordWrap(True)
        self.no_users.setObjectName("errorText")
        self.no_users.setVisible(self.user_combo.count() == 0)
        lay.addWidget(self.no_users)

        self.pin_edit = QLineEdit()
        self.pin_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.pin_edit.setMaxLength(8)
        self.pin_edit.setPlaceholderText("PIN")
        self.pin_edit.setValidator(QRegularExpressionValidator(r"[0-9]{0,8}"))
        self.pin_edit.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.pin_edit.returnPressed.connect(self.submit)
        lay.addWidget(self.pin_edit)

        pad = QGridLayout()
        pad.setSpacing(8)
        keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "⌫", "0", "Clear"]
        self.key_buttons: dict[str, QPushButton] = {}
        for i, key in enumerate(keys):
            b = QPushButton(key)
            b.setMinimumSize(96, 64)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.clicked.connect(lambda _=False, k=key: self._key(k))
            pad.addWidget(b, i // 3, i % 3)
            self.key_buttons[key] = b
        lay.addLayout(pad)

        self.message = QLabel("")
        self.message.setObjectName("errorText")
        self.message.setWordWrap(True)
        lay.addWidget(self.message)

        row = QHBoxLayout()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.reject)
        self.ok_button = QPushButton("Unlock")
        self.ok_button.setObjectName("primary")
        self.ok_button.clicked.connect(self.submit)
        row.addWidget(self.cancel_button)
        row.addWidget(self.ok_button)
        lay.addLayout(row)
        QShortcut(QKeySequence("Escape"), self, self.reject)

        self._countdown = QTimer(self)
        self._countdown.setInterval(250)
        self._countdown.timeout.connect(self._tick)
        self._tick()
        self.pin_edit.setFocus()
        self.resize(520, 720)

    # -- input --------------------------------------------------------------------------------
    def _key(self, key: str) -> None:
        if key == "⌫":
            self.pin_edit.backspace()
        elif key == "Clear":
            self.pin_edit.clear()
        elif len(self.pin_edit.text()) < 8:
            self.pin_edit.insert(key)
        self.pin_edit.setFocus()

    def select_user(self, name: str) -> None:
        i = self.user_combo.findData(name)
        if i >= 0:
            self.user_combo.setCurrentIndex(i)

    # -- checking -----------------------------------------------------------------------------
    @Slot()
    def submit(self) -> None:
        """Check the PIN of the chosen user (no-op while a check runs or while backing off)."""
        name = self.user_combo.currentData()
        pin = self.pin_edit.text()
        if self._busy or name is None or self.access.backoff_remaining_s() > 0:
            return
        if not pin:
            self.message.setText("Type the PIN")
            return
        self._busy = True
        self.ok_button.setEnabled(False)
        self.message.setText("Checking…")
        if self.tasks is None:
            try:
                self._done(self.access.unlock(name, pin))
            except AccessDenied as exc:
                self._failed(exc)
        else:
            access = self.access
            self.tasks.submit(
                lambda: access.unlock(name, pin), self._done, self._failed, name="pin check"
            )

    def _done(self, grant: Grant) -> None:
        self._busy = False
        self.pin_edit.clear()
        if not grant.allows(self.action):
            self.message.setText(
                f"{grant.user} is a {grant.role}: this needs {needs_text(self.action)}"
            )
            self._tick()
            return
        self.grant = grant
        self.granted.emit(grant)
        self.accept()

    def _failed(self, exc: BaseException) -> None:
        self._busy = False
        self.pin_edit.clear()
        if isinstance(exc, PinBackoff | PinRefused):
            text = str(exc)
            self.message.setText(text[:1].upper() + text[1:])
        else:
            self.message.setText(f"Could not check the PIN: {exc}")
        self._tick()

    @Slot()
    def _tick(self) -> None:
        wait = self.access.backoff_remaining_s()
        has_user = self.user_combo.count() > 0
        if wait > 0:
            self.ok_button.setEnabled(False)
            self.ok_button.setText(f"Wait {math.ceil(wait)} s")
            if not self._countdown.isActive():
                self._countdown.start()
            return
        self._countdown.stop()
        self.ok_button.setText("Unlock")
        self.ok_button.setEnabled(has_user and not self._busy)
