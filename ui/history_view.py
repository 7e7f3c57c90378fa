"""The History tab: reports, a cow's lactation trend, the herd day by day and the meters compared.

Every figure is read on the task runner (`milkconsole.reports`); a result that arrives after a
newer request is dropped. The report page shows the same HTML the PDF prints
(`ui.report_html`) and saves it as PDF (`ui.report_pdf`) or CSV (`milkconsole.reports`). The
cow page finds a cow by number, name or tag (`open_cow` opens one from anywhere, e.g. a herd
list). A flagged meter on the meters page offers the calibration wizard (`calibrate_requested`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDate, Qt, Signal, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from milkconsole.clock import local_zone
from milkconsole.reports import cow, day, herd, meters, milking, periods
from milkconsole.reports.tables import Report, write_report_csv
from milkconsole.store import history
from milkconsole.store.db import Database
from ui.cow_history import CowTrendWidget
from ui.herd_trend import HerdTrendWidget
from ui.report_html import report_html
from ui.tables import record_table
from ui.theme import DARK, Theme
from ui.workers import TaskRunner

log = logging.getLogger(__name__)

HERD_DAYS = 90
METER_DAYS = 7


def _qdate(d: date) -> QDate:
    return QDate(d.year, d.month, d.day)


def _date(q: QDate) -> date:
    return date(q.year(), q.month(), q.day())


def _date_edit(d: date) -> QDateEdit:
    e = QDateEdit(_qdate(d))
    e.setCalendarPopup(True)
    e.setDisplayFormat("dd MMM yyyy")
    return e


class _Reader:
    """Runs reads on the task runner; only the newest request's result is delivered."""

    def __init__(self, tasks: TaskRunner, name: str) -> None:
        self.tasks = tasks
        self.name = name
        self.generation = 0

    def read(
        self,
        job: Callable[[], Any],
        done: Callable[[Any], None],
        failed: Callable[[BaseException], None],
    ) -> None:
        self.generation += 1
        mine = self.generation

        def ok(result: Any) -> None:
            if mine == self.generation:
                done(result)

        def bad(exc: BaseException) -> None:
            if mine == self.generation:
                failed(exc)

        self.tasks.submit(job, ok, bad, name=self.name)


