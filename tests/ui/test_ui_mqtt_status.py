"""The broker's state in the console's status bar: the demo console takes a farm's `[mqtt]`,
publishes its simulated milkings to a real mosquitto, and says online / OFFLINE / LOGIN REFUSED."""

from __future__ import annotations

from pathlib import Path

from milkconsole.config import load_config
from milkconsole.mqtt.status import MqttStatus
from simulators.broker import Mosquitto
from simulators.demo import make_demo_config
from tests.helpers.mqtt_fixtures import PASSWORD, Inbox, mqtt_section, subscribe, toml_section
from ui.app import open_demo_console
from ui.status_bar import ParlourStatusBar

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def farm_config(tmp_path: Path, broker: Mosquitto, password: str = PASSWORD) -> Path:
    secret = tmp_path / "mqtt-password"
    secret.write_text(password, encoding="utf-8")
    secret.chmod(0o600)
    path = tmp_path / "farm.toml"
    path.write_text(toml_section(mqtt_section(broker, secret_file=str(secret))), "utf-8")
    return path


def test_the_status_bar_says_what_the_broker_state_asks_of_the_farmer(qtbot, tmp_path) -> None:
    cfg = load_config(make_demo_config(tmp_path, stalls=4))
    bar = ParlourStatusBar(cfg, str(tmp_path / "x.sqlite"))
    qtbot.addWidget(bar)
    assert not bar.mqtt_button.isVisibleTo(bar)  # no broker, no button
    cases = [
        (MqttStatus("online", "broker:8883"), "MQTT: online", "ok"),
        (MqttStatus("online", "broker:8883", backlog=12), "MQTT: online · 12 waiting", "pending"),
        (
            MqttStatus("offline", "broker:8883", backlog=3, last_error="refused"),
            "OFFLINE",
            "pending",
        ),
        (
            MqttStatus("auth_failed", "broker:8883", last_error="mqtt login"),
            "LOGIN REFUSED",
            "error",
        ),
        (MqttStatus("tls_failed", "broker:8883", last_error="ca_file"), "CERTIFICATE", "error"),
    ]
    for status, words, state in cases:
        bar.on_mqtt_status(status)
        assert words in bar.mqtt_button.text()
        assert bar.mqtt_state == state
        assert status.broker in bar.mqtt_button.toolTip()
        if status.last_error:
            assert status.last_error in bar.mqtt_button.toolTip()
    assert bar.mqtt_button.isVisibleTo(bar)


def test_the_demo_console_publishes_to_the_farms_broker_and_shows_it_going_away(
    qtbot, tmp_path: Path, broker: Mosquitto
) -> None:
    inbox = Inbox(subscribe(broker))
    console = open_demo_console(
        cows=24, time_scale=60.0, seed=3, faults=None, sections_from=farm_config(tmp_path, broker)
    )
    qtbot.addWidget(console.window)
    console.window.resize(1600, 950)
    console.window.show()
    qtbot.waitExposed(console.window)
    button = console.window.status.mqtt_button
    try:
        console.start()
        qtbot.waitUntil(lambda: button.text().startswith("MQTT: online"), timeout=15000)
        # The GUI thread must go on (qtbot waits with Qt's event loop running).
        qtbot.waitUntil(lambda: bool(inbox.events("session_complete")), timeout=60000)
        qtbot.waitUntil(lambda: button.text() == "MQTT: online", timeout=10000)
        ARTIFACTS.mkdir(exist_ok=True)
        console.window.grab().save(str(ARTIFACTS / "console_mqtt_online.png"))
        broker.stop()
        qtbot.waitUntil(lambda: "OFFLINE" in button.text(), timeout=15000)
        assert console.window.status.mqtt_state == "pending"
        assert f"127.0.0.1:{broker.tls_port}" in button.toolTip()
        console.window.status.grab().save(str(ARTIFACTS / "status_bar_mqtt_offline.png"))
    finally:
        console.shutdown()


def test_a_wrong_password_shows_login_refused_and_the_console_keeps_milking(
    qtbot, tmp_path: Path, broker: Mosquitto
) -> None:
    console = open_demo_console(
        cows=8,
        time_scale=60.0,
        seed=3,
        faults=None,
        sections_from=farm_config(tmp_path, broker, password="wrong"),
    )
    qtbot.addWidget(console.window)
    console.window.show()
    button = console.window.status.mqtt_button
    try:
        console.start()
        qtbot.waitUntil(lambda: "LOGIN REFUSED" in button.text(), timeout=15000)
        assert console.window.status.mqtt_state == "error"
        assert "milkconsole mqtt login" in button.toolTip()
        # The parlour goes on: the meters are polled and show up in the status bar.
        qtbot.waitUntil(
            lambda: any(" ok " in b.text() for b in console.window.status.bus_buttons.values()),
            timeout=15000,
        )
    finally:
        console.shutdown()
