"""The users window: a supervisor adds technicians and supervisors, sets PINs, removes users.

Every change goes through `milkconsole.supervision.users.UserStore` on the task runner with the
supervisor's grant, which checks it again and audits the change in the same transaction. PINs are
typed twice and never shown.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from milkconsole.grants import LOGIN_ROLES, AccessDenied, Grant, UserError
from milkconsole.store.users import UserInfo
from milkconsole.supervision.lock import AccessControl
from milkconsole.supervision.users import UserStore
from ui.tables import record_table
from ui.tech_style import ROW_HEIGHT_PX, TECH_QSS
from ui.workers import TaskRunner

AskPin = Callable[[str, Callable[[Grant], None]], None]


class UsersDialog(QDialog):
    """See the module docstring. `changed` fires after each change with a message."""

    changed = Signal(str)

    def __init__(
        self,
        users: UserStore,
        tasks: TaskRunner,
        *,
        access: AccessControl,
        ask_pin: AskPin | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.users = users
        self.tasks = tasks
        self.access = access
        self.ask_pin = ask_pin
        self.rows: list[UserInfo] = []
        self.setWindowTitle("Users")
        self.setStyleSheet(TECH_QSS)
        lay = QVBoxLayout(self)
        title = QLabel("Technicians and supervisors")
        title.setObjectName("dialogTitle")
        lay.addWidget(title)
        self.table = record_table(
            ("Name", "Role", "Since"), row_height_px=ROW_HEIGHT_PX, alternating=False
        )
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        lay.addWidget(self.table, 1)

        form = QFormLayout()
        self.name = QLineEdit()
        self.role = QComboBox()
        self.role.addItems(list(LOGIN_ROLES))
        self.pin = QLineEdit()
        self.pin_again = QLineEdit()
        for e in (self.pin, self.pin_again):
            e.setEchoMode(QLineEdit.EchoMode.Password)
            e.setMaxLength(8)
        form.addRow("Name", self.name)
        form.addRow("Role", self.role)
        form.addRow("PIN (4-8 digits)", self.pin)
        form.addRow("PIN again", self.pin_again)
        lay.addLayout(form)
        row = QHBoxLayout()
        self.add_button = QPushButton("Add user")
        self.add_button.clicked.connect(self.add)
        self.pin_button = QPushButton("Set PIN of selected")
        self.pin_button.clicked.connect(self.set_pin)
        self.role_button = QPushButton("Give selected the role")
        self.role_button.clicked.connect(self.set_role)
        self.remove_button = QPushButton("Remove selected")
        self.remove_button.clicked.connect(self.remove)
        for b in (self.add_button, self.pin_button, self.role_button, self.remove_button):
            row.addWidget(b)
        lay.addLayout(row)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        lay.addWidget(self.message)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        lay.addWidget(close)
        self.resize(900, 900)
        self.reload()

    @Slot()
    def reload(self) -> None:
        self.tasks.submit(self.users.users, self._show, self._failed, name="users")

    def _show(self, rows: list[UserInfo]) -> None:
        self.rows = rows
        self.table.setRowCount(len(rows))
        for i, u in enumerate(rows):
            for j, v in enumerate((u.name, u.role, u.created_at.astimezone().strftime("%d %b %Y"))):
                self.table.setItem(i, j, QTableWidgetItem(v))

    def selected(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.rows[rows[0].row()].name if rows else None

    def _pin_typed(self) -> str | None:
        if self.pin.text() != self.pin_again.text():
            self.message.setText("The two PINs differ")
            return None
        return self.pin.text()

    def _change(self, what: str, fn: Callable[[Grant], object]) -> None:
        def run(grant: Grant) -> None:
            self.tasks.submit(lambda: fn(grant), lambda _r: self._done(what), self._failed)

        try:
            run(self.access.require("manage_users"))
        except AccessDenied as exc:
            if self.ask_pin is not None:
                self.ask_pin("manage_users", run)
            else:
                self.message.setText(str(exc))

    def _done(self, what: str) -> None:
        self.pin.clear()
        self.pin_again.clear()
        self.message.setText(what)
        self.changed.emit(what)
        self.reload()

    def _failed(self, exc: BaseException) -> None:
        self.message.setText(str(exc) if isinstance(exc, UserError | AccessDenied) else repr(exc))

    @Slot()
    def add(self) -> None:
        pin = self._pin_typed()
        if pin is None:
            return
        name, role, users = self.name.text().strip(), self.role.currentText(), self.users
        self._change(f"Added {role} {name}", lambda g: users.add(name, role, pin, by=g))

    @Slot()
    def set_pin(self) -> None:
        name, pin, users = self.selected(), self._pin_typed(), self.users
        if name is None or pin is None:
            return
        self._change(f"PIN of {name} changed", lambda g: users.set_pin(name, pin, by=g))

    @Slot()
    def set_role(self) -> None:
        name, role, users = self.selected(), self.role.currentText(), self.users
        if name is not None:
            self._change(f"{name} is now a {role}", lambda g: users.set_role(name, role, by=g))

    @Slot()
    def remove(self) -> None:
        name, users = self.selected(), self.users
        if name is not None:
            self._change(f"Removed {name}", lambda g: users.remove(name, by=g))
