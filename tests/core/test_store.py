"""The store on a real SQLite file: pragmas, schema, the one writer, the outbox state machine,
session queries, CSV export and audited corrections."""

from __future__ import annotations

import csv
import io
import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy.exc
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text

from milkconsole.meters.events import FlowSample, SessionCompleted, SessionSnapshot, SessionStarted
from milkconsole.reports.csv_out import SESSION_COLUMNS, write_sessions
from milkconsole.store import Outbox, Recorder, SessionStore, open_database
from milkconsole.store.db import Database, default_db_path
from milkconsole.store.outbox import enqueue
from milkconsole.store.schema import Animal, AuditEntry, Base, SyncState, User

T0 = datetime(2025, 3, 14, 5, 30, tzinfo=UTC)
LATER = T0 + timedelta(days=1)


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(tmp_path / "parlour.sqlite")
    yield database
    database.close()


def session(key: str, stall: int, **changes: object) -> SessionSnapshot:
    base = SessionSnapshot(key=key, meter_id=f"m{stall}", stall=stall, started_at=T0)
    return replace(base, **changes)  # type: ignore[arg-type]


def record_sessions(db: Database, *events: object) -> None:
    rec = Recorder(db, farm_code="F1")
    for event in events:
        rec.submit(event)
    rec.start()
    assert rec.stop(10.0)


def finished(key: str, stall: int, minutes: int, **changes: object) -> SessionCompleted:
    values: dict[str, object] = {
        "state": "completed",
        "started_at": T0 + timedelta(minutes=minutes),
        "ended_at": T0 + timedelta(minutes=minutes + 6),
        "duration_s": 360.0,
        "yield_l": 10.0 + stall,
    }
    values.update(changes)
    return SessionCompleted(session(key, stall, **values), (FlowSample(1.0, 0.05, 3.0),))


# -- the database file -------------------------------------------------------------------------


def test_database_is_in_wal_mode_with_full_sync_and_foreign_keys(db):
    with db.read() as tx:
        assert tx.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert tx.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert tx.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert tx.execute(text("PRAGMA busy_timeout")).scalar() >= 1000


def test_default_path_is_in_the_user_data_dir():
    path = default_db_path()
    assert path.name == "milkconsole.sqlite" and path.parent.name == "milkconsole"


def test_open_database_creates_missing_parent_directories(tmp_path):
    db = open_database(tmp_path / "a" / "b" / "parlour.sqlite")
    db.close()
    assert (tmp_path / "a" / "b" / "parlour.sqlite").is_file()


