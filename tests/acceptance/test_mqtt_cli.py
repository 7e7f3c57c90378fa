"""`milkconsole mqtt login|check|logout|status` against a real broker and an in-memory keyring."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from milkconsole.app.entry import main
from milkconsole.mqtt.password import SERVICE
from simulators.broker import Mosquitto
from simulators.keyring_memory import MemoryKeyring
from tests.helpers.mqtt_fixtures import PASSWORD, mqtt_section, toml_section


def config(tmp_path: Path, broker: Mosquitto) -> Path:
    path = tmp_path / "parlour.toml"
    path.write_text(toml_section(mqtt_section(broker)), encoding="utf-8")
    return path


def run(monkeypatch: pytest.MonkeyPatch, stdin: str, *argv: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(list(argv))


def test_login_checks_the_password_at_the_broker_and_keeps_it_in_the_keyring(
    tmp_path: Path,
    broker: Mosquitto,
    vault: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = config(tmp_path, broker)
    account = f"parlour@127.0.0.1:{broker.tls_port}"
    assert run(monkeypatch, "wrong\n", "mqtt", "login", "--config", str(cfg)) == 1
    err = capsys.readouterr().err
    assert "refused the login" in err and "nothing stored" in err
    assert vault.get_password(SERVICE, account) is None

    assert run(monkeypatch, PASSWORD + "\n", "mqtt", "login", "--config", str(cfg)) == 0
    assert f"for {account}" in capsys.readouterr().out
    assert vault.get_password(SERVICE, account) == PASSWORD
    assert PASSWORD not in cfg.read_text(encoding="utf-8")

    assert run(monkeypatch, "", "mqtt", "check", "--config", str(cfg)) == 0
    assert "TLS, certificate verified" in capsys.readouterr().out

    assert run(monkeypatch, "", "mqtt", "logout", "--config", str(cfg)) == 0
    assert vault.get_password(SERVICE, account) is None
    assert run(monkeypatch, "", "mqtt", "check", "--config", str(cfg)) == 1
    assert "mqtt login" in capsys.readouterr().err


def test_login_to_a_credential_file_for_a_service_makes_it_owner_only(
    tmp_path: Path,
    broker: Mosquitto,
    vault: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = config(tmp_path, broker)
    target = tmp_path / "creds" / "mqtt-password"
    argv = ("mqtt", "login", "--config", str(cfg), "--credential-file", str(target))
    assert run(monkeypatch, PASSWORD + "\n", *argv) == 0
    assert target.read_text(encoding="utf-8").strip() == PASSWORD
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "LoadCredential=mqtt-password" in capsys.readouterr().out
    # The publisher finds it through systemd's credentials directory.
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(target.parent))
    assert run(monkeypatch, "", "mqtt", "check", "--config", str(cfg)) == 0


def test_status_counts_the_mqtt_outbox(
    tmp_path: Path,
    broker: Mosquitto,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = config(tmp_path, broker)
    db = tmp_path / "console.sqlite"
    assert run(monkeypatch, "", "mqtt", "status", "--config", str(cfg), "--db", str(db)) == 0
    out = capsys.readouterr().out
    assert f"127.0.0.1:{broker.tls_port}" in out and "0 waiting" in out
