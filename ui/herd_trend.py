"""The herd day by day: total milk, cows milked, milk per cow and EC outliers, one plot each on a
shared date axis (mouse wheel zooms, drag pans). Draws a `milkconsole.reports.herd.HerdTrend`."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from milkconsole.reports.herd import HerdTrend
from ui.charts import linked_plots, pyqtgraph, style_plots
from ui.theme import DARK, Theme


def _noon(day: Any) -> float:
    return datetime.combine(day, time(12)).astimezone().timestamp()


class HerdTrendWidget(QWidget):
    ROWS = ("Milk L", "Cows", "L per cow", "High EC")

    def __init__(self, *, theme: Theme = DARK, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.theme = theme
        self.trend: HerdTrend | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.summary = QLabel("Choose the days to show.")
        lay.addWidget(self.summary)
        self.chart, self.plots = linked_plots(list(self.ROWS), "day", date_axis=True)
        self.chart.setMinimumHeight(480)
        lay.addWidget(self.chart, 1)
        style_plots(self.chart, self.plots, theme)

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        style_plots(self.chart, self.plots, theme)
        if self.trend is not None:
            self.show_trend(self.trend)

    def show_trend(self, trend: HerdTrend) -> None:
        pg = pyqtgraph()

        self.trend = trend
        t = self.theme
        days = [d for d in trend.days]
        xs = [_noon(d.day) for d in days]
        milked = [d for d in days if d.sessions]
        total = sum(d.yield_l for d in days)
        self.summary.setText(
            f"{trend.first:%d %b %Y} to {trend.last:%d %b %Y}: {total:,.0f} L on "
            f"{len(milked)} milking days"
            + (f", {total / len(milked):,.0f} L a day" if milked else "")
        )
        series = (
            [d.yield_l for d in days],
            [float(d.cows_milked) for d in days],
            [d.per_cow_l or 0.0 for d in days],
            [float(d.ec_outliers) for d in days],
        )
        for plot, values in zip(self.plots, series, strict=True):
            plot.clear()
            plot.plot(
                xs,
                values,
                pen=pg.mkPen(t.curve, width=2),
                symbol="o",
                symbolSize=5,
                symbolBrush=t.curve,
                symbolPen=None,
            )
            plot.setYRange(0.0, max(1.0, max(values, default=0.0) * 1.15), padding=0)
        if xs:
            self.plots[0].setXRange(xs[0] - 43200, xs[-1] + 43200, padding=0)
