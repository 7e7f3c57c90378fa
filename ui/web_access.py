"""The console's side of the live view for phones: its status on the GUI thread, the QR code,
and the supervisor's Phone access window (hand out a QR code, revoke a phone, see the
certificate's fingerprint).

A token's secret exists only in this window, once, as the QR code and the link under it: the
database keeps its hash, so closing the window forgets it (a lost QR code is a new one).
Handing out and revoking need a supervisor's PIN (`ask_pin("web_access", ...)`) and run on the
task runner; `WebView` checks the grant again and audits the change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from PySide6.QtCore import QObject, QRectF, QSize, Qt, Signal, Slot
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from milkconsole.grants import Grant
from milkconsole.store.web_tokens import WebTokenInfo
from milkconsole.web.qr import qr_matrix
from milkconsole.web.service import WebStatus, WebView
from ui.tables import record_table
from ui.workers import TaskRunner

AskPin = Callable[[str, Callable[[Grant], None]], None]
QR_MIN_PX = 300


def web_text(status: WebStatus) -> tuple[str, str]:
    """The status bar's words and colour state (ok, pending, error, idle) for the view."""
    if status.state == "serving":
        n = status.clients
        return (f"{n} connected" if n else "no phone connected"), "ok"
    if status.state == "failed":
        return "FAILED", "error"
    if status.state == "starting":
        return "starting", "pending"
    return status.state, "idle"


class WebStatusRelay(QObject):
    """Hands `WebStatus` from any thread to the GUI thread; only the newest one matters."""

    changed = Signal(object)  # WebStatus
    _pending = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._latest: WebStatus | None = None
        self._wake = False
        self._pending.connect(self._drain, Qt.ConnectionType.QueuedConnection)

    def publish(self, status: WebStatus) -> None:
        """Any thread; never waits on the GUI."""
        with self._lock:
            self._latest = status
            wake, self._wake = not self._wake, True
        if wake:
            self._pending.emit()

    @Slot()
    def _drain(self) -> None:
        with self._lock:
            status, self._latest = self._latest, None
            self._wake = False
        if status is not None:
            self.changed.emit(status)


