"""MQTT publishing against a real mosquitto: throughput, and latency from commit to subscriber.

Standalone (`.venv/bin/python bench/mqtt_load.py [--quick]`), two measurements, printed and
written to `bench/results/mqtt.json`:

- `backlog`: a console back from a week without its broker: N finished sessions' messages in the
  outbox, drained by the publisher over TLS with a password; messages acknowledged per second
  (PUBACK, marked sent) and delivered per second (at a subscriber).
- `live`: finished sessions handed to the recorder at a steady rate (far above a parlour's: 80
  stalls finish about one cow every few seconds); latency from the session's commit (the
  recorder's committed-listener) to the subscriber's receipt, p50 / p95 / max.

For the LAN bench (`bench/lan.py --loads web,mqtt`), `mqtt_load(console, work, seconds)` starts
a broker and the publisher of a running console and a subscriber in another process; its
figures function returns the same latency figures for the sessions that console committed
within the bench's measured window.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from milkconsole.app.runtime import ParlourRuntime  # noqa: E402
from milkconsole.config import load_config  # noqa: E402
from milkconsole.meters.events import SessionCompleted, SessionSnapshot  # noqa: E402
from milkconsole.meters.parlour import MeterConfig  # noqa: E402
from milkconsole.mqtt.client import Subscription  # noqa: E402
from milkconsole.mqtt.publisher import MqttPublisher  # noqa: E402
from milkconsole.mqtt.settings import MqttSettings, parse_mqtt_settings  # noqa: E402
from milkconsole.store import open_database  # noqa: E402
from milkconsole.store.bulk import add_finished_sessions  # noqa: E402
from milkconsole.store.outbound import set_mqtt  # noqa: E402
from milkconsole.store.outbox import Outbox  # noqa: E402
from milkconsole.store.recorder import Recorder  # noqa: E402
from milkconsole.store.sessions import PastMilking  # noqa: E402
from simulators.broker import Mosquitto  # noqa: E402
from simulators.demo import make_demo_config  # noqa: E402

USER, PASSWORD = "parlour", "bench-password-1"
WATCHER, WATCHER_PASSWORD = "watcher", "bench-watch-2"
T0 = datetime(2025, 3, 1, 4, 30, tzinfo=UTC)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def ms(values: list[float]) -> dict[str, Any]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 1)

    return {
        "n": len(values),
        "p50": r(pct(values, 0.5)),
        "p95": r(pct(values, 0.95)),
        "max": r(max(values) if values else None),
    }


def start_broker(work: Path) -> Mosquitto:
    return Mosquitto(work / "mosquitto", users={USER: PASSWORD, WATCHER: WATCHER_PASSWORD}).start()


def publisher_settings(broker: Mosquitto, work: Path, farm_code: str) -> MqttSettings:
    """TLS with certificate checks and a password from an owner-only file, as a farm has it."""
    secret = work / "mqtt-password"
    secret.write_text(PASSWORD, encoding="utf-8")
    secret.chmod(0o600)
    section = {
        "host": "127.0.0.1",
        "port": broker.tls_port,
        "ca_file": str(broker.ca_file),
        "username": USER,
        "client_id": "bench-console",
        "secret_file": str(secret),
    }
    return parse_mqtt_settings(section, "bench.toml", farm_code)


def watcher(broker: Mosquitto, topic: str, client_id: str) -> Subscription:
    settings = parse_mqtt_settings(
        {"host": "127.0.0.1", "port": broker.port, "username": WATCHER}, "bench.toml", "BENCH"
    )
    return Subscription(settings, WATCHER_PASSWORD, topic, client_id=client_id).start()


def session_ids(messages: list[Any]) -> dict[str, float]:
    """session_id -> first receipt time, of the session_complete messages among `messages`."""
    out: dict[str, float] = {}
    for m in messages:
        if m.topic.endswith("/events"):
            body = json.loads(m.payload)
            if body.get("event") == "session_complete":
                out.setdefault(body["session_id"], m.received_at)
    return out


# -- standalone: the backlog ------------------------------------------------------------------


def backlog(work: Path, n: int) -> dict[str, Any]:
    broker = start_broker(work)
    db = open_database(work / "backlog.sqlite")
    try:
        with db.write() as tx:
            set_mqtt(tx, "BENCH")
        Recorder(db, farm_code="BENCH").upsert_meters(
            [
                MeterConfig(id=f"M{i + 1:02d}", bus="b", unit=i + 1, profile="gea", stall=i + 1)
                for i in range(24)
            ]
        )
        for start in range(0, n, 1000):
            milkings = []
            for i in range(start, min(n, start + 1000)):
                began = T0 + timedelta(seconds=20 * i)
                snap = SessionSnapshot(
                    key=f"BENCH-{i:06d}",
                    meter_id=f"M{i % 24 + 1:02d}",
                    stall=i % 24 + 1,
                    started_at=began,
                    state="completed",
                    ended_at=began + timedelta(minutes=7),
                    duration_s=420.0,
                    yield_l=11.5,
                )
                milkings.append(PastMilking(snap, destination=None))
            add_finished_sessions(db, milkings)
        sub = watcher(broker, "dairy/+/milk_meters/+/events", "bench-backlog")
        publisher = MqttPublisher(db, publisher_settings(broker, work, "BENCH"))
        t0, wall0 = time.perf_counter(), time.time()
        publisher.start()
        outbox = Outbox(db, "mqtt")
        while outbox.waiting() and time.perf_counter() - t0 < 600:
            time.sleep(0.05)
        acked_s = time.perf_counter() - t0
        got: list[Any] = []
        while len(got) < n and time.perf_counter() - t0 < 600:
            got += sub.drain()
            time.sleep(0.02)
        delivered_s = max(m.received_at for m in got) - wall0 if got else math.inf
        publisher.stop()
        sub.stop()
        return {
            "messages": n,
            "acked_s": round(acked_s, 2),
            "acked_per_s": round(n / acked_s),
            "delivered": len(got),
            "delivered_per_s": round(len(got) / delivered_s),
            "sent_marked": outbox.counts()["sent"],
        }
    finally:
        db.close()
        broker.stop()


# -- standalone: live latency -----------------------------------------------------------------


def live(work: Path, rate_per_s: float, seconds: float) -> dict[str, Any]:
    broker = start_broker(work)
    cfg = load_config(make_demo_config(work / "parlour", stalls=24))
    db = open_database(work / "live.sqlite")
    runtime = ParlourRuntime(cfg, db)
    committed: dict[str, float] = {}

    def on_committed(events: list[object]) -> None:
        now = time.time()
        for e in events:
            if isinstance(e, SessionCompleted):
                committed.setdefault(e.session.key, now)

    runtime.add_committed_listener(on_committed)
    sub = watcher(broker, "dairy/+/milk_meters/+/events", "bench-live")
    try:
        runtime.start_recorder()
        runtime.start_mqtt(settings=publisher_settings(broker, work, cfg.farm_code))
        n = int(rate_per_s * seconds)
        t0 = time.perf_counter()
        for i in range(n):
            meter = cfg.meters[i % len(cfg.meters)]
            began = datetime.now(UTC) - timedelta(minutes=7)
            runtime.recorder.submit(
                SessionCompleted(
                    SessionSnapshot(
                        key=f"LIVE-{i:06d}",
                        meter_id=meter.id,
                        stall=meter.stall,
                        started_at=began,
                        state="completed",
                        ended_at=began + timedelta(minutes=7),
                        duration_s=420.0,
                        yield_l=10.0 + i % 7,
                    )
                )
            )
            time.sleep(max(0.0, t0 + (i + 1) / rate_per_s - time.perf_counter()))
        deadline = time.monotonic() + 30
        got: list[Any] = []
        while time.monotonic() < deadline:
            got += sub.drain()
            if len(session_ids(got)) >= n:
                break
            time.sleep(0.05)
        received = session_ids(got)
        latencies = [received[k] - committed[k] for k in received if k in committed]
        assert runtime.mqtt is not None
        return {
            "sessions": n,
            "rate_per_s": rate_per_s,
            "received": len(received),
            "latency_commit_to_subscriber_ms": ms(latencies),
            "publisher_state": runtime.mqtt.status.state,
        }
    finally:
        sub.stop()
        runtime.stop()
        db.close()
        broker.stop()


# -- for bench/lan.py ---------------------------------------------------------------------------


def mqtt_load(
    console: Any, work: Path, seconds: float
) -> tuple[Callable[[tuple[float, float]], dict[str, Any]], Callable[[], None]]:
    """Publish a running console's milkings to a real mosquitto for `seconds`: starts the
    broker, the console's publisher (TLS, password) and a subscriber in another process, and
    notes when each session was committed. Returns (figures, stop) as `bench/lan.py` expects:
    `figures((w0, w1))` counts the sessions committed between wall times w0 and w1."""
    work = Path(tempfile.mkdtemp(prefix="mqtt-", dir=work))
    broker = start_broker(work)
    committed: dict[str, float] = {}
    lock = threading.Lock()

    def on_committed(events: list[object]) -> None:
        now = time.time()
        with lock:
            for e in events:
                if isinstance(e, SessionCompleted):
                    committed.setdefault(e.session.key, now)

    out = work / "subscriber.json"
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--subscriber-child",
            json.dumps({"port": broker.port, "seconds": seconds + 1, "out": str(out)}),
        ],
        cwd=ROOT,
    )
    time.sleep(1.0)  # the subscriber connects before the first message
    console.runtime.add_committed_listener(on_committed)
    runtime = console.runtime
    settings = publisher_settings(broker, work, console.config.farm_code)
    runtime.start_mqtt(console.bridge.publish, settings=settings)
    sent0 = runtime.mqtt.sent_total if runtime.mqtt is not None else 0
    t0 = time.monotonic()

    def figures(window: tuple[float, float]) -> dict[str, Any]:
        child.wait(seconds + 60)
        received: dict[str, float] = json.loads(out.read_text(encoding="utf-8"))
        w0, w1 = window
        with lock:
            inside = {k: t for k, t in committed.items() if w0 <= t <= w1}
        latencies = [received[k] - inside[k] for k in received if k in inside]
        publisher = runtime.mqtt
        elapsed = time.monotonic() - t0
        sent = (publisher.sent_total - sent0) if publisher is not None else 0
        return {
            "sessions_committed": len(inside),
            "sessions_received": sum(1 for k in inside if k in received),
            "messages_acked": sent,
            "acked_per_s": round(sent / elapsed, 1) if elapsed else None,
            "latency_commit_to_subscriber_ms": ms(latencies),
            "publisher_state": publisher.status.state if publisher is not None else None,
        }

    def stop() -> None:
        if child.poll() is None:
            child.terminate()
            child.wait(10)
        if runtime.mqtt is not None:
            runtime.mqtt.stop()
        broker.stop()

    return figures, stop


def subscriber_child(spec: str) -> None:
    """(another process) Subscribe for `seconds`; write session_id -> first receipt time."""
    cfg = json.loads(spec)
    settings = parse_mqtt_settings(
        {"host": "127.0.0.1", "port": cfg["port"], "username": WATCHER}, "bench.toml", "BENCH"
    )
    sub = Subscription(
        settings,
        WATCHER_PASSWORD,
        "dairy/+/milk_meters/+/events",
        client_id=f"bench-lan-{os.getpid()}",
    ).start()
    got: list[Any] = []
    until = time.monotonic() + cfg["seconds"]
    while time.monotonic() < until:
        got += sub.drain()
        time.sleep(0.05)
    sub.stop()
    Path(cfg["out"]).write_text(json.dumps(session_ids(got)), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (smoke test)")
    parser.add_argument("--subscriber-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.subscriber_child:
        subscriber_child(args.subscriber_child)
        return 0
    from bench.results_io import save

    n, rate, seconds = (2000, 10.0, 10.0) if args.quick else (10000, 20.0, 30.0)
    with tempfile.TemporaryDirectory(prefix="milkconsole-mqtt-bench-") as tmp:
        work = Path(tmp)
        figures = {
            "quick": args.quick,
            "transport": "MQTT 3.1.1 over TLS, password, QoS 1, mosquitto on loopback",
            "backlog": backlog(work / "backlog", n),
            "live": live(work / "live", rate, seconds),
            "cpu_count": os.cpu_count(),
        }
    print(json.dumps(figures, indent=2))
    print(f"written {save('mqtt', figures)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
