"""Equipment alerts while the console runs: readings in, 'equipment' alerts in the database out.

`EquipmentWatch` listens to the bridge's readings (GUI thread), asks a core `EquipmentMonitor`
whether a vacuum or pulsation value has stayed out of range long enough, and stores what it
finds on the task runner (`raise_equipment_alerts`: one open alert per meter and condition). It
must live as long as the main window, whether or not the diagnostics view is open.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal, Slot

from milkconsole.meters.events import ReadingTaken
from milkconsole.store.db import Database
from milkconsole.technician.diagnostics import (
    EquipmentMonitor,
    EquipmentRanges,
    raise_equipment_alerts,
)
from ui.bridge import EventBridge
from ui.workers import TaskRunner

log = logging.getLogger(__name__)


class EquipmentWatch(QObject):
    """See the module docstring. `alerts_raised` carries the keys of the alerts just stored."""

    alerts_raised = Signal(object)  # list[str]

    def __init__(
        self,
        bridge: EventBridge,
        db: Database,
        tasks: TaskRunner,
        ranges: EquipmentRanges,
        farm_code: str,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.db = db
        self.tasks = tasks
        self.farm_code = farm_code
        self.monitor = EquipmentMonitor(ranges)
        self.raised: list[str] = []
        bridge.reading_taken.connect(self.on_reading)

    @Slot(object)
    def on_reading(self, event: ReadingTaken) -> None:
        findings = self.monitor.observe(event.reading)
        if not findings:
            return
        db, farm = self.db, self.farm_code
        self.tasks.submit(
            lambda: raise_equipment_alerts(db, findings, farm),
            self._stored,
            lambda exc: log.error("equipment alert not stored: %s", exc),
            name="equipment alert",
        )

    def _stored(self, keys: list[str]) -> None:
        if keys:
            self.raised.extend(keys)
            self.alerts_raised.emit(keys)
