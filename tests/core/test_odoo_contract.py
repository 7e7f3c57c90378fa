"""The seed's contract, checked before anything is sent, and every record linked to the right one.

Against the Odoo simulator over real HTTP (the same behaviours run against a real Odoo 17 in
`test_odoo_real.py`); a server whose module differs from the contract is played by editing the
simulator's models.
"""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from milkconsole.grants import Grant
from milkconsole.meters.events import SessionSnapshot
from milkconsole.store.outbound import (
    production_payload,
    queue_sessions,
    session_payload,
)
from milkconsole.store.schema import Animal, Meter
from milkconsole.store.sessions import new_session_row
from milkconsole.supervision.users import UserStore
from milkconsole.sync import secrets
from milkconsole.sync.check import check_contract
from milkconsole.sync.cli import main as sync_main
from milkconsole.sync.connect import connect
from milkconsole.sync.contract import CONTRACT, Contract, Refs
from milkconsole.technician.calibration import (
    CalibrationReading,
    CalibrationSettings,
    evaluate,
    save_calibration,
)
from simulators.odoo.models import FieldDef, ModelDef, contract_models
from simulators.odoo.server import OdooSimulator
from tests.helpers.odoo_fixtures import (
    T0,
    add_meters,
    engine_for,
    logged_in,
    odoo_settings,
    record_sessions,
)


def with_field(models: dict[str, ModelDef], model: str, name: str, **changes: Any) -> None:
    m = models[model]
    fields = dict(m.fields)
    fields[name] = replace(fields[name], **changes)
    models[model] = ModelDef(m.name, m.description, fields, m.unique, m.rec_name)


@pytest.fixture
def models() -> dict[str, ModelDef]:
    return contract_models()


def simulated(models: dict[str, ModelDef]) -> Iterator[OdooSimulator]:
    with OdooSimulator(version="17.0", models=models) as s:
        yield s


# -- the check -----------------------------------------------------------------------------------


def test_the_simulator_offers_the_whole_contract_and_the_check_is_clean(sim, vault):
    client = connect(logged_in(sim, vault))
    try:
        check = check_contract(client, Contract())
    finally:
        client.close()
    assert check.problems == ()
    assert check.ok and not check.suspended


def test_a_session_meter_pointing_at_the_device_model_is_refused_before_anything_is_sent(
    vault, db, models
):
    # The console's old contract: milk.session.meter_id -> iot.device. Its ids would land on the
    # wrong meters (Odoo takes any id of the field's model), so nothing is sent.
    with_field(models, "milk.session", "meter_id", relation="iot.device")
    for sim in simulated(models):
        settings = logged_in(sim, vault)
        record_sessions(db, 5, 1)
        report = engine_for(db, settings).run_once()
        [problem] = [w for w in report.warnings if "meter_id" in w]
        assert "milk.session.meter_id points to 'iot.device'" in problem
        assert "'iot.milk_meter'" in problem and "linked to the wrong one" in problem
        assert sim.count("milk.session") == 0
        assert sim.count("iot.milk_meter") == 24  # the meters themselves are fine


def test_a_selection_value_the_server_lacks_suspends_that_model_with_the_value_named(
    vault, db, models
):
    with_field(
        models,
        "milk.session",
        "state",
        selection=(("in_progress", "In Progress"), ("done", "Done")),
    )
    for sim in simulated(models):
        settings = logged_in(sim, vault)
        record_sessions(db, 3, 1)
        report = engine_for(db, settings).run_once()
        [problem] = [w for w in report.warnings if ".state" in w]
        assert "Odoo would refuse milk.session.state = 'completed'" in problem
        assert sim.count("milk.session") == 0


