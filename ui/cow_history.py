"""One cow's history: her milkings' conductivity and yield over time, with her alerts marked;
and her lactation trend (`CowTrendWidget`: milk against expected by days in milk).

Two pyqtgraph plots share a local-time axis: conductivity above (her cow-level mean as a line with
points, each quarter as a thin line where the meter reports quarters, abnormal milkings as red
rings) and yield below. Every alert is a vertical line across both plots, labelled with its kind and
severity in words (red for critical, amber for warning, dashed once resolved), and a triangle on the
milking that raised it. The history is read on the task runner
(`milkconsole.store.cow_history.cow_history`); a result that arrives after a newer request is
dropped. pyqtgraph is imported when the first chart is built, not when the module is.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDialog, QLabel, QPushButton, QVBoxLayout, QWidget

from milkconsole.store.alerts import AlertRecord
from milkconsole.store.cow_history import CowHistory, cow_history
from milkconsole.store.db import Database
from milkconsole.store.sessions import SessionRecord
from ui.charts import linked_plots, pyqtgraph, style_plots
from ui.theme import DARK, Theme
from ui.workers import TaskRunner

QUARTER_NAMES = ("LF", "RF", "LR", "RR")
# Quarter lines: distinct hues that stay apart on both themes (and they are named in the legend).
QUARTER_COLORS = ("#26a69a", "#ab47bc", "#ff7043", "#8d6e63")
HISTORY_DAYS = 30.0


def _t(point_time: Any) -> float:
    return float(point_time.timestamp())


def alert_mark_text(alert: AlertRecord) -> str:
    """The words on an alert's line: '⚠ mastitis · CRITICAL', '✓ mastitis · resolved'."""
    kind = alert.kind.replace("_", " ")
    if alert.state == "resolved":
        return f"✓ {kind} · resolved"
    return f"⚠ {kind} · {alert.severity.upper()}"


