"""The calibration reminder for the status bar (and the dashboard): which meters are due.

`CalibrationDueWidget` is a flat button reading, say, "Calibration: 2 overdue · 1 due soon" (red
when any is overdue, amber when only due soon or never calibrated, dim when all is well); its
tooltip lists the meters. It re-reads `milkconsole.technician.calibration.due_meters` on the task
runner every `refresh_s` and whenever `refresh()` is called (after a calibration is saved).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import QToolButton, QWidget

from milkconsole.store.db import Database
from milkconsole.technician.calibration import DueMeter, due_meters
from ui.tech_style import bad_text
from ui.theme import DARK, Theme
from ui.workers import TaskRunner


def due_summary(due: list[DueMeter]) -> str:
    """'Calibration: 2 overdue · 1 never · 1 due soon' (or 'Calibration ok')."""
    if not due:
        return "Calibration ok"
    counts = {s: sum(d.status == s for d in due) for s in ("overdue", "never", "due_soon")}
    words = {"overdue": "overdue", "never": "never calibrated", "due_soon": "due soon"}
    parts = [f"{n} {words[s]}" for s, n in counts.items() if n]
    return "Calibration: " + " · ".join(parts)


class CalibrationDueWidget(QToolButton):
    """See the module docstring. Connect `clicked` to open the calibration wizard."""

    def __init__(
        self,
        db: Database,
        tasks: TaskRunner,
        *,
        meter_ids: list[str] | None = None,
        warn_days: int = 30,
        refresh_s: float = 600.0,
        theme: Theme = DARK,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.db = db
        self.tasks = tasks
        self.meter_ids = meter_ids
        self.warn_days = warn_days
        self.theme = theme
        self.now = clock
        self.due: list[DueMeter] = []
        self.loads = 0
        self.setText("Calibration …")
        self._timer = QTimer(self)
        self._timer.setInterval(int(refresh_s * 1000))
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self.refresh()

    @Slot()
    def refresh(self) -> None:
        db, now, warn, ids = self.db, self.now(), self.warn_days, self.meter_ids
        self.tasks.submit(
            lambda: due_meters(db, now, warn, ids),
            self._show,
            lambda exc: self.setToolTip(f"Could not read due dates: {exc}"),
            name="calibration due",
        )

    def _show(self, due: list[DueMeter]) -> None:
        self.loads += 1
        self.due = due
        self.setText(due_summary(due))
        if any(d.status == "overdue" for d in due):
            color = bad_text(self.theme)
        elif due:
            color = self.theme.warn_text
        else:
            color = self.theme.text_dim
        self.setStyleSheet(f"color: {color}; font-weight: {'bold' if due else 'normal'};")
        self.setToolTip("\n".join(d.text for d in due) or "Every meter's calibration is current")