class ReportPage(QWidget):
    """A milking or day report on screen, saved as PDF or CSV."""

    loaded = Signal(object)

    def __init__(self, db: Database, tasks: TaskRunner, layout: str) -> None:
        super().__init__()
        self.db, self.layout_name = db, layout
        self.reader = _Reader(tasks, "report")
        self.report: Report | None = None
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        self.kind = QComboBox()
        self.kind.addItems(["Milking report", "Day report"])
        self.day = _date_edit(datetime.now().date())
        self.milking = QComboBox()
        self.last_button = QPushButton("Last milking")
        self.show_button = QPushButton("Show")
        self.pdf_button = QPushButton("Save PDF…")
        self.csv_button = QPushButton("Save CSV…")
        for w in (
            QLabel("Report"),
            self.kind,
            QLabel("Day"),
            self.day,
            QLabel("Milking"),
            self.milking,
        ):
            row.addWidget(w)
        row.addWidget(self.show_button)
        row.addWidget(self.last_button)
        row.addStretch(1)
        row.addWidget(self.pdf_button)
        row.addWidget(self.csv_button)
        lay.addLayout(row)
        self.status = QLabel("")
        lay.addWidget(self.status)
        self.view = QTextBrowser()
        self.view.setOpenLinks(False)
        # The report is the page the PDF prints: black on white paper in either theme.
        self.view.setStyleSheet("QTextBrowser { background: #ffffff; color: #000000; }")
        lay.addWidget(self.view, 1)
        self.milkings: list[periods.Period] = []
        self.last_button.clicked.connect(self.show_last_milking)
        self.show_button.clicked.connect(self.show_selected)
        self.day.dateChanged.connect(lambda _d: self.list_milkings())
        self.kind.currentIndexChanged.connect(
            lambda _i: self.milking.setEnabled(self.kind.currentIndex() == 0)
        )
        self.pdf_button.clicked.connect(lambda: self.save("pdf"))
        self.csv_button.clicked.connect(lambda: self.save("csv"))
        self.pdf_button.setEnabled(False)
        self.csv_button.setEnabled(False)

    def _failed(self, exc: BaseException) -> None:
        self.status.setText(f"Could not make the report: {exc}")

    def list_milkings(self) -> None:
        db, the_day, zone = self.db, _date(self.day.date()), local_zone()

        def job() -> list[periods.Period]:
            start, end = periods.day_bounds(the_day, zone)
            return periods.milkings_in(db, start, end, zone)

        def done(found: list[periods.Period]) -> None:
            self.milkings = found
            self.milking.clear()
            self.milking.addItems([p.label for p in found] or ["no milking this day"])

        self.tasks_submit(job, done)

    def tasks_submit(self, job: Callable[[], Any], done: Callable[[Any], None]) -> None:
        self.reader.tasks.submit(job, done, self._failed, name="milkings of a day")

    @Slot()
    def show_last_milking(self) -> None:
        db, layout = self.db, self.layout_name

        def job() -> Report:
            period = periods.last_milking(db)
            if period is None:
                raise LookupError("no milking recorded yet")
            return milking.build_milking_report(db, period, layout=layout)

        self.status.setText("Making the report…")
        self.reader.read(job, self.show_report, self._failed)

    @Slot()
    def show_selected(self) -> None:
        db, layout, the_day = self.db, self.layout_name, _date(self.day.date())
        if self.kind.currentIndex() == 1:

            def job() -> Report:
                return day.build_day_report(db, the_day, layout=layout)

        else:
            i = self.milking.currentIndex()
            if not 0 <= i < len(self.milkings):
                self.status.setText("Choose a day with a milking.")
                return
            period = self.milkings[i]

            def job() -> Report:
                return milking.build_milking_report(db, period, layout=layout)

        self.status.setText("Making the report…")
        self.reader.read(job, self.show_report, self._failed)

    def show_report(self, report: Report) -> None:
        self.report = report
        period = getattr(report, "period", None)
        if period is not None:
            shown = period.start.astimezone(local_zone()).date()
            if _date(self.day.date()) != shown:
                self.day.setDate(_qdate(shown))  # lists that day's milkings
        self.view.setHtml(report_html(report))
        self.status.setText("")
        self.pdf_button.setEnabled(True)
        self.csv_button.setEnabled(True)
        self.loaded.emit(report)

    def save(self, kind: str, path: Path | None = None) -> Path | None:
        """Save the report shown as `kind` ('pdf' | 'csv'); asks where unless `path` is given."""
        if self.report is None:
            return None
        if path is None:
            name, _ = QFileDialog.getSaveFileName(
                self, f"Save the report as {kind.upper()}", f"report.{kind}", f"*.{kind}"
            )
            if not name:
                return None
            path = Path(name)
        if kind == "pdf":
            from ui.report_pdf import write_report_pdf

            pages = write_report_pdf(self.report, path)
            self.status.setText(f"Saved {path} ({pages} pages)")
        else:
            with open(path, "w", encoding="utf-8", newline="") as f:
                n = write_report_csv(f, self.report)
            self.status.setText(f"Saved {path} ({n} lines)")
        return path


