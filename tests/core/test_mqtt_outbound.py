"""The MQTT messages `store/outbound/` queues: the seed's topic and keys, one id per message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from milkconsole.grants import Grant
from milkconsole.meters.events import SessionSnapshot
from milkconsole.store.db import Database
from milkconsole.store.outbound import queue_alert, queue_meter_status, queue_sessions, set_mqtt
from milkconsole.store.schema import AlertRow, Animal, Meter, OutboxRow
from milkconsole.store.sessions import new_session_row
from milkconsole.supervision.alerts import acknowledge_alert, resolve_alert
from milkconsole.supervision.users import UserStore

T0 = datetime(2025, 3, 1, 4, 30, tzinfo=UTC)
SEED_KEYS = {
    "event",
    "session_id",
    "meter_id",
    "animal_id",
    "yield_liters",
    "duration_seconds",
    "timestamp",
}


def mqtt_rows(db: Database) -> list[OutboxRow]:
    with db.read() as tx:
        return list(
            tx.scalars(select(OutboxRow).where(OutboxRow.channel == "mqtt").order_by(OutboxRow.id))
        )


def payload(row: OutboxRow) -> dict[str, Any]:
    import json

    return json.loads(row.payload)


def finish_session(db: Database, key: str, *, animal: bool = True) -> None:
    with db.write() as tx:
        if tx.get(Meter, "M07") is None:
            tx.add(Meter(id="M07", name="M07", bus_id="b1", unit=7, profile="gea", stall=7))
        cow = None
        if animal:
            cow = Animal(number="1234", name="Daisy", rfid_tag="982000000000001", active=True)
            tx.add(cow)
            tx.flush()
        snap = SessionSnapshot(
            key=key,
            meter_id="M07",
            stall=7,
            started_at=T0,
            state="completed",
            rfid="982000000000001",
            ended_at=T0 + timedelta(seconds=412.4),
            duration_s=412.4,
            yield_l=11.237,
            conductivity_mean_ms_cm=5.1,
            fat_pct=4.2,
        )
        row = new_session_row(snap, T0)
        if cow is not None:
            row.animal_id = cow.id
        tx.add(row)
        tx.flush()
        queue_sessions(tx, [row])


def test_no_mqtt_message_is_queued_while_the_config_has_no_mqtt_section(db: Database) -> None:
    with db.write() as tx:
        set_mqtt(tx, None)
    finish_session(db, "FARM1-M07-1")
    assert mqtt_rows(db) == []


def test_a_finished_session_queues_the_seeds_session_complete_once(db: Database) -> None:
    with db.write() as tx:
        set_mqtt(tx, "FARM1")
    finish_session(db, "FARM1-M07-1")
    with db.write() as tx:  # queued again (a retried transaction): still one message
        row = tx.scalars(select(OutboxRow).where(OutboxRow.model == "milk.session")).one()
        from milkconsole.store.schema import SessionRow

        queue_sessions(tx, [tx.scalars(select(SessionRow)).one()])
        assert row.record_key == "FARM1-M07-1"
    (out,) = mqtt_rows(db)
    assert (out.model, out.record_key, out.operation) == (
        "events",
        "FARM1-M07-1:completed",
        "create",
    )
    p = payload(out)
    assert p["topic"] == "dairy/FARM1/milk_meters/M07/events"
    assert (p["qos"], p["retain"]) == (1, False)
    m = p["message"]
    assert set(m) >= SEED_KEYS
    assert m["event"] == "session_complete"
    assert m["session_id"] == m["session_key"] == "FARM1-M07-1"
    assert m["message_id"] == "FARM1-M07-1:completed"
    assert (m["meter_id"], m["animal_id"], m["animal_number"]) == ("M07", "Daisy", "1234")
    assert (m["yield_liters"], m["duration_seconds"]) == (11.24, 412)
    assert m["timestamp"] == "2025-03-01T04:36:52.400000Z"
    assert m["quality"]["conductivity_ms_cm"] == 5.1 and m["quality"]["fat_pct"] == 4.2


def test_a_cow_nobody_knows_is_published_with_no_animal(db: Database) -> None:
    with db.write() as tx:
        set_mqtt(tx, "FARM1")
    finish_session(db, "FARM1-M07-2", animal=False)
    m = payload(mqtt_rows(db)[0])["message"]
    assert m["animal_id"] is None and m["rfid_tag"] == "982000000000001"


def test_an_alert_raised_escalated_acknowledged_and_resolved_is_four_distinct_events(
    db: Database,
) -> None:
    with db.write() as tx:
        set_mqtt(tx, "FARM1")
        alert = AlertRow(
            key="A-1",
            kind="mastitis",
            condition="conductivity",
            severity="warning",
            state="open",
            meter_id="M07",
            message="conductivity up",
            raised_at=T0,
        )
        tx.add(alert)
        queue_alert(tx, alert)
    with db.write() as tx:
        row = tx.scalars(select(AlertRow)).one()
        row.severity = "critical"
        queue_alert(tx, row)
        alert_id = row.id
    UserStore(db).add("mary", "supervisor", "2468", by=None)
    grant = Grant("mary", "supervisor")
    acknowledge_alert(db, grant, alert_id, now=T0 + timedelta(minutes=5))
    resolve_alert(db, grant, alert_id, "treated", now=T0 + timedelta(minutes=9))
    messages = [payload(r)["message"] for r in mqtt_rows(db)]
    assert [m["event"] for m in messages] == [
        "alert_raised",
        "alert_updated",
        "alert_acknowledged",
        "alert_resolved",
    ]
    assert len({m["message_id"] for m in messages}) == 4
    assert messages[1]["severity"] == "critical"
    assert messages[2]["by"] == "mary" and messages[2]["timestamp"] == "2025-03-01T04:35:00Z"
    assert messages[3]["note"] == "treated"


def test_a_meter_status_change_is_an_event_and_a_retained_state(db: Database) -> None:
    with db.write() as tx:
        set_mqtt(tx, "FARM1")
        tx.add(Meter(id="M07", name="M07", bus_id="b1", unit=7, profile="gea", stall=7))
        tx.flush()
        queue_meter_status(tx, "M07", "offline", T0, "timeout: no answer")
        queue_meter_status(tx, "M07", "ok", T0 + timedelta(seconds=3))
    rows = mqtt_rows(db)
    assert [(r.model, payload(r)["retain"]) for r in rows] == [
        ("events", False),
        ("state", True),
        ("events", False),
        ("state", True),
    ]
    state = payload(rows[1])
    assert state["topic"] == "dairy/FARM1/milk_meters/M07/state"
    assert state["message"]["status"] == "offline" and state["message"]["stall"] == 7
    assert state["message"]["detail"] == "timeout: no answer"
    assert len({r.record_key for r in rows}) == 4


def test_the_runtime_queues_mqtt_while_the_config_has_the_section_and_not_after(
    tmp_path, db: Database
) -> None:
    from milkconsole.app.runtime import ParlourRuntime
    from milkconsole.config import load_config
    from milkconsole.store.schema import SyncState
    from simulators.demo import make_demo_config

    path = make_demo_config(tmp_path, stalls=4)
    plain = load_config(path)
    with path.open("a", encoding="utf-8") as fh:
        fh.write('\n[mqtt]\nhost = "127.0.0.1"\nfarm_code = "YARD"\n')
    with_mqtt = load_config(path)

    def farm() -> str | None:
        with db.read() as tx:
            row = tx.get(SyncState, "mqtt.farm_code")
            return row.value if row is not None else None

    ParlourRuntime(with_mqtt, db)
    assert farm() == "YARD"
    finish_session(db, "YARD-1")
    ParlourRuntime(plain, db)  # the section taken out: nothing more is queued
    assert farm() is None
    finish_session(db, "YARD-2", animal=False)
    assert [r.record_key for r in mqtt_rows(db) if r.model == "events"] == ["YARD-1:completed"]
