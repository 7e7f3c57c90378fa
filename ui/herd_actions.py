"""The console's actions on milk separation and the herd, for the main window.

The operator's, from a stall (no PIN): "milk diverted" for the milking there, and an unknown
tag given to a cow. The supervisor's, from the Herd tab (PIN through the window's `ask_pin`):
a treatment, the keep-out flag. Each is recorded off the GUI thread
(`milkconsole.supervision.herd_changes`), then shown: the tile calms down, the herd is read again.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal, Slot

from milkconsole.grants import Grant
from milkconsole.herd.directory import AnimalInfo, display_tag
from milkconsole.herd.withdrawal import Treatment
from milkconsole.store.herd import TagChange
from milkconsole.store.sessions import SessionRecord
from milkconsole.supervision.herd_changes import (
    change_keep_out,
    confirm_divert,
    new_treatment_key,
    record_treatment,
    register_stall_tag,
)
from ui.manual_id_dialog import RegisterTagDialog
from ui.treatment_dialog import KeepOutDialog, TreatmentDialog

if TYPE_CHECKING:
    from ui.main_window import MainWindow

# A milking seconds old may reach the database just after the operator acts on it.
ROW_WAIT_S = 5.0


class HerdActions(QObject):
    """See the module docstring. Signals say what was recorded."""

    divert_recorded = Signal(str, object)  # session key, SessionRecord
    tag_registered = Signal(str, object)  # session key, TagChange
    treatment_recorded = Signal(object)  # Treatment
    keep_out_changed = Signal(int, object)  # animal id, reason (None: back in the tank)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.w = window

    @Slot(int)
    def confirm_divert(self, stall: int) -> None:
        """The operator's "milk diverted" for the stall's milking (recorded off the GUI thread;
        a milking seconds old may reach the database just after, so the write waits for it)."""
        session = self.w.stall_view.session_of(stall)
        if session is None:
            self.w.action_failed.emit(f"Stall {stall}: no cow in the stall")
            return
        key, db, actor = session.key, self.w.db, self.w.actor

        def write() -> SessionRecord:
            deadline = time.monotonic() + ROW_WAIT_S
            while True:
                try:
                    return confirm_divert(db, key, actor)
                except LookupError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

        def done(record: SessionRecord) -> None:
            self.w.stall_view.set_confirmed(key, actor)
            self.w.status.showMessage(
                f"Stall {stall}: milk diverted ({record.divert_reason}), recorded", 10000
            )
            self.divert_recorded.emit(key, record)
            self.w.refresher.request()

        def failed(exc: BaseException) -> None:
            self.w.action_failed.emit(f"Stall {stall}: 'milk diverted' NOT recorded: {exc}")

        self.w.tasks.submit(write, done, failed, name=f"divert stall {stall}")

    @Slot(int)
    def open_register_tag(self, stall: int) -> RegisterTagDialog | None:
        tile = self.w.stall_view.tiles[stall]
        session = self.w.stall_view.session_of(stall)
        tag = session.rfid if session is not None else None
        if session is None or not tag or tile.identity.status != "unknown_tag":
            self.w.action_failed.emit(f"Stall {stall}: no unknown tag to register")
            return None
        dlg = RegisterTagDialog(stall, self.w.stall_view.herd, tag, self.w)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        key = session.key

        def finished(result: int) -> None:
            if result == RegisterTagDialog.DialogCode.Accepted and dlg.animal is not None:
                self.register_tag(stall, key, tag, dlg.animal, dlg.make_primary)

        dlg.finished.connect(finished)
        dlg.open()
        return dlg

    def register_tag(
        self,
        stall: int,
        session_key: str,
        tag: str,
        animal: AnimalInfo,
        primary: bool | None,
    ) -> None:
        """Give the tag to `animal` and the stall's milking to her (pool thread), then show it."""
        db, actor = self.w.db, self.w.actor

        def write() -> TagChange:
            deadline = time.monotonic() + ROW_WAIT_S
            while True:
                try:
                    return register_stall_tag(
                        db,
                        animal_id=animal.id,
                        tag=tag,
                        primary=primary,
                        session_key=session_key,
                        actor=actor,
                    )
                except LookupError as exc:
                    # The milking's row may be a moment behind; the cow must exist.
                    if "no cow" in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

        def done(change: TagChange) -> None:
            kind = "main tag" if change.primary else "other tag"
            self.w.status.showMessage(
                f"Stall {stall}: tag {display_tag(change.tag)} is now cow {change.animal_label}'s"
                f" ({kind})",
                10000,
            )
            self.tag_registered.emit(session_key, change)
            self.w.reload_herd()
            self.w.refresher.request()

        def failed(exc: BaseException) -> None:
            self.w.action_failed.emit(f"Stall {stall}: tag not registered: {exc}")

        self.w.tasks.submit(write, done, failed, name=f"register tag stall {stall}")

    # -- the supervisor's ----------------------------------------------------------------------
    @Slot(int)
    def open_treatment(self, animal_id: int) -> TreatmentDialog | None:
        animal = self.w.stall_view.herd.animals.get(animal_id)
        if animal is None:
            return None
        farm = self.w.config.farm_code
        dlg = TreatmentDialog(
            animal, lambda at: new_treatment_key(farm, at), now=self.w.now, parent=self.w
        )
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def finished(result: int) -> None:
            treatment = dlg.treatment
            if result == TreatmentDialog.DialogCode.Accepted and treatment is not None:
                self.w.ask_pin(
                    "record_treatment", lambda grant: self.record_treatment(treatment, grant)
                )

        dlg.finished.connect(finished)
        dlg.open()
        return dlg

    def record_treatment(self, treatment: Treatment, grant: Grant) -> None:
        db = self.w.db

        def done(saved: Treatment) -> None:
            self.w.status.showMessage(
                f"Treatment recorded: {saved.product}, {saved.withdrawal_text} withdrawal", 10000
            )
            self.treatment_recorded.emit(saved)
            self.w.reload_herd()

        self.w.tasks.submit(
            lambda: record_treatment(db, treatment, grant),
            done,
            lambda exc: self.w.action_failed.emit(f"Treatment NOT recorded: {exc}"),
            name="record treatment",
        )

    @Slot(int)
    def open_keep_out(self, animal_id: int) -> KeepOutDialog | None:
        animal = self.w.stall_view.herd.animals.get(animal_id)
        if animal is None:
            return None
        dlg = KeepOutDialog(animal, self.w)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def finished(result: int) -> None:
            if result == KeepOutDialog.DialogCode.Accepted:
                reason = dlg.reason
                self.w.ask_pin(
                    "keep_milk_out", lambda grant: self.change_keep_out(animal_id, reason, grant)
                )

        dlg.finished.connect(finished)
        dlg.open()
        return dlg

    def change_keep_out(self, animal_id: int, reason: str | None, grant: Grant) -> None:
        db = self.w.db

        def done(_: object) -> None:
            self.w.status.showMessage(
                f"Kept out of the tank: {reason}" if reason else "Her milk may go in the tank",
                10000,
            )
            self.keep_out_changed.emit(animal_id, reason)
            self.w.reload_herd()

        self.w.tasks.submit(
            lambda: change_keep_out(db, animal_id, reason, grant),
            done,
            lambda exc: self.w.action_failed.emit(f"Not changed: {exc}"),
            name="keep milk out",
        )
