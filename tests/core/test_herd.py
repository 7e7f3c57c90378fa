"""The herd without Odoo: a CSV file in (every bad cell named, all or nothing), back out, and
merged with Odoo's herd when a pull finds the same cows (by number or tag)."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from milkconsole.grants import Grant
from milkconsole.herd.file import HerdFileError, read_herd_csv, write_herd_csv
from milkconsole.meters.events import SessionSnapshot
from milkconsole.store.db import Database
from milkconsole.store.herd import export_rows
from milkconsole.store.schema import Animal, AnimalTag, AuditEntry, OutboxRow, SessionRow
from milkconsole.store.sessions import new_session_row, resolve_animal
from milkconsole.supervision.herd_changes import export_herd, import_herd
from milkconsole.supervision.users import UserStore
from milkconsole.sync.animals import pull_animals
from milkconsole.sync.connect import connect
from milkconsole.sync.contract import Contract
from tests.helpers.odoo_fixtures import T0, engine_for, logged_in

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2025, 3, 1)

GOOD = """number,name,rfid_tag,other_tags,group,birth_date,lactation_number,last_calving_date
1001,Daisy,982 000000000101,C0001001,Fresh,2019-04-02,4,2025-02-26
1002,Bella,80:00:F5:80:00:00:00:66,,High,2020-01-15,3,2024-11-30
1003,,,C0001003|982000000000199,Heifers,2023-02-01,0,
"""


def herd_file(text: str, name: str = "herd.csv"):
    return read_herd_csv(io.StringIO(text), name, today=TODAY)


def animals(db: Database) -> dict[str, Animal]:
    with db.read() as tx:
        return {a.number: a for a in tx.scalars(select(Animal))}


def tags_of(db: Database, number: str) -> set[str]:
    with db.read() as tx:
        aid = tx.scalar(select(Animal.id).where(Animal.number == number))
        return set(tx.scalars(select(AnimalTag.rfid_tag).where(AnimalTag.animal_id == aid)))


# -- reading the file -----------------------------------------------------------------------------


def test_a_good_file_is_read_with_every_tag_normalised():
    herd = herd_file(GOOD)
    daisy, bella, third = herd.rows
    assert daisy.rfid_tag == "982000000000101" and daisy.other_tags == ("ASCII:C0001001",)
    assert daisy.last_calving_date == date(2025, 2, 26) and daisy.lactation_number == 4
    # FDX-B hex in the file is the same ISO tag the meters send.
    assert bella.rfid_tag == "982000000000102"
    assert third.name is None and third.rfid_tag is None
    assert third.other_tags == ("ASCII:C0001003", "982000000000199")
    assert [r.line for r in herd.rows] == [2, 3, 4]


def test_excel_semicolons_and_a_byte_order_mark_are_read_too():
    text = "\ufeff" + GOOD.replace(",", ";").replace("C0001003|", "C0001003|")
    herd = herd_file(text)
    assert [r.number for r in herd.rows] == ["1001", "1002", "1003"]


def test_every_bad_cell_is_named_by_line_and_column_and_nothing_is_returned():
    future = (TODAY + timedelta(days=3)).isoformat()
    text = (
        "number,name,rfid_tag,other_tags,birth_date,lactation_number,last_calving_date\n"
        "1001,Daisy,98200012345,,2019-04-02,4,2025-02-26\n"  # 11 digits: no tag
        "1002,Bella,982000000000102,,15/01/2020,3,\n"  # not ISO
        f"1003,Clover,,,2021-01-01,two,{future}\n"
        "1001,Again,,,,,\n"  # duplicate number
        "1005,Rosie,982000000000102,,2018-01-01,25,2017-05-05\n"  # tag of line 3, lact, calving
        "1006,Heifer,,,2023-01-01,0,2024-05-05\n"
        ",NoNumber,,,,,\n"
    )
    with pytest.raises(HerdFileError) as caught:
        herd_file(text)
    message = str(caught.value)
    expected = [
        "herd.csv: line 2, column 3 (rfid_tag): '98200012345' is not a tag",
        "herd.csv: line 3, column 5 (birth_date): '15/01/2020' is not a date like 2021-03-14",
        "herd.csv: line 4, column 6 (lactation_number): 'two' is not a whole number",
        f"herd.csv: line 4, column 7 (last_calving_date): {future} is in the future",
        "herd.csv: line 5, column 1 (number): cow 1001 is already on line 2",
        "herd.csv: line 6, column 6 (lactation_number): 25 is not from 0 to 20",
        "herd.csv: line 6, column 7 (last_calving_date): 2017-05-05 is not after her birth",
        "herd.csv: line 7, column 7 (last_calving_date): lactation 0 (a heifer) but a calving",
        "herd.csv: line 8, column 1 (number): empty",
    ]
    for line in expected:
        assert line in message, f"missing {line!r} in:\n{message}"
    assert "nothing imported" in message
    # Line 6 reuses line 3's tag; line 3 itself had another problem, so it is not the clash.
    assert len(caught.value.problems) >= len(expected)


def test_a_tag_twice_in_the_file_names_both_lines_and_an_unknown_column_is_refused():
    with pytest.raises(
        HerdFileError,
        match=r"line 3, column 3 \(rfid_tag\): tag 982 000000000101 "
        r"is also cow 1001's \(line 2\)",
    ):
        herd_file("number,name,rfid_tag\n1001,A,982000000000101\n1002,B,982 000000000101\n")
    with pytest.raises(HerdFileError, match="column 2 'colour' is unknown"):
        herd_file("number,colour\n1001,black\n")
    with pytest.raises(HerdFileError, match="no 'number' column"):
        herd_file("name,rfid_tag\nDaisy,982000000000101\n")


# -- importing ------------------------------------------------------------------------------------


def test_an_import_adds_cows_identifies_their_tags_and_earlier_milkings(db):
    with db.write() as tx:  # a milking recorded before anybody knew whose tag this was
        snap = SessionSnapshot(
            key="S-early",
            meter_id="M01",
            stall=1,
            started_at=T0,
            state="completed",
            rfid="C0001003",
            ended_at=T0 + timedelta(minutes=6),
            yield_l=9.0,
        )
        tx.add(new_session_row(snap, T0))
    report = import_herd(db, herd_file(GOOD), grant=None)
    assert (report.added, report.updated, report.identified) == (3, 0, 1)
    cows = animals(db)
    assert cows["1001"].odoo_id is None and cows["1001"].group_name == "Fresh"
    with db.read() as tx:
        assert resolve_animal(tx, "8000F58000000065") == cows["1001"].id  # her ISO tag as hex
        assert resolve_animal(tx, "C0001001") == cows["1001"].id  # her Afimilk tag
        assert resolve_animal(tx, "982000000000199") == cows["1003"].id
        early = tx.get(SessionRow, "S-early")
        assert early is not None and early.animal_id == cows["1003"].id
        audit = tx.scalars(select(AuditEntry).where(AuditEntry.action == "herd_import")).one()
    assert audit.actor == "setup" and audit.after["added"] == 3


def test_a_second_import_updates_keeps_the_old_ear_tag_and_adds_other_tags(db):
    import_herd(db, herd_file(GOOD), grant=None)
    again = GOOD.replace("982 000000000101,C0001001,Fresh", "982000000000555,C0001001,Milking")
    report = import_herd(db, herd_file(again), grant=None)
    assert (report.added, report.updated, report.unchanged) == (0, 1, 2)
    daisy = animals(db)["1001"]
    assert daisy.rfid_tag == "982000000000555" and daisy.group_name == "Milking"
    # The old ear tag stays hers, as another tag: a reader may still see it.
    assert tags_of(db, "1001") == {"ASCII:C0001001", "982000000000101"}


def test_an_import_clashing_with_the_herd_is_refused_whole_naming_the_cow(db):
    import_herd(db, herd_file(GOOD), grant=None)
    clash = (
        "number,name,rfid_tag,other_tags\n"
        "2001,Nova,982000000000300,\n"
        "2002,Lily,,982000000000101\n"  # Daisy's tag
    )
    with pytest.raises(HerdFileError) as caught:
        import_herd(db, herd_file(clash), grant=None)
    assert "line 3, column 4 (other_tags): tag 982 000000000101 is already cow 1001 Daisy's" in str(
        caught.value
    )
    assert set(animals(db)) == {"1001", "1002", "1003"}  # nothing of it was imported


def test_export_then_import_into_a_new_database_gives_the_same_herd(db, tmp_path):
    from milkconsole.store import open_database

    import_herd(db, herd_file(GOOD), grant=None)
    out = io.StringIO()
    assert export_herd(db, out) == 3
    text = out.getvalue()
    assert text.splitlines()[0] == (
        "number,name,rfid_tag,other_tags,group,birth_date,lactation_number,last_calving_date"
    )
    other = open_database(tmp_path / "other.sqlite")
    try:
        import_herd(other, read_herd_csv(io.StringIO(text), "export.csv", today=TODAY), grant=None)
        with db.read() as a, other.read() as b:
            assert export_rows(a) == export_rows(b)
    finally:
        other.close()
    buf = io.StringIO()
    write_herd_csv([], buf)
    assert buf.getvalue().count("\n") == 1


def test_once_there_is_a_supervisor_an_import_needs_her_pin(db):
    store = UserStore(db)
    store.add("mary", "supervisor", "2468", by=None)
    from milkconsole.grants import AccessDenied

    with pytest.raises(AccessDenied):
        import_herd(db, herd_file(GOOD), grant=None)
    with pytest.raises(AccessDenied):
        import_herd(db, herd_file(GOOD), grant=Grant("tom", "technician"))
    report = import_herd(db, herd_file(GOOD), grant=Grant("mary", "supervisor"))
    assert report.added == 3
    with db.read() as tx:
        audit = tx.scalars(select(AuditEntry).where(AuditEntry.action == "herd_import")).one()
    assert (audit.actor, audit.role) == ("mary", "supervisor")


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "milkconsole", *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=ROOT,
        timeout=60,
    )


@pytest.mark.slow
def test_the_herd_command_imports_refuses_a_bad_file_with_status_2_and_exports(tmp_path):
    db = tmp_path / "c.sqlite"
    good = tmp_path / "herd.csv"
    good.write_text(GOOD.replace("2025-02-26", "2025-01-26"), encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text("number,rfid_tag\n7,not a tag\n", encoding="utf-8")
    proc = cli("herd", "import", str(bad), "--db", str(db))
    assert proc.returncode == 2
    assert f"{bad}: line 2, column 2 (rfid_tag): 'not a tag' is not a tag" in proc.stderr
    proc = cli("herd", "import", str(good), "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    assert "3 cows read; 3 added" in proc.stdout
    out = tmp_path / "out.csv"
    proc = cli("herd", "export", "--out", str(out), "--db", str(db))
    assert proc.returncode == 0 and "3 cows written" in proc.stdout
    assert "1001,Daisy,982000000000101,ASCII:C0001001,Fresh" in out.read_text()
    proc = cli(
        "users",
        "add",
        "--role",
        "supervisor",
        "mary",
        "--pin-stdin",
        "--db",
        str(db),
        stdin="2468\n2468\n",
    )
    assert proc.returncode == 0, proc.stderr
    proc = cli("herd", "import", str(good), "--db", str(db))
    assert proc.returncode == 4 and "--as SUPERVISOR" in proc.stderr
    proc = cli(
        "herd", "import", str(good), "--db", str(db), "--as", "mary", "--pin-stdin", stdin="2468\n"
    )
    assert proc.returncode == 0 and "3 unchanged" in proc.stdout


# -- merging with Odoo ----------------------------------------------------------------------------


def test_cows_imported_first_merge_with_odoos_by_number_and_tag_odoo_winning(
    sim, vault, db, caplog
):
    # Odoo: cow 1 (number '1') and cow 2, whose number differs from the file's but whose tag
    # is the one the file gives cow '20'.
    [one, two] = sim.seed_herd(2)
    sim.write("farm.animal", [one], {"herd_group": "Odoo group"})
    text = (
        "number,name,rfid_tag,other_tags,group,birth_date\n"
        "1,Local name,,C0000001,File group,2019-01-01\n"
        "20,Twenty,982000000000002,,Fresh,2020-02-02\n"
        "30,Only here,982000000000030,,,\n"
    )
    import_herd(db, herd_file(text), grant=None)
    settings = logged_in(sim, vault)
    client = connect(settings)
    try:
        with caplog.at_level(logging.WARNING):
            pull_animals(client, db, Contract(settings))
            # Touch both in Odoo: the next pull reads them again; the conflict is not re-logged.
            sim.write("farm.animal", [one, two], {"conductivity_baseline": 5.1})
            pull_animals(client, db, Contract(settings))
    finally:
        client.close()
    cows = animals(db)
    assert set(cows) == {"1", "2", "30"}  # no duplicate: '20' is Odoo's cow '2'
    assert cows["1"].odoo_id == one and cows["2"].odoo_id == two and cows["30"].odoo_id is None
    # Odoo wins where both have a value; a value only the file has is kept.
    assert cows["1"].name == "1" and cows["1"].group_name == "Odoo group"
    assert cows["1"].birth_date == date(2019, 1, 1)
    assert cows["2"].group_name == "Fresh" and cows["2"].rfid_tag == "982000000000002"
    conflicts = [r.getMessage() for r in caplog.records if "Odoo's is kept" in r.getMessage()]
    assert len([m for m in conflicts if "group_name" in m and "cow 1" in m]) == 1
    assert len([m for m in conflicts if "'Twenty'" in m]) == 1
    # Her other tag from the file goes to Odoo now that Odoo knows her.
    engine_for(db, settings).run_once()
    [tag] = sim.records("farm.animal.rfid", fields=["rfid_tag", "animal_id"])
    assert tag["rfid_tag"] == "ASCII:C0000001" and tag["animal_id"][0] == one
    with db.read() as tx:
        assert resolve_animal(tx, "C0000001") == cows["1"].id


def test_an_import_onto_cows_odoo_keeps_fills_gaps_and_reports_what_odoo_kept(sim, vault, db):
    [one] = sim.seed_herd(1)
    settings = logged_in(sim, vault)
    client = connect(settings)
    try:
        pull_animals(client, db, Contract(settings))
    finally:
        client.close()
    report = import_herd(
        db,
        herd_file("number,name,group,other_tags\n1,Bessie,Dry,C0000777\n"),
        grant=None,
    )
    cow = animals(db)["1"]
    assert cow.odoo_id == one and cow.name == "1" and cow.group_name == "Dry"
    assert report.conflicts == ("cow 1: name 'Bessie' in the file, '1' in Odoo (line 2)",)
    with db.read() as tx:
        queued = tx.scalar(
            select(func.count()).where(
                OutboxRow.model == "farm.animal.rfid", OutboxRow.record_key == "ASCII:C0000777"
            )
        )
    assert queued == 1
