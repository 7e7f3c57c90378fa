"""The store's bulk writers and look-ups the benchmarks build on, on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from milkconsole.meters.events import SessionSnapshot
from milkconsole.store import history
from milkconsole.store.bulk import NewCow, add_cows, add_finished_sessions
from milkconsole.store.db import Database
from milkconsole.store.directory import load_herd
from milkconsole.store.outbound import PRODUCTION, SESSION
from milkconsole.store.outbox import Outbox
from milkconsole.store.sessions import PastMilking, SessionStore

T0 = datetime(2025, 3, 1, 5, 0, tzinfo=UTC)


def finished(i: int, *, rfid: str | None = None) -> SessionSnapshot:
    began = T0 + timedelta(minutes=10 * i)
    return SessionSnapshot(
        key=f"K{i}",
        meter_id="M1",
        stall=1,
        started_at=began,
        state="completed",
        rfid=rfid,
        ended_at=began + timedelta(minutes=7),
        duration_s=420.0,
        yield_l=9.5,
    )


def test_cows_added_in_bulk_come_back_in_order_with_their_fields(db: Database) -> None:
    ids = add_cows(
        db,
        [
            NewCow("1001", "982000000000001", name="Daisy", group_name="high", odoo_id=7),
            NewCow("1002", "982000000000002", birth_date=date(2020, 4, 1), lactation_number=3),
            NewCow("1003", "982000000000003", active=False),
        ],
    )
    assert len(ids) == 3 and len(set(ids)) == 3
    cows = history.cows(db)
    assert [cows[i].number for i in ids] == ["1001", "1002", "1003"]
    assert cows[ids[0]].name == "Daisy" and cows[ids[0]].group_name == "high"
    assert cows[ids[1]].lactation_number == 3 and cows[ids[1]].birth_date == date(2020, 4, 1)
    herd = load_herd(db)
    assert set(herd.animals) == set(ids[:2])  # the inactive cow is not in the herd list
    assert herd.animals[ids[0]].in_odoo and not herd.animals[ids[1]].in_odoo
    found = herd.find_tag("982 000000000002")
    assert found is not None and found.id == ids[1]


def test_finished_sessions_in_bulk_are_stored_and_queued_as_the_recorder_queues_them(
    db: Database,
) -> None:
    (cow,) = add_cows(db, [NewCow("1001", "982000000000001")])
    n = add_finished_sessions(
        db,
        [
            PastMilking(finished(0, rfid="982000000000001"), cow, quality_grade="A"),
            PastMilking(finished(1), destination=None),
        ],
    )
    assert n == 2
    store = SessionStore(db)
    known, unknown = store.record("K0"), store.record("K1")
    assert known is not None and unknown is not None
    assert (known.animal_id, known.id_source, known.quality_grade) == (cow, "rfid", "A")
    assert known.destination == "tank"
    assert (unknown.animal_id, unknown.id_source, unknown.destination) == (None, None, None)
    box = Outbox(db)
    queued = [box.get(i) for i in box.pending_ids()]
    assert sorted((q.model, q.record_key) for q in queued if q is not None) == [
        (PRODUCTION, "K0"),  # a known cow's milk that went to the tank
        (SESSION, "K0"),
        (SESSION, "K1"),
    ]


def test_pending_ids_are_the_channels_unsent_rows_after_an_id(db: Database) -> None:
    add_finished_sessions(db, [PastMilking(finished(i)) for i in range(4)])
    box = Outbox(db)
    ids = box.pending_ids()
    assert len(ids) == 4 and ids == sorted(ids)
    assert box.pending_ids(ids[1]) == ids[2:]
    box.mark_sent({ids[2]: 99})
    assert box.pending_ids() == [ids[0], ids[1], ids[3]]
    assert Outbox(db, "mqtt").pending_ids() == []  # MQTT is off: nothing queued there


def test_session_keys_and_the_last_end_of_the_history(db: Database) -> None:
    assert history.last_session_end(db) is None
    add_finished_sessions(db, [PastMilking(finished(i)) for i in range(5)])
    assert history.last_session_end(db) == T0 + timedelta(minutes=47)
    assert history.session_keys(db, T0 + timedelta(minutes=20)) == ["K2", "K3", "K4"]
    assert history.session_keys(db, T0, T0 + timedelta(minutes=15)) == ["K0", "K1"]
