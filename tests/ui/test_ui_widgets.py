"""The console's widgets, offscreen, fed core events through the real bridge.

Events are published from plain threads, as pollers do, and reach the widgets only through the
bridge's queued signal; the database is a real SQLite file opened through the store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from milkconsole.config import ParlourConfig, parse_config
from milkconsole.herd.directory import AnimalInfo, HerdDirectory
from milkconsole.meters.events import (
    MeterHealth,
    MeterStateChanged,
    PollCycleCompleted,
    ReadingTaken,
    SessionCompleted,
    SessionSnapshot,
    SessionStarted,
    SessionUpdated,
)
from milkconsole.meters.readings import Reading
from milkconsole.store.db import Database, open_database
from ui.bridge import EventBridge
from ui.main_window import MainWindow
from ui.stall_tile import CURVE_POINTS, FlowCurve, StallTileWidget, font_scale
from ui.stall_view import layout_tiles
from ui.theme import DARK, LIGHT, get_theme
from ui.workers import LoopWorkerThread, TaskRunner, WorkerFailure, stop_workers

DAISY_TAG = "982000123456789"


def parlour(stalls: int, layout: str = "herringbone") -> ParlourConfig:
    data = {
        "parlour": {"name": "Test parlour", "farm_code": "T1", "layout": layout},
        "bus": [{"id": "bus-1", "transport": "tcp", "host": "127.0.0.1", "port": 1502}],
        "meter": [
            {"id": f"M{i:02d}", "bus": "bus-1", "unit": i, "profile": "delaval-mm27bc", "stall": i}
            for i in range(1, stalls + 1)
        ],
    }
    return parse_config(data, "test-parlour.toml")


def session(stall: int, **kw: object) -> SessionSnapshot:
    values: dict[str, object] = {
        "key": f"T1-S{stall}-0001",
        "meter_id": f"M{stall:02d}",
        "stall": stall,
        "started_at": datetime.now(UTC),
    }
    values.update(kw)
    return SessionSnapshot(**values)  # type: ignore[arg-type]


def reading(stall: int, yield_l: float, flow: float) -> Reading:
    return Reading(
        meter_id=f"M{stall:02d}",
        stall=stall,
        t_mono=time.monotonic(),
        t_utc=datetime.now(UTC),
        yield_l=yield_l,
        flow_l_min=flow,
    )


def publish_from_thread(bridge: EventBridge, events: Sequence[object]) -> None:
    def publish_all() -> None:
        for e in events:
            bridge.publish(e)

    t = threading.Thread(target=publish_all)
    t.start()
    t.join()


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(tmp_path / "console.sqlite")
    yield database
    database.close()


@pytest.fixture
def window(qtbot, db: Database):
    bridge = EventBridge()
    win = MainWindow(parlour(12), bridge, db, theme=DARK)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.refresher.stop()
    win.tasks.wait_for_done(5)


@pytest.mark.parametrize(
    ("stalls", "layout"),
    [
        (2, "herringbone"),
        (24, "herringbone"),
        (31, "parallel"),
        (80, "herringbone"),
        (12, "rotary"),
        (60, "rotary"),
    ],
)
def test_window_shows_one_tile_per_stall(qtbot, db, stalls, layout):
    win = MainWindow(parlour(stalls, layout), EventBridge(), db)
    qtbot.addWidget(win)
    win.resize(1920, 1080)
    win.show()
    qtbot.waitExposed(win)
    tiles = win.stall_view.tiles
    assert sorted(tiles) == list(range(1, stalls + 1))
    rects = [t.geometry() for t in tiles.values()]
    assert all(
        t.isVisible() and r.width() >= 150 and r.height() >= 100
        for t, r in zip(tiles.values(), rects, strict=True)
    )
    for i, a in enumerate(rects):
        assert not any(a.intersects(b) for b in rects[i + 1 :]), "tiles overlap"


def _digit_scale(tile: StallTileWidget) -> float:
    return font_scale(tile.width(), tile.height())


def test_one_side_of_a_big_parlour_gets_bigger_tiles_and_names_who_waits_on_the_other(qtbot, db):
    bridge = EventBridge()
    win = MainWindow(parlour(80), bridge, db)
    qtbot.addWidget(win)
    win.resize(1920, 1080)
    win.show()
    qtbot.waitExposed(win)
    view, button = win.stall_view, win.side_button
    assert button.isVisible() and button.text() == "Both sides"
    both = _digit_scale(view.tiles[1])
    win.next_side()  # F6
    assert (view.side, button.text()) == (0, "Side A (1–40)")
    assert all(view.tiles[s].isVisible() == (s <= 40) for s in view.tiles)
    assert _digit_scale(view.tiles[1]) >= 1.4 * both
    rects = [view.tiles[s].geometry() for s in range(1, 41)]
    for i, a in enumerate(rects):
        assert not any(a.intersects(b) for b in rects[i + 1 :]), "tiles overlap"
    # A meter on the hidden side goes offline: the button names its stall.
    publish_from_thread(
        bridge, [MeterStateChanged(MeterHealth("M60", "offline", last_error="timeout"), "ok")]
    )
    qtbot.waitUntil(lambda: "1 on side B: stall 60" in button.text(), timeout=3000)
    win.next_side()
    assert (view.side, button.text()) == (1, "Side B (41–80)")
    assert view.tiles[60].isVisible() and view.tiles[60].display_state == "offline"
    win.next_side()
    assert view.side is None and all(t.isVisible() for t in view.tiles.values())
    assert _digit_scale(view.tiles[1]) == pytest.approx(both)
    with pytest.raises(ValueError, match="2 side"):
        view.set_side(2)
    win.refresher.stop()
    win.tasks.wait_for_done(5)


def test_a_rotary_has_no_sides_to_choose(qtbot, db):
    win = MainWindow(parlour(24, "rotary"), EventBridge(), db)
    qtbot.addWidget(win)
    win.show()
    assert not win.side_button.isVisible()
    win.next_side()
    assert win.stall_view.side is None
    win.refresher.stop()
    win.tasks.wait_for_done(5)


def test_rotary_shows_a_ring_when_tiles_fit_and_a_strip_when_not():
    _, _, small = layout_tiles(list(range(1, 13)), "rotary", 1900, 1000)
    _, _, big = layout_tiles(list(range(1, 61)), "rotary", 1900, 1000)
    assert (small, big) == ("ring", "strip")


def test_herringbone_puts_the_two_sides_apart():
    placements, _, shape = layout_tiles(list(range(1, 25)), "herringbone", 1600, 900)
    side_a = [p for p in placements if p.stall <= 12]
    side_b = [p for p in placements if p.stall > 12]
    assert shape == "rows"
    assert max(p.y + p.h for p in side_a) < min(p.y for p in side_b)


def test_yield_published_on_a_poller_thread_appears_on_the_tile(qtbot, window):
    s = session(3, rfid=None)
    publish_from_thread(
        window.bridge,
        [SessionStarted(s), ReadingTaken(reading(3, 4.2, 3.1), s.key)],
    )
    tile = window.stall_view.tiles[3]
    qtbot.waitUntil(lambda: tile.yield_l == pytest.approx(4.2), timeout=1000)
    assert tile.display_state == "milking"
    assert tile.curve.n == 1
    assert "4.2 L" in tile.summary()


def test_session_yield_adds_the_offset_after_a_meter_counter_reset(qtbot, window):
    s = session(4, yield_l=9.0, yield_offset_l=8.0, meter_yield_l=1.0)
    publish_from_thread(
        window.bridge, [SessionStarted(s), ReadingTaken(reading(4, 1.5, 2.0), s.key)]
    )
    tile = window.stall_view.tiles[4]
    qtbot.waitUntil(lambda: tile.yield_l == pytest.approx(9.5), timeout=1000)


def test_tile_names_the_cow_or_says_unknown_tag_or_no_id(qtbot, window):
    window.stall_view.set_herd(
        HerdDirectory({7: AnimalInfo(7, "1234", "Daisy", DAISY_TAG)}, {DAISY_TAG: 7}, {7: 20.0})
    )
    events = [
        SessionStarted(session(1, rfid=DAISY_TAG, yield_l=10.0)),
        SessionStarted(session(2, rfid="982000999999999")),
        SessionStarted(session(5, rfid=None)),
    ]
    publish_from_thread(window.bridge, events)
    tiles = window.stall_view.tiles
    qtbot.waitUntil(lambda: tiles[5].session_key is not None, timeout=1000)
    assert tiles[1].identity.line == "1234  Daisy"
    assert tiles[1].expected_l == 20.0
    assert "expected 20.0 L" in tiles[1].summary()
    assert tiles[2].identity.line == "unknown tag 982 000999999999"
    assert tiles[5].identity.line == "? no ID"


def test_tile_shows_alert_words_for_blood_high_conductivity_and_low_yield(qtbot, window):
    window.stall_view.set_herd(
        HerdDirectory({7: AnimalInfo(7, "1234", "Daisy", DAISY_TAG)}, {DAISY_TAG: 7}, {7: 20.0})
    )
    publish_from_thread(
        window.bridge,
        [
            SessionStarted(session(1, blood=True)),
            SessionStarted(session(2, conductivity_max_ms_cm=7.4)),
            SessionCompleted(session(3, rfid=DAISY_TAG, state="completed", yield_l=9.0)),
        ],
    )
    tiles = window.stall_view.tiles
    qtbot.waitUntil(lambda: tiles[3].session_key is not None, timeout=1000)
    assert tiles[1].alerts == ("BLOOD",)
    assert tiles[2].alerts == ("HIGH EC",)
    assert tiles[3].alerts == ("LOW YIELD",)
    assert {tiles[i].display_state for i in (1, 2, 3)} == {"alert"}


def test_offline_meter_shows_as_offline_on_its_tile_and_in_the_status_bar(qtbot, window):
    ok = [MeterHealth(f"M{i:02d}", "ok") for i in range(1, 13)]
    publish_from_thread(
        window.bridge,
        [
            PollCycleCompleted("bus-1", time.monotonic(), 0.1, 12, 0, tuple(ok)),
            MeterStateChanged(MeterHealth("M06", "offline", last_error="timeout"), "ok"),
        ],
    )
    tile = window.stall_view.tiles[6]
    qtbot.waitUntil(lambda: tile.display_state == "offline", timeout=1000)
    assert "METER OFFLINE" in tile.summary()
    button = window.status.bus_buttons["bus-1"]
    qtbot.waitUntil(lambda: button.text() == "bus-1: DEGRADED 11/12", timeout=1000)
    # A narrow screen may elide the button's text; its tooltip keeps all of it.
    assert button.toolTip().startswith("bus-1: DEGRADED 11/12\n")
    dlg = window.status.show_bus_details("bus-1")
    cells = [dlg.table.item(5, c).text() for c in range(3)]
    assert cells == ["6", "M06", "OFFLINE"]
    dlg.close()


def test_status_bar_says_sync_is_not_configured_and_shows_the_database(window, db):
    assert window.status.sync_button.text() == "Sync: not configured"
    assert str(db.path) in window.status.db_label.toolTip()
    assert window.status.db_label.text().startswith("DB: ")
    window.status.set_sync_status("3 pending", "pending")
    assert window.status.sync_button.text() == "Sync: 3 pending"


def test_flow_curve_keeps_the_whole_session_in_fixed_memory():
    curve = FlowCurve()
    for i in range(CURVE_POINTS * 5):
        curve.add(float(i))
    assert curve.n <= CURVE_POINTS
    assert curve.view()[0] < 10 and curve.view()[-1] > CURVE_POINTS * 4


def test_arrow_keys_move_between_tiles_and_enter_opens_the_stall_actions(qtbot, window):
    tiles = window.stall_view.tiles
    tiles[1].setFocus()
    qtbot.waitUntil(tiles[1].hasFocus, timeout=1000)
    qtbot.keyClick(tiles[1], Qt.Key.Key_Right)
    assert tiles[2].hasFocus()
    opened: list[int] = []
    window.stall_view.tile_activated.disconnect()
    window.stall_view.tile_activated.connect(opened.append)
    qtbot.keyClick(tiles[2], Qt.Key.Key_Return)
    qtbot.mouseClick(tiles[5], Qt.MouseButton.LeftButton)
    assert opened == [2, 5]


def test_theme_switches_between_dark_and_light(window):
    window.toggle_theme()
    assert window.theme is LIGHT
    assert window.stall_view.tiles[1]._theme is LIGHT
    app = QApplication.instance()
    assert isinstance(app, QApplication) and "#e9edf1" in app.styleSheet()
    window.toggle_theme()
    assert window.theme is DARK
    with pytest.raises(ValueError, match="unknown theme 'sepia'"):
        get_theme("sepia")


def test_worker_that_raises_is_reported_logged_and_restarted(qtbot, caplog):
    calls: list[int] = []
    stop = threading.Event()

    def loop() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("meter said no")
        stop.wait()

    worker = LoopWorkerThread("poller test", loop, stop.set)
    failures: list[WorkerFailure] = []
    worker.failed.connect(failures.append)
    with qtbot.waitSignal(worker.restarted, timeout=5000):
        worker.start()
    assert failures[0].error == "RuntimeError: meter said no"
    assert "meter said no" in failures[0].trace
    assert any("poller test failed" in r.message for r in caplog.records)
    assert stop_workers([worker], 2.0)
    assert worker.isFinished() and len(calls) == 2


def test_stopping_workers_ends_every_real_poller_thread(qtbot):
    from milkconsole.meters.poller import BusPoller, PolledMeter

    cfg = parlour(4)
    bus = cfg.buses[0]
    # Nothing listens on the bus's port: each poll fails with a connection error, as with a
    # gateway unplugged; the loop must still stop promptly.
    pollers = [
        BusPoller(
            bus,
            [PolledMeter(m, cfg.profiles[m.profile]) for m in cfg.meters],
            poll_interval_s=0.2,
            sink=lambda e: None,
        )
        for _ in range(3)
    ]
    workers = [LoopWorkerThread(f"p{i}", p.run, p.stop) for i, p in enumerate(pollers)]
    for w in workers:
        w.start()
    qtbot.waitUntil(lambda: all(p.cycles >= 1 for p in pollers), timeout=5000)
    assert stop_workers(workers, 2.0)
    assert all(w.isFinished() for w in workers)


def test_task_runner_hands_results_and_errors_back_to_the_gui_thread(qtbot):
    runner = TaskRunner()
    main = threading.get_ident()
    seen: list[tuple[str, int, bool]] = []

    def fail() -> None:
        raise LookupError("no such cow")

    runner.submit(
        lambda: threading.get_ident(),
        lambda r: seen.append(("ok", r, threading.get_ident() == main)),
    )
    runner.submit(fail, on_error=lambda e: seen.append((str(e), 0, threading.get_ident() == main)))
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=3000)
    ok = next(s for s in seen if s[0] == "ok")
    assert ok[1] != main and ok[2]
    assert ("no such cow", 0, True) in seen


def test_tile_repaints_only_when_what_it_shows_changed(qtbot):
    tile = StallTileWidget(1, "M01")
    qtbot.addWidget(tile)
    tile.resize(280, 210)
    tile.show()
    qtbot.waitExposed(tile)
    tile.apply_session("k1", "in_progress", 1.0, 0.0, 2.0)
    qtbot.wait(50)
    painted = tile.paint_count
    tile.apply_session("k1", "in_progress", 1.0, 0.0, 2.0)
    tile.set_meter_state("ok")
    tile.set_alerts(())
    qtbot.wait(50)
    assert tile.paint_count == painted


def test_session_update_events_keep_the_dashboard_live_table(qtbot, window):
    window.tabs.setCurrentWidget(window.dashboard)
    s = session(8, yield_l=3.3, flow_l_min=2.2)
    publish_from_thread(window.bridge, [SessionStarted(s), SessionUpdated(s)])
    qtbot.waitUntil(lambda: window.dashboard.active_table.rowCount() == 1, timeout=1500)
    assert window.dashboard.active_table.item(0, 2).text() == "3.3"
    assert window.dashboard.kpi_active.value.text() == "1"


def test_manual_id_typed_on_the_pad_reassociates_the_session_in_the_database(qtbot, window, db):
    from sqlalchemy import select

    from milkconsole.store.recorder import Recorder
    from milkconsole.store.schema import Animal, AuditEntry
    from milkconsole.store.sessions import SessionStore

    with db.write() as tx:
        daisy = Animal(number="1234", name="Daisy", rfid_tag=DAISY_TAG, active=True)
        tx.add(daisy)
        tx.flush()
        daisy_id = daisy.id
    recorder = Recorder(db, farm_code="T1")
    recorder.start()
    s = session(9, rfid="982000555555555", yield_l=1.0)  # a tag the herd list does not know
    recorder.submit(SessionStarted(s))
    assert recorder.flush(5.0)
    recorder.stop(5.0)
    window.reload_herd()
    qtbot.waitUntil(lambda: window.herd_loads >= 1, timeout=3000)
    publish_from_thread(window.bridge, [SessionStarted(s)])
    tile = window.stall_view.tiles[9]
    qtbot.waitUntil(lambda: tile.identity.status == "unknown_tag", timeout=1000)

    dlg = window.open_manual_id(9)
    assert dlg is not None
    for key in "1234":
        qtbot.mouseClick(dlg.pad_buttons[key], Qt.MouseButton.LeftButton)
    assert dlg.entry.text() == "1234"
    with qtbot.waitSignal(window.manual_id_recorded, timeout=5000) as blocker:
        qtbot.mouseClick(dlg.pad_buttons["OK"], Qt.MouseButton.LeftButton)
    assert blocker.args[0] == s.key

    record = SessionStore(db).record(s.key)
    assert record is not None
    assert (record.animal_id, record.id_source, record.rfid) == (daisy_id, "manual", s.rfid)
    with db.read() as tx:
        audit = tx.scalars(select(AuditEntry).where(AuditEntry.action == "manual_id")).one()
    assert audit.target == f"milk_session:{s.key}" and audit.actor == "operator"
    assert tile.identity.line == "1234  Daisy  (manual)"


def test_manual_id_refuses_a_number_not_in_the_herd(qtbot, window):
    window.stall_view.set_herd(
        HerdDirectory({7: AnimalInfo(7, "1234", "Daisy", DAISY_TAG)}, {DAISY_TAG: 7}, {})
    )
    publish_from_thread(window.bridge, [SessionStarted(session(2))])
    qtbot.waitUntil(lambda: window.stall_view.session_of(2) is not None, timeout=1000)
    dlg = window.open_manual_id(2)
    assert dlg is not None
    qtbot.keyClicks(dlg.entry, "999")
    qtbot.keyClick(dlg.entry, Qt.Key.Key_Return)
    assert dlg.isVisible() and dlg.error.text() == "No cow 999 in the herd list."
    dlg.entry.clear()
    qtbot.keyClicks(dlg.entry, "12")
    assert dlg.matches.count() == 1
    qtbot.mouseClick(
        dlg.matches.viewport(),
        Qt.MouseButton.LeftButton,
        pos=dlg.matches.visualItemRect(dlg.matches.item(0)).center(),
    )
    assert dlg.animal is not None and dlg.animal.number == "1234"


def test_reattach_on_a_tile_is_recorded_in_the_database(qtbot, window, db):
    from milkconsole.store.recorder import Recorder
    from milkconsole.store.sessions import SessionStore

    recorder = Recorder(db, farm_code="T1")
    recorder.start()
    s = session(10)
    recorder.submit(SessionStarted(s))
    assert recorder.flush(5.0)
    recorder.stop(5.0)
    publish_from_thread(window.bridge, [SessionStarted(s)])
    tile = window.stall_view.tiles[10]
    qtbot.waitUntil(lambda: tile.session_key == s.key, timeout=1000)
    tile.setFocus()
    with qtbot.waitSignal(window.reattach_recorded, timeout=5000):
        qtbot.keyClick(tile, Qt.Key.Key_R)
    record = SessionStore(db).record(s.key)
    assert record is not None and record.reattached
    assert "re-attached" in tile.summary()


def test_dashboard_shows_todays_figures_from_the_database(qtbot, window, db):
    from datetime import timedelta

    from milkconsole.store.sessions import new_session_row

    now = datetime.now(UTC)
    with db.write() as tx:
        for i, (y, abnormal, grade) in enumerate([(12.0, False, "A"), (8.0, True, "C")]):
            snap = SessionSnapshot(
                key=f"done-{i}",
                meter_id="M01",
                stall=1,
                started_at=now - timedelta(minutes=7 - i),
                state="completed",
                # Ended seconds ago, so "today" holds them unless the test straddles midnight.
                ended_at=now - timedelta(seconds=2 - i),
                yield_l=y,
            )
            row = new_session_row(snap, now)
            row.abnormal, row.quality_grade = abnormal, grade
            tx.add(row)
    window.tabs.setCurrentWidget(window.dashboard)
    dash = window.dashboard
    before = dash.snapshots_applied
    window.refresher.request()
    qtbot.waitUntil(lambda: dash.snapshots_applied > before, timeout=3000)
    assert dash.kpi_sessions.value.text() == "2"
    assert dash.kpi_total.value.text() == "20.0"
    assert dash.kpi_average.value.text() == "10.0"
    assert dash.quality_labels["A"].text() == "1" and dash.quality_labels["C"].text() == "1"
    notes = [dash.recent_table.item(r, 7).text() for r in range(dash.recent_table.rowCount())]
    assert notes == ["⚠ ABNORMAL", ""]  # newest first; the abnormal one is marked in words
    assert dash.chart is not None and sum(dash._bars.opts["height"]) == pytest.approx(20.0)


def test_a_milking_resumed_after_a_restart_gets_its_stored_curve_back(qtbot, window, db):
    from milkconsole.meters.events import FlowSample
    from milkconsole.store import Recorder

    key = "T1-S4-0001"
    started = datetime.now(UTC)
    stored = tuple(FlowSample(2.0 * i, 0.05 * i, 1.0 + 0.1 * i, 5.0) for i in range(20))
    rec = Recorder(db, farm_code="T1")  # what the console wrote before it was restarted
    rec.start()
    rec.submit(SessionStarted(session(4, key=key, started_at=started)))
    rec.submit(SessionUpdated(session(4, key=key, started_at=started), stored))
    assert rec.stop(5.0)

    resumed = session(4, key=key, started_at=started, yield_l=1.0, flags=("resumed",))
    publish_from_thread(
        window.bridge,
        [SessionUpdated(resumed), ReadingTaken(reading(4, 1.2, 3.5), session_key=key)],
    )
    tile = window.stall_view.tiles[4]
    qtbot.waitUntil(lambda: tile.curve.n == 21)
    assert list(tile.curve.view()) == pytest.approx([s.flow_l_min for s in stored] + [3.5])