def test_migrated_schema_matches_the_mappings(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_naive_datetime_is_refused(db):
    with pytest.raises(sqlalchemy.exc.StatementError, match="naive datetime"), db.write() as tx:
        tx.add(User(name="ann", role="supervisor", pin_hash="x", created_at=datetime(2025, 1, 1)))


def test_datetimes_come_back_aware_utc_whatever_zone_went_in(db):
    cet = datetime(2025, 3, 14, 6, 30, tzinfo=UTC).astimezone(ZoneInfo("Europe/Amsterdam"))
    with db.write() as tx:
        tx.add(User(name="ann", role="supervisor", pin_hash="x", created_at=cet))
    with db.read() as tx:
        stored = tx.scalar(select(User.created_at))
    assert stored == cet and stored.tzinfo is UTC


def test_audit_log_refuses_update_and_delete(db):
    with db.write() as tx:
        tx.add(AuditEntry(at=T0, actor="ann", action="x", target="y", before=None, after={}))
    for sql in ("UPDATE audit_log SET actor = 'eve'", "DELETE FROM audit_log"):
        with pytest.raises(sqlalchemy.exc.IntegrityError, match="append-only"), db.write() as tx:
            tx.execute(text(sql))
    with db.read() as tx:
        assert tx.scalar(select(AuditEntry.actor)) == "ann"


def test_nested_write_in_one_thread_is_refused_instead_of_deadlocking(db):
    with db.write(), pytest.raises(RuntimeError, match="already open"), db.write():
        pass


def test_readers_see_the_last_commit_while_a_write_is_open(db):
    with db.write() as tx:
        tx.add(SyncState(key="animals.write_date", value="old"))
    seen: list[str | None] = []

    def reader() -> None:
        with db.read() as rtx:
            seen.append(rtx.scalar(select(SyncState.value)))

    with db.write() as tx:
        row = tx.get(SyncState, "animals.write_date")
        assert row is not None
        row.value = "new"
        tx.flush()
        t = threading.Thread(target=reader)
        t.start()
        t.join(10)
    assert seen == ["old"]


# -- outbox --------------------------------------------------------------------------------------


def put(db: Database, key: str, operation: str = "create", model: str = "milk.session", **p):
    with db.write() as tx:
        return enqueue(tx, model, key, {"key": key, **p}, operation)  # type: ignore[arg-type]


def test_claim_moves_due_pending_rows_to_in_flight_oldest_first(db):
    outbox = Outbox(db)
    ids = [put(db, f"k{i}") for i in range(5)]
    put(db, "a1", model="dairy.health.event")
    items = outbox.claim("milk.session", 3, LATER)
    assert [i.id for i in items] == ids[:3]
    assert all(i.attempts == 1 and i.state == "in_flight" for i in items)
    assert items[0].payload == {"key": "k0"}
    assert outbox.counts() == {"pending": 3, "in_flight": 3, "sent": 0, "dead": 0}
    assert [i.record_key for i in outbox.claim(None, 10, LATER)] == ["k3", "k4", "a1"]


def test_reset_in_flight_puts_rows_back_to_pending(db):
    outbox = Outbox(db)
    put(db, "k0")
    put(db, "k1")
    assert len(outbox.claim(None, 10, LATER)) == 2
    assert outbox.reset_in_flight() == 2
    assert outbox.counts()["pending"] == 2
    assert [i.attempts for i in outbox.claim(None, 10, LATER)] == [2, 2]


def test_retry_waits_until_due_and_sent_rows_keep_their_odoo_id(db):
    outbox = Outbox(db)
    row_id = put(db, "k0")
    [item] = outbox.claim(None, 10, T0)
    assert outbox.mark_retry(item.id, "connection refused", T0 + timedelta(minutes=5))
    assert outbox.claim(None, 10, T0 + timedelta(minutes=4)) == []
    [again] = outbox.claim(None, 10, T0 + timedelta(minutes=5))
    assert (again.id, again.attempts, again.last_error) == (row_id, 2, "connection refused")
    outbox.mark_sent({row_id: 4711}, now=T0 + timedelta(minutes=5))
    sent = outbox.get(row_id)
    assert sent is not None and (sent.state, sent.odoo_id, sent.last_error) == ("sent", 4711, None)
    assert outbox.odoo_id_for("milk.session", "k0") == 4711
    assert not outbox.mark_retry(row_id, "late", LATER)  # a sent row stays sent


def test_dead_rows_are_listed_with_their_error_and_can_be_requeued(db):
    outbox = Outbox(db)
    bad, good = put(db, "bad"), put(db, "good")
    items = outbox.claim(None, 10, LATER)
    assert outbox.mark_dead(bad, "ValidationError: animal 77 unknown")
    outbox.mark_sent({good: 1})
    [dead] = outbox.dead()
    assert (dead.id, dead.last_error) == (bad, "ValidationError: animal 77 unknown")
    assert len(items) == 2
    assert outbox.requeue_dead([bad, good]) == 1
    [retried] = outbox.claim(None, 10, LATER)
    assert (retried.id, retried.attempts) == (bad, 1)


def test_one_create_per_record_key(db):
    first = put(db, "k0", yield_l=1.0)
    assert put(db, "k0", yield_l=2.0) == first
    assert Outbox(db).counts()["pending"] == 1
    with pytest.raises(sqlalchemy.exc.IntegrityError), db.write() as tx:
        tx.execute(
            text(
                "INSERT INTO outbox (record_key, model, operation, payload, state, attempts,"
                " created_at) VALUES ('k0', 'milk.session', 'create', '{}', 'pending', 0,"
                " '2025-01-01 00:00:00')"
            )
        )


def test_a_write_waits_for_its_create_and_pending_writes_merge(db):
    outbox = Outbox(db)
    create = put(db, "k0")
    w1 = put(db, "k0", "write", animal_id=1)
    assert put(db, "k0", "write", reattached=True) == w1
    [claimed] = outbox.claim(None, 10, LATER)
    assert claimed.id == create
    assert outbox.claim(None, 10, LATER) == []  # the create is still in flight
    outbox.mark_sent({create: 99})
    [write] = outbox.claim(None, 10, LATER)
    assert write.payload == {"key": "k0", "animal_id": 1, "reattached": True}


def test_payload_that_is_not_json_is_refused_naming_the_record(db):
    with pytest.raises(ValueError, match="k0"), db.write() as tx:
        enqueue(tx, "milk.session", "k0", {"yield_l": float("nan")})


def test_oldest_pending_at_ignores_sent_rows(db):
    outbox = Outbox(db)
    assert outbox.oldest_pending_at() is None
    first = put(db, "k0")
    put(db, "k1")
    oldest = outbox.get(first)
    assert oldest is not None and outbox.oldest_pending_at() == oldest.created_at
    outbox.claim(None, 1, LATER)
    outbox.mark_sent({first: 1})
    second = outbox.get(first + 1)
    assert second is not None and outbox.oldest_pending_at() == second.created_at


# -- sessions ------------------------------------------------------------------------------------


def add_herd(db: Database) -> None:
    with db.write() as tx:
        tx.add(Animal(id=1, odoo_id=501, number="1042", name="Bella", active=True))
        tx.add(Animal(id=2, odoo_id=502, number="1043", name="Clara", active=True))
        tx.add(User(name="sue", role="supervisor", pin_hash="x", created_at=T0))


def test_export_csv_has_one_row_per_finished_session_with_the_agreed_columns(db):
    add_herd(db)
    record_sessions(
        db,
        finished("a", 1, 0, fat_pct=4.1, blood=False, flags=("kickoff", "low_flow")),
        finished("b", 2, 10, scc_cells_ml=210000, blood=True),
        SessionStarted(session("c", 3)),  # still milking: not exported
    )
    SessionStore(db).set_manual_animal("a", 1, actor="sue")
    out = io.StringIO(newline="")
    assert write_sessions(out, SessionStore(db).completed_since(None)) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == SESSION_COLUMNS
    assert [r["key"] for r in rows] == ["a", "b"]
    a, b = rows
    assert a["animal"] == "1042" and b["animal"] == ""
    assert a["start"] == "2025-03-14T05:30:00Z" and a["end"] == "2025-03-14T05:36:00Z"
    assert (a["yield_l"], a["fat_pct"], a["blood"], a["flags"]) == (
        "11.00",
        "4.10",
        "0",
        "kickoff;low_flow",
    )
    assert (b["scc_cells_ml"], b["blood"], b["state"]) == ("210000", "1", "completed")

    out = io.StringIO(newline="")
    assert write_sessions(out, SessionStore(db).completed_since(T0 + timedelta(minutes=10))) == 1


def test_completed_since_returns_every_column_with_the_animal(db):
    add_herd(db)
    record_sessions(db, finished("a", 1, 0, state="incomplete", temperature_c=35.2))
    SessionStore(db).set_manual_animal("a", 2, actor="sue")
    [rec] = SessionStore(db).completed_since(T0)
    assert (rec.key, rec.state, rec.temperature_c) == ("a", "incomplete", 35.2)
    assert (rec.animal_id, rec.animal_number, rec.animal_name, rec.id_source) == (
        2,
        "1043",
        "Clara",
        "manual",
    )
    assert rec.quality_grade is None and rec.reattached is False
    assert rec.snapshot().key == "a"
    assert SessionStore(db).completed_since(LATER) == []


def test_manual_id_reassociation_is_audited_and_amends_the_unsent_create(db):
    add_herd(db)
    record_sessions(db, finished("a", 1, 0))
    rec = SessionStore(db).set_manual_animal("a", 1, actor="sue")
    assert (rec.animal_id, rec.id_source) == (1, "manual")
    with db.read() as tx:
        [entry] = tx.scalars(select(AuditEntry)).all()
    assert (entry.actor, entry.role, entry.action, entry.target) == (
        "sue",
        "supervisor",
        "manual_id",
        "milk_session:a",
    )
    assert entry.before == {"animal_id": None, "id_source": None}
    assert entry.after == {"animal_id": 1, "id_source": "manual"}
    # The session's create learns her; her production record waits for the session to land.
    [item] = Outbox(db).claim(None, 10, LATER)
    assert (item.model, item.operation) == ("milk.session", "create")
    assert (item.payload["animal_id"], item.payload["animal_number"]) == (1, "1042")
    assert item.payload["id_source"] == "manual"


def test_manual_id_after_the_session_was_sent_enqueues_a_write(db):
    add_herd(db)
    record_sessions(db, finished("a", 1, 0))
    outbox = Outbox(db)
    [create] = outbox.claim(None, 10, LATER)
    outbox.mark_sent({create.id: 9001})
    SessionStore(db).set_manual_animal("a", 2, actor="sue")
    rows = {i.model: i for i in outbox.claim(None, 10, LATER)}
    write = rows["milk.session"]
    assert write.operation == "write" and write.record_key == "a"
    # Her milk went to the tank (nothing keeps it out): the session learns that too.
    assert write.payload == {
        "animal_id": 2,
        "animal_number": "1043",
        "animal_tag": None,
        "id_source": "manual",
        "destination": "tank",
        "divert_reason": None,
    }
    # Now that she is known, the milking gets its production record (after the session).
    production = rows["farm.milk.production"]
    assert (production.operation, production.record_key) == ("create", "a")
    assert production.payload["animal_id"] == 2


def test_failed_manual_id_leaves_no_audit_row(db):
    record_sessions(db, finished("a", 1, 0))
    with pytest.raises(LookupError, match="no animal with id 99"):
        SessionStore(db).set_manual_animal("a", 99, actor="sue")
    with pytest.raises(LookupError, match="nope"):
        SessionStore(db).set_manual_animal("nope", None, actor="sue")
    with db.read() as tx:
        assert tx.scalar(select(func.count()).select_from(AuditEntry)) == 0


def test_mark_reattached_is_audited_once(db):
    record_sessions(db, SessionStarted(session("a", 1)))
    store = SessionStore(db)
    store.mark_reattached("a", actor="op", role="operator")
    store.mark_reattached("a", actor="op", role="operator")
    rec = store.record("a")
    assert rec is not None and rec.reattached
    with db.read() as tx:
        entries = tx.scalars(select(AuditEntry)).all()
    assert [(e.action, e.role, e.after) for e in entries] == [
        ("reattached", "operator", {"reattached": True})
    ]
    record_sessions(db, finished("a", 1, 0))
    [item] = Outbox(db).claim(None, 10, LATER)
    assert item.payload["reattached"] is True
    assert json.loads(json.dumps(item.payload)) == item.payload
