"""The gateway killed with SIGKILL while it publishes: nothing is lost, a repeat keeps its id.

A gateway process (the real `milkconsole gateway`) records a simulated parlour and publishes a
backlog of 3000 sessions to a real mosquitto. The test kills it -9 at a moment when a message the
subscriber already has is still in flight in the database (published, its PUBACK not yet
marked): that message must come again after the restart, under the same message id and with
the same body, and every message queued must arrive.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select

from milkconsole.config import load_config
from milkconsole.store import open_database
from milkconsole.store.db import Database
from milkconsole.store.outbound import set_mqtt
from milkconsole.store.schema import OutboxRow, SessionRow
from simulators.broker import Mosquitto
from simulators.demo import SimulatedParlour, make_demo_config
from tests.helpers.mqtt_fixtures import FARM, PASSWORD, Inbox, mqtt_section, subscribe, toml_section
from tests.helpers.odoo_fixtures import record_sessions

ROOT = Path(__file__).resolve().parents[2]
TIME_SCALE = 60.0
BACKLOG_COWS, BACKLOG_MILKINGS = 100, 30
ATTEMPTS = 5


def gateway(cfg_path: Path, db: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, MILKCONSOLE_LOG_DIR=str(db.parent / "logs"))
    args = ["gateway", "--config", str(cfg_path), "--db", str(db)]
    return subprocess.Popen(
        [sys.executable, "-m", "milkconsole", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def mqtt_rows(db: Database, state: str | None = None) -> dict[str, str]:
    """record key (the message id) -> state, of every MQTT outbox row (in `state`)."""
    query = select(OutboxRow.record_key, OutboxRow.state).where(OutboxRow.channel == "mqtt")
    if state is not None:
        query = query.where(OutboxRow.state == state)
    with db.read() as tx:
        return {key: value for key, value in tx.execute(query)}


def received_ids(inbox: Inbox) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for _topic, m in inbox.events():
        out[m["message_id"]].append(m)
    for m in inbox.all:
        if m.topic.endswith("/state"):
            body = json.loads(m.payload)
            out[body["message_id"]].append(body)
    return out


def kill_while_in_flight(gw: subprocess.Popen[str], db: Database, inbox: Inbox) -> set[str]:
    """SIGKILL `gw` as soon as a message the subscriber has is still in flight in the
    database; returns the ids in flight at the kill that the subscriber already had."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and gw.poll() is None:
        in_flight = set(mqtt_rows(db, "in_flight"))
        if in_flight & set(received_ids(inbox)):
            break
        time.sleep(0.005)
    os.kill(gw.pid, signal.SIGKILL)
    gw.wait(10)
    return set(mqtt_rows(db, "in_flight")) & set(received_ids(inbox))


@pytest.mark.slow
def test_gateway_killed_mid_publish_loses_nothing_and_repeats_keep_their_id(
    tmp_path: Path, broker: Mosquitto
) -> None:
    cfg_path = make_demo_config(tmp_path, stalls=24, time_scale=TIME_SCALE)
    secret = tmp_path / "mqtt-password"
    secret.write_text(PASSWORD, encoding="utf-8")
    secret.chmod(0o600)
    with cfg_path.open("a", encoding="utf-8") as fh:
        fh.write("\n" + toml_section(mqtt_section(broker, secret_file=str(secret))))
    cfg = load_config(cfg_path)
    db_path = tmp_path / "gateway.sqlite"
    db = open_database(db_path)
    with db.write() as tx:
        set_mqtt(tx, FARM)
    # What a console holds after a week without its broker: thousands of messages to send.
    record_sessions(db, BACKLOG_COWS, BACKLOG_MILKINGS, prefix="WEEK")
    queued = set(mqtt_rows(db))
    assert len(queued) == BACKLOG_COWS * BACKLOG_MILKINGS
    inbox = Inbox(subscribe(broker))
    cows = 24
    park = SimulatedParlour(cfg, cows=cows, seed=9, time_scale=TIME_SCALE)
    repeated: set[str] = set()
    with contextlib.ExitStack() as stack:
        stack.callback(db.close)
        stack.callback(park.stop)
        park.start(scenario=True)
        for _attempt in range(ATTEMPTS):
            gw = gateway(cfg_path, db_path)
            repeated = kill_while_in_flight(gw, db, inbox)
            if repeated:
                break
        assert repeated, f"no kill in {ATTEMPTS} tries caught a message between broker and mark"
        gw = gateway(cfg_path, db_path)
        try:
            assert park.scenario.wait_done(timeout=300), "scenario did not finish"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                time.sleep(0.5)
                states = mqtt_rows(db)
                with db.read() as tx:
                    open_sessions = tx.scalar(
                        select(SessionRow.key).where(SessionRow.state == "in_progress")
                    )
                if open_sessions is None and set(states.values()) == {"sent"}:
                    break
        finally:
            gw.send_signal(signal.SIGTERM)
            _out, err = gw.communicate(timeout=30)
            print(err[-4000:])  # the restarted gateway's log, shown when the test fails
        assert gw.returncode == 0, err[-2000:]
    states = mqtt_rows(db)
    assert set(states.values()) == {"sent"}, {k: v for k, v in states.items() if v != "sent"}
    inbox.wait_for(lambda i: set(received_ids(i)) >= set(states), 30, "every message delivered")
    got = received_ids(inbox)
    assert set(got) >= set(states), sorted(set(states) - set(got))[:5]  # nothing lost
    for message_id in repeated:
        copies = got[message_id]
        assert len(copies) >= 2, message_id  # it went again after the restart...
        assert all(c == copies[0] for c in copies)  # ...under the same id, the same message
    with db.read() as tx:
        sessions = set(tx.scalars(select(SessionRow.key).where(SessionRow.state != "in_progress")))
    published = {m["session_id"] for _t, m in inbox.events("session_complete")}
    assert published >= sessions  # the backlog and every milking the gateway recorded
    assert len(sessions) >= len(queued) + cows
