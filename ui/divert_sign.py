"""The hazard sign a stall tile becomes when its cow's milk must be kept out of the tank.

Black on safety yellow, hazard stripes across the band, the stall number and the word DIVERT on
yellow plates in it, then the cow, DIVERT in the biggest letters the tile holds once the lines
under it have their room, why, until when, and the litres (with "tap when diverted" when it
fits). Painted with QPainter by `StallTileWidget` (no widgets, no layout); fonts are sized once
per tile size (`SignFonts`).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen, QPolygonF

from ui.theme import DIVERT_INK, DIVERT_YELLOW, Theme, icon_pixmap

DIVERT_WORD = "DIVERT"
HINT = "tap when diverted"


def band_height(h: float) -> float:
    return max(24.0, h * 0.17)


def cow_height(h: float) -> float:
    return max(14.0, h * 0.11)


def _font(base: QFont, px: int) -> QFont:
    f = QFont(base)
    f.setPixelSize(px)
    f.setBold(True)
    return f


class SignFonts:
    """The sign's fonts for a w x h tile (the band's and the cow's are the tile's own)."""

    def __init__(self, base: QFont, w: int, h: int, band: QFont, state: QFont, cow: QFont) -> None:
        unit = min(h / 220.0, w / 260.0)
        self.band, self.state, self.cow = band, state, cow
        self.band_m, self.state_m, self.cow_m = (
            QFontMetrics(band),
            QFontMetrics(state),
            QFontMetrics(cow),
        )
        self.line = _font(base, max(12, round(23 * unit)))
        self.line_m = QFontMetrics(self.line)
        # DIVERT as big as the tile holds once the cow, why and until when (and the litres,
        # on a tile tall enough) have their lines; 88 % of its width at most.
        lines = 3 if h >= 180 else 2
        room = h - band_height(h) - cow_height(h) - lines * self.line_m.height()
        room -= max(3.0, w * 0.025) * 2 + 10
        probe = QFontMetrics(_font(base, 100))
        by_width = 100 * (w * 0.88) / max(1, probe.horizontalAdvance(DIVERT_WORD))
        by_height = 100 * room / max(1, probe.height() * 0.92)
        self.word = _font(base, max(14, int(min(by_width, by_height))))
        self.word_m = QFontMetrics(self.word)


@dataclass(frozen=True, slots=True)
class SignText:
    """What the sign says. `foot`: the litres (or METER OFFLINE); `hint`: add "tap when
    diverted" to it when it fits."""

    stall: int
    cow: str
    why: str
    until: str
    foot: str | None
    hint: bool
    size: tuple[int, int]


def paint_sign(p: QPainter, text: SignText, f: SignFonts, theme: Theme, *, focused: bool) -> None:
    w, h = text.size
    ink, yellow = QColor(DIVERT_INK), QColor(DIVERT_YELLOW)
    p.fillRect(0, 0, w, h, QColor(theme.window))
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    pad = max(3.0, w * 0.025)
    body = QRectF(1.5, 1.5, w - 3.0, h - 3.0)
    p.setPen(QPen(ink, 4.0))
    p.setBrush(yellow)
    p.drawRoundedRect(body.adjusted(2, 2, -2, -2), 8, 8)
    band = QRectF(body.left() + 4, body.top() + 4, body.width() - 8, band_height(h))
    _stripes(p, band, ink, yellow)
    _band_plates(p, band, text.stall, f, pad, ink, yellow)
    inner = QRectF(body.left() + pad + 3, band.bottom() + pad * 0.3, body.width() - 2 * pad - 6, 0)
    inner.setBottom(body.bottom() - pad)
    p.setPen(ink)
    p.setFont(f.cow)
    cow_h = cow_height(h)
    cow = f.cow_m.elidedText(text.cow, Qt.TextElideMode.ElideRight, int(inner.width()))
    p.drawText(
        QRectF(inner.left(), inner.top(), inner.width(), cow_h), Qt.AlignmentFlag.AlignVCenter, cow
    )
    y = inner.top() + cow_h
    big_h = f.word_m.height() * 0.92
    p.setFont(f.word)
    p.drawText(
        QRectF(inner.left(), y, inner.width(), big_h), Qt.AlignmentFlag.AlignCenter, DIVERT_WORD
    )
    y += big_h
    lines = [text.why, text.until]
    if text.foot:
        hinted = f"{text.foot} · {HINT}"
        fits = text.hint and f.line_m.horizontalAdvance(hinted) <= inner.width()
        lines.append(hinted if fits else text.foot)
    p.setFont(f.line)
    line_h = f.line_m.height()
    for line in lines:
        if not line or y + line_h > inner.bottom() + 1:
            break
        shown = f.line_m.elidedText(line, Qt.TextElideMode.ElideRight, int(inner.width()))
        p.drawText(
            QRectF(inner.left(), y, inner.width(), line_h), Qt.AlignmentFlag.AlignCenter, shown
        )
        y += line_h
    if focused:
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(QColor(theme.focus), 5.0))
        p.drawRoundedRect(body.adjusted(2.5, 2.5, -2.5, -2.5), 8, 8)


def _stripes(p: QPainter, band: QRectF, ink: QColor, yellow: QColor) -> None:
    """Yellow and black diagonal stripes: the look of a hazard sign, seen before it is read."""
    p.save()
    p.setClipRect(band)
    p.fillRect(band, ink)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(yellow)
    band_h = band.height()
    step = max(12.0, band_h * 0.8)
    x = band.left() - band_h
    while x < band.right():
        p.drawPolygon(
            QPolygonF(
                [
                    QPointF(x, band.bottom()),
                    QPointF(x + step / 2, band.bottom()),
                    QPointF(x + step / 2 + band_h, band.top()),
                    QPointF(x + band_h, band.top()),
                ]
            )
        )
        x += step
    p.restore()


def _band_plates(
    p: QPainter, band: QRectF, stall: int, f: SignFonts, pad: float, ink: QColor, yellow: QColor
) -> None:
    """The stall number on the left and icon + DIVERT on the right, on yellow plates."""
    band_h = band.height()
    p.setFont(f.band)
    num = str(stall)
    plate = QRectF(band.left(), band.top(), f.band_m.horizontalAdvance(num) + pad * 2, band_h)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(yellow)
    p.drawRect(plate)
    p.setPen(ink)
    p.drawText(plate, Qt.AlignmentFlag.AlignCenter, num)
    p.setFont(f.state)
    icon_px = round(band_h * 0.72)
    label_w = f.state_m.horizontalAdvance(DIVERT_WORD) + icon_px + pad * 2.5
    word = QRectF(band.right() - label_w, band.top(), label_w, band_h)
    p.setPen(Qt.PenStyle.NoPen)
    p.drawRect(word)
    p.setPen(ink)
    p.drawPixmap(
        QPointF(word.left() + pad, band.top() + (band_h - icon_px) / 2),
        icon_pixmap("divert", DIVERT_INK, icon_px, DIVERT_YELLOW),
    )
    p.drawText(
        word.adjusted(0, 0, -pad, 0),
        Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
        DIVERT_WORD,
    )
