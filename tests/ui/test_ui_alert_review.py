"""The supervisor's alert review in the console, offscreen.

The first tests run the whole demo console on a small simulated parlour (real Modbus meters,
real pollers, the real recorder and health hook on a real SQLite file) in which one cow comes in
with mastitis: her herd history was seeded with normal milkings and yesterday's first signs, her
sick quarter's conductivity is raised in the simulator, and the alert the real detector raises
must reach her tile and the review list, where a supervisor acknowledges and resolves it with a
PIN. The others drive the review and the tiles on a real database the way the recorder fills it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel, QMenu
from sqlalchemy import select

from milkconsole.config import ParlourConfig, parse_config
from milkconsole.grants import Grant
from milkconsole.meters.events import SessionCompleted, SessionSnapshot, SessionStarted
from milkconsole.reports.dashboard import HIGH_CONDUCTIVITY_MS_CM, tile_alerts
from milkconsole.store.alerts import list_alerts
from milkconsole.store.db import Database, open_database
from milkconsole.store.recorder import Recorder
from milkconsole.store.schema import AlertRow, Animal, AuditEntry
from milkconsole.supervision.alerts import acknowledge_alert, resolve_alert
from milkconsole.supervision.users import UserStore
from ui.app import Console, open_demo_console
from ui.bridge import EventBridge
from ui.main_window import MainWindow
from ui.theme import DARK

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SUPERVISOR, PIN = "Sue", "4321"
DAISY_TAG = "982000123456789"


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Process Qt events until `predicate()` (a module-scoped fixture has no qtbot)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        QApplication.processEvents()
        time.sleep(0.01)


# -- the whole console with a sick cow ----------------------------------------------------------


@dataclass(frozen=True)
class SickParlour:
    """The running console, the sick cow's animal id and the stall she was milked in."""

    console: Console
    animal_id: int
    stall: int

    @property
    def window(self) -> MainWindow:
        return self.console.window


@pytest.fixture(scope="module")
def sick(qapp: QApplication) -> Iterator[SickParlour]:
    """A 4-stall demo parlour, 4 cows, one of them sick, milked until her alert is listed."""
    console = open_demo_console(
        stalls=4, cows=4, time_scale=120.0, seed=5, faults=None, sick_cows=1
    )
    UserStore(console.db).add(SUPERVISOR, "supervisor", PIN, by=None)
    console.window.resize(1700, 1000)
    console.window.show()
    console.start()
    try:
        [cow_index] = console.sick_cows
        scenario = console.simulator.scenario
        number = str(scenario.herd[cow_index].herd_number)
        with console.db.read() as tx:
            animal_id = tx.scalars(select(Animal.id).where(Animal.number == number)).one()
        stall = next(m.stall for m in scenario.plan if m.cow_index == cow_index)
        review = console.window.alert_review
        console.window.show_alerts()
        wait_until(
            lambda: any(a.animal_id == animal_id for a in review.alerts),
            30.0,
            "the sick cow's alert in the review list",
        )
        yield SickParlour(console, animal_id, stall)
    finally:
        console.shutdown()


def test_a_simulated_sick_cows_alert_appears_on_her_tile_and_in_the_review_list(sick):
    window = sick.window
    review = window.alert_review
    [alert] = [a for a in review.alerts if a.animal_id == sick.animal_id]
    assert alert.kind == "mastitis" and alert.state == "open"
    assert "quarter LF conductivity up" in alert.message  # the quarter the simulator made sick
    # Only she is sick: the detector raised nothing for the healthy cows.
    assert [a.animal_id for a in review.alerts] == [sick.animal_id]
    assert review.table.rowCount() == 1
    assert review.table.item(0, 1).text() == alert.cow_label
    assert review.table.item(0, 2).text() == "Mastitis (quarter LF)"

    stall = sick.stall
    tile = window.stall_view.tiles[stall]
    wait_until(lambda: tile.display_state == "alert", 5.0, "her tile in the alert state")
    assert tile.identity.number == alert.animal_number
    assert "HIGH EC" in tile.alerts and "ALERT" in tile.summary()
    # The chip is the stored alert's: her milk's own conductivity stayed under the tile's limit.
    session = window.stall_view.session_of(stall)
    assert session is not None and session.key == alert.session_key
    assert (session.conductivity_max_ms_cm or 0) <= HIGH_CONDUCTIVITY_MS_CM
    assert tile_alerts(session, None) == ()
    wait_until(lambda: window.tabs.tabText(window.alerts_tab) == "Alerts (1)", 5.0, "tab count")


