"""The console's sync state against the Odoo simulator over real HTTP, offscreen.

The console runs its real sync worker (`ParlourRuntime.start_sync`) on a real SQLite file; its
status crosses to the GUI thread through the bridge. Sessions go in through the console's own
recorder; the simulator refuses one of them the way Odoo refuses a record, or goes away. The
OS keyring is replaced by an in-memory backend through keyring's `set_keyring`
(`simulators.keyring_memory.MemoryKeyring`), since a test machine has no keyring.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import keyring
import pytest
from PySide6.QtCore import Qt

from milkconsole.config import ParlourConfig, parse_config
from milkconsole.meters.events import SessionCompleted, SessionSnapshot
from milkconsole.store.db import open_database
from milkconsole.sync import secrets
from milkconsole.sync.settings import parse_odoo_settings
from milkconsole.sync.status import SyncStatus
from simulators.keyring_memory import MemoryKeyring
from simulators.odoo.server import OdooSimulator
from ui.app import Console
from ui.bridge import EventBridge
from ui.main_window import MainWindow
from ui.status_bar import sync_text

METERS = ("M01", "M02")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture
def vault() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def sim() -> Iterator[OdooSimulator]:
    with OdooSimulator(version="17.0") as s:
        s.seed_devices(list(METERS))
        yield s


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parlour_with_odoo(sim: OdooSimulator) -> ParlourConfig:
    # The meters' gateway is unplugged (nothing listens): this console is about the sync.
    data = {
        "parlour": {"name": "Sync parlour", "farm_code": "T1", "poll_interval_s": 0.5},
        "bus": [{"id": "bus-1", "transport": "tcp", "host": "127.0.0.1", "port": unused_port()}],
        "meter": [
            {"id": m, "bus": "bus-1", "unit": i + 1, "profile": "gea", "stall": i + 1}
            for i, m in enumerate(METERS)
        ],
        "odoo": {"url": sim.url, "database": sim.database, "login": "admin", "timeout_s": 5},
    }
    config = parse_config(data, "sync-parlour.toml")
    secrets.store_secret(parse_odoo_settings(data["odoo"], config.source), sim.api_key)
    return config


@pytest.fixture
def console(qtbot, sim, vault, tmp_path: Path) -> Iterator[Console]:
    c = Console(parlour_with_odoo(sim), tmp_path / "console.sqlite")
    qtbot.addWidget(c.window)
    c.window.resize(1500, 900)
    c.window.show()
    qtbot.waitExposed(c.window)
    c.start()
    yield c
    c.shutdown()


def milk(console: Console, n: int, *, prefix: str = "T1-S") -> list[str]:
    """`n` finished sessions through the console's recorder (its commit wakes the sync)."""
    keys = []
    started = datetime.now(UTC) - timedelta(minutes=30)
    for i in range(n):
        key = f"{prefix}{i:03d}"
        console.runtime.recorder.submit(
            SessionCompleted(
                SessionSnapshot(
                    key=key,
                    meter_id=METERS[i % 2],
                    stall=i % 2 + 1,
                    started_at=started + timedelta(minutes=i),
                    state="completed",
                    ended_at=started + timedelta(minutes=i + 7),
                    duration_s=420.0,
                    yield_l=11.0 + i,
                )
            )
        )
        keys.append(key)
    return keys


def sync_status(console: Console) -> SyncStatus | None:
    return console.window.status.sync_status


def test_a_refused_record_shows_in_the_status_bar_and_is_retried_from_the_sync_panel(
    qtbot, console, sim
):
    status_bar = console.window.status
    qtbot.waitUntil(lambda: status_bar.sync_button.text().startswith("Sync: online"), timeout=10000)
    sim.refuse("milk.session", "name", "T1-S001", "Yield exceeds the tank capacity")
    keys = milk(console, 3)

    qtbot.waitUntil(lambda: (s := sync_status(console)) is not None and s.dead == 1, timeout=10000)
    text = status_bar.sync_button.text()
    assert text.startswith("Sync: online · 1 refused · last ")
    assert status_bar.sync_state == "error"
    assert sim.count("milk.session") == 2

    qtbot.mouseClick(status_bar.sync_button, Qt.MouseButton.LeftButton)
    panel = console.window.sync_panel
    assert panel is not None and panel.isVisible()
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=5000)
    cells = [panel.table.item(0, c).text() for c in (1, 2)]
    assert cells == ["milk.session", "T1-S001"]
    assert "Odoo refused it: Yield exceeds the tank capacity" in panel.table.item(0, 5).text()
    assert panel.fields["refused"].text() == "1" and panel.fields["waiting"].text() == "0"
    panel.table.selectRow(0)
    assert '"key": "T1-S001"' in panel.payload.toPlainText()
    assert panel.retry_selected_button.isEnabled()
    ARTIFACTS.mkdir(exist_ok=True)
    assert panel.grab().save(str(ARTIFACTS / "sync_panel.png"))

    # Fixed in Odoo: the supervisor retries it and it lands, once.
    sim.clear_refusals()
    with qtbot.waitSignal(panel.requeued, timeout=5000) as requeued:
        qtbot.mouseClick(panel.retry_selected_button, Qt.MouseButton.LeftButton)
    assert requeued.args == [1]
    qtbot.waitUntil(
        lambda: (s := sync_status(console)) is not None and s.dead == 0 and s.backlog == 0,
        timeout=10000,
    )
    assert {r["name"] for r in sim.records("milk.session", fields=["name"])} == set(keys)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 0, timeout=5000)
    assert status_bar.sync_state == "ok"
    assert panel.title.text().startswith("Odoo sync: online · last ")