def test_a_required_field_the_console_does_not_fill_is_named(vault, db, models):
    m = models["milk.session"]
    fields = {**m.fields, "x_herdsman_id": FieldDef("integer", "Herdsman", required=True)}
    models["milk.session"] = ModelDef(m.name, m.description, fields, m.unique)
    for sim in simulated(models):
        settings = logged_in(sim, vault)
        record_sessions(db, 3, 1)
        report = engine_for(db, settings).run_once()
        [problem] = [w for w in report.warnings if "x_herdsman_id" in w]
        assert "Odoo requires milk.session.x_herdsman_id" in problem
        assert sim.count("milk.session") == 0


def test_odoo_check_exits_1_and_lists_the_problems(vault, models, tmp_path, capsys):
    with_field(models, "iot.device.alert", "device_id", relation="iot.milk_meter")
    for sim in simulated(models):
        settings = logged_in(sim, vault)
        config = tmp_path / "parlour.toml"
        config.write_text(
            f'[odoo]\nurl = "{settings.url}"\ndatabase = "farm"\nlogin = "admin"\n',
            encoding="utf-8",
        )
        assert sync_main(["odoo", "check", "--config", str(config)]) == 1
        out = capsys.readouterr().out
        assert "iot.device.alert.device_id points to 'iot.milk_meter'" in out


# -- values ---------------------------------------------------------------------------------------


def test_float32_noise_is_rounded_to_the_seeds_precision_and_the_tag_goes_canonical(sim, vault, db):
    sim.seed_herd(3)
    add_meters(db)
    settings = logged_in(sim, vault)
    engine = engine_for(db, settings)
    engine.run_once()
    snap = SessionSnapshot(
        key="F1-M01-noise",
        meter_id="M01",
        stall=1,
        started_at=T0,
        state="completed",
        rfid="8000F580075BCD15",  # the meter's raw FDX-B hex
        ended_at=T0 + timedelta(minutes=6),
        duration_s=360.0,
        yield_l=11.89781379699707,
        peak_flow_l_min=3.1234567,
        conductivity_mean_ms_cm=4.98765432,
        temperature_c=35.123456,
        fat_pct=4.1000001,
    )
    with db.write() as tx:
        row = new_session_row(snap, T0)
        tx.add(row)
        tx.flush()
        queue_sessions(tx, [row])
    engine.run_once()
    [odoo] = sim.records(
        "milk.session",
        fields=["total_yield", "peak_flow_rate", "conductivity", "milk_temperature", "rfid_tag"],
    )
    assert odoo["total_yield"] == 11.898
    assert odoo["peak_flow_rate"] == 3.123
    assert odoo["conductivity"] == 4.988
    assert odoo["milk_temperature"] == 35.12
    assert odoo["rfid_tag"] == "982000123456789"


def test_every_field_a_getter_reads_is_in_the_payload_the_builder_makes(db):
    """The contract's getters and the outbound builder agree: each key a pushed field reads is
    one the builder writes (else that field would silently go empty)."""
    add_meters(db)
    with db.write() as tx:
        tx.add(Animal(id=1, odoo_id=7, number="1042", name="Bella", rfid_tag="982000000000001"))
        snap = SessionSnapshot(key="K", meter_id="M01", stall=1, started_at=T0, state="completed")
        row = new_session_row(snap, T0)
        row.animal_id = 1
        tx.add(row)
        tx.flush()
        payloads = {
            "session": session_payload(tx, row),
            "production": production_payload(tx, row),
        }
    for model, payload in payloads.items():
        for f in CONTRACT[model].fields:
            missing = [k for k in f.keys if k not in payload]
            assert not missing, f"{model}.{f.name} reads {missing}, which the builder never writes"
        vals = Contract().vals(model, payload, Refs(animals={1: 7}))
        assert vals["animal_id"] == 7


# -- meters ---------------------------------------------------------------------------------------


