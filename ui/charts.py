"""pyqtgraph, behind one module: every chart of the console gets the library and its common
set-up here.

pyqtgraph is pinned to one minor line in pyproject.toml (its item APIs move between minors) and
imported only by this module (an import-linter contract checks it). It takes most of a second to
import, so `pyqtgraph()` imports it when the first chart is built, not when the console starts.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from PySide6.QtGui import QFont

from ui.theme import Theme


def pyqtgraph() -> ModuleType:
    """The pyqtgraph module, imported on first use."""
    import pyqtgraph as pg

    return pg


def style_axes(plot: Any, theme: Theme, *, tick_px: int = 14) -> None:
    """Theme one plot's left and bottom axes: lines, tick text and labels."""
    pg = pyqtgraph()
    font = QFont()
    font.setPixelSize(tick_px)
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(theme.text_dim))
        axis.setTextPen(pg.mkPen(theme.text))
        axis.setStyle(tickFont=font)
        axis.label.setDefaultTextColor(pg.mkColor(theme.text))


def style_plots(chart: Any, plots: list[Any], theme: Theme) -> None:
    """Theme a chart's background and every plot's axes (the trend widgets use it)."""
    chart.setBackground(theme.panel)
    for plot in plots:
        style_axes(plot, theme)


def linked_plots(
    rows: list[str], bottom_label: str, *, date_axis: bool = False
) -> tuple[Any, list[Any]]:
    """A chart of plots one above the other sharing their x-axis; mouse wheel zooms, drag pans,
    and every plot follows."""
    pg = pyqtgraph()
    chart = pg.GraphicsLayoutWidget()
    plots: list[Any] = []
    for i, label in enumerate(rows):
        axis = {"bottom": pg.DateAxisItem(orientation="bottom")} if date_axis else {}
        plot = chart.addPlot(row=i, col=0, axisItems=axis)
        plot.setMenuEnabled(False)
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.setLabel("left", label)
        plot.setMouseEnabled(x=True, y=False)
        if plots:
            plot.setXLink(plots[0])
        plots.append(plot)
    plots[-1].setLabel("bottom", bottom_label)
    return chart, plots
