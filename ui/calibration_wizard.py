"""The calibration wizard: a technician's guided, recorded meter calibration.

Pages: choose the meter(s) -> choose the method (weighed milk in a bucket, or a water test rig;
density, unit, which milkings count) -> the test milkings each meter records, with the weighed
reference typed beside each (re-attached, reset or interrupted milkings are shown but left out),
the per-reading and mean deviation, the SD of the deviations, pass/fail and the proposed factor ->
optionally a conductivity check against a reference solution -> review the before/after and save.

The wizard only shows and asks: the maths is `milkconsole.technician.calibration.evaluate`, the
record is `save_calibration` (run on the task runner, with the technician's grant checked
inside its transaction). After saving it hands each new factor to `apply_factor` (the runtime's
`set_calibration_factor`) so the pollers use it from their next read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from PySide6.QtCore import QDateTime, Qt, Signal, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from milkconsole.config import ParlourConfig
from milkconsole.grants import AccessDenied, Grant
from milkconsole.meters.events import ReadingTaken, SessionUpdated
from milkconsole.meters.readings import Reading
from milkconsole.store.calibrations import (
    CalibrationError,
    CalibrationRecord,
    CalibrationStore,
    MeterCalibrationState,
)
from milkconsole.store.db import Database
from milkconsole.store.sessions import SessionRecord
from milkconsole.supervision.lock import AccessControl
from milkconsole.technician.calibration import (
    METHODS,
    CalibrationOutcome,
    CalibrationReading,
    CalibrationSettings,
    ConductivityCheck,
    Method,
    ReferenceUnit,
    add_months,
    due_status,
    evaluate,
    excluded_reason,
    reference_litres,
    save_calibration,
)
from ui.bridge import EventBridge
from ui.tables import record_table
from ui.tech_style import ROW_HEIGHT_PX, TECH_QSS, bad_text, form_label, ok_text
from ui.theme import DARK, Theme
from ui.workers import TaskRunner

log = logging.getLogger(__name__)

AskPin = Callable[[str, Callable[[Grant], None]], None]
DEFAULT_LOOKBACK = timedelta(hours=2)


def local_text(dt: datetime | None, fmt: str = "%d %b %H:%M") -> str:
    return dt.astimezone().strftime(fmt) if dt else "—"


def _item(text: str, *, editable: bool = False, align_right: bool = False) -> QTableWidgetItem:
    it = QTableWidgetItem(text)
    flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
    if editable:
        flags |= Qt.ItemFlag.ItemIsEditable
    it.setFlags(flags)
    if align_right:
        it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return it


def _table(columns: tuple[str, ...]) -> QTableWidget:
    # Editable: the readings page takes the weighed references in its cells.
    t = record_table(columns, row_height_px=ROW_HEIGHT_PX, read_only=False)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    t.horizontalHeader().setStretchLastSection(True)
    return t


def _cell(table: QTableWidget, row: int, column: int) -> QTableWidgetItem:
    """The item at (row, column); every cell of these tables is filled when its row is made."""
    item = table.item(row, column)
    if item is None:
        raise LookupError(f"empty cell ({row}, {column})")
    return item


def parse_number(text: str) -> float | None:
    """A typed number ('10,32' or '10.32'); None when blank or not a number."""
    text = text.strip().replace(",", ".")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class MeterPlan:
    """What the review page shows and saving stores for one meter."""

    meter: MeterCalibrationState
    readings: tuple[CalibrationReading, ...]
    outcome: CalibrationOutcome
    conductivity: ConductivityCheck | None
    next_due_at: datetime


class MetersPage(QWizardPage):
    """Page 1: which meters to calibrate."""

    COLUMNS = ("Calibrate", "Stall", "Meter", "Profile", "Factor", "Last calibrated", "Due")

    def __init__(self, wiz: CalibrationWizard) -> None:
        super().__init__()
        self.wiz = wiz
        self.setTitle("1  Choose the meters")
        self.setSubTitle(
            "Tick each meter you will test. You need at least "
            f"{wiz.settings.min_readings} test milkings per meter."
        )
        lay = QVBoxLayout(self)
        self.table = _table(self.COLUMNS)
        self.table.itemChanged.connect(lambda _i: self.completeChanged.emit())
        self.table.cellClicked.connect(self._on_cell_clicked)
        lay.addWidget(self.table)
        self.status = QLabel("Loading meters…")
        lay.addWidget(self.status)
        self.meters: list[MeterCalibrationState] = []
        self.loaded = False

    def initializePage(self) -> None:
        if not self.loaded:
            self.load()

    def load(self) -> None:
        store, ids = CalibrationStore(self.wiz.db), [m.id for m in self.wiz.config.meters]
        self.wiz.tasks.submit(
            lambda: store.meters(ids), self._fill, self.wiz.show_error, name="meters"
        )

    def _fill(self, meters: list[MeterCalibrationState]) -> None:
        self.meters = meters
        now = self.wiz.now()
        self.table.blockSignals(True)
        self.table.setRowCount(len(meters))
        for i, m in enumerate(meters):
            check = QTableWidgetItem("")
            check.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            check.setCheckState(Qt.CheckState.Unchecked)
            self.table.setItem(i, 0, check)
            status = due_status(m.calibration_due_at, now, self.wiz.settings.warn_days)
            due = {
                "never": "never calibrated",
                "overdue": f"OVERDUE since {local_text(m.calibration_due_at, '%d %b %Y')}",
                "due_soon": f"due {local_text(m.calibration_due_at, '%d %b %Y')}",
                "ok": local_text(m.calibration_due_at, "%d %b %Y"),
            }[status]
            values = (
                str(m.stall),
                m.meter_id,
                m.profile,
                f"{m.calibration_factor:.4f}",
                local_text(m.last_calibrated_at, "%d %b %Y"),
                due,
            )
            for j, v in enumerate(values, start=1):
                self.table.setItem(i, j, _item(v))
            if status in ("overdue", "never"):
                _cell(self.table, i, 6).setForeground(QBrush(QColor(self.wiz.theme.warn_text)))
        self.table.blockSignals(False)
        for meter_id in self.wiz.preselect:
            self.set_checked(meter_id)
        self.loaded = True
        self.status.setText(f"{len(meters)} meters")
        self.completeChanged.emit()

    def _on_cell_clicked(self, row: int, column: int) -> None:
        # A touch anywhere on the row ticks it: the box alone is a small target for a finger.
        if column != 0:
            item = _cell(self.table, row, 0)
            on = item.checkState() != Qt.CheckState.Checked
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def set_checked(self, meter_id: str, checked: bool = True) -> None:
        for i, m in enumerate(self.meters):
            if m.meter_id == meter_id:
                state = Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked
                _cell(self.table, i, 0).setCheckState(state)

    def selected(self) -> list[MeterCalibrationState]:
        return [
            m
            for i, m in enumerate(self.meters)
            if _cell(self.table, i, 0).checkState() == Qt.CheckState.Checked
        ]

    def isComplete(self) -> bool:
        return bool(self.selected())


class MethodPage(QWizardPage):
    """Page 2: how the reference is measured."""

    def __init__(self, wiz: CalibrationWizard) -> None:
        super().__init__()
        self.wiz = wiz
        self.setTitle("2  Choose the method")
        self.setSubTitle(
            "Weighed reference: catch each test cow's milk in a bucket and weigh it. "
            "Water rig: run a known volume of water through the meter."
        )
        lay = QVBoxLayout(self)
        self.group = QButtonGroup(self)
        self.weighed = QRadioButton(METHODS["weighed_milk"])
        self.water = QRadioButton(METHODS["water_rig"])
        self.weighed.setChecked(True)
        for b in (self.weighed, self.water):
            self.group.addButton(b)
            lay.addWidget(b)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        self.unit = QComboBox()
        self.unit.addItem("kg (weighed)", "kg")
        self.unit.addItem("L (volume)", "L")
        self.density = QDoubleSpinBox()
        self.density.setDecimals(3)
        self.density.setRange(0.900, 1.200)
        self.density.setSingleStep(0.001)
        self.density.setSuffix(" kg/L")
        self.density_label = form_label("Milk density")
        self.since = QDateTimeEdit()
        self.since.setCalendarPopup(True)
        self.since.setDisplayFormat("dd MMM yyyy HH:mm")
        self.since.setDateTime(QDateTime.fromSecsSinceEpoch(int(wiz.since.timestamp())))
        for w in (self.unit, self.density, self.since):
            w.setMinimumWidth(360)
        form.addRow(form_label("Reference typed in"), self.unit)
        form.addRow(self.density_label, self.density)
        form.addRow(form_label("Test milkings since"), self.since)
        lay.addLayout(form)
        s = wiz.settings
        self.limits = QLabel(
            f"Limits: mean deviation within ±{s.mean_limit_pct:g} %, standard deviation at most "
            f"{s.sd_limit_pct:g} %, at least {s.min_readings} readings per meter. "
            f"Next check due {s.interval_months} months after a pass."
        )
        self.limits.setWordWrap(True)
        lay.addWidget(self.limits)
        lay.addStretch(1)
        self.group.buttonToggled.connect(lambda _b, _on: self._method_changed())
        self._method_changed()

    def _method_changed(self) -> None:
        water = self.water.isChecked()
        s = self.wiz.settings
        self.density_label.setText("Water density" if water else "Milk density")
        self.density.setValue(s.water_density_kg_l if water else s.milk_density_kg_l)
        self.unit.setCurrentIndex(1 if water else 0)

    def method(self) -> Method:
        return "water_rig" if self.water.isChecked() else "weighed_milk"

    def reference_unit(self) -> ReferenceUnit:
        return "L" if self.unit.currentData() == "L" else "kg"

    def effective_settings(self) -> CalibrationSettings:
        """The settings with the density typed here."""
        density = round(self.density.value(), 3)
        if self.method() == "water_rig":
            return replace(self.wiz.settings, water_density_kg_l=density)
        return replace(self.wiz.settings, milk_density_kg_l=density)

    def since_utc(self) -> datetime:
        return datetime.fromtimestamp(self.since.dateTime().toSecsSinceEpoch(), UTC)

    def set_since(self, at: datetime) -> None:
        self.since.setDateTime(QDateTime.fromSecsSinceEpoch(int(at.timestamp())))


class ReadingsPage(QWizardPage):
    """Page 3: each test milking, its reference, deviations and the per-meter verdict."""

    COLUMNS = (
        "Use",
        "Stall",
        "Meter",
        "Ended",
        "Meter (L)",
        "Reference",
        "Reference (L)",
        "Deviation",
        "Note",
    )
    C_USE, C_REF, C_REF_L, C_DEV, C_NOTE = 0, 5, 6, 7, 8
    SUMMARY = ("Meter", "Valid", "Mean dev.", "SD", "As found", "Factor now", "Proposed", "Verdict")

    def __init__(self, wiz: CalibrationWizard) -> None:
        super().__init__()
        self.wiz = wiz
        self.setTitle("3  Test milkings and references")
        lay = QVBoxLayout(self)
        self.intro = QLabel("")
        self.intro.setWordWrap(True)
        lay.addWidget(self.intro)
        row = QHBoxLayout()
        self.live = QLabel("")
        self.live.setObjectName("kpiNote")
        row.addWidget(self.live, 1)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.reload)
        row.addWidget(self.refresh_button)
        lay.addLayout(row)
        self.table = _table(self.COLUMNS)
        self.table.itemChanged.connect(self._on_item_changed)
        lay.addWidget(self.table, 3)
        self.summary = _table(self.SUMMARY)
        self.summary.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.summary.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        lay.addWidget(self.summary, 1)
        self.milkings: list[SessionRecord] = []
        self.references: dict[str, float] = {}
        self.use: dict[str, bool] = {}
        self.outcomes: dict[str, CalibrationOutcome] = {}
        self.readings: dict[str, tuple[CalibrationReading, ...]] = {}
        self.loads = 0
        self._filling = False

    def initializePage(self) -> None:
        unit = self.wiz.method_page.reference_unit()
        header = self.table.horizontalHeaderItem(self.C_REF)
        if header is not None:
            header.setText(f"Reference ({unit})")
        names = ", ".join(m.meter_id for m in self.wiz.meters())
        self.intro.setText(
            f"Milkings on {names} since {local_text(self.wiz.method_page.since_utc())}. "
            f"Type the weighed reference of each ({unit}). Re-attached, reset or interrupted "
            "milkings are shown but left out. New milkings appear as they are recorded."
        )
        self.reload()

    @Slot()
    def reload(self) -> None:
        store = CalibrationStore(self.wiz.db)
        ids = [m.meter_id for m in self.wiz.meters()]
        since = self.wiz.method_page.since_utc()
        self.wiz.tasks.submit(
            lambda: store.test_milkings(ids, since), self._fill, self.wiz.show_error, name="tests"
        )

    def _fill(self, milkings: list[SessionRecord]) -> None:
        self.loads += 1
        self.milkings = milkings
        self._filling = True
        self.table.setRowCount(len(milkings))
        for i, t in enumerate(milkings):
            excluded = excluded_reason(t)
            use = QTableWidgetItem("")
            if excluded is None:
                use.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                checked = self.use.setdefault(t.key, True)
                use.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
            else:
                use.setFlags(Qt.ItemFlag.NoItemFlags)
            use.setData(Qt.ItemDataRole.UserRole, t.key)
            self.table.setItem(i, self.C_USE, use)
            ref = self.references.get(t.key)
            values = (
                str(t.stall),
                t.meter_id,
                local_text(t.ended_at, "%H:%M:%S"),
                f"{t.yield_l:.2f}",
            )
            for j, v in enumerate(values, start=1):
                self.table.setItem(i, j, _item(v, align_right=j == 4))
            ref_text = "" if ref is None else f"{ref:g}"
            self.table.setItem(
                i, self.C_REF, _item(ref_text, editable=excluded is None, align_right=True)
            )
            for j in (self.C_REF_L, self.C_DEV):
                self.table.setItem(i, j, _item("", align_right=True))
            self.table.setItem(i, self.C_NOTE, _item(excluded or ""))
            if excluded is not None:
                dim = QBrush(QColor(self.wiz.theme.text_dim))
                for j in range(1, len(self.COLUMNS)):
                    _cell(self.table, i, j).setForeground(dim)
        self._filling = False
        self.recompute()

    def _row_of(self, session_key: str) -> int:
        for i in range(self.table.rowCount()):
            if _cell(self.table, i, self.C_USE).data(Qt.ItemDataRole.UserRole) == session_key:
                return i
        raise KeyError(f"no test milking {session_key!r} on the page")

    def set_reference(self, session_key: str, value: float | str) -> None:
        """Type a reference for one milking (as the technician would)."""
        _cell(self.table, self._row_of(session_key), self.C_REF).setText(str(value))

    def set_used(self, session_key: str, used: bool) -> None:
        state = Qt.CheckState.Checked if used else Qt.CheckState.Unchecked
        _cell(self.table, self._row_of(session_key), self.C_USE).setCheckState(state)

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling:
            return
        key = _cell(self.table, item.row(), self.C_USE).data(Qt.ItemDataRole.UserRole)
        if item.column() == self.C_USE:
            self.use[key] = item.checkState() == Qt.CheckState.Checked
        elif item.column() == self.C_REF:
            value = parse_number(item.text())
            if value is None:
                self.references.pop(key, None)
            else:
                self.references[key] = value
        else:
            return
        self.recompute()

    def recompute(self) -> None:
        """Deviations per row, and per meter the statistics, verdict and proposed factor."""
        wiz = self.wiz
        settings = wiz.method_page.effective_settings()
        method = wiz.method_page.method()
        unit = wiz.method_page.reference_unit()
        by_meter: dict[str, list[CalibrationReading]] = {m.meter_id: [] for m in wiz.meters()}
        self._filling = True
        for i, t in enumerate(self.milkings):
            note = excluded_reason(t)
            ref = self.references.get(t.key)
            ref_l_text = dev_text = ""
            if note is None and ref is not None:
                try:
                    ref_l = reference_litres(ref, unit, method, settings)
                except CalibrationError as exc:
                    note = str(exc)
                else:
                    reading = CalibrationReading(t.yield_l, ref_l, t.key, ref, unit, t.ended_at)
                    ref_l_text = f"{ref_l:.2f}"
                    dev_text = f"{reading.deviation_pct:+.2f} %"
                    if self.use.get(t.key, True):
                        by_meter[t.meter_id].append(reading)
                    else:
                        note = "not used"
            elif note is None:
                note = "type the reference"
            _cell(self.table, i, self.C_REF_L).setText(ref_l_text)
            _cell(self.table, i, self.C_DEV).setText(dev_text)
            _cell(self.table, i, self.C_NOTE).setText(note or "")
        self._filling = False
        self.outcomes.clear()
        self.readings.clear()
        self.summary.setRowCount(len(by_meter))
        for r, meter in enumerate(wiz.meters()):
            rs = tuple(by_meter[meter.meter_id])
            out = evaluate(rs, meter.calibration_factor, settings)
            self.outcomes[meter.meter_id] = out
            self.readings[meter.meter_id] = rs
            self._summary_row(r, meter, out, settings)
        self.completeChanged.emit()

    def _summary_row(
        self,
        r: int,
        meter: MeterCalibrationState,
        out: CalibrationOutcome,
        settings: CalibrationSettings,
    ) -> None:
        theme = self.wiz.theme

        def pct(v: float | None, signed: bool = True) -> str:
            return "—" if v is None else (f"{v:+.2f} %" if signed else f"{v:.2f} %")

        ok, bad = ok_text(theme), bad_text(theme)
        if not out.enough:
            found, verdict = "—", f"needs {settings.min_readings - out.n} more"
            found_color = verdict_color = theme.warn_text
        else:
            found = "PASS" if out.as_found_passed else "FAIL"
            verdict = {
                "pass": "PASS — fine-tune factor",
                "adjusted": "ADJUST factor",
                "fail": "FAIL — service meter",
            }[out.result or "fail"]
            found_color = ok if out.as_found_passed else bad
            verdict_color = ok if out.result != "fail" else bad
        values = (
            meter.meter_id,
            str(out.n),
            pct(out.mean_deviation_pct),
            pct(out.sd_deviation_pct, signed=False),
            found,
            f"{meter.calibration_factor:.4f}",
            "—" if out.proposed_factor is None else f"{out.proposed_factor:.4f}",
            verdict,
        )
        for j, v in enumerate(values):
            self.summary.setItem(r, j, _item(v, align_right=0 < j < 7))
        _cell(self.summary, r, 4).setForeground(QBrush(QColor(found_color)))
        _cell(self.summary, r, 7).setForeground(QBrush(QColor(verdict_color)))
        if out.enough:
            if not out.mean_ok:
                _cell(self.summary, r, 2).setForeground(QBrush(QColor(bad)))
            if not out.sd_ok:
                _cell(self.summary, r, 3).setForeground(QBrush(QColor(bad)))

    def on_session_updated(self, event: SessionUpdated) -> None:
        s = event.session
        if s.meter_id in {m.meter_id for m in self.wiz.meters()}:
            self.live.setText(f"Milking now on {s.meter_id}: {s.yield_l:.1f} L")

    def isComplete(self) -> bool:
        meters = self.wiz.meters()
        return bool(meters) and all(
            (o := self.outcomes.get(m.meter_id)) is not None and o.enough for m in meters
        )


class ConductivityPage(QWizardPage):
    """Page 4 (optional): each meter's raw reading of a reference solution gives an offset."""

    COLUMNS = ("Meter", "Reference solution (mS/cm)", "Meter reads (mS/cm)", "Offset")

    def __init__(self, wiz: CalibrationWizard) -> None:
        super().__init__()
        self.wiz = wiz
        self.setTitle("4  Conductivity (optional)")
        self.setSubTitle(
            "Put the meter's conductivity cell in a reference solution and type the solution's "
            "value and what the meter reads. Leave it off to keep the conductivity offset."
        )
        lay = QVBoxLayout(self)
        self.enabled = QCheckBox("Check conductivity against a reference solution")
        self.enabled.toggled.connect(self._toggled)
        lay.addWidget(self.enabled)
        self.table = _table(self.COLUMNS)
        self.table.itemChanged.connect(lambda _i: self._update())
        lay.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.read_button = QPushButton("Fill in the meters' last readings")
        self.read_button.clicked.connect(self.fill_last_readings)
        row.addWidget(self.read_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.message = QLabel("")
        self.message.setObjectName("errorText")
        lay.addWidget(self.message)
        self._filling = False
        self._toggled(False)

    def initializePage(self) -> None:
        typed = {
            _cell(self.table, i, 0).text(): (
                _cell(self.table, i, 1).text(),
                _cell(self.table, i, 2).text(),
            )
            for i in range(self.table.rowCount())
        }
        self._filling = True
        meters = self.wiz.meters()
        self.table.setRowCount(len(meters))
        for i, m in enumerate(meters):
            ref, got = typed.get(m.meter_id, ("", ""))
            self.table.setItem(i, 0, _item(m.meter_id))
            self.table.setItem(i, 1, _item(ref, editable=True, align_right=True))
            self.table.setItem(i, 2, _item(got, editable=True, align_right=True))
            self.table.setItem(i, 3, _item("", align_right=True))
        self._filling = False
        self._update()

    def _toggled(self, on: bool) -> None:
        self.table.setEnabled(on)
        self.read_button.setEnabled(on)
        self._update()

    @Slot()
    def fill_last_readings(self) -> None:
        for i in range(self.table.rowCount()):
            r = self.wiz.last_readings.get(_cell(self.table, i, 0).text())
            if r is not None and r.conductivity_ms_cm is not None:
                _cell(self.table, i, 2).setText(f"{r.conductivity_ms_cm:.2f}")

    def set_values(self, meter_id: str, reference: float, reading: float) -> None:
        for i in range(self.table.rowCount()):
            if _cell(self.table, i, 0).text() == meter_id:
                _cell(self.table, i, 1).setText(f"{reference:g}")
                _cell(self.table, i, 2).setText(f"{reading:g}")

    def checks(self) -> tuple[dict[str, ConductivityCheck], list[str]]:
        """Valid checks by meter, and the problems of rows half filled or wrong."""
        out: dict[str, ConductivityCheck] = {}
        problems: list[str] = []
        if not self.enabled.isChecked():
            return out, problems
        for i in range(self.table.rowCount()):
            meter = _cell(self.table, i, 0).text()
            ref = parse_number(_cell(self.table, i, 1).text())
            got = parse_number(_cell(self.table, i, 2).text())
            if ref is None and got is None:
                continue
            if ref is None or got is None:
                problems.append(f"{meter}: type both values (or neither)")
                continue
            try:
                out[meter] = ConductivityCheck(ref, got)
            except CalibrationError as exc:
                problems.append(f"{meter}: {exc}")
        return out, problems

    def _update(self) -> None:
        if self._filling:
            return
        checks, problems = self.checks()
        self._filling = True
        for i in range(self.table.rowCount()):
            c = checks.get(_cell(self.table, i, 0).text())
            _cell(self.table, i, 3).setText(f"{c.offset_ms_cm:+.2f}" if c else "")
        self._filling = False
        self.message.setText("\n".join(problems))
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return not self.checks()[1]


class ReviewPage(QWizardPage):
    """Page 5: before/after for each meter, then save (the technician's confirmation)."""

    COLUMNS = (
        "Meter",
        "Readings",
        "Mean dev.",
        "SD",
        "As found",
        "Old factor",
        "New factor",
        "Change",
        "Result",
        "EC offset",
        "Next due",
    )

    def __init__(self, wiz: CalibrationWizard) -> None:
        super().__init__()
        self.wiz = wiz
        self.setTitle("5  Review and save")
        self.setSubTitle(
            "Check the before and after. Saving records the calibration under your name and "
            "the pollers use the new factors from their next reading."
        )
        lay = QVBoxLayout(self)
        self.table = _table(self.COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        lay.addWidget(self.table, 1)
        self.problems = QLabel("")
        self.problems.setWordWrap(True)
        self.problems.setObjectName("errorText")
        lay.addWidget(self.problems)
        row = QHBoxLayout()
        self.save_button = QPushButton("Save calibration")
        self.save_button.setObjectName("primary")
        self.save_button.clicked.connect(self.save)
        row.addWidget(self.save_button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        row.addWidget(self.status, 1)
        lay.addLayout(row)
        self.plans: list[MeterPlan] = []
        self.records: list[CalibrationRecord] | None = None
        self.errors: list[str] = []
        self._saving = False

    def initializePage(self) -> None:
        self.records = None
        self.errors = []
        self.plans = self.wiz.plans()
        self.status.setText("")
        self.save_button.setEnabled(True)
        theme = self.wiz.theme
        self.table.setRowCount(len(self.plans))
        problems = []
        for r, p in enumerate(self.plans):
            o = p.outcome
            change = (o.new_factor / o.old_factor - 1.0) * 100.0
            values = (
                p.meter.meter_id,
                str(o.n),
                f"{o.mean_deviation_pct:+.2f} %" if o.mean_deviation_pct is not None else "—",
                f"{o.sd_deviation_pct:.2f} %" if o.sd_deviation_pct is not None else "—",
                "PASS" if o.as_found_passed else "FAIL",
                f"{o.old_factor:.4f}",
                f"{o.new_factor:.4f}",
                f"{change:+.2f} %",
                (o.result or "—").upper(),
                f"{p.conductivity.offset_ms_cm:+.2f}" if p.conductivity else "unchanged",
                local_text(p.next_due_at, "%d %b %Y"),
            )
            for j, v in enumerate(values):
                self.table.setItem(r, j, _item(v, align_right=0 < j < 8))
            color = ok_text(theme) if o.result != "fail" else bad_text(theme)
            _cell(self.table, r, 8).setForeground(QBrush(QColor(color)))
            found = ok_text(theme) if o.as_found_passed else bad_text(theme)
            _cell(self.table, r, 4).setForeground(QBrush(QColor(found)))
            problems += [f"{p.meter.meter_id}: {x}" for x in o.problems]
        self.problems.setText("\n".join(problems))

    @Slot()
    def save(self) -> None:
        """Save every meter's calibration with the technician's grant (asked for if expired)."""
        if self._saving or self.records is not None:
            return
        try:
            grant = self.wiz.access.require("calibrate")
        except AccessDenied as exc:
            if self.wiz.ask_pin is None:
                self.status.setText(str(exc))
                return
            self.wiz.ask_pin("calibrate", self._save_as)
            return
        self._save_as(grant)

    def _save_as(self, grant: Grant) -> None:
        self._saving = True
        self.save_button.setEnabled(False)
        self.status.setText("Saving…")
        db, plans = self.wiz.db, list(self.plans)
        method, settings = self.wiz.method_page.method(), self.wiz.method_page.effective_settings()
        now = self.wiz.now()

        def work() -> tuple[list[CalibrationRecord], list[str]]:
            saved, errors = [], []
            for p in plans:
                try:
                    saved.append(
                        save_calibration(
                            db,
                            grant,
                            meter_id=p.meter.meter_id,
                            method=method,
                            readings=p.readings,
                            outcome=p.outcome,
                            settings=settings,
                            conductivity=p.conductivity,
                            now=now,
                        )
                    )
                except (CalibrationError, AccessDenied) as exc:
                    errors.append(f"{p.meter.meter_id}: {exc}")
            return saved, errors

        self.wiz.tasks.submit(work, self._saved, self._failed, name="save calibration")

    def _saved(self, result: tuple[list[CalibrationRecord], list[str]]) -> None:
        records, errors = result
        self._saving = False
        self.records, self.errors = records, errors
        for rec in records:
            if self.wiz.apply_factor is not None:
                self.wiz.apply_factor(rec.meter_id, rec.new_factor)
        lines = [
            f"Saved {rec.meter_id}: factor {rec.old_factor:.4f} → {rec.new_factor:.4f} "
            f"({rec.result}) by {rec.performed_by} at {local_text(rec.performed_at, '%H:%M')}"
            for rec in records
        ]
        self.status.setText("\n".join(lines + [f"NOT saved {e}" for e in errors]))
        self.save_button.setEnabled(bool(errors) and not records)
        if errors and not records:
            self.records = None
        else:
            # Saved: nothing is left to cancel, and saving twice is refused anyway.
            self.save_button.setVisible(False)
            self.wiz.setOption(QWizard.WizardOption.NoCancelButtonOnLastPage, True)
        self.completeChanged.emit()
        if records:
            self.wiz.saved.emit(records)

    def _failed(self, exc: BaseException) -> None:
        self._saving = False
        self.save_button.setEnabled(True)
        self.status.setText(f"Not saved: {exc}")

    def isComplete(self) -> bool:
        return self.records is not None


class CalibrationWizard(QWizard):
    """The five-page calibration wizard (see the module docstring). Open it with a technician's
    grant already checked; saving checks it again."""

    saved = Signal(object)  # list[CalibrationRecord]

    def __init__(
        self,
        db: Database,
        config: ParlourConfig,
        tasks: TaskRunner,
        *,
        access: AccessControl,
        settings: CalibrationSettings | None = None,
        bridge: EventBridge | None = None,
        apply_factor: Callable[[str, float], None] | None = None,
        ask_pin: AskPin | None = None,
        theme: Theme = DARK,
        since: datetime | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        preselect: Collection[str] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        # Meters ticked when the list loads (the meter comparison's flagged ones).
        self.preselect = tuple(preselect)
        self.db = db
        self.config = config
        self.tasks = tasks
        self.access = access
        self.settings = settings or CalibrationSettings.from_parlour(config)
        self.apply_factor = apply_factor
        self.ask_pin = ask_pin
        self.theme = theme
        self.now = clock
        self.since = since or clock() - DEFAULT_LOOKBACK
        self.last_readings: dict[str, Reading] = {}
        self.setWindowTitle(f"Calibrate meters — {config.name}")
        self.setStyleSheet(TECH_QSS)
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, False)
        self.setOption(QWizard.WizardOption.HaveHelpButton, False)
        self.meters_page = MetersPage(self)
        self.method_page = MethodPage(self)
        self.readings_page = ReadingsPage(self)
        self.conductivity_page = ConductivityPage(self)
        self.review_page = ReviewPage(self)
        for page in (
            self.meters_page,
            self.method_page,
            self.readings_page,
            self.conductivity_page,
            self.review_page,
        ):
            self.addPage(page)
        self.setButtonText(QWizard.WizardButton.FinishButton, "Close")
        if bridge is not None:
            bridge.sessions_committed.connect(self._on_committed)
            bridge.session_updated.connect(self.readings_page.on_session_updated)
            bridge.reading_taken.connect(self._on_reading)
        self.resize(1400, 900)

    def meters(self) -> list[MeterCalibrationState]:
        return self.meters_page.selected()

    def plans(self) -> list[MeterPlan]:
        checks, _ = self.conductivity_page.checks()
        out = []
        now = self.now()
        for m in self.meters():
            o = self.readings_page.outcomes[m.meter_id]
            due = add_months(now, self.settings.interval_months) if o.result != "fail" else now
            out.append(
                MeterPlan(
                    m, self.readings_page.readings[m.meter_id], o, checks.get(m.meter_id), due
                )
            )
        return out

    def show_error(self, exc: BaseException) -> None:
        log.error("calibration wizard: %s", exc)
        page = self.currentPage()
        if page is not None:
            page.setSubTitle(f"Error: {exc}")

    @Slot(object)
    def _on_committed(self, events: list[object]) -> None:
        # A finished session of a meter under test: show it as a new test milking.
        if self.currentPage() is not self.readings_page:
            return
        ids = {m.meter_id for m in self.meters()}
        for e in events:
            snap = getattr(e, "session", None)
            if snap is not None and snap.meter_id in ids and snap.state != "in_progress":
                self.readings_page.reload()
                return

    @Slot(object)
    def _on_reading(self, event: ReadingTaken) -> None:
        self.last_readings[event.reading.meter_id] = event.reading
