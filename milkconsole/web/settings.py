"""The `[web]` section of a parlour config: where the live view for phones listens and how.

Every key is optional; the section being there is what turns the live view on::

    [web]
    host = "0.0.0.0"          # listen on every address of the parlour PC (the farm LAN)
    port = 8443               # 0: any free port (tests); default 8443, or 8080 with tls = false
    tls = true                # HTTPS with the console's self-signed certificate (default)
    url_host = "192.168.1.20" # the name or address phones use (default: this machine's address)
    cert_dir = "web-tls"      # where the certificate is kept (default: beside the database)
    max_clients = 50          # live pages served at once; more are refused with 503
    allow_acknowledge = true  # phones may acknowledge alerts (with a supervisor's name + PIN)

Plain HTTP only when the file says `tls = false`. A bad key or value refuses the whole file
with a message naming the file and the key.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from milkconsole.config_tables import checked_table
from milkconsole.errors import ConfigError

DEFAULT_TLS_PORT = 8443
DEFAULT_PLAIN_PORT = 8080
DEFAULT_MAX_CLIENTS = 50
CERT_DIR_NAME = "web-tls"
_KEYS = ("host", "port", "tls", "url_host", "cert_dir", "max_clients", "allow_acknowledge")
# A DNS name (RFC 1123 labels); addresses are checked with `ipaddress`.
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


@dataclass(frozen=True, slots=True)
class WebSettings:
    """The live view's settings (see the module docstring). `cert_dir` None: beside the
    database (`<data dir>/web-tls`)."""

    host: str = "0.0.0.0"
    port: int = DEFAULT_TLS_PORT
    tls: bool = True
    url_host: str | None = None
    cert_dir: Path | None = None
    max_clients: int = DEFAULT_MAX_CLIENTS
    allow_acknowledge: bool = True

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def cert_dir_for(self, db_path: Path) -> Path:
        """Where the certificate lives for a console whose database is `db_path`."""
        return self.cert_dir if self.cert_dir is not None else db_path.parent / CERT_DIR_NAME


def is_host(text: str) -> bool:
    """An IPv4/IPv6 address or a DNS name."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return bool(_HOSTNAME.fullmatch(text))
    return True


def parse_web_settings(section: Any, source: str) -> WebSettings:
    """Validate a `[web]` table; ConfigError naming `source` and `web.<key>` on any problem."""

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(source, f"web.{key}" if key else "web", problem)

    checked_table(section, source, "web", _KEYS)

    def flag(key: str, default: bool) -> bool:
        value = section.get(key, default)
        if not isinstance(value, bool):
            raise fail(key, f"must be true or false, not {value!r}")
        return value

    def host(key: str, default: str | None) -> str | None:
        value = section.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not is_host(value.strip()):
            raise fail(key, f"must be an IP address or a host name, not {value!r}")
        return value.strip()

    def integer(key: str, default: int, lo: int, hi: int) -> int:
        value = section.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise fail(key, f"must be an integer from {lo} to {hi}, not {value!r}")
        return value

    tls = flag("tls", True)
    bind = host("host", "0.0.0.0")
    assert bind is not None
    port = integer("port", DEFAULT_TLS_PORT if tls else DEFAULT_PLAIN_PORT, 0, 65535)
    cert_dir: Path | None = None
    if "cert_dir" in section:
        raw = section["cert_dir"]
        if not isinstance(raw, str) or not raw.strip():
            raise fail("cert_dir", f"must be a directory path, not {raw!r}")
        cert_dir = Path(raw.strip()).expanduser()
        if not cert_dir.is_absolute():
            cert_dir = Path(source).parent / cert_dir
        if cert_dir.exists() and not cert_dir.is_dir():
            raise fail("cert_dir", f"{cert_dir} exists and is not a directory")
    return WebSettings(
        host=bind,
        port=port,
        tls=tls,
        url_host=host("url_host", None),
        cert_dir=cert_dir,
        max_clients=integer("max_clients", DEFAULT_MAX_CLIENTS, 1, 1000),
        allow_acknowledge=flag("allow_acknowledge", True),
    )
