"""Every call into paho-mqtt (pinned to 2.x in pyproject.toml), so its next API change touches
this file only.

- `BrokerConnection`: the publisher's one connection. Driven from the publisher's own thread
  (`pump()` runs paho's network loop; callbacks run inside it), so nothing here needs a lock and
  the connection never reconnects behind the publisher's back: one object per connection, and
  what it had not had acknowledged when it dropped is the publisher's to send again.
- `Subscription`: a subscriber on paho's own thread, with a persistent session so messages
  published while it was away wait for it at the broker (`milkconsole mqtt watch`, the tests,
  the bench).

MQTT 3.1.1: every broker a farm is likely to run speaks it. Errors are the core's own
(`BrokerUnavailable`, `BrokerAuthError`, `BrokerTlsError`), each saying what to do.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from milkconsole.errors import MilkConsoleError
from milkconsole.mqtt.settings import MqttSettings

log = logging.getLogger(__name__)

QOS = 1
# What paho keeps in flight at once (its default, 20, throttles a backlog after an outage).
MAX_INFLIGHT = 100
# CONNACK reason codes that mean "who you are" is wrong: fix the login, do not hammer the broker.
_AUTH_REASONS = {"Bad user name or password", "Not authorized"}


class BrokerError(MilkConsoleError):
    """The broker cannot be used now."""


class BrokerUnavailable(BrokerError):
    """No connection: the broker is down, unreachable, or closed the connection."""


class BrokerAuthError(BrokerError):
    """The broker refused the username / password (or this client)."""


class BrokerTlsError(BrokerError):
    """The TLS handshake failed: the broker's certificate is not trusted or not for its host."""


@dataclass(frozen=True, slots=True)
class Will:
    """The message the broker publishes for us when we vanish without a goodbye."""

    topic: str
    payload: bytes
    retain: bool = True


@dataclass(frozen=True, slots=True)
class Received:
    """A message a `Subscription` got, with the wall time it arrived (`time.time()`)."""

    topic: str
    payload: bytes
    retain: bool
    received_at: float


def tls_context(settings: MqttSettings) -> ssl.SSLContext:
    """The client's TLS context: the system's CAs (or `ca_file`'s), certificate and host name
    checked, unless the config says `verify_tls = false`."""
    ctx = ssl.create_default_context(
        cafile=str(settings.ca_file) if settings.ca_file is not None else None
    )
    if not settings.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _new_client(
    settings: MqttSettings, password: str | None, *, client_id: str, clean_session: bool
) -> paho.Client:
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=paho.MQTTv311,
    )
    if settings.username is not None:
        client.username_pw_set(settings.username, password)
    if settings.tls:
        client.tls_set_context(tls_context(settings))
    client.connect_timeout = 10.0
    return client


def _connect_error(settings: MqttSettings, exc: Exception) -> BrokerError:
    where = settings.broker
    if isinstance(exc, ssl.SSLCertVerificationError):
        return BrokerTlsError(
            f"TLS: the certificate of {where} is not trusted ({exc.verify_message}); set "
            "[mqtt] ca_file to the CA that signed it"
        )
    if isinstance(exc, ssl.CertificateError):
        return BrokerTlsError(f"TLS: the certificate of {where} is not for that host ({exc})")
    if isinstance(exc, ssl.SSLError):
        return BrokerTlsError(
            f"TLS with {where} failed ({exc.reason or exc}); is that port TLS (usually 8883)?"
        )
    if isinstance(exc, ConnectionRefusedError):
        return BrokerUnavailable(f"{where} refused the connection (is the broker running?)")
    if isinstance(exc, TimeoutError):
        return BrokerUnavailable(f"{where} did not answer in time")
    if isinstance(exc, OSError):
        return BrokerUnavailable(f"cannot reach {where}: {exc.strerror or exc}")
    return BrokerUnavailable(f"cannot connect to {where}: {exc}")


def _refusal(settings: MqttSettings, reason: ReasonCode) -> BrokerError:
    name = reason.getName()
    if name in _AUTH_REASONS:
        who = f"user {settings.username!r}" if settings.username else "anonymous clients"
        return BrokerAuthError(
            f"{settings.broker} refused the login ({name}) for {who}: store the right password "
            "with `milkconsole mqtt login`"
        )
    return BrokerUnavailable(f"{settings.broker} refused the connection: {name}")


