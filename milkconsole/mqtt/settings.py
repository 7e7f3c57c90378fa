"""The `[mqtt]` section of the parlour config: where the farm's broker is and how to reach it.

    [mqtt]
    host = "broker.farm.lan"
    port = 8883                  # default 8883 with TLS, 1883 without
    tls = true                   # default: true when ca_file is given, else false
    ca_file = "farm-ca.pem"      # trust this CA (relative to the config file); else the system's
    verify_tls = true            # certificate and host name checked; false only if you must
    username = "parlour"         # the password: `milkconsole mqtt login` (see docs/mqtt.md)
    client_id = "milkconsole-FARM1"
    keepalive_s = 60
    farm_code = "FARM1"          # the {farm} of dairy/{farm}/...; default: [parlour] farm_code
    secret_file = "/etc/milkconsole/credentials/mqtt-password"   # optional, mode 0600
    allow_plaintext_password = false

Every key is checked: an unknown key, a bad value or a secret put in the file is refused with a
`ConfigError` naming the file and the key. A password would cross the network readable over a
plain connection, so a username without TLS to a host other than this machine is refused unless
`allow_plaintext_password = true` says the farm accepts that.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from milkconsole.config_tables import checked_table, read_toml_file
from milkconsole.errors import ConfigError
from milkconsole.network import is_loopback

_KEYS = {
    "host",
    "port",
    "tls",
    "verify_tls",
    "ca_file",
    "username",
    "client_id",
    "keepalive_s",
    "farm_code",
    "secret_file",
    "allow_plaintext_password",
}
# Refused with a pointed message: a secret in a config file ends up in backups and screenshots.
_SECRET_KEYS = {"password", "passwd", "api_key", "key", "secret", "token"}
_FARM_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
# A topic level must not hold these: '/' splits levels, '+' and '#' are wildcards.
_TOPIC_FORBIDDEN = ("/", "+", "#", "\x00")


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Validated `[mqtt]` settings (frozen: handed to the publisher's thread)."""

    host: str
    farm_code: str
    port: int = 1883
    tls: bool = False
    verify_tls: bool = True
    ca_file: Path | None = None
    username: str | None = None
    client_id: str = "milkconsole"
    keepalive_s: int = 60
    secret_file: Path | None = None
    allow_plaintext_password: bool = False
    source: str = "<settings>"

    @property
    def broker(self) -> str:
        """host:port, as messages and the status bar name the broker."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def account(self) -> str:
        """Who logs in where: the name the password is kept under in the keyring."""
        return f"{self.username or ''}@{self.broker}"

    def topic(self, device: str, kind: str) -> str:
        """`dairy/{farm}/milk_meters/{device}/{kind}`, the seed's topic scheme."""
        return f"dairy/{self.farm_code}/milk_meters/{device}/{kind}"

    @property
    def console_topic(self) -> str:
        """Where the console says online / offline (its last will)."""
        return f"dairy/{self.farm_code}/consoles/{self.client_id}/status"


def topic_level_problem(value: str) -> str | None:
    """Why `value` cannot be one level of an MQTT topic, or None when it can."""
    if not value:
        return "is empty"
    bad = [c for c in _TOPIC_FORBIDDEN if c in value]
    if bad:
        shown = ", ".join("NUL" if c == "\x00" else repr(c) for c in bad)
        return f"contains {shown}, which MQTT topics reserve"
    if len(value.encode("utf-8")) > 128:
        return "is longer than 128 bytes"
    return None


