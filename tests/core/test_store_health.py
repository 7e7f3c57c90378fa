"""The store's side of milk health (`HealthRecords`): what the rules read and how their decisions
are written, each once, with its way to Odoo, on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from milkconsole.flags import COW_SWAP_SUSPECTED, MASTITIS_SUSPECTED, YIELD_LOW
from milkconsole.meters.events import SessionSnapshot
from milkconsole.store.bulk import NewCow, add_cows, add_finished_sessions
from milkconsole.store.db import Database
from milkconsole.store.health import HealthRecords, detector_history, newest_milking_start
from milkconsole.store.outbound import ALERT, HEALTH_EVENT
from milkconsole.store.outbox import Outbox
from milkconsole.store.sessions import PastMilking, SessionStore

T0 = datetime(2025, 3, 1, 5, 0, tzinfo=UTC)
TAG = "982000000000001"


def milking(
    key: str, at: datetime, yield_l: float, *, rfid: str | None = TAG, ec: float = 5.0
) -> SessionSnapshot:
    return SessionSnapshot(
        key=key,
        meter_id="M1",
        stall=1,
        started_at=at,
        state="completed",
        rfid=rfid,
        ended_at=at + timedelta(minutes=7),
        duration_s=420.0,
        yield_l=yield_l,
        conductivity_mean_ms_cm=ec,
    )


def queued(db: Database, model: str) -> list[str]:
    box = Outbox(db)
    return [
        item.record_key
        for i in box.pending_ids()
        if (item := box.get(i)) is not None and item.model == model
    ]


def test_what_the_rules_read_of_a_milking_her_cow_and_her_recent_means(db: Database) -> None:
    daisy, other = add_cows(
        db, [NewCow("1001", TAG, group_name="high"), NewCow("1002", "982000000000002")]
    )
    past = [milking(f"P{d}", T0 - timedelta(days=d), 10.0 + d, ec=5.0) for d in range(1, 8)]
    add_finished_sessions(db, [PastMilking(s, daisy) for s in past])
    # Another group's cow, milked in the same days: not in Daisy's group.
    add_finished_sessions(
        db, [PastMilking(milking("O1", T0 - timedelta(days=1, minutes=5), 99.0), other)]
    )
    add_finished_sessions(db, [PastMilking(milking("NOW", T0, 4.0, rfid=" 982 000000000001"))])
    with db.write() as tx:
        store = HealthRecords(tx)
        assert store.milking("nothing") is None
        m = store.milking("NOW")
        assert m is not None and m.animal_id is None and m.done_at == T0 + timedelta(minutes=7)
        m = store.identify_by_tag("NOW")  # the tag in another written form is hers
        assert (m.animal_id, m.id_source) == (daisy, "rfid")
        cow = store.cow(daisy)
        assert cow is not None and (cow.number, cow.group_name) == ("1001", "high")
        assert store.cow(None) is None and store.cow(other + 100) is None
        means = store.recent_means(m, 5.0)  # her five days before: 11..15 L
        assert means.mean_yield_l == 13.0 and means.conductivity_milkings == 5
        group = store.group_milkings(m, cow, T0 - timedelta(days=3, hours=1), T0)
        assert sorted(y for _, _, y in group) == [11.0, 12.0, 13.0]
    assert newest_milking_start_of(db) == T0
    with db.read() as tx:
        history = detector_history(tx, T0 - timedelta(days=2, hours=1), T0)
    assert [(h.animal_id, h.yield_l) for h in history] == [
        (daisy, 12.0),
        (other, 99.0),
        (daisy, 11.0),
        (daisy, 4.0),
    ]


def newest_milking_start_of(db: Database) -> datetime | None:
    with db.read() as tx:
        return newest_milking_start(tx)


def test_grades_flags_alerts_and_events_are_written_once_with_their_way_out(
    db: Database,
) -> None:
    (daisy,) = add_cows(db, [NewCow("1001", TAG)])
    add_finished_sessions(db, [PastMilking(milking("S1", T0, 4.0), daisy)])
    with db.write() as tx:
        store = HealthRecords(tx)
        m = store.milking("S1")
        assert m is not None
        store.set_grade("S1", "B", (YIELD_LOW,))
        store.add_flags("S1", YIELD_LOW, COW_SWAP_SUSPECTED)
        store.add_flags("S1", MASTITIS_SUSPECTED, abnormal=True)
        first = store.raise_alert(
            m, key="S1:mastitis", kind="mastitis", condition="cow", severity="warning", message="x"
        )
        again = store.raise_alert(
            m, key="S1:mastitis", kind="mastitis", condition="cow", severity="warning", message="y"
        )
        assert first is not None and again is None
        open_alert = store.open_alert(daisy, "mastitis")
        assert open_alert is not None and (open_alert.id, open_alert.severity) == (first, "warning")
        assert store.open_alert(daisy, "identity") is None
        store.escalate(first, "critical", "worse")
        assert store.alert_state(first) == "open" and store.alert_state(first + 1) is None
        assert store.record_event(m, "mastitis_indicator", "worse")
        assert not store.record_event(m, "mastitis_indicator", "again")
        store.flush()
    record = SessionStore(db).record("S1")
    assert record is not None and record.quality_grade == "B" and record.abnormal
    assert record.flags == (YIELD_LOW, COW_SWAP_SUSPECTED, MASTITIS_SUSPECTED)
    assert queued(db, ALERT) == ["S1:mastitis"]  # the escalation amended the pending create
    assert queued(db, HEALTH_EVENT) == ["S1:mastitis_indicator"]
    box = Outbox(db)
    (alert_item,) = [
        item for i in box.pending_ids() if (item := box.get(i)) and item.model == ALERT
    ]
    assert alert_item.payload["severity"] == "critical"
