"""The MQTT publisher against a real broker (Debian's mosquitto, see
tests/helpers/mqtt_fixtures.py).

A simulated parlour milks over real Modbus; every finished session must reach a subscriber once,
on the seed's topic with the seed's keys, over TLS with a password. The broker is stopped for a
while and started again: nothing is lost. A wrong password or a certificate nobody trusts is a
clear status, not a crash, and the messages wait.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from milkconsole.app.runtime import ParlourRuntime
from milkconsole.config import ParlourConfig, load_config
from milkconsole.mqtt.publisher import MqttPublisher
from milkconsole.mqtt.status import MqttStatus
from milkconsole.store import open_database
from milkconsole.store.db import Database
from milkconsole.store.outbound import iso_z, queue_meter_status, set_mqtt
from milkconsole.store.outbox import Outbox
from milkconsole.store.sessions import SessionRecord
from simulators.broker import Mosquitto, make_ca
from simulators.demo import SimulatedParlour, make_demo_config
from tests.acceptance.test_parlour_end_to_end import wait_until_recorded
from tests.helpers.mqtt_fixtures import (
    FARM,
    PASSWORD,
    Inbox,
    mqtt_section,
    settings_for,
    subscribe,
    toml_section,
    wait_until,
)

TIME_SCALE = 120.0
SEED_KEYS = {
    "event",
    "session_id",
    "meter_id",
    "animal_id",
    "yield_liters",
    "duration_seconds",
    "timestamp",
}


def parlour_config(tmp_path: Path, broker: Mosquitto, stalls: int = 24) -> ParlourConfig:
    """The demo parlour with `[mqtt]` for the broker: TLS, a password in a 0600 secret file."""
    path = make_demo_config(tmp_path, stalls=stalls, time_scale=TIME_SCALE)
    secret = tmp_path / "mqtt-password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    os.chmod(secret, 0o600)
    section = mqtt_section(broker, farm_code=FARM, secret_file=str(secret))
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n" + toml_section(section))
    return load_config(path)


@contextlib.contextmanager
def running_parlour(
    tmp_path: Path, cfg: ParlourConfig, cows: int, statuses: list[MqttStatus]
) -> Iterator[tuple[ParlourRuntime, SimulatedParlour]]:
    db = open_database(tmp_path / "parlour.sqlite")
    runtime = ParlourRuntime(cfg, db)
    park = SimulatedParlour(cfg, cows=cows, seed=21, time_scale=TIME_SCALE)
    with contextlib.ExitStack() as stack:
        stack.callback(db.close)
        stack.callback(park.stop)
        park.start(scenario=False)
        assert runtime.start_mqtt(statuses.append)
        stack.callback(runtime.stop)
        runtime.start_threads()
        yield runtime, park


def finished(rows: list[SessionRecord]) -> dict[str, SessionRecord]:
    return {r.key: r for r in rows if r.state != "in_progress"}


def assert_each_session_published(
    inbox: Inbox, sessions: dict[str, SessionRecord], *, exactly_once: bool
) -> None:
    got = inbox.events("session_complete")
    counts = Counter(m["session_id"] for _t, m in got)
    assert set(counts) == set(sessions), (
        f"missing {sorted(set(sessions) - set(counts))[:5]}, "
        f"unknown {sorted(set(counts) - set(sessions))[:5]}"
    )
    if exactly_once:
        assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1][:5]
    by_id: dict[str, list[dict]] = defaultdict(list)
    for topic, m in got:
        rec = sessions[m["session_id"]]
        assert topic == f"dairy/{FARM}/milk_meters/{rec.meter_id}/events"
        assert set(m) >= SEED_KEYS, m
        assert m["meter_id"] == rec.meter_id
        assert m["yield_liters"] == round(rec.yield_l, 2)
        assert m["duration_seconds"] == round(rec.duration_s)
        assert m["session_key"] == rec.key and "quality" in m
        assert m["timestamp"] == iso_z(rec.ended_at or rec.started_at)
        by_id[m["message_id"]].append(m)
    for copies in by_id.values():  # a repeat is the same message under the same id
        assert all(c == copies[0] for c in copies)


def test_every_finished_session_of_a_parlour_arrives_once_on_the_seeds_topic(
    tmp_path: Path, broker: Mosquitto
) -> None:
    cfg = parlour_config(tmp_path, broker)
    inbox = Inbox(subscribe(broker))
    statuses: list[MqttStatus] = []
    cows = 48
    with running_parlour(tmp_path, cfg, cows, statuses) as (runtime, park):
        park.scenario.start()
        assert park.scenario.wait_done(timeout=300), "scenario did not finish"
        sessions = finished(wait_until_recorded(runtime.store, cows, timeout_s=30))
        inbox.wait_for(
            lambda i: len(i.events("session_complete")) >= len(sessions),
            30,
            "every session published",
        )
        assert runtime.mqtt is not None
        wait_until(lambda: runtime.mqtt.status.backlog == 0, 10, "outbox drained")  # type: ignore[union-attr]
        assert runtime.mqtt.status.state == "online"
        # A subscriber that comes later is told each meter's state (retained) and that the
        # console is online.
        late = Inbox(subscribe(broker, "dairy/#", client_id="late-comer"))
        late.wait_for(lambda i: len(i.all) >= len(cfg.meters) + 1, 10, "retained states")
        retained = {m.topic: m.payload for m in late.all if m.retain}
        for meter in cfg.meters:
            state = json.loads(retained[f"dairy/{FARM}/milk_meters/{meter.id}/state"])
            assert state["status"] == "ok" and state["meter_id"] == meter.id
        assert retained[f"dairy/{FARM}/consoles/console-1/status"] == b"online"
        late.sub.stop()
    assert len(sessions) >= cows
    assert_each_session_published(inbox, sessions, exactly_once=True)
    # Stopped cleanly: the console's retained status now says offline.
    after = Inbox(subscribe(broker, f"dairy/{FARM}/consoles/#", client_id="after"))
    after.wait_for(lambda i: bool(i.all), 10, "console status")
    assert after.all[-1].payload == b"offline" and after.all[-1].retain
    assert [s.state for s in statuses][-1] == "stopped"


def test_the_broker_stopped_for_a_while_and_started_again_loses_nothing(
    tmp_path: Path, broker: Mosquitto
) -> None:
    cfg = parlour_config(tmp_path, broker)
    inbox = Inbox(subscribe(broker))
    statuses: list[MqttStatus] = []
    cows = 48
    with running_parlour(tmp_path, cfg, cows, statuses) as (runtime, park):
        park.scenario.start()
        inbox.wait_for(lambda i: len(i.events("session_complete")) >= 4, 120, "first sessions")
        broker.stop()
        publisher = runtime.mqtt
        assert publisher is not None
        wait_until(lambda: publisher.status.state == "offline", 15, "publisher sees it offline")
        assert f"127.0.0.1:{broker.tls_port}" in (publisher.status.last_error or "")
        # Sessions finish meanwhile and wait in the outbox.
        waiting_before = publisher.status.backlog
        wait_until(lambda: publisher.status.backlog > waiting_before + 2, 60, "sessions queue up")
        broker.start()
        assert park.scenario.wait_done(timeout=300), "scenario did not finish"
        sessions = finished(wait_until_recorded(runtime.store, cows, timeout_s=30))
        inbox.wait_for(
            lambda i: {m["session_id"] for _t, m in i.events("session_complete")} >= set(sessions),
            60,
            "every session published after the outage",
        )
        wait_until(lambda: publisher.status.backlog == 0, 15, "outbox drained")
        assert publisher.status.state == "online"
    assert_each_session_published(inbox, sessions, exactly_once=False)
    states = [s.state for s in statuses]
    assert "online" in states[states.index("offline") :], states  # offline, then online again


def queue_statuses(db: Database, n: int) -> None:
    with db.write() as tx:
        set_mqtt(tx, FARM)
        for i in range(n):
            queue_meter_status(tx, "M01", "ok" if i % 2 else "degraded", datetime.now(UTC))


def test_a_wrong_password_is_a_clear_status_and_the_right_one_sends_what_waited(
    tmp_path: Path, broker: Mosquitto, db: Database
) -> None:
    queue_statuses(db, 6)
    password = ["not-the-password"]
    statuses: list[MqttStatus] = []
    publisher = MqttPublisher(
        db, settings_for(broker), statuses.append, password=lambda _s: password[0]
    )
    publisher.start()
    try:
        wait_until(lambda: publisher.status.state == "auth_failed", 15, "login refused")
        err = publisher.status.last_error or ""
        assert "refused the login" in err and "'parlour'" in err
        assert "milkconsole mqtt login" in err
        assert publisher.alive and publisher.status.needs_action
        assert Outbox(db, "mqtt").counts()["sent"] == 0
        inbox = Inbox(subscribe(broker, "dairy/+/milk_meters/#"))
        password[0] = PASSWORD  # someone ran `milkconsole mqtt login`
        publisher.retry_now()
        wait_until(lambda: publisher.status.state == "online", 15, "online with the password")
        inbox.wait_for(lambda i: len(i.all) >= 12, 15, "what waited is sent")
        wait_until(lambda: Outbox(db, "mqtt").counts()["sent"] == 12, 10, "marked sent")
        assert len(inbox.take()) == 12
    finally:
        assert publisher.stop()


def test_a_certificate_nobody_trusts_is_a_clear_status_and_no_crash(
    tmp_path: Path, broker: Mosquitto, db: Database
) -> None:
    queue_statuses(db, 2)
    stranger = make_ca(tmp_path / "other-ca", "Somebody else's CA")
    publisher = MqttPublisher(
        db,
        settings_for(broker, ca_file=str(stranger.cert_file)),
        password=lambda _s: PASSWORD,
    )
    publisher.start()
    try:
        wait_until(lambda: publisher.status.state == "tls_failed", 15, "certificate refused")
        err = publisher.status.last_error or ""
        assert "not trusted" in err and "ca_file" in err
        assert publisher.alive
        assert Outbox(db, "mqtt").counts()["pending"] == 4
    finally:
        assert publisher.stop()


def test_plain_mqtt_spoken_to_the_tls_port_says_so(
    tmp_path: Path, broker: Mosquitto, db: Database
) -> None:
    settings = settings_for(broker, tls=False, port=broker.tls_port)
    publisher = MqttPublisher(db, settings, password=lambda _s: PASSWORD)
    publisher.start()
    try:
        wait_until(lambda: publisher.status.state == "offline", 15, "no connection")
        assert "TLS" in (publisher.status.last_error or "")
        assert publisher.alive
    finally:
        assert publisher.stop()