class CowPage(QWidget):
    """Find a cow, see her lactation."""

    loaded = Signal(object)

    def __init__(self, db: Database, tasks: TaskRunner, theme: Theme) -> None:
        super().__init__()
        self.db = db
        self.search_reader = _Reader(tasks, "cow search")
        self.reader = _Reader(tasks, "cow trend")
        self.animal_id: int | None = None
        lay = QHBoxLayout(self)
        left = QVBoxLayout()
        self.search = QLineEdit()
        self.search.setPlaceholderText("Number, name or tag")
        self.results = QListWidget()
        self.results.setMinimumWidth(220)
        left.addWidget(QLabel("Find a cow"))
        left.addWidget(self.search)
        left.addWidget(self.results, 1)
        self.start = _date_edit(datetime.now().date() - timedelta(days=30))
        self.end = _date_edit(datetime.now().date())
        self.lactation_button = QPushButton("Whole lactation")
        self.apply_button = QPushButton("Show these days")
        for w in (
            QLabel("From"),
            self.start,
            QLabel("To"),
            self.end,
            self.apply_button,
            self.lactation_button,
        ):
            left.addWidget(w)
        lay.addLayout(left)
        self.trend = CowTrendWidget(theme=theme)
        lay.addWidget(self.trend, 1)
        self.search.textChanged.connect(self.search_cows)
        self.results.itemActivated.connect(self._picked)
        self.results.itemClicked.connect(self._picked)
        self.lactation_button.clicked.connect(
            lambda: self.open_cow(self.animal_id) if self.animal_id else None
        )
        self.apply_button.clicked.connect(self._apply_range)

    @Slot(str)
    def search_cows(self, text: str) -> None:
        db = self.db

        def done(found: list[history.CowInfo]) -> None:
            self.results.clear()
            for c in found:
                item = QListWidgetItem(f"{c.label}" + ("" if c.active else " (gone)"))
                item.setData(Qt.ItemDataRole.UserRole, c.id)
                self.results.addItem(item)

        self.search_reader.read(lambda: history.cow_search(db, text), done, self._failed)

    def _picked(self, item: QListWidgetItem) -> None:
        self.open_cow(int(item.data(Qt.ItemDataRole.UserRole)))

    def _apply_range(self) -> None:
        if self.animal_id is None:
            return
        zone = local_zone()
        start = periods.day_bounds(_date(self.start.date()), zone)[0]
        end = periods.day_bounds(_date(self.end.date()), zone)[1]
        self.open_cow(self.animal_id, start=start, end=end)

    def _failed(self, exc: BaseException) -> None:
        self.trend.summary.setText(f"Could not read her milkings: {exc}")

    def open_cow(
        self, animal_id: int | None, *, start: datetime | None = None, end: datetime | None = None
    ) -> None:
        """Show cow `animal_id` (her lactation, or [start, end))."""
        if animal_id is None:
            return
        self.animal_id = animal_id
        db = self.db

        def done(trend: cow.CowTrend) -> None:
            self.trend.show_trend(trend)
            self.start.setDate(_qdate(trend.start.astimezone().date()))
            self.end.setDate(_qdate((trend.end - timedelta(microseconds=1)).astimezone().date()))
            self.loaded.emit(trend)

        self.trend.summary.setText("Reading her milkings…")
        self.reader.read(
            lambda: cow.build_cow_trend(db, animal_id, start=start, end=end), done, self._failed
        )


class HerdPage(QWidget):
    loaded = Signal(object)

    def __init__(self, db: Database, tasks: TaskRunner, theme: Theme) -> None:
        super().__init__()
        self.db = db
        self.reader = _Reader(tasks, "herd trend")
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        today = datetime.now().date()
        self.start = _date_edit(today - timedelta(days=HERD_DAYS - 1))
        self.end = _date_edit(today)
        self.show_button = QPushButton("Show")
        for w in (QLabel("From"), self.start, QLabel("To"), self.end, self.show_button):
            row.addWidget(w)
        row.addStretch(1)
        lay.addLayout(row)
        self.trend = HerdTrendWidget(theme=theme)
        lay.addWidget(self.trend, 1)
        self.show_button.clicked.connect(self.load)

    @Slot()
    def load(self) -> None:
        db, first, last = self.db, _date(self.start.date()), _date(self.end.date())

        def done(trend: herd.HerdTrend) -> None:
            self.trend.show_trend(trend)
            self.loaded.emit(trend)

        self.trend.summary.setText("Counting…")
        self.reader.read(
            lambda: herd.build_herd_trend(db, first, last),
            done,
            lambda exc: self.trend.summary.setText(f"Could not count: {exc}"),
        )


