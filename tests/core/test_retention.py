"""Retention on a real store: sent outbox rows go after their time (both channels), unsent rows
never; what waited on a pruned record goes; nothing pruned looks unqueued; corrections of records
whose rows were pruned reach the simulated Odoo without a duplicate; old curves are thinned."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from milkconsole.config import load_config
from milkconsole.errors import ConfigError
from milkconsole.meters.events import FlowSample, SessionCompleted, SessionSnapshot
from milkconsole.store import Outbox, Recorder, SessionStore
from milkconsole.store.db import Database
from milkconsole.store.outbound import (
    METER,
    PRODUCTION,
    SESSION,
    queue_alert,
    queue_meter,
    queue_meter_calibrated,
    queue_unqueued,
    set_mqtt,
)
from milkconsole.store.retention import (
    RetentionPolicy,
    apply_retention,
    prune_sent_outbox,
    thin_old_curves,
)
from milkconsole.store.schema import (
    AlertRow,
    Animal,
    Calibration,
    FlowCurveRow,
    Meter,
    OutboxRow,
)
from tests.helpers.odoo_fixtures import (
    FIRST_TAG,
    METERS,
    T0,
    add_meters,
    by_key,
    engine_for,
    logged_in,
    raise_alerts,
    record_sessions,
    registration,
)

NOW = T0 + timedelta(days=90)


def rows(db: Database, **where: object) -> list[OutboxRow]:
    with db.read() as tx:
        query = select(OutboxRow).order_by(OutboxRow.id)
        for name, value in where.items():
            query = query.where(getattr(OutboxRow, name) == value)
        return list(tx.scalars(query))


def send_all(db: Database, at: datetime, channel: str = "odoo") -> None:
    """What the sync (or the publisher) does: every pending row of the channel sent at `at`."""
    box = Outbox(db, channel)  # type: ignore[arg-type]
    ids = [r.id for r in rows(db, channel=channel, state="pending")]
    box.mark_sent({i: 5000 + i for i in ids}, now=at)


def test_sent_rows_of_both_channels_go_after_their_time_and_unsent_rows_never(db: Database):
    with db.write() as tx:
        set_mqtt(tx, "F1")
    add_meters(db)
    old = record_sessions(db, 3, 1)  # queued for Odoo and MQTT
    send_all(db, T0, "odoo")
    send_all(db, T0, "mqtt")
    recent = record_sessions(db, 3, 1, start=NOW - timedelta(days=2), prefix="F2")
    send_all(db, NOW - timedelta(days=2), "odoo")
    waiting = record_sessions(db, 3, 1, start=NOW, prefix="F3")  # not sent yet (both channels)
    box = Outbox(db)
    [dead, flying] = box.claim(SESSION, 2, NOW)
    box.mark_dead(dead.id, "Odoo refused it")
    # A pending row from long ago (Odoo away for months) is kept however old it is.
    with db.write() as tx:
        tx.execute(update(OutboxRow).values(created_at=T0 - timedelta(days=400)))

    pruned = prune_sent_outbox(db, NOW - timedelta(days=30), chunk=4)  # several transactions

    left = rows(db)
    # The old sessions' creates and MQTT events, and the meters' registrations (sent at T0).
    assert pruned == len(old) + len(old) + len(METERS)
    assert {r.record_key for r in left if r.model == SESSION} == set(recent + waiting)
    assert all(r.state != "sent" or r.sent_at >= NOW - timedelta(days=30) for r in left)
    states = {r.id: r.state for r in left}
    assert states[dead.id] == "dead" and states[flying.id] == "in_flight"
    assert {r.channel for r in left if r.state == "pending"} == {"odoo", "mqtt"}
    # The records themselves stay: only their way out went.
    assert SessionStore(db).count() == len(old) + len(recent) + len(waiting)


def herd(db: Database, cows: int) -> None:
    with db.write() as tx:
        tx.add_all(
            Animal(number=str(100 + c), rfid_tag=str(FIRST_TAG + c), active=True)
            for c in range(cows)
        )


def test_a_row_waiting_after_a_pruned_record_is_not_held_up(db: Database):
    herd(db, 1)
    add_meters(db)
    [key] = record_sessions(db, 1, 1)
    box = Outbox(db)
    # Each waits for the one before it: meter registration, session, production.
    assert {i.model for i in box.claim(None, 100, NOW)} == {METER}
    assert box.claim(None, 100, NOW) == []
    box.mark_sent({r.id: 1 for r in rows(db, state="in_flight")}, now=T0)
    [session] = box.claim(None, 100, NOW)
    assert session.model == SESSION
    box.mark_sent({session.id: 7}, now=T0)
    # Odoo did not know the cow yet: the production record waits, its session is sent.
    [production] = box.claim(None, 100, NOW)
    assert (production.model, production.record_key) == (PRODUCTION, key)
    box.defer(production.id, "cow not in Odoo yet", NOW)
    # Retention prunes the session's and meters' rows meanwhile; the production record is not
    # held up by a record whose rows are gone.
    assert prune_sent_outbox(db, NOW) == len(METERS) + 1
    [again] = box.claim(None, 100, NOW)
    assert again.id == production.id


def test_what_was_pruned_never_looks_unqueued(db: Database):
    add_meters(db)
    record_sessions(db, 4, 2)
    raise_alerts(db, 3)
    with db.write() as tx:
        assert queue_unqueued(tx) == 0  # the first start with this module: nothing missing
    send_all(db, T0)
    prune_sent_outbox(db, NOW)
    assert rows(db) == []
    with db.write() as tx:
        assert queue_unqueued(tx) == 0
    add_meters(db)  # a console start with the same meters: registered, nothing to queue
    assert rows(db) == []


def test_a_changed_meter_whose_registration_was_pruned_is_updated_not_created_again(sim, vault, db):
    settings = logged_in(sim, vault)
    engine = engine_for(db, settings)
    add_meters(db)
    engine.run_once()
    prune_sent_outbox(db, datetime.now(UTC) + timedelta(days=1))
    assert rows(db) == []
    moved = {**registration("M03", 3), "host": "10.0.0.9"}
    with db.write() as tx:
        meter = tx.get(Meter, "M03")
        assert meter is not None
        assert queue_meter(tx, meter, moved)
        meter.calibration_factor = 1.0375
        tx.add(
            Calibration(
                meter_id="M03",
                performed_at=datetime.now(UTC),
                performed_by="tech",
                method="reference_jar",
                readings=[10.0],
                references=[10.4],
                old_factor=1.0,
                new_factor=1.0375,
                result="pass",
            )
        )
        queue_meter_calibrated(tx, meter)
    engine.run_once()
    devices = by_key(sim, "iot.device", "device_id", [])
    assert len(devices) == len(METERS)
    meters = {
        m["device_id"][0]: m
        for m in sim.records("iot.milk_meter", fields=["device_id", "flow_calibration_factor"])
    }
    assert meters[devices["M03"]["id"]]["flow_calibration_factor"] == pytest.approx(1.0375)
    assert Outbox(db).counts()["dead"] == 0


def test_corrections_of_pruned_sessions_and_alerts_reach_odoo_once(sim, vault, db):
    [_, cow2] = sim.seed_herd(2)
    settings = logged_in(sim, vault)
    engine = engine_for(db, settings)
    engine.run_once()
    unknown, known = record_sessions(db, 2, 1, unknown_every=2)[::-1]
    [alert_key] = raise_alerts(db, 1)
    engine.run_once()
    assert sim.count("farm.milk.production") == 1  # the unknown cow's milk has nobody yet
    apply_retention(db, RetentionPolicy(sent_outbox_days=1), datetime.now(UTC) + timedelta(days=2))
    assert rows(db) == []

    with db.read() as tx:
        local_cow2 = tx.scalar(select(Animal.id).where(Animal.odoo_id == cow2))
    SessionStore(db).set_manual_animal(unknown, local_cow2, "mary")
    SessionStore(db).set_manual_animal(known, local_cow2, "mary")  # her production was sent
    SessionStore(db).mark_reattached(known, "mary")
    with db.write() as tx:
        alert = tx.scalars(select(AlertRow).where(AlertRow.key == alert_key)).one()
        alert.state, alert.resolved_by = "resolved", "supervisor"
        alert.resolved_at = datetime.now(UTC)
        queue_alert(tx, alert)
    # The first pass finds the records by key (not created again); the writes behind them go
    # in the next one.
    first = engine.run_once()
    engine.run_once()
    assert Outbox(db).counts() == {"pending": 0, "in_flight": 0, "sent": 10, "dead": 0}
    assert first.already_in_odoo == 4 and first.total_created == 1  # the new production
    sessions = by_key(sim, "milk.session", "name", ["animal_id"])
    assert set(sessions) == {unknown, known}
    assert sessions[unknown]["animal_id"][0] == cow2
    productions = by_key(sim, "farm.milk.production", "source_reference", ["animal_id"])
    assert set(productions) == {unknown, known}
    assert productions[unknown]["animal_id"][0] == cow2
    assert productions[known]["animal_id"][0] == cow2  # the sent one, found and written
    [odoo_alert] = by_key(sim, "iot.device.alert", "reference", ["state", "resolved_by"]).values()
    assert (odoo_alert["state"], odoo_alert["resolved_by"]) == ("resolved", "supervisor")


def completed(key: str, n: int, started: datetime) -> SessionCompleted:
    samples = tuple(
        FlowSample(2.0 * i, round(0.06 * i, 2), round(1.8 + (i % 7) * 0.1, 2), 5.0 + i % 3 * 0.1)
        for i in range(n)
    )
    snap = SessionSnapshot(
        key=key,
        meter_id="M01",
        stall=1,
        started_at=started,
        state="completed",
        ended_at=started + timedelta(seconds=2.0 * n),
        duration_s=2.0 * n,
        yield_l=samples[-1].yield_l,
    )
    return SessionCompleted(snap, samples)


def test_old_curves_are_thinned_once_and_recent_ones_kept_whole(db: Database):
    rec = Recorder(db, farm_code="F1")
    rec.start()
    for i in range(6):
        rec.submit(completed(f"old-{i}", 180, T0 + timedelta(hours=i)))
    rec.submit(completed("new", 180, NOW - timedelta(days=1)))
    assert rec.stop(10.0)
    store = SessionStore(db)
    assert len(store.samples("old-0")) == 180

    assert thin_old_curves(db, NOW - timedelta(days=30), 10.0, chunk=4) == 6
    thin = store.samples("old-3")
    assert 35 <= len(thin) <= 37 and thin[-1].elapsed_s == 358.0
    assert len(store.samples("new")) == 180
    with db.read() as tx:
        marks = dict(tx.execute(select(FlowCurveRow.session_key, FlowCurveRow.interval_s)).all())
        assert (
            tx.scalar(
                select(func.max(FlowCurveRow.samples)).where(FlowCurveRow.session_key != "new")
            )
            <= 37
        )
    assert marks["new"] is None and marks["old-0"] == 10.0
    assert thin_old_curves(db, NOW - timedelta(days=30), 10.0) == 0  # done once


def write_config(tmp_path: Path, section: str) -> Path:
    path = tmp_path / "parlour.toml"
    path.write_text(
        '[parlour]\nname = "P"\nfarm_code = "F1"\n\n'
        '[[bus]]\nid = "b1"\ntransport = "tcp"\nhost = "127.0.0.1"\n\n'
        '[[meter]]\nid = "M01"\nbus = "b1"\nunit = 1\nprofile = "gea"\nstall = 1\n\n' + section,
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("[retention]\nkeep_forever = true\n", r"retention.keep_forever: unknown key"),
        ("[retention]\nsent_outbox_days = 0\n", r"retention.sent_outbox_days: must be a number"),
        (
            '[retention]\nthin_curve_interval_s = "10"\n',
            r"retention.thin_curve_interval_s: must be a number",
        ),
    ],
)
def test_a_bad_retention_section_is_refused_naming_the_key(tmp_path, section, message):
    with pytest.raises(ConfigError, match=r"parlour.toml: " + message):
        load_config(write_config(tmp_path, section))


def test_the_retention_section_is_read_with_its_defaults(tmp_path):
    config = load_config(write_config(tmp_path, "[retention]\nthin_curves_after_days = 365\n"))
    policy = RetentionPolicy.from_table(config.extra["retention"], config.source)
    assert policy == RetentionPolicy(30.0, 365.0, 10.0)
    assert json.dumps(RetentionPolicy.from_table(None, "x").sent_outbox_days) == "30.0"
