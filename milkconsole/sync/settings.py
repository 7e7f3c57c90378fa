"""The `[odoo]` section of the parlour config: where the farm's Odoo is and how to talk to it.

    [odoo]
    url = "https://odoo.farm.example"     # scheme://host[:port], no path
    database = "farm"
    login = "milkconsole"                 # the password / API key: see secrets.py
    secret_file = "/etc/milkconsole/credentials/odoo-secret"  # optional, mode 0600
    transport = "auto"                    # auto | jsonrpc | json2
    verify_tls = true
    ca_file = "/etc/milkconsole/office-ca.pem"   # optional: trust this CA as well
    timeout_s = 30
    batch_size = 200
    timezone = "Europe/Dublin"            # optional: for a production record's date and am/pm

    [odoo.models]                         # contract name -> the server's model name
    session = "milk.session"

    [odoo.fields.session]                 # contract field -> server field ("" leaves it out)
    lactose = ""

Every key is checked: an unknown key, a bad value or a secret put in the file is refused with a
`ConfigError` naming the file and the key. The password never goes here (`milkconsole odoo login`
puts it in the OS keyring).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from milkconsole.config_tables import checked_table, read_toml_file
from milkconsole.errors import ConfigError
from milkconsole.network import is_loopback
from milkconsole.sync.contract import CONTRACT, REQUIRED_FIELDS  # the valid names

Transport = Literal["auto", "jsonrpc", "json2"]
TRANSPORTS: tuple[Transport, ...] = ("auto", "jsonrpc", "json2")

_KEYS = {
    "url",
    "database",
    "login",
    "transport",
    "verify_tls",
    "ca_file",
    "timeout_s",
    "batch_size",
    "timezone",
    "allow_insecure_http",
    "secret_file",
    "models",
    "fields",
}
# Refused with a pointed message: a secret in a config file ends up in backups and screenshots.
_SECRET_KEYS = {"password", "api_key", "apikey", "key", "secret", "token"}
_MODEL_NAME = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z0-9_]+)*$")
_FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class OdooSettings:
    """Validated `[odoo]` settings. `models` / `fields` hold only what the file overrides."""

    url: str
    database: str
    login: str
    transport: Transport = "auto"
    verify_tls: bool = True
    ca_file: Path | None = None
    timeout_s: float = 30.0
    batch_size: int = 200
    timezone: str | None = None
    allow_insecure_http: bool = False
    secret_file: Path | None = None
    models: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    fields: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))
    source: str = "<settings>"

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def account(self) -> str:
        """Who logs in where: the name the secret is kept under in the keyring."""
        return f"{self.login}@{self.url}/{self.database}"


def normalize_url(url: str, source: str, key: str = "odoo.url") -> str:
    """`scheme://host[:port]` with no trailing slash; anything else is refused naming the key."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(source, key, f"must be a URL like https://odoo.example.com, not {url!r}")
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(source, key, f"{text!r} is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise ConfigError(source, key, f"must start with https:// (or http://), not {text!r}")
    if not parts.hostname:
        raise ConfigError(source, key, f"{text!r} has no host name")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(
            source, key, f"{text!r}: give only scheme://host[:port], Odoo's paths are added by us"
        )
    if parts.username or parts.password:
        raise ConfigError(
            source, key, "must not contain a user or password (use `milkconsole odoo login`)"
        )
    host = parts.hostname
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}"


def _string(t: dict[str, Any], key: str, source: str) -> str:
    v = t.get(key)
    if v is None:
        raise ConfigError(source, f"odoo.{key}", "missing")
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(source, f"odoo.{key}", f"must be a non-empty string, not {v!r}")
    return v.strip()


def _name_map(raw: Any, where: str, source: str, pattern: re.Pattern[str]) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ConfigError(source, where, "must be a table")
    out: dict[str, str] = {}
    if where == "odoo.models":
        allowed = set(CONTRACT)
    else:
        model = where.rsplit(".", 1)[1]
        allowed = {f.name for f in CONTRACT[model].fields}
    for k, v in raw.items():
        if k not in allowed:
            raise ConfigError(
                source, f"{where}.{k}", f"unknown key (allowed: {', '.join(sorted(allowed))})"
            )
        if not isinstance(v, str) or (v and not pattern.match(v)):
            raise ConfigError(source, f"{where}.{k}", f"must be an Odoo technical name, not {v!r}")
        if where == "odoo.models" and not v:
            raise ConfigError(source, f"{where}.{k}", "must not be empty")
        out[k] = v
    return out