class BrokerConnection:
    """One publisher connection, used from one thread only.

    `on_acked(mid)` is called from inside `pump()` when the broker acknowledged the message that
    `publish()` returned `mid` for.
    """

    def __init__(
        self,
        settings: MqttSettings,
        password: str | None,
        *,
        on_acked: Callable[[int], None],
        will: Will | None = None,
    ) -> None:
        self.settings = settings
        self._on_acked = on_acked
        self._client = _new_client(
            settings, password, client_id=settings.client_id, clean_session=True
        )
        self._client.max_inflight_messages_set(MAX_INFLIGHT)
        if will is not None:
            self._client.will_set(will.topic, will.payload, qos=QOS, retain=will.retain)
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_publish = self._published
        self._connack: ReasonCode | None = None
        self.connected = False
        self.lost_reason: str | None = None

    # -- paho's callbacks (inside pump) -------------------------------------------------------
    def _connected(
        self, _c: paho.Client, _u: object, _flags: object, reason: ReasonCode, _p: object
    ) -> None:
        self._connack = reason
        self.connected = not reason.is_failure

    def _disconnected(
        self, _c: paho.Client, _u: object, _flags: object, reason: ReasonCode, _p: object
    ) -> None:
        if self.connected:
            self.lost_reason = f"connection to {self.settings.broker} lost ({reason.getName()})"
        self.connected = False

    def _published(
        self, _c: paho.Client, _u: object, mid: int, _reason: ReasonCode, _p: object
    ) -> None:
        self._on_acked(mid)

    # -- the publisher's thread ---------------------------------------------------------------
    def connect(self) -> None:
        """Connect (or reconnect) and wait for the broker's answer; raises a `BrokerError`.
        Messages left unacknowledged by a lost connection are sent again once connected."""
        self._connack = None
        self.lost_reason = None
        s = self.settings
        try:
            self._client.connect(s.host, s.port, keepalive=s.keepalive_s)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise _connect_error(s, exc) from exc
        deadline = time.monotonic() + self._client.connect_timeout
        while self._connack is None:
            rc = self._client.loop(0.1)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and self._connack is None:
                raise BrokerUnavailable(
                    f"{s.broker} closed the connection before answering "
                    f"({paho.error_string(rc)}); a TLS port spoken to in plain text does that"
                )
            if time.monotonic() > deadline:
                self._client.disconnect()
                raise BrokerUnavailable(f"{s.broker} did not answer the login in time")
        if self._connack.is_failure:
            raise _refusal(s, self._connack)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """Hand one QoS 1 message to the connection; returns its mid (see `on_acked`)."""
        info = self._client.publish(topic, payload, qos=QOS, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise BrokerUnavailable(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        return int(info.mid)

    def pump(self, timeout_s: float) -> bool:
        """Run the network loop once (waiting up to `timeout_s` for traffic): sends, reads
        acks, keeps the connection alive. False when the connection is gone."""
        if not self.connected:
            return False
        rc = self._client.loop(timeout_s)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            if self.connected:
                self.lost_reason = (
                    f"connection to {self.settings.broker} lost ({paho.error_string(rc)})"
                )
            self.connected = False
        return self.connected

    def close(self, goodbye: tuple[str, bytes] | None = None, timeout_s: float = 2.0) -> None:
        """Say `goodbye` (topic, payload; retained, acknowledged if the broker answers within
        `timeout_s`), disconnect, and let go of the sockets."""
        try:
            if self.connected and goodbye is not None:
                done = False

                def acked(_mid: int) -> None:
                    nonlocal done
                    done = True

                self._on_acked = acked
                self._client.publish(goodbye[0], goodbye[1], qos=QOS, retain=True)
                deadline = time.monotonic() + timeout_s
                while not done and time.monotonic() < deadline and self.pump(0.05):
                    pass
            if self.connected:
                self._client.disconnect()
                self._client.loop(0.1)
        finally:
            self.connected = False
            self._client._reset_sockets()  # paho closes them only when garbage-collected


class Subscription:
    """A subscriber on paho's own thread: every message on `topic_filter` (QoS 1) lands in
    `messages`. `persistent`: the broker keeps what arrives while we are away (clean session
    off), for tests that stop the broker and the subscriber's connection with it."""

    def __init__(
        self,
        settings: MqttSettings,
        password: str | None,
        topic_filter: str,
        *,
        client_id: str,
        persistent: bool = True,
    ) -> None:
        self.settings = settings
        self.topic_filter = topic_filter
        self.messages: queue.Queue[Received] = queue.Queue()
        self.subscribed = threading.Event()
        self.error: str | None = None
        self._client = _new_client(
            settings, password, client_id=client_id, clean_session=not persistent
        )
        self._client.reconnect_delay_set(min_delay=1, max_delay=2)
        self._client.on_connect = self._connected
        self._client.on_subscribe = self._subscribed
        self._client.on_message = self._message

    def _connected(
        self, client: paho.Client, _u: object, _f: object, reason: ReasonCode, _p: object
    ) -> None:
        if reason.is_failure:
            self.error = str(_refusal(self.settings, reason))
            return
        client.subscribe(self.topic_filter, qos=QOS)

    def _subscribed(
        self, _c: paho.Client, _u: object, _mid: int, _codes: object, _p: object
    ) -> None:
        self.subscribed.set()

    def _message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        self.messages.put(Received(msg.topic, bytes(msg.payload), bool(msg.retain), time.time()))

    def start(self, timeout_s: float = 10.0) -> Subscription:
        """Connect and subscribe (raises `BrokerError` when that fails within `timeout_s`);
        paho's thread reconnects by itself afterwards."""
        s = self.settings
        try:
            self._client.connect(s.host, s.port, keepalive=s.keepalive_s)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise _connect_error(s, exc) from exc
        self._client.loop_start()
        if not self.subscribed.wait(timeout_s):
            self.stop()
            raise BrokerUnavailable(self.error or f"could not subscribe at {s.broker} in time")
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._client._reset_sockets()

    def drain(self) -> list[Received]:
        """Every message received so far and not drained yet."""
        out: list[Received] = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out
