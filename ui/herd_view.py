"""The herd screen: find a cow by number, name or tag, and her card.

The card says what a person at the console asks about a cow: her tags (the main one first),
group, age, lactation, calving and days in milk, what she usually gives, and whether her milk
is kept out of the tank now, why and until when (the same decision the stall tile shows). The
supervisor records a treatment or keeps her milk out from here (the window asks for the PIN).
Everything comes from the `HerdDirectory` the window loads off the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from html import escape

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from milkconsole.herd.directory import AnimalInfo, HerdDirectory, display_tag
from milkconsole.herd.file import days_in_milk
from milkconsole.herd.withdrawal import local_text
from milkconsole.meters.rfid import InvalidTag, normalize_tag

MAX_LISTED = 300


class HerdWidget(QWidget):
    """The Herd tab. Feed it `set_herd`; it asks for treatments and the keep-out flag through
    its signals (animal id)."""

    treatment_requested = Signal(int)
    keep_out_requested = Signal(int)

    def __init__(
        self,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        zone: tzinfo | None = None,
    ) -> None:
        super().__init__()
        self.now = now
        self.zone = zone
        self.herd = HerdDirectory()
        self.selected: int | None = None
        outer = QHBoxLayout(self)
        left = QVBoxLayout()
        outer.addLayout(left, 2)
        self.search = QLineEdit()
        self.search.setPlaceholderText("cow number, name or tag")
        self.search.textChanged.connect(self._fill)
        left.addWidget(self.search)
        self.count = QLabel("")
        self.count.setObjectName("kpiNote")
        left.addWidget(self.count)
        self.list = QListWidget()
        self.list.currentItemChanged.connect(self._picked)
        left.addWidget(self.list, 1)
        right = QVBoxLayout()
        outer.addLayout(right, 3)
        self.card = QLabel("Pick a cow on the left.")
        self.card.setTextFormat(Qt.TextFormat.RichText)
        self.card.setWordWrap(True)
        self.card.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        right.addWidget(self.card, 1)
        buttons = QHBoxLayout()
        self.treat_button = QPushButton("Record a treatment…")
        self.keep_button = QPushButton("Keep milk out…")
        for b in (self.treat_button, self.keep_button):
            b.setMinimumHeight(72)
            b.setEnabled(False)
            buttons.addWidget(b)
        right.addLayout(buttons)
        self.treat_button.clicked.connect(self._treat)
        self.keep_button.clicked.connect(self._keep)

    def set_herd(self, herd: HerdDirectory) -> None:
        self.herd = herd
        self._fill(self.search.text())

    def matches(self, text: str) -> list[AnimalInfo]:
        """Cows whose number or name matches (`HerdDirectory.search`), or who wear the tag."""
        found = self.herd.search(text, limit=MAX_LISTED)
        try:
            tag = normalize_tag(text.strip()) if text.strip() else None
        except InvalidTag:
            tag = None
        if tag is not None:
            owner = self.herd.by_tag.get(tag)
            animal = self.herd.animals.get(owner) if owner is not None else None
            if animal is not None and animal not in found:
                found.insert(0, animal)
        return found

    @Slot(str)
    def _fill(self, text: str = "") -> None:
        keep = self.selected
        self.list.blockSignals(True)
        self.list.clear()
        cows = self.matches(text)
        now = self.now()
        for a in cows:
            badge = ""
            decision = self.herd.decide(a.id, now, zone=self.zone)
            if decision.divert:
                badge = f"   ⚠ DIVERT ({decision.short_text})"
            item = QListWidgetItem(
                a.label + (f"   [{a.group_name}]" if a.group_name else "") + badge
            )
            item.setData(Qt.ItemDataRole.UserRole, a.id)
            self.list.addItem(item)
            if a.id == keep:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self.count.setText(f"{len(cows)} of {len(self.herd.animals)} cows")
        self.show_card(keep if keep in self.herd.animals else None)

    @Slot(QListWidgetItem, QListWidgetItem)
    def _picked(self, item: QListWidgetItem | None, _old: QListWidgetItem | None) -> None:
        self.show_card(item.data(Qt.ItemDataRole.UserRole) if item is not None else None)

    def show_card(self, animal_id: int | None) -> None:
        self.selected = animal_id
        a = self.herd.animals.get(animal_id) if animal_id is not None else None
        self.treat_button.setEnabled(a is not None)
        self.keep_button.setEnabled(a is not None)
        if a is None:
            self.card.setText("Pick a cow on the left.")
            return
        self.keep_button.setText(
            "Milk back in the tank…" if a.withheld_reason else "Keep milk out…"
        )
        self.card.setText(self.card_html(a))

    def card_html(self, a: AnimalInfo) -> str:
        now = self.now()
        today = now.astimezone(self.zone).date()
        tags = [display_tag(t) for t in a.tags]
        rows = [
            (
                "Tags",
                ("<b>" + escape(tags[0]) + "</b>" + "".join(f"<br>{escape(t)}" for t in tags[1:]))
                if tags
                else "none",
            ),
            ("Group", escape(a.group_name or "—")),
            ("Born", a.birth_date.isoformat() if a.birth_date else "—"),
            ("Lactation", str(a.lactation_number) if a.lactation_number is not None else "—"),
            ("Calved", a.last_calving_date.isoformat() if a.last_calving_date else "—"),
        ]
        dim = days_in_milk(a.last_calving_date, today)
        rows.append(("Days in milk", str(dim) if dim is not None else "—"))
        expected = self.herd.expected_for(a.id)
        rows.append(("Usually gives", f"{expected:.1f} L" if expected else "no history yet"))
        rows.append(("In Odoo", "yes" if a.in_odoo else "not yet (known at this console)"))
        decision = self.herd.decide(a.id, now, zone=self.zone)
        if decision.divert:
            milk = (
                f"<span style='background:#ffd600;color:#111;font-weight:bold'>&nbsp;DIVERT&nbsp;"
                f"</span> {escape(decision.reason_text)}, "
                f"{escape(decision.until_text(self.zone, now))}"
            )
        elif decision.back_to_tank:
            milk = "may go back in the tank (" + escape(", ".join(decision.back_to_tank)) + " over)"
        else:
            milk = "to the tank"
        rows.append(("Milk now", milk))
        cow = self.herd.separation.cows.get(a.id)
        if cow is not None and cow.treatments:
            items = [
                f"{escape(t.product)}: {local_text(t.start_utc, self.zone, now)}, "
                f"{escape(t.withdrawal_text)} withdrawal"
                + (f" ({escape(t.note)})" if t.note else "")
                for t in cow.treatments
            ]
            rows.append(("Treatments", "<br>".join(items)))
        body = "".join(
            f"<tr><td style='padding:4px 18px 4px 0;color:#b4bfca'>{k}</td>"
            f"<td style='padding:4px 0'>{v}</td></tr>"
            for k, v in rows
        )
        return f"<h2>{escape(a.label)}</h2><table>{body}</table>"

    @Slot()
    def _treat(self) -> None:
        if self.selected is not None:
            self.treatment_requested.emit(self.selected)

    @Slot()
    def _keep(self) -> None:
        if self.selected is not None:
            self.keep_out_requested.emit(self.selected)
