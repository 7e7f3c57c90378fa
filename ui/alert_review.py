"""The supervisor's alert review: the list of alerts, filters, acknowledge and resolve, her history.

Filters (state, severity, cow number or name, raised between two local dates) narrow the list, which
is read on the task runner, coalesced (`CoalescedReader`), newest first. Picking an alert shows its
details and the cow's conductivity and yield chart with her alert marks (`ui.cow_history`).
Acknowledge (with an optional note) and Resolve (the note is required) ask for a PIN through
`ask_pin(action, then)` — the console's one PIN prompt — and run on the task runner; the core
records the change, its audit row and its outbox row in one transaction
(`milkconsole.supervision.alerts`, `milkconsole.store.alerts`). The widget never reads the
database on the GUI thread and reads only while visible (a change while hidden is read when it is
shown).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from PySide6.QtCore import QDate, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from milkconsole.grants import Grant
from milkconsole.store.alerts import ATTENTION_STATES, AlertFilter, AlertRecord, list_alerts
from milkconsole.store.db import Database
from milkconsole.supervision.alerts import acknowledge_alert, resolve_alert
from ui.cow_history import CowHistoryWidget
from ui.tables import record_table
from ui.theme import DARK, Theme
from ui.workers import CoalescedReader, TaskRunner

AskPin = Callable[[str, Callable[[Grant], None]], None]

STATE_CHOICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Needs attention", ATTENTION_STATES),
    ("Open", ("open",)),
    ("Acknowledged", ("acknowledged",)),
    ("Resolved", ("resolved",)),
    ("All", ()),
)
SEVERITY_CHOICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Any severity", ()),
    ("Critical", ("critical",)),
    ("Warning", ("warning",)),
)
DEFAULT_DAYS = 30
COLUMNS = ("Raised", "Cow", "Alert", "Severity", "State", "Message")


def local_day_start(day: date) -> datetime:
    """Local midnight at the start of `day`, as aware UTC (the store's clock)."""
    return datetime.combine(day, time()).astimezone().astimezone(UTC)


def _local(dt: datetime | None, fmt: str = "%d %b %H:%M") -> str:
    return dt.astimezone().strftime(fmt) if dt else ""


def _qdate(d: date) -> QDate:
    return QDate(d.year, d.month, d.day)


def _pydate(q: QDate) -> date:
    return date(q.year(), q.month(), q.day())


class AlertReviewWidget(QWidget):
    """The Alerts tab. `ask_pin(action, then)` runs `then(grant)` once someone allowed in."""

    alert_changed = Signal(object)  # AlertRecord, after an acknowledge or resolve was stored
    action_failed = Signal(str)
    listed = Signal(int)  # how many rows the list shows after a read

    def __init__(
        self,
        db: Database,
        tasks: TaskRunner,
        *,
        ask_pin: AskPin,
        theme: Theme = DARK,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.db = db
        self.tasks = tasks
        self.ask_pin = ask_pin
        self.theme = theme
        self.alerts: list[AlertRecord] = []
        # The alert in the detail pane; it stays there when a refresh no longer lists it (just
        # resolved, say), so what was done stays in sight.
        self.current: AlertRecord | None = None
        self._busy = False
        self._dirty = True
        self.filter = AlertFilter()
        outer = QVBoxLayout(self)
        outer.setSpacing(8)

        bar = QHBoxLayout()
        self.state_combo = QComboBox()
        for label, states in STATE_CHOICES:
            self.state_combo.addItem(label, states)
        self.severity_combo = QComboBox()
        for label, severities in SEVERITY_CHOICES:
            self.severity_combo.addItem(label, severities)
        self.cow_edit = QLineEdit()
        self.cow_edit.setPlaceholderText("Cow number or name")
        self.cow_edit.setClearButtonEnabled(True)
        # The theme's line edits are sized for the operator's manual-ID pad; a filter is not.
        self.cow_edit.setStyleSheet(
            "QLineEdit { font-size: 14pt; min-height: 30px; padding: 4px; }"
        )
        self.cow_edit.setFixedWidth(240)
        today = date.today()
        self.from_edit = QDateEdit(_qdate(today - timedelta(days=DEFAULT_DAYS)))
        self.to_edit = QDateEdit(_qdate(today))
        for d in (self.from_edit, self.to_edit):
            d.setCalendarPopup(True)
            d.setDisplayFormat("dd MMM yyyy")
        self.count_label = QLabel("")
        self.count_label.setObjectName("kpiNote")
        for w in (
            QLabel("Show"),
            self.state_combo,
            self.severity_combo,
            QLabel("Cow"),
            self.cow_edit,
            QLabel("Raised from"),
            self.from_edit,
            QLabel("to"),
            self.to_edit,
        ):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.count_label)
        outer.addLayout(bar)

        split = QSplitter(Qt.Orientation.Horizontal)
        self.table = record_table(COLUMNS)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._on_selection)
        split.addWidget(self.table)

        side = QWidget()
        sl = QVBoxLayout(side)
        sl.setContentsMargins(8, 0, 0, 0)
        self.detail_title = QLabel("No alert picked")
        self.detail_title.setObjectName("dialogTitle")
        sl.addWidget(self.detail_title)
        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        sl.addWidget(self.details)
        self.note_edit = QPlainTextEdit()
        self.note_edit.setPlaceholderText(
            "Note: what was seen or done (optional to acknowledge, needed to resolve)"
        )
        self.note_edit.setMaximumHeight(90)
        sl.addWidget(self.note_edit)
        buttons = QGridLayout()
        self.ack_button = QPushButton("Acknowledge")
        self.ack_button.setMinimumHeight(48)
        self.ack_button.clicked.connect(self.acknowledge_selected)
        self.resolve_button = QPushButton("Resolve with note")
        self.resolve_button.setObjectName("primary")
        self.resolve_button.setMinimumHeight(48)
        self.resolve_button.clicked.connect(self.resolve_selected)
        buttons.addWidget(self.ack_button, 0, 0)
        buttons.addWidget(self.resolve_button, 0, 1)
        sl.addLayout(buttons)
        self.message = QLabel("")
        self.message.setObjectName("errorText")
        self.message.setWordWrap(True)
        sl.addWidget(self.message)
        self.history = CowHistoryWidget(db, tasks, theme=theme)
        sl.addWidget(self.history, 1)
        split.addWidget(side)
        split.setStretchFactor(0, 5)
        split.setStretchFactor(1, 6)
        split.setSizes([750, 900])
        outer.addWidget(split, 1)

        self.reader = CoalescedReader(
            lambda: list_alerts(self.db, self.filter),
            tasks,
            name="alert list",
            min_interval_s=0.25,
            parent=self,
        )
        self.reader.refreshed.connect(self._apply_list)
        self.reader.failed.connect(
            lambda msg: self.message.setText(f"Could not read alerts: {msg}")
        )
        # Typing a cow number reads once the typing pauses, not on every key.
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(300)
        self._filter_timer.timeout.connect(self.apply_filters)
        self.state_combo.currentIndexChanged.connect(self.apply_filters)
        self.severity_combo.currentIndexChanged.connect(self.apply_filters)
        self.from_edit.dateChanged.connect(self.apply_filters)
        self.to_edit.dateChanged.connect(self.apply_filters)
        self.cow_edit.textChanged.connect(lambda _t: self._filter_timer.start())
        self._update_buttons()

    # -- reading ------------------------------------------------------------------------------
    def build_filter(self) -> AlertFilter:
        """The filter the controls describe (dates are local days, both included)."""
        start = _pydate(self.from_edit.date())
        end = _pydate(self.to_edit.date())
        if end < start:
            start, end = end, start
        return AlertFilter(
            states=tuple(self.state_combo.currentData()),
            severities=tuple(self.severity_combo.currentData()),
            cow=self.cow_edit.text().strip() or None,
            since=local_day_start(start),
            until=local_day_start(end + timedelta(days=1)),
        )

    @Slot()
    def apply_filters(self) -> None:
        self.filter = self.build_filter()
        self.refresh()

    @Slot()
    @Slot(object)
    def refresh(self, *_: object) -> None:
        """Read the list again (now when visible, else when next shown)."""
        if self.isVisible():
            self._dirty = False
            self.reader.request()
        else:
            self._dirty = True

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._dirty:
            # The dates may be from a console started yesterday.
            if self.to_edit.date() < _qdate(date.today()):
                self.to_edit.setDate(_qdate(date.today()))
            self.refresh()

    def stop(self) -> None:
        self.reader.stop()
        self._filter_timer.stop()

    def _apply_list(self, alerts: list[AlertRecord]) -> None:
        self.alerts = alerts
        t = self.table
        t.blockSignals(True)
        t.setRowCount(len(alerts))
        critical = QBrush(QColor(self.theme.state("alert").color))
        white = QBrush(QColor("#ffffff"))
        keep_row: int | None = None
        current = self.current
        for i, a in enumerate(alerts):
            values = (
                _local(a.raised_at),
                a.cow_label or (f"meter {a.meter_id}" if a.meter_id else ""),
                a.title,
                a.severity.upper(),
                a.state,
                a.message,
            )
            for j, v in enumerate(values):
                item = QTableWidgetItem(v)
                item.setData(Qt.ItemDataRole.UserRole, a.id)
                if j == 3 and a.severity == "critical" and a.state != "resolved":
                    item.setBackground(critical)
                    item.setForeground(white)
                t.setItem(i, j, item)
            if current is not None and a.id == current.id:
                keep_row = i
        if keep_row is not None:
            t.selectRow(keep_row)
            self.current = alerts[keep_row]
            self._show_details(self.current)
        else:
            t.clearSelection()
        t.blockSignals(False)
        limit = self.filter.limit
        more = f" (the newest {limit})" if len(alerts) >= limit else ""
        self.count_label.setText(f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}{more}")
        self.listed.emit(len(alerts))

    # -- picking ------------------------------------------------------------------------------
    def selected(self) -> AlertRecord | None:
        """The alert in the detail pane (None: none picked)."""
        return self.current

    def select_alert(self, alert_id: int) -> bool:
        """Pick the alert with this id in the list (False when it is not listed)."""
        for i, a in enumerate(self.alerts):
            if a.id == alert_id:
                self.table.selectRow(i)
                return True
        return False

    @Slot()
    def _on_selection(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self._show_selected(self.alerts[rows[0].row()])

    def _show_selected(self, alert: AlertRecord) -> None:
        previous = self.current
        self.current = alert
        self.message.setText("")
        self._show_details(alert)
        if previous is None or previous.id != alert.id:
            self.note_edit.clear()
        if previous is None or previous.animal_id != alert.animal_id:
            self.history.load(alert.animal_id)
        self._update_buttons()

    def _show_details(self, a: AlertRecord) -> None:
        self.detail_title.setText(
            f"{a.title} — {a.severity.upper()}" + (f" — cow {a.cow_label}" if a.cow_label else "")
        )
        lines = [
            f"Raised {_local(a.raised_at, '%d %b %Y %H:%M')}"
            + (f" on meter {a.meter_id}" if a.meter_id else ""),
            a.message,
        ]
        if a.acknowledged_at:
            lines.append(f"Acknowledged by {a.acknowledged_by} at {_local(a.acknowledged_at)}")
        if a.resolved_at:
            lines.append(f"Resolved by {a.resolved_by} at {_local(a.resolved_at)}")
        if a.note:
            lines.append(f"Note: {a.note}")
        lines.append(f"State: {a.state.upper()}")
        self.details.setText("\n".join(x for x in lines if x))
        self._update_buttons()

    def _update_buttons(self) -> None:
        a = self.selected()
        self.ack_button.setEnabled(a is not None and a.state == "open" and not self._busy)
        self.resolve_button.setEnabled(a is not None and a.state != "resolved" and not self._busy)
        self.note_edit.setEnabled(a is not None and a.state != "resolved")

    # -- acting -------------------------------------------------------------------------------
    @Slot()
    def acknowledge_selected(self) -> None:
        a = self.selected()
        if a is None or self._busy:
            return
        note = self.note_edit.toPlainText()
        db = self.db

        def then(grant: Grant) -> None:
            self._run(lambda: acknowledge_alert(db, grant, a.id, note), "acknowledged")

        self.ask_pin("alert_acknowledge", then)

    @Slot()
    def resolve_selected(self) -> None:
        a = self.selected()
        if a is None or self._busy:
            return
        note = self.note_edit.toPlainText().strip()
        if not note:
            self.message.setText("Write what was done before resolving the alert.")
            self.note_edit.setFocus()
            return
        db = self.db

        def then(grant: Grant) -> None:
            self._run(lambda: resolve_alert(db, grant, a.id, note), "resolved")

        self.ask_pin("alert_resolve", then)

    def _run(self, change: Callable[[], AlertRecord], done_word: str) -> None:
        self._busy = True
        self._update_buttons()
        self.message.setText("Saving…")

        def done(record: AlertRecord) -> None:
            self._busy = False
            self.message.setText(
                f"Alert {done_word} by {record.resolved_by or record.acknowledged_by}."
            )
            self.note_edit.clear()
            self._replace(record)
            self.alert_changed.emit(record)
            self.reader.request()
            self.history.reload()

        def failed(exc: BaseException) -> None:
            self._busy = False
            self._update_buttons()
            text = str(exc)
            self.message.setText(text[:1].upper() + text[1:])
            self.action_failed.emit(text)

        self.tasks.submit(change, done, failed, name=f"alert {done_word}")

    def _replace(self, record: AlertRecord) -> None:
        self.alerts = [record if a.id == record.id else a for a in self.alerts]
        if self.current is not None and record.id == self.current.id:
            self.current = record
            self._show_details(record)
        self._update_buttons()

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        self.history.set_theme(theme)
        self._apply_list(self.alerts)
