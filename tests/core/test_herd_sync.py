"""The herd's changes and treatments both ways with a simulated Odoo 17 over real HTTP: tags
registered at the stall, a cow's new primary tag and keep-out flag, treatments recorded at the
console; treatments made in the office pulled so the stall diverts with Odoo offline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from milkconsole.grants import Grant
from milkconsole.herd.separation import SeparationRules
from milkconsole.herd.withdrawal import Treatment
from milkconsole.store.db import Database
from milkconsole.store.schema import Animal, OutboxRow, TreatmentRow
from milkconsole.store.treatments import separation_inputs
from milkconsole.supervision.herd_changes import (
    change_keep_out,
    new_treatment_key,
    record_treatment,
    register_stall_tag,
)
from milkconsole.supervision.users import UserStore
from milkconsole.sync.animals import pull_animals
from milkconsole.sync.connect import connect
from milkconsole.sync.contract import Contract
from milkconsole.sync.odoo_values import ODOO_DATETIME
from milkconsole.sync.treatments import pull_treatments
from simulators.odoo.server import OdooSimulator
from tests.helpers.odoo_fixtures import engine_for, logged_in

NOW = datetime.now(UTC).replace(microsecond=0)
MARY = Grant("mary", "supervisor")


def herd_from_odoo(sim: OdooSimulator, vault, db: Database, cows: int = 3):
    ids = sim.seed_herd(cows)
    settings = logged_in(sim, vault)
    engine = engine_for(db, settings)
    engine.run_once()
    UserStore(db).add("mary", "supervisor", "2468", by=None)
    with db.read() as tx:
        local = {a.odoo_id: a.id for a in tx.scalars(select(Animal))}
    return ids, local, engine, settings


def divert_now(db: Database, animal_id: int) -> bool:
    from milkconsole.herd.separation import decide

    with db.read() as tx:
        cows = separation_inputs(tx, NOW, SeparationRules())
    return decide(cows.get(animal_id), NOW + timedelta(minutes=1)).divert


def test_a_tag_registered_at_the_stall_and_a_new_primary_tag_reach_odoo(sim, vault, db):
    ids, local, engine, _ = herd_from_odoo(sim, vault, db)
    register_stall_tag(
        db,
        animal_id=local[ids[0]],
        tag="C0000042",
        primary=False,
        session_key=None,
        actor="operator",
    )
    register_stall_tag(
        db,
        animal_id=local[ids[1]],
        tag="982 000000000777",
        primary=True,
        session_key=None,
        actor="operator",
    )
    report = engine.run_once()
    assert report.created.get("animal_rfid") == 2  # the new tag, and cow 2's old primary
    tags = {r["rfid_tag"]: r["animal_id"][0] for r in sim.records("farm.animal.rfid")}
    assert tags == {"ASCII:C0000042": ids[0], "982000000000002": ids[1]}
    [cow2] = sim.records("farm.animal", domain=[["id", "=", ids[1]]], fields=["rfid_tag"])
    assert cow2["rfid_tag"] == "982000000000777"
    assert report.written >= 1
    # The next pull reads cow 2 back as Odoo now has her: nothing changes, nothing is lost.
    engine.pull_now()
    engine.run_once()
    with db.read() as tx:
        cow = tx.get(Animal, local[ids[1]])
        assert cow is not None and cow.rfid_tag == "982000000000777"


def test_keep_out_set_at_the_console_is_not_undone_by_a_pull_before_it_is_sent(sim, vault, db):
    ids, local, engine, settings = herd_from_odoo(sim, vault, db)
    change_keep_out(db, local[ids[2]], "blood in the milk", MARY)
    # Odoo touches her meanwhile (someone edits her group): the pull reads her again first.
    sim.write("farm.animal", [ids[2]], {"herd_group": "Hospital"})
    client = connect(settings)
    try:
        pull_animals(client, db, Contract(settings))
    finally:
        client.close()
    assert divert_now(db, local[ids[2]])
    engine.run_once()
    [cow] = sim.records(
        "farm.animal",
        domain=[["id", "=", ids[2]]],
        fields=["milk_withheld", "milk_withheld_reason", "herd_group"],
    )
    assert cow["milk_withheld"] is True and cow["milk_withheld_reason"] == "blood in the milk"
    # Cleared in Odoo by the vet: the console lets her milk back.
    sim.write("farm.animal", [ids[2]], {"milk_withheld": False, "milk_withheld_reason": False})
    engine.pull_now()
    engine.run_once()
    assert not divert_now(db, local[ids[2]])


def test_a_treatment_recorded_at_the_console_lands_once_and_comes_back_the_same(sim, vault, db):
    ids, local, engine, _ = herd_from_odoo(sim, vault, db)
    t = Treatment(
        key=new_treatment_key("F1", NOW),
        animal_id=local[ids[0]],
        product="Mastiplan LC",
        start=NOW - timedelta(hours=2),
        withdrawal_hours=84,
        note="LF quarter",
    )
    record_treatment(db, t, MARY)
    engine.run_once()
    [row] = sim.records(
        "farm.animal.treatment",
        fields=[
            "source_reference",
            "animal_id",
            "product",
            "start",
            "withdrawal_hours",
            "recorded_by",
            "source",
        ],
    )
    assert row["source_reference"] == t.key and row["animal_id"][0] == ids[0]
    assert row["start"] == (NOW - timedelta(hours=2)).strftime(ODOO_DATETIME)
    assert (row["withdrawal_hours"], row["recorded_by"], row["source"]) == (84.0, "mary", "console")
    engine.pull_now()
    engine.run_once()  # pulled back: the same local row, now with its Odoo id
    with db.read() as tx:
        [local_row] = list(tx.scalars(select(TreatmentRow)))
    assert local_row.key == t.key and local_row.odoo_id == row["id"]
    assert local_row.source == "console"


def test_a_treatment_made_in_the_office_diverts_at_the_stall_with_odoo_offline(sim, vault, db):
    ids, local, engine, settings = herd_from_odoo(sim, vault, db)
    start = (NOW - timedelta(hours=1)).strftime(ODOO_DATETIME)
    [made] = sim.create(
        "farm.animal.treatment",
        {"animal_id": ids[1], "product": "Cobactan", "start": start, "withdrawal_milkings": 6},
    )
    engine.pull_now()
    report = engine.run_once()
    assert report.treatments_pulled == 1
    sim.stop()  # the office network goes down
    assert divert_now(db, local[ids[1]])
    with db.read() as tx:
        row = tx.scalars(select(TreatmentRow)).one()
    assert (row.key, row.source, row.withdrawal_milkings) == (f"odoo:{made}", "odoo", 6)
    # Back up; the vet deletes the treatment entered by mistake: a full pull finds it gone.
    sim.start()
    sim.store.unlink("farm.animal.treatment", [made])
    client = connect(settings)
    try:
        pulled = pull_treatments(client, db, Contract(settings), full=True)
    finally:
        client.close()
    assert pulled.deactivated == 1
    assert not divert_now(db, local[ids[1]])


def test_a_cow_odoo_does_not_know_keeps_her_tags_and_treatments_until_it_does(sim, vault, db):
    _ids, _local, engine, _settings = herd_from_odoo(sim, vault, db, cows=1)
    import io

    from milkconsole.herd.file import read_herd_csv
    from milkconsole.supervision.herd_changes import import_herd

    herd = read_herd_csv(io.StringIO("number,name,rfid_tag\n500,Juno,982000000000500\n"), "h.csv")
    import_herd(db, herd, grant=MARY)
    with db.read() as tx:
        juno = tx.scalars(select(Animal).where(Animal.number == "500")).one()
    register_stall_tag(
        db, animal_id=juno.id, tag="C0000500", primary=False, session_key=None, actor="operator"
    )
    record_treatment(
        db,
        Treatment(
            key=new_treatment_key("F1", NOW),
            animal_id=juno.id,
            product="Synulox",
            start=NOW,
            withdrawal_hours=60,
        ),
        MARY,
    )
    with db.read() as tx:
        waiting = tx.scalars(
            select(OutboxRow).where(
                OutboxRow.model.in_(("farm.animal.rfid", "farm.animal.treatment"))
            )
        ).all()
    assert waiting == []  # nothing queued for a cow Odoo has never heard of
    # The office adds her to Odoo: the pull merges her, and what the console knew goes.
    sim.create("farm.animal", {"name": "Juno", "number": "500", "rfid_tag": "982000000000500"})
    engine.pull_now()
    engine.run_once()
    engine.run_once()
    assert [r["rfid_tag"] for r in sim.records("farm.animal.rfid")] == ["ASCII:C0000500"]
    assert [r["product"] for r in sim.records("farm.animal.treatment")] == ["Synulox"]
    with db.read() as tx:
        assert tx.scalar(select(Animal.odoo_id).where(Animal.id == juno.id)) is not None


def test_every_field_the_herd_models_read_is_in_the_payloads_the_builder_makes(db):
    from milkconsole.store.outbound import (
        animal_payload,
        queue_animal_fields,
        queue_animal_tag,
        queue_treatment,
    )
    from milkconsole.store.schema import TreatmentRow
    from milkconsole.sync.contract import CONTRACT, Refs

    with db.write() as tx:
        tx.add(Animal(id=1, odoo_id=7, number="1042", name="Bella", rfid_tag="982000000000001"))
        tx.flush()
        row = TreatmentRow(
            key="TRT-1",
            animal_id=1,
            product="Cobactan",
            started_at=NOW,
            withdrawal_milkings=4,
            created_at=NOW,
        )
        tx.add(row)
        queue_treatment(tx, row)
        queue_animal_tag(tx, 1, "ASCII:C0000001")
        queue_animal_fields(tx, 1, {"rfid_tag": "982000000000009", "milk_withheld_reason": "x"})
        assert animal_payload(tx, 1)["animal_number"] == "1042"
    import json

    with db.read() as tx:
        rows = {r.model: json.loads(r.payload) for r in tx.scalars(select(OutboxRow))}
    refs = Refs(animals={1: 7})
    contract = Contract()
    for model, outbox in (
        ("treatment", "farm.animal.treatment"),
        ("animal_rfid", "farm.animal.rfid"),
    ):
        payload = rows[outbox]
        for f in CONTRACT[model].fields:
            missing = [k for k in f.keys if k not in payload]
            assert not missing, f"{model}.{f.name} reads {missing}, which the builder never writes"
        assert contract.vals(model, payload, refs)["animal_id"] == 7
    vals = contract.vals("animal", rows["farm.animal"], refs, "write")
    assert vals == {
        "rfid_tag": "982000000000009",
        "milk_withheld": True,
        "milk_withheld_reason": "x",
    }


def test_a_cows_write_waits_while_odoo_lacks_her_and_leaves_out_a_field_odoo_has_not(vault, db):
    from dataclasses import replace as dc_replace

    from simulators.odoo.models import contract_models

    models = contract_models()
    animal = models["farm.animal"]
    fields = {k: v for k, v in animal.fields.items() if k != "milk_withheld_reason"}
    models["farm.animal"] = dc_replace(animal, fields=fields)
    with OdooSimulator(version="17.0", models=models) as sim:
        sim.seed_devices([f"M{i:02d}" for i in range(1, 3)])
        ids, local, engine, _ = herd_from_odoo(sim, vault, db, cows=2)
        change_keep_out(db, local[ids[0]], "high SCC", MARY)
        change_keep_out(db, local[ids[1]], "blood", MARY)
        sim.store.unlink("farm.animal", [ids[1]])  # gone from Odoo meanwhile
        report = engine.run_once()
        assert report.dead == 0 and report.deferred == 1  # she may come back: waiting
        [cow] = sim.records("farm.animal", domain=[["id", "=", ids[0]]], fields=["milk_withheld"])
        assert cow["milk_withheld"] is True
        with db.read() as tx:
            waiting = tx.scalars(
                select(OutboxRow).where(
                    OutboxRow.model == "farm.animal", OutboxRow.state == "pending"
                )
            ).one()
        assert waiting.record_key == str(local[ids[1]])
        assert "not in Odoo" in (waiting.last_error or "")