def test_screenshot_of_the_alert_review_with_her_history_chart(sick):
    window = sick.window
    review = window.alert_review
    window.show_alerts()
    review.state_combo.setCurrentText("All")
    wait_until(lambda: review.count_label.text().startswith("1 alert"), 5.0, "the list")
    assert review.select_alert(next(a.id for a in review.alerts if a.animal_id == sick.animal_id))
    history = review.history
    wait_until(lambda: history.history is not None, 10.0, "her history chart")
    assert history.ec_points >= 9  # 8 seeded days and today's milking
    assert [a.animal_id for a, _, _ in history.alert_lines] == [sick.animal_id]
    assert history.alert_symbols is not None and len(history.alert_symbols.data) == 1
    QApplication.processEvents()
    ARTIFACTS.mkdir(exist_ok=True)
    out = ARTIFACTS / "alert_review.png"
    assert window.grab().save(str(out))
    assert out.stat().st_size > 20_000


def test_acknowledging_and_resolving_in_the_review_are_stored_and_audited(sick, qtbot):
    window = sick.window
    review = window.alert_review
    db = sick.console.db
    window.show_alerts()
    review.state_combo.setCurrentIndex(0)  # needs attention
    wait_until(lambda: bool(review.alerts), 5.0, "the list")
    [alert] = [a for a in review.alerts if a.animal_id == sick.animal_id]
    assert review.select_alert(alert.id)
    assert review.ack_button.isEnabled()

    # Locked: acknowledging asks for a PIN first.
    review.note_edit.setPlainText("LF hard and hot, CMT ++")
    qtbot.mouseClick(review.ack_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.pin_dialog is not None, timeout=5000)
    dlg = window.pin_dialog
    assert dlg is not None and dlg.user_combo.currentData() == SUPERVISOR
    for key in PIN:
        qtbot.mouseClick(dlg.key_buttons[key], Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(review.alert_changed, timeout=10000) as acked:
        qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    assert acked.args[0].state == "acknowledged" and acked.args[0].acknowledged_by == SUPERVISOR

    # Resolving needs a note; the console is still unlocked, so no second PIN.
    qtbot.mouseClick(review.resolve_button, Qt.MouseButton.LeftButton)
    assert review.message.text() == "Write what was done before resolving the alert."
    review.note_edit.setPlainText("Treated LF with intramammary tubes; milk withheld 4 days")
    with qtbot.waitSignal(review.alert_changed, timeout=10000) as resolved:
        qtbot.mouseClick(review.resolve_button, Qt.MouseButton.LeftButton)
    assert resolved.args[0].state == "resolved"

    with db.read() as tx:
        row = tx.get(AlertRow, alert.id)
        audits = list(
            tx.scalars(
                select(AuditEntry)
                .where(AuditEntry.target == f"alert:{alert.key}")
                .order_by(AuditEntry.id)
            )
        )
    assert row is not None
    assert (row.state, row.acknowledged_by, row.resolved_by) == ("resolved", "Sue", "Sue")
    assert row.note == "Treated LF with intramammary tubes; milk withheld 4 days"
    assert [(a.action, a.actor, a.role) for a in audits] == [
        ("alert_acknowledge", "Sue", "supervisor"),
        ("alert_resolve", "Sue", "supervisor"),
    ]
    assert audits[0].after["note"] == "LF hard and hot, CMT ++"
    # Resolved: it leaves the attention list and her tile; the details stay in sight.
    qtbot.waitUntil(lambda: review.table.rowCount() == 0, timeout=5000)
    assert review.selected() is not None and review.selected().state == "resolved"
    tile = window.stall_view.tiles[sick.stall]
    qtbot.waitUntil(lambda: "HIGH EC" not in tile.alerts, timeout=5000)
    qtbot.waitUntil(lambda: window.tabs.tabText(window.alerts_tab) == "Alerts", timeout=5000)


# -- the review and the tiles on a database ---------------------------------------------------


def parlour(stalls: int = 4) -> ParlourConfig:
    data = {
        "parlour": {"name": "Test parlour", "farm_code": "T1"},
        "bus": [{"id": "bus-1", "transport": "tcp", "host": "127.0.0.1", "port": 1502}],
        "meter": [
            {"id": f"M{i:02d}", "bus": "bus-1", "unit": i, "profile": "gea", "stall": i}
            for i in range(1, stalls + 1)
        ],
    }
    return parse_config(data, "test-parlour.toml")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "review.sqlite")
    yield database
    database.close()


