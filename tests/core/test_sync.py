"""The Odoo sync against the Odoo simulator over real HTTP, on a real SQLite store.

The outbox is filled the way the console fills it (the store's own session rows, payloads and
`enqueue`, or the Recorder itself); the simulator plays the farm's Odoo, including its faults.
The OS keyring is replaced through keyring's documented backend mechanism (`set_keyring`) by a
small in-memory backend, since a test machine has no keyring.
"""

from __future__ import annotations

import io
import logging
import ssl
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import keyring
import keyring.backends.fail
import pytest
from sqlalchemy import select

from milkconsole.errors import ConfigError
from milkconsole.meters.events import SessionCompleted, SessionSnapshot
from milkconsole.store import Outbox, Recorder, SessionStore
from milkconsole.store.outbound import (
    queue_alert,
)
from milkconsole.store.schema import AlertRow, Animal, Meter, SessionRow
from milkconsole.store.sessions import resolve_animal
from milkconsole.sync import secrets
from milkconsole.sync.animals import pull_animals
from milkconsole.sync.cli import main as sync_main
from milkconsole.sync.client import (
    OdooNotConfigured,
    OdooUnavailable,
)
from milkconsole.sync.connect import connect
from milkconsole.sync.contract import Contract
from milkconsole.sync.engine import SyncBusy, SyncEngine
from milkconsole.sync.settings import parse_odoo_settings
from milkconsole.sync.status import SyncStatus
from milkconsole.sync.worker import SyncWorker
from simulators.odoo.models import contract_models
from simulators.odoo.server import OdooSimulator
from simulators.odoo.tls import make_self_signed_cert
from tests.helpers.odoo_fixtures import (
    FIRST_TAG,
    METERS,
    T0,
    add_meters,
    by_key,
    engine_for,
    logged_in,
    odoo_settings,
    raise_alerts,
    record_health_events,
    record_sessions,
)

# -- settings and secrets ----------------------------------------------------------------------


def test_settings_refuse_an_unknown_key_naming_it():
    with pytest.raises(ConfigError, match=r"parlour.toml: odoo.batchsize: unknown key"):
        parse_odoo_settings(
            {"url": "https://odoo.farm", "database": "f", "login": "a", "batchsize": 5},
            "parlour.toml",
        )


def test_settings_refuse_a_password_in_the_config_file():
    with pytest.raises(ConfigError, match=r"odoo.password: secrets do not belong"):
        parse_odoo_settings(
            {"url": "https://odoo.farm", "database": "f", "login": "a", "password": "x"},
            "parlour.toml",
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"url": "http://odoo.farm"}, r"odoo.url: http://odoo.farm is plain http"),
        ({"url": "https://odoo.farm/web"}, r"odoo.url: .*only scheme://host"),
        ({"transport": "xmlrpc"}, r"odoo.transport: must be one of auto, jsonrpc, json2"),
        ({"batch_size": 0}, r"odoo.batch_size: must be an integer from 1 to 5000"),
        ({"timezone": "Mars/Olympus"}, r"odoo.timezone: unknown time zone"),
        ({"models": {"sessions": "x"}}, r"odoo.models.sessions: unknown key"),
        ({"fields": {"session": {"name": ""}}}, r"odoo.fields.session.name: this field cannot"),
    ],
)
def test_settings_refuse_bad_values_naming_the_key(changes, message):
    section = {"url": "https://odoo.farm", "database": "farm", "login": "console", **changes}
    with pytest.raises(ConfigError, match=message):
        parse_odoo_settings(section, "parlour.toml")


def test_settings_take_model_and_field_names_from_the_config():
    s = parse_odoo_settings(
        {
            "url": "https://odoo.farm:8443/",
            "database": "farm",
            "login": "console",
            "models": {"session": "x_milking"},
            "fields": {"session": {"lactose_percentage": "", "total_yield": "x_litres"}},
        },
        "parlour.toml",
    )
    contract = Contract(s)
    assert s.url == "https://odoo.farm:8443" and s.port == 8443
    assert contract.model("session") == "x_milking"
    assert contract.fields("session")["total_yield"] == "x_litres"
    assert "lactose_percentage" not in contract.fields("session")


