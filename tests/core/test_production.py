"""Production figures read back from a real SQLite file written through the store's own rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from milkconsole.herd.directory import AnimalInfo, HerdDirectory
from milkconsole.meters.events import SessionSnapshot
from milkconsole.reports.dashboard import production_snapshot, tile_alerts
from milkconsole.store.db import Database, open_database
from milkconsole.store.directory import load_herd
from milkconsole.store.schema import AlertRow, Animal, AnimalTag
from milkconsole.store.sessions import new_session_row

NOW = datetime(2025, 3, 14, 7, 30, tzinfo=UTC)
DAISY_TAG = "982000123456789"


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(tmp_path / "production.sqlite")
    yield database
    database.close()


def add_animals(db: Database) -> dict[str, int]:
    with db.write() as tx:
        daisy = Animal(number="1234", name="Daisy", rfid_tag=DAISY_TAG, active=True)
        bella = Animal(number="77", name="Bella", rfid_tag="982000000000077", active=True)
        sold = Animal(number="99", name="Gone", rfid_tag="982000000000099", active=False)
        tx.add_all([daisy, bella, sold])
        tx.flush()
        tx.add(AnimalTag(animal_id=bella.id, rfid_tag="982000000000555"))
        return {"daisy": daisy.id, "bella": bella.id, "sold": sold.id}


def add_session(
    db: Database,
    key: str,
    started: datetime,
    *,
    minutes: float = 7,
    yield_l: float = 10.0,
    state: str = "completed",
    animal_id: int | None = None,
    grade: str | None = None,
    abnormal: bool = False,
    stall: int = 1,
) -> None:
    snap = SessionSnapshot(
        key=key,
        meter_id=f"M{stall:02d}",
        stall=stall,
        started_at=started,
        state=state,  # type: ignore[arg-type]
        ended_at=None if state == "in_progress" else started + timedelta(minutes=minutes),
        duration_s=minutes * 60,
        yield_l=yield_l,
    )
    with db.write() as tx:
        row = new_session_row(snap, started)
        row.animal_id = animal_id
        row.id_source = "rfid" if animal_id else None
        row.quality_grade = grade
        row.abnormal = abnormal
        tx.add(row)


def test_todays_totals_count_only_sessions_finished_today(db):
    ids = add_animals(db)
    add_session(db, "yesterday", NOW - timedelta(days=1), yield_l=50.0, animal_id=ids["daisy"])
    add_session(
        db, "a", NOW.replace(hour=5, minute=0), yield_l=12.0, animal_id=ids["daisy"], grade="A"
    )
    add_session(db, "b", NOW.replace(hour=5, minute=10), yield_l=8.0, grade="B", abnormal=True)
    add_session(
        db, "c", NOW.replace(hour=6, minute=0), yield_l=4.0, state="incomplete", grade="reject"
    )
    add_session(db, "open", NOW - timedelta(minutes=3), yield_l=2.5, state="in_progress")
    snap = production_snapshot(db, now=NOW, zone=UTC)
    assert snap.total_yield_l == pytest.approx(24.0)
    assert snap.finished_sessions == 3
    assert snap.average_yield_l == pytest.approx(8.0)
    assert snap.unidentified_sessions == 2
    assert dict(snap.quality) == {"A": 1, "B": 1, "C": 0, "reject": 1}
    assert [(b.hour_start.hour, b.yield_l, b.sessions) for b in snap.hourly] == [
        (5, 20.0, 2),
        (6, 4.0, 1),
    ]
    assert [r.key for r in snap.open_sessions] == ["open"]
    assert [r.key for r in snap.recent] == ["c", "b", "a"]
    assert snap.recent[1].abnormal and snap.recent[2].cow_label == "1234 Daisy"


def test_hours_and_today_follow_the_farms_clock(db):
    # 23:30 UTC on the 13th is 01:30 on the 14th at UTC+2: it belongs to "today" there.
    zone = timezone(timedelta(hours=2))
    add_session(db, "night", datetime(2025, 3, 13, 23, 30, tzinfo=UTC), yield_l=9.0)
    snap = production_snapshot(db, now=NOW, zone=zone)
    assert snap.total_yield_l == pytest.approx(9.0)
    assert snap.hourly[0].hour_start.hour == 1


def test_milk_and_cows_per_hour_describe_the_current_milking_only(db):
    # An evening milking yesterday and this morning's, two hours apart in starts at most.
    add_session(db, "evening", NOW - timedelta(hours=12), yield_l=30.0)
    start = NOW - timedelta(hours=1)
    for i in range(6):
        add_session(db, f"m{i}", start + timedelta(minutes=10 * i), yield_l=10.0, stall=i + 1)
    snap = production_snapshot(db, now=NOW, zone=UTC)
    assert snap.milking_started_at == start
    assert snap.milking_sessions == 6
    assert snap.milk_per_hour_l == pytest.approx(60.0)
    assert snap.cows_per_hour == pytest.approx(6.0)


def test_active_alerts_exclude_resolved_ones_and_name_the_cow(db):
    ids = add_animals(db)
    add_session(db, "s1", NOW - timedelta(minutes=20), animal_id=ids["daisy"])
    with db.write() as tx:
        tx.add_all(
            [
                AlertRow(
                    key="a1",
                    kind="mastitis",
                    severity="warning",
                    state="open",
                    animal_id=ids["daisy"],
                    session_key="s1",
                    message="EC up 25 %",
                    raised_at=NOW - timedelta(minutes=5),
                ),
                AlertRow(
                    key="a2",
                    kind="blood",
                    severity="critical",
                    state="resolved",
                    message="old",
                    raised_at=NOW - timedelta(hours=3),
                ),
            ]
        )
    snap = production_snapshot(db, now=NOW, zone=UTC)
    assert [(a.kind, a.cow_label) for a in snap.alerts] == [("mastitis", "1234 Daisy")]
    assert snap.session_alerts() == {"s1": ("mastitis",)}


def test_herd_finds_cows_by_any_tag_form_and_by_number(db):
    ids = add_animals(db)
    herd = load_herd(db)

    def number(found: AnimalInfo | None) -> str | None:
        return None if found is None else found.number

    assert number(herd.find_tag(DAISY_TAG)) == "1234"
    assert number(herd.find_tag(" 982 000123456789 ")) == "1234"
    assert number(herd.find_tag("982000000000555")) == "77"  # Bella's second tag
    assert ids["bella"] == herd.by_tag["982000000000555"]
    assert herd.find_tag("982000000000099") is None  # sold: not in the active herd
    assert herd.find_tag(None) is None
    assert number(herd.find_number("77")) == "77"
    assert [a.number for a in herd.search("")] == ["77", "1234"]
    assert [a.number for a in herd.search("bel")] == ["77"]
    assert [a.number for a in herd.search("12")] == ["1234"]


def test_expected_yield_is_the_median_of_her_last_completed_milkings(db):
    ids = add_animals(db)
    for i, y in enumerate([10.0, 30.0, 12.0, 11.0]):
        add_session(db, f"d{i}", NOW - timedelta(days=i + 1), yield_l=y, animal_id=ids["daisy"])
    add_session(
        db,
        "kick",
        NOW - timedelta(hours=2),
        yield_l=1.0,
        state="incomplete",
        animal_id=ids["daisy"],
    )
    herd = load_herd(db, history_sessions=3)
    # The three latest completed: 10, 30, 12 -> 12; the incomplete one does not count.
    assert herd.expected_for(ids["daisy"]) == pytest.approx(12.0)
    assert herd.expected_for(ids["bella"]) is None


def test_tile_alerts_name_blood_high_conductivity_low_yield_and_stored_alerts():
    live = SessionSnapshot(key="k", meter_id="M1", stall=1, started_at=NOW)
    assert tile_alerts(live, 20.0) == ()
    assert tile_alerts(replace(live, blood=True, conductivity_max_ms_cm=7.0), None) == (
        "BLOOD",
        "HIGH EC",
    )
    done = replace(live, state="completed", yield_l=10.0)
    assert tile_alerts(done, 20.0) == ("LOW YIELD",)
    assert tile_alerts(done, 12.0) == ()
    assert tile_alerts(done, None, ["mastitis", "equipment"]) == ("HIGH EC", "EQUIPMENT")


def test_empty_database_gives_empty_figures(db):
    snap = production_snapshot(db, now=NOW, zone=UTC)
    assert (snap.total_yield_l, snap.finished_sessions, snap.average_yield_l) == (0, 0, None)
    assert snap.milk_per_hour_l is None and snap.hourly == () and snap.alerts == ()
    assert HerdDirectory().search("1") == []
    assert AnimalInfo(1, "5").label == "5"