@pytest.fixture
def window(qtbot, db: Database) -> Iterator[MainWindow]:
    win = MainWindow(parlour(), EventBridge(), db, theme=DARK)
    qtbot.addWidget(win)
    win.resize(1500, 900)
    win.show()
    qtbot.waitExposed(win)
    win.start()
    yield win
    win.stop_reading()
    win.tasks.wait_for_done(5)


def add_cow(db: Database, number: str, name: str, tag: str) -> int:
    with db.write() as tx:
        animal = Animal(number=number, name=name, rfid_tag=tag)
        tx.add(animal)
        tx.flush()
        return animal.id


def record_milking(db: Database, key: str, tag: str, started: datetime, **kw: object) -> None:
    snap = SessionSnapshot(
        key=key,
        meter_id="M01",
        stall=1,
        started_at=started,
        state="completed",
        rfid=tag,
        ended_at=started + timedelta(minutes=7),
        duration_s=420.0,
        yield_l=12.0,
        conductivity_mean_ms_cm=5.1,
        **kw,  # type: ignore[arg-type]
    )
    recorder = Recorder(db, farm_code="T1")
    recorder.start()
    recorder.submit(SessionCompleted(snap))
    assert recorder.stop(5.0)


def raise_alert(db: Database, key: str, animal_id: int, session_key: str, **kw: object) -> int:
    values: dict[str, object] = {
        "kind": "mastitis",
        "condition": "quarter RR",
        "severity": "critical",
        "state": "open",
        "message": "quarter RR conductivity up (6.0 sd); score 8.2",
        "raised_at": datetime.now(UTC) - timedelta(hours=12),
    }
    values.update(kw)
    with db.write() as tx:
        row = AlertRow(key=key, animal_id=animal_id, session_key=session_key, **values)
        tx.add(row)
        tx.flush()
        return row.id


def test_a_cows_open_alert_shows_on_her_tile_when_she_is_milked_again(qtbot, window, db):
    daisy = add_cow(db, "1234", "Daisy", DAISY_TAG)
    yesterday = datetime.now(UTC) - timedelta(hours=12, minutes=10)
    record_milking(db, "T1-M01-yesterday", DAISY_TAG, yesterday)
    alert_id = raise_alert(db, "T1-M01-yesterday:mastitis", daisy, "T1-M01-yesterday")
    window.reload_herd()
    window.marks.request()
    qtbot.waitUntil(lambda: window.herd_loads >= 1, timeout=3000)
    qtbot.waitUntil(lambda: window.tabs.tabText(window.alerts_tab) == "Alerts (1)", timeout=3000)

    # She walks in again today: a new session, nothing abnormal in it yet.
    window.bridge.publish(
        SessionStarted(
            SessionSnapshot(
                key="T1-M02-today",
                meter_id="M02",
                stall=2,
                started_at=datetime.now(UTC),
                rfid=DAISY_TAG,
                conductivity_max_ms_cm=5.2,
            )
        )
    )
    tile = window.stall_view.tiles[2]
    qtbot.waitUntil(lambda: tile.identity.number == "1234", timeout=2000)
    assert tile.alerts == ("HIGH EC",) and tile.display_state == "alert"

    supervisor = Grant(SUPERVISOR, "supervisor")
    UserStore(db).add(SUPERVISOR, "supervisor", PIN, by=None)
    resolve_alert(db, supervisor, alert_id, "dried off LF... treated")
    window.marks.request()
    qtbot.waitUntil(lambda: tile.alerts == (), timeout=3000)
    assert tile.display_state == "milking"


