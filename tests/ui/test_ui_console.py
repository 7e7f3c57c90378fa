"""The whole console, offscreen, on the demo's simulated parlour: real Modbus TCP and RTU meters,
real pollers in QThread workers, the real recorder writing a real SQLite file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from ui.app import Console, open_demo_console

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# Fast enough that the first cows come in within a few wall seconds.
TIME_SCALE = 30.0
demo_threads_before: set[threading.Thread] = set()


@pytest.fixture
def demo(qtbot):
    # Threads that were running before (a session's real Odoo, say) are not the console's.
    demo_threads_before.clear()
    demo_threads_before.update(threading.enumerate())
    console = open_demo_console(cows=40, time_scale=TIME_SCALE, seed=3, faults=None)
    qtbot.addWidget(console.window)
    console.window.resize(1600, 950)
    console.window.show()
    qtbot.waitExposed(console.window)
    console.start()
    yield console
    console.shutdown()


def milking_tile(console: Console):
    """A tile whose cow is being milked and whose meter shows some milk already."""
    for stall, tile in console.window.stall_view.tiles.items():
        if tile.session_state == "milking" and (tile.yield_l or 0) > 0.3:
            return stall, tile
    return None


def wait_for_milking(qtbot, console: Console):
    qtbot.waitUntil(lambda: milking_tile(console) is not None, timeout=20000)
    found = milking_tile(console)
    assert found is not None
    return found


def test_demo_console_shows_one_tile_per_simulated_stall(demo):
    assert len(demo.window.stall_view.tiles) == len(demo.config.meters) == 24
    assert len(demo.workers) == len(demo.config.buses)


def test_a_simulated_cows_yield_reaches_her_tile(qtbot, demo):
    _stall, tile = wait_for_milking(qtbot, demo)
    meter = demo.simulator.meters[tile.meter_id]
    shown_by_meter = meter.reported("yield_l")
    assert shown_by_meter is not None
    # What the meter shows now reaches the tile. How fast is a figure, not a test: it is
    # bench/tile_latency.py's `meter_to_tile_ms`; the timeout only bounds the wait.
    qtbot.waitUntil(lambda: (tile.yield_l or 0) >= float(shown_by_meter) - 1e-6, timeout=15000)
    assert tile.identity.status in ("known", "unknown_tag", "no_id")


def test_manual_id_in_the_console_reassociates_the_session_in_the_database(qtbot, demo):
    stall, tile = wait_for_milking(qtbot, demo)
    key = tile.session_key
    qtbot.waitUntil(lambda: len(demo.window.stall_view.herd.animals) > 0, timeout=5000)
    herd = demo.window.stall_view.herd
    current = demo.window.stall_view.identity_for(demo.window.stall_view.session_of(stall))[1]
    cow = next(a for a in herd.search("") if a.id != current)
    dlg = demo.window.open_manual_id(stall)
    assert dlg is not None
    dlg.entry.setText(cow.number)
    with qtbot.waitSignal(demo.window.manual_id_recorded, timeout=10000):
        dlg.pad_buttons["OK"].click()
    record = demo.window.store.record(key)
    assert record is not None
    assert (record.animal_id, record.id_source) == (cow.id, "manual")
    assert tile.identity.status == "manual" and tile.identity.number == cow.number


def test_a_meter_that_stops_answering_shows_as_offline(qtbot, demo):
    tile = demo.window.stall_view.tiles[2]
    qtbot.waitUntil(lambda: demo.window.status.bus_state("tcp-1") == "ok", timeout=10000)
    demo.simulator.meters[tile.meter_id].set_silent(True)
    qtbot.waitUntil(lambda: tile.display_state == "offline", timeout=15000)
    assert "METER OFFLINE" in tile.summary()
    # The other meters of the bus still answer: the bus is degraded, the meter offline.
    button = demo.window.status.bus_buttons["tcp-1"]
    qtbot.waitUntil(lambda: button.text() == "tcp-1: DEGRADED 3/4", timeout=2000)
    dlg = demo.window.status.show_bus_details("tcp-1")
    assert [dlg.table.item(1, c).text() for c in range(3)] == ["2", tile.meter_id, "OFFLINE"]
    dlg.close()
    demo.simulator.meters[tile.meter_id].set_silent(False)
    qtbot.waitUntil(lambda: tile.display_state != "offline", timeout=15000)


def test_closing_the_window_stops_every_thread(qtbot, demo):
    wait_for_milking(qtbot, demo)
    demo.window.close()
    report = demo.report
    assert report is not None and report.workers_stopped
    assert all(w.isFinished() for w in demo.workers)
    QApplication.processEvents()
    # Python threads left: none but the main one (the recorder, the simulator's servers and
    # scenario are all stopped). QThreads are not listed there; isFinished covers them.
    alive = [
        t.name
        for t in threading.enumerate()
        if t is not threading.main_thread()
        and not isinstance(t, threading._DummyThread)
        and t not in demo_threads_before
    ]
    assert alive == []


def test_screenshot_of_the_demo_console_mid_milking(qtbot, demo):
    qtbot.waitUntil(
        lambda: len(demo.window.stall_view.stalls_by_state().get("milking", [])) >= 6,
        timeout=20000,
    )
    qtbot.wait(1500)  # let the curves grow a little
    ARTIFACTS.mkdir(exist_ok=True)
    stalls_png = ARTIFACTS / "demo_console_stalls.png"
    assert demo.window.grab().save(str(stalls_png))
    demo.window.tabs.setCurrentWidget(demo.window.dashboard)
    qtbot.waitUntil(lambda: demo.window.dashboard.active_table.rowCount() > 0, timeout=3000)
    dash_png = ARTIFACTS / "demo_console_production.png"
    assert demo.window.grab().save(str(dash_png))
    assert stalls_png.stat().st_size > 20_000 and dash_png.stat().st_size > 20_000


def test_technician_tools_are_in_the_console_and_self_test_runs_on_the_bus_poller(qtbot, demo):
    menu = demo.window.technician_menu
    assert menu is not None
    titles = " ".join(a.text() for a in menu.actions()).lower()
    assert "calibrat" in titles and "diagnos" in titles
    assert demo.due_widget.isVisible()
    # The self-test runs where the diagnostics view runs it: off the GUI thread, through the
    # poller of the meter's own bus (stall 13 is on an RS-485 bus in the demo).
    rtu_meter = next(m for m in demo.config.meters if demo.config.bus(m.bus).transport == "rtu")
    box: dict[str, object] = {}
    t = threading.Thread(target=lambda: box.setdefault("r", demo._run_self_test(rtu_meter.id)))
    t.start()
    qtbot.waitUntil(lambda: not t.is_alive(), timeout=20000)
    result = box["r"]
    assert result.meter_id == rtu_meter.id and result.blocks  # type: ignore[attr-defined]
    assert all(b.error is None for b in result.blocks)  # type: ignore[attr-defined]