def test_meters_register_as_device_milk_meter_and_point_and_a_calibration_updates_them(
    sim, vault, db
):
    add_meters(db)
    settings = logged_in(sim, vault)
    engine = engine_for(db, settings)
    assert engine.run_once().created["milk_meter"] == 24
    [device] = sim.records("iot.device", [["device_id", "=", "M07"]], ["device_type", "name"])
    assert (device["device_type"], device["name"]) == ("milk_meter", "Milk meter M07")
    [meter] = sim.records(
        "iot.milk_meter",
        [["device_id", "=", device["id"]]],
        ["manufacturer", "model_number", "communication_type", "modbus_port", "modbus_address"],
    )
    assert meter["manufacturer"] == "gea" and meter["model_number"] == "DemaTron"
    assert meter["communication_type"] == "modbus_tcp" and meter["modbus_port"] == "10.0.0.5:502"
    assert meter["modbus_address"] == 7
    [point] = sim.records("iot.milk_meter.point", [["meter_id", "=", meter["id"]]], ["name"])
    assert point["name"] == "Stall 7"
    with db.read() as tx:
        local = tx.get(Meter, "M07")
        assert local is not None
        assert (local.odoo_device_id, local.odoo_meter_id) == (device["id"], meter["id"])
    # A second start with the same config queues nothing more.
    add_meters(db)
    assert engine.run_once().created == {}

    # A technician's calibration (the wizard's save) reaches the meter's Odoo record.
    users = UserStore(db)
    users.add("Sue", "supervisor", "2468", by=None)
    users.add("Tom", "technician", "1357", by=Grant("Sue", "supervisor"))
    readings = [
        CalibrationReading(10.4, 10.0, "k1", 10.0, "L"),
        CalibrationReading(20.8, 20.0, "k2", 20.0, "L"),
        CalibrationReading(15.6, 15.0, "k3", 15.0, "L"),
    ]
    settings = CalibrationSettings()
    saved = save_calibration(
        db,
        Grant("Tom", "technician"),
        meter_id="M07",
        method="weighed_milk",
        readings=readings,
        outcome=evaluate(readings, 1.0, settings),
        settings=settings,
    )
    assert engine.run_once().written == 1
    [meter] = sim.records(
        "iot.milk_meter",
        [["id", "=", meter["id"]]],
        ["flow_calibration_factor", "last_calibration"],
    )
    assert meter["flow_calibration_factor"] == round(saved.new_factor, 4) != 1.0
    assert meter["last_calibration"]


def test_a_device_id_odoo_uses_for_another_kind_of_device_is_refused_not_linked(sim, vault, db):
    [m05] = sim.records("iot.device", [["device_id", "=", "M05"]], ["id"])
    sim.write("iot.device", [m05["id"]], {"name": "Bulk tank probe", "device_type": "sensor"})
    add_meters(db)
    settings = logged_in(sim, vault)
    report = engine_for(db, settings).run_once()
    assert report.dead == 1 and report.created["milk_meter"] == 23
    dead = [r for r in sim.records("iot.milk_meter", fields=["device_id"])]
    assert len(dead) == 23
    from milkconsole.store.outbox import Outbox

    [refused] = Outbox(db).dead()
    assert refused.record_key == "M05" and "is not a milk meter" in (refused.last_error or "")


# -- cows -----------------------------------------------------------------------------------------


def test_a_cow_deleted_in_odoo_while_her_records_wait_is_found_again_by_tag(sim, vault, db):
    ids = sim.seed_herd(6)
    settings = logged_in(sim, vault)
    engine = engine_for(db, settings)
    engine.run_once()  # the herd pulled: cow 3 is Odoo record ids[2]
    sim.stop()
    keys = record_sessions(db, 6, 2)
    # In the office, cow 3 is deleted and entered again (a new record, the same tag and number).
    sim.store.unlink("farm.animal", [ids[2]])
    [again] = sim.create("farm.animal", {"name": "3", "number": "3", "rfid_tag": "982000000000003"})
    sim.start()
    report = engine.run_once()
    assert report.dead == 0 and report.deferred == 0
    sessions = {r["name"]: r for r in sim.records("milk.session", fields=["name", "animal_id"])}
    assert set(sessions) == set(keys)
    cow3 = [k for k in keys if k.endswith("-0002")]
    assert cow3 and all(sessions[k]["animal_id"][0] == again for k in cow3)
    assert sim.count("farm.milk.production", [["animal_id", "=", again]]) == len(cow3)