def test_login_secret_lives_in_the_keyring_and_never_in_the_config_or_logs(
    sim, vault, db, tmp_path, caplog, capsys, monkeypatch
):
    config = tmp_path / "parlour.toml"
    config.write_text(
        f'[odoo]\nurl = "{sim.url}"\ndatabase = "farm"\nlogin = "admin"\n', encoding="utf-8"
    )
    monkeypatch.setenv("MILKCONSOLE_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setattr("sys.stdin", io.StringIO(sim.api_key + "\n"))
    caplog.set_level(logging.DEBUG)
    assert sync_main(["odoo", "login", "--config", str(config), "--password-stdin"]) == 0
    assert "logged in to Odoo 17.0" in capsys.readouterr().out
    assert list(vault.items.values()) == [sim.api_key]
    # A sync with debug logging on must not write the secret anywhere.
    record_sessions(db, 3, 1)
    assert sync_main(["sync", "--once", "--config", str(config), "--db", str(db.path), "-v"]) == 0
    assert sim.count("milk.session") == 3
    assert sim.api_key not in config.read_text(encoding="utf-8")
    assert sim.api_key not in caplog.text
    for log_file in (tmp_path / "logs").glob("*"):
        assert sim.api_key not in log_file.read_text(encoding="utf-8")


def test_login_with_a_wrong_password_stores_nothing(sim, vault, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MILKCONSOLE_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setattr("sys.stdin", io.StringIO("guess\n"))
    argv = ["odoo", "login", "--url", sim.url, "--db", "farm", "--user", "admin"]
    assert sync_main([*argv, "--config", str(tmp_path / "none.toml"), "--password-stdin"]) == 1
    assert "nothing stored" in capsys.readouterr().err
    assert vault.items == {}


def test_without_an_os_keyring_the_sync_says_so_clearly(sim):
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        with pytest.raises(secrets.SecretsError, match="no OS keyring is available"):
            connect(odoo_settings(sim))
    finally:
        keyring.set_keyring(previous)


def test_no_stored_secret_is_not_configured_with_the_login_command(sim, vault):
    with pytest.raises(OdooNotConfigured, match="milkconsole odoo login --url"):
        connect(odoo_settings(sim))


# -- the big one: a week offline -----------------------------------------------------------------


@pytest.mark.slow
def test_seven_days_offline_then_reconnect_delivers_everything_exactly_once(sim, vault, db):
    """500 cows x 3 milkings x 7 days recorded with Odoo away, identified from the cache."""
    sim.seed_herd(500)
    add_meters(db)
    settings = logged_in(sim, vault, batch_size=500)
    engine = engine_for(db, settings)
    first = engine.run_once()
    assert first.animals_pulled == 500
    sim.stop()

    keys = record_sessions(db, 500, 21, unknown_every=97, incomplete_every=61)
    alerts = raise_alerts(db, 300, acknowledged_every=10)
    health = record_health_events(db, 120)
    with pytest.raises(OdooUnavailable, match="refused the connection"):
        engine.run_once()
    offline = engine.status("offline")
    assert offline.backlog >= 10_500 + 300 + 120 and offline.dead == 0

    sim.start()
    report = engine.run_once()
    status = engine.status("online")
    assert status.backlog == 0 and status.dead == 0, Outbox(db).dead()[:3]

    with db.read() as tx:
        rows = {r.key: r for r in tx.scalars(select(SessionRow))}
        odoo_of = {a: o for a, o in tx.execute(select(Animal.id, Animal.odoo_id))}
        alert_meter = {a.key: a.meter_id for a in tx.scalars(select(AlertRow))}
    sessions = by_key(
        sim, "milk.session", "name", ["animal_id", "meter_id", "milking_point", "state"]
    )
    assert set(sessions) == set(keys)
    productions = by_key(sim, "farm.milk.production", "source_reference", ["animal_id", "source"])
    expected = {k for k, r in rows.items() if r.animal_id is not None}
    assert set(productions) == expected
    assert 10_000 < len(expected) < 10_500  # unidentified sessions left out
    # Every session names the iot.milk_meter of its own meter, every alert its iot.device.
    device_of = {d["id"]: d["device_id"] for d in sim.records("iot.device", fields=["device_id"])}
    meter_of = {
        m["id"]: device_of[m["device_id"][0]]
        for m in sim.records("iot.milk_meter", fields=["device_id"])
    }
    point_of = {
        p["id"]: meter_of[p["meter_id"][0]]
        for p in sim.records("iot.milk_meter.point", fields=["meter_id"])
    }
    for key, odoo in sessions.items():
        assert meter_of[odoo["meter_id"][0]] == rows[key].meter_id, key
        assert point_of[odoo["milking_point"][0]] == rows[key].meter_id, key
        assert odoo["state"] == "completed"  # incomplete ones are completed + is_abnormal
    for key in list(expected)[:200]:
        cow = odoo_of[rows[key].animal_id]
        assert sessions[key]["animal_id"][0] == cow
        assert productions[key]["animal_id"][0] == cow
        assert productions[key]["source"] == "iot_meter"
    odoo_alerts = by_key(sim, "iot.device.alert", "reference", ["state", "device_id"])
    assert set(odoo_alerts) == set(alerts)
    assert Counter(a["state"] for a in odoo_alerts.values()) == {"active": 270, "acknowledged": 30}
    assert all(device_of[a["device_id"][0]] == alert_meter[k] for k, a in odoo_alerts.items())
    assert set(by_key(sim, "farm.health.event", "source_reference", [])) == set(health)
    # Batched: one create call per 500 records and model, not one per record.
    pushed = {m: n for m, n in report.created.items() if m != "milk_meter"}
    assert report.create_calls == sum(-(-n // 500) for n in pushed.values())
    assert report.total_created == 10_500 + len(expected) + 300 + 120
    assert first.created == {"milk_meter": 24}  # registered before Odoo went away

    again = engine.run_once()
    assert again.total_created == 0 and again.already_in_odoo == 0


# -- errors ----------------------------------------------------------------------------------------


def test_a_poisoned_record_goes_dead_with_odoos_message_while_the_rest_land(sim, vault, db):
    sim.seed_herd(40)
    settings = logged_in(sim, vault, batch_size=200)
    engine = engine_for(db, settings)
    engine.run_once()
    keys = record_sessions(db, 40, 3)
    poisoned = keys[57]
    sim.refuse("milk.session", "name", poisoned, "Yield exceeds the tank capacity")

    report = engine.run_once()

    assert report.dead == 1
    [dead] = Outbox(db).dead()
    assert dead.record_key == poisoned
    assert "Odoo refused it: Yield exceeds the tank capacity" in (dead.last_error or "")
    assert set(by_key(sim, "milk.session", "name", [])) == set(keys) - {poisoned}
    # Its production record waits for it: no milk is booked for a milking Odoo does not have.
    productions = by_key(sim, "farm.milk.production", "source_reference", [])
    assert set(productions) == set(keys) - {poisoned}
    assert engine.status("online").backlog == 1
    # Fixed in Odoo: the supervisor requeues it and it lands, then its production record.
    sim.clear_refusals()
    Outbox(db).requeue_dead([dead.id])
    engine.run_once()
    assert sim.count("milk.session", [["name", "=", poisoned]]) == 1
    assert sim.count("farm.milk.production", [["source_reference", "=", poisoned]]) == 1
    assert engine.status("online").backlog == 0


def test_an_access_error_on_one_record_isolates_it_too(sim, vault, db):
    sim.seed_herd(10)
    settings = logged_in(sim, vault)
    engine = engine_for(db, settings)
    engine.run_once()
    keys = record_sessions(db, 10, 1)
    sim.refuse("milk.session", "name", keys[3], "You are not allowed to create", "AccessError")
    assert engine.run_once().dead == 1
    assert sim.count("milk.session") == 9 and sim.count("farm.milk.production") == 9


def test_a_wrong_password_stops_the_sync_and_says_so(sim, vault, db):
    settings = logged_in(sim, vault)
    record_sessions(db, 5, 1)
    sim.set_password("rotated-by-the-admin", api_key="new-key")
    statuses: list[SyncStatus] = []
    worker = SyncWorker(db, settings, statuses.append, idle_interval_s=0.05, retry_first_s=0.05)
    worker.start()
    try:
        wait_for(lambda: worker.status.state == "auth_failed")
        passes = len(statuses)
        worker.notify()  # a new session does not make it hammer the server with bad logins
        time.sleep(0.3)
        assert len(statuses) == passes
    finally:
        assert worker.stop()
    status = worker.status
    assert "refused login 'admin'" in (status.last_error or "")
    assert status.backlog == 24 + 5 and sim.count("milk.session") == 0  # meters + sessions
    assert "login refused" in status.summary


def test_network_errors_and_5xx_retry_and_then_land(sim, vault, db):
    settings = logged_in(sim, vault)
    engine = engine_for(db, settings, retry_base_s=0.0)
    engine.run_once()
    record_sessions(db, 6, 1)
    sim.fail_next(3, status=503)
    failures = 0
    for _ in range(5):
        try:
            engine.run_once()
            break
        except OdooUnavailable as exc:
            assert "HTTP 503" in exc.message
            assert engine.status("offline").backlog == 24 + 6  # meters + sessions
            failures += 1
    assert failures >= 2
    assert len(by_key(sim, "milk.session", "name", [])) == 6


def test_a_timeout_mid_push_is_retried_without_duplicates(sim, vault, db):
    settings = logged_in(sim, vault, timeout_s=0.3)
    engine = engine_for(db, settings, retry_base_s=0.0)
    add_meters(db)
    engine.run_once()
    record_sessions(db, 8, 1)
    # The create lands in Odoo but its answer comes too late: the client gives up.
    sim.on_commit = lambda model, method, ids: time.sleep(0.6)
    with pytest.raises(OdooUnavailable, match="in time"):
        engine.run_once()
    sim.on_commit = None
    report = engine.run_once()
    assert report.already_in_odoo == 8 and report.total_created == 0
    assert len(by_key(sim, "milk.session", "name", [])) == 8


def test_a_missing_model_is_reported_and_the_other_models_still_sync(vault, db):
    models = contract_models()
    del models["farm.milk.production"]
    fields = dict(models["milk.session"].fields)
    models["milk.session"] = models["milk.session"].__class__(
        "milk.session", "Milking Session", fields, models["milk.session"].unique
    )
    with OdooSimulator(version="17.0", models=models) as sim:
        sim.seed_herd(5)
        settings = logged_in(sim, vault)
        engine = engine_for(db, settings)
        engine.run_once()
        keys = record_sessions(db, 5, 1)
        raise_alerts(db, 2)
        report = engine.run_once()
        assert any("no model 'farm.milk.production'" in w for w in report.warnings)
        assert set(by_key(sim, "milk.session", "name", [])) == set(keys)
        assert sim.count("iot.device.alert") == 2
        status = engine.status("online")
        assert status.backlog == 5  # the production records wait for the model
        assert status.dead == 0


def test_a_missing_field_suspends_that_model_with_a_clear_message(vault, db):
    models = contract_models()
    m = models["milk.session"]
    fields = {k: v for k, v in m.fields.items() if k != "lactose_percentage"}
    models["milk.session"] = m.__class__(m.name, m.description, fields, m.unique)
    with OdooSimulator(version="17.0", models=models) as sim:
        settings = logged_in(sim, vault)
        engine = engine_for(db, settings)
        record_sessions(db, 3, 1)
        report = engine.run_once()
        [problem] = report.warnings
        assert "has no field 'lactose_percentage'" in problem
        assert 'leave it out with lactose_percentage = ""' in problem
        assert sim.count("milk.session") == 0
    engine.close()
    # The farm leaves the field out: the sessions go.
    with OdooSimulator(version="17.0", models=models) as sim2:
        settings = logged_in(sim2, vault, fields={"session": {"lactose_percentage": ""}})
        engine = engine_for(db, settings)
        assert engine.run_once().warnings == ()
        assert sim2.count("milk.session") == 3


# -- the herd ------------------------------------------------------------------------------------


def test_animal_cache_identifies_cows_while_odoo_is_offline(sim, vault, db):
    [cow1, cow2] = sim.seed_herd(2)
    add_meters(db)
    settings = logged_in(sim, vault)
    engine = engine_for(db, settings)
    engine.run_once()
    sim.stop()

    recorder = Recorder(db, farm_code="F1")
    recorder.start()
    snap = SessionSnapshot(
        key="F1-M01-offline",
        meter_id="M01",
        stall=1,
        started_at=T0,
        state="completed",
        rfid=str(FIRST_TAG + 1),
        ended_at=T0 + timedelta(minutes=6),
        yield_l=12.5,
    )
    recorder.submit(SessionCompleted(snap))
    assert recorder.stop(5.0)
    record = SessionStore(db).record("F1-M01-offline")
    assert record is not None and record.animal_number == "2"
    with pytest.raises(OdooUnavailable):
        engine.run_once()

    sim.start()
    engine.run_once()
    [session] = sim.records("milk.session", fields=["animal_id", "total_yield"])
    assert session["animal_id"][0] == cow2 and session["total_yield"] == 12.5
    [prod] = sim.records("farm.milk.production", fields=["animal_id", "quantity", "milking_time"])
    assert prod["animal_id"][0] == cow2 and prod["quantity"] == 12.5
    assert prod["milking_time"] == "am"  # 04:30 UTC is 04:30 in Dublin in March
    assert cow1 != cow2


def test_herd_is_pulled_incrementally_by_write_date_and_deletions_found_by_a_full_pull(
    sim, vault, db
):
    ids = sim.seed_herd(30)
    settings = logged_in(sim, vault)
    client = connect(settings)
    contract = Contract(settings)
    first = pull_animals(client, db, contract)
    assert first.animals == 30
    assert pull_animals(client, db, contract).animals == 0  # nothing changed: nothing read
    sim.write("farm.animal", [ids[4]], {"rfid_tag": "982000099999999", "name": "Daisy"})
    sim.create("farm.animal.rfid", {"animal_id": ids[7], "rfid_tag": "982000088888888"})
    second = pull_animals(client, db, contract)
    assert (second.animals, second.tags) == (1, 1)
    with db.read() as tx:
        assert resolve_animal(tx, "982000099999999") is not None
        eighth = tx.scalar(select(Animal.id).where(Animal.odoo_id == ids[7]))
        assert resolve_animal(tx, "982000088888888") == eighth
    sim.store.unlink("farm.animal.rfid", [r["id"] for r in sim.records("farm.animal.rfid")])
    sim.write("farm.animal", [ids[9]], {"active": False})
    full = pull_animals(client, db, contract, full=True)
    assert full.tags_removed == 1
    with db.read() as tx:
        assert resolve_animal(tx, "982000088888888") is None
        tenth = tx.scalars(select(Animal).where(Animal.odoo_id == ids[9])).one()
        assert tenth.active is False
    client.close()


# -- changes made at the console ----------------------------------------------------------------


def test_an_alert_acknowledged_at_the_console_is_written_to_odoo(sim, vault, db):
    sim.seed_herd(3)
    settings = logged_in(sim, vault)
    engine = engine_for(db, settings)
    engine.run_once()
    [key] = raise_alerts(db, 1)
    engine.run_once()
    [odoo_alert] = sim.records("iot.device.alert", fields=["state", "reference", "device_id"])
    assert odoo_alert["state"] == "active" and odoo_alert["device_id"][1] == "Milk meter M01"
    with db.write() as tx:
        alert = tx.scalars(select(AlertRow).where(AlertRow.key == key)).one()
        alert.state = "resolved"
        alert.resolved_at = datetime.now(UTC)
        alert.resolved_by = "supervisor"
        alert.note = "treated, milk discarded"
        queue_alert(tx, alert)
    report = engine.run_once()
    assert report.written == 1 and report.total_created == 0
    [odoo_alert] = sim.records(
        "iot.device.alert", fields=["state", "resolved_by", "resolution_note"]
    )
    assert odoo_alert["state"] == "resolved"
    assert odoo_alert["resolved_by"] == "supervisor"
    assert odoo_alert["resolution_note"] == "treated, milk discarded"


def test_a_cow_named_by_hand_after_the_sync_reaches_the_session_and_gets_production(sim, vault, db):
    [_, cow2] = sim.seed_herd(2)
    settings = logged_in(sim, vault)
    engine = engine_for(db, settings)
    engine.run_once()
    [key] = record_sessions(db, 1, 1, unknown_every=1)
    engine.run_once()
    assert sim.count("farm.milk.production") == 0  # nobody to book the milk to
    with db.read() as tx:
        local_cow2 = tx.scalar(select(Animal.id).where(Animal.odoo_id == cow2))
    SessionStore(db).set_manual_animal(key, local_cow2, "mary")
    engine.run_once()
    [session] = sim.records("milk.session", fields=["animal_id"])
    assert session["animal_id"][0] == cow2
    [prod] = sim.records("farm.milk.production", fields=["animal_id", "source_reference"])
    assert prod["animal_id"][0] == cow2 and prod["source_reference"] == key


def test_meters_are_found_by_device_id_and_their_last_seen_updated(sim, vault, db):
    add_meters(db)
    seen = datetime(2025, 3, 1, 6, 0, 5, tzinfo=UTC)
    with db.write() as tx:
        tx.get(Meter, "M03").last_seen_at = seen  # type: ignore[union-attr]
    settings = logged_in(sim, vault)
    engine = engine_for(db, settings)
    assert engine.run_once().meters_updated == 1
    [device] = sim.records("iot.device", [["device_id", "=", "M03"]], ["last_seen"])
    assert device["last_seen"] == "2025-03-01 06:00:05"
    with db.read() as tx:
        assert tx.get(Meter, "M03").odoo_device_id == device["id"]  # type: ignore[union-attr]


def test_a_database_moved_to_another_odoo_registers_its_meters_there_and_pulls_its_herd(
    sim, vault, db
):
    add_meters(db)
    first = engine_for(db, logged_in(sim, vault))
    first.run_once()
    assert sim.count("iot.milk_meter") == len(METERS)
    first.close()
    with OdooSimulator(version="17.0") as other:
        other.seed_devices(["X01", "X02", *METERS])  # its device ids are not the first one's
        cows = other.seed_herd(2, first_tag=FIRST_TAG + 100)
        second = engine_for(db, logged_in(other, vault))
        second.run_once()
        second.close()
        devices = {r["device_id"]: r["id"] for r in other.records("iot.device", [], ["device_id"])}
        assert other.count("iot.milk_meter") == len(METERS)
    with db.read() as tx:
        stored = {m.id: m.odoo_device_id for m in tx.scalars(select(Meter))}
        pulled = set(tx.scalars(select(Animal.odoo_id).where(Animal.odoo_id.is_not(None))))
    assert stored == {m: devices[m] for m in METERS}
    assert pulled == set(cows)


# -- transports ---------------------------------------------------------------------------------


def test_odoo_19_is_detected_and_synced_over_json2(vault, db):
    with OdooSimulator(version="19.0") as sim:
        sim.seed_devices(METERS)
        sim.seed_herd(20)
        settings = logged_in(sim, vault)
        engine = engine_for(db, settings)
        engine.run_once()
        keys = record_sessions(db, 20, 2)
        engine.run_once()
        assert engine.status("online").transport == "json2"
        assert set(by_key(sim, "milk.session", "name", [])) == set(keys)
        assert sim.count("farm.milk.production") == 40


def test_jsonrpc_can_be_forced_on_odoo_19(vault, db):
    with OdooSimulator(version="19.0") as sim:
        settings = logged_in(sim, vault, transport="jsonrpc")
        record_sessions(db, 4, 1)
        engine = engine_for(db, settings)
        engine.run_once()
        assert engine.status("online").transport == "jsonrpc"
        assert sim.count("milk.session") == 4


def test_https_is_verified_and_a_private_ca_can_be_trusted(vault, db, tmp_path):
    cert, key = make_self_signed_cert(tmp_path)
    with OdooSimulator(version="17.0", tls=(cert, key)) as sim:
        assert sim.url.startswith("https://localhost:")
        untrusted = logged_in(sim, vault)
        refused = engine_for(db, untrusted)
        with pytest.raises(
            OdooUnavailable, match=r"certificate of https://localhost.* not trusted"
        ):
            refused.run_once()
        refused.close()
        trusted = logged_in(sim, vault, ca_file=str(cert))
        record_sessions(db, 2, 1)
        engine_for(db, trusted).run_once()
        assert sim.count("milk.session") == 2
        ssl.create_default_context()  # the default context is untouched by ours


def test_only_one_sync_runs_per_database_so_in_flight_rows_are_not_stolen(sim, vault, db):
    settings = logged_in(sim, vault)
    engine_for(db, settings)
    second = SyncEngine(db, settings)
    with pytest.raises(SyncBusy, match=r"another Milk Console process \(pid \d+\) is syncing"):
        second.start()
    assert Outbox(db).counts()["in_flight"] == 0


# -- the worker ---------------------------------------------------------------------------------


def wait_for(predicate: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_worker_pushes_a_new_session_when_notified_and_reports_status(sim, vault, db):
    settings = logged_in(sim, vault)
    statuses: list[SyncStatus] = []
    worker = SyncWorker(db, settings, statuses.append, idle_interval_s=3600)
    worker.start()
    try:
        wait_for(lambda: worker.passes >= 1)
        record_sessions(db, 1, 1)
        worker.notify()
        wait_for(lambda: sim.count("milk.session") == 1)
        wait_for(lambda: worker.status.backlog == 0)
    finally:
        assert worker.stop()
    assert statuses[-1].state == "online" and statuses[-1].last_sync_at is not None
    assert statuses[-1].summary == "Odoo online"


def test_worker_goes_offline_backs_off_and_recovers(sim, vault, db):
    settings = logged_in(sim, vault, batch_size=5)
    record_sessions(db, 3, 1)
    sim.stop()
    statuses: list[SyncStatus] = []
    states: list[str] = []

    def on_status(status: SyncStatus) -> None:
        statuses.append(status)
        states.append(status.state)

    worker = SyncWorker(
        db,
        settings,
        on_status,
        idle_interval_s=0.05,
        retry_first_s=0.05,
        retry_max_s=0.2,
    )
    worker.start()
    try:
        wait_for(lambda: "offline" in states)
        assert worker.status.backlog == 24 + 3  # meters + sessions
        assert "refused the connection" in (worker.status.last_error or "")
        sim.start()
        wait_for(lambda: sim.count("milk.session") == 3)
        wait_for(lambda: worker.status.state == "online")
    finally:
        assert worker.stop()
    # Draining again (several batches): no status from then on still shows the old error.
    back = next(i for i, s in enumerate(statuses) if s.state == "online")
    assert statuses[back].backlog > 0  # a status during the drain, not only after it
    assert all(s.last_error is None for s in statuses[back:])


def test_worker_without_odoo_settings_is_not_configured(db):
    worker = SyncWorker(db, None, idle_interval_s=0.05)
    worker.start()
    try:
        wait_for(lambda: worker.status.state == "not_configured" and worker.status.last_error)
    finally:
        assert worker.stop()


def test_sync_status_crosses_threads_as_a_frozen_value():
    status = SyncStatus("online", backlog=2)
    with pytest.raises(AttributeError):
        status.backlog = 3  # type: ignore[misc]
    assert status.summary == "Odoo online · 2 waiting"
    assert threading.current_thread() is threading.main_thread()
