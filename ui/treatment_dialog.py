"""The supervisor's dialogs on a cow: record a treatment, keep her milk out of the tank.

They only ask and check what was typed (a product, a withdrawal in hours OR milkings, a start
not in the future); the window asks for the supervisor's PIN and records the result off the GUI
thread (`milkconsole.supervision.herd_changes`). Big fields and buttons, like every console dialog.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from PySide6.QtCore import QDateTime, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QDateTimeEdit,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from milkconsole.herd.directory import AnimalInfo
from milkconsole.herd.withdrawal import Treatment, TreatmentError

# Common labels' withdrawals, to pick instead of typing (hours, or milkings).
_FIELD_H = 64


class TreatmentDialog(QDialog):
    """Record a treatment for `animal`: product, withdrawal (hours or milkings), start, note.
    After Accepted, `treatment` holds it (keyed by `make_key(start)`)."""

    def __init__(
        self,
        animal: AnimalInfo,
        make_key: Callable[[datetime], str],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.animal = animal
        self._make_key = make_key
        self._now = now
        self.treatment: Treatment | None = None
        self.setWindowTitle(f"Treatment for cow {animal.label}")
        self.setModal(True)
        lay = QVBoxLayout(self)
        title = QLabel(f"Treatment: cow {animal.label}")
        title.setObjectName("dialogTitle")
        lay.addWidget(title)
        form = QFormLayout()
        self.product = QLineEdit()
        self.product.setPlaceholderText("product, as on the label")
        form.addRow("Product", self.product)
        self.by_hours = QRadioButton("hours")
        self.by_milkings = QRadioButton("milkings")
        self.by_hours.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.by_hours)
        group.addButton(self.by_milkings)
        self.hours = QDoubleSpinBox()
        self.hours.setRange(0.0, 2880.0)
        self.hours.setDecimals(1)
        self.hours.setValue(72.0)
        self.hours.setSuffix(" h")
        self.milkings = QSpinBox()
        self.milkings.setRange(0, 360)
        self.milkings.setValue(6)
        self.milkings.setSuffix(" milkings")
        row = QHBoxLayout()
        row.addWidget(self.by_hours)
        row.addWidget(self.hours)
        row.addWidget(self.by_milkings)
        row.addWidget(self.milkings)
        form.addRow("Milk withdrawal", row)
        self.start = QDateTimeEdit()
        self.start.setCalendarPopup(True)
        self.start.setDisplayFormat("ddd dd MMM yyyy HH:mm")
        self.start.setDateTime(QDateTime.fromSecsSinceEpoch(int(now().timestamp())))
        form.addRow("Given at", self.start)
        self.note = QLineEdit()
        self.note.setPlaceholderText("quarter, reason (optional)")
        form.addRow("Note", self.note)
        for w in (self.product, self.hours, self.milkings, self.start, self.note):
            w.setMinimumHeight(_FIELD_H)
        lay.addLayout(form)
        self.error = QLabel("")
        self.error.setObjectName("errorText")
        self.error.setWordWrap(True)
        lay.addWidget(self.error)
        buttons = QHBoxLayout()
        self.ok_button = QPushButton("Record (supervisor PIN)")
        self.ok_button.setObjectName("primary")
        self.cancel_button = QPushButton("Cancel")
        for b in (self.ok_button, self.cancel_button):
            b.setMinimumHeight(72)
            buttons.addWidget(b)
        lay.addLayout(buttons)
        self.ok_button.clicked.connect(self._accept)
        self.cancel_button.clicked.connect(self.reject)
        self.by_hours.toggled.connect(self._sync)
        self._sync()
        self.product.setFocus()
        self.resize(900, 560)

    @Slot()
    def _sync(self) -> None:
        self.hours.setEnabled(self.by_hours.isChecked())
        self.milkings.setEnabled(self.by_milkings.isChecked())

    def given_at(self) -> datetime:
        return datetime.fromtimestamp(self.start.dateTime().toSecsSinceEpoch(), UTC)

    @Slot()
    def _accept(self) -> None:
        start = self.given_at()
        if start > self._now() + timedelta(minutes=5):
            self.error.setText("The treatment cannot start in the future.")
            return
        hours = self.hours.value() if self.by_hours.isChecked() else None
        milkings = self.milkings.value() if self.by_milkings.isChecked() else None
        try:
            self.treatment = Treatment(
                key=self._make_key(start),
                animal_id=self.animal.id,
                product=self.product.text().strip(),
                start=start,
                withdrawal_hours=hours,
                withdrawal_milkings=milkings,
                note=self.note.text().strip() or None,
            )
        except TreatmentError as exc:
            self.error.setText(str(exc))
            return
        self.accept()


class KeepOutDialog(QDialog):
    """Keep a cow's milk out of the tank for a reason (high SCC, blood...), or let it back.
    After Accepted, `reason` is the reason, or None to let her milk back in the tank."""

    def __init__(self, animal: AnimalInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.animal = animal
        self.reason: str | None = None
        self.setWindowTitle(f"Cow {animal.label}: keep her milk out")
        self.setModal(True)
        lay = QVBoxLayout(self)
        title = QLabel(f"Cow {animal.label}")
        title.setObjectName("dialogTitle")
        lay.addWidget(title)
        now = animal.withheld_reason
        lay.addWidget(
            QLabel(
                f"Her milk is kept out of the tank now: {now}."
                if now
                else "Her milk goes to the tank now."
            )
        )
        self.text = QLineEdit(now or "")
        self.text.setPlaceholderText("why: high SCC, blood, antibiotics given elsewhere…")
        self.text.setMinimumHeight(_FIELD_H)
        lay.addWidget(self.text)
        self.error = QLabel("")
        self.error.setObjectName("errorText")
        lay.addWidget(self.error)
        self.keep_button = QPushButton("Keep her milk out (supervisor PIN)")
        self.keep_button.setObjectName("primary")
        self.back_button = QPushButton("Her milk may go back in the tank")
        self.back_button.setEnabled(bool(now))
        self.cancel_button = QPushButton("Cancel")
        for b in (self.keep_button, self.back_button, self.cancel_button):
            b.setMinimumHeight(72)
            lay.addWidget(b)
        self.keep_button.clicked.connect(self._keep)
        self.back_button.clicked.connect(self._back)
        self.cancel_button.clicked.connect(self.reject)
        self.resize(760, 420)

    @Slot()
    def _keep(self) -> None:
        text = self.text.text().strip()
        if not text:
            self.error.setText("Say why (it shows on her tile).")
            return
        self.reason = text
        self.accept()

    @Slot()
    def _back(self) -> None:
        self.reason = None
        self.accept()
