"""Reports printed to PDF with Qt alone: `QTextDocument` lays out `ui.report_html`, `QPdfWriter`
writes A4 pages, and each page gets a footer (report, page n of m, when it was made). Trends
carry a chart drawn with `QPainter` (`trend_chart`), the same series the console plots.

`write_report_pdf(report, path)` works without a display (the offscreen platform); it makes the
`QGuiApplication` it needs when none is running.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtCore import QMarginsF, QPointF, QRectF, QSizeF, Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QFont,
    QGuiApplication,
    QImage,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
    QPen,
    QTextDocument,
)

from milkconsole.reports.cow import CowTrend
from milkconsole.reports.herd import HerdTrend
from milkconsole.reports.tables import Report
from ui.report_html import report_html, title_of

RESOLUTION_DPI = 150
MARGIN_MM = 14.0
CHART_RESOURCE = "chart://trend"
CHART_SIZE = (1600, 620)


def ensure_gui_app() -> QGuiApplication:
    app = QGuiApplication.instance()
    if isinstance(app, QGuiApplication):
        return app
    return QGuiApplication(["milkconsole-report"])


Series = tuple[str, Sequence[tuple[float, float]], QColor, Qt.PenStyle]


def draw_chart(image: QImage, series: Sequence[Series], x_label: str, y_label: str) -> None:
    """Lines on white with a labelled frame and grid; x and y ranges from the data (y from 0)."""
    w, h = image.width(), image.height()
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.fillRect(0, 0, w, h, QColor("white"))
    font = QFont("DejaVu Sans")
    font.setPixelSize(24)
    p.setFont(font)
    left, right, top, bottom = 110.0, 30.0, 60.0, 80.0
    plot = QRectF(left, top, w - left - right, h - top - bottom)
    xs = [x for _, pts, _, _ in series for x, _ in pts]
    ys = [y for _, pts, _, _ in series for _, y in pts]
    if not xs:
        p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "no milkings in this period")
        p.end()
        return
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x1 = x0 + 1
    y1 = max(ys) * 1.1 or 1.0

    def at(x: float, y: float) -> QPointF:
        return QPointF(
            plot.left() + (x - x0) / (x1 - x0) * plot.width(),
            plot.bottom() - y / y1 * plot.height(),
        )

    p.setPen(QPen(QColor("#bbbbbb"), 1))
    for i in range(6):
        y = y1 * i / 5
        pt = at(x0, y)
        p.drawLine(QPointF(plot.left(), pt.y()), QPointF(plot.right(), pt.y()))
        p.setPen(QColor("black"))
        p.drawText(QRectF(0, pt.y() - 15, left - 12, 30), Qt.AlignmentFlag.AlignRight, f"{y:,.0f}")
        p.setPen(QPen(QColor("#bbbbbb"), 1))
    for i in range(6):
        x = x0 + (x1 - x0) * i / 5
        pt = at(x, 0)
        p.setPen(QColor("black"))
        p.drawText(
            QRectF(pt.x() - 80, plot.bottom() + 6, 160, 30),
            Qt.AlignmentFlag.AlignHCenter,
            f"{x:,.0f}",
        )
    p.setPen(QPen(QColor("black"), 2))
    p.drawRect(plot)
    p.drawText(
        QRectF(plot.left(), h - 40, plot.width(), 36), Qt.AlignmentFlag.AlignHCenter, x_label
    )
    legend_x = plot.left()
    for name, pts, color, style in series:
        pen = QPen(color, 4, style)
        p.setPen(pen)
        for a, b in itertools.pairwise(pts):
            p.drawLine(at(*a), at(*b))
        p.drawLine(QPointF(legend_x, 30), QPointF(legend_x + 50, 30))
        p.setPen(QColor("black"))
        p.drawText(QPointF(legend_x + 60, 38), name)
        legend_x += 80 + p.fontMetrics().horizontalAdvance(name)
    p.drawText(QRectF(plot.right() - 400, 14, 400, 30), Qt.AlignmentFlag.AlignRight, y_label)
    p.end()


def trend_chart(report: Report) -> QImage | None:
    """The chart a cow or herd report prints (None for the other reports)."""
    image = QImage(*CHART_SIZE, QImage.Format.Format_RGB32)
    if isinstance(report, CowTrend):
        use_dim = all(d.dim is not None for d in report.days) and bool(report.days)
        origin = report.days[0].day if report.days else None

        def x(d: object) -> float:
            day = d.day  # type: ignore[attr-defined]
            if use_dim:
                return float(d.dim)  # type: ignore[attr-defined]
            return float((day - origin).days) if origin else 0.0

        milk = [(x(d), d.yield_l) for d in report.days]
        expected = [(x(d), d.expected_l) for d in report.days if d.expected_l is not None]
        draw_chart(
            image,
            [
                ("milk per day", milk, QColor("#0d47a1"), Qt.PenStyle.SolidLine),
                ("expected", expected, QColor("#bf360c"), Qt.PenStyle.DashLine),
            ],
            "days in milk" if use_dim else f"days since {origin}",
            "litres per day",
        )
        return image
    if isinstance(report, HerdTrend):
        milk = [(float(i), d.yield_l) for i, d in enumerate(report.days)]
        draw_chart(
            image,
            [("total milk per day", milk, QColor("#0d47a1"), Qt.PenStyle.SolidLine)],
            f"days since {report.first.isoformat()}",
            "litres per day",
        )
        return image
    return None


def report_document(report: Report, *, farm: str = "") -> QTextDocument:
    """The report laid out as a `QTextDocument` (the chart added as a resource when it has one)."""
    doc = QTextDocument()
    chart = trend_chart(report)
    if chart is not None:
        doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(CHART_RESOURCE), chart)
    doc.setHtml(report_html(report, farm=farm, chart=CHART_RESOURCE if chart is not None else ""))
    return doc


def write_report_pdf(report: Report, path: Path, *, farm: str = "") -> int:
    """Print `report` to an A4 PDF at `path`; the number of pages."""
    ensure_gui_app()
    path = Path(path)
    writer = QPdfWriter(str(path))
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageMargins(
        QMarginsF(MARGIN_MM, MARGIN_MM, MARGIN_MM, MARGIN_MM), QPageLayout.Unit.Millimeter
    )
    writer.setResolution(RESOLUTION_DPI)
    title, sub = title_of(report)
    writer.setTitle(f"{title} — {sub}")
    writer.setCreator("Milk Console")
    doc = report_document(report, farm=farm)
    doc.documentLayout().setPaintDevice(writer)
    area = writer.pageLayout().paintRectPixels(RESOLUTION_DPI)
    footer_h = RESOLUTION_DPI * 0.3
    body = QSizeF(area.width(), area.height() - footer_h)
    doc.setPageSize(body)
    pages = doc.pageCount()
    made = datetime.now(UTC).astimezone().strftime("%d %b %Y %H:%M")
    painter = QPainter(writer)
    try:
        for page in range(pages):
            if page:
                writer.newPage()
            painter.save()
            painter.translate(0, -page * body.height())
            doc.drawContents(painter, QRectF(0, page * body.height(), body.width(), body.height()))
            painter.restore()
            font = QFont("DejaVu Sans")
            font.setPointSizeF(7.5)
            painter.setFont(font)
            painter.setPen(QColor("#444444"))
            line = QRectF(0, body.height(), body.width(), footer_h)
            painter.drawText(
                line,
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom,
                f"Milk Console · {title} · {sub}",
            )
            painter.drawText(
                line,
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom,
                f"made {made} · page {page + 1} of {pages}",
            )
    finally:
        painter.end()
    return pages