class CowHistoryWidget(QWidget):
    """A cow's conductivity and yield chart with her alerts; `load(animal_id)` or `show_history`."""

    loaded = Signal(object)  # CowHistory
    load_failed = Signal(str)

    def __init__(
        self,
        db: Database | None = None,
        tasks: TaskRunner | None = None,
        *,
        theme: Theme = DARK,
        days: float = HISTORY_DAYS,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.db = db
        self.tasks = tasks
        self.theme = theme
        self.days = days
        self.history: CowHistory | None = None
        self.animal_id: int | None = None
        self._generation = 0
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("Cow history")
        self.title.setObjectName("dialogTitle")
        self.layout_.addWidget(self.title)
        self.summary = QLabel("Pick an alert of a cow to see her milkings.")
        self.summary.setWordWrap(True)
        self.layout_.addWidget(self.summary)
        self.chart: Any = None
        self.ec_plot: Any = None
        self.yield_plot: Any = None
        # What is drawn, for tests and for redrawing on a theme change.
        self.alert_lines: list[tuple[AlertRecord, Any, Any]] = []
        self.alert_symbols: Any = None
        self.ec_points = 0
        self.yield_points = 0

    # -- loading ------------------------------------------------------------------------------
    def load(self, animal_id: int | None) -> None:
        """Read the cow's history on the task runner and show it (None clears the chart)."""
        self._generation += 1
        generation = self._generation
        self.animal_id = animal_id
        if animal_id is None:
            self.clear("This alert names no cow.")
            return
        if self.db is None or self.tasks is None:
            raise RuntimeError("CowHistoryWidget.load needs a database and a task runner")
        db, days = self.db, self.days
        self.summary.setText("Reading her milkings…")

        def done(history: CowHistory) -> None:
            if generation == self._generation:
                self.show_history(history)
                self.loaded.emit(history)

        def failed(exc: BaseException) -> None:
            if generation == self._generation:
                self.clear(f"Could not read her history: {exc}")
                self.load_failed.emit(str(exc))

        self.tasks.submit(
            lambda: cow_history(db, animal_id, days=days), done, failed, name="cow history"
        )

    def reload(self) -> None:
        if self.animal_id is not None:
            self.load(self.animal_id)

    # -- drawing ------------------------------------------------------------------------------
    def _build(self) -> None:
        if self.chart is not None:
            return
        pg = pyqtgraph()

        self.chart = pg.GraphicsLayoutWidget()
        self.chart.setMinimumHeight(320)
        self.ec_plot = self.chart.addPlot(
            row=0, col=0, axisItems={"bottom": pg.DateAxisItem(orientation="bottom")}
        )
        self.yield_plot = self.chart.addPlot(
            row=1, col=0, axisItems={"bottom": pg.DateAxisItem(orientation="bottom")}
        )
        self.yield_plot.setXLink(self.ec_plot)
        for plot, label in ((self.ec_plot, "Conductivity mS/cm"), (self.yield_plot, "Yield L")):
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setLabel("left", label)
        # One row along the top (the range leaves room for it), not a column over the data.
        self.ec_plot.addLegend(offset=(8, 2), labelTextSize="11pt", colCount=7)
        self.layout_.addWidget(self.chart, 1)
        self._style()

    def _style(self) -> None:
        if self.chart is not None:
            style_plots(self.chart, [self.ec_plot, self.yield_plot], self.theme)

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        self._style()
        if self.history is not None:
            self.show_history(self.history)

    def clear(self, message: str = "") -> None:
        self.history = None
        self.title.setText("Cow history")
        self.summary.setText(message)
        if self.chart is not None:
            self.ec_plot.clear()
            self.yield_plot.clear()
        self.alert_lines = []
        self.alert_symbols = None
        self.ec_points = self.yield_points = 0

    def show_history(self, history: CowHistory) -> None:
        """Draw `history` (GUI thread; no database access)."""
        pg = pyqtgraph()

        self._build()
        self.history = history
        t = self.theme
        self.ec_plot.clear()
        self.yield_plot.clear()
        self.alert_lines = []
        points = history.points
        n_alerts = len(history.alerts)
        self.title.setText(f"Cow {history.label}")
        since = history.since.astimezone().strftime("%d %b")
        abnormal = sum(1 for p in points if p.abnormal)
        self.summary.setText(
            f"{len(points)} milkings since {since}, {abnormal} abnormal; "
            f"{n_alerts} alert{'s' if n_alerts != 1 else ''}"
            + ("" if points else " — no finished milkings recorded in this time")
        )
        ec = [(p, p.conductivity_mean_ms_cm) for p in points if p.conductivity_mean_ms_cm]
        xs = [_t(p.started_at) for p, _ in ec]
        self.ec_plot.plot(
            xs,
            [v for _, v in ec],
            pen=pg.mkPen(t.curve, width=3),
            symbol="o",
            symbolSize=7,
            symbolBrush=t.curve,
            symbolPen=None,
            name="cow",
        )
        self.ec_points = len(ec)
        for q, (name, color) in enumerate(zip(QUARTER_NAMES, QUARTER_COLORS, strict=True)):
            qp = [(p, p.quarters_ms_cm[q]) for p in points if p.quarters_ms_cm[q] is not None]
            if qp:
                self.ec_plot.plot(
                    [_t(p.started_at) for p, _ in qp],
                    [v for _, v in qp],
                    pen=pg.mkPen(color, width=1.5, style=Qt.PenStyle.DashLine),
                    name=name,
                )
        bad = [(p, v) for p, v in ec if p.abnormal]
        if bad:
            self.ec_plot.plot(
                [_t(p.started_at) for p, _ in bad],
                [v for _, v in bad],
                pen=None,
                symbol="o",
                symbolSize=15,
                symbolBrush=None,
                symbolPen=pg.mkPen(t.state("alert").color, width=2.5),
                name="abnormal",
            )
        ys = [p for p in points if p.state != "in_progress"]
        self.yield_plot.plot(
            [_t(p.started_at) for p in ys],
            [p.yield_l for p in ys],
            pen=pg.mkPen(t.text_dim, width=2),
            symbol="s",
            symbolSize=7,
            symbolBrush=t.text,
            symbolPen=None,
            name="yield",
        )
        self.yield_points = len(ys)
        self._mark_alerts(history.alerts, {p.key: p for p in points})
        self._set_ranges(points, history.alerts)

    def _set_ranges(
        self, points: tuple[SessionRecord, ...], alerts: tuple[AlertRecord, ...]
    ) -> None:
        """Fixed ranges from the data: every reading in sight, yield from zero (so a day's dip
        looks like what it is), and every alert line inside the time axis."""
        times = [_t(p.started_at) for p in points] + [_t(a.raised_at) for a in alerts]
        if not times:
            return
        lo, hi = min(times), max(times)
        pad = max(3600.0, (hi - lo) * 0.03)
        self.ec_plot.setXRange(lo - pad, hi + pad, padding=0)
        values = [v for p in points for v in (p.conductivity_mean_ms_cm, *p.quarters_ms_cm) if v]
        if values:
            low, high = min(values), max(values)
            margin = max(0.2, (high - low) * 0.08)
            # Headroom above the data for the legend row and the alert labels.
            head = max(0.5, (high - low) * 0.3)
            self.ec_plot.setYRange(low - margin, high + head, padding=0)
        top = max((p.yield_l for p in points), default=0.0)
        self.yield_plot.setYRange(0.0, max(1.0, top * 1.15), padding=0)

    def _mark_alerts(
        self, alerts: tuple[AlertRecord, ...], by_key: dict[str, SessionRecord]
    ) -> None:
        pg = pyqtgraph()

        t = self.theme
        sx: list[float] = []
        sy: list[float] = []
        brushes: list[Any] = []
        for a in alerts:
            color = t.state("alert" if a.severity == "critical" else "incomplete").color
            style = Qt.PenStyle.DashLine if a.state == "resolved" else Qt.PenStyle.SolidLine
            x = _t(a.raised_at)
            pen = pg.mkPen(color, width=2.5, style=style)
            top = pg.InfiniteLine(
                pos=x,
                angle=90,
                pen=pen,
                label=alert_mark_text(a),
                labelOpts={"position": 0.9, "color": t.text, "fill": t.tile, "movable": False},
            )
            bottom = pg.InfiniteLine(pos=x, angle=90, pen=pen)
            self.ec_plot.addItem(top, ignoreBounds=True)
            self.yield_plot.addItem(bottom, ignoreBounds=True)
            self.alert_lines.append((a, top, bottom))
            point = by_key.get(a.session_key or "")
            if point is not None and point.conductivity_mean_ms_cm is not None:
                sx.append(_t(point.started_at))
                sy.append(point.conductivity_mean_ms_cm)
                brushes.append(pg.mkBrush(color))
        self.alert_symbols = None
        if sx:
            self.alert_symbols = pg.ScatterPlotItem(
                sx, sy, symbol="t1", size=20, brush=brushes, pen=pg.mkPen(t.text, width=1)
            )
            self.ec_plot.addItem(self.alert_symbols)


class CowHistoryDialog(QDialog):
    """A cow's history in a window of its own (for opening from anywhere in the console)."""

    def __init__(
        self,
        db: Database,
        tasks: TaskRunner,
        animal_id: int,
        *,
        theme: Theme = DARK,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Cow history")
        lay = QVBoxLayout(self)
        self.history = CowHistoryWidget(db, tasks, theme=theme)
        lay.addWidget(self.history, 1)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        lay.addWidget(close)
        self.resize(1100, 700)
        self.history.load(animal_id)


# -- a cow's lactation trend ----------------------------------------------------------------------


class CowTrendWidget(QWidget):
    """A cow over her lactation: milk per day and per milking against expected, conductivity,
    peak flow and milking time, with her alerts and health events as labelled lines.

    The x-axis is days in milk when her calving date is known (days since the trend's start
    otherwise). Zoom with the mouse wheel, pan by dragging; `show_trend` draws a `CowTrend`
    (read on the task runner by the caller).
    """

    ROWS = ("L per day", "L per milking", "EC mS/cm", "Peak L/min", "Minutes")

    def __init__(self, *, theme: Theme = DARK, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.theme = theme
        self.trend: Any = None
        self.marks: list[Any] = []
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("Cow trend")
        self.title.setObjectName("dialogTitle")
        lay.addWidget(self.title)
        self.summary = QLabel("Find a cow by her number, name or tag.")
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        self.chart: Any = None
        self.plots: list[Any] = []
        self.layout_ = lay

    def _build(self) -> None:
        if self.chart is not None:
            return
        self.chart, self.plots = linked_plots(list(self.ROWS), "days in milk")
        self.chart.setMinimumHeight(520)
        self.plots[0].addLegend(offset=(8, 2), labelTextSize="11pt", colCount=3)
        self.plots[1].addLegend(offset=(8, 2), labelTextSize="11pt", colCount=3)
        self.plots[2].addLegend(offset=(8, 2), labelTextSize="11pt", colCount=6)
        self.layout_.addWidget(self.chart, 1)
        self.chart.show()  # added to a visible widget: shown now, not after the next event
        style_plots(self.chart, self.plots, self.theme)

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        if self.chart is not None:
            style_plots(self.chart, self.plots, theme)
        if self.trend is not None:
            self.show_trend(self.trend)

    def x_of(self, trend: Any, at: Any) -> float:
        """Days in milk (with the time of day) of an aware time, or days since the start."""
        local = at.astimezone()
        frac = (local.hour * 3600 + local.minute * 60 + local.second) / 86400.0
        origin = trend.cow.last_calving_date or trend.start.astimezone().date()
        return (local.date() - origin).days + frac

    def show_trend(self, trend: Any) -> None:
        """Draw a `milkconsole.reports.cow.CowTrend` (GUI thread; no database access)."""
        pg = pyqtgraph()

        self._build()
        self.trend = trend
        t = self.theme
        for p in self.plots:
            p.clear()
        self.marks = []
        ms = trend.milkings
        calving = trend.cow.last_calving_date
        self.plots[-1].setLabel("bottom", "days in milk" if calving else "days since the start")
        self.title.setText(f"Cow {trend.cow.label}")
        days = trend.days
        total = sum(d.yield_l for d in days)
        self.summary.setText(
            f"{len(ms)} milkings on {len(days)} days, {total:,.0f} L"
            + (f"; calved {calving:%d %b %Y}" if calving else "; calving date unknown")
            + f"; {len(trend.alerts)} alerts, {len(trend.events)} health events"
        )
        dx = [self.x_of(trend, datetime.combine(d.day, time(12)).astimezone()) for d in days]
        self.plots[0].plot(
            dx,
            [d.yield_l for d in days],
            pen=pg.mkPen(t.curve, width=3),
            symbol="o",
            symbolSize=6,
            symbolBrush=t.curve,
            symbolPen=None,
            name="milk",
        )
        exp = [(x, d.expected_l) for x, d in zip(dx, days, strict=True) if d.expected_l is not None]
        self.plots[0].plot(
            [x for x, _ in exp],
            [v for _, v in exp],
            pen=pg.mkPen(t.target, width=2, style=Qt.PenStyle.DashLine),
            name="expected",
        )
        mx = [self.x_of(trend, m.started_at) for m in ms]
        self.plots[1].plot(
            mx,
            [m.yield_l for m in ms],
            pen=None,
            symbol="o",
            symbolSize=6,
            symbolBrush=t.text_dim,
            symbolPen=None,
            name="milking",
        )
        exp_m = [(x, m.expected_l) for x, m in zip(mx, ms, strict=True) if m.expected_l is not None]
        self.plots[1].plot(
            [x for x, _ in exp_m],
            [v for _, v in exp_m],
            pen=pg.mkPen(t.target, width=2, style=Qt.PenStyle.DashLine),
            name="expected",
        )
        low = [
            (x, m.yield_l)
            for x, m in zip(mx, ms, strict=True)
            if m.state != "completed" or m.diverted
        ]
        if low:
            self.plots[1].plot(
                [x for x, _ in low],
                [v for _, v in low],
                pen=None,
                symbol="o",
                symbolSize=13,
                symbolBrush=None,
                symbolPen=pg.mkPen(t.state("incomplete").color, width=2),
                name="incomplete / diverted",
            )
        ec = [
            (x, m.conductivity_mean_ms_cm)
            for x, m in zip(mx, ms, strict=True)
            if m.conductivity_mean_ms_cm
        ]
        self.plots[2].plot(
            [x for x, _ in ec], [v for _, v in ec], pen=pg.mkPen(t.curve, width=2), name="cow"
        )
        for q, (name, color) in enumerate(zip(QUARTER_NAMES, QUARTER_COLORS, strict=True)):
            qp = [
                (x, m.quarters_ms_cm[q])
                for x, m in zip(mx, ms, strict=True)
                if m.quarters_ms_cm[q] is not None
            ]
            if qp:
                self.plots[2].plot(
                    [x for x, _ in qp],
                    [v for _, v in qp],
                    pen=pg.mkPen(color, width=1.2, style=Qt.PenStyle.DashLine),
                    name=name,
                )
        self.plots[3].plot(
            mx,
            [m.peak_flow_l_min for m in ms],
            pen=None,
            symbol="t",
            symbolSize=6,
            symbolBrush=t.text_dim,
            symbolPen=None,
        )
        self.plots[4].plot(
            mx,
            [m.duration_s / 60.0 for m in ms],
            pen=None,
            symbol="s",
            symbolSize=5,
            symbolBrush=t.text_dim,
            symbolPen=None,
        )
        self._mark(trend)
        if mx or dx:
            lo, hi = min(mx + dx), max(mx + dx)
            self.plots[0].setXRange(lo - 0.5, hi + 0.5, padding=0)
        # The top third of the three plots with a legend is kept for it, so no line runs under it.
        for p, values in (
            (self.plots[0], [d.yield_l for d in days]),
            (self.plots[1], [m.yield_l for m in ms]),
        ):
            p.setYRange(0.0, max(1.0, max(values, default=0.0) * 1.5), padding=0)
        ec_values = [v for m in ms for v in (m.conductivity_mean_ms_cm, *m.quarters_ms_cm) if v]
        if ec_values:
            low, high = min(ec_values), max(ec_values)
            span = max(0.5, high - low)
            self.plots[2].setYRange(low - span * 0.1, high + span * 0.6, padding=0)

    def _mark(self, trend: Any) -> None:
        """Alerts (red: critical, amber: warning) and health events (text colour) as lines
        across every plot, labelled in words on the top one."""
        pg = pyqtgraph()

        t = self.theme
        marks = [
            (
                a.raised_at,
                alert_mark_text(a),
                t.state("alert" if a.severity == "critical" else "incomplete").color,
            )
            for a in trend.alerts
        ]
        marks += [(e.recorded_at, "✚ " + e.kind.replace("_", " "), t.text) for e in trend.events]
        for at, label, color in marks:
            x = self.x_of(trend, at)
            for i, p in enumerate(self.plots):
                line = pg.InfiniteLine(
                    pos=x,
                    angle=90,
                    pen=pg.mkPen(color, width=2),
                    label=label if i == 0 else None,
                    labelOpts={"position": 0.85, "color": t.text, "fill": t.tile, "movable": False},
                )
                p.addItem(line, ignoreBounds=True)
                self.marks.append(line)
