"""Fixtures for the MQTT tests: a real mosquitto (`broker`), settings and subscribers for it.

Taken in by tests/ui/conftest.py and tests/acceptance/conftest.py (a real broker is no core test's
business). The broker is Debian's `mosquitto` on free loopback ports, with a password file (user
`parlour`), persistence in the test's directory and a TLS listener whose certificate a CA made for
the test signed; it is stopped at the end. A missing mosquitto fails the test (run
scripts/bootstrap.sh): it is never skipped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from milkconsole.mqtt.client import Received, Subscription
from milkconsole.mqtt.settings import MqttSettings, parse_mqtt_settings
from simulators.broker import Mosquitto

USER = "parlour"
PASSWORD = "milk-and-honey-7"
FARM = "FARM1"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker", users={USER: PASSWORD, "watcher": "watch-it-9"})
    b.start()
    try:
        yield b
    finally:
        b.stop()
        print(f"--- mosquitto log ---\n{b.log_tail()}")  # shown when the test fails


def mqtt_section(broker: Mosquitto, *, tls: bool = True, **changes: Any) -> dict[str, Any]:
    section: dict[str, Any] = {"host": "127.0.0.1", "username": USER, "client_id": "console-1"}
    if tls:
        section.update(port=broker.tls_port, ca_file=str(broker.ca_file))
    else:
        section.update(port=broker.port)
    section.update(changes)
    return section


def settings_for(broker: Mosquitto, *, tls: bool = True, **changes: Any) -> MqttSettings:
    return parse_mqtt_settings(mqtt_section(broker, tls=tls, **changes), "parlour.toml", FARM)


def toml_section(section: dict[str, Any]) -> str:
    """`[mqtt]` as TOML text (strings, integers and booleans are all a section holds)."""
    lines = ["[mqtt]"]
    for k, v in section.items():
        lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"


def subscribe(
    broker: Mosquitto, topic: str = "dairy/#", *, client_id: str = "watcher-1"
) -> Subscription:
    """A persistent subscriber (what arrives while it is away waits for it at the broker),
    stopped at the end of the test (its network thread must not outlive it)."""
    s = parse_mqtt_settings(
        {"host": "127.0.0.1", "port": broker.port, "username": "watcher"}, "watcher.toml", FARM
    )
    sub = Subscription(s, "watch-it-9", topic, client_id=client_id).start()
    _SUBSCRIPTIONS.append(sub)
    return sub


_SUBSCRIPTIONS: list[Subscription] = []


@pytest.fixture(autouse=True)
def _subscriptions_end_with_their_test() -> Iterator[None]:
    yield
    while _SUBSCRIPTIONS:
        _SUBSCRIPTIONS.pop().stop()


class Inbox:
    """Everything a subscription received, kept; `wait_for` polls until a condition holds."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.all: list[Received] = []

    def take(self) -> list[Received]:
        self.all.extend(self.sub.drain())
        return self.all

    def events(self, event: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(topic, message) of every message on an events topic, of `event` if given."""
        out = []
        for m in self.take():
            if m.topic.endswith("/events"):
                body = json.loads(m.payload)
                if event is None or body.get("event") == event:
                    out.append((m.topic, body))
        return out

    def wait_for(self, ok: Callable[[Inbox], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.take()
            if ok(self):
                return
            time.sleep(0.1)
        raise AssertionError(f"{what}: not within {timeout_s} s ({len(self.all)} received)")


def wait_until(ok: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout_s} s")
