"""Milk separation in the console's widgets, offscreen, on a real database: a cow whose milk must
be kept out of the tank is never shown as normal (a late tag, a split milking, a resumed one, a
manual ID after the start, one of her other tags), the operator confirms "milk diverted", the
herd screen shows her card, and screenshots of DIVERT among normal tiles at 24 and 80 stalls.

Events come from plain threads through the real bridge, as the pollers send them.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from sqlalchemy import select

from milkconsole.grants import Grant
from milkconsole.herd.file import read_herd_csv
from milkconsole.herd.withdrawal import Treatment
from milkconsole.meters.events import (
    SessionCompleted,
    SessionSnapshot,
    SessionStarted,
    SessionUpdated,
)
from milkconsole.store.db import Database, open_database
from milkconsole.store.recorder import Recorder
from milkconsole.store.schema import AuditEntry, SessionRow
from milkconsole.store.separation import SeparationHook
from milkconsole.supervision.herd_changes import import_herd, seed_treatments
from milkconsole.supervision.users import UserStore
from tests.ui.test_ui_widgets import parlour, publish_from_thread
from ui.bridge import EventBridge
from ui.main_window import MainWindow
from ui.stall_tile import StallTileWidget
from ui.theme import DARK

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
NOW = datetime.now(UTC).replace(microsecond=0)
HERD = """number,name,rfid_tag,other_tags,group,lactation_number,last_calving_date
1001,Daisy,982000000000101,C0001001,High,3,
1002,Bella,982000000000102,,High,2,
1003,Clover,982000000000103,,Fresh,1,{calved}
1004,Rosie,982000000000104,,High,4,
1005,Molly,982000000000105,,High,2,
"""
DAISY, BELLA, CLOVER, ROSIE = (f"98200000000010{i}" for i in (1, 2, 3, 4))
SUPERVISOR, PIN = "Sue", "4321"


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(tmp_path / "console.sqlite")
    text = HERD.format(calved=(NOW - timedelta(days=1)).date().isoformat())
    import_herd(database, read_herd_csv(io.StringIO(text), "herd.csv"), grant=None)
    ids = {a: i for a, i in _ids(database).items()}
    seed_treatments(
        database,
        [
            Treatment(
                key="T-DAISY",
                animal_id=ids["1001"],
                product="Mastiplan LC",
                start=NOW - timedelta(hours=14),
                withdrawal_hours=84,
            ),
            # Rosie's withdrawal ended an hour ago: her next milking may go back in the tank.
            Treatment(
                key="T-ROSIE",
                animal_id=ids["1004"],
                product="Synulox",
                start=NOW - timedelta(hours=61),
                withdrawal_hours=60,
            ),
        ],
        actor="vet",
    )
    UserStore(database).add(SUPERVISOR, "supervisor", PIN, by=None)
    yield database
    database.close()


def _ids(db: Database) -> dict[str, int]:
    from milkconsole.store.directory import load_herd

    return {a.number: a.id for a in load_herd(db).animals.values()}


def make_window(qtbot, db: Database, stalls: int = 12, size=(1400, 900)) -> MainWindow:
    win = MainWindow(parlour(stalls), EventBridge(), db, theme=DARK)
    qtbot.addWidget(win)
    win.resize(*size)
    win.show()
    qtbot.waitExposed(win)
    win.start()
    qtbot.waitUntil(lambda: win.herd_loads >= 1, timeout=5000)
    return win


@pytest.fixture
def window(qtbot, db):
    win = make_window(qtbot, db)
    yield win
    win.stop_reading()
    win.tasks.wait_for_done(5)


def snap(stall: int, key: str, rfid: str | None, **kw) -> SessionSnapshot:
    values: dict[str, object] = {
        "key": key,
        "meter_id": f"M{stall:02d}",
        "stall": stall,
        "started_at": NOW,
        "rfid": rfid,
        "yield_l": 2.0,
    }
    values.update(kw)
    return SessionSnapshot(**values)  # type: ignore[arg-type]


class NeverNormal:
    """Checks a tile after every event the bridge hands the GUI: whenever its cow line names
    `number`, the tile must say DIVERT (or DIVERTED, once confirmed). Counts the checks."""

    def __init__(self, window: MainWindow, stall: int, number: str) -> None:
        self.tile = window.stall_view.tiles[stall]
        self.number = number
        self.checks = 0
        self.seen = 0
        b = window.bridge
        # Connected after the stall view's slots, so each check sees the event applied.
        for sig in (b.session_started, b.session_updated, b.session_completed, b.reading_taken):
            sig.connect(self.check)
        window.herd_loaded.connect(self.check)
        window.manual_id_recorded.connect(self.check)
        window.refresher.refreshed.connect(self.check)  # identity stored in the database

    def check(self, *_: object) -> None:
        self.checks += 1
        if self.tile.identity.number == self.number:
            self.seen += 1
            state = self.tile.display_state
            assert state in ("divert", "diverted"), f"cow {self.number} shown as {state}"


# -- never shown as normal ------------------------------------------------------------------------


def test_a_treated_cows_tag_turns_her_tile_to_divert_in_the_same_update(qtbot, window):
    tile = window.stall_view.tiles[3]
    guard = NeverNormal(window, 3, "1001")
    publish_from_thread(window.bridge, [SessionStarted(snap(3, "K1", DAISY))])
    qtbot.waitUntil(lambda: tile.session_key == "K1", timeout=2000)
    assert tile.display_state == "divert" and guard.seen >= 1
    assert "DIVERT the milk: Mastiplan LC (treatment, 84 h withdrawal), until" in tile.summary()
    assert tile.divert_until.startswith("until ")


def test_a_late_tag_a_split_and_her_other_tag_never_show_her_as_normal(qtbot, window):
    tile = window.stall_view.tiles[4]
    guard = NeverNormal(window, 4, "1001")
    no_tag = snap(4, "K2", None)
    late = snap(4, "K2", DAISY, flags=("rfid_late",), yield_l=3.0)
    publish_from_thread(window.bridge, [SessionStarted(no_tag), SessionUpdated(no_tag)])
    qtbot.waitUntil(lambda: tile.session_key == "K2", timeout=2000)
    assert tile.display_state == "milking" and tile.identity.status == "no_id"
    publish_from_thread(window.bridge, [SessionUpdated(late)])
    qtbot.waitUntil(lambda: tile.identity.number == "1001", timeout=2000)
    assert tile.display_state == "divert"
    # A split: Bella was on the meter, the tag changes to Daisy mid-milking.
    bella = snap(5, "K3", BELLA, yield_l=4.0)
    split_old = snap(5, "K3", BELLA, state="completed", flags=("rfid_split",), yield_l=4.2)
    split_new = snap(5, "K4", DAISY, flags=("rfid_split",), yield_l=0.0)
    tile5 = window.stall_view.tiles[5]
    guard5 = NeverNormal(window, 5, "1001")
    publish_from_thread(
        window.bridge,
        [SessionStarted(bella), SessionCompleted(split_old), SessionStarted(split_new)],
    )
    qtbot.waitUntil(lambda: tile5.session_key == "K4", timeout=2000)
    assert tile5.display_state == "divert" and guard5.seen >= 1
    # Her Afimilk tag (another of her tags) says Daisy too.
    tile6 = window.stall_view.tiles[6]
    NeverNormal(window, 6, "1001")
    publish_from_thread(window.bridge, [SessionStarted(snap(6, "K5", "C0001001"))])
    qtbot.waitUntil(lambda: tile6.session_key == "K5", timeout=2000)
    assert tile6.display_state == "divert" and tile6.identity.number == "1001"
    assert guard.seen >= 1


def test_a_manual_id_typed_after_the_start_shows_divert_at_once(qtbot, window, db):
    recorder = Recorder(db, farm_code="T1")
    recorder.start()
    s = snap(7, "K6", None)
    recorder.submit(SessionStarted(s))
    assert recorder.flush(5.0)
    recorder.stop(5.0)
    tile = window.stall_view.tiles[7]
    guard = NeverNormal(window, 7, "1001")
    publish_from_thread(window.bridge, [SessionStarted(s)])
    qtbot.waitUntil(lambda: tile.session_key == "K6", timeout=2000)
    dlg = window.open_manual_id(7)
    assert dlg is not None
    qtbot.keyClicks(dlg.entry, "1001")
    with qtbot.waitSignal(window.manual_id_recorded, timeout=5000):
        qtbot.keyClick(dlg.entry, Qt.Key.Key_Return)
    assert tile.identity.line == "1001  Daisy  (manual)"
    assert tile.display_state == "divert" and guard.seen >= 1


def test_a_resumed_milking_of_a_cow_named_by_hand_shows_divert_from_the_database(qtbot, db):
    # Before the restart the operator named the cow by hand (no tag) and confirmed nothing.
    recorder = Recorder(db, farm_code="T1")
    recorder.start()
    s = snap(8, "K7", None)
    recorder.submit(SessionStarted(s))
    assert recorder.flush(5.0)
    recorder.stop(5.0)
    from milkconsole.store.sessions import SessionStore

    SessionStore(db).set_manual_animal("K7", _ids(db)["1001"], "operator")
    # The console starts again: the tracker resumes the session under its own key.
    win = make_window(qtbot, db)
    try:
        tile = win.stall_view.tiles[8]
        guard = NeverNormal(win, 8, "1001")
        resumed = snap(8, "K7", None, flags=("resumed",), yield_l=5.0)
        publish_from_thread(win.bridge, [SessionUpdated(resumed)])
        qtbot.waitUntil(lambda: tile.identity.number == "1001", timeout=5000)
        assert tile.display_state == "divert" and guard.seen >= 1
    finally:
        win.stop_reading()
        win.tasks.wait_for_done(5)


# -- confirming, the end shown ahead, back to the tank --------------------------------------------


def test_pressing_d_records_the_diversion_and_the_tile_says_diverted(qtbot, window, db):
    recorder = Recorder(db, farm_code="T1")
    recorder.add_completion_hook(SeparationHook())
    recorder.start()
    s = snap(9, "K8", DAISY)
    recorder.submit(SessionStarted(s))
    assert recorder.flush(5.0)
    publish_from_thread(window.bridge, [SessionStarted(s)])
    tile = window.stall_view.tiles[9]
    qtbot.waitUntil(lambda: tile.display_state == "divert", timeout=2000)
    tile.setFocus()
    with qtbot.waitSignal(window.herd_actions.divert_recorded, timeout=5000):
        qtbot.keyClick(tile, Qt.Key.Key_D)
    assert tile.display_state == "diverted"
    assert "confirmed by operator" in tile.summary()
    done = snap(9, "K8", DAISY, state="completed", ended_at=NOW + timedelta(minutes=6))
    recorder.submit(SessionCompleted(done))
    assert recorder.flush(5.0)
    recorder.stop(5.0)
    with db.read() as tx:
        row = tx.get(SessionRow, "K8")
        assert row is not None
        assert (row.destination, row.divert_confirmed_by) == ("diverted", "operator")
        audit = tx.scalars(select(AuditEntry).where(AuditEntry.action == "milk_diverted")).one()
    assert audit.target == "milk_session:K8"


def test_the_first_milking_after_a_withdrawal_is_flagged_back_to_the_tank(qtbot, window):
    tile = window.stall_view.tiles[10]
    publish_from_thread(window.bridge, [SessionStarted(snap(10, "K9", ROSIE))])
    qtbot.waitUntil(lambda: tile.identity.number == "1004", timeout=2000)
    assert tile.display_state == "milking"
    assert "milk may go back in the tank" in tile.summary()


def test_colostrum_shows_which_milking_of_eight(qtbot, window):
    tile = window.stall_view.tiles[11]
    publish_from_thread(window.bridge, [SessionStarted(snap(11, "K10", CLOVER))])
    qtbot.waitUntil(lambda: tile.identity.number == "1003", timeout=2000)
    assert tile.display_state == "divert" and tile.divert.short_text == "colostrum 1/8"


def test_the_actions_of_a_divert_tile_offer_milk_diverted_first(qtbot, window):
    publish_from_thread(window.bridge, [SessionStarted(snap(2, "K11", DAISY))])
    tile = window.stall_view.tiles[2]
    qtbot.waitUntil(lambda: tile.display_state == "divert", timeout=2000)
    dlg = window.open_stall_actions(2)
    assert dlg.divert_button.isEnabled() and dlg.focusWidget() is dlg.divert_button
    assert "diverted" in dlg.divert_button.text().lower()
    assert not dlg.register_button.isVisible()
    dlg.close()


# -- the herd screen ------------------------------------------------------------------------------


def test_the_herd_screen_finds_a_cow_by_tag_and_shows_her_card(qtbot, window):
    herd = window.herd_view
    window.tabs.setCurrentWidget(herd)
    herd.search.setText("C0001001")  # her Afimilk tag
    assert herd.list.count() == 1
    herd.list.setCurrentRow(0)
    card = herd.card.text()
    for words in (
        "1001 Daisy",
        "982 000000000101",
        "C0001001",
        "High",
        "DIVERT",
        "Mastiplan LC",
        "Lactation",
    ):
        assert words in card, words
    herd.search.setText("100")
    assert herd.list.count() == 5
    assert "⚠ DIVERT (colostrum 1/8)" in herd.list.item(2).text()
    ARTIFACTS.mkdir(exist_ok=True)
    herd.search.setText("1001")
    herd.list.setCurrentRow(0)
    assert window.grab().save(str(ARTIFACTS / "herd_screen.png"))


def test_a_supervisor_records_a_treatment_from_the_herd_screen_with_a_pin(qtbot, window, db):
    herd = window.herd_view
    window.tabs.setCurrentWidget(herd)
    herd.search.setText("1002")
    herd.list.setCurrentRow(0)
    dlg = window.herd_actions.open_treatment(herd.selected or 0)
    assert dlg is not None
    dlg.product.setText("Cobactan LC")
    dlg.by_milkings.setChecked(True)
    dlg.milkings.setValue(4)
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.pin_dialog is not None, timeout=5000)
    pin = window.pin_dialog
    assert pin is not None
    for key in PIN:
        qtbot.mouseClick(pin.key_buttons[key], Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(window.herd_actions.treatment_recorded, timeout=10000) as rec:
        qtbot.mouseClick(pin.ok_button, Qt.MouseButton.LeftButton)
    assert rec.args[0].recorded_by == SUPERVISOR
    with db.read() as tx:
        audit = tx.scalars(
            select(AuditEntry).where(AuditEntry.action == "treatment_recorded")
        ).all()
    assert any(a.actor == SUPERVISOR and a.target == "animal:1002" for a in audit)
    # Bella's next milking (after the treatment: one that began before it is not affected).
    qtbot.waitUntil(lambda: "DIVERT" in herd.card.text(), timeout=5000)
    later = datetime.now(UTC) + timedelta(minutes=1)
    publish_from_thread(window.bridge, [SessionStarted(snap(1, "K12", BELLA, started_at=later))])
    qtbot.waitUntil(lambda: window.stall_view.tiles[1].display_state == "divert", timeout=3000)


# -- screenshots -----------------------------------------------------------------------------------


NAMES = ("Luna", "Maisy", "Hazel", "Poppy", "Bramble", "Dot", "Flora", "Ivy", "Juno", "Lottie")


def big_herd(db: Database) -> None:
    """Eighty more cows, so a screenshot's tiles name cows as a farm's do."""
    rows = "\n".join(
        f"{2000 + i},{NAMES[i % len(NAMES)]},98200000000{5000 + i}" for i in range(1, 81)
    )
    herd = read_herd_csv(io.StringIO(f"number,name,rfid_tag\n{rows}\n"), "h")
    import_herd(db, herd, grant=Grant(SUPERVISOR, "supervisor"))


def fill_parlour(win: MainWindow, stalls: int, divert_stall: int) -> None:
    """A milking in full swing: cows at every stage, one unknown tag, one with no ID, two empty
    stalls, and one cow whose milk must be diverted."""
    events: list[object] = []
    for stall in range(1, stalls + 1):
        if stall == divert_stall:
            tag: str | None = DAISY
        elif stall in (5, stalls - 6):
            continue  # an empty stall
        elif stall == 10:
            tag = "982000999999999"  # a tag no cow has
        elif stall == 16:
            tag = None  # the reader missed it
        else:
            tag = f"98200000000{5000 + stall}"
        y = 2.0 + (stall * 7 % 11) * 0.9
        s = snap(stall, f"S{stall}", tag, yield_l=y, flow_l_min=1.2 + (stall % 5) * 0.6)
        events += [SessionStarted(s), SessionUpdated(s)]
        if stall % 9 == 2:
            done = snap(stall, f"S{stall}", tag, yield_l=y + 6, state="completed")
            events.append(SessionCompleted(done))
    publish_from_thread(win.bridge, events)


@pytest.mark.parametrize("stalls", [24, 80])
def test_screenshot_divert_among_normal_tiles(qtbot, db, stalls):
    big_herd(db)
    win = make_window(qtbot, db, stalls=stalls, size=(1920, 1080))
    try:
        divert_stall = 7 if stalls == 24 else 53  # side A at 24 stalls, side B at 80
        fill_parlour(win, stalls, divert_stall)
        tile: StallTileWidget = win.stall_view.tiles[divert_stall]
        qtbot.waitUntil(lambda: tile.display_state == "divert", timeout=3000)
        qtbot.wait(200)
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"divert_{stalls}_stalls.png"
        assert win.grab().save(str(path))
        assert path.stat().st_size > 20_000
        # Both sides in one view: the DIVERT tile is on screen, not scrolled away.
        view = win.stall_view
        assert view.side is None
        assert tile.visibleRegion().boundingRect().height() == tile.height()
        if stalls == 80:
            # The operator working side A is told someone waits on side B.
            view.set_side(0)
            assert divert_stall in view.hidden_attention()
            win._update_side_button()
            assert f"DIVERT on side B: stall {divert_stall}" in win.side_button.text()
            assert win.grab().save(str(ARTIFACTS / "divert_80_stalls_side_a.png"))
            view.set_side(1)
            qtbot.wait(100)
            assert win.grab().save(str(ARTIFACTS / "divert_80_stalls_side_b.png"))
    finally:
        win.stop_reading()
        win.tasks.wait_for_done(5)


def test_screenshot_of_divert_diverted_back_to_tank_and_divert_on_an_offline_meter(qtbot, db):
    win = make_window(qtbot, db, stalls=4, size=(1400, 700))
    try:
        view = win.stall_view
        publish_from_thread(
            win.bridge,
            [
                SessionStarted(snap(1, "A", DAISY, yield_l=6.4, flow_l_min=3.1)),
                SessionStarted(snap(2, "B", CLOVER, yield_l=3.1, flow_l_min=2.2)),
                SessionStarted(snap(3, "C", ROSIE, yield_l=9.8, flow_l_min=2.9)),
                SessionStarted(snap(4, "D", DAISY, yield_l=1.2, flow_l_min=0.4)),
            ],
        )
        qtbot.waitUntil(lambda: view.tiles[4].display_state == "divert", timeout=3000)
        view.set_confirmed("B", "operator")  # confirmed: calm, with the reason kept in sight
        view.tiles[4].set_meter_state("offline")  # a silent meter never hides DIVERT
        assert [view.tiles[i].display_state for i in (1, 2, 3, 4)] == [
            "divert",
            "diverted",
            "milking",
            "divert",
        ]
        assert "METER OFFLINE" not in view.tiles[4].summary().split(",")[1]
        ARTIFACTS.mkdir(exist_ok=True)
        assert win.grab().save(str(ARTIFACTS / "divert_tile_states.png"))
    finally:
        win.stop_reading()
        win.tasks.wait_for_done(5)