def default_client_id(farm_code: str) -> str:
    """`milkconsole-<farm>-<host name>`: two consoles of one farm must not share a client id
    (a broker drops the older connection when a second one logs in with the same id)."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:24] or "pc"
    return f"milkconsole-{farm_code}-{host}"


def _path(section: dict[str, Any], key: str, source: str, *, must_exist: bool) -> Path | None:
    if key not in section:
        return None
    raw = section[key]
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(source, f"mqtt.{key}", f"must be a file path, not {raw!r}")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = Path(source).parent / path
    if must_exist and not path.is_file():
        raise ConfigError(source, f"mqtt.{key}", f"{path} is not a file")
    return path


def _bool(section: dict[str, Any], key: str, default: bool, source: str) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(source, f"mqtt.{key}", f"must be true or false, not {value!r}")
    return value


def _int(section: dict[str, Any], key: str, default: int, lo: int, hi: int, source: str) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(
            source, f"mqtt.{key}", f"must be an integer from {lo} to {hi}, not {value!r}"
        )
    return value


def parse_mqtt_settings(
    section: Any,
    source: str,
    parlour_farm_code: str | None = None,
    meter_ids: Iterable[str] = (),
) -> MqttSettings:
    """Validate an `[mqtt]` table already read from TOML (`source` names the file).

    `parlour_farm_code` is the default farm code; `meter_ids` are checked to be usable as a
    topic level (each meter has its own topic)."""
    if not isinstance(section, dict):
        raise ConfigError(source, "mqtt", "must be a table")
    checked_table(
        section,
        source,
        "mqtt",
        _KEYS,
        secrets=_SECRET_KEYS,
        login_command="milkconsole mqtt login",
    )
    host = section.get("host")
    if not isinstance(host, str) or not host.strip():
        raise ConfigError(
            source, "mqtt.host", f"must be the broker's host name or address, not {host!r}"
        )
    host = host.strip()
    if "://" in host or "/" in host:
        raise ConfigError(
            source, "mqtt.host", f"give only the host name or address, not a URL: {host!r}"
        )
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST.match(host):
            raise ConfigError(
                source, "mqtt.host", f"{host!r} is not a host name or IP address"
            ) from None
    ca_file = _path(section, "ca_file", source, must_exist=True)
    tls = _bool(section, "tls", ca_file is not None, source)
    verify_tls = _bool(section, "verify_tls", True, source)
    if ca_file is not None and not tls:
        raise ConfigError(source, "mqtt.ca_file", "only applies with tls = true")
    port = _int(section, "port", 8883 if tls else 1883, 1, 65535, source)
    username = section.get("username")
    if username is not None and (not isinstance(username, str) or not username.strip()):
        raise ConfigError(source, "mqtt.username", f"must be a non-empty string, not {username!r}")
    farm_code = section.get("farm_code", parlour_farm_code)
    if not isinstance(farm_code, str) or not _FARM_CODE.match(farm_code):
        raise ConfigError(
            source, "mqtt.farm_code", f"use 1-32 letters, digits, - or _, not {farm_code!r}"
        )
    client_id = section.get("client_id", default_client_id(farm_code))
    if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
        raise ConfigError(
            source,
            "mqtt.client_id",
            f"use 1-64 letters, digits, '.', ':', '-' or '_', not {client_id!r}",
        )
    keepalive = _int(section, "keepalive_s", 60, 5, 3600, source)
    allow_plain = _bool(section, "allow_plaintext_password", False, source)
    if username is not None and not tls and not allow_plain and not is_loopback(host):
        raise ConfigError(
            source,
            "mqtt.tls",
            f"a password for {host} would cross the network readable without TLS; set "
            "tls = true (and ca_file for the broker's CA), or allow_plaintext_password = true "
            "if the farm accepts that",
        )
    for meter_id in meter_ids:
        problem = topic_level_problem(meter_id)
        if problem is not None:
            raise ConfigError(
                source,
                "mqtt",
                f"meter id {meter_id!r} {problem}: each meter publishes on "
                f"dairy/{farm_code}/milk_meters/<meter id>/events; rename the meter",
            )
    return MqttSettings(
        host=host,
        farm_code=farm_code,
        port=port,
        tls=tls,
        verify_tls=verify_tls,
        ca_file=ca_file,
        username=username.strip() if isinstance(username, str) else None,
        client_id=client_id,
        keepalive_s=keepalive,
        secret_file=_path(section, "secret_file", source, must_exist=False),
        allow_plaintext_password=allow_plain,
        source=source,
    )


def load_mqtt_settings(path: Path) -> MqttSettings | None:
    """The `[mqtt]` section of a config file, or None when the file (or the section) is not
    there. Only this section (and the farm code) is read, so `milkconsole mqtt login` works
    before the meters are set up."""
    source = str(path)
    data = read_toml_file(path)
    if data is None or "mqtt" not in data:
        return None
    parlour = data.get("parlour")
    farm = parlour.get("farm_code") if isinstance(parlour, dict) else None
    # A file with no [parlour] yet (a login before the meters are set up): the farm code only
    # names topics, which logging in does not need.
    return parse_mqtt_settings(data["mqtt"], source, farm if isinstance(farm, str) else "farm")
