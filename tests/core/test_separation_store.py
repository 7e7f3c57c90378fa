"""Where milk went, in the store: the recorder's ruling on each finished milking, the operator's
confirmation, the alert when nobody confirmed, a cow corrected afterwards, colostrum, the keep-out
flag, tags registered at the stall, and treatments recorded by a supervisor."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from milkconsole.grants import AccessDenied, Grant
from milkconsole.herd.separation import SeparationRules
from milkconsole.herd.withdrawal import Treatment
from milkconsole.meters.events import SessionCompleted, SessionSnapshot, SessionStarted
from milkconsole.reports.dashboard import production_snapshot
from milkconsole.store.db import Database
from milkconsole.store.herd import TagTaken
from milkconsole.store.outbound import queue_meter
from milkconsole.store.recorder import Recorder
from milkconsole.store.schema import AlertRow, Animal, AnimalTag, AuditEntry, Meter, OutboxRow
from milkconsole.store.separation import SeparationHook, set_rules
from milkconsole.store.sessions import SessionStore
from milkconsole.supervision.herd_changes import (
    change_keep_out,
    confirm_divert,
    new_treatment_key,
    record_treatment,
    register_stall_tag,
    seed_treatments,
)
from milkconsole.supervision.users import UserStore
from tests.helpers.odoo_fixtures import registration

NOW = datetime.now(UTC).replace(microsecond=0)
DAISY_TAG = "982000000000101"
BELLA_TAG = "982000000000102"


@pytest.fixture
def herd(db: Database) -> dict[str, int]:
    """Two cows and the meter they are milked on; Daisy has an Odoo id, Bella does not."""
    with db.write() as tx:
        meter = Meter(id="M01", name="M01", bus_id="b", unit=1, profile="gea", stall=1)
        tx.add(meter)
        tx.flush()
        queue_meter(tx, meter, registration("M01", 1))
        daisy = Animal(number="1001", name="Daisy", rfid_tag=DAISY_TAG, odoo_id=71, active=True)
        bella = Animal(number="1002", name="Bella", rfid_tag=BELLA_TAG, active=True)
        tx.add_all([daisy, bella])
        tx.flush()
        set_rules(tx, SeparationRules())
        return {"daisy": daisy.id, "bella": bella.id}


@pytest.fixture
def recorder(db: Database):
    r = Recorder(db, farm_code="F1")
    r.add_completion_hook(SeparationHook())
    r.start()
    yield r
    r.stop(5.0)


def snap(key: str, tag: str | None, start: datetime, **kw) -> SessionSnapshot:
    values = dict(
        key=key,
        meter_id="M01",
        stall=1,
        started_at=start,
        rfid=tag,
        yield_l=11.5,
        duration_s=400.0,
    )
    values.update(kw)
    return SessionSnapshot(**values)  # type: ignore[arg-type]


def milk(recorder: Recorder, key: str, tag: str | None, start: datetime) -> None:
    recorder.submit(SessionStarted(snap(key, tag, start)))
    recorder.submit(
        SessionCompleted(
            snap(key, tag, start, state="completed", ended_at=start + timedelta(minutes=7))
        )
    )
    assert recorder.flush(5.0)


def treated(db: Database, animal_id: int, *, hours: float = 72, start: datetime = NOW) -> None:
    seed_treatments(
        db,
        [
            Treatment(
                key=new_treatment_key("F1", start),
                animal_id=animal_id,
                product="Mastiplan LC",
                start=start - timedelta(hours=1),
                withdrawal_hours=hours,
            )
        ],
        actor="vet",
    )


def alerts(db: Database, kind: str = "divert_unconfirmed") -> list[AlertRow]:
    with db.read() as tx:
        return list(tx.scalars(select(AlertRow).where(AlertRow.kind == kind)))


def outbox(db: Database, model: str, key: str) -> list[OutboxRow]:
    with db.read() as tx:
        return list(
            tx.scalars(
                select(OutboxRow).where(OutboxRow.model == model, OutboxRow.record_key == key)
            )
        )


def test_a_treated_cows_milking_is_diverted_and_unconfirmed_raises_a_critical_alert(
    db, herd, recorder
):
    treated(db, herd["daisy"])
    milk(recorder, "S1", DAISY_TAG, NOW)
    record = SessionStore(db).record("S1")
    assert record is not None and record.destination == "diverted"
    assert record.divert_reason == "Mastiplan LC (treatment, 72 h withdrawal)"
    assert record.divert_confirmed_by is None
    [alert] = alerts(db)
    assert alert.severity == "critical" and alert.state == "open" and alert.session_key == "S1"
    assert "nobody confirmed it was diverted" in alert.message and "1001 Daisy" in alert.message
    assert outbox(db, "iot.device.alert", alert.key)  # the supervisor's Odoo learns it too
    # Diverted milk makes no production record and leaves the tank total.
    assert outbox(db, "farm.milk.production", "S1") == []
    [session] = outbox(db, "milk.session", "S1")
    assert '"destination": "diverted"' in session.payload
    snap_ = production_snapshot(db, now=NOW + timedelta(minutes=10))
    assert snap_.total_yield_l == 0.0 and snap_.diverted_l == pytest.approx(11.5)
    assert (snap_.diverted_sessions, snap_.diverted_unconfirmed) == (1, 1)


def test_confirming_during_the_milking_records_who_and_raises_nothing(db, herd, recorder):
    treated(db, herd["daisy"])
    recorder.submit(SessionStarted(snap("S2", DAISY_TAG, NOW)))
    assert recorder.flush(5.0)
    record = confirm_divert(db, "S2", "operator")
    assert record.destination == "diverted" and record.divert_confirmed_by == "operator"
    recorder.submit(SessionCompleted(snap("S2", DAISY_TAG, NOW, state="completed", ended_at=NOW)))
    assert recorder.flush(5.0)
    record = SessionStore(db).record("S2")
    assert record is not None and record.divert_confirmed_by == "operator"
    assert record.divert_confirmed_at is not None and alerts(db) == []
    with db.read() as tx:
        audit = tx.scalars(select(AuditEntry).where(AuditEntry.action == "milk_diverted")).one()
    assert audit.target == "milk_session:S2" and audit.actor == "operator"


def test_a_late_confirmation_resolves_the_alert_and_tells_odoo(db, herd, recorder):
    treated(db, herd["daisy"])
    milk(recorder, "S3", DAISY_TAG, NOW)
    [alert] = alerts(db)
    confirm_divert(db, "S3", "operator")
    [alert] = alerts(db)
    assert alert.state == "resolved" and alert.resolved_by == "operator"
    [session] = outbox(db, "milk.session", "S3")
    assert '"divert_confirmed_by": "operator"' in session.payload


def test_the_operator_can_divert_any_cows_milk_for_a_reason_of_their_own(db, herd, recorder):
    recorder.submit(SessionStarted(snap("S4", BELLA_TAG, NOW)))
    assert recorder.flush(5.0)
    confirm_divert(db, "S4", "operator", reason="clots in the filter")
    recorder.submit(SessionCompleted(snap("S4", BELLA_TAG, NOW, state="completed")))
    assert recorder.flush(5.0)
    record = SessionStore(db).record("S4")
    assert record is not None and record.destination == "diverted"
    assert record.divert_reason == "clots in the filter"


def test_a_cow_named_by_hand_after_the_milking_is_ruled_on_again(db, herd, recorder):
    treated(db, herd["daisy"])
    milk(recorder, "S5", None, NOW)  # no tag read: nobody knew it was Daisy
    store = SessionStore(db)
    record = store.record("S5")
    assert record is not None and record.destination == "tank"
    assert outbox(db, "farm.milk.production", "S5") == []  # no cow, no production record
    store.set_manual_animal("S5", herd["daisy"], "operator")
    record = store.record("S5")
    assert record is not None and record.destination == "diverted"
    [alert] = alerts(db)
    assert alert.state == "open"
    # The operator picked the wrong cow: it was Bella, whose milk may go in the tank.
    store.set_manual_animal("S5", herd["bella"], "operator")
    record = store.record("S5")
    assert record is not None and record.destination == "tank" and record.divert_reason is None
    [alert] = alerts(db)
    assert alert.state == "resolved"
    assert len(outbox(db, "farm.milk.production", "S5")) == 1


def test_colostrum_diverts_the_first_eight_milkings_after_calving(db, herd, recorder):
    with db.write() as tx:
        bella = tx.get(Animal, herd["bella"])
        assert bella is not None
        bella.last_calving_date = (NOW - timedelta(days=1)).date()
    start = datetime.combine(bella.last_calving_date, datetime.min.time()).astimezone(UTC)
    start += timedelta(hours=30)
    destinations = []
    for i in range(9):
        key = f"C{i}"
        milk(recorder, key, BELLA_TAG, start + timedelta(hours=12 * i))
        record = SessionStore(db).record(key)
        assert record is not None
        destinations.append(record.destination)
        if i < 8:
            confirm_divert(db, key, "operator")
    assert destinations == ["diverted"] * 8 + ["tank"]
    record = SessionStore(db).record("C0")
    assert record is not None and record.divert_reason == "colostrum, milking 1 of 8"


def test_the_keep_out_flag_needs_a_supervisor_is_audited_and_goes_to_odoo(db, herd, recorder):
    users = UserStore(db)
    users.add("mary", "supervisor", "2468", by=None)
    with pytest.raises(AccessDenied):
        change_keep_out(db, herd["daisy"], "high SCC", Grant("tom", "technician"))
    change_keep_out(db, herd["daisy"], "high SCC", Grant("mary", "supervisor"))
    milk(recorder, "S6", DAISY_TAG, NOW)
    record = SessionStore(db).record("S6")
    assert record is not None and record.divert_reason == "kept out: high SCC"
    [write] = outbox(db, "farm.animal", str(herd["daisy"]))
    assert write.operation == "write"
    assert '"milk_withheld": true' in write.payload
    assert '"milk_withheld_reason": "high SCC"' in write.payload
    change_keep_out(db, herd["daisy"], None, Grant("mary", "supervisor"))
    milk(recorder, "S7", DAISY_TAG, NOW + timedelta(hours=12))
    record = SessionStore(db).record("S7")
    assert record is not None and record.destination == "tank"
    with db.read() as tx:
        actions = [a.action for a in tx.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions.count("keep_milk_out") == 1 and actions.count("milk_back_in_tank") == 1


def test_a_supervisor_records_a_treatment_and_odoo_gets_it(db, herd, recorder):
    UserStore(db).add("mary", "supervisor", "2468", by=None)
    t = Treatment(
        key=new_treatment_key("F1", NOW),
        animal_id=herd["daisy"],
        product="Cobactan",
        start=NOW - timedelta(minutes=5),
        withdrawal_milkings=4,
        note="left hind",
    )
    with pytest.raises(AccessDenied):
        record_treatment(db, t, Grant("tom", "technician"))
    saved = record_treatment(db, t, Grant("mary", "supervisor"))
    assert saved.recorded_by == "mary"
    [row] = outbox(db, "farm.animal.treatment", t.key)
    assert '"withdrawal_milkings": 4' in row.payload and '"recorded_by": "mary"' in row.payload
    milk(recorder, "S8", DAISY_TAG, NOW)
    record = SessionStore(db).record("S8")
    assert (
        record is not None and record.divert_reason == "Cobactan (treatment, 4 milkings withdrawal)"
    )
    # Bella is known only here: her treatment waits for Odoo to know her.
    t2 = Treatment(
        key=new_treatment_key("F1", NOW),
        animal_id=herd["bella"],
        product="Cobactan",
        start=NOW,
        withdrawal_hours=24,
    )
    record_treatment(db, t2, Grant("mary", "supervisor"))
    assert outbox(db, "farm.animal.treatment", t2.key) == []


def test_registering_an_unknown_tag_gives_it_to_her_and_her_session_is_hers(db, herd, recorder):
    new_tag = "982000000000999"
    recorder.submit(SessionStarted(snap("S9", new_tag, NOW)))
    assert recorder.flush(5.0)
    with pytest.raises(TagTaken, match="already cow 1002 Bella's"):
        register_stall_tag(
            db,
            animal_id=herd["daisy"],
            tag=BELLA_TAG,
            primary=False,
            session_key="S9",
            actor="operator",
        )
    change = register_stall_tag(
        db, animal_id=herd["daisy"], tag=new_tag, primary=None, session_key="S9", actor="operator"
    )
    assert not change.primary  # she has a primary tag: this one is another
    record = SessionStore(db).record("S9")
    assert record is not None and record.animal_id == herd["daisy"] and record.id_source == "rfid"
    with db.read() as tx:
        assert (
            tx.scalar(select(AnimalTag.animal_id).where(AnimalTag.rfid_tag == new_tag))
            == (herd["daisy"])
        )
        audit = tx.scalars(select(AuditEntry).where(AuditEntry.action == "register_tag")).one()
    assert audit.actor == "operator" and audit.after["session"] == "S9"
    [tag_row] = outbox(db, "farm.animal.rfid", new_tag)
    assert f'"animal_id": {herd["daisy"]}' in tag_row.payload


def test_a_tag_made_primary_replaces_hers_and_keeps_the_old_one(db, herd, recorder):
    new_tag = "ASCII:C0001001"
    change = register_stall_tag(
        db,
        animal_id=herd["daisy"],
        tag="C0001001",
        primary=True,
        session_key=None,
        actor="operator",
    )
    assert change.primary and change.previous_primary == DAISY_TAG
    with db.read() as tx:
        daisy = tx.get(Animal, herd["daisy"])
        assert daisy is not None and daisy.rfid_tag == new_tag
        assert (
            tx.scalar(select(AnimalTag.animal_id).where(AnimalTag.rfid_tag == DAISY_TAG))
            == (herd["daisy"])
        )
    [write] = outbox(db, "farm.animal", str(herd["daisy"]))
    assert '"rfid_tag": "ASCII:C0001001"' in write.payload
    assert outbox(db, "farm.animal.rfid", DAISY_TAG)  # Odoo keeps the old tag as another


def test_calving_dates_in_the_past_do_not_divert_a_cow_forever():
    # (a herd file with last year's calving and no milkings recorded here)
    from milkconsole.herd.separation import CowSeparation, decide

    cow = CowSeparation(1, calved_on=date.today() - timedelta(days=200))
    assert not decide(cow, datetime.now(UTC)).divert


def test_the_bulk_tank_check_leaves_diverted_milk_out(db, herd, recorder):
    from milkconsole.technician.calibration import CalibrationSettings, reconcile_bulk_tank

    treated(db, herd["daisy"])
    milk(recorder, "T1", BELLA_TAG, NOW)
    milk(recorder, "T2", DAISY_TAG, NOW + timedelta(minutes=20))  # diverted
    milk(recorder, "T3", BELLA_TAG, NOW + timedelta(hours=12))
    rec = reconcile_bulk_tank(
        db,
        start=NOW - timedelta(hours=1),
        end=NOW + timedelta(days=1),
        tank_l=23.0,  # what the tank got: Bella's two milkings
        settings=CalibrationSettings(),
        min_sessions=1,
    )
    assert rec.meters_sum_l == pytest.approx(23.0) and rec.sessions == 2
    assert rec.parlour_error_pct == pytest.approx(0.0)
    assert (rec.diverted_sessions, rec.diverted_l) == (1, pytest.approx(11.5))
