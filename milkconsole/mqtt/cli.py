"""The `milkconsole mqtt` commands.

    milkconsole mqtt login [--host H] [--port P] [--user U] [--password-stdin] [--no-check]
                           [--credential-file F]   (a file for a service, not the keyring)
    milkconsole mqtt check                          can we log in at the broker
    milkconsole mqtt logout                         forget the stored password
    milkconsole mqtt status                         the MQTT outbox: waiting, sent, refused
    milkconsole mqtt watch [--topic T]              print what the broker has for the farm

The broker and the user come from the config's `[mqtt]` section; `--host`, `--port` and
`--user` override them (for a login before the section is written).
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import sys
import time
from pathlib import Path
from typing import Any

from milkconsole.errors import ConfigError
from milkconsole.mqtt.settings import MqttSettings, load_mqtt_settings, parse_mqtt_settings
from milkconsole.paths import default_config_path, default_db_path


def add_mqtt_arguments(subparsers: Any) -> None:
    """Add `mqtt login|check|logout|status|watch` to the main parser's subparsers."""
    p = subparsers.add_parser("mqtt", help="the farm's MQTT broker: log in, check, watch")
    sub = p.add_subparsers(dest="mqtt_command", required=True)
    for name, text in (
        ("login", "store the broker password in the OS keyring (or a credential file)"),
        ("check", "log in at the broker and say whether it worked"),
        ("logout", "forget the stored broker password"),
        ("status", "how many MQTT messages wait, were sent or were refused"),
        ("watch", "print the farm's messages as the broker delivers them"),
    ):
        s = sub.add_parser(name, help=text)
        s.add_argument("--config", type=Path, default=None, help="parlour config file")
        s.add_argument("--verbose", "-v", action="store_true", help="debug logging")
        if name == "status":
            s.add_argument("--db", type=Path, default=None, help="SQLite database")
            continue
        s.add_argument("--host", default=None, help="broker host (default: [mqtt] host)")
        s.add_argument("--port", type=int, default=None, help="broker port")
        s.add_argument("--user", default=None, help="broker username")
        if name == "login":
            s.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the password from standard input (for scripts)",
            )
            s.add_argument("--no-check", action="store_true", help="store without logging in")
            s.add_argument(
                "--credential-file",
                type=Path,
                default=None,
                help="write the password to this file (mode 0600) instead of the OS keyring: "
                "for the gateway run as a service (LoadCredential=mqtt-password or "
                "[mqtt] secret_file)",
            )
        if name == "watch":
            s.add_argument("--topic", default=None, help="topic filter (default: the farm's)")
            s.add_argument("--seconds", type=float, default=None, help="stop after this long")


def _settings(args: argparse.Namespace) -> MqttSettings:
    path = args.config or default_config_path()
    configured = load_mqtt_settings(path)
    if configured is None and not args.host:
        raise ConfigError(
            str(path), "mqtt", "no [mqtt] section: add one, or give --host (see docs/mqtt.md)"
        )
    if configured is None:
        section: dict[str, Any] = {"host": args.host}
        if args.port is not None:
            section["port"] = args.port
        if args.user:
            section["username"] = args.user
        return parse_mqtt_settings(section, "command line", "console")
    changes: dict[str, Any] = {}
    if args.host:
        changes["host"] = args.host
    if args.port is not None:
        changes["port"] = args.port
    if args.user:
        changes["username"] = args.user
    return dataclasses.replace(configured, **changes)


def run_mqtt(args: argparse.Namespace) -> int:
    """`milkconsole mqtt ...`: 0 done, 1 refused or failed (the reason on stderr)."""
    if args.mqtt_command == "status":
        return _status(args)
    settings = _settings(args)
    if args.mqtt_command == "logout":
        from milkconsole.mqtt.password import forget_password

        gone = forget_password(settings)
        print(f"{'forgot' if gone else 'no password stored for'} {settings.account}")
        return 0
    if args.mqtt_command == "check":
        from milkconsole.mqtt.password import find_password

        return _check(settings, find_password(settings))
    if args.mqtt_command == "watch":
        return _watch(settings, args.topic, args.seconds)
    return _login(settings, args)


def _check(settings: MqttSettings, password: str | None) -> int:
    from milkconsole.mqtt.client import BrokerConnection, BrokerError

    conn = BrokerConnection(settings, password, on_acked=lambda _mid: None)
    try:
        conn.connect()
    except BrokerError as exc:
        print(f"milkconsole: mqtt: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    tls = (
        "TLS, certificate verified"
        if settings.tls and settings.verify_tls
        else ("TLS, certificate NOT verified" if settings.tls else "no TLS")
    )
    who = f"as {settings.username}" if settings.username else "anonymously"
    print(f"connected to {settings.broker} {who} ({tls})")
    return 0


def _login(settings: MqttSettings, args: argparse.Namespace) -> int:
    from milkconsole.mqtt.password import store_password
    from milkconsole.sync import secrets

    if settings.username is None:
        print(
            "milkconsole: mqtt login: no username: set [mqtt] username or give --user",
            file=sys.stderr,
        )
        return 1
    if args.password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"MQTT password for {settings.account}: ")
    if not password:
        print("milkconsole: mqtt login: empty password", file=sys.stderr)
        return 1
    if args.credential_file is None:
        secrets.backend_name()  # fail early, before asking the broker, if there is no keyring
    if not args.no_check and _check(settings, password) != 0:
        print("milkconsole: mqtt login: nothing stored", file=sys.stderr)
        return 1
    if args.credential_file is not None:
        secrets.write_credential_file(args.credential_file, password)
        print(
            f"written to {args.credential_file} (mode 0600) for {settings.account}; give it to "
            "the service with LoadCredential=mqtt-password:<that file> or [mqtt] secret_file"
        )
        return 0
    store_password(settings, password)
    print(f"stored in the OS keyring ({secrets.backend_name()}) for {settings.account}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from milkconsole.store.db import open_database
    from milkconsole.store.outbox import Outbox

    path = args.config or default_config_path()
    settings = load_mqtt_settings(path)
    db = open_database(getattr(args, "db", None) or default_db_path())
    try:
        outbox = Outbox(db, "mqtt")
        counts = outbox.counts()
        where = settings.broker if settings else f"not set up ({path} has no [mqtt])"
        print(f"MQTT broker: {where}")
        print(
            f"messages: {counts['pending']} waiting, {counts['in_flight']} in flight, "
            f"{counts['sent']} sent, {counts['dead']} refused"
        )
        oldest = outbox.oldest_pending_at()
        if oldest is not None:
            print(f"oldest waiting since {oldest.isoformat()}")
        for item in outbox.dead():
            print(f"refused #{item.id} {item.record_key}: {item.last_error}")
    finally:
        db.close()
    return 0


def _watch(settings: MqttSettings, topic: str | None, seconds: float | None) -> int:
    import os

    from milkconsole.mqtt.client import BrokerError, Subscription
    from milkconsole.mqtt.password import find_password

    sub = Subscription(
        settings,
        find_password(settings),
        topic or f"dairy/{settings.farm_code}/#",
        client_id=f"{settings.client_id}-watch-{os.getpid()}",
        persistent=False,
    )
    try:
        sub.start()
    except BrokerError as exc:
        print(f"milkconsole: mqtt watch: {exc}", file=sys.stderr)
        return 1
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            for m in sub.drain():
                flag = " (retained)" if m.retain else ""
                print(f"{m.topic}{flag} {m.payload.decode(errors='replace')}", flush=True)
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        sub.stop()
    return 0
