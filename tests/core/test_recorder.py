"""The recorder writes session events to a real SQLite file, one transaction per batch.

These tests drive it the way the stall tracker does (started, updated, completed events) and
then read the file back through the store, or through a second process after a kill -9.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from milkconsole.meters.events import (
    FlowSample,
    MeterHealth,
    SessionCompleted,
    SessionSnapshot,
    SessionStarted,
    SessionUpdated,
)
from milkconsole.meters.parlour import MeterConfig
from milkconsole.store import Outbox, Recorder, SessionStore, open_database
from milkconsole.store.db import Database
from milkconsole.store.schema import (
    AlertRow,
    Animal,
    FlowCurveRow,
    FlowSampleRow,
    Meter,
    OutboxRow,
)

T0 = datetime(2025, 3, 14, 5, 30, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def snap(key: str = "F1-S3-0001", **changes: object) -> SessionSnapshot:
    base = SessionSnapshot(key=key, meter_id="m3", stall=3, started_at=T0, rfid="982000123456789")
    return replace(base, **changes)  # type: ignore[arg-type]


def samples(start_s: float, n: int) -> tuple[FlowSample, ...]:
    return tuple(
        FlowSample(elapsed_s=start_s + i, yield_l=0.05 * (start_s + i), flow_l_min=3.0)
        for i in range(n)
    )


def completed(key: str = "F1-S3-0001", **changes: object) -> SessionCompleted:
    values: dict[str, object] = {
        "state": "completed",
        "ended_at": T0 + timedelta(minutes=7),
        "duration_s": 420.0,
        "yield_l": 11.8,
        "peak_flow_l_min": 3.9,
        "avg_flow_l_min": 1.7,
        "flags": ("kickoff",),
    }
    values.update(changes)
    return SessionCompleted(snap(key, **values), samples(20, 5))


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(tmp_path / "parlour.sqlite")
    yield database
    database.close()


@pytest.fixture
def committed() -> list[object]:
    return []


@pytest.fixture
def recorder(db: Database, committed: list[object]):
    rec = Recorder(db, farm_code="F1", on_committed=committed.extend)
    rec.start()
    yield rec
    rec.stop(5.0)


def count(db: Database, model: type, **where: object) -> int:
    with db.read() as tx:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(tx.scalar(query) or 0)


def test_session_lifecycle_stores_row_samples_and_one_outbox_create(db, recorder, committed):
    recorder.submit(SessionStarted(snap()))
    recorder.submit(SessionUpdated(snap(yield_l=1.0, duration_s=10.0), samples(0, 10)))
    recorder.submit(SessionUpdated(snap(yield_l=2.0, duration_s=20.0), samples(10, 10)))
    recorder.submit(completed())
    assert recorder.flush(10.0)

    store = SessionStore(db)
    stored = store.get("F1-S3-0001")
    assert stored is not None
    assert stored.state == "completed"
    assert stored.yield_l == 11.8
    assert stored.ended_at == T0 + timedelta(minutes=7)
    assert stored.flags == ("kickoff",)
    assert [s.elapsed_s for s in store.samples("F1-S3-0001")] == [float(i) for i in range(25)]
    assert store.open_sessions() == []

    items = Outbox(db).claim("milk.session", 10, T0 + timedelta(days=1))
    assert [(i.record_key, i.operation) for i in items] == [("F1-S3-0001", "create")]
    payload = items[0].payload
    assert payload["started_at"] == "2025-03-14T05:30:00Z"
    assert payload["ended_at"] == "2025-03-14T05:37:00Z"
    assert payload["meter_id"] == "m3" and payload["state"] == "completed"
    assert payload["flags"] == ["kickoff"]
    assert payload["yield_l"] == 11.8
    assert isinstance(committed[-1], SessionCompleted)


def test_events_other_than_session_events_are_ignored(db, recorder, committed):
    recorder.submit(MeterHealth(meter_id="m3"))
    recorder.submit(SessionStarted(snap()))
    assert recorder.flush(5.0)
    assert [type(e) for e in committed] == [SessionStarted]


def test_failing_completion_hook_stores_nothing_of_the_completion_and_is_retried(
    db, recorder, committed
):
    fail = threading.Event()
    fail.set()

    def health_hook(tx: Session, session: SessionSnapshot) -> None:
        tx.add(
            AlertRow(
                key=f"{session.key}-blood",
                kind="blood",
                severity="critical",
                state="open",
                session_key=session.key,
                message="blood in milk",
                raised_at=session.ended_at,
            )
        )
        tx.flush()
        if fail.is_set():
            raise RuntimeError("health module broke")

    recorder.add_completion_hook(health_hook)
    recorder.submit(SessionStarted(snap()))
    recorder.submit(SessionUpdated(snap(yield_l=1.0), samples(0, 20)))
    assert recorder.flush(5.0)
    recorder.submit(completed())
    assert not recorder.flush(1.0)

    store = SessionStore(db)
    stored = store.get("F1-S3-0001")
    assert stored is not None and stored.state == "in_progress"
    assert [s.key for s in store.open_sessions()] == ["F1-S3-0001"]
    assert len(store.samples("F1-S3-0001")) == 20  # the completion's 5 samples are not there
    assert count(db, AlertRow) == 0
    assert count(db, OutboxRow) == 0
    assert recorder.outstanding == 1

    fail.clear()  # the cause is fixed: the retry goes through, nothing was dropped
    assert recorder.flush(10.0)
    stored = store.get("F1-S3-0001")
    assert stored is not None and stored.state == "completed"
    assert len(store.samples("F1-S3-0001")) == 25
    assert count(db, AlertRow) == 1
    assert count(db, OutboxRow, record_key="F1-S3-0001") == 1


def test_a_session_that_fails_does_not_hold_back_other_sessions(db):
    recorder = Recorder(db, farm_code="F1")
    recorder.start()

    def hook(tx: Session, session: SessionSnapshot) -> None:
        if session.stall == 3:
            raise RuntimeError("stall 3 cannot be graded")

    recorder.add_completion_hook(hook)
    recorder.submit(completed("F1-S3-0001"))
    recorder.submit(SessionCompleted(snap("F1-S4-0001", stall=4, meter_id="m4", state="completed")))
    recorder.submit(SessionStarted(snap("F1-S5-0001", stall=5, meter_id="m5")))
    assert not recorder.flush(1.0)
    store = SessionStore(db)
    assert store.get("F1-S3-0001") is None
    s4 = store.get("F1-S4-0001")
    assert s4 is not None and s4.state == "completed"
    assert store.get("F1-S5-0001") is not None
    assert recorder.outstanding == 1
    assert not recorder.stop(0.5)  # stop says so when something could not be written


def test_duplicate_completion_does_not_double_samples_or_outbox(db, recorder, committed):
    recorder.submit(SessionStarted(snap()))
    recorder.submit(completed())
    recorder.submit(completed(yield_l=99.0))
    recorder.submit(SessionUpdated(snap(yield_l=50.0), samples(100, 3)))
    assert recorder.flush(5.0)
    store = SessionStore(db)
    stored = store.get("F1-S3-0001")
    assert stored is not None and stored.yield_l == 11.8 and stored.state == "completed"
    assert len(store.samples("F1-S3-0001")) == 5
    assert count(db, OutboxRow) == 1
    assert sum(isinstance(e, SessionCompleted) for e in committed) == 1


def test_update_of_an_unknown_session_inserts_it_as_in_progress(db, recorder):
    recorder.submit(SessionUpdated(snap(yield_l=4.2, meter_yield_l=1.2, yield_offset_l=3.0)))
    assert recorder.flush(5.0)
    [resumed] = SessionStore(db).open_sessions()
    assert (resumed.key, resumed.yield_l, resumed.yield_offset_l) == ("F1-S3-0001", 4.2, 3.0)


def test_replayed_samples_are_not_stored_twice(db, recorder):
    recorder.submit(SessionUpdated(snap(), samples(0, 10)))
    recorder.submit(SessionUpdated(snap(), samples(5, 10)))  # overlaps 5..9 after a resume
    assert recorder.flush(5.0)
    assert [s.elapsed_s for s in SessionStore(db).samples("F1-S3-0001")] == [
        float(i) for i in range(15)
    ]


def test_tag_read_identifies_the_animal_and_manual_choice_survives_later_updates(db, recorder):
    with db.write() as tx:
        tx.add(Animal(id=7, number="1042", name="Bella", rfid_tag="982000123456789", active=True))
        tx.add(Animal(id=8, number="1043", name="Clara", active=True))
    recorder.submit(SessionStarted(snap()))
    assert recorder.flush(5.0)
    store = SessionStore(db)
    record = store.record("F1-S3-0001")
    assert record is not None and (record.animal_id, record.id_source) == (7, "rfid")

    store.set_manual_animal("F1-S3-0001", 8, actor="op")
    recorder.submit(SessionUpdated(snap(yield_l=3.0)))
    recorder.submit(completed())
    assert recorder.flush(5.0)
    record = store.record("F1-S3-0001")
    assert record is not None
    assert (record.animal_id, record.animal_number, record.id_source) == (8, "1043", "manual")
    [item] = Outbox(db).claim(None, 10, T0 + timedelta(days=1))
    assert item.payload["animal_number"] == "1043"
    assert item.payload["id_source"] == "manual"


def test_meters_are_upserted_and_last_seen_is_written_coalesced(db, recorder):
    recorder.upsert_meters(
        [
            MeterConfig(id="m3", bus="rs485-a", unit=3, profile="afimilk", stall=3),
            MeterConfig(id="m4", bus="rs485-a", unit=4, profile="afimilk", stall=4, name="four"),
        ]
    )
    with db.write() as tx:
        meter = tx.get(Meter, "m3")
        assert meter is not None
        meter.calibration_factor = 1.03  # the calibration wizard's result
    recorder.upsert_meters([MeterConfig(id="m3", bus="tcp-1", unit=9, profile="gea", stall=3)])
    for second in range(50):
        recorder.record_meter_seen("m3", T0 + timedelta(seconds=second))
    recorder.record_meter_seen("m4", T0)
    assert recorder.flush(5.0)
    with db.read() as tx:
        m3, m4 = tx.get(Meter, "m3"), tx.get(Meter, "m4")
        assert m3 is not None and m4 is not None
        assert (m3.bus_id, m3.unit, m3.profile, m3.calibration_factor) == ("tcp-1", 9, "gea", 1.03)
        assert m3.last_seen_at == T0 + timedelta(seconds=49)
        assert m4.last_seen_at == T0 and m4.name == "four"


def test_stop_writes_everything_queued_first(db):
    rec = Recorder(db, farm_code="F1")
    for stall in range(1, 31):
        rec.submit(SessionStarted(snap(f"F1-S{stall}-0001", stall=stall)))
    rec.start()
    assert rec.stop(10.0)
    assert len(SessionStore(db).open_sessions()) == 30


def test_a_busy_parlour_is_written_in_batches_not_one_transaction_per_event(db):
    batches: list[list[object]] = []
    rec = Recorder(db, farm_code="F1", on_committed=batches.append)
    for stall in range(1, 31):
        key = f"F1-S{stall}-0001"
        rec.submit(SessionStarted(snap(key, stall=stall)))
        for tick in range(10):
            rec.submit(SessionUpdated(snap(key, stall=stall), samples(tick, 1)))
    rec.start()  # everything is queued already: drained in a few transactions
    assert rec.stop(10.0)
    # Each session's ten progress updates are merged into one write (last snapshot, all samples).
    committed = [e for b in batches for e in b]
    assert sum(isinstance(e, SessionStarted) for e in committed) == 30
    assert sum(isinstance(e, SessionUpdated) for e in committed) == 30
    assert all(len(e.samples) == 10 for e in committed if isinstance(e, SessionUpdated))
    assert len(batches) < 10
    assert count(db, FlowSampleRow) == 300


def test_progress_is_checkpointed_but_starts_and_completions_are_written_at_once(db):
    batches: list[list[object]] = []
    rec = Recorder(db, farm_code="F1", on_committed=batches.append, checkpoint_s=30.0)
    rec.start()
    try:
        key = "F1-S1-0001"
        rec.submit(SessionStarted(snap(key)))
        deadline = time.monotonic() + 5
        while not batches and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [type(e) for b in batches for e in b] == [SessionStarted]
        for tick in range(5):
            rec.submit(SessionUpdated(snap(key), samples(tick, 1)))
        time.sleep(0.3)  # held: well inside the 30 s checkpoint
        assert len(batches) == 1 and count(db, FlowSampleRow) == 0
        assert rec.flush(5.0)  # a flush writes what is held at once
        assert count(db, FlowSampleRow) == 5
        rec.submit(SessionUpdated(snap(key), samples(5, 1)))
        rec.submit(SessionCompleted(replace(snap(key), state="completed", ended_at=T0)))
        assert rec.flush(5.0)
        # Completed: the six rows became the session's one packed curve.
        assert count(db, FlowSampleRow) == 0 and count(db, FlowCurveRow) == 1
        assert [s.elapsed_s for s in SessionStore(db).samples(key)] == [float(i) for i in range(6)]
        assert SessionStore(db).get(key).state == "completed"  # type: ignore[union-attr]
    finally:
        assert rec.stop(5.0)


CHILD = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from milkconsole.meters.events import FlowSample, SessionCompleted, SessionSnapshot
    from milkconsole.meters.events import SessionStarted, SessionUpdated
    from milkconsole.store import Recorder, open_database

    t0 = datetime(2025, 3, 14, 5, 30, tzinfo=UTC)
    db = open_database(Path(sys.argv[1]))
    rec = Recorder(db, farm_code="F1")
    rec.start()
    done = SessionSnapshot(key="done", meter_id="m1", stall=1, started_at=t0, state="completed",
                           ended_at=t0 + timedelta(minutes=6), yield_l=9.5)
    rec.submit(SessionCompleted(done, (FlowSample(1.0, 0.1, 2.0),)))
    live = SessionSnapshot(key="live", meter_id="m2", stall=2, started_at=t0, yield_l=3.25,
                           meter_yield_l=3.25, duration_s=95.0)
    rec.submit(SessionStarted(live))
    rec.submit(SessionUpdated(live, tuple(FlowSample(float(i), i / 10, 2.5) for i in range(40))))
    assert rec.flush(10.0)
    print("flushed", flush=True)
    # Keep writing until killed: the kill lands in the middle of the next transactions.
    i = 40
    while True:
        rec.submit(SessionUpdated(live, (FlowSample(float(i), i / 10, 2.5),)))
        i += 1
    """
)


def test_kill_9_right_after_flush_loses_nothing_committed(tmp_path: Path):
    path = tmp_path / "parlour.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, env=env, text=True
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "flushed"
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
    assert child.returncode == -signal.SIGKILL

    db = open_database(path)
    try:
        store = SessionStore(db)
        done = store.get("done")
        assert done is not None and done.state == "completed" and done.yield_l == 9.5
        [live] = store.open_sessions()
        assert (live.key, live.yield_l, live.duration_s) == ("live", 3.25, 95.0)
        curve = store.samples("live")
        assert len(curve) >= 40
        assert [s.elapsed_s for s in curve] == [float(i) for i in range(len(curve))]
        [item] = Outbox(db).claim(None, 10, datetime.now(UTC))
        assert json.dumps(item.payload)  # the outbox row survived whole
        assert item.record_key == "done"
    finally:
        db.close()
