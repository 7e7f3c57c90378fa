"""One stall's tile: who is milking, how much so far, how fast, against what she usually gives.

The tile paints itself with QPainter (no child widgets, no layouts): with 80 stalls updating
twice a second, a composite of labels and a plot per tile would spend the GUI thread on style
and layout work. What it shows is held in plain attributes and changed only through the
`set_*`/`apply_*` methods, each of which schedules a repaint only when something visible changed.

State is shown by the colour of the top band AND an icon AND a word (IDLE, MILKING, DONE,
INCOMPLETE, ALERT, METER OFFLINE); alerts are chips with words; a focused tile has a thick ring.

A cow whose milk must be kept out of the tank turns the whole tile into a hazard sign: black on
safety yellow, hazard stripes across the band, DIVERT in the biggest letters the tile holds,
why and until when under it (`set_divert`). It beats every other state: an offline meter or an
alert never hides it. Once the operator confirms "milk diverted" (key D, or the stall's
actions) the band says DIVERTED and the tile calms down, with a yellow chip keeping the reason
in sight. The first milking after a withdrawal gets a green "may go back in the tank" chip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFocusEvent,
    QFont,
    QFontMetrics,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPolygonF,
    QResizeEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from milkconsole.herd.directory import display_tag
from milkconsole.herd.separation import NOT_DIVERTED, DivertDecision
from ui.divert_sign import SignFonts, SignText, paint_sign
from ui.theme import DARK, DIVERT_INK, DIVERT_YELLOW, Theme, icon_pixmap

# Flow that fills the gauge; typical peak flow of a high-yielding cow is 4-5 L/min.
GAUGE_MAX_L_MIN = 6.0
# Curve points kept per session. When full, pairs are averaged so the whole session's curve
# stays visible at half the resolution; memory per tile stays fixed.
CURVE_POINTS = 256

TILE_STATES = ("idle", "milking", "done", "incomplete", "alert", "offline", "divert", "diverted")
# The states someone has to see to: a thicker frame, and named even when their side is hidden.
ATTENTION_STATES = frozenset({"alert", "incomplete", "offline", "divert"})


@dataclass(frozen=True, slots=True)
class CowIdentity:
    """What the cow line of a tile says.

    `status` is `known` (tag matched an animal), `manual` (operator entered the cow),
    `unknown_tag` (a tag no animal has), `no_id` (no tag read).
    """

    status: str
    number: str | None = None
    name: str | None = None
    rfid: str | None = None

    @property
    def line(self) -> str:
        if self.status in ("known", "manual") and self.number:
            text = self.number + (f"  {self.name}" if self.name else "")
            return text + ("  (manual)" if self.status == "manual" else "")
        if self.status == "unknown_tag":
            return f"unknown tag {display_tag(self.rfid or '')}"
        return "? no ID"


NO_ID = CowIdentity("no_id")


class FlowCurve:
    """A session's flow curve in a preallocated array (fixed memory; see CURVE_POINTS)."""

    __slots__ = ("_pending", "_pending_n", "_stride", "n", "values")

    def __init__(self) -> None:
        self.values = np.zeros(CURVE_POINTS, dtype=np.float64)
        self.n = 0
        # After the first halving every stored point is the mean of 2**k raw points; raw points
        # wait here until there are enough of them.
        self._pending = 0.0
        self._pending_n = 0
        self._stride = 1

    def clear(self) -> None:
        self.n = 0
        self._pending = 0.0
        self._pending_n = 0
        self._stride = 1

    def add(self, flow_l_min: float) -> None:
        self._pending += flow_l_min
        self._pending_n += 1
        if self._pending_n < self._stride:
            return
        value = self._pending / self._pending_n
        self._pending, self._pending_n = 0.0, 0
        if self.n == CURVE_POINTS:
            half = self.values.reshape(-1, 2).mean(axis=1)
            self.values[: CURVE_POINTS // 2] = half
            self.n = CURVE_POINTS // 2
            self._stride *= 2
        self.values[self.n] = value
        self.n += 1

    def view(self) -> np.ndarray:
        return self.values[: self.n]

    def prepend(self, flows: Sequence[float]) -> None:
        """Put earlier points before the ones already here (a resumed session's stored curve
        arrives after its first live readings)."""
        if not flows:
            return
        live = [float(v) for v in self.view()]
        if self._pending_n:
            live.append(self._pending / self._pending_n)
        self.clear()
        for value in [*flows, *live]:
            self.add(value)


def font_scale(w: float, h: float) -> float:
    """How big a w x h tile draws its text (1.0: 62-px yield digits, at 260 x 220)."""
    return min(h / 220.0, w / 260.0)


class _Fonts:
    """Fonts sized for one tile size, recomputed only on resize."""

    def __init__(self, base: QFont, w: int, h: int) -> None:
        unit = font_scale(w, h)
        self.band = self._make(base, max(11, round(22 * unit)), bold=True)
        self.state = self._make(base, max(9, round(14 * unit)), bold=True)
        self.cow = self._make(base, max(10, round(18 * unit)), bold=True)
        self.big = self._make(base, max(18, round(62 * unit)), bold=True)
        self.unit = self._make(base, max(10, round(20 * unit)), bold=True)
        self.small = self._make(base, max(9, round(13 * unit)), bold=False)
        self.chip = self._make(base, max(9, round(12 * unit)), bold=True)
        self.sign = SignFonts(base, w, h, self.band, self.state, self.cow)
        self.band_m = QFontMetrics(self.band)
        self.state_m = QFontMetrics(self.state)
        self.cow_m = QFontMetrics(self.cow)
        self.big_m = QFontMetrics(self.big)
        self.small_m = QFontMetrics(self.small)
        self.chip_m = QFontMetrics(self.chip)

    @staticmethod
    def _make(base: QFont, px: int, *, bold: bool) -> QFont:
        f = QFont(base)
        f.setPixelSize(px)
        f.setBold(bold)
        return f


class StallTileWidget(QWidget):
    """The tile for one stall. Signals carry the stall number."""

    activated = Signal(int)  # click/tap, Enter or Space: open the stall's actions
    manual_id_requested = Signal(int)  # key M
    reattach_requested = Signal(int)  # key R
    divert_confirm_requested = Signal(int)  # key D: "milk diverted"

    def __init__(self, stall: int, meter_id: str, theme: Theme = DARK) -> None:
        super().__init__()
        self.stall = stall
        self.meter_id = meter_id
        self._theme = theme
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(150, 110)
        # What is shown.
        self.session_key: str | None = None
        self.session_state = "idle"  # idle | milking | done | incomplete
        self.meter_state = "ok"
        self.identity: CowIdentity = NO_ID
        self.yield_l: float | None = None
        self.yield_offset_l = 0.0
        self.flow_l_min = 0.0
        self.expected_l: float | None = None
        self.alerts: tuple[str, ...] = ()
        self.note = ""  # an operator's mark on this session, e.g. "re-attached"
        # Milk separation (see the module docstring): the decision for this milking, when the
        # milk may go back (in words), who confirmed it went to the divert line.
        self.divert: DivertDecision = NOT_DIVERTED
        self.divert_until = ""
        self.divert_confirmed_by: str | None = None
        self.curve = FlowCurve()
        self.paint_count = 0
        self._fonts = _Fonts(self.font(), self.width(), self.height())
        self._update_accessible()

    # -- what is shown ------------------------------------------------------------------------
    @property
    def display_state(self) -> str:
        """The one state the band shows: divert beats offline beats alert beats the session's
        state (a cow whose milk must be kept out is never shown as anything else)."""
        if self.divert_confirmed_by is not None:
            return "diverted"
        if self.divert.divert:
            return "divert"
        if self.meter_state == "offline":
            return "offline"
        if self.alerts:
            return "alert"
        return self.session_state

    def set_theme(self, theme: Theme) -> None:
        self._theme = theme
        self.update()

    def start_session(self, key: str) -> None:
        """A new cow is in: clear the last cow's figures."""
        self.session_key = key
        self.session_state = "milking"
        self.identity = NO_ID
        self.yield_l = 0.0
        self.yield_offset_l = 0.0
        self.flow_l_min = 0.0
        self.expected_l = None
        self.alerts = ()
        self.note = ""
        self.divert, self.divert_until, self.divert_confirmed_by = NOT_DIVERTED, "", None
        self.curve.clear()
        self._changed()

    def apply_session(
        self, key: str, state: str, yield_l: float, yield_offset_l: float, flow_l_min: float
    ) -> None:
        """The tracker's view of the session (started / updated / completed)."""
        if key != self.session_key:
            self.start_session(key)
        shown = (
            "milking"
            if state == "in_progress"
            else ("done" if state == "completed" else "incomplete")
        )
        if (
            shown == self.session_state
            and yield_l == self.yield_l
            and yield_offset_l == self.yield_offset_l
            and flow_l_min == self.flow_l_min
        ):
            return
        self.session_state = shown
        self.yield_l = yield_l
        self.yield_offset_l = yield_offset_l
        self.flow_l_min = flow_l_min if shown == "milking" else 0.0
        self._changed()

    def add_reading(
        self, session_key: str | None, meter_yield_l: float | None, flow_l_min: float | None
    ) -> None:
        """A live reading: extends the curve and moves the yield between session updates."""
        if (
            session_key is None
            or session_key != self.session_key
            or self.session_state != "milking"
        ):
            return
        if flow_l_min is not None:
            self.flow_l_min = flow_l_min
            self.curve.add(flow_l_min)
        if meter_yield_l is not None:
            self.yield_l = meter_yield_l + self.yield_offset_l
        self._changed()

    def restore_curve(self, session_key: str, flows: Sequence[float]) -> None:
        """The stored start of this session's curve (after a console restart), if the tile still
        shows that session."""
        if session_key == self.session_key and flows:
            self.curve.prepend(flows)
            self._changed()

    def set_identity(self, identity: CowIdentity) -> None:
        if identity != self.identity:
            self.identity = identity
            self._changed()

    def set_expected(self, expected_l: float | None) -> None:
        if expected_l != self.expected_l:
            self.expected_l = expected_l
            self._changed()

    def set_alerts(self, alerts: tuple[str, ...]) -> None:
        if alerts != self.alerts:
            self.alerts = alerts
            self._changed()

    def set_divert(
        self, decision: DivertDecision, until: str = "", confirmed_by: str | None = None
    ) -> None:
        """Whether this milking's milk must be kept out of the tank (and why, until when in
        words), and who confirmed it went to the divert line."""
        if (decision, until, confirmed_by) != (
            self.divert,
            self.divert_until,
            self.divert_confirmed_by,
        ):
            self.divert, self.divert_until, self.divert_confirmed_by = decision, until, confirmed_by
            self._changed()

    def set_note(self, note: str) -> None:
        if note != self.note:
            self.note = note
            self._changed()

    def set_meter_state(self, state: str) -> None:
        if state != self.meter_state:
            self.meter_state = state
            self._changed()

    def go_idle(self) -> None:
        """The cow left a while ago: an empty stall again (the figures stay in the database)."""
        if self.session_state in ("done", "incomplete"):
            self.session_state = "idle"
            self.session_key = None
            self.identity = NO_ID
            self.yield_l = None
            self.expected_l = None
            self.alerts = ()
            self.note = ""
            self.flow_l_min = 0.0
            self.divert, self.divert_until, self.divert_confirmed_by = NOT_DIVERTED, "", None
            self.curve.clear()
            self._changed()

    def _changed(self) -> None:
        self._update_accessible()
        self.update()

    def summary(self) -> str:
        """The tile in words (accessibility, tests, the details dialog)."""
        parts = [f"Stall {self.stall}", self._theme.state(self.display_state).label]
        parts.append(self.identity.line)
        if self.divert.divert or self.divert_confirmed_by:
            why = self.divert.reason_text or "diverted by the operator"
            if self.divert_confirmed_by:
                parts.append(f"milk diverted ({why}), confirmed by {self.divert_confirmed_by}")
            else:
                parts.append(f"DIVERT the milk: {why}, {self.divert_until}")
        elif self.divert.back_to_tank:
            parts.append("milk may go back in the tank")
        if self.yield_l is not None:
            parts.append(f"{self.yield_l:.1f} L")
        if self.expected_l:
            parts.append(f"expected {self.expected_l:.1f} L")
        parts.extend(self.alerts)
        if self.note:
            parts.append(self.note)
        return ", ".join(parts)

    def _update_accessible(self) -> None:
        self.setAccessibleName(self.summary())

    # -- input --------------------------------------------------------------------------------
    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(
            event.position().toPoint()
        ):
            self.activated.emit(self.stall)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.activated.emit(self.stall)
        elif key == Qt.Key.Key_M:
            self.manual_id_requested.emit(self.stall)
        elif key == Qt.Key.Key_R:
            self.reattach_requested.emit(self.stall)
        elif key == Qt.Key.Key_D:
            self.divert_confirm_requested.emit(self.stall)
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def focusInEvent(self, event: QFocusEvent) -> None:
        self.update()
        super().focusInEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        self.update()
        super().focusOutEvent(event)

    def sizeHint(self) -> QSize:
        return QSize(280, 210)

    def resizeEvent(self, event: QResizeEvent) -> None:
        self._fonts = _Fonts(self.font(), self.width(), self.height())
        super().resizeEvent(event)

    # -- painting -----------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        self.paint_count += 1
        if self.display_state == "divert":
            p = QPainter(self)
            paint_sign(p, self._sign_text(), self._fonts.sign, self._theme, focused=self.hasFocus())
            p.end()
            return
        t = self._theme
        f = self._fonts
        w, h = self.width(), self.height()
        state = self.display_state
        style = t.state(state)
        p = QPainter(self)
        p.fillRect(0, 0, w, h, QColor(t.window))
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pad = max(3.0, w * 0.02)
        body = QRectF(1.5, 1.5, w - 3.0, h - 3.0)
        state_color = QColor(style.color)
        # Body with a state-coloured frame (thicker when something needs attention).
        frame = 5.0 if state in ATTENTION_STATES else (4.0 if state == "diverted" else 2.0)
        p.setPen(QPen(state_color if frame > 2 else QColor(t.tile_border), frame))
        p.setBrush(QColor(t.tile))
        p.drawRoundedRect(body.adjusted(frame / 2, frame / 2, -frame / 2, -frame / 2), 8, 8)

        # Band: stall number, icon, state word.
        band_h = max(24.0, h * 0.17)
        band = QRectF(body.left(), body.top(), body.width(), band_h)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(state_color)
        p.drawRoundedRect(band, 8, 8)
        p.drawRect(QRectF(band.left(), band.top() + band_h / 2, band.width(), band_h / 2))
        on = QColor(style.on_color)
        p.setPen(on)
        p.setFont(f.band)
        p.drawText(
            band.adjusted(pad, 0, 0, 0),
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
            str(self.stall),
        )
        icon_px = round(band_h * 0.72)
        label = style.label
        p.setFont(f.state)
        label_w = f.state_m.horizontalAdvance(label)
        num_w = f.band_m.horizontalAdvance(str(self.stall)) + pad * 2
        room = band.width() - num_w - icon_px - pad * 2
        if label_w > room:
            label = label.split()[-1]  # METER OFFLINE -> OFFLINE on narrow tiles
            label_w = f.state_m.horizontalAdvance(label)
        label_rect = QRectF(band.right() - pad - label_w, band.top(), label_w, band_h)
        p.drawText(label_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, label)
        p.drawPixmap(
            QPointF(label_rect.left() - icon_px - pad * 0.6, band.top() + (band_h - icon_px) / 2),
            icon_pixmap(style.icon, style.on_color, icon_px, style.color),
        )

        y = band.bottom() + pad * 0.5
        inner_l = body.left() + pad + 2
        inner_r = body.right() - pad - 2
        gauge_w = max(10.0, w * 0.07)

        # Cow line.
        cow_h = max(16.0, h * 0.13)
        ident = self.identity
        p.setFont(f.cow)
        if ident.status in ("known", "manual"):
            p.setPen(QColor(t.text))
        else:
            p.setPen(QColor(t.warn_text))  # the operator should type the cow number
        cow_text = ident.line if self.session_state != "idle" else ""
        cow_text = f.cow_m.elidedText(cow_text, Qt.TextElideMode.ElideRight, int(inner_r - inner_l))
        p.drawText(
            QRectF(inner_l, y, inner_r - inner_l, cow_h), Qt.AlignmentFlag.AlignVCenter, cow_text
        )
        y += cow_h

        # Big yield digits and the flow gauge beside them.
        big_h = max(24.0, h * 0.29)
        text_r = inner_r - gauge_w - pad
        value = yield_digits(self.yield_l)
        p.setFont(f.big)
        p.setPen(QColor(t.text) if state != "offline" else QColor(t.text_dim))
        big_rect = QRectF(inner_l, y, text_r - inner_l, big_h)
        advance = f.big_m.horizontalAdvance(value)
        p.drawText(big_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, value)
        if self.yield_l is not None:
            p.setFont(f.unit)
            p.setPen(QColor(t.text_dim))
            p.drawText(
                QRectF(inner_l + advance + pad * 0.5, y, text_r - inner_l - advance, big_h * 0.92),
                Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignLeft,
                "L",
            )
        gauge = QRectF(inner_r - gauge_w, y + 2, gauge_w, big_h + h * 0.12 - 4)
        self._paint_gauge(p, gauge)
        y += big_h

        # Expected yield: bar with the target mark, and the percentage.
        compact = h < 150
        exp_h = max(14.0, h * 0.12) if self.expected_l or not compact else 0.0
        self._paint_expected(p, QRectF(inner_l, y, text_r - inner_l, exp_h))
        y += exp_h

        # Alert chips, else the flow figure (small tiles drop the figure: the gauge shows it).
        chips = self._chips()
        line_h = max(14.0, h * 0.10) if chips or self.note or not compact else 0.0
        line = QRectF(inner_l, y, inner_r - inner_l, line_h)
        if chips:
            self._paint_chips(p, line, chips)
        elif self.session_state == "milking" and line_h:
            p.setFont(f.small)
            p.setPen(QColor(t.text_dim))
            p.drawText(
                line,
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                f"flow {self.flow_l_min:.1f} L/min",
            )
        if self.note and not chips:
            p.setFont(f.small)
            p.setPen(QColor(t.text))
            p.drawText(
                line, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, f"↻ {self.note}"
            )
        y += line_h

        # Flow curve.
        curve = QRectF(inner_l, y + 1, inner_r - inner_l, body.bottom() - pad - y - 1)
        if curve.height() > 6:
            self._paint_curve(p, curve)

        if state == "offline":
            self._paint_offline(p, body, band_h)
        if self.hasFocus():
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.setPen(QPen(QColor(t.focus), 5.0))
            p.drawRoundedRect(body.adjusted(2.5, 2.5, -2.5, -2.5), 8, 8)
        p.end()

    def _paint_gauge(self, p: QPainter, r: QRectF) -> None:
        t = self._theme
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(t.gauge_back))
        p.drawRoundedRect(r, 3, 3)
        frac = max(0.0, min(1.0, self.flow_l_min / GAUGE_MAX_L_MIN))
        if frac > 0:
            fill = QRectF(r.left(), r.bottom() - r.height() * frac, r.width(), r.height() * frac)
            p.setBrush(QColor(t.curve))
            p.drawRoundedRect(fill, 3, 3)
        # Ticks every 2 L/min so the level reads without the colour.
        p.setPen(QPen(QColor(t.text_dim), 1.0))
        for lmin in (2.0, 4.0):
            ty = r.bottom() - r.height() * lmin / GAUGE_MAX_L_MIN
            p.drawLine(QPointF(r.left(), ty), QPointF(r.left() + r.width() * 0.4, ty))

    def _paint_expected(self, p: QPainter, r: QRectF) -> None:
        t = self._theme
        f = self._fonts
        if not self.expected_l or self.yield_l is None or self.session_state == "idle":
            return
        pct = 100.0 * self.yield_l / self.expected_l
        text = f"{pct:.0f}% of {self.expected_l:.1f}"
        text_w = f.small_m.horizontalAdvance(text) + 6
        bar_w = r.width() - text_w
        bar_h = max(6.0, r.height() * 0.45)
        bar = QRectF(r.left(), r.center().y() - bar_h / 2, max(0.0, bar_w), bar_h)
        scale_l = self.expected_l * 1.25  # the target mark sits at 80 % of the bar
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(t.gauge_back))
        p.drawRect(bar)
        fill_w = bar.width() * min(1.0, self.yield_l / scale_l)
        p.setBrush(QColor(t.state("done").color if pct >= 100 else t.curve))
        p.drawRect(QRectF(bar.left(), bar.top(), fill_w, bar.height()))
        mark_x = bar.left() + bar.width() * self.expected_l / scale_l
        p.setPen(QPen(QColor(t.target), 3.0))
        p.drawLine(QPointF(mark_x, bar.top() - 3), QPointF(mark_x, bar.bottom() + 3))
        p.setFont(f.small)
        p.setPen(QColor(t.text))
        p.drawText(
            QRectF(r.right() - text_w, r.top(), text_w, r.height()),
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
            text,
        )

    def _sign_text(self) -> SignText:
        """What the hazard sign says (`ui.divert_sign`)."""
        foot = None
        if self.meter_state == "offline":
            foot = "METER OFFLINE"
        elif self.yield_l is not None:
            foot = f"{self.yield_l:.1f} L"
        return SignText(
            stall=self.stall,
            cow=self.identity.line,
            why=self.divert.short_text or "diverted by the operator",
            until=self.divert_until,
            foot=foot,
            hint=self.meter_state != "offline",
            size=(self.width(), self.height()),
        )

    def _chips(self) -> list[tuple[str, str, str]]:
        """(words, background, ink) of each chip: the divert line first, then alerts."""
        t = self._theme
        out: list[tuple[str, str, str]] = []
        if self.divert_confirmed_by is not None:
            why = self.divert.short_text or "operator"
            out.append((f"→ DIVERT LINE · {why}", DIVERT_YELLOW, DIVERT_INK))
        elif self.divert.back_to_tank:
            out.append(("✓ MAY GO BACK IN THE TANK", t.state("done").color, "#ffffff"))
        alert = t.state("alert").color
        out.extend((f"! {a}", alert, "#ffffff") for a in self.alerts)
        return out

    def _paint_chips(self, p: QPainter, r: QRectF, chips: list[tuple[str, str, str]]) -> None:
        f = self._fonts
        x = r.left()
        p.setFont(f.chip)
        for label, back, ink in chips:
            cw: float = f.chip_m.horizontalAdvance(label) + 10
            if x + cw > r.right():
                if x == r.left():  # the first chip always shows, cut to the room there is
                    label = f.chip_m.elidedText(
                        label, Qt.TextElideMode.ElideRight, int(r.width()) - 10
                    )
                    cw = r.width()
                else:
                    break
            chip = QRectF(x, r.top() + 1, cw, r.height() - 2)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(back))
            p.drawRoundedRect(chip, 4, 4)
            p.setPen(QColor(ink))
            p.drawText(chip, Qt.AlignmentFlag.AlignCenter, label)
            x += cw + 4

    def _paint_curve(self, p: QPainter, r: QRectF) -> None:
        t = self._theme
        data = self.curve.view()
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(t.panel))
        p.drawRect(r)
        n = len(data)
        if n < 2:
            return
        # The x scale grows with the session up to the buffer, so the curve fills the strip.
        xs = (
            np.linspace(r.left(), r.right(), n)
            if n >= 60
            else r.left() + np.arange(n) * (r.width() / 59.0)
        )
        ys = r.bottom() - np.clip(data / GAUGE_MAX_L_MIN, 0.0, 1.0) * (r.height() - 2)
        poly = QPolygonF([QPointF(x, y) for x, y in zip(xs.tolist(), ys.tolist(), strict=True)])
        p.setPen(QPen(QColor(t.curve), 2.0))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawPolyline(poly)

    def _paint_offline(self, p: QPainter, body: QRectF, band_h: float) -> None:
        # Hatching over the figures: offline is visible without the colour, and stale numbers
        # cannot be mistaken for live ones.
        t = self._theme
        area = QRectF(body.left(), body.top() + band_h, body.width(), body.height() - band_h)
        brush = QBrush(QColor(t.state("offline").color), Qt.BrushStyle.BDiagPattern)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(brush)
        p.drawRect(area)
        p.setFont(self._fonts.cow)
        p.setPen(QColor(t.text))
        msg = "NO READINGS"
        mw = self._fonts.cow_m.horizontalAdvance(msg) + 16
        box = QRectF(area.center().x() - mw / 2, area.center().y() - 16, mw, 32)
        p.setBrush(QColor(t.tile))
        p.drawRect(box)
        p.drawText(box, Qt.AlignmentFlag.AlignCenter, msg)


def yield_digits(value: float | None) -> str:
    """How the big figure reads: one decimal, a dash for no session."""
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.1f}"