class MetersPage(QWidget):
    """Every meter over a period; a flagged one offers the calibration wizard."""

    COLUMNS = (
        "Stall",
        "Meter",
        "Milkings",
        "Mean L",
        "Mean flow L/min",
        "Incomplete",
        "Comm errors",
        "Deviation",
        "Cows compared",
        "Verdict",
        "Last calibrated",
    )
    loaded = Signal(object)
    calibrate_requested = Signal(list)  # meter ids

    def __init__(self, db: Database, tasks: TaskRunner, theme: Theme) -> None:
        super().__init__()
        self.db, self.theme = db, theme
        self.reader = _Reader(tasks, "meter comparison")
        self.comparison: meters.MeterComparison | None = None
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        today = datetime.now().date()
        self.start = _date_edit(today - timedelta(days=METER_DAYS - 1))
        self.end = _date_edit(today)
        self.show_button = QPushButton("Compare")
        self.calibrate_button = QPushButton("Calibrate flagged meters…")
        self.calibrate_button.setEnabled(False)
        for w in (QLabel("From"), self.start, QLabel("To"), self.end, self.show_button):
            row.addWidget(w)
        row.addStretch(1)
        row.addWidget(self.calibrate_button)
        lay.addLayout(row)
        self.verdict = QLabel(
            "Each cow is her own control: her milk on one meter against her milk on the others."
        )
        self.verdict.setWordWrap(True)
        lay.addWidget(self.verdict)
        self.table = record_table(self.COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        lay.addWidget(self.table, 1)
        self.show_button.clicked.connect(self.load)
        self.calibrate_button.clicked.connect(self._calibrate)

    @Slot()
    def load(self) -> None:
        zone = local_zone()
        start = periods.day_bounds(_date(self.start.date()), zone)[0]
        end = periods.day_bounds(_date(self.end.date()), zone)[1]
        db = self.db
        self.verdict.setText("Comparing…")
        self.reader.read(
            lambda: meters.build_meter_comparison(db, start, end),
            self.show_comparison,
            lambda exc: self.verdict.setText(f"Could not compare: {exc}"),
        )

    def show_comparison(self, c: meters.MeterComparison) -> None:
        self.comparison = c
        warn = QBrush(QColor(self.theme.state("alert").color))
        self.table.setRowCount(len(c.rows))
        for i, r in enumerate(c.rows):
            d = r.deviation
            verdict = (
                "⚠ CALIBRATE"
                if r.flagged
                else ("ok" if d and d.cows >= c.settings.min_cows else "too few cows")
            )
            values = (
                str(r.stall),
                r.meter_id,
                str(r.sessions),
                f"{r.mean_yield_l:.2f}" if r.mean_yield_l is not None else "—",
                f"{r.mean_flow_l_min:.2f}" if r.mean_flow_l_min is not None else "—",
                f"{100 * r.incomplete_share:.1f} %" if r.incomplete_share is not None else "—",
                str(r.comm_errors),
                f"{100 * d.deviation:+.1f} %" if d else "—",
                str(d.cows) if d else "0",
                verdict,
                r.last_calibrated_at.astimezone().strftime("%d %b %Y")
                if r.last_calibrated_at
                else "never",
            )
            for j, v in enumerate(values):
                item = QTableWidgetItem(v)
                if r.flagged and j in (7, 9):
                    item.setForeground(warn)
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(i, j, item)
        flagged = c.flagged
        if flagged:
            names = ", ".join(
                f"stall {r.stall} ({r.meter_id}) reads {100 * r.deviation.deviation:+.1f} %"
                for r in flagged
                if r.deviation is not None
            )
            self.verdict.setText(
                f"⚠ Needs calibrating: {names}. The same cows give this much less or more "
                "there than on the other meters."
            )
        else:
            self.verdict.setText("No meter reads differently from the others for the same cows.")
        self.calibrate_button.setEnabled(bool(flagged))
        self.loaded.emit(c)

    def _calibrate(self) -> None:
        if self.comparison is not None:
            self.calibrate_requested.emit([r.meter_id for r in self.comparison.flagged])


class HistoryWidget(QWidget):
    """The History tab: Reports, Cow, Herd and Meters pages."""

    calibrate_requested = Signal(list)

    def __init__(
        self, db: Database, tasks: TaskRunner, *, layout: str = "herringbone", theme: Theme = DARK
    ) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.pages = QTabWidget()
        self.reports = ReportPage(db, tasks, layout)
        self.cows = CowPage(db, tasks, theme)
        self.herd = HerdPage(db, tasks, theme)
        self.meters = MetersPage(db, tasks, theme)
        self.pages.addTab(self.reports, "Reports")
        self.pages.addTab(self.cows, "Cow trend")
        self.pages.addTab(self.herd, "Herd trend")
        self.pages.addTab(self.meters, "Meters")
        lay.addWidget(self.pages)
        self.meters.calibrate_requested.connect(self.calibrate_requested)
        self._first_show = True

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self._first_show:
            # Read nothing until somebody looks.
            self._first_show = False
            self.reports.list_milkings()
            self.reports.show_last_milking()
            self.cows.search_cows("")

    def open_cow(self, animal_id: int) -> None:
        """Show a cow's trend (for a herd list or an alert to call)."""
        self.pages.setCurrentWidget(self.cows)
        self.cows.open_cow(animal_id)

    def set_theme(self, theme: Theme) -> None:
        self.cows.trend.set_theme(theme)
        self.herd.trend.set_theme(theme)
        self.meters.theme = theme


__all__ = ["HistoryWidget"]
