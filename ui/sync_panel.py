"""The sync panel: the Odoo sync's state in full, and the records Odoo refused, to inspect or retry.

Opened from the status bar's sync button. The top says what the last `SyncStatus` said (online
or offline, records waiting, records refused, the oldest waiting, the last pass, the server,
the last error, contract problems). Below, every dead outbox row — Odoo model, record key,
attempts, Odoo's message — and the picked row's payload as JSON. "Retry" puts the picked (or
all) dead rows back to pending (`Outbox.requeue_dead`, safe: the sync looks a key up before it
creates) and asks the worker to sync now (`SyncWorker.retry_now`). Database work runs on the
task runner; the list is re-read when the status's refused count changes and after a retry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from milkconsole.store.db import Database
from milkconsole.store.outbox import Outbox, OutboxItem
from ui.status_bar import sync_text
from ui.tables import record_table
from ui.workers import CoalescedReader, TaskRunner

if TYPE_CHECKING:
    from milkconsole.sync.status import SyncStatus

COLUMNS = ("Id", "Odoo model", "Record", "Attempts", "Queued", "Odoo's message")


def _local(dt: datetime | None) -> str:
    return dt.astimezone().strftime("%d %b %H:%M:%S") if dt else "–"


class SyncPanelDialog(QDialog):
    """Sync state and refused records. `retry_now` is the running worker's (None: no sync)."""

    requeued = Signal(int)  # rows put back to pending by a retry
    dead_listed = Signal(int)  # rows the list shows after a read

    def __init__(
        self,
        db: Database,
        tasks: TaskRunner,
        *,
        retry_now: Callable[[], None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.db = db
        self.tasks = tasks
        self.retry_now = retry_now
        self.status: SyncStatus | None = None
        self.dead: list[OutboxItem] = []
        self._busy = False
        self.setWindowTitle("Odoo sync")
        lay = QVBoxLayout(self)
        self.title = QLabel("Odoo sync: not configured")
        self.title.setObjectName("dialogTitle")
        lay.addWidget(self.title)
        form = QFormLayout()
        self.fields: dict[str, QLabel] = {}
        for key, label in (
            ("waiting", "Records waiting"),
            ("refused", "Refused by Odoo"),
            ("oldest", "Oldest waiting since"),
            ("last_sync", "Last sync"),
            ("server", "Server"),
            ("error", "Last error"),
            ("warnings", "Contract problems"),
        ):
            value = QLabel("–")
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(label, value)
            self.fields[key] = value
        lay.addLayout(form)

        refused = QLabel("Records Odoo refused (they wait here until someone retries them)")
        refused.setObjectName("kpiLabel")
        lay.addWidget(refused)
        split = QSplitter(Qt.Orientation.Vertical)
        self.table = record_table(COLUMNS)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.ExtendedSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._on_selection)
        split.addWidget(self.table)
        self.payload = QPlainTextEdit()
        self.payload.setReadOnly(True)
        self.payload.setPlaceholderText(
            "Pick a record to see what would be sent and why Odoo refused it"
        )
        split.addWidget(self.payload)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        lay.addWidget(split, 1)

        self.message = QLabel("")
        self.message.setObjectName("errorText")
        self.message.setWordWrap(True)
        lay.addWidget(self.message)
        row = QHBoxLayout()
        self.retry_selected_button = QPushButton("Retry selected")
        self.retry_selected_button.clicked.connect(self.retry_selected)
        self.retry_all_button = QPushButton("Retry all refused")
        self.retry_all_button.setObjectName("primary")
        self.retry_all_button.clicked.connect(self.retry_all)
        self.sync_now_button = QPushButton("Sync now")
        self.sync_now_button.clicked.connect(self.sync_now)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        for b in (self.retry_selected_button, self.retry_all_button, self.sync_now_button):
            b.setMinimumHeight(44)
            row.addWidget(b)
        row.addStretch(1)
        row.addWidget(close)
        lay.addLayout(row)

        outbox = Outbox(db)
        self.reader = CoalescedReader(
            outbox.dead, tasks, name="dead outbox rows", min_interval_s=0.25, parent=self
        )
        self.reader.refreshed.connect(self._apply_dead)
        self.reader.failed.connect(lambda msg: self.message.setText(f"Could not read: {msg}"))
        self._update_buttons()
        self.resize(1200, 720)

    # -- inputs -------------------------------------------------------------------------------
    def set_retry_now(self, retry_now: Callable[[], None] | None) -> None:
        self.retry_now = retry_now
        self._update_buttons()

    @Slot(object)
    def apply_status(self, status: SyncStatus) -> None:
        """A new status from the worker; the refused list is re-read when its count moved."""
        previous = self.status
        self.status = status
        text, _state = sync_text(status)
        self.title.setText(f"Odoo sync: {text}")
        f = self.fields
        f["waiting"].setText(str(status.backlog))
        f["refused"].setText(str(status.dead))
        f["oldest"].setText(_local(status.oldest_pending_at) if status.backlog else "–")
        f["last_sync"].setText(_local(status.last_sync_at))
        server = " ".join(x for x in (status.transport, status.server_version) if x)
        f["server"].setText(server or "–")
        f["error"].setText(status.last_error or "–")
        f["warnings"].setText("\n".join(status.warnings) or "–")
        if previous is None or previous.dead != status.dead or status.dead != len(self.dead):
            self.refresh()

    @Slot()
    def refresh(self) -> None:
        if self.isVisible():
            self.reader.request()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.reader.request()

    def _apply_dead(self, items: list[OutboxItem]) -> None:
        picked = {it.id for it in self.selected_items()}
        self.dead = items
        t = self.table
        t.blockSignals(True)
        t.setRowCount(len(items))
        for i, it in enumerate(items):
            values = (
                str(it.id),
                it.model,
                it.record_key,
                str(it.attempts),
                _local(it.created_at),
                (it.last_error or "").splitlines()[0] if it.last_error else "",
            )
            for j, v in enumerate(values):
                item = QTableWidgetItem(v)
                item.setToolTip(it.last_error or "")
                t.setItem(i, j, item)
        t.clearSelection()
        for i, it in enumerate(items):
            if it.id in picked:
                t.selectRow(i)
        t.blockSignals(False)
        self._on_selection()
        self.dead_listed.emit(len(items))

    # -- picking ------------------------------------------------------------------------------
    def selected_items(self) -> list[OutboxItem]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.dead[r] for r in rows if r < len(self.dead)]

    @Slot()
    def _on_selection(self) -> None:
        items = self.selected_items()
        if len(items) == 1:
            it = items[0]
            self.payload.setPlainText(
                f"{it.operation} {it.model} {it.record_key}\n"
                f"Odoo's message: {it.last_error or '–'}\n\n"
                + json.dumps(it.payload, indent=2, sort_keys=True, ensure_ascii=False)
            )
        elif items:
            self.payload.setPlainText(f"{len(items)} records picked")
        else:
            self.payload.clear()
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.retry_selected_button.setEnabled(bool(self.selected_items()) and not self._busy)
        self.retry_all_button.setEnabled(bool(self.dead) and not self._busy)
        self.sync_now_button.setEnabled(self.retry_now is not None)
        self.sync_now_button.setToolTip(
            "" if self.retry_now is not None else "The Odoo sync is not running on this console"
        )

    # -- acting -------------------------------------------------------------------------------
    @Slot()
    def retry_selected(self) -> None:
        self._requeue([it.id for it in self.selected_items()])

    @Slot()
    def retry_all(self) -> None:
        self._requeue([it.id for it in self.dead])

    @Slot()
    def sync_now(self) -> None:
        if self.retry_now is not None:
            self.retry_now()
            self.message.setText("Syncing now…")

    def _requeue(self, ids: list[int]) -> None:
        if not ids or self._busy:
            return
        self._busy = True
        self._update_buttons()
        outbox = Outbox(self.db)

        def done(n: int) -> None:
            self._busy = False
            if self.retry_now is not None:
                self.retry_now()
                self.message.setText(f"{n} record{'s' if n != 1 else ''} sent to Odoo again")
            else:
                self.message.setText(
                    f"{n} record{'s' if n != 1 else ''} queued again; they go when the sync runs"
                )
            self.requeued.emit(n)
            self.reader.request()
            self._update_buttons()

        def failed(exc: BaseException) -> None:
            self._busy = False
            self.message.setText(f"Could not queue them again: {exc}")
            self._update_buttons()

        self.tasks.submit(lambda: outbox.requeue_dead(ids), done, failed, name="requeue dead")
