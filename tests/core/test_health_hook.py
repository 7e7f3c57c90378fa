"""The health hook and identity on a real SQLite file, driven through the real recorder."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from milkconsole.config import load_config
from milkconsole.errors import ConfigError
from milkconsole.health.hook import HealthHook
from milkconsole.health.mastitis import MilkingSignals, RaisedAlert
from milkconsole.meters.events import SessionCompleted, SessionSnapshot
from milkconsole.meters.rfid import iso_to_fdx_b, to_hex16
from milkconsole.store import Recorder, SessionStore, open_database
from milkconsole.store.db import Database
from milkconsole.store.outbound import ALERT as ALERT_MODEL
from milkconsole.store.schema import AlertRow, Animal, AnimalTag, HealthEvent, OutboxRow, SessionRow
from milkconsole.store.tags import associate_pending, identify, resolve_animal
from tests.core.test_mastitis import T0, herd


def tag_of(cow: str) -> str:
    """The ISO tag of a test cow, as the DeLaval meter sends it (16 hex digits)."""
    return to_hex16(iso_to_fdx_b(982, 1000 + int(cow[1:])))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "milk.sqlite")
    yield database
    database.engine.dispose()


def add_animals(db: Database, cows: Sequence[str], group: str | None = "high") -> dict[str, int]:
    ids = {}
    with db.write() as tx:
        for cow in cows:
            # Odoo keeps the tag as people write it: the ISO number with a space.
            animal = Animal(
                number=cow, name=f"cow {cow}", rfid_tag=f"982 {1000 + int(cow[1:]):012d}"
            )
            animal.group_name = group
            tx.add(animal)
            tx.flush()
            ids[cow] = animal.id
    return ids


def snapshot(r: MilkingSignals, key: str, **changes: object) -> SessionSnapshot:
    snap = SessionSnapshot(
        key=key,
        meter_id="m1",
        stall=1,
        started_at=r.start,
        state="completed",
        rfid=tag_of(r.cow_id),
        ended_at=r.end,
        duration_s=(r.end - r.start).total_seconds(),
        yield_l=r.yield_l,
        conductivity_mean_ms_cm=r.conductivity_ms_cm,
        ec_lf_ms_cm=r.quarters[0],
        ec_rf_ms_cm=r.quarters[1],
        ec_lr_ms_cm=r.quarters[2],
        ec_rr_ms_cm=r.quarters[3],
        temperature_c=r.temperature_c,
        blood=r.blood,
    )
    return replace(snap, **changes)  # type: ignore[arg-type]


def key_of(r: MilkingSignals) -> str:
    return f"F1-{r.cow_id}-{r.start:%Y%m%d%H%M}"


def record_all(db: Database, hook: HealthHook, records: Sequence[MilkingSignals]) -> None:
    recorder = Recorder(db, farm_code="F1")
    recorder.add_completion_hook(hook)
    recorder.start()
    for r in records:
        recorder.submit(SessionCompleted(snapshot(r, key_of(r))))
    assert recorder.stop(60.0)


def rows(db: Database, model: type, *where: Any) -> list:
    with db.read() as tx:
        return list(tx.scalars(select(model).where(*where)))


def sick_cow(i: int, cow: str, q: int) -> float:
    # C03's left rear quarter: +25 % over two days, then clinical for four days.
    if cow != "C03" or q != 2:
        return 0.0
    return 0.25 * min(1.0, max(0.0, (i - 26) / 4)) + (0.5 if 30 < i < 38 else 0.0)


def test_a_sick_cow_gets_one_open_mastitis_alert_and_health_events(db: Database) -> None:
    records = herd(cows=10, milkings=44, quarter_rise=sick_cow)
    ids = add_animals(db, sorted({r.cow_id for r in records}))
    record_all(db, HealthHook(), records)

    alerts = rows(db, AlertRow, AlertRow.kind == "mastitis")
    assert [a.animal_id for a in alerts] == [ids["C03"]]
    (alert,) = alerts
    assert alert.state == "open" and alert.condition == "quarter LR"
    assert alert.session_key is not None and alert.key == f"{alert.session_key}:mastitis"
    assert alert.rfid == tag_of("C03") and alert.meter_id == "m1"
    onset = T0 + timedelta(days=15, minutes=9)
    assert alert.raised_at <= onset + timedelta(hours=12)
    events = rows(db, HealthEvent, HealthEvent.kind == "mastitis_indicator")
    assert events and {e.animal_id for e in events} == {ids["C03"]}
    assert all(e.session_key is not None for e in events)
    # The milkings that alerted are abnormal and say why.
    flagged = rows(db, SessionRow, SessionRow.abnormal.is_(True))
    assert {m.key for m in flagged} == {e.session_key for e in events}
    assert all("mastitis_suspected" in m.flags for m in flagged)


def test_grades_and_flags_go_out_with_the_session(db: Database) -> None:
    records = herd(cows=3, milkings=20)
    add_animals(db, ["C00", "C01", "C02"])
    last = records[-1]
    graded = replace(last, yield_l=last.yield_l * 0.5)
    recorder = Recorder(db, farm_code="F1")
    recorder.add_completion_hook(HealthHook())
    recorder.start()
    for r in records[:-1]:
        recorder.submit(SessionCompleted(snapshot(r, key_of(r))))
    recorder.submit(
        SessionCompleted(
            snapshot(graded, key_of(last), fat_pct=3.9, protein_pct=3.2, scc_cells_ml=120_000)
        )
    )
    assert recorder.stop(30.0)
    record = SessionStore(db).record(key_of(last))
    assert record is not None
    assert record.quality_grade == "A"
    assert record.abnormal and "yield_low" in record.flags
    with db.read() as tx:
        payload = json.loads(
            tx.scalars(
                select(OutboxRow.payload).where(
                    OutboxRow.record_key == key_of(last), OutboxRow.model == "milk.session"
                )
            ).one()
        )
    assert payload["quality_grade"] == "A" and payload["abnormal"] is True
    assert "low" in payload["abnormality"]  # Odoo's abnormality_reason, in words
    others = [SessionStore(db).record(key_of(r)) for r in records[:-1]]
    assert all(o is not None and o.quality_grade is None for o in others)  # no fat: not graded


def test_blood_rejects_the_milk_and_records_a_health_event(db: Database) -> None:
    (r, *_) = herd(cows=1, milkings=1)
    add_animals(db, ["C00"])
    recorder = Recorder(db, farm_code="F1")
    recorder.add_completion_hook(HealthHook())
    recorder.start()
    recorder.submit(SessionCompleted(snapshot(r, "F1-blood", blood=True)))
    assert recorder.stop(10.0)
    record = SessionStore(db).record("F1-blood")
    assert record is not None and record.quality_grade == "reject" and "blood" in record.flags
    (event,) = rows(db, HealthEvent)
    assert event.kind == "blood_in_milk" and event.key == "F1-blood:blood_in_milk"


def test_a_tag_in_any_written_form_finds_its_cow_primary_or_alternative(db: Database) -> None:
    ids = add_animals(db, ["C01", "C02"])
    with db.write() as tx:
        tx.add(AnimalTag(animal_id=ids["C02"], rfid_tag="ASCII:00012345"))
    with db.read() as tx:
        assert resolve_animal(tx, tag_of("C01")) == ids["C01"]
        little_endian = to_hex16(iso_to_fdx_b(982, 1001), "little")
        assert resolve_animal(tx, little_endian) == ids["C01"]
        assert resolve_animal(tx, "982001000000001".replace("982001", "982000")) is None
        match = identify(tx, "00012345", form="ascii")
        assert match is not None and match.animal_id == ids["C02"] and not match.primary
        assert resolve_animal(tx, "zz top!") is None  # malformed: not identified
        assert resolve_animal(tx, None) is None


def test_an_unknown_tag_is_kept_then_associated_before_it_syncs(db: Database) -> None:
    (r, *_) = herd(cows=1, milkings=1)
    recorder = Recorder(db, farm_code="F1")
    recorder.add_completion_hook(HealthHook())
    recorder.start()
    recorder.submit(SessionCompleted(snapshot(r, "F1-new")))
    assert recorder.stop(10.0)
    record = SessionStore(db).record("F1-new")
    assert record is not None and record.animal_id is None and record.rfid == tag_of("C00")

    ids = add_animals(db, ["C00"])  # the cow was added in Odoo and the herd list pulled
    with db.write() as tx:
        assert associate_pending(tx) == ["F1-new"]
    record = SessionStore(db).record("F1-new")
    assert record is not None and record.animal_id == ids["C00"] and record.id_source == "rfid"
    with db.read() as tx:
        queued = {
            r.model: r
            for r in tx.scalars(select(OutboxRow).where(OutboxRow.record_key == "F1-new"))
        }
        outbox = queued["milk.session"]
        assert outbox.state == "pending" and outbox.operation == "create"
        payload = json.loads(outbox.payload)
        # Now that the cow is known, her production record is queued behind the session.
        production = queued["farm.milk.production"]
        assert (production.after_model, production.after_key) == ("milk.session", "F1-new")
    assert payload["animal_id"] == ids["C00"] and payload["animal_number"] == "C00"
    assert payload["id_source"] == "rfid"
    with db.write() as tx:
        assert associate_pending(tx) == []


def test_a_manual_identity_wins_over_a_tag_that_matches_later(db: Database) -> None:
    (r, *_) = herd(cows=1, milkings=1)
    ids = add_animals(db, ["C07"])
    recorder = Recorder(db, farm_code="F1")
    recorder.start()
    recorder.submit(SessionCompleted(snapshot(r, "F1-typed", rfid=tag_of("C99"))))
    assert recorder.stop(10.0)
    SessionStore(db).set_manual_animal("F1-typed", ids["C07"], "ann")
    add_animals(db, ["C00"])
    with db.write() as tx:
        session = tx.get(SessionRow, "F1-typed")
        assert session is not None
        session.rfid = tag_of("C00")  # the tag now names another cow ...
        assert associate_pending(tx) == []  # ... but the operator said C07
    record = SessionStore(db).record("F1-typed")
    assert record is not None and record.animal_id == ids["C07"] and record.id_source == "manual"


def test_a_milking_that_fits_another_cow_far_better_is_flagged_as_a_swap(db: Database) -> None:
    # C00 gives ~9 L at 05:00, C05 ~20 L at 05:15; on the last morning C05 wears C00's tag.
    records = herd(cows=6, milkings=20, seed=3)
    ids = add_animals(db, sorted({r.cow_id for r in records}))
    scaled = [
        replace(r, yield_l=round(r.yield_l * (0.6 if r.cow_id == "C00" else 1.4), 2))
        if r.cow_id in ("C00", "C05")
        else r
        for r in records
    ]
    history = [r for r in scaled if r.start < T0 + timedelta(days=9)]
    recorder = Recorder(db, farm_code="F1")
    hook = HealthHook()
    recorder.add_completion_hook(hook)
    recorder.start()
    for r in history:
        recorder.submit(SessionCompleted(snapshot(r, key_of(r))))
    morning = [
        r for r in scaled if T0 + timedelta(days=9) <= r.start < T0 + timedelta(days=9, hours=6)
    ]
    c05 = next(r for r in morning if r.cow_id == "C05")
    for r in morning:
        if r.cow_id in ("C00", "C05"):
            continue
        recorder.submit(SessionCompleted(snapshot(r, key_of(r))))
    recorder.submit(SessionCompleted(snapshot(c05, "F1-swapped", rfid=tag_of("C00"))))
    assert recorder.stop(30.0)
    (alert,) = rows(db, AlertRow, AlertRow.kind == "identity")
    assert alert.condition == "cow_swap" and alert.session_key == "F1-swapped"
    assert alert.animal_id == ids["C00"] and "cow C05" in alert.message
    record = SessionStore(db).record("F1-swapped")
    assert record is not None and "cow_swap_suspected" in record.flags
    assert (
        rows(db, AlertRow, AlertRow.kind == "identity", AlertRow.session_key != "F1-swapped") == []
    )


def test_a_retried_completion_keeps_its_alert_exactly_once(db: Database) -> None:
    records = herd(cows=10, milkings=44, quarter_rise=sick_cow)
    add_animals(db, sorted({r.cow_id for r in records}))
    failures: list[str] = []

    def flaky(tx: Session, snap: SessionSnapshot) -> None:
        # The first time a session raises an alert, the transaction fails after the hook ran.
        raised = tx.scalar(select(AlertRow.id).where(AlertRow.session_key == snap.key))
        if raised is not None and snap.key not in failures:
            failures.append(snap.key)
            raise RuntimeError("disk full")

    recorder = Recorder(db, farm_code="F1")
    recorder.add_completion_hook(HealthHook())
    recorder.add_completion_hook(flaky)
    recorder.start()
    for r in records:
        recorder.submit(SessionCompleted(snapshot(r, key_of(r))))
    assert recorder.flush(60.0)
    assert recorder.stop(10.0)
    assert failures, "the alerting session was retried"
    alerts = rows(db, AlertRow, AlertRow.kind == "mastitis")
    assert [a.session_key for a in alerts] == failures[:1]


def test_an_escalation_raises_the_open_alert_and_amends_what_odoo_gets(db: Database) -> None:
    records = herd(cows=10, milkings=44, quarter_rise=sick_cow)
    ids = add_animals(db, sorted({r.cow_id for r in records}))
    # Where the warning and its escalation fall (the detector alone, same milkings).
    detector = HealthHook().detector
    found = [a for r in records for a in detector.observe(replace(r, cow_id=str(ids[r.cow_id])))]
    warning, escalation = found[0], next(a for a in found if a.escalation)
    assert warning.severity == "warning" and escalation.severity == "critical"

    record_all(db, HealthHook(), [r for r in records if r.start <= warning.start_time])
    (alert,) = rows(db, AlertRow, AlertRow.kind == "mastitis")
    assert alert.severity == "warning"  # queued for Odoo with it, in the same transaction
    hook = HealthHook.from_database(db)
    record_all(db, hook, [r for r in records if r.start > warning.start_time])

    (alert,) = rows(db, AlertRow, AlertRow.kind == "mastitis")
    assert alert.severity == "critical" and alert.message.startswith("escalated")
    with db.read() as tx:
        (queued,) = tx.scalars(select(OutboxRow).where(OutboxRow.model == ALERT_MODEL))
    assert json.loads(queued.payload)["severity"] == "critical"


def test_a_hook_rebuilt_from_the_database_judges_the_next_milkings_the_same(db: Database) -> None:
    records = herd(cows=10, milkings=44, quarter_rise=sick_cow)
    ids = add_animals(db, sorted({r.cow_id for r in records}))
    cut = T0 + timedelta(days=14, hours=12)
    watching = HealthHook()
    record_all(db, watching, [r for r in records if r.start < cut])

    rebuilt = HealthHook.from_database(db)
    assert rebuilt.detector.state_of(str(ids["C03"])) is not None
    later = [replace(r, cow_id=str(ids[r.cow_id])) for r in records if r.start >= cut]

    def decisions(alerts: list[RaisedAlert]) -> list[tuple[str, object, str, bool]]:
        # The same alerts at the same milkings; the sd figures in the reason text may differ in
        # the second decimal (herd effects learnt over a shorter window).
        return [(a.cow_id, a.start_time, a.severity, a.escalation) for a in alerts]

    expected = [decisions(watching.detector.observe(r)) for r in later]
    assert [decisions(rebuilt.detector.observe(r)) for r in later] == expected
    assert any(expected), "the sick cow alerts after the cut"


def test_the_parlour_config_sets_grade_rules_and_detector_settings(
    db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "parlour.toml"
    base = """
[parlour]
name = "Test"
farm_code = "T1"

[[bus]]
id = "rs485"
transport = "tcp"
host = "127.0.0.1"
port = 5020

[[meter]]
id = "m1"
bus = "rs485"
unit = 1
profile = "delaval-mm27bc"
stall = 1

[health.grades]
a_fat_pct = 4.0

[health.mastitis]
h_warning = 4.5
baseline_days = 7
"""
    path.write_text(base, encoding="utf-8")
    hook = HealthHook.from_database(db, load_config(path))
    assert hook.rules.a_fat_pct == 4.0
    assert hook.detector.params.h_warning == 4.5 and hook.detector.params.baseline_days == 7.0
    path.write_text(base.replace("h_warning = 4.5", "h_warn = 4.5"), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        HealthHook.from_database(db, load_config(path))
    assert err.value.key == "health.mastitis.h_warn" and err.value.source == str(path)
    path.write_text(base.replace("h_warning = 4.5", "h_critical = 1.0"), encoding="utf-8")
    with pytest.raises(ConfigError, match="h_critical"):
        HealthHook.from_database(db, load_config(path))
