"""The MQTT publisher: the outbox's 'mqtt' rows to the farm's broker, on a thread of its own.

At start it takes the database's MQTT lock (one publisher per database, across processes) and
puts rows a stopped process left in flight back to pending. Then, while the broker is there, it
claims due rows oldest first, publishes each at QoS 1 (retained where the row says), and marks
a row sent only once the broker acknowledged it (PUBACK). A connection that drops takes its
unacknowledged rows back to pending; they go again, under the same message id, when the broker
is back (exponential back-off with jitter meanwhile). So a message is delivered at least once
and a repeat can be recognised: nothing is lost to an outage, a restart or a `kill -9`.

The console announces itself on `dairy/{farm}/consoles/{client id}/status`: "online" (retained)
once connected, "offline" as its last will and when it stops.

A refused login or an untrusted certificate is a state (`auth_failed`, `tls_failed`) with words
saying what to do, tried again every `auth_retry_s` or at `retry_now()`; the thread never ends
on an error. Meter status changes reach it from the pollers (`meter_state_changed`) and are
written to the outbox by this thread, so a poller never waits on the database.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from milkconsole.clock import SYSTEM_CLOCK
from milkconsole.meters.events import MeterHealth, MeterStateChanged, SessionCompleted
from milkconsole.mqtt.client import (
    BrokerAuthError,
    BrokerConnection,
    BrokerError,
    BrokerTlsError,
    Will,
)
from milkconsole.mqtt.password import find_password
from milkconsole.mqtt.settings import MqttSettings
from milkconsole.mqtt.status import BrokerStateName, MqttStatus
from milkconsole.store.db import Database
from milkconsole.store.outbound import queue_meter_status
from milkconsole.store.outbox import Outbox, OutboxItem
from milkconsole.sync.lock import SyncBusy, SyncLock
from milkconsole.sync.secrets import SecretsError

log = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"
PUMP_S = 0.05  # the network loop's wait: how late a newly queued message can be noticed
STATUS_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class _MeterStatus:
    meter_id: str
    status: str
    at: datetime
    detail: str | None = None


def encode(item: OutboxItem) -> tuple[str, bytes, bool]:
    """The topic, payload and retain flag of an outbox row; ValueError when it is not one."""
    try:
        topic = item.payload["topic"]
        message = item.payload["message"]
        retain = bool(item.payload.get("retain", False))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not an MQTT message (missing {exc})") from exc
    if not isinstance(topic, str) or not topic or "+" in topic or "#" in topic:
        raise ValueError(f"not a topic one can publish on: {topic!r}")
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return topic, body.encode("utf-8"), retain


class MqttPublisher:
    """Sends the 'mqtt' outbox on its own plain thread; for the gateway and the console.

    `on_status(MqttStatus)` is called from that thread on every change of state and at most
    every second while messages drain (the console turns it into a queued Qt signal). Call
    `notify()` after something was queued (the runtime does, after each committed session);
    rows queued elsewhere (an alert acknowledged at the console) are found within
    `idle_check_s`.
    """

    def __init__(
        self,
        db: Database,
        settings: MqttSettings,
        on_status: Callable[[MqttStatus], None] | None = None,
        *,
        meters: Sequence[MeterHealth] = (),
        password: Callable[[MqttSettings], str | None] = find_password,
        window: int = 200,
        retry_first_s: float = 1.0,
        retry_max_s: float = 60.0,
        auth_retry_s: float = 300.0,
        idle_check_s: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.outbox = Outbox(db, "mqtt")
        self._on_status = on_status
        self._password = password
        self.window = window
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self.auth_retry_s = auth_retry_s
        self.idle_check_s = idle_check_s
        self._rng = rng or random.Random()
        self._lock_file = SyncLock(
            Path(f"{db.path}.mqtt-lock"), "publishing {database} to the MQTT broker"
        )
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._force = threading.Event()
        self._thread: threading.Thread | None = None
        self._meter_lock = threading.Lock()
        # Each meter's status as the pollers see it now (offline until it first answers) is
        # said first, so a subscriber is not left with a retained "ok" from before a restart.
        now = SYSTEM_CLOCK.now()
        self._meter_states: deque[_MeterStatus] = deque(
            _MeterStatus(h.meter_id, h.state, now, h.last_error if h.state != "ok" else None)
            for h in meters
        )
        self._conn: BrokerConnection | None = None
        self._inflight: dict[int, int] = {}  # paho mid -> outbox row id
        self._acked: list[int] = []
        self._more = True  # rows may be due: claim without waiting for a wake-up
        self._next_check = 0.0
        self._failures = 0
        self._next_connect = 0.0
        self._status = MqttStatus("connecting", settings.broker)
        self._status_lock = threading.Lock()
        self._reported_at = 0.0
        self._told: MqttStatus | None = None
        self.sent_total = 0

    # -- any thread ---------------------------------------------------------------------------
    @property
    def status(self) -> MqttStatus:
        with self._status_lock:
            return self._status

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("MqttPublisher already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="milkconsole-mqtt", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Say "offline", disconnect and end the thread; True when it ended in time. Rows not
        acknowledged yet stay in the outbox and go at the next start."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                return False
        self._thread = None
        return True

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def notify(self) -> None:
        """Something was queued: look for it now (connected), or at the next connect."""
        self._wake.set()

    def on_committed(self, events: list[object]) -> None:
        """A `ParlourRuntime` committed-listener: a finished session was stored, send it."""
        if any(isinstance(e, SessionCompleted) for e in events):
            self.notify()

    def meter_state_changed(self, event: MeterStateChanged) -> None:
        """A poller saw a meter go ok / degraded / offline (called on the poller's thread;
        never waits on the database)."""
        h = event.health
        detail = h.last_error if h.state != "ok" else None
        with self._meter_lock:
            self._meter_states.append(_MeterStatus(h.meter_id, h.state, SYSTEM_CLOCK.now(), detail))
        self._wake.set()

    def retry_now(self) -> None:
        """Connect now, even after a refused login (someone stored the right password)."""
        self._force.set()
        self._wake.set()

    # -- the publisher's thread -----------------------------------------------------------------
    def _run(self) -> None:
        try:
            if not self._take_lock():
                return
            n = self.outbox.reset_in_flight()
            if n:
                log.info("MQTT: %d messages were in flight when we stopped; sending again", n)
            if self.settings.tls and not self.settings.verify_tls:
                log.warning(
                    "MQTT: verify_tls = false: the broker at %s is not checked to be who it "
                    "says it is",
                    self.settings.broker,
                )
            while not self._stop.is_set():
                try:
                    self._step()
                except Exception as exc:  # a bug must not end the thread: log it, back off
                    log.exception("MQTT publisher step failed")
                    self._failures += 1
                    self._drop_connection(f"{type(exc).__name__}: {exc}")
                    self._set_state("offline", f"{type(exc).__name__}: {exc}")
                    self._schedule_reconnect()
        finally:
            self._shutdown()

    def _take_lock(self) -> bool:
        while not self._stop.is_set():
            try:
                self._lock_file.acquire()
                return True
            except SyncBusy as exc:
                self._set_state("busy", str(exc))
                self._stop.wait(30.0)
        return False

    def _step(self) -> None:
        self._write_meter_states()
        conn = self._conn
        if conn is None or not conn.connected:
            if conn is not None:
                self._lost(conn.lost_reason or "connection lost")
            if self._force.is_set():
                self._force.clear()
                self._next_connect = 0.0
            left = self._next_connect - time.monotonic()
            if left > 0:
                self._wake.wait(min(left, 0.5))
                self._wake.clear()
                return
            self._connect()
            return
        self._send_due(conn)
        conn.pump(PUMP_S)
        self._mark_acked()
        self._report()

    def _connect(self) -> None:
        s = self.settings
        if self.status.state not in ("offline", "auth_failed", "tls_failed"):
            self._set_state("connecting", None)
        try:
            password = self._password(s)
        except SecretsError as exc:
            self._failed("auth_failed", f"the MQTT password cannot be read: {exc}")
            return
        if s.username is not None and password is None:
            hint = f"no password is stored for {s.account}; run `milkconsole mqtt login`"
        else:
            hint = None
        conn = BrokerConnection(
            s, password, on_acked=self._on_acked, will=Will(s.console_topic, OFFLINE)
        )
        try:
            conn.connect()
        except BrokerAuthError as exc:
            conn.close()
            self._failed("auth_failed", f"{exc}" + (f" ({hint})" if hint else ""))
            return
        except BrokerTlsError as exc:
            conn.close()
            self._failed("tls_failed", str(exc))
            return
        except BrokerError as exc:
            conn.close()
            self._failed("offline", str(exc))
            return
        self._conn = conn
        if self._failures:
            log.info("MQTT: connected to %s again", s.broker)
        else:
            log.info("MQTT: connected to %s as %s", s.broker, s.client_id)
        self._failures = 0
        conn.publish(s.console_topic, ONLINE, retain=True)
        self._more = True
        self._set_state("online", None)

    def _failed(self, state: BrokerStateName, error: str) -> None:
        self._failures += 1
        if state != self.status.state or self._failures == 1:
            level = logging.ERROR if state in ("auth_failed", "tls_failed") else logging.WARNING
            log.log(level, "MQTT: %s; messages wait in the outbox", error)
        else:
            log.debug("MQTT: still %s: %s", state, error)
        self._set_state(state, error)
        if state in ("auth_failed", "tls_failed"):
            # Each try is a refused login at the broker: seldom, until someone fixes it.
            self._next_connect = time.monotonic() + self.auth_retry_s
        else:
            self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        ceiling = min(self.retry_max_s, self.retry_first_s * 2 ** min(self._failures - 1, 30))
        self._next_connect = time.monotonic() + self._rng.uniform(ceiling / 2, ceiling)

    def _lost(self, reason: str) -> None:
        log.warning("MQTT: %s; %d unacknowledged message(s) go again", reason, len(self._inflight))
        self._drop_connection(reason)
        self._failures = max(self._failures, 1)
        self._set_state("offline", reason)
        self._schedule_reconnect()

    def _drop_connection(self, reason: str) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                log.debug("MQTT: closing a dead connection failed", exc_info=True)
        self._mark_acked()
        if self._inflight:
            self.outbox.release(list(self._inflight.values()), reason)
            self._inflight.clear()
        self._more = True

    def _send_due(self, conn: BrokerConnection) -> None:
        room = self.window - len(self._inflight)
        now = time.monotonic()
        due = self._more or self._wake.is_set() or now >= self._next_check
        if room <= 0 or not due:
            return
        self._wake.clear()
        self._next_check = now + self.idle_check_s
        items = self.outbox.claim(None, room, SYSTEM_CLOCK.now())
        self._more = len(items) == room
        for item in items:
            try:
                topic, payload, retain = encode(item)
            except ValueError as exc:
                log.error("MQTT: outbox row %d refused for good: %s", item.id, exc)
                self.outbox.mark_dead(item.id, str(exc))
                continue
            self._inflight[conn.publish(topic, payload, retain=retain)] = item.id

    def _on_acked(self, mid: int) -> None:
        row = self._inflight.pop(mid, None)
        if row is not None:
            self._acked.append(row)

    def _mark_acked(self) -> None:
        if not self._acked:
            return
        rows, self._acked = self._acked, []
        self.outbox.mark_sent(dict.fromkeys(rows))
        self.sent_total += len(rows)
        with self._status_lock:
            self._status = replace(
                self._status, sent=self.sent_total, last_sent_at=SYSTEM_CLOCK.now()
            )
        if len(rows) >= self.window // 2:
            self._more = True

    def _write_meter_states(self) -> None:
        with self._meter_lock:
            if not self._meter_states:
                return
            todo = list(self._meter_states)
            self._meter_states.clear()
        try:
            with self.db.write() as tx:
                for m in todo:
                    queue_meter_status(tx, m.meter_id, m.status, m.at, m.detail)
        except Exception:
            with self._meter_lock:  # not written: first in line for the next try
                self._meter_states.extendleft(reversed(todo))
            raise
        self._more = True

    # -- status -------------------------------------------------------------------------------
    def _set_state(self, state: BrokerStateName, error: str | None) -> None:
        with self._status_lock:
            before = self._status
            self._status = replace(before, state=state, last_error=error)
        if (before.state, before.last_error) != (state, error):
            self._report(force=True)

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._reported_at < STATUS_EVERY_S:
            return
        self._reported_at = now
        try:
            backlog = self.outbox.waiting()
        except Exception:
            log.debug("MQTT: counting the backlog failed", exc_info=True)
            backlog = self.status.backlog
        with self._status_lock:
            self._status = replace(self._status, backlog=backlog)
            status = self._status
        if force or status != self._told:
            self._told = status
            self._tell(status)

    def _tell(self, status: MqttStatus) -> None:
        if self._on_status is None:
            return
        try:
            self._on_status(status)
        except Exception:
            log.exception("MQTT status listener failed")

    def _shutdown(self) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is not None and conn.connected:
                conn.pump(0.2)  # acks already on their way
                self._mark_acked()
                conn.close(goodbye=(self.settings.console_topic, OFFLINE))
            elif conn is not None:
                conn.close()
            if self._inflight:
                self.outbox.release(list(self._inflight.values()), "publisher stopped")
                self._inflight.clear()
            self._write_meter_states()
        except Exception:
            log.exception("MQTT publisher did not stop cleanly")
        finally:
            self._lock_file.release()
            self._set_state("stopped", None)
