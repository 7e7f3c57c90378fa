"""Milk separation in the whole console, against the simulated parlour: real Modbus TCP meters
whose registers the test sets as a cow comes in, real pollers, the real recorder with its
separation hook, a real SQLite file. A treated cow's tag shows DIVERT on her tile within one
poll; confirming records where the milk went; an unconfirmed milking raises the alert; the tank
totals and the bulk-tank check leave her milk out; an unknown tag registered at the stall takes
the session with it; and she is never shown as normal with a late tag, a split milking, a manual
ID after the start, or a console restarted mid-milking.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from sqlalchemy import select

from milkconsole.config import ParlourConfig, load_config
from milkconsole.herd.file import read_herd_csv
from milkconsole.herd.withdrawal import Treatment
from milkconsole.meters.events import ReadingTaken
from milkconsole.meters.rfid import fdx_b_to_iso
from milkconsole.reports.dashboard import production_snapshot
from milkconsole.store.db import Database, open_database
from milkconsole.store.schema import AlertRow, Animal, AuditEntry, OutboxRow, SessionRow
from milkconsole.supervision.herd_changes import import_herd, seed_treatments
from milkconsole.supervision.users import UserStore
from milkconsole.technician.calibration import CalibrationSettings, reconcile_bulk_tank
from simulators.demo import SimulatedParlour, make_demo_config
from simulators.meter import SimulatedMeter, fdx_b_code
from tests.ui.test_ui_divert import NeverNormal
from ui.app import Console
from ui.manual_id_dialog import RegisterTagDialog

# Fast thresholds on the wall clock: a milking of a few seconds is a whole one here.
TIME_SCALE = 120.0
DAISY, BELLA, CLOVER = (fdx_b_code(982, n) for n in (101, 102, 103))
STRANGER = fdx_b_code(982, 999)


def hex_tag(fdx: int) -> str:
    return f"{fdx:016X}"  # what a DeLaval or GEA meter shows


@dataclass
class Parlour:
    """A 4-stall simulated parlour and the console on it; stalls 1 and 2 are Modbus TCP
    meters with a status bit (DeLaval, GEA)."""

    config: ParlourConfig
    sim: SimulatedParlour
    db_path: Path
    console: Console

    def meter(self, stall: int) -> SimulatedMeter:
        m = next(m for m in self.config.meters if m.stall == stall)
        return self.sim.meters[m.id]

    def milk(self, stall: int, fdx: int | None, litres: float, flow: float = 3.0) -> None:
        self.meter(stall).set_values(
            status=1,
            rfid=hex_tag(fdx) if fdx is not None else None,
            yield_l=litres,
            flow_l_min=flow,
            conductivity_ms_cm=5.1,
        )

    def off(self, stall: int, litres: float) -> None:
        """The cluster comes off: the meter holds the final yield."""
        self.meter(stall).set_values(status=0, yield_l=litres, flow_l_min=0.0)

    def tile(self, stall: int):
        return self.console.window.stall_view.tiles[stall]

    @property
    def db(self) -> Database:
        return self.console.db


def prepare(tmp_path: Path) -> tuple[ParlourConfig, Path]:
    cfg = load_config(make_demo_config(tmp_path, stalls=4, time_scale=TIME_SCALE))
    db_path = tmp_path / "console.sqlite"
    db = open_database(db_path)
    try:
        now = datetime.now(UTC)
        herd = (
            "number,name,rfid_tag,last_calving_date,lactation_number\n"
            f"1001,Daisy,{fdx_b_to_iso(DAISY)},,3\n"
            f"1002,Bella,{fdx_b_to_iso(BELLA)},,2\n"
            f"1003,Clover,{fdx_b_to_iso(CLOVER)},{(now - timedelta(days=1)).date()},1\n"
        )
        import_herd(db, read_herd_csv(io.StringIO(herd), "herd.csv"), grant=None)
        with db.read() as tx:
            daisy = tx.scalars(select(Animal.id).where(Animal.number == "1001")).one()
        seed_treatments(
            db,
            [
                Treatment(
                    key="T-DAISY",
                    animal_id=daisy,
                    product="Mastiplan LC",
                    start=now - timedelta(hours=10),
                    withdrawal_hours=84,
                )
            ],
            actor="vet",
        )
        UserStore(db).add("Sue", "supervisor", "4321", by=None)
    finally:
        db.close()
    return cfg, db_path


def open_console(qtbot, cfg: ParlourConfig, db_path: Path) -> Console:
    console = Console(cfg, db_path)
    qtbot.addWidget(console.window)
    console.window.resize(1500, 900)
    console.window.show()
    qtbot.waitExposed(console.window)
    console.start()
    qtbot.waitUntil(lambda: console.window.herd_loads >= 1, timeout=10000)
    return console


@pytest.fixture
def parlour(qtbot, tmp_path: Path) -> Iterator[Parlour]:
    cfg, db_path = prepare(tmp_path)
    sim = SimulatedParlour(cfg, cows=0, seed=1, time_scale=TIME_SCALE)
    with contextlib.ExitStack() as stack:
        sim.start(scenario=False)
        stack.callback(sim.stop)
        console = open_console(qtbot, cfg, db_path)
        stack.callback(console.shutdown)
        yield Parlour(cfg, sim, db_path, console)


def session_row(db: Database, key: str) -> SessionRow | None:
    with db.read() as tx:
        return tx.get(SessionRow, key)


def finished(p: Parlour, key: str):
    def check() -> bool:
        row = session_row(p.db, key)
        return row is not None and row.state != "in_progress"

    return check


def test_a_treated_cows_tag_shows_divert_on_her_tile_within_one_poll(qtbot, parlour):
    seen: list[tuple[str, str]] = []

    def on_reading(event: ReadingTaken) -> None:
        # Connected after the stall view: the tile already shows what this poll brought.
        r = event.reading
        if r.stall == 1 and r.rfid and not seen:
            seen.append((r.rfid, parlour.tile(1).display_state))

    parlour.console.bridge.reading_taken.connect(on_reading)
    parlour.milk(1, DAISY, 0.4)
    qtbot.waitUntil(lambda: bool(seen), timeout=10000)
    assert seen[0] == (hex_tag(DAISY), "divert"), "the first poll that read her tag"
    tile = parlour.tile(1)
    assert tile.identity.number == "1001"
    assert "Mastiplan LC" in tile.summary() and "until" in tile.divert_until


def test_confirming_records_the_destination_and_raises_nothing(qtbot, parlour):
    parlour.milk(1, DAISY, 0.8)
    tile = parlour.tile(1)
    qtbot.waitUntil(lambda: tile.display_state == "divert", timeout=10000)
    key = tile.session_key
    tile.setFocus()
    with qtbot.waitSignal(parlour.console.window.herd_actions.divert_recorded, timeout=10000):
        qtbot.keyClick(tile, Qt.Key.Key_D)
    assert tile.display_state == "diverted"
    parlour.milk(1, DAISY, 6.0)
    qtbot.wait(600)
    parlour.off(1, 7.5)
    qtbot.waitUntil(finished(parlour, key), timeout=10000)
    row = session_row(parlour.db, key)
    assert row is not None
    assert (row.destination, row.divert_confirmed_by) == ("diverted", "operator")
    assert row.divert_reason == "Mastiplan LC (treatment, 84 h withdrawal)"
    with parlour.db.read() as tx:
        assert tx.scalars(select(AlertRow).where(AlertRow.kind == "divert_unconfirmed")).all() == []
        production = tx.scalars(
            select(OutboxRow).where(
                OutboxRow.model == "farm.milk.production", OutboxRow.record_key == key
            )
        ).all()
    assert production == []


def test_an_unconfirmed_milking_raises_a_critical_alert_for_the_supervisor(qtbot, parlour):
    parlour.milk(2, DAISY, 1.0)
    tile = parlour.tile(2)
    qtbot.waitUntil(lambda: tile.display_state == "divert", timeout=10000)
    key = tile.session_key
    parlour.milk(2, DAISY, 5.0)
    qtbot.wait(600)
    parlour.off(2, 6.2)
    qtbot.waitUntil(finished(parlour, key), timeout=10000)
    with parlour.db.read() as tx:
        [alert] = tx.scalars(select(AlertRow).where(AlertRow.kind == "divert_unconfirmed")).all()
    assert (alert.severity, alert.state, alert.session_key) == ("critical", "open", key)
    window = parlour.console.window
    qtbot.waitUntil(lambda: window.tabs.tabText(window.alerts_tab) == "Alerts (1)", timeout=10000)
    # The tile still asks for it: DIVERT and the alert's words.
    qtbot.waitUntil(lambda: "DIVERT UNCONFIRMED" in tile.summary(), timeout=10000)
    assert tile.display_state == "divert"


def test_the_tank_totals_and_the_bulk_tank_check_leave_her_milk_out(qtbot, parlour):
    start = datetime.now(UTC) - timedelta(minutes=1)
    parlour.milk(1, BELLA, 1.0)
    parlour.milk(2, DAISY, 1.0)
    qtbot.waitUntil(lambda: parlour.tile(2).display_state == "divert", timeout=10000)
    keys = (parlour.tile(1).session_key, parlour.tile(2).session_key)
    parlour.milk(1, BELLA, 8.0)
    parlour.milk(2, DAISY, 6.0)
    qtbot.wait(600)
    parlour.off(1, 9.0)
    parlour.off(2, 7.0)
    for key in keys:
        qtbot.waitUntil(finished(parlour, key), timeout=10000)
    snap = production_snapshot(parlour.db)
    assert snap.total_yield_l == pytest.approx(9.0, abs=0.01)
    assert snap.diverted_l == pytest.approx(7.0, abs=0.01) and snap.diverted_sessions == 1
    dash = parlour.console.window.dashboard
    parlour.console.window.tabs.setCurrentWidget(dash)
    parlour.console.window.refresher.request()
    qtbot.waitUntil(lambda: dash.kpi_diverted.value.text() == "7.0", timeout=5000)
    assert dash.kpi_total.value.text() == "9.0"
    assert "1 NOT confirmed" in dash.kpi_diverted.note.text()
    rec = reconcile_bulk_tank(
        parlour.db,
        start=start,
        end=datetime.now(UTC) + timedelta(minutes=1),
        tank_l=9.0,
        settings=CalibrationSettings(),
        min_sessions=1,
    )
    assert rec.meters_sum_l == pytest.approx(9.0, abs=0.01)
    assert rec.parlour_error_pct == pytest.approx(0.0, abs=0.2)
    assert rec.diverted_sessions == 1


def test_registering_an_unknown_tag_at_the_stall_takes_the_session_and_is_audited(qtbot, parlour):
    window = parlour.console.window
    parlour.milk(1, STRANGER, 0.6)
    tile = parlour.tile(1)
    qtbot.waitUntil(lambda: tile.identity.status == "unknown_tag", timeout=10000)
    key = tile.session_key
    actions = window.open_stall_actions(1)
    assert actions.register_button.isVisible() and actions.register_button.isEnabled()
    qtbot.mouseClick(actions.register_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.findChild(RegisterTagDialog) is not None, timeout=5000)
    dlg = window.findChild(RegisterTagDialog)
    assert dlg is not None
    qtbot.keyClicks(dlg.entry, "1002")
    with qtbot.waitSignal(window.herd_actions.tag_registered, timeout=10000):
        qtbot.keyClick(dlg.entry, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: tile.identity.number == "1002", timeout=10000)
    row = session_row(parlour.db, key)
    assert row is not None and row.animal_id is not None and row.id_source == "rfid"
    with parlour.db.read() as tx:
        audit = tx.scalars(select(AuditEntry).where(AuditEntry.action == "register_tag")).one()
    assert audit.target == "animal:1002" and audit.after["session"] == key
    assert audit.after["tag"] == fdx_b_to_iso(STRANGER)


def test_late_tag_split_and_manual_id_never_show_her_as_normal(qtbot, parlour):
    window = parlour.console.window
    # A late tag: the milking starts before the reader gets her tag.
    guard1 = NeverNormal(window, 1, "1001")
    parlour.milk(1, None, 0.5)
    tile1 = parlour.tile(1)
    qtbot.waitUntil(lambda: tile1.session_state == "milking", timeout=10000)
    assert tile1.identity.status == "no_id"
    parlour.milk(1, DAISY, 1.5)
    qtbot.waitUntil(lambda: tile1.identity.number == "1001", timeout=10000)
    assert tile1.display_state == "divert"
    # A split: Bella on stall 2, then the meter reads Daisy's tag mid-milking.
    guard2 = NeverNormal(window, 2, "1001")
    parlour.milk(2, BELLA, 2.0)
    tile2 = parlour.tile(2)
    qtbot.waitUntil(lambda: tile2.identity.number == "1002", timeout=10000)
    bella_key = tile2.session_key
    parlour.milk(2, DAISY, 2.4)
    qtbot.waitUntil(lambda: tile2.session_key != bella_key, timeout=10000)
    qtbot.waitUntil(lambda: tile2.identity.number == "1001", timeout=10000)
    assert tile2.display_state == "divert"
    # Clover (fresh: colostrum) with no tag read, named by hand after the start.
    guard3 = NeverNormal(window, 4, "1003")
    parlour.milk(4, None, 0.7)
    tile4 = parlour.tile(4)
    qtbot.waitUntil(lambda: tile4.session_state == "milking", timeout=10000)
    dlg = window.open_manual_id(4)
    assert dlg is not None
    qtbot.keyClicks(dlg.entry, "1003")
    with qtbot.waitSignal(window.manual_id_recorded, timeout=10000):
        qtbot.keyClick(dlg.entry, Qt.Key.Key_Return)
    assert tile4.display_state == "divert" and tile4.divert.short_text == "colostrum 1/8"
    qtbot.wait(1000)  # more polls: still DIVERT at every one of them
    assert guard1.seen > 3 and guard2.seen > 3 and guard3.seen > 3
    # Their milkings end; each is recorded as diverted (unconfirmed: the alerts go up).
    keys = [tile1.session_key, tile2.session_key, tile4.session_key]
    parlour.off(1, 3.0)
    parlour.off(2, 3.5)
    parlour.off(4, 2.5)
    for key in keys:
        qtbot.waitUntil(finished(parlour, key), timeout=10000)
        row = session_row(parlour.db, key)
        assert row is not None and row.destination == "diverted", key
    bella = session_row(parlour.db, bella_key)
    assert bella is not None and bella.destination == "tank"


def test_a_console_restarted_mid_milking_shows_divert_again_and_keeps_the_confirmation(
    qtbot, tmp_path
):
    cfg, db_path = prepare(tmp_path)
    sim = SimulatedParlour(cfg, cows=0, seed=1, time_scale=TIME_SCALE)
    sim.start(scenario=False)
    try:
        first = open_console(qtbot, cfg, db_path)
        p = Parlour(cfg, sim, db_path, first)
        p.milk(1, DAISY, 1.0)
        p.milk(2, DAISY, 1.0)
        qtbot.waitUntil(lambda: p.tile(2).display_state == "divert", timeout=10000)
        qtbot.waitUntil(lambda: p.tile(1).display_state == "divert", timeout=10000)
        keys = (p.tile(1).session_key, p.tile(2).session_key)
        p.tile(2).setFocus()
        with qtbot.waitSignal(first.window.herd_actions.divert_recorded, timeout=10000):
            qtbot.keyClick(p.tile(2), Qt.Key.Key_D)
        p.milk(1, DAISY, 3.0)
        p.milk(2, DAISY, 3.0)
        qtbot.wait(600)
        first.shutdown()  # the console stops mid-milking (its sessions stay open)

        second = open_console(qtbot, cfg, db_path)
        p.console = second
        guard = NeverNormal(second.window, 1, "1001")
        p.milk(1, DAISY, 4.0)
        p.milk(2, DAISY, 4.0)
        qtbot.waitUntil(lambda: p.tile(1).session_key == keys[0], timeout=10000)
        qtbot.waitUntil(lambda: p.tile(2).session_key == keys[1], timeout=10000)
        assert p.tile(1).display_state == "divert"
        # The confirmation made before the restart comes back from the database.
        qtbot.waitUntil(lambda: p.tile(2).display_state == "diverted", timeout=10000)
        qtbot.wait(500)
        assert guard.seen >= 1, (guard.checks, p.tile(1).identity)
        p.off(1, 5.0)
        p.off(2, 5.0)
        for key in keys:
            qtbot.waitUntil(finished(p, key), timeout=10000)
        rows = [session_row(second.db, k) for k in keys]
        assert [r.destination for r in rows if r] == ["diverted", "diverted"]
        assert [r.divert_confirmed_by for r in rows if r] == [None, "operator"]
        second.shutdown()
    finally:
        sim.stop()
