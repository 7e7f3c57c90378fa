"""The parlour runtime headless: calibration from the database, equipment alerts, self-test."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import select

from milkconsole.app.runtime import ParlourRuntime
from milkconsole.config import ParlourConfig, load_config
from milkconsole.meters.events import ReadingTaken
from milkconsole.store import open_database
from milkconsole.store.schema import AlertRow, Meter
from milkconsole.store.sessions import SessionRecord, SessionStore
from milkconsole.technician.diagnostics import self_test
from simulators.demo import SimulatedParlour, make_demo_config


def wait_for(pred, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_stored_calibration_and_offset_apply_and_bad_vacuum_raises_one_equipment_alert(
    tmp_path: Path,
) -> None:
    cfg = load_config(make_demo_config(tmp_path, stalls=4, time_scale=60.0))
    db = open_database(tmp_path / "rt.sqlite")
    runtime = ParlourRuntime(cfg, db)  # creates the meter rows
    with db.write() as tx:
        m = tx.get(Meter, "MM-01")
        assert m is not None
        m.calibration_factor, m.conductivity_offset_ms_cm = 1.02, -0.5
    runtime.reload_calibration()
    readings: list[ReadingTaken] = []
    runtime.add_listener(lambda e: readings.append(e) if isinstance(e, ReadingTaken) else None)
    with SimulatedParlour(cfg, cows=0, seed=1, time_scale=60.0) as park:
        park.meters["MM-01"].set_values(yield_l=10.0, conductivity_ms_cm=5.0, status=1)
        park.meters["MM-01"].vacuum_kpa = 36.0  # a leaking vacuum line
        runtime.start_threads()
        try:
            assert wait_for(lambda: any(r.reading.meter_id == "MM-01" for r in readings))

            def alerts() -> list[AlertRow]:
                with db.read() as tx:
                    return list(tx.scalars(select(AlertRow).where(AlertRow.kind == "equipment")))

            assert wait_for(lambda: len(alerts()) >= 1)
            time.sleep(1.0)  # more polls of the same fault: still one open alert
            found = alerts()
            assert len(found) == 1 and found[0].meter_id == "MM-01" and found[0].state == "open"
            # A meter self-test runs on the poller's own thread, between cycles.
            poller = runtime.pollers[cfg.meters[0].bus]
            profile = cfg.profiles[cfg.meters[0].profile]
            result = poller.submit(lambda t: self_test(t, cfg.meters[0], profile)).result(10)
            assert result is not None
        finally:
            runtime.stop()
    mm01 = [r.reading for r in readings if r.reading.meter_id == "MM-01"]
    assert abs((mm01[-1].yield_l or 0) - 10.2) < 1e-6
    assert abs((mm01[-1].conductivity_ms_cm or 0) - 4.5) < 1e-6


@contextlib.contextmanager
def console_running(cfg: ParlourConfig, db_path: Path) -> Iterator[None]:
    runtime = ParlourRuntime(cfg, open_database(db_path))
    runtime.start_threads()
    try:
        yield
    finally:
        runtime.stop()


def test_milking_that_began_and_ended_while_the_console_was_down_is_recovered(
    tmp_path: Path,
) -> None:
    cfg = load_config(make_demo_config(tmp_path, stalls=4, time_scale=60.0))
    db_path = tmp_path / "rt.sqlite"
    store = SessionStore(open_database(db_path))
    tracking = cfg.tracking

    def sessions() -> list[SessionRecord]:
        return store.completed_since(None)

    with SimulatedParlour(cfg, cows=0, seed=1, time_scale=60.0) as park:
        meter = park.meters["MM-01"]
        meter.set_values(yield_l=0.0, flow_l_min=0.0, status=0, rfid="8000F588DB110001")
        # The console records one cow ...
        with console_running(cfg, db_path):
            meter.set_values(yield_l=4.0, flow_l_min=3.0, status=1, session_time_s=10)
            time.sleep(tracking.min_duration_s + 0.5)
            meter.set_values(yield_l=11.0, flow_l_min=0.0, status=0, session_time_s=200)
            assert wait_for(lambda: len(sessions()) == 1)
        # ... is shut down while the next cow comes and goes (a 2 s milking at this scale) ...
        time.sleep(3.0)
        meter.set_values(
            yield_l=8.25, flow_l_min=0.0, status=0, session_time_s=2, rfid="8000F588DB110002"
        )
        # ... and on its return records her from what the meter still holds.
        with console_running(cfg, db_path):
            assert wait_for(lambda: len(sessions()) == 2)
        # Started again with nothing new on the meter, it records nothing more.
        with console_running(cfg, db_path):
            time.sleep(1.0)
    first, missed = sessions()
    assert (first.rfid, first.yield_l, "recovered" in first.flags) == (
        "8000F588DB110001",
        11.0,
        False,
    )
    assert (missed.rfid, missed.yield_l, missed.flags) == ("8000F588DB110002", 8.25, ("recovered",))
    assert missed.state == "completed" and missed.ended_at is not None
    assert (missed.ended_at - missed.started_at).total_seconds() == 2.0
