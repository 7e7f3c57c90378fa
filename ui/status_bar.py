"""The status bar: each bus and its meters (ok / degraded / offline), the database, the last
good backup, the sync, the live view for phones (its state and how many phones are connected)
and the MQTT broker.

A bus button shows ok (every meter answers), DEGRADED (some do not, or answer badly) or OFFLINE
(none answers) as icon + word + how many meters are ok; clicking it opens the meters'
details (state, last answer, failures, last error), kept current while open. The sync button says
"not configured" until the sync worker reports a `SyncStatus` (`on_sync_status`): online or
offline, how many records wait (backlog), how many Odoo refused (dead), and when the last pass
ended; clicking it emits `sync_clicked` (the window opens the sync panel). The MQTT button
appears when the parlour publishes to a broker (`on_mqtt_status`): online, offline, login or
certificate refused, and how many messages wait; clicking it emits `mqtt_clicked` (connect
now). Worker failures show as a red notice that opens the traceback.

The database label turns red and says so when the disk refuses writes (`StorageStatus`: disk
full, read-only...) and how many events wait in memory; it goes back once recording resumes.
The backup button shows when the last good backup was taken (`BackupStatus`), red when the last
attempt failed or none is recent, dim when backups are not set up; clicking it emits
`backup_clicked` (the console backs up now).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QDialog,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QStatusBar,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from milkconsole.config import ParlourConfig
from milkconsole.meters.events import (
    MeterHealth,
    MeterStateChanged,
    PollCycleCompleted,
    StorageStatus,
)
from milkconsole.store.backup import BackupStatus
from ui.tables import record_table
from ui.theme import DARK, Theme, icon
from ui.workers import WorkerFailure

if TYPE_CHECKING:
    from milkconsole.mqtt.status import MqttStatus
    from milkconsole.sync.status import SyncStatus
    from milkconsole.web.service import WebStatus

DB_PATH_MAX_PX = 220
BUS_BUTTON_MIN_PX = 72
_WORD = {"ok": "ok", "degraded": "DEGRADED", "offline": "OFFLINE"}
# The daily backup is late after this long (a day and a few hours of slack).
BACKUP_STALE = timedelta(hours=30)


def bus_state_of(states: Sequence[str]) -> str:
    """A bus is ok when every meter is, offline when none answers, else degraded."""
    if not states or all(s == "offline" for s in states):
        return "offline"
    return "ok" if all(s == "ok" for s in states) else "degraded"


def _local(dt: datetime | None) -> str:
    return dt.astimezone().strftime("%H:%M:%S") if dt else "never"


def backup_text(status: BackupStatus, now: datetime) -> tuple[str, str]:
    """The backup button's words and colour state (ok, error, idle) for a status.

    'Backup 02:30' (today), 'Backup 2 Mar 02:30', 'Backup FAILED', 'Backup: none yet',
    'Backup: not set up'; failed or more than a day old is an error (someone must act).
    """
    if not status.configured:
        return "Backup: not set up", "idle"
    good = status.last_good_at
    if status.failing:
        return "Backup FAILED", "error"
    if good is None:
        return "Backup: none yet", "error"
    local, today = good.astimezone(), now.astimezone().date()
    when = f"{local:%H:%M}" if local.date() == today else f"{local:%d %b %H:%M}"
    return f"Backup {when}", "error" if now - good > BACKUP_STALE else "ok"


def sync_text(status: SyncStatus) -> tuple[str, str]:
    """The sync button's words and colour state (ok, pending, error, idle) for a status.

    'online · 3 waiting · 1 refused · last 14:02'; refused records or a refused login are
    errors (someone must act), offline or a backlog is pending, else ok.
    """
    words = {
        "online": "online",
        "offline": "OFFLINE",
        "not_configured": "not configured",
        "auth_failed": "LOGIN REFUSED",
    }
    parts = [words.get(status.state, status.state)]
    if status.state == "not_configured":
        return parts[0], "idle"
    if status.backlog:
        parts.append(f"{status.backlog} waiting")
    if status.dead:
        parts.append(f"{status.dead} refused")
    if status.warnings:
        parts.append(f"{len(status.warnings)} contract problem(s)")
    last = status.last_sync_at
    parts.append(f"last {last.astimezone().strftime('%H:%M')}" if last else "never synced")
    if status.state == "auth_failed" or status.dead or status.warnings:
        state = "error"
    elif status.state != "online" or status.backlog:
        state = "pending"
    else:
        state = "ok"
    return " · ".join(parts), state


def mqtt_text(status: MqttStatus) -> tuple[str, str]:
    """The MQTT button's words and colour state (ok, pending, error, idle) for a status.

    'online · 3 waiting'; a refused login or certificate is an error (someone must act), the
    broker away or a backlog is pending, else ok.
    """
    words = {
        "online": "online",
        "connecting": "connecting",
        "offline": "OFFLINE",
        "auth_failed": "LOGIN REFUSED",
        "tls_failed": "CERTIFICATE REFUSED",
        "busy": "another process publishes",
        "stopped": "stopped",
    }
    parts = [words.get(status.state, status.state)]
    if status.backlog:
        parts.append(f"{status.backlog} waiting")
    if status.needs_action:
        state = "error"
    elif status.state == "stopped":
        state = "idle"
    elif status.state != "online" or status.backlog:
        state = "pending"
    else:
        state = "ok"
    return " · ".join(parts), state


class BusDetailsDialog(QDialog):
    """Every meter of one bus with its health; `refresh` re-fills it."""

    COLUMNS = ("Stall", "Meter", "State", "Last answer", "Polls", "Failures", "Last error")

    def __init__(self, bus_id: str, endpoint: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bus_id = bus_id
        self.setWindowTitle(f"Bus {bus_id}")
        lay = QVBoxLayout(self)
        title = QLabel(f"Bus {bus_id} — {endpoint}")
        title.setObjectName("dialogTitle")
        lay.addWidget(title)
        self.table = record_table(self.COLUMNS)
        self.table.horizontalHeader().setStretchLastSection(True)
        lay.addWidget(self.table, 1)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        lay.addWidget(close)
        self.resize(1100, 560)

    def refresh(self, rows: list[tuple[int, MeterHealth]]) -> None:
        self.table.setRowCount(len(rows))
        for i, (stall, h) in enumerate(rows):
            values = (
                str(stall),
                h.meter_id,
                _WORD.get(h.state, h.state),
                _local(h.last_seen),
                str(h.polls),
                f"{h.failures} (timeouts {h.timeouts}, crc {h.crc_errors})",
                h.last_error or "",
            )
            for j, v in enumerate(values):
                self.table.setItem(i, j, QTableWidgetItem(v))
        self.table.resizeColumnsToContents()


class ParlourStatusBar(QStatusBar):
    """Buses, database path and sync state along the bottom of the console."""

    sync_clicked = Signal()
    web_clicked = Signal()
    mqtt_clicked = Signal()
    backup_clicked = Signal()  # a backup now (the console takes it on its task runner)

    def __init__(self, config: ParlourConfig, db_path: str, theme: Theme = DARK) -> None:
        super().__init__()
        self.theme = theme
        self.setSizeGripEnabled(False)
        self._meters_of: dict[str, list[tuple[int, str]]] = {}
        for m in config.meters:
            self._meters_of.setdefault(m.bus, []).append((m.stall, m.id))
        self._endpoints = {b.id: b.endpoint for b in config.buses}
        self.health: dict[str, MeterHealth] = {}
        self.bus_buttons: dict[str, QToolButton] = {}
        self._details: dict[str, BusDetailsDialog] = {}
        for bus in config.buses:
            b = QToolButton()
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            b.setIconSize(QSize(22, 22))
            b.clicked.connect(lambda _=False, bus_id=bus.id: self.show_bus_details(bus_id))
            # Many buses must not widen the window past a 1366-px screen: a button may shrink
            # below its text (icon and state colour stay; the full text is in its tooltip).
            b.setMinimumWidth(BUS_BUTTON_MIN_PX)
            self.bus_buttons[bus.id] = b
            self.addWidget(b)
        self.failure_button = QToolButton()
        self.failure_button.setVisible(False)
        self.failure_button.setStyleSheet("color: #ffffff; background: #c62828; font-weight: bold;")
        self.failure_button.clicked.connect(self._show_failure)
        self.addWidget(self.failure_button)
        self._last_failure: WorkerFailure | None = None
        self.db_path = db_path
        self.db_label = QLabel()
        self.db_label.setToolTip(f"Database: {db_path}")
        # A long path must not widen the window past the screen: elide its middle.
        metrics = QFontMetrics(self.db_label.font())
        self.db_label.setText(
            "DB: " + metrics.elidedText(db_path, Qt.TextElideMode.ElideMiddle, DB_PATH_MAX_PX)
        )
        self.addPermanentWidget(self.db_label)
        self.storage: StorageStatus | None = None
        self.backup_button = QToolButton()
        self.backup_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.backup_button.setIconSize(QSize(22, 22))
        self.backup_button.clicked.connect(self.backup_clicked)
        self.addPermanentWidget(self.backup_button)
        self.backup_status: BackupStatus | None = None
        self.backup_state = "idle"
        self.on_backup_status(BackupStatus(configured=False))
        self.sync_button = QToolButton()
        self.sync_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.sync_button.setIconSize(QSize(22, 22))
        self.sync_button.clicked.connect(self.sync_clicked)
        self.addPermanentWidget(self.sync_button)
        self.sync_status: SyncStatus | None = None
        # The live view for phones: hidden until the config has a [web] section.
        self.web_button = QToolButton()
        self.web_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.web_button.setIconSize(QSize(22, 22))
        self.web_button.clicked.connect(self.web_clicked)
        self.web_button.setVisible(False)
        self.addPermanentWidget(self.web_button)
        self.web_status: WebStatus | None = None
        self.mqtt_button = QToolButton()
        self.mqtt_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.mqtt_button.setIconSize(QSize(22, 22))
        self.mqtt_button.clicked.connect(self.mqtt_clicked)
        self.mqtt_button.setVisible(False)  # until the parlour publishes to a broker
        self.addPermanentWidget(self.mqtt_button)
        self.mqtt_status: MqttStatus | None = None
        self.mqtt_state = "idle"
        self.clock = QLabel()
        self.addPermanentWidget(self.clock)
        self._clock_timer = QTimer(self)
        self._clock_timer.timeout.connect(self._tick)
        self._clock_timer.start(1000)
        self._dirty: set[str] = set(self.bus_buttons)
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(250)
        self._render_timer.timeout.connect(self._render)
        self.set_sync_status("not configured", "idle")
        self._render()
        self._tick()

    # -- inputs -------------------------------------------------------------------------------
    @Slot(object)
    def on_meter_state_changed(self, event: MeterStateChanged) -> None:
        self._set_health(event.health)

    @Slot(object)
    def on_poll_cycle(self, event: PollCycleCompleted) -> None:
        for h in event.health:
            self._set_health(h)

    def _set_health(self, h: MeterHealth) -> None:
        if self.health.get(h.meter_id) == h:
            return
        self.health[h.meter_id] = h
        for bus_id, meters in self._meters_of.items():
            if any(mid == h.meter_id for _, mid in meters):
                self._dirty.add(bus_id)
        if not self._render_timer.isActive():
            self._render_timer.start()

    def set_sync_status(self, text: str, state: str = "idle") -> None:
        """What the sync says (`state`: idle, ok, pending, error). Until the sync module is
        configured the text is "not configured"."""
        self._sync = (text, state)
        color = {
            "ok": self.theme.states["done"].color,
            "error": self.theme.states["alert"].color,
            "pending": self.theme.states["incomplete"].color,
        }.get(state, self.theme.text_dim)
        self.sync_button.setText(f"Sync: {text}")
        self.sync_button.setIcon(icon("sync", color, 22))
        self.sync_button.setToolTip(f"Odoo sync: {text}")
        self.sync_state = state

    @Slot(object)
    def on_sync_status(self, status: SyncStatus) -> None:
        """The sync worker's latest status (through the bridge, on the GUI thread)."""
        self.sync_status = status
        text, state = sync_text(status)
        self.set_sync_status(text, state)
        tip = [f"Odoo sync: {text}"]
        if status.last_error:
            tip.append(f"Last error: {status.last_error}")
        tip.extend(status.warnings)
        tip.append("Click for the records Odoo refused and to retry")
        self.sync_button.setToolTip("\n".join(tip))

    def _state_color(self, state: str) -> str:
        """The status colour of a service's state (ok / error / pending / anything else)."""
        return {
            "ok": self.theme.states["done"].color,
            "error": self.theme.states["alert"].color,
            "pending": self.theme.states["incomplete"].color,
        }.get(state, self.theme.text_dim)

    @Slot(object)
    def on_web_status(self, status: WebStatus) -> None:
        """The live view's state and how many phones have a live page open (GUI thread)."""
        from ui.web_access import web_text

        self.web_status = status
        text, state = web_text(status)
        color = self._state_color(state)
        self.web_button.setText(f"Phones: {text}")
        glyph = {"ok": "ok", "error": "offline", "pending": "degraded"}.get(state, "idle")
        self.web_button.setIcon(icon(glyph, color, 22))
        tip = [f"Live view for phones: {status.state}, {status.clients} connected"]
        if status.url:
            tip.append(f"Address: {status.url}")
        if status.fingerprint:
            tip.append(f"Certificate SHA-256: {status.fingerprint}")
        if status.error:
            tip.append(f"Error: {status.error}")
        tip.append("Click for phone access (QR code, revoke)")
        self.web_button.setToolTip("\n".join(tip))
        self.web_state = state
        self.web_button.setVisible(True)

    @Slot(object)
    def on_mqtt_status(self, status: MqttStatus) -> None:
        """The MQTT publisher's latest status (through the bridge, on the GUI thread)."""
        self.mqtt_status = status
        text, state = mqtt_text(status)
        self.mqtt_state = state
        color = self._state_color(state)
        name = {"ok": "ok", "error": "alert"}.get(state, "offline")
        self.mqtt_button.setText(f"MQTT: {text}")
        self.mqtt_button.setIcon(icon(name, color, 22))
        tip = [f"MQTT broker {status.broker}: {text}"]
        if status.last_error:
            tip.append(status.last_error)
        tip.append(f"{status.sent} message(s) sent since the console started")
        if status.last_sent_at is not None:
            tip.append(f"last sent {_local(status.last_sent_at)}")
        tip.append("Click to connect now")
        self.mqtt_button.setToolTip("\n".join(tip))
        self.mqtt_button.setVisible(True)

    @Slot(object)
    def on_storage_status(self, status: StorageStatus) -> None:
        """The recorder can (again) or cannot write the database: a full disk is shown here
        in red with how many events wait, until recording resumes."""
        self.storage = status
        metrics = QFontMetrics(self.db_label.font())
        if status.ok:
            self.db_label.setStyleSheet("")
            self.db_label.setText(
                "DB: "
                + metrics.elidedText(self.db_path, Qt.TextElideMode.ElideMiddle, DB_PATH_MAX_PX)
            )
            self.db_label.setToolTip(f"Database: {self.db_path}")
            return
        problem = (status.problem or "cannot write").upper()
        self.db_label.setText(f"⚠ DB: {problem} — {status.waiting} waiting")
        self.db_label.setStyleSheet(
            f"color: #ffffff; background: {self.theme.states['alert'].color}; font-weight: bold;"
        )
        self.db_label.setToolTip(
            f"{status.detail}\nThe meters are still read; recording resumes by itself once the"
            " disk takes writes again."
        )

    @Slot(object)
    def on_backup_status(self, status: BackupStatus) -> None:
        """The last good backup, or why there is none (through the bridge, on the GUI thread)."""
        self.backup_status = status
        text, state = backup_text(status, datetime.now(UTC))
        self.backup_state = state
        color = {
            "ok": self.theme.states["done"].color,
            "error": self.theme.states["alert"].color,
        }.get(state, self.theme.text_dim)
        self.backup_button.setText(text)
        self.backup_button.setIcon(icon("database", color, 22))
        tip = [text]
        if status.last_good_path:
            tip.append(f"Last good backup: {status.last_good_path}")
        if status.failing and status.last_error:
            tip.append(f"Last attempt failed: {status.last_error}")
        if status.directory:
            tip.append(f"Backups go to {status.directory}; click to back up now")
        elif not status.configured:
            tip.append("Add a [backup] section (dir = a second disk or USB stick) to the config")
        self.backup_button.setToolTip("\n".join(tip))

    @Slot(object)
    def on_worker_failed(self, failure: WorkerFailure) -> None:
        self._last_failure = failure
        self.failure_button.setText(
            f"⚠ {failure.worker} failed ({failure.failures}×): {failure.error[:60]} —"
            f" restarting in {failure.restart_in_s:g} s"
        )
        self.failure_button.setVisible(True)

    @Slot(str)
    def on_worker_restarted(self, name: str) -> None:
        if self._last_failure is not None and self._last_failure.worker == name:
            self.failure_button.setText(
                f"⚠ {name} restarted after {self._last_failure.failures} failure(s) — details"
            )

    # -- output -------------------------------------------------------------------------------
    def bus_state(self, bus_id: str) -> str:
        states = [
            self.health[mid].state if mid in self.health else "offline"
            for _, mid in self._meters_of.get(bus_id, [])
        ]
        return bus_state_of(states)

    def bus_text(self, bus_id: str) -> str:
        meters = self._meters_of.get(bus_id, [])
        ok = sum(1 for _, mid in meters if mid in self.health and self.health[mid].state == "ok")
        if not any(mid in self.health for _, mid in meters):
            return f"{bus_id}: starting"
        return f"{bus_id}: {_WORD[self.bus_state(bus_id)]} {ok}/{len(meters)}"

    @Slot()
    def _render(self) -> None:
        for bus_id in self._dirty:
            b = self.bus_buttons[bus_id]
            state = self.bus_state(bus_id)
            style = self.theme.state({"ok": "done", "degraded": "incomplete"}.get(state, "offline"))
            b.setText(self.bus_text(bus_id))
            b.setIcon(
                icon({"ok": "ok", "degraded": "degraded"}.get(state, "offline"), style.color, 22)
            )
            # The text may be elided on a narrow screen: the tooltip always has all of it.
            b.setToolTip(
                f"{self.bus_text(bus_id)}\nBus {bus_id} on {self._endpoints[bus_id]}:"
                " click for the meters"
            )
            dlg = self._details.get(bus_id)
            if dlg is not None and dlg.isVisible():
                dlg.refresh(self._rows(bus_id))
        self._dirty.clear()

    def _rows(self, bus_id: str) -> list[tuple[int, MeterHealth]]:
        return [
            (stall, self.health.get(mid, MeterHealth(meter_id=mid)))
            for stall, mid in sorted(self._meters_of.get(bus_id, []))
        ]

    def show_bus_details(self, bus_id: str) -> BusDetailsDialog:
        dlg = self._details.get(bus_id)
        if dlg is None:
            dlg = BusDetailsDialog(bus_id, self._endpoints[bus_id], self.window())
            self._details[bus_id] = dlg
        dlg.refresh(self._rows(bus_id))
        dlg.show()
        dlg.raise_()
        return dlg

    @Slot()
    def _show_failure(self) -> None:
        f = self._last_failure
        if f is None:
            return
        dlg = QDialog(self.window())
        dlg.setWindowTitle(f"{f.worker} failed")
        lay = QVBoxLayout(dlg)
        text = QPlainTextEdit(f"{f.error}\n\n{f.trace}")
        text.setReadOnly(True)
        lay.addWidget(text)
        ok = QPushButton("Close")
        ok.clicked.connect(dlg.accept)
        lay.addWidget(ok)
        dlg.resize(900, 500)
        dlg.show()

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        self._dirty.update(self.bus_buttons)
        self._render()
        if self.sync_status is not None:
            self.on_sync_status(self.sync_status)
        else:
            self.set_sync_status(*self._sync)
        if self.web_status is not None:
            self.on_web_status(self.web_status)
        if self.mqtt_status is not None:
            self.on_mqtt_status(self.mqtt_status)
        if self.backup_status is not None:
            self.on_backup_status(self.backup_status)
        if self.storage is not None:
            self.on_storage_status(self.storage)

    @Slot()
    def _tick(self) -> None:
        self.clock.setText(datetime.now().strftime("%H:%M"))
