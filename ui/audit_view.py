"""The audit log window: a supervisor reads who changed what, when, and exports it as CSV.

Read-only by construction: the table cannot be edited and nothing here writes to the log except the
record of an export (which `milkconsole.reports.audit.export_audit_csv` makes itself). Every
read checks the supervisor's grant again inside its transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDateTime, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateTimeEdit,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from milkconsole.grants import AccessDenied, Grant
from milkconsole.reports.audit import export_audit_csv
from milkconsole.store.audit import AuditFilter, AuditRecord, audit_vocabulary, query_audit
from milkconsole.store.db import Database
from milkconsole.supervision.lock import AccessControl
from ui.tables import record_table
from ui.tech_style import ROW_HEIGHT_PX, TECH_QSS
from ui.workers import TaskRunner

AskPin = Callable[[str, Callable[[Grant], None]], None]
ANY = "(any)"


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return json.dumps(value, ensure_ascii=False)


class AuditLogDialog(QDialog):
    """See the module docstring. `loaded` fires after each (re)load with the row count."""

    COLUMNS = ("Time", "Who", "Role", "Action", "Target", "Before", "After")
    loaded = Signal(int)
    exported = Signal(int, str)

    def __init__(
        self,
        db: Database,
        tasks: TaskRunner,
        *,
        access: AccessControl,
        ask_pin: AskPin | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.db = db
        self.tasks = tasks
        self.access = access
        self.ask_pin = ask_pin
        self.records: list[AuditRecord] = []
        self.setWindowTitle("Audit log")
        self.setStyleSheet(TECH_QSS)
        lay = QVBoxLayout(self)
        title = QLabel("Audit log — every change made at the console (read only)")
        title.setObjectName("dialogTitle")
        lay.addWidget(title)

        filters = QHBoxLayout()
        self.since = QDateTimeEdit()
        self.since.setCalendarPopup(True)
        self.since.setDisplayFormat("dd MMM yyyy HH:mm")
        start = clock() - timedelta(days=30)
        self.since.setDateTime(QDateTime.fromSecsSinceEpoch(int(start.timestamp())))
        self.actor = QComboBox()
        self.action = QComboBox()
        for combo in (self.actor, self.action):
            combo.addItem(ANY)
            combo.setMinimumWidth(200)
        self.target = QLineEdit()
        self.target.setPlaceholderText("target starts with… (meter:M01)")
        self.target.setStyleSheet("font-size: 16pt; min-height: 40px;")
        self.refresh_button = QPushButton("Show")
        self.refresh_button.clicked.connect(self.reload)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(self._choose_export)
        for label, w in (("Since", self.since), ("Who", self.actor), ("Action", self.action)):
            filters.addWidget(QLabel(label))
            filters.addWidget(w)
        filters.addWidget(self.target, 1)
        filters.addWidget(self.refresh_button)
        filters.addWidget(self.export_button)
        lay.addLayout(filters)

        self.table = record_table(self.COLUMNS, row_height_px=ROW_HEIGHT_PX)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        lay.addWidget(self.table, 1)
        self.status = QLabel("")
        lay.addWidget(self.status)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        lay.addWidget(close)
        self.resize(1500, 850)
        self.reload()

    def filter(self) -> AuditFilter:
        since = datetime.fromtimestamp(self.since.dateTime().toSecsSinceEpoch(), UTC)
        actor = self.actor.currentText()
        action = self.action.currentText()
        return AuditFilter(
            since=since,
            actor=None if actor == ANY else actor,
            action=None if action == ANY else action,
            target=self.target.text().strip() or None,
        )

    def _with_grant(self, then: Callable[[Grant], None]) -> None:
        try:
            then(self.access.require("view_audit"))
        except AccessDenied as exc:
            if self.ask_pin is not None:
                self.ask_pin("view_audit", then)
            else:
                self.status.setText(str(exc))

    @Slot()
    def reload(self) -> None:
        self._with_grant(self._load)

    def _load(self, grant: Grant) -> None:
        db, f = self.db, self.filter()

        def read() -> tuple[list[AuditRecord], list[str], list[str]]:
            actions, actors = audit_vocabulary(db, grant)
            return query_audit(db, grant, f), actions, actors

        self.tasks.submit(read, self._show, self._failed, name="audit log")

    def _show(self, result: tuple[list[AuditRecord], list[str], list[str]]) -> None:
        records, actions, actors = result
        for combo, names in ((self.actor, actors), (self.action, actions)):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems([ANY, *names])
            combo.setCurrentText(current if current in names else ANY)
            combo.blockSignals(False)
        self.records = records
        self.table.setRowCount(len(records))
        for i, r in enumerate(records):
            values = (
                r.at.astimezone().strftime("%d %b %Y %H:%M:%S"),
                r.actor,
                r.role or "",
                r.action,
                r.target,
                _json_text(r.before),
                _json_text(r.after),
            )
            for j, v in enumerate(values):
                item = QTableWidgetItem(v)
                item.setToolTip(v)
                self.table.setItem(i, j, item)
        self.status.setText(f"{len(records)} entries, newest first")
        self.loaded.emit(len(records))

    def _failed(self, exc: BaseException) -> None:
        self.status.setText(f"Not shown: {exc}")

    @Slot()
    def _choose_export(self) -> None:
        name, _ = QFileDialog.getSaveFileName(
            self, "Export audit log", "milkconsole-audit.csv", "CSV (*.csv)"
        )
        if name:
            self.export_to(Path(name))

    def export_to(self, path: Path) -> None:
        """Write the rows the filters select to `path` as CSV (task runner)."""

        def run(grant: Grant) -> None:
            db, f = self.db, self.filter()

            def write() -> int:
                with path.open("w", encoding="utf-8", newline="") as out:
                    return export_audit_csv(db, grant, out, f)

            self.tasks.submit(write, lambda n: self._exported(n, path), self._failed, name="export")

        self._with_grant(run)

    def _exported(self, n: int, path: Path) -> None:
        self.status.setText(f"Exported {n} entries to {path}")
        self.exported.emit(n, str(path))
