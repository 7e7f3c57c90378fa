"""Look of the technician windows: touch-sized check boxes and spin boxes, and text colours.

The console's theme colours are band colours (white text on them); a verdict written as text on
a dark or light panel needs brighter or deeper shades, which live here.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from ui.theme import Theme

# Added to a technician window's own style sheet; the application's theme still applies.
TECH_QSS = """
QTableView::indicator, QCheckBox::indicator, QRadioButton::indicator { width: 30px; height: 30px; }
QCheckBox, QRadioButton { spacing: 12px; min-height: 44px; }
QRadioButton::indicator { border: 3px solid #90a4ae; border-radius: 16px; background: transparent; }
QRadioButton::indicator:checked { border-color: #ffb300;
    background: qradialgradient(cx:0.5, cy:0.5, radius:0.5, fx:0.5, fy:0.5,
                                stop:0 #ffb300, stop:0.55 #ffb300, stop:0.6 transparent); }
QComboBox, QDoubleSpinBox, QSpinBox, QDateTimeEdit { min-height: 48px; padding: 2px 8px; }
QDoubleSpinBox::up-button, QDoubleSpinBox::down-button, QSpinBox::up-button,
QSpinBox::down-button { width: 36px; }
QComboBox::drop-down, QDateTimeEdit::drop-down { width: 40px; }
QTableView { font-size: 14pt; }
"""

ROW_HEIGHT_PX = 44


def form_label(text: str) -> QLabel:
    """A form label centred on a touch-sized field (QFormLayout puts it at the top otherwise)."""
    label = QLabel(text)
    label.setMinimumHeight(48)
    label.setAlignment(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft)
    return label


def ok_text(theme: Theme) -> str:
    """A 'good' verdict as text on the panel colour."""
    return "#81c784" if theme.name == "dark" else "#1b5e20"


def bad_text(theme: Theme) -> str:
    """A 'bad' verdict as text on the panel colour."""
    return "#ff8a80" if theme.name == "dark" else "#b71c1c"


def warn_text(theme: Theme) -> str:
    return theme.warn_text
