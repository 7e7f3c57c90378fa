"""The supervisor's alert actions and reads on a real SQLite file: acknowledging and resolving
are stored with their audit row and their outbox row in one transaction, and Odoo (the simulator,
over real HTTP, through the real sync engine) learns the new state exactly once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import keyring
import pytest
from sqlalchemy import select

from milkconsole.grants import AccessDenied, Grant
from milkconsole.health.hook import HealthHook
from milkconsole.meters.events import SessionCompleted
from milkconsole.store import Recorder, open_database
from milkconsole.store.alerts import AlertError, AlertFilter, alert_marks, list_alerts
from milkconsole.store.cow_history import cow_history
from milkconsole.store.db import Database
from milkconsole.store.outbound import ALERT as ALERT_MODEL
from milkconsole.store.outbound import queue_alert
from milkconsole.store.schema import AlertRow, Animal, AuditEntry, OutboxRow
from milkconsole.supervision.alerts import acknowledge_alert, resolve_alert
from milkconsole.supervision.users import UserStore
from milkconsole.sync import secrets
from milkconsole.sync.engine import SyncEngine
from milkconsole.sync.settings import parse_odoo_settings
from simulators.keyring_memory import MemoryKeyring
from simulators.odoo.server import OdooSimulator
from tests.core.test_health_hook import add_animals, key_of, snapshot
from tests.core.test_mastitis import herd

NOW = datetime(2025, 4, 2, 9, 0, tzinfo=UTC)
SUPERVISOR, PIN = "Sue", "4321"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "alerts.sqlite")
    yield database
    database.close()


@pytest.fixture
def sue(db: Database) -> Grant:
    users = UserStore(db)
    users.add(SUPERVISOR, "supervisor", PIN, by=None)
    return Grant(SUPERVISOR, "supervisor")


def cows(db: Database, *names: tuple[str, str]) -> dict[str, int]:
    ids = {}
    with db.write() as tx:
        for number, name in names:
            a = Animal(number=number, name=name, rfid_tag=f"982 0000000{number}")
            tx.add(a)
            tx.flush()
            ids[number] = a.id
    return ids


def raise_alert(
    db: Database,
    key: str,
    animal_id: int | None,
    *,
    kind: str = "mastitis",
    severity: str = "warning",
    state: str = "open",
    raised_at: datetime = NOW,
) -> int:
    with db.write() as tx:
        row = AlertRow(
            key=key,
            kind=kind,
            condition="quarter LF",
            severity=severity,
            state=state,
            animal_id=animal_id,
            meter_id="M01",
            message="quarter LF conductivity up (6.0 sd); score 4.5",
            raised_at=raised_at,
        )
        tx.add(row)
        queue_alert(tx, row)  # as the health hook does, in the same transaction
        return row.id


def outbox_rows(db: Database, key: str) -> list[OutboxRow]:
    with db.read() as tx:
        return list(
            tx.scalars(
                select(OutboxRow)
                .where(OutboxRow.model == ALERT_MODEL, OutboxRow.record_key == key)
                .order_by(OutboxRow.id)
            )
        )


def audit_rows(db: Database) -> list[AuditEntry]:
    with db.read() as tx:
        return list(tx.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_acknowledging_stores_who_and_when_with_an_audit_row_and_an_outbox_row(db, sue):
    ids = cows(db, ("1002", "Daisy"))
    alert_id = raise_alert(db, "S-1:mastitis", ids["1002"])
    at = NOW + timedelta(minutes=30)

    record = acknowledge_alert(db, sue, alert_id, "  watching her LF  ", now=at)

    assert (record.state, record.acknowledged_by, record.acknowledged_at) == (
        "acknowledged",
        "Sue",
        at,
    )
    assert record.note == "watching her LF" and record.cow_label == "1002 Daisy"
    [audit] = [a for a in audit_rows(db) if a.action == "alert_acknowledge"]
    assert (audit.actor, audit.role, audit.target, audit.at) == (
        "Sue",
        "supervisor",
        "alert:S-1:mastitis",
        at,
    )
    assert audit.before["state"] == "open" and audit.after["state"] == "acknowledged"
    # Not derived for Odoo yet: its create is queued now, carrying the new state.
    [row] = outbox_rows(db, "S-1:mastitis")
    payload = json.loads(row.payload)
    assert (row.operation, row.state) == ("create", "pending")
    assert payload["state"] == "acknowledged" and payload["acknowledged_by"] == "Sue"
    # A second acknowledge changes nothing and is not audited again.
    again = acknowledge_alert(db, sue, alert_id, now=at + timedelta(hours=1))
    assert again.acknowledged_at == at
    assert len([a for a in audit_rows(db) if a.action == "alert_acknowledge"]) == 1


def test_resolving_needs_a_note_and_acknowledges_an_open_alert_at_the_same_time(db, sue):
    alert_id = raise_alert(db, "S-2:mastitis", cows(db, ("1003", "Bella"))["1003"])
    with pytest.raises(AlertError, match="needs a note"):
        resolve_alert(db, sue, alert_id, "   ")
    assert list_alerts(db)[0].state == "open"

    record = resolve_alert(db, sue, alert_id, "treated LF, milk discarded 3 days", now=NOW)

    assert record.state == "resolved" and record.resolved_by == "Sue"
    assert record.acknowledged_at == record.resolved_at == NOW
    assert record.note == "treated LF, milk discarded 3 days"
    with pytest.raises(AlertError, match="already resolved"):
        resolve_alert(db, sue, alert_id, "again")
    with pytest.raises(AlertError, match="nothing left to acknowledge"):
        acknowledge_alert(db, sue, alert_id)
    actions = [a.action for a in audit_rows(db)]
    assert actions.count("alert_resolve") == 1


def test_without_a_pin_or_with_a_removed_user_nothing_changes(db, sue):
    alert_id = raise_alert(db, "S-3:mastitis", None)
    before = len(audit_rows(db))
    with pytest.raises(AccessDenied, match="enter a technician or supervisor PIN"):
        acknowledge_alert(db, None, alert_id)
    with pytest.raises(AccessDenied, match="no longer a supervisor"):
        resolve_alert(db, Grant("Gone", "supervisor"), alert_id, "done")
    assert list_alerts(db)[0].state == "open"
    assert len(audit_rows(db)) == before
    [raised] = outbox_rows(db, "S-3:mastitis")  # what raising it queued, and nothing more
    assert raised.operation == "create" and json.loads(raised.payload)["state"] == "open"


def test_a_change_to_an_alert_odoo_has_becomes_a_write_and_a_pending_create_learns_it(db, sue):
    sent_id = raise_alert(db, "S-4:mastitis", None)
    queued_id = raise_alert(db, "S-5:mastitis", None)
    with db.write() as tx:  # the sync sent the first one's create already
        [sent] = tx.scalars(select(OutboxRow).where(OutboxRow.record_key == "S-4:mastitis"))
        sent.state, sent.attempts, sent.odoo_id = "sent", 1, 41

    resolve_alert(db, sue, sent_id, "false alarm: teat dip on the sensor", now=NOW)
    acknowledge_alert(db, sue, queued_id, now=NOW)

    create, write = outbox_rows(db, "S-4:mastitis")
    assert (write.operation, write.state) == ("write", "pending")
    assert json.loads(write.payload)["state"] == "resolved"
    assert json.loads(write.payload)["note"] == "false alarm: teat dip on the sensor"
    [create] = outbox_rows(db, "S-5:mastitis")
    assert json.loads(create.payload)["state"] == "acknowledged"


def test_the_list_filters_by_state_severity_cow_and_date(db, sue):
    ids = cows(db, ("1002", "Daisy"), ("1010", "Molly"), ("2001", "Rosie"))
    raise_alert(db, "a", ids["1002"], severity="critical", raised_at=NOW)
    raise_alert(db, "b", ids["1010"], raised_at=NOW - timedelta(days=2))
    raise_alert(db, "c", ids["2001"], state="resolved", raised_at=NOW - timedelta(days=10))
    raise_alert(db, "d", None, kind="equipment", raised_at=NOW - timedelta(hours=1))

    def keys(**kw: object) -> list[str]:
        return [a.key for a in list_alerts(db, AlertFilter(**kw))]  # type: ignore[arg-type]

    assert keys() == ["a", "d", "b"]  # needs attention, newest first
    assert keys(states=()) == ["a", "d", "b", "c"]
    assert keys(states=("resolved",)) == ["c"]
    assert keys(severities=("critical",)) == ["a"]
    assert keys(states=(), cow="10") == ["a", "b"]  # 1002 and 1010 start with 10
    assert keys(states=(), cow="ros") == ["c"]  # part of a name, any case
    assert keys(states=(), cow="1002") == ["a"]
    assert keys(since=NOW - timedelta(days=3), until=NOW) == ["d", "b"]
    with pytest.raises(ValueError, match="alert state 'closed' refused"):
        AlertFilter(states=("closed",))
    with pytest.raises(ValueError, match="naive datetime"):
        AlertFilter(since=datetime(2025, 4, 1))


def test_alert_marks_name_each_cows_alerts_that_still_need_someone(db, sue):
    ids = cows(db, ("1002", "Daisy"), ("1010", "Molly"))
    raise_alert(db, "a", ids["1002"])
    raise_alert(db, "b", ids["1002"], kind="identity", state="acknowledged")
    raise_alert(db, "c", ids["1010"], state="resolved")
    raise_alert(db, "d", None, kind="equipment")
    marks = alert_marks(db)
    assert marks.by_animal == {ids["1002"]: ("mastitis", "identity")}
    assert (marks.open_count, marks.attention_count) == (2, 3)


def sick_c03(i: int, cow: str, q: int) -> float:
    # C03's left rear quarter: +25 % over two days, then clinical.
    if cow != "C03" or q != 2:
        return 0.0
    return 0.25 * min(1.0, max(0.0, (i - 26) / 4)) + (0.5 if i > 30 else 0.0)


def test_a_sick_cows_history_shows_her_conductivity_yield_and_her_alert(db, sue):
    records = herd(cows=6, milkings=34, quarter_rise=sick_c03)
    ids = add_animals(db, sorted({r.cow_id for r in records}))
    recorder = Recorder(db, farm_code="F1")
    recorder.add_completion_hook(HealthHook())
    recorder.start()
    for r in records:
        recorder.submit(SessionCompleted(snapshot(r, key_of(r))))
    assert recorder.stop(30.0)
    last = max(r.end for r in records)

    [alert] = list_alerts(db)
    assert alert.animal_id == ids["C03"] and alert.kind == "mastitis"
    history = cow_history(db, ids["C03"], days=30, now=last)

    assert history.label == "C03 cow C03"
    assert len(history.points) == 34
    assert [p.started_at for p in history.points] == sorted(p.started_at for p in history.points)
    lr = [p.quarters_ms_cm[2] for p in history.points]
    assert lr[-1] is not None and lr[0] is not None and lr[-1] > 1.5 * lr[0]
    assert all(p.yield_l > 0 and p.conductivity_mean_ms_cm for p in history.points)
    assert [a.id for a in history.alerts] == [alert.id]
    assert alert.session_key in {p.key for p in history.points if p.abnormal}
    with pytest.raises(AlertError, match="no animal with id 999"):
        cow_history(db, 999)


def test_odoo_learns_an_acknowledge_then_a_resolve_exactly_once(db, sue):
    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    try:
        with OdooSimulator(version="17.0") as sim:
            sim.seed_devices(["M01"])
            settings = parse_odoo_settings(
                {"url": sim.url, "database": sim.database, "login": "admin", "timeout_s": 5},
                "parlour.toml",
            )
            secrets.store_secret(settings, sim.api_key)
            engine = SyncEngine(db, settings)
            engine.start()
            try:
                alert_id = raise_alert(db, "S-9:mastitis", None)
                engine.run_once()
                [odoo] = sim.records("iot.device.alert", fields=["state", "reference"])
                assert odoo["state"] == "active"

                acknowledge_alert(db, sue, alert_id, "checking her at the evening milking")
                assert engine.run_once().written == 1
                [odoo] = sim.records("iot.device.alert", fields=["state", "acknowledged_by"])
                assert (odoo["state"], odoo["acknowledged_by"]) == ("acknowledged", "Sue")

                resolve_alert(db, sue, alert_id, "treated, milk discarded")
                report = engine.run_once()
                assert report.written == 1 and report.total_created == 0
                [odoo] = sim.records(
                    "iot.device.alert", fields=["state", "resolved_by", "resolution_note"]
                )
                assert odoo["state"] == "resolved" and odoo["resolved_by"] == "Sue"
                assert odoo["resolution_note"] == "treated, milk discarded"
                # The engine's own derivation found the same change: still one write, sent.
                assert engine.run_once().written == 0
                assert sim.count("iot.device.alert") == 1
            finally:
                engine.close()
    finally:
        keyring.set_keyring(previous)
