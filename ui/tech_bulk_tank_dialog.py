"""The bulk-tank check: the meters' sum over a period against the tank the technician reads.

The technician enters the period, the tank volume and any milk kept out of the tank; the dialog
shows the parlour's overall error and, per meter, its estimated error with its standard error
(`milkconsole.technician.calibration.reconcile_bulk_tank`). Meters that drift significantly get a
proposed factor, which a technician can apply: each is saved as a calibration with method
`bulk_tank`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from PySide6.QtCore import QDateTime, Qt, Signal, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QDateTimeEdit,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from milkconsole.config import ParlourConfig
from milkconsole.grants import AccessDenied, Grant
from milkconsole.store.calibrations import CalibrationError, CalibrationRecord
from milkconsole.store.db import Database
from milkconsole.supervision.lock import AccessControl
from milkconsole.technician.calibration import (
    CalibrationReading,
    CalibrationSettings,
    TankReconciliation,
    reconcile_bulk_tank,
    save_calibration,
    tank_outcome,
)
from ui.tables import record_table
from ui.tech_style import ROW_HEIGHT_PX, TECH_QSS, form_label
from ui.workers import TaskRunner

AskPin = Callable[[str, Callable[[Grant], None]], None]


def _dt_edit(at: datetime) -> QDateTimeEdit:
    e = QDateTimeEdit()
    e.setCalendarPopup(True)
    e.setDisplayFormat("dd MMM yyyy HH:mm")
    e.setDateTime(QDateTime.fromSecsSinceEpoch(int(at.timestamp())))
    e.setMinimumWidth(320)
    return e


def _utc(e: QDateTimeEdit) -> datetime:
    return datetime.fromtimestamp(e.dateTime().toSecsSinceEpoch(), UTC)


class BulkTankDialog(QDialog):
    """See the module docstring. `saved` carries the calibration records applied."""

    COLUMNS = (
        "Stall",
        "Meter",
        "Milkings",
        "Sum (L)",
        "Mean (L)",
        "Error",
        "± SE",
        "Drifting",
        "Factor",
        "Proposed",
    )
    saved = Signal(object)  # list[CalibrationRecord]
    compared = Signal(object)  # TankReconciliation

    def __init__(
        self,
        db: Database,
        config: ParlourConfig,
        tasks: TaskRunner,
        *,
        access: AccessControl,
        settings: CalibrationSettings | None = None,
        apply_factor: Callable[[str, float], None] | None = None,
        ask_pin: AskPin | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.db = db
        self.config = config
        self.tasks = tasks
        self.access = access
        self.settings = settings or CalibrationSettings.from_parlour(config)
        self.apply_factor = apply_factor
        self.ask_pin = ask_pin
        self.reconciliation: TankReconciliation | None = None
        self.setWindowTitle("Bulk-tank check")
        self.setStyleSheet(TECH_QSS)
        lay = QVBoxLayout(self)
        title = QLabel("Bulk-tank check: the meters against the tank")
        title.setObjectName("dialogTitle")
        lay.addWidget(title)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        now = clock()
        self.start = _dt_edit(now - timedelta(days=7))
        self.end = _dt_edit(now)
        self.tank = QDoubleSpinBox()
        self.withheld = QDoubleSpinBox()
        for s in (self.tank, self.withheld):
            s.setRange(0.0, 1_000_000.0)
            s.setDecimals(1)
            s.setSuffix(" L")
            s.setMinimumWidth(320)
        form.addRow(form_label("From"), self.start)
        form.addRow(form_label("To"), self.end)
        form.addRow(form_label("Tank received"), self.tank)
        form.addRow(form_label("Other milk kept out (not diverted here)"), self.withheld)
        lay.addLayout(form)
        row = QHBoxLayout()
        self.compare_button = QPushButton("Compare")
        self.compare_button.setObjectName("primary")
        self.compare_button.clicked.connect(self.compare)
        self.apply_button = QPushButton("Apply proposed factors")
        self.apply_button.setEnabled(False)
        self.apply_button.clicked.connect(self.apply)
        row.addWidget(self.compare_button)
        row.addWidget(self.apply_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.summary = QLabel(
            "A meter's error is estimated from its mean yield per milking against the tank's: "
            "it needs many milkings (a week or more) to be worth acting on."
        )
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        self.table = record_table(self.COLUMNS, row_height_px=ROW_HEIGHT_PX)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        lay.addWidget(self.table, 1)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        lay.addWidget(self.message)
        self.resize(1300, 900)

    @Slot()
    def compare(self) -> None:
        db, settings = self.db, self.settings
        start, end = _utc(self.start), _utc(self.end)
        tank, withheld = self.tank.value(), self.withheld.value()
        ids = [m.id for m in self.config.meters]
        self.tasks.submit(
            lambda: reconcile_bulk_tank(
                db,
                start=start,
                end=end,
                tank_l=tank,
                withheld_l=withheld,
                settings=settings,
                meter_ids=ids,
            ),
            self._show,
            lambda exc: self.message.setText(str(exc)),
            name="bulk tank",
        )

    def _show(self, rec: TankReconciliation) -> None:
        self.reconciliation = rec
        err = "—" if rec.parlour_error_pct is None else f"{rec.parlour_error_pct:+.2f} %"
        diverted = (
            f" {rec.diverted_l:,.1f} L of {rec.diverted_sessions} diverted milking(s) left out "
            "(the tank never had it)."
            if rec.diverted_sessions
            else ""
        )
        self.summary.setText(
            f"Meters {rec.meters_sum_l:,.1f} L over {rec.sessions} milkings; tank "
            f"{rec.tank_l:,.1f} L + {rec.withheld_l:,.1f} L kept out: the meters read {err}."
            + diverted
        )
        self.table.setRowCount(len(rec.rows))
        for i, r in enumerate(rec.rows):
            values = (
                str(r.stall),
                r.meter_id,
                str(r.sessions),
                f"{r.sum_l:,.1f}",
                f"{r.mean_l:.2f}",
                "—" if r.error_pct is None else f"{r.error_pct:+.2f} %",
                "—" if r.se_pct is None else f"{r.se_pct:.2f} %",
                "DRIFTING" if r.drifting else "",
                f"{r.old_factor:.4f}",
                "" if r.proposed_factor is None else f"{r.proposed_factor:.4f}",
            )
            for j, v in enumerate(values):
                item = QTableWidgetItem(v)
                if j not in (1, 7):
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                if r.drifting:
                    item.setForeground(QBrush(QColor("#ff8a80")))
                self.table.setItem(i, j, item)
        self.apply_button.setEnabled(any(r.drifting for r in rec.rows))
        self.compared.emit(rec)

    @Slot()
    def apply(self) -> None:
        """Save a bulk-tank calibration for each drifting meter (technician PIN)."""
        try:
            self._apply(self.access.require("bulk_tank"))
        except AccessDenied as exc:
            if self.ask_pin is not None:
                self.ask_pin("bulk_tank", self._apply)
            else:
                self.message.setText(str(exc))

    def _apply(self, grant: Grant) -> None:
        rec = self.reconciliation
        if rec is None:
            return
        db, settings = self.db, self.settings
        rows = [r for r in rec.rows if r.drifting]

        def work() -> list[CalibrationRecord]:
            out = []
            for r in rows:
                o = tank_outcome(r, settings)
                out.append(
                    save_calibration(
                        db,
                        grant,
                        meter_id=r.meter_id,
                        method="bulk_tank",
                        readings=[CalibrationReading(o.measured_sum_l, o.reference_sum_l)],
                        outcome=o,
                        settings=settings,
                        extra={"sessions": r.sessions, "tank_l": rec.tank_l},
                    )
                )
            return out

        def done(records: list[CalibrationRecord]) -> None:
            for r in records:
                if self.apply_factor is not None:
                    self.apply_factor(r.meter_id, r.new_factor)
            self.apply_button.setEnabled(False)
            self.message.setText(
                "; ".join(f"{r.meter_id} {r.old_factor:.4f} → {r.new_factor:.4f}" for r in records)
            )
            self.saved.emit(records)

        def failed(exc: BaseException) -> None:
            if isinstance(exc, CalibrationError | AccessDenied):
                self.message.setText(str(exc))
            else:
                self.message.setText(f"Not saved: {exc!r}")

        self.tasks.submit(work, done, failed, name="bulk tank factors")
