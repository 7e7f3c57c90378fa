"""The production dashboard tab: today's figures, the milking under way, what needs attention.

Figures that come from the database arrive as a `ProductionSnapshot` read on a worker thread
(see `DashboardRefresher`); the active-sessions table and the in-progress litres come live from
the bridge. Tables are rebuilt only while the tab is visible (and once when it is shown), so the
dashboard costs the GUI thread nothing while the operator watches the stalls.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Slot
from PySide6.QtGui import QBrush, QColor, QShowEvent
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from milkconsole.meters.events import (
    SessionCompleted,
    SessionSnapshot,
    SessionStarted,
    SessionUpdated,
)
from milkconsole.reports.dashboard import GRADES, ProductionSnapshot
from milkconsole.store.sessions import SessionRecord
from ui.charts import pyqtgraph, style_axes
from ui.tables import record_table
from ui.theme import DARK, Theme
from ui.workers import CoalescedReader, TaskRunner

# The database is read at most this often, however fast sessions are committed.
MIN_REFRESH_INTERVAL_S = 0.5
# ...and at least this often, so "cows per hour" moves with the clock.
IDLE_REFRESH_S = 15.0


class DashboardRefresher(CoalescedReader):
    """Reads `ProductionSnapshot`s off the GUI thread, coalesced: at most one read in flight and
    at most one per MIN_REFRESH_INTERVAL_S; a request while one runs schedules exactly one more;
    and every IDLE_REFRESH_S on its own."""

    def __init__(
        self,
        read: Callable[[], ProductionSnapshot],
        tasks: TaskRunner,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(
            read,
            tasks,
            name="production snapshot",
            min_interval_s=MIN_REFRESH_INTERVAL_S,
            idle_s=IDLE_REFRESH_S,
            parent=parent,
        )


def _item(text: str, *, align_right: bool = False) -> QTableWidgetItem:
    it = QTableWidgetItem(text)
    if align_right:
        it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return it


def _hm(dt: datetime | None) -> str:
    return dt.astimezone().strftime("%H:%M") if dt else ""


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


def _cow(row_label: str | None, rfid: str | None, id_source: str | None) -> str:
    if row_label:
        return row_label + (" (manual)" if id_source == "manual" else "")
    return f"{rfid} unknown tag" if rfid else "no ID"


class _Kpi(QFrame):
    def __init__(self, label: str) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 8, 12, 8)
        self.label = QLabel(label)
        self.label.setObjectName("kpiLabel")
        self.label.setWordWrap(True)
        self.value = QLabel("–")
        self.value.setObjectName("kpiValue")
        self.note = QLabel("")
        self.note.setObjectName("kpiNote")
        self.note.setWordWrap(True)
        lay.addWidget(self.label)
        lay.addWidget(self.value)
        lay.addWidget(self.note)

    def set(self, value: str, note: str = "") -> None:
        if self.value.text() != value:
            self.value.setText(value)
        if self.note.text() != note:
            self.note.setText(note)


def _table(columns: tuple[str, ...], stretch: int | None = None) -> QTableWidget:
    """A read-only table; column `stretch` takes the spare width (no sideways scrolling)."""
    t = record_table(columns)
    t.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
    t.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    header = t.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    if stretch is None:
        header.setStretchLastSection(True)
    else:
        header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
        t.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return t


class DashboardWidget(QWidget):
    """The Production tab. Feed it `apply_snapshot` (database) and the bridge's session events."""

    ACTIVE_COLUMNS = ("Stall", "Cow", "Yield L", "Flow L/min", "Time")
    RECENT_COLUMNS = ("Ended", "Stall", "Cow", "Yield L", "Time", "Peak L/min", "Grade", "Notes")
    ALERT_COLUMNS = ("Raised", "Alert", "Severity", "Cow", "Message")

    def __init__(self, theme: Theme = DARK) -> None:
        super().__init__()
        self.theme = theme
        self.snapshot: ProductionSnapshot | None = None
        self.live: dict[int, SessionSnapshot] = {}
        # How the stall view names the cow of a live session (it knows manual corrections),
        # and whether its milk goes to the divert line (left out of "milk today").
        self.cow_text: Callable[[SessionSnapshot], str] | None = None
        self.is_diverted: Callable[[SessionSnapshot], bool] | None = None
        self._live_dirty = False
        self._snap_dirty = False
        self.snapshots_applied = 0
        outer = QVBoxLayout(self)
        outer.setSpacing(10)

        kpis = QGridLayout()
        kpis.setSpacing(10)
        self.kpi_total = _Kpi("Milk today (L)")
        self.kpi_sessions = _Kpi("Cows milked today")
        self.kpi_active = _Kpi("Stalls milking now")
        self.kpi_average = _Kpi("Average per cow (L)")
        self.kpi_milk_rate = _Kpi("L / hour (this milking)")
        self.kpi_cow_rate = _Kpi("Cows / hour (this milking)")
        self.kpi_unidentified = _Kpi("Cows with no ID today")
        self.kpi_diverted = _Kpi("Diverted today (L)")
        for i, k in enumerate(
            (
                self.kpi_total,
                self.kpi_sessions,
                self.kpi_active,
                self.kpi_average,
                self.kpi_milk_rate,
                self.kpi_cow_rate,
                self.kpi_unidentified,
                self.kpi_diverted,
            )
        ):
            kpis.addWidget(k, 0, i)
        outer.addLayout(kpis)

        middle = QHBoxLayout()
        outer.addLayout(middle, 3)
        self._chart_box = QGroupBox("Milk per hour today (L)")
        self._chart_layout = QVBoxLayout(self._chart_box)
        # pyqtgraph takes most of a second to import: the chart is built after the console's
        # first paint (`build_chart`), not before it.
        self.chart: Any = None
        self._bars: Any = None
        middle.addWidget(self._chart_box, 3)
        self._hourly_key: tuple[tuple[int, float], ...] | None = None

        quality_box = QGroupBox("Quality today")
        ql = QGridLayout(quality_box)
        self.quality_labels: dict[str, QLabel] = {}
        for i, g in enumerate(GRADES):
            name = QLabel("Reject" if g == "reject" else f"Grade {g}")
            value = QLabel("–")
            value.setObjectName("kpiValue")
            ql.addWidget(name, i, 0)
            ql.addWidget(value, i, 1)
            self.quality_labels[g] = value
        self.quality_note = QLabel("No grades yet")
        self.quality_note.setObjectName("kpiNote")
        ql.addWidget(self.quality_note, len(GRADES), 0, 1, 2)
        middle.addWidget(quality_box, 1)

        alerts_box = QGroupBox("Active alerts")
        al = QVBoxLayout(alerts_box)
        self.alerts_table = _table(self.ALERT_COLUMNS)
        al.addWidget(self.alerts_table)
        middle.addWidget(alerts_box, 3)

        bottom = QHBoxLayout()
        outer.addLayout(bottom, 4)
        active_box = QGroupBox("Milking now")
        acl = QVBoxLayout(active_box)
        self.active_table = _table(self.ACTIVE_COLUMNS, stretch=1)
        acl.addWidget(self.active_table)
        bottom.addWidget(active_box, 2)
        recent_box = QGroupBox("Recently finished (abnormal ones marked)")
        rl = QVBoxLayout(recent_box)
        self.recent_table = _table(self.RECENT_COLUMNS, stretch=2)
        rl.addWidget(self.recent_table)
        bottom.addWidget(recent_box, 3)

        self._live_timer = QTimer(self)
        self._live_timer.setInterval(500)
        self._live_timer.timeout.connect(self._render_live)
        self._live_timer.start()

    def build_chart(self) -> None:
        """Make the hourly chart (imports pyqtgraph); idempotent."""
        if self.chart is not None:
            return
        pg = pyqtgraph()
        self.chart = pg.PlotWidget()
        self.chart.setMenuEnabled(False)
        self.chart.setMouseEnabled(x=False, y=False)
        self.chart.hideButtons()
        self.chart.showGrid(x=False, y=True, alpha=0.25)
        self._bars = pg.BarGraphItem(x=[], height=[], width=0.8)
        self.chart.addItem(self._bars)
        self._chart_layout.addWidget(self.chart)
        self._style_chart()
        self._hourly_key = None
        if self.snapshot is not None:
            self._render_snapshot()

    # -- inputs -------------------------------------------------------------------------------
    @Slot(object)
    def on_session_event(self, event: SessionStarted | SessionUpdated | SessionCompleted) -> None:
        s = event.session
        if s.state == "in_progress":
            self.live[s.stall] = s
        else:
            self.live.pop(s.stall, None)
        self._live_dirty = True

    @Slot(object)
    def apply_snapshot(self, snap: ProductionSnapshot) -> None:
        self.snapshot = snap
        self.snapshots_applied += 1
        self._snap_dirty = True
        self._live_dirty = True
        if self.isVisible():
            self._render_snapshot()
        else:
            self._render_kpis()  # cheap, and the tab's figures are right the moment it shows

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.build_chart()
        if self._snap_dirty:
            self._render_snapshot()
        self._render_live()

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        self._style_chart()
        self._hourly_key = None
        if self.snapshot is not None:
            self._render_snapshot()

    # -- rendering ----------------------------------------------------------------------------
    def _style_chart(self) -> None:
        if self.chart is None:
            return
        pg = pyqtgraph()
        t = self.theme
        self.chart.setBackground(t.panel)
        style_axes(self.chart.getPlotItem(), t, tick_px=16)
        self._bars.setOpts(brush=pg.mkBrush(t.curve), pen=pg.mkPen(t.text_dim))

    def _diverted(self, s: SessionSnapshot) -> bool:
        return self.is_diverted is not None and self.is_diverted(s)

    def live_yield_l(self) -> float:
        """Milk of the milkings under way that goes to the tank."""
        return sum(s.yield_l for s in self.live.values() if not self._diverted(s))

    def live_diverted_l(self) -> float:
        return sum(s.yield_l for s in self.live.values() if self._diverted(s))

    def _render_kpis(self) -> None:
        snap = self.snapshot
        in_progress = self.live_yield_l()
        diverting = self.live_diverted_l()
        self.kpi_active.set(str(len(self.live)), f"{in_progress + diverting:.1f} L so far")
        if snap is None:
            return
        self.kpi_total.set(
            f"{snap.total_yield_l + in_progress:.1f}",
            f"incl. {in_progress:.1f} L in progress" if in_progress else "",
        )
        note = f"{snap.diverted_sessions} milkings"
        if snap.diverted_unconfirmed:
            note += f", {snap.diverted_unconfirmed} NOT confirmed"
        if diverting:
            note += f"; {diverting:.1f} L going now"
        self.kpi_diverted.set(f"{snap.diverted_l + diverting:.1f}", note)
        self.kpi_sessions.set(str(snap.finished_sessions))
        self.kpi_average.set(f"{snap.average_yield_l:.1f}" if snap.average_yield_l else "–")
        since = f"since {_hm(snap.milking_started_at)}" if snap.milking_started_at else ""
        self.kpi_milk_rate.set(
            f"{snap.milk_per_hour_l:.0f}" if snap.milk_per_hour_l is not None else "–", since
        )
        self.kpi_cow_rate.set(
            f"{snap.cows_per_hour:.0f}" if snap.cows_per_hour is not None else "–",
            f"{snap.milking_sessions} cows, {snap.milking_yield_l:.0f} L",
        )
        self.kpi_unidentified.set(
            str(snap.unidentified_sessions),
            "need a cow number" if snap.unidentified_sessions else "",
        )

    def _render_snapshot(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        self._snap_dirty = False
        self._render_kpis()
        graded = sum(snap.quality.values())
        for g, label in self.quality_labels.items():
            label.setText(str(snap.quality.get(g, 0)) if graded else "–")
        self.quality_note.setVisible(graded == 0)
        key = tuple((b.hour_start.hour, round(b.yield_l, 1)) for b in snap.hourly)
        if self.chart is not None and key != self._hourly_key:
            self._hourly_key = key
            self._bars.setOpts(x=[h for h, _ in key], height=[v for _, v in key], width=0.8)
            ax = self.chart.getAxis("bottom")
            ax.setTicks([[(h, f"{h:02d}") for h, _ in key]])
        self._fill_recent(snap.recent)
        self._fill_alerts(snap)

    def _fill_recent(self, rows: tuple[SessionRecord, ...]) -> None:
        t = self.recent_table
        t.setRowCount(len(rows))
        alert_bg = QBrush(QColor(self.theme.states["alert"].color))
        white = QBrush(QColor("#ffffff"))
        divert_bg = QBrush(QColor(self.theme.states["divert"].color))
        divert_ink = QBrush(QColor(self.theme.states["divert"].on_color))
        for i, r in enumerate(rows):
            notes = []
            if r.abnormal:
                notes.append("⚠ ABNORMAL")
            if r.state != "completed":
                notes.append(r.state.upper())
            if r.blood:
                notes.append("BLOOD")
            if r.reattached:
                notes.append("re-attached")
            if r.diverted:
                who = r.divert_confirmed_by or "NOT confirmed"
                notes.append(f"DIVERTED ({r.divert_reason or 'operator'}; {who})")
            notes.extend(f for f in r.flags if f not in ("abnormal",))
            values = (
                _hm(r.ended_at),
                str(r.stall),
                _cow(r.cow_label, r.rfid, r.id_source),
                f"{r.yield_l:.1f}",
                _duration(r.duration_s),
                f"{r.peak_flow_l_min:.1f}",
                r.quality_grade or "",
                ", ".join(notes),
            )
            for j, v in enumerate(values):
                it = _item(v, align_right=j in (1, 3, 4, 5))
                if r.abnormal:
                    it.setBackground(alert_bg)
                    it.setForeground(white)
                elif r.diverted:
                    it.setBackground(divert_bg)
                    it.setForeground(divert_ink)
                t.setItem(i, j, it)

    def _fill_alerts(self, snap: ProductionSnapshot) -> None:
        t = self.alerts_table
        t.setRowCount(len(snap.alerts))
        for i, a in enumerate(snap.alerts):
            values = (
                _hm(a.raised_at),
                a.kind.replace("_", " "),
                a.severity.upper() + ("" if a.state == "open" else f" ({a.state})"),
                a.cow_label,
                a.message,
            )
            for j, v in enumerate(values):
                t.setItem(i, j, _item(v))

    @Slot()
    def _render_live(self) -> None:
        if not self._live_dirty or not self.isVisible():
            return  # showEvent renders what changed meanwhile
        self._live_dirty = False
        self._render_kpis()
        t = self.active_table
        rows = sorted(self.live.values(), key=lambda s: s.stall)
        t.setRowCount(len(rows))
        labels: dict[str, str | None] = {}
        if self.snapshot is not None:
            labels = {r.key: r.cow_label for r in self.snapshot.open_sessions}
        for i, s in enumerate(rows):
            cow = self.cow_text(s) if self.cow_text else _cow(labels.get(s.key), s.rfid, None)
            values = (
                str(s.stall),
                cow,
                f"{s.yield_l:.1f}",
                f"{s.flow_l_min:.1f}",
                _duration(s.duration_s),
            )
            for j, v in enumerate(values):
                t.setItem(i, j, _item(v, align_right=j != 1))