def test_odoo_going_away_shows_offline_with_the_backlog_until_sync_now_delivers_it(
    qtbot, console, sim
):
    status_bar = console.window.status
    qtbot.waitUntil(lambda: status_bar.sync_button.text().startswith("Sync: online"), timeout=10000)
    sim.stop()
    milk(console, 2, prefix="T1-OFF")

    qtbot.waitUntil(
        lambda: (s := sync_status(console)) is not None and s.state == "offline" and s.backlog > 0,
        timeout=10000,
    )
    assert status_bar.sync_button.text().startswith("Sync: OFFLINE · 2 waiting · last ")
    assert status_bar.sync_state == "pending"
    assert "refused the connection" in status_bar.sync_button.toolTip()
    panel = console.window.open_sync_panel()
    assert "refused the connection" in panel.fields["error"].text()
    assert panel.fields["waiting"].text() == "2"

    sim.start()  # the same port: the office network is back
    qtbot.mouseClick(panel.sync_now_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: (s := sync_status(console)) is not None and s.state == "online" and s.backlog == 0,
        timeout=10000,
    )
    assert sim.count("milk.session") == 2
    assert panel.fields["waiting"].text() == "0"


def test_a_burst_of_statuses_from_the_sync_thread_reaches_the_gui_as_the_newest_one(qtbot):
    bridge = EventBridge()
    seen: list[SyncStatus] = []
    bridge.sync_status_changed.connect(seen.append)

    def push() -> None:
        for n in range(500, -1, -1):
            bridge.publish_sync_status(SyncStatus("online", backlog=n))

    t = threading.Thread(target=push)
    t.start()
    t.join()
    qtbot.waitUntil(lambda: bool(seen) and seen[-1].backlog == 0, timeout=2000)
    assert len(seen) < 501 and bridge.sync_statuses == len(seen)


def test_sync_words_say_state_backlog_refused_and_last_sync():
    at = datetime(2025, 5, 1, 14, 2, tzinfo=UTC)
    hm = at.astimezone().strftime("%H:%M")
    assert sync_text(SyncStatus("online", last_sync_at=at)) == (f"online · last {hm}", "ok")
    assert sync_text(SyncStatus("online", backlog=3, last_sync_at=at)) == (
        f"online · 3 waiting · last {hm}",
        "pending",
    )
    assert sync_text(SyncStatus("offline", backlog=12, dead=1)) == (
        "OFFLINE · 12 waiting · 1 refused · never synced",
        "error",
    )
    assert sync_text(SyncStatus("auth_failed", last_sync_at=at))[1] == "error"
    assert sync_text(SyncStatus("not_configured")) == ("not configured", "idle")


def test_without_a_running_sync_the_panel_can_requeue_but_not_sync_now(qtbot, tmp_path):
    db = open_database(tmp_path / "plain.sqlite")
    config = parse_config(
        {
            "parlour": {"name": "P", "farm_code": "T1"},
            "bus": [{"id": "b", "transport": "tcp", "host": "127.0.0.1", "port": 1502}],
            "meter": [{"id": "M01", "bus": "b", "unit": 1, "profile": "gea", "stall": 1}],
        },
        "p.toml",
    )
    win = MainWindow(config, EventBridge(), db)
    qtbot.addWidget(win)
    try:
        assert win.status.sync_button.text() == "Sync: not configured"
        panel = win.open_sync_panel()
        qtbot.waitUntil(lambda: panel.reader.reads >= 1 and not panel.reader.busy, timeout=3000)
        assert panel.table.rowCount() == 0
        assert not panel.sync_now_button.isEnabled() and not panel.retry_all_button.isEnabled()
    finally:
        win.stop_reading()
        win.tasks.wait_for_done(5)
        db.close()