def test_the_review_filters_by_cow_severity_and_state(qtbot, window, db):
    daisy = add_cow(db, "1234", "Daisy", DAISY_TAG)
    molly = add_cow(db, "2077", "Molly", "982000123456790")
    record_milking(db, "k1", DAISY_TAG, datetime.now(UTC) - timedelta(days=1))
    raise_alert(db, "k1:mastitis", daisy, "k1")
    raise_alert(db, "k1:identity", molly, "k1", kind="identity", severity="warning")
    raise_alert(db, "old", molly, "k1", state="resolved", severity="warning")
    review = window.alert_review
    window.show_alerts()
    qtbot.waitUntil(lambda: review.count_label.text() == "2 alerts", timeout=3000)

    review.cow_edit.setText("mol")  # part of her name; read once typing pauses
    qtbot.waitUntil(lambda: review.count_label.text() == "1 alert", timeout=3000)
    assert review.alerts[0].animal_id == molly and review.alerts[0].state == "open"
    review.state_combo.setCurrentText("All")
    qtbot.waitUntil(lambda: review.count_label.text() == "2 alerts", timeout=3000)
    review.cow_edit.clear()
    review.severity_combo.setCurrentText("Critical")
    qtbot.waitUntil(lambda: review.count_label.text() == "1 alert", timeout=3000)
    assert review.table.item(0, 3).text() == "CRITICAL"
    assert review.table.item(0, 1).text() == "1234 Daisy"
    # Dates are local days: nothing was raised before last week.
    review.severity_combo.setCurrentIndex(0)
    review.to_edit.setDate(review.from_edit.date().addDays(1))
    qtbot.waitUntil(lambda: review.count_label.text() == "0 alerts", timeout=3000)


def test_a_cancelled_pin_changes_nothing_and_a_second_acknowledge_is_not_offered(qtbot, window, db):
    daisy = add_cow(db, "1234", "Daisy", DAISY_TAG)
    record_milking(db, "k2", DAISY_TAG, datetime.now(UTC) - timedelta(days=1))
    alert_id = raise_alert(db, "k2:mastitis", daisy, "k2")
    UserStore(db).add(SUPERVISOR, "supervisor", PIN, by=None)
    review = window.alert_review
    window.show_alerts()
    qtbot.waitUntil(lambda: review.select_alert(alert_id), timeout=3000)
    qtbot.mouseClick(review.ack_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.pin_dialog is not None, timeout=3000)
    window.pin_dialog.reject()
    qtbot.wait(200)
    assert [a.state for a in list_alerts(db)] == ["open"]
    with db.read() as tx:
        assert tx.scalars(select(AuditEntry).where(AuditEntry.action.like("alert_%"))).all() == []

    acknowledge_alert(db, Grant(SUPERVISOR, "supervisor"), alert_id)  # at another console
    review.refresh()
    qtbot.waitUntil(lambda: review.selected().state == "acknowledged", timeout=3000)
    assert not review.ack_button.isEnabled() and review.resolve_button.isEnabled()
    assert "Acknowledged by Sue" in review.details.text()


def test_technician_tools_install_before_the_supervisor_menu_and_bring_their_pin_prompt(
    qtbot, window, db
):
    daisy = add_cow(db, "1234", "Daisy", DAISY_TAG)
    record_milking(db, "k3", DAISY_TAG, datetime.now(UTC) - timedelta(days=1))
    alert_id = raise_alert(db, "k3:mastitis", daisy, "k3")
    UserStore(db).add(SUPERVISOR, "supervisor", PIN, by=None)
    asked: list[str] = []

    def their_prompt(action: str, then: Callable[[Grant], None]) -> None:
        asked.append(action)
        then(Grant(SUPERVISOR, "supervisor"))

    lock = QLabel("Locked")
    window.install_technician(QMenu("&Technician"), lock, their_prompt)
    titles = [a.text() for a in window.menuBar().actions()]
    assert titles == ["&Technician", "&Supervisor"]
    assert lock.parent() is not None

    review = window.alert_review
    window.show_alerts()
    qtbot.waitUntil(lambda: review.select_alert(alert_id), timeout=3000)
    with qtbot.waitSignal(review.alert_changed, timeout=5000):
        qtbot.mouseClick(review.ack_button, Qt.MouseButton.LeftButton)
    assert asked == ["alert_acknowledge"] and window.pin_dialog is None
    assert [a.state for a in list_alerts(db)] == ["acknowledged"]