def test_a_cow_gone_from_odoo_leaves_her_sessions_unlinked_and_her_production_waiting(
    sim, vault, db
):
    ids = sim.seed_herd(4)
    settings = logged_in(sim, vault)
    engine = engine_for(db, settings)
    engine.run_once()
    keys = record_sessions(db, 4, 1)
    sim.store.unlink("farm.animal", [ids[1]])  # cow 2, for good
    report = engine.run_once()
    assert report.dead == 0 and report.deferred == 1  # her production record
    cow2 = next(k for k in keys if k.endswith("-0001"))
    [odoo] = sim.records("milk.session", [["name", "=", cow2]], ["animal_id", "rfid_tag"])
    assert odoo["animal_id"] is False and odoo["rfid_tag"] == "982000000000002"
    assert sim.count("farm.milk.production") == 3
    # Entered again in Odoo later: her production record goes at the next try.
    sim.create("farm.animal", {"name": "2", "number": "2", "rfid_tag": "982000000000002"})
    with db.write() as tx:  # the 5-minute wait, passed
        from milkconsole.store.schema import OutboxRow

        for r in tx.scalars(select(OutboxRow).where(OutboxRow.state == "pending")):
            r.next_attempt_at = None
    assert engine.run_once().created.get("production") == 1


# -- the command line and secrets --------------------------------------------------------------


def odoo_config(tmp_path: Path, sim: OdooSimulator, extra: str = "") -> Path:
    config = tmp_path / "parlour.toml"
    config.write_text(
        f'[odoo]\nurl = "{sim.url}"\ndatabase = "farm"\nlogin = "admin"\n{extra}',
        encoding="utf-8",
    )
    return config