class QrWidget(QWidget):
    """A QR code painted module by module, black on white (with its quiet zone)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.matrix: tuple[tuple[bool, ...], ...] = ()
        self.setFixedSize(QR_MIN_PX, QR_MIN_PX)

    def set_text(self, text: str | None) -> None:
        self.matrix = qr_matrix(text) if text else ()
        self.setVisible(bool(text))
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(QR_MIN_PX, QR_MIN_PX)

    def paintEvent(self, _event: QPaintEvent) -> None:
        if not self.matrix:
            return
        p = QPainter(self)
        side = min(self.width(), self.height())
        n = len(self.matrix)
        module = side // n  # whole pixels per module: no blurred edges for the camera
        size = module * n
        x0 = (self.width() - size) // 2
        y0 = (self.height() - size) // 2
        p.fillRect(QRectF(x0, y0, size, size), QColor("#ffffff"))
        black = QColor("#000000")
        for r, row in enumerate(self.matrix):
            for c, dark in enumerate(row):
                if dark:
                    p.fillRect(QRectF(x0 + c * module, y0 + r * module, module, module), black)
        p.end()


def _local(dt: datetime | None) -> str:
    return dt.astimezone().strftime("%d %b %H:%M") if dt else "never"


class WebAccessDialog(QDialog):
    """The supervisor's Phone access window (see the module docstring)."""

    message = Signal(str)

    COLUMNS = ("Phone", "Given by", "Given", "Last used", "State")

    def __init__(
        self, web: WebView, tasks: TaskRunner, ask_pin: AskPin, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.web = web
        self.tasks = tasks
        self.ask_pin = ask_pin
        self.tokens: list[WebTokenInfo] = []
        self.link: str | None = None
        self.setWindowTitle("Phone access")
        lay = QVBoxLayout(self)
        title = QLabel("Live view for phones")
        title.setObjectName("dialogTitle")
        lay.addWidget(title)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status_label)
        body = QHBoxLayout()
        left = QVBoxLayout()
        self.table = record_table(self.COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        left.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        self.new_button = QPushButton("New phone access…")
        self.new_button.clicked.connect(self.new_access)
        self.revoke_button = QPushButton("Revoke selected")
        self.revoke_button.clicked.connect(self.revoke_selected)
        buttons.addWidget(self.new_button)
        buttons.addWidget(self.revoke_button)
        left.addLayout(buttons)
        body.addLayout(left, 1)
        right = QVBoxLayout()
        self.qr = QrWidget()
        self.qr.setVisible(False)
        right.addWidget(self.qr, 0, Qt.AlignmentFlag.AlignHCenter)
        self.qr_caption = QLabel(
            "Hand out phone access: the QR code is shown here once, for the phone's camera."
        )
        self.qr_caption.setWordWrap(True)
        self.qr_caption.setMaximumWidth(420)
        self.qr_caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        right.addWidget(self.qr_caption)
        right.addStretch(1)
        body.addLayout(right)
        lay.addLayout(body, 1)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        lay.addWidget(close)
        self.finished.connect(lambda _r: self.forget_link())
        self.resize(1150, 720)
        self.apply_status(web.status)
        self.reload()

    # -- view -----------------------------------------------------------------------------------
    def apply_status(self, status: WebStatus) -> None:
        text, _state = web_text(status)
        lines = [f"State: {status.state} · {text}"]
        if status.url:
            lines.append(f"Address: {status.url}")
        if status.fingerprint:
            lines.append(
                "Certificate SHA-256 (compare with what the phone's browser shows): "
                f"{status.fingerprint}"
            )
        elif status.state == "serving":
            lines.append(
                "Plain HTTP (tls = false in the config): anyone on the network can read it."
            )
        if status.error:
            lines.append(f"Error: {status.error}")
        self.status_label.setText("\n".join(lines))
        self.new_button.setEnabled(status.state == "serving")

    def reload(self) -> None:
        self.tasks.submit(
            self.web.tokens.tokens,
            self._fill,
            lambda exc: self.message.emit(f"Phone access: {exc}"),
            name="web tokens",
        )

    def _fill(self, tokens: list[WebTokenInfo]) -> None:
        self.tokens = tokens
        self.table.setRowCount(len(tokens))
        for i, t in enumerate(tokens):
            state = "active" if t.active else f"revoked by {t.revoked_by} {_local(t.revoked_at)}"
            values = (t.label, t.created_by, _local(t.created_at), _local(t.last_used_at), state)
            for j, v in enumerate(values):
                self.table.setItem(i, j, QTableWidgetItem(v))

    def show_link(self, label: str, link: str) -> None:
        self.link = link
        self.qr.set_text(link)
        self.qr_caption.setText(
            f"Scan with {label}'s camera. Shown once: a closed window forgets it.\n{link}"
        )

    def forget_link(self) -> None:
        self.link = None
        self.qr.set_text(None)
        self.qr_caption.setText(
            "Hand out phone access: the QR code is shown here once, for the phone's camera."
        )

    # -- actions --------------------------------------------------------------------------------
    @Slot()
    def new_access(self) -> None:
        label, ok = QInputDialog.getText(
            self, "New phone access", "Whose phone, or where it is (e.g. Vet, Office PC):"
        )
        if not ok or not label.strip():
            return
        self.issue(label.strip())

    def issue(self, label: str) -> None:
        def with_grant(grant: Grant) -> None:
            self.tasks.submit(
                lambda: self.web.issue_token(grant, label),
                lambda result: self._issued(label, result[1]),
                lambda exc: self.message.emit(f"Phone access not given: {exc}"),
                name="web token issue",
            )

        self.ask_pin("web_access", with_grant)

    def _issued(self, label: str, link: str) -> None:
        self.show_link(label, link)
        self.message.emit(f"Phone access for {label} given: scan the QR code")
        self.reload()

    @Slot()
    def revoke_selected(self) -> None:
        row = self.table.currentRow()
        if not 0 <= row < len(self.tokens):
            self.message.emit("Choose the phone to revoke first")
            return
        self.revoke(self.tokens[row])

    def revoke(self, token: WebTokenInfo) -> None:
        def with_grant(grant: Grant) -> None:
            self.tasks.submit(
                lambda: self.web.revoke_token(grant, token.id),
                lambda _info: self._revoked(token.label),
                lambda exc: self.message.emit(f"Not revoked: {exc}"),
                name="web token revoke",
            )

        self.ask_pin("web_access", with_grant)

    def _revoked(self, label: str) -> None:
        self.message.emit(f"Phone access {label!r} revoked")
        self.reload()
