"""The meter diagnostics view: every meter's comms, vacuum, pulsation and calibration at a glance.

One row per meter: state, last answer, the last hour's poll success rate, timeouts and CRC
errors, the vacuum (kPa) and pulsation (cycles/min) against their ranges, and the calibration
due date. Below: the open equipment alerts, and the self-test of the selected meter — every
register read once, raw next to decoded.

It is fed the bridge's events (through `milkconsole.technician.diagnostics.DiagnosticsModel`) and
repaints once a second; due dates and alerts are read from the database on the task runner. The
self-test needs a technician or supervisor PIN and runs `run_self_test(meter_id)` on the task
runner: that callable must do its Modbus I/O on the bus poller's thread (see the module docstring of
`milkconsole.technician.diagnostics`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from milkconsole.config import ParlourConfig
from milkconsole.grants import Grant
from milkconsole.store.alerts import AlertRecord, open_equipment_alerts
from milkconsole.store.calibrations import CalibrationStore
from milkconsole.store.db import Database
from milkconsole.technician.calibration import CalibrationSettings, due_status
from milkconsole.technician.diagnostics import (
    DiagnosticsModel,
    EquipmentRanges,
    MeterDiagnostics,
    SelfTestResult,
)
from ui.bridge import EventBridge
from ui.tables import record_table
from ui.tech_style import ROW_HEIGHT_PX, TECH_QSS, bad_text, ok_text
from ui.theme import DARK, Theme
from ui.workers import TaskRunner

log = logging.getLogger(__name__)

AskPin = Callable[[str, Callable[[Grant], None]], None]
DB_REFRESH_S = 15.0
_STATE_WORD = {"ok": "ok", "degraded": "DEGRADED", "offline": "OFFLINE"}
_CONDITION = {
    "vacuum_low": "Vacuum low",
    "vacuum_high": "Vacuum high",
    "pulsation_low": "Pulsation low",
    "pulsation_high": "Pulsation high",
}


def _local(dt: datetime | None, fmt: str = "%H:%M:%S") -> str:
    return dt.astimezone().strftime(fmt) if dt else "never"


def _table(columns: tuple[str, ...]) -> QTableWidget:
    t = record_table(columns, row_height_px=ROW_HEIGHT_PX)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    t.horizontalHeader().setStretchLastSection(True)
    return t


def _set(table: QTableWidget, row: int, col: int, text: str, color: str | None = None) -> None:
    item = table.item(row, col)
    if item is None:
        item = QTableWidgetItem()
        table.setItem(row, col, item)
    if item.text() != text:
        item.setText(text)
    if color is not None:
        item.setForeground(QBrush(QColor(color)))
    else:
        item.setData(Qt.ItemDataRole.ForegroundRole, None)


class DiagnosticsWidget(QWidget):
    """See the module docstring. Connects itself to `bridge` when given."""

    COLUMNS = (
        "Stall",
        "Meter",
        "Profile",
        "State",
        "Last answer",
        "Success 1 h",
        "Polls",
        "Timeouts",
        "CRC",
        "Vacuum kPa",
        "Pulsation c/min",
        "Calibration due",
    )
    C_STATE, C_VACUUM, C_PULSATION, C_DUE = 3, 9, 10, 11
    ALERT_COLUMNS = ("Raised", "Stall / meter", "Condition", "State")
    TEST_COLUMNS = ("Field", "Register", "Type", "Registers (hex)", "Raw", "Decoded", "Note")

    def __init__(
        self,
        config: ParlourConfig,
        db: Database,
        tasks: TaskRunner,
        *,
        bridge: EventBridge | None = None,
        ranges: EquipmentRanges | None = None,
        settings: CalibrationSettings | None = None,
        run_self_test: Callable[[str], SelfTestResult] | None = None,
        ask_pin: AskPin | None = None,
        theme: Theme = DARK,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.config = config
        self.db = db
        self.tasks = tasks
        self.ranges = ranges or EquipmentRanges.from_parlour(config)
        self.settings = settings or CalibrationSettings.from_parlour(config)
        self.run_self_test = run_self_test
        self.ask_pin = ask_pin
        self.theme = theme
        self.now = clock
        self.model = DiagnosticsModel(config, self.ranges)
        self.alerts: list[AlertRecord] = []
        self.self_test_result: SelfTestResult | None = None
        self.db_loads = 0
        self._stall_of = {m.id: m.stall for m in config.meters}
        self.setStyleSheet(TECH_QSS)

        lay = QVBoxLayout(self)
        head = QHBoxLayout()
        title = QLabel("Meter diagnostics")
        title.setObjectName("dialogTitle")
        head.addWidget(title)
        head.addStretch(1)
        r = self.ranges
        self.ranges_label = QLabel(
            f"Ranges: vacuum {r.vacuum_min_kpa:g}–{r.vacuum_max_kpa:g} kPa · pulsation "
            f"{r.pulsation_min_cpm:g}–{r.pulsation_max_cpm:g} cycles/min"
        )
        self.ranges_label.setObjectName("kpiNote")
        head.addWidget(self.ranges_label)
        lay.addLayout(head)

        self.table = _table(self.COLUMNS)
        self.table.setRowCount(len(config.meters))
        self.table.itemSelectionChanged.connect(self._selection_changed)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)

        bottom = QWidget()
        bl = QHBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        left = QVBoxLayout()
        self.alerts_label = QLabel("Open equipment alerts")
        left.addWidget(self.alerts_label)
        self.alerts_table = _table(self.ALERT_COLUMNS)
        left.addWidget(self.alerts_table, 1)
        bl.addLayout(left, 1)
        right = QVBoxLayout()
        row = QHBoxLayout()
        self.self_test_button = QPushButton("Self-test selected meter")
        self.self_test_button.clicked.connect(self.start_self_test)
        row.addWidget(self.self_test_button)
        self.self_test_label = QLabel("")
        self.self_test_label.setWordWrap(True)
        row.addWidget(self.self_test_label, 1)
        right.addLayout(row)
        self.test_table = _table(self.TEST_COLUMNS)
        right.addWidget(self.test_table, 1)
        bl.addLayout(right, 2)
        splitter.addWidget(bottom)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        lay.addWidget(splitter, 1)
        if run_self_test is None:
            self.self_test_button.setEnabled(False)
            self.self_test_button.setToolTip("No self-test is wired to the bus pollers yet")

        if bridge is not None:
            for sig in (
                bridge.reading_taken,
                bridge.meter_poll_failed,
                bridge.meter_state_changed,
                bridge.poll_cycle_completed,
            ):
                sig.connect(self.on_event)
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self._db_timer = QTimer(self)
        self._db_timer.setInterval(int(DB_REFRESH_S * 1000))
        self._db_timer.timeout.connect(self.reload)
        self._db_timer.start()
        self._selection_changed()
        self.reload()
        self.refresh()

    # -- inputs -----------------------------------------------------------------------------------
    @Slot(object)
    def on_event(self, event: object) -> None:
        self.model.on_event(event)

    @Slot()
    def reload(self) -> None:
        """Read due dates and open equipment alerts (task runner)."""
        db, ids = self.db, [m.id for m in self.config.meters]

        def read() -> tuple[dict[str, tuple[datetime | None, float]], list[AlertRecord]]:
            meters = CalibrationStore(db).meters(ids)
            due = {m.meter_id: (m.calibration_due_at, m.calibration_factor) for m in meters}
            return due, open_equipment_alerts(db)

        self.tasks.submit(read, self._loaded, self._load_failed, name="diagnostics")

    def _loaded(
        self, result: tuple[dict[str, tuple[datetime | None, float]], list[AlertRecord]]
    ) -> None:
        due, alerts = result
        self.db_loads += 1
        self.model.set_calibration(due)
        self.alerts = alerts
        self._fill_alerts()
        self.refresh()

    def _load_failed(self, exc: BaseException) -> None:
        self.alerts_label.setText(f"Could not read the database: {exc}")

    # -- painting ---------------------------------------------------------------------------------
    @Slot()
    def refresh(self) -> None:
        now = self.now()
        rows = self.model.rows(now)
        for i, d in enumerate(rows):
            self._paint_row(i, d, now)

    def _paint_row(self, i: int, d: MeterDiagnostics, now: datetime) -> None:
        t = self.table
        bad, ok, warn = bad_text(self.theme), ok_text(self.theme), self.theme.warn_text
        rate = d.comm.success_rate
        state_color = {"ok": ok, "degraded": warn}.get(d.state, bad)
        due = due_status(d.calibration_due_at, now, self.settings.warn_days)
        due_text = {
            "never": "never calibrated",
            "overdue": f"OVERDUE {_local(d.calibration_due_at, '%d %b %y')}",
            "due_soon": f"due {_local(d.calibration_due_at, '%d %b %Y')}",
            "ok": _local(d.calibration_due_at, "%d %b %Y"),
        }[due]

        def ranged(value: float | None, status: str | None, idle: bool) -> tuple[str, str | None]:
            if value is None:
                return "—", None
            mark = {"low": " ▼ LOW", "high": " ▲ HIGH"}.get(status or "", "")
            if idle and self.ranges.only_while_milking:
                return f"{value:.1f} (idle)", self.theme.text_dim
            return f"{value:.1f}{mark}", bad if mark else None

        idle = d.milking is False
        vac_text, vac_color = ranged(d.vacuum_kpa, d.vacuum_status, idle)
        puls_text, puls_color = ranged(d.pulsation_cpm, d.pulsation_status, idle)
        _set(t, i, 0, str(d.stall))
        _set(t, i, 1, d.meter_id)
        _set(t, i, 2, d.profile)
        _set(t, i, self.C_STATE, _STATE_WORD.get(d.state, d.state), state_color)
        _set(t, i, 4, _local(d.last_seen))
        _set(
            t,
            i,
            5,
            "—" if rate is None else f"{rate * 100:.1f} %",
            None if rate is None or rate >= 0.99 else (warn if rate >= 0.9 else bad),
        )
        _set(t, i, 6, str(d.comm.polls))
        _set(t, i, 7, str(d.comm.timeouts), bad if d.comm.timeouts else None)
        _set(t, i, 8, str(d.comm.crc_errors), bad if d.comm.crc_errors else None)
        _set(t, i, self.C_VACUUM, vac_text, vac_color)
        _set(t, i, self.C_PULSATION, puls_text, puls_color)
        _set(
            t,
            i,
            self.C_DUE,
            due_text,
            {"overdue": bad, "never": warn, "due_soon": warn}.get(due),
        )
        item = t.item(i, 0)
        if item is not None:
            item.setData(Qt.ItemDataRole.UserRole, d.meter_id)

    def _fill_alerts(self) -> None:
        t = self.alerts_table
        t.setRowCount(len(self.alerts))
        for i, a in enumerate(self.alerts):
            meter, condition = a.meter_id or "", a.condition or ""
            stall = self._stall_of.get(meter)
            _set(t, i, 0, _local(a.raised_at, "%d %b %H:%M"))
            _set(t, i, 1, f"{stall} / {meter}" if stall else meter)
            _set(t, i, 2, _CONDITION.get(condition, condition), bad_text(self.theme))
            _set(t, i, 3, a.state)
            for j in range(len(self.ALERT_COLUMNS)):
                item = t.item(i, j)
                if item is not None:
                    item.setToolTip(a.message)
        n = len(self.alerts)
        self.alerts_label.setText(
            f"Open equipment alerts: {n}" if n else "Open equipment alerts: none"
        )

    # -- self-test --------------------------------------------------------------------------------
    def selected_meter(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def select_meter(self, meter_id: str) -> None:
        self.refresh()
        for i in range(self.table.rowCount()):
            item = self.table.item(i, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == meter_id:
                self.table.selectRow(i)
                return
        raise KeyError(f"no meter {meter_id!r} in the view")

    def _selection_changed(self) -> None:
        meter = self.selected_meter()
        self.self_test_button.setEnabled(self.run_self_test is not None and meter is not None)
        if meter is not None:
            self.self_test_button.setText(f"Self-test {meter}")

    @Slot()
    def start_self_test(self) -> None:
        """Read every register of the selected meter once (asks for a PIN when locked)."""
        meter = self.selected_meter()
        if meter is None or self.run_self_test is None:
            return
        if self.ask_pin is None:
            self._run_self_test(meter)
        else:
            self.ask_pin("self_test", lambda _grant: self._run_self_test(meter))

    def _run_self_test(self, meter_id: str) -> None:
        run = self.run_self_test
        assert run is not None
        self.self_test_button.setEnabled(False)
        self.self_test_label.setText(f"Testing {meter_id}…")
        self.tasks.submit(
            lambda: run(meter_id), self._self_test_done, self._self_test_failed, name="self-test"
        )

    def _self_test_done(self, result: SelfTestResult) -> None:
        self.self_test_result = result
        self._selection_changed()
        color = ok_text(self.theme) if result.ok else bad_text(self.theme)
        self.self_test_label.setText(
            f"{result.meter_id} (unit {result.unit}, {result.profile_id}) at "
            f"{_local(result.at)}: {result.summary}"
        )
        self.self_test_label.setStyleSheet(f"color: {color};")
        t = self.test_table
        t.setRowCount(len(result.fields))
        for i, f in enumerate(result.fields):
            raw = (
                "—" if f.raw is None else (f"{f.raw:g}" if isinstance(f.raw, float) else str(f.raw))
            )
            value = f.value
            if isinstance(value, float):
                shown = f"{value:.3f} {f.unit}".strip()
            else:
                shown = "—" if value is None else f"{value} {f.unit}".strip()
            _set(t, i, 0, f.name)
            _set(t, i, 1, f"{f.register} {f.address}")
            _set(t, i, 2, f.data_type)
            _set(t, i, 3, f.registers_hex or "—")
            _set(t, i, 4, raw)
            _set(t, i, 5, shown)
            _set(t, i, 6, f.refused or "", bad_text(self.theme) if f.refused else None)

    def _self_test_failed(self, exc: BaseException) -> None:
        self._selection_changed()
        self.self_test_label.setText(f"Self-test failed: {exc}")
        self.self_test_label.setStyleSheet(f"color: {bad_text(self.theme)};")