def test_sync_once_exits_1_and_names_the_record_when_odoo_refused_one(
    sim, vault, db, tmp_path, capsys
):
    keys = record_sessions(db, 4, 1)
    sim.refuse("milk.session", "name", keys[2], "Yield exceeds the tank capacity")
    logged_in(sim, vault)
    config = odoo_config(tmp_path, sim)
    code = sync_main(["sync", "--once", "--config", str(config), "--db", str(db.path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "Odoo refused 1 record(s)" in err and keys[2] in err
    assert "Yield exceeds the tank capacity" in err


def test_the_gateway_service_takes_its_secret_from_systemd_credentials(
    sim, db, tmp_path, monkeypatch
):
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "odoo-secret").write_text(sim.api_key + "\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    import keyring
    import keyring.backends.fail

    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())  # a service has no keyring
    try:
        record_sessions(db, 2, 1)
        config = odoo_config(tmp_path, sim)
        assert sync_main(["sync", "--once", "--config", str(config), "--db", str(db.path)]) == 0
    finally:
        keyring.set_keyring(previous)
    assert sim.count("milk.session") == 2


def test_a_secret_file_others_can_read_is_refused_and_a_private_one_is_used(
    sim, db, tmp_path, monkeypatch
):
    secret = tmp_path / "odoo-secret"
    secret.write_text(sim.api_key, encoding="utf-8")
    secret.chmod(0o644)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    settings = logged_in_file(sim, secret)
    with pytest.raises(secrets.SecretsError, match=r"readable by others \(mode 0644\); chmod 600"):
        secrets.get_secret(settings)
    secret.chmod(0o600)
    assert secrets.get_secret(settings) == sim.api_key


def test_a_secret_file_owned_by_another_user_is_refused(sim, tmp_path, monkeypatch):
    secret = tmp_path / "odoo-secret"
    secret.write_text(sim.api_key, encoding="utf-8")
    secret.chmod(0o600)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    # Not the user running the console: checked against the owner the console sees.
    monkeypatch.setattr(os, "geteuid", lambda: secret.stat().st_uid + 1)
    with pytest.raises(secrets.SecretsError, match="belongs to uid"):
        secrets.get_secret(logged_in_file(sim, secret))


def logged_in_file(sim: OdooSimulator, secret: Path) -> Any:
    from milkconsole.sync.settings import parse_odoo_settings

    return parse_odoo_settings(
        {
            "url": sim.url,
            "database": "farm",
            "login": "admin",
            "secret_file": str(secret),
        },
        "parlour.toml",
    )


def test_odoo_login_reads_a_piped_stdin_and_writes_a_private_credential_file(
    sim, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("MILKCONSOLE_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setattr("sys.stdin", io.StringIO(sim.api_key + "\n"))  # not a terminal
    config = odoo_config(tmp_path, sim)
    target = tmp_path / "credentials" / "odoo-secret"
    argv = ["odoo", "login", "--config", str(config), "--credential-file", str(target)]
    assert sync_main(argv) == 0
    assert "written to" in capsys.readouterr().out
    assert target.read_text(encoding="utf-8").strip() == sim.api_key
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sim.api_key not in json.dumps(os.listdir(tmp_path))


def test_the_headless_demo_sends_its_milkings_to_the_odoo_a_config_names(sim, tmp_path):
    """`demo --headless --config F`: a farm watches the simulated parlour land in its Odoo."""
    import signal
    import subprocess
    import sys
    import time

    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "odoo-secret").write_text(sim.api_key, encoding="utf-8")
    config = odoo_config(tmp_path, sim, "timeout_s = 5\n[health.grades]\n")
    env = {
        **os.environ,
        "CREDENTIALS_DIRECTORY": str(creds),
        "MILKCONSOLE_LOG_DIR": str(tmp_path / "logs"),
    }
    root = Path(__file__).resolve().parents[2]
    argv = ["demo", "--headless", "--config", str(config), "--time-scale", "120", "--cows", "40"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "milkconsole", *argv, "--db", str(tmp_path / "demo.sqlite")],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while sim.count("milk.session") < 5 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert sim.count("milk.session") >= 5, err[-2000:]
    assert sim.count("iot.milk_meter") == 24  # the demo parlour's meters, registered
    assert proc.returncode == 0, err[-2000:]
    assert sim.api_key not in out + err


def test_a_blank_systemd_credential_means_none_and_the_keyring_is_asked(
    sim, vault, tmp_path, monkeypatch
):
    # The unit's fallback for a credential file not written yet is `SetCredential=name:\n`.
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "odoo-secret").write_text("\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    settings = logged_in(sim, vault)  # the keyring holds it
    assert secrets.get_secret(settings) == sim.api_key


def test_a_keyring_backend_failing_its_own_way_is_a_clear_secrets_error(sim, monkeypatch):
    import keyring
    from keyring.backend import KeyringBackend

    class NoBus(KeyringBackend):
        priority = 1  # type: ignore[assignment]

        def get_password(self, service: str, username: str) -> str | None:
            raise RuntimeError("org.freedesktop.DBus.Error.ServiceUnknown: no session bus")

        def set_password(self, service: str, username: str, password: str) -> None:
            raise RuntimeError("org.freedesktop.DBus.Error.ServiceUnknown: no session bus")

        def delete_password(self, service: str, username: str) -> None:
            raise RuntimeError("no session bus")

    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    previous = keyring.get_keyring()
    keyring.set_keyring(NoBus())
    try:
        settings = odoo_settings(sim)
        with pytest.raises(secrets.SecretsError, match=r"refused to give .* no session bus"):
            secrets.get_secret(settings)
        with pytest.raises(secrets.SecretsError, match="refused to store"):
            secrets.store_secret(settings, "k")
    finally:
        keyring.set_keyring(previous)
