"""Operator dialogs on a stall: the actions menu, and typing or picking the cow by hand.

Both are made for a gloved finger or a keyboard: big buttons, a number pad, the matching cows in
a list of tall rows, Enter to accept, Escape to cancel. They only choose; the caller records the
choice (off the GUI thread) and shows the result.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QGridLayout,
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

# The divert button looks like the tile it answers: black on safety yellow.
DIVERT_BUTTON_QSS = (
    "QPushButton { background: #ffd600; color: #111111; border: 3px solid #111111;"
    " font-weight: bold; }"
)


class StallActionsDialog(QDialog):
    """What the operator can do on one stall. `choice` is `manual_id`, `reattach`, `divert`,
    `register_tag` or None.

    `divert`: the tile says DIVERT (the button to confirm comes first, yellow); else the
    operator may still divert a milking for a reason of their own. `unknown_tag`: the tag read
    that no cow has (offered for registering)."""

    def __init__(
        self,
        stall: int,
        summary: str,
        has_session: bool,
        parent: QWidget | None = None,
        *,
        divert: bool = False,
        diverted: bool = False,
        unknown_tag: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Stall {stall}")
        self.setModal(True)
        self.choice: str | None = None
        lay = QVBoxLayout(self)
        lay.setSpacing(14)
        title = QLabel(f"Stall {stall}")
        title.setObjectName("dialogTitle")
        lay.addWidget(title)
        text = QLabel(summary if has_session else f"{summary}\nNo cow in this stall.")
        text.setWordWrap(True)
        lay.addWidget(text)
        if diverted:
            label = "Milk diverted ✓ (recorded)"
        elif divert:
            label = "Milk &diverted ✓ (it goes to the divert line)"
        else:
            label = "&Divert this milk (blood, clots…)"
        self.divert_button = QPushButton(label)
        if divert and not diverted:
            self.divert_button.setStyleSheet(DIVERT_BUTTON_QSS)
        self.register_button = QPushButton(
            f"Register &tag {display_tag(unknown_tag)} to a cow…" if unknown_tag else "Register tag"
        )
        self.manual_button = QPushButton("&Cow number… (manual ID)")
        self.manual_button.setObjectName("primary")
        self.reattach_button = QPushButton("&Re-attach / kick-off")
        self.close_button = QPushButton("Close")
        buttons = [
            self.divert_button,
            self.register_button,
            self.manual_button,
            self.reattach_button,
            self.close_button,
        ]
        for b in buttons:
            b.setMinimumHeight(72)
            lay.addWidget(b)
        self.register_button.setVisible(bool(unknown_tag))
        self.manual_button.setEnabled(has_session)
        self.reattach_button.setEnabled(has_session)
        self.divert_button.setEnabled(has_session and not diverted)
        self.register_button.setEnabled(has_session and bool(unknown_tag))
        self.manual_button.clicked.connect(lambda: self._choose("manual_id"))
        self.reattach_button.clicked.connect(lambda: self._choose("reattach"))
        self.divert_button.clicked.connect(lambda: self._choose("divert"))
        self.register_button.clicked.connect(lambda: self._choose("register_tag"))
        self.close_button.clicked.connect(self.reject)
        QShortcut(QKeySequence("M"), self, lambda: self._choose("manual_id"))
        QShortcut(QKeySequence("R"), self, lambda: self._choose("reattach"))
        QShortcut(QKeySequence("D"), self, lambda: self._choose("divert"))
        QShortcut(QKeySequence("T"), self, lambda: self._choose("register_tag"))
        if not has_session:
            self.close_button.setFocus()
        elif divert and not diverted:
            self.divert_button.setFocus()
        elif unknown_tag:
            self.register_button.setFocus()
        else:
            self.manual_button.setFocus()
        self.resize(560, 520)

    def _choose(self, choice: str) -> None:
        button = {
            "manual_id": self.manual_button,
            "reattach": self.reattach_button,
            "divert": self.divert_button,
            "register_tag": self.register_button,
        }.get(choice)
        if button is not None and not button.isEnabled():
            return
        self.choice = choice
        self.accept()


class ManualIdDialog(QDialog):
    """Type a cow number (number pad or keyboard) or pick her from the list.

    Accepts only a cow of the herd list; `animal` is the choice after `exec()` returns Accepted.
    """

    def __init__(
        self, stall: int, herd: HerdDirectory, current: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Stall {stall}: which cow?")
        self.setModal(True)
        self.herd = herd
        self.animal: AnimalInfo | None = None
        outer = QVBoxLayout(self)
        title = QLabel(f"Stall {stall}: which cow?")
        title.setObjectName("dialogTitle")
        outer.addWidget(title)
        now = QLabel(f"Now: {current}")
        now.setWordWrap(True)
        outer.addWidget(now)
        row = QHBoxLayout()
        outer.addLayout(row, 1)

        left = QVBoxLayout()
        row.addLayout(left, 1)
        self.entry = QLineEdit()
        self.entry.setPlaceholderText("cow number")
        self.entry.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.entry.textChanged.connect(self._on_text)
        self.entry.returnPressed.connect(self._accept_typed)
        left.addWidget(self.entry)
        pad = QGridLayout()
        pad.setSpacing(8)
        keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "⌫", "0", "OK"]
        self.pad_buttons: dict[str, QPushButton] = {}
        for i, key in enumerate(keys):
            b = QPushButton(key)
            b.setMinimumSize(84, 72)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # typing stays in the entry
            if key == "OK":
                b.setObjectName("primary")
                b.clicked.connect(self._accept_typed)
            elif key == "⌫":
                b.clicked.connect(self.entry.backspace)
            else:
                b.clicked.connect(lambda _=False, k=key: self.entry.insert(k))
            pad.addWidget(b, i // 3, i % 3)
            self.pad_buttons[key] = b
        left.addLayout(pad)
        self.error = QLabel("")
        self.error.setObjectName("errorText")
        self.error.setWordWrap(True)
        left.addWidget(self.error)

        right = QVBoxLayout()
        row.addLayout(right, 1)
        right.addWidget(QLabel("Matching cows (tap one):"))
        self.matches = QListWidget()
        self.matches.itemActivated.connect(self._accept_item)
        self.matches.itemClicked.connect(self._accept_item)
        right.addWidget(self.matches, 1)
        cancel = QPushButton("Cancel")
        cancel.setMinimumHeight(64)
        cancel.clicked.connect(self.reject)
        right.addWidget(cancel)
        # Enter belongs to the entry (accept the typed number); no button may take it as the
        # dialog's default and close the dialog behind the operator's back.
        for b in self.findChildren(QPushButton):
            b.setAutoDefault(False)
            b.setDefault(False)
        self._on_text("")
        self.entry.setFocus()
        self.resize(900, 640)

    @Slot(str)
    def _on_text(self, text: str) -> None:
        self.error.setText("")
        self.matches.clear()
        for a in self.herd.search(text, limit=30):
            item = QListWidgetItem(a.label + (f"   [{a.group_name}]" if a.group_name else ""))
            item.setData(Qt.ItemDataRole.UserRole, a.id)
            self.matches.addItem(item)

    @Slot()
    def _accept_typed(self) -> None:
        text = self.entry.text().strip()
        if not text:
            self.error.setText("Type a cow number or pick one from the list.")
            return
        found = self.herd.find_number(text)
        if found is None:
            self.error.setText(f"No cow {text} in the herd list.")
            return
        self.animal = found
        self.accept()

    @Slot(QListWidgetItem)
    def _accept_item(self, item: QListWidgetItem) -> None:
        animal = self.herd.animals.get(item.data(Qt.ItemDataRole.UserRole))
        if animal is not None:
            self.animal = animal
            self.accept()


class RegisterTagDialog(ManualIdDialog):
    """Whose is the tag a stall just read? Pick her like a manual ID; `make_primary` says
    whether it becomes her main ear tag (True) or is left to the store: her main one if she
    has none, else another tag (None)."""

    def __init__(
        self, stall: int, herd: HerdDirectory, tag: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(stall, herd, f"unknown tag {display_tag(tag)}", parent)
        self.tag = tag
        self.setWindowTitle(f"Stall {stall}: whose tag is {display_tag(tag)}?")
        title = self.findChild(QLabel, "dialogTitle")
        if title is not None:
            title.setText(f"Tag {display_tag(tag)}: whose is it?")
        self.primary_box = QCheckBox("Her new main ear tag (the old one stays as another tag)")
        self.primary_box.setMinimumHeight(48)
        lay = self.layout()
        if isinstance(lay, QVBoxLayout):
            lay.insertWidget(2, self.primary_box)

    @property
    def make_primary(self) -> bool | None:
        return True if self.primary_box.isChecked() else None
