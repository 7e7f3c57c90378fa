"""Console look: the dark and light themes (colours per stall state, fonts) and the SVG icons.

A parlour is bright and wet and the operator glances from metres away, so every state has a
colour AND an icon AND a word; colours alone never carry a meaning. Style sheets for standard
widgets live in `resources/styles/<theme>.qss`; this module holds what custom-painted widgets
(stall tiles) need and renders the icons in `resources/icons/` to cached pixmaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

RESOURCES_DIR = Path(__file__).resolve().parent.parent / "resources"
ICONS_DIR = RESOURCES_DIR / "icons"
STYLES_DIR = RESOURCES_DIR / "styles"

# Icons are drawn in these placeholder colours and recoloured when rendered: the ink, and the
# cut-outs (the tick in a disc, the bar of a "!") which take the colour behind the icon.
_ICON_INK = "#000000"
_ICON_CUT = "#ffffff"


@dataclass(frozen=True, slots=True)
class StateStyle:
    """How one stall/meter state looks: band colour, text colour on it, icon name, word."""

    color: str
    on_color: str
    icon: str
    label: str


@dataclass(frozen=True, slots=True)
class Theme:
    """Colours for the custom-painted widgets; `name` also picks the QSS file."""

    name: str
    window: str
    panel: str
    tile: str
    tile_border: str
    text: str
    text_dim: str
    warn_text: str  # text that asks for action (unknown tag, no ID), readable on `tile`
    focus: str
    curve: str
    target: str
    gauge_back: str
    states: dict[str, StateStyle]

    def state(self, name: str) -> StateStyle:
        return self.states[name]


# Milk to keep out of the tank: safety yellow with black, the look of a hazard sign, which no
# other state uses (and a word and an icon of its own, like every state).
DIVERT_YELLOW = "#ffd600"
DIVERT_INK = "#111111"


def _states(
    idle: str, milking: str, done: str, incomplete: str, alert: str, offline: str, dark: str
) -> dict[str, StateStyle]:
    return {
        "idle": StateStyle(idle, "#ffffff", "idle", "IDLE"),
        "milking": StateStyle(milking, "#ffffff", "milking", "MILKING"),
        "done": StateStyle(done, "#ffffff", "done", "DONE"),
        # Amber needs dark text to stay readable.
        "incomplete": StateStyle(incomplete, dark, "incomplete", "INCOMPLETE"),
        "alert": StateStyle(alert, "#ffffff", "alert", "ALERT"),
        "offline": StateStyle(offline, "#ffffff", "offline", "METER OFFLINE"),
        # Her milk must go to the divert line, and nobody has confirmed it yet / someone has.
        "divert": StateStyle(DIVERT_YELLOW, DIVERT_INK, "divert", "DIVERT"),
        "diverted": StateStyle(DIVERT_YELLOW, DIVERT_INK, "diverted", "DIVERTED"),
    }


DARK = Theme(
    name="dark",
    window="#0e1216",
    panel="#161c22",
    tile="#1c232b",
    tile_border="#313b46",
    text="#f4f7fa",
    text_dim="#b4bfca",
    warn_text="#ffca28",
    focus="#ffd54f",
    curve="#64b5f6",
    target="#ffd54f",
    gauge_back="#2c3640",
    states=_states(
        idle="#4f5b66",
        milking="#1565c0",
        done="#2e7d32",
        incomplete="#ffb300",
        alert="#d32f2f",
        offline="#7b1fa2",
        dark="#111111",
    ),
)

LIGHT = Theme(
    name="light",
    window="#e9edf1",
    panel="#f7f9fb",
    tile="#ffffff",
    tile_border="#9aa6b2",
    text="#0b0f14",
    text_dim="#3c4650",
    warn_text="#8a4500",
    focus="#ff6f00",
    curve="#0d47a1",
    target="#bf360c",
    gauge_back="#d5dce3",
    states=_states(
        idle="#546270",
        milking="#0d47a1",
        done="#1b5e20",
        incomplete="#ffa000",
        alert="#b71c1c",
        offline="#6a1b9a",
        dark="#111111",
    ),
)

THEMES: dict[str, Theme] = {DARK.name: DARK, LIGHT.name: LIGHT}


def get_theme(name: str) -> Theme:
    """The theme called `name`; an unknown name is refused with the known ones listed."""
    try:
        return THEMES[name]
    except KeyError:
        raise ValueError(f"unknown theme {name!r} (known: {', '.join(sorted(THEMES))})") from None


def style_sheet(theme: Theme) -> str:
    """The QSS text for `theme` (empty when the file is missing, so the app still starts)."""
    path = STYLES_DIR / f"{theme.name}.qss"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def apply_theme(app: QApplication, theme: Theme) -> None:
    """Set palette, base font and style sheet on the whole application."""
    pal = QPalette()
    pal.setColor(QPalette.ColorRole.Window, QColor(theme.window))
    pal.setColor(QPalette.ColorRole.WindowText, QColor(theme.text))
    pal.setColor(QPalette.ColorRole.Base, QColor(theme.panel))
    pal.setColor(QPalette.ColorRole.AlternateBase, QColor(theme.tile))
    pal.setColor(QPalette.ColorRole.Text, QColor(theme.text))
    pal.setColor(QPalette.ColorRole.Button, QColor(theme.tile))
    pal.setColor(QPalette.ColorRole.ButtonText, QColor(theme.text))
    pal.setColor(QPalette.ColorRole.Highlight, QColor(theme.states["milking"].color))
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    app.setPalette(pal)
    font = QFont(app.font())
    font.setPointSize(14)
    app.setFont(font)
    app.setStyleSheet(style_sheet(theme))


@lru_cache(maxsize=256)
def _svg_bytes(name: str, color: str, back: str) -> bytes:
    text = (ICONS_DIR / f"{name}.svg").read_text(encoding="utf-8")
    text = text.replace(_ICON_CUT, "@CUT@").replace(_ICON_INK, color).replace("@CUT@", back)
    return text.encode("utf-8")


@lru_cache(maxsize=512)
def icon_pixmap(name: str, color: str, size_px: int, back: str = "#ffffff") -> QPixmap:
    """`resources/icons/<name>.svg` drawn in `color` on `back` at `size_px` square (cached)."""
    ratio = 1.0
    app = QGuiApplication.instance()
    if isinstance(app, QGuiApplication):
        ratio = app.devicePixelRatio()
    pm = QPixmap(max(1, round(size_px * ratio)), max(1, round(size_px * ratio)))
    pm.fill(Qt.GlobalColor.transparent)
    renderer = QSvgRenderer(QByteArray(_svg_bytes(name, color, back)))
    painter = QPainter(pm)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, pm.width(), pm.height()))
    painter.end()
    pm.setDevicePixelRatio(ratio)
    return pm


def icon(name: str, color: str, size_px: int = 32, back: str = "#ffffff") -> QIcon:
    return QIcon(icon_pixmap(name, color, size_px, back))