def parse_odoo_settings(section: Any, source: str) -> OdooSettings:
    """Validate an `[odoo]` table already read from TOML (`source` names the file)."""
    checked_table(
        section,
        source,
        "odoo",
        _KEYS,
        secrets=_SECRET_KEYS,
        login_command="milkconsole odoo login",
    )
    url = normalize_url(section.get("url"), source)
    database = _string(section, "database", source)
    login = _string(section, "login", source)
    transport = section.get("transport", "auto")
    if transport not in TRANSPORTS:
        raise ConfigError(
            source, "odoo.transport", f"must be one of {', '.join(TRANSPORTS)}, not {transport!r}"
        )
    verify_tls = section.get("verify_tls", True)
    if not isinstance(verify_tls, bool):
        raise ConfigError(source, "odoo.verify_tls", f"must be true or false, not {verify_tls!r}")
    allow_http = section.get("allow_insecure_http", False)
    if not isinstance(allow_http, bool):
        raise ConfigError(
            source, "odoo.allow_insecure_http", f"must be true or false, not {allow_http!r}"
        )
    host = urlsplit(url).hostname or ""
    if url.startswith("http://") and not allow_http and not is_loopback(host):
        raise ConfigError(
            source,
            "odoo.url",
            f"{url} is plain http: the password would cross the network readable; use https:// "
            "(or set allow_insecure_http = true if you accept that)",
        )
    ca_file: Path | None = None
    if "ca_file" in section:
        raw_ca = section["ca_file"]
        if not isinstance(raw_ca, str) or not raw_ca.strip():
            raise ConfigError(source, "odoo.ca_file", f"must be a file path, not {raw_ca!r}")
        ca_file = Path(raw_ca).expanduser()
        if not ca_file.is_absolute():
            ca_file = Path(source).parent / ca_file
        if not ca_file.is_file():
            raise ConfigError(source, "odoo.ca_file", f"{ca_file} is not a file")
    secret_file: Path | None = None
    if "secret_file" in section:
        raw_secret = section["secret_file"]
        if not isinstance(raw_secret, str) or not raw_secret.strip():
            raise ConfigError(
                source, "odoo.secret_file", f"must be a file path, not {raw_secret!r}"
            )
        secret_file = Path(raw_secret).expanduser()
        if not secret_file.is_absolute():
            secret_file = Path(source).parent / secret_file
    timeout = section.get("timeout_s", 30.0)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0.1 <= timeout <= 600
    ):
        raise ConfigError(
            source,
            "odoo.timeout_s",
            f"must be a number of seconds from 0.1 to 600, not {timeout!r}",
        )
    batch = section.get("batch_size", 200)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 5000:
        raise ConfigError(
            source, "odoo.batch_size", f"must be an integer from 1 to 5000, not {batch!r}"
        )
    tz = section.get("timezone")
    if tz is not None:
        if not isinstance(tz, str):
            raise ConfigError(source, "odoo.timezone", f"must be a time zone name, not {tz!r}")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(
                source, "odoo.timezone", f"unknown time zone {tz!r} (use a name like Europe/Dublin)"
            ) from exc
    models = _name_map(section.get("models", {}), "odoo.models", source, _MODEL_NAME)
    raw_fields = section.get("fields", {})
    if not isinstance(raw_fields, dict):
        raise ConfigError(source, "odoo.fields", "must be a table of tables")
    field_maps: dict[str, Mapping[str, str]] = {}
    for model, raw in raw_fields.items():
        if model not in CONTRACT:
            raise ConfigError(
                source,
                f"odoo.fields.{model}",
                f"unknown contract model (allowed: {', '.join(sorted(CONTRACT))})",
            )
        mapping = _name_map(raw, f"odoo.fields.{model}", source, _FIELD_NAME)
        for f, v in mapping.items():
            if not v and f in REQUIRED_FIELDS.get(model, ()):
                raise ConfigError(
                    source,
                    f"odoo.fields.{model}.{f}",
                    "this field cannot be left out of the contract",
                )
        field_maps[model] = MappingProxyType(mapping)
    return OdooSettings(
        url=url,
        database=database,
        login=login,
        transport=transport,
        verify_tls=verify_tls,
        ca_file=ca_file,
        timeout_s=float(timeout),
        batch_size=batch,
        timezone=tz,
        allow_insecure_http=allow_http,
        secret_file=secret_file,
        models=MappingProxyType(models),
        fields=MappingProxyType(field_maps),
        source=source,
    )


def load_odoo_settings(path: Path) -> OdooSettings | None:
    """The `[odoo]` section of a config file, or None when the file has none (sync not set up).

    Only this section is read, so `milkconsole odoo login` works before the meters are set up.
    """
    data = read_toml_file(path)
    if data is None or "odoo" not in data:
        return None
    return parse_odoo_settings(data["odoo"], str(path))
