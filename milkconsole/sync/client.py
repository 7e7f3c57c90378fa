"""The transport-neutral Odoo client: the calls the sync makes, the errors it tells apart.

Two transports implement `OdooClient`: `odoo_rpc` (odoorpc over `/jsonrpc`, Odoo 16-19) and
`odoo_json2` (Odoo 19's `POST /json/2/<model>/<method>` with a bearer API key); both build on
this module, and `milkconsole.sync.connect` picks one and logs in.

Every failure becomes one of a few errors the sync acts on differently:

- `OdooUnavailable`: network down, timeout, TLS refused, HTTP 5xx from a proxy. Retry later.
- `OdooAuthError`: wrong login, password or API key, unknown database. Stop, tell the user.
- `OdooRefused`: Odoo refused what was sent (validation, access, missing record). Per record.
- `OdooContractError`: a model or field of the contract is not on the server.
- `OdooServerError`: any other server-side exception. Retried a few times, then per record.
- `OdooNotConfigured`: no `[odoo]` section or no secret stored.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import urllib.error
from dataclasses import dataclass
from typing import Any, Protocol

from milkconsole.errors import MilkConsoleError
from milkconsole.sync.settings import OdooSettings

log = logging.getLogger(__name__)


class OdooError(MilkConsoleError):
    """Base of the sync's Odoo errors. `name` is Odoo's exception name when it sent one."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.name = name


class OdooUnavailable(OdooError):
    """Odoo could not be reached or did not answer properly; nothing is known to have happened."""


class OdooAuthError(OdooError):
    """Odoo refused the login, the password / API key or the database name."""


class OdooRefused(OdooError):
    """Odoo refused the records of a call (ValidationError, UserError, AccessError, ...)."""


class OdooServerError(OdooError):
    """An unexpected exception on the server (a bug, a bad call): not the network, not a refusal."""


class OdooContractError(OdooError):
    """A model or field the contract needs does not exist on this Odoo."""


class OdooNotConfigured(OdooError):
    """The sync has no `[odoo]` settings or no stored secret."""


# Odoo exception names, as its RPC layers serialise them, sorted by what the sync does next.
_AUTH_NAMES = {
    "odoo.exceptions.AccessDenied",
    "werkzeug.exceptions.Unauthorized",
    "odoo.http.SessionExpiredException",
}
_REFUSED_PREFIXES = ("odoo.exceptions.", "psycopg2.IntegrityError", "psycopg2.errors.")
_REFUSED_NAMES = {"builtins.ValueError", "werkzeug.exceptions.UnprocessableEntity"}
_TRANSIENT_NAMES = {
    "psycopg2.OperationalError",
    "psycopg2.errors.SerializationFailure",
    "psycopg2.errors.LockNotAvailable",
    "psycopg2.errors.DeadlockDetected",
    "odoo.exceptions.ConcurrencyError",
}


def classify(name: str | None, message: str, *, status: int | None = None) -> OdooError:
    """The sync's error for an exception Odoo reported (`status`: JSON-2's HTTP status)."""
    name = name or ""
    text = f"{message}" if not name else f"{message} ({name})"
    if name in _AUTH_NAMES:
        return OdooAuthError(f"Odoo refused the credentials: {message}", name)
    if "does not exist" in message and "database" in message:
        return OdooAuthError(f"Odoo has no such database: {message}", name)
    if name in _TRANSIENT_NAMES:
        return OdooUnavailable(f"Odoo is busy: {text}", name)
    if name == "werkzeug.exceptions.NotFound":
        return OdooContractError(message, name)
    if name in _REFUSED_NAMES or name.startswith(_REFUSED_PREFIXES):
        if (
            name == "odoo.exceptions.UserError"
            and message.startswith("Object ")
            and (message.endswith("doesn't exist"))
        ):
            return OdooContractError(message, name)
        return OdooRefused(message, name)
    if status is not None and status in (401,):
        return OdooAuthError(f"Odoo refused the credentials: {message}", name)
    return OdooServerError(text, name)


def network_error(exc: BaseException, url: str) -> OdooUnavailable:
    """A clear `OdooUnavailable` for a socket, TLS or HTTP-level failure reaching `url`."""
    reason: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(exc, urllib.error.HTTPError):
        return OdooUnavailable(f"{url} answered HTTP {exc.code} {exc.reason}")
    if isinstance(reason, ssl.SSLCertVerificationError):
        return OdooUnavailable(
            f"the TLS certificate of {url} is not trusted ({reason.verify_message}); "
            "give its CA in [odoo] ca_file, or fix the server's certificate"
        )
    if isinstance(reason, ssl.SSLError):
        return OdooUnavailable(f"TLS with {url} failed: {reason}")
    if isinstance(reason, TimeoutError | socket.timeout):
        return OdooUnavailable(f"{url} did not answer in time")
    if isinstance(reason, ConnectionRefusedError):
        return OdooUnavailable(f"{url} refused the connection (is Odoo running?)")
    if isinstance(reason, socket.gaierror):
        return OdooUnavailable(f"cannot resolve the host of {url}: {reason.strerror or reason}")
    if isinstance(reason, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError):
        return OdooUnavailable(f"{url} closed the connection without an answer")
    return OdooUnavailable(f"cannot reach {url}: {reason}")


def ssl_context(settings: OdooSettings) -> ssl.SSLContext:
    """The TLS context for `settings`: system CAs (plus `ca_file`), verification on by default."""
    ctx = ssl.create_default_context()
    if settings.ca_file is not None:
        ctx.load_verify_locations(cafile=str(settings.ca_file))
    if not settings.verify_tls:
        log.warning("TLS certificate verification is OFF for %s (verify_tls = false)", settings.url)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass(frozen=True, slots=True)
class ServerVersion:
    text: str
    major: int


def probe_version(settings: OdooSettings) -> ServerVersion:
    """Ask the server its version (`/web/webclient/version_info`, then `/web/version`)."""
    conn = _connection(settings)
    try:
        body = json.dumps({"jsonrpc": "2.0", "method": "call", "params": {}, "id": 1})
        status, data = _request(conn, "POST", "/web/webclient/version_info", body, settings.url)
        if status == 200:
            result = json.loads(data).get("result") or {}
            text = str(result.get("server_version") or "")
            info = result.get("server_version_info") or []
        else:
            # Odoo 22 may drop the JSON-RPC web routes; JSON-2 servers keep /web/version.
            status, data = _request(conn, "GET", "/web/version", None, settings.url)
            if status != 200:
                raise OdooUnavailable(
                    f"{settings.url} does not say which Odoo it is (HTTP {status}); is this Odoo?"
                )
            result = json.loads(data)
            text = str(result.get("version") or "")
            info = result.get("version_info") or []
    except (ValueError, AttributeError) as exc:
        raise OdooUnavailable(f"{settings.url} answered something that is not Odoo's JSON") from exc
    finally:
        conn.close()
    try:
        major = int(info[0]) if info else int(text.split(".")[0].split("~")[-1].split("-")[-1])
    except (ValueError, IndexError) as exc:
        raise OdooUnavailable(f"{settings.url} gave an unreadable version {text!r}") from exc
    return ServerVersion(text, major)


def _connection(settings: OdooSettings) -> http.client.HTTPConnection:
    if settings.scheme == "https":
        return http.client.HTTPSConnection(
            settings.host, settings.port, timeout=settings.timeout_s, context=ssl_context(settings)
        )
    return http.client.HTTPConnection(settings.host, settings.port, timeout=settings.timeout_s)


def _request(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: str | None,
    url: str,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    hdrs = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "milkconsole"}
    hdrs.update(headers or {})
    try:
        conn.request(method, path, body=body.encode() if body is not None else None, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise network_error(exc, url) from exc


class OdooClient(Protocol):
    """What the sync asks of Odoo, whatever the transport. Values are Odoo's RPC values
    (datetimes as 'YYYY-MM-DD HH:MM:SS' UTC strings, many2one as [id, name] on read)."""

    transport: str
    server_version: str

    def search_read(
        self,
        model: str,
        domain: list[Any],
        fields: list[str],
        *,
        order: str | None = None,
        limit: int | None = None,
        context: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]: ...

    def search(
        self, model: str, domain: list[Any], *, context: dict[str, Any] | None = None
    ) -> list[int]: ...

    def create(self, model: str, vals_list: list[dict[str, Any]]) -> list[int]:
        """One call creating every record of the list (one transaction on the server)."""
        ...

    def write(self, model: str, ids: list[int], vals: dict[str, Any]) -> None: ...

    def fields_get(
        self, model: str, attributes: list[str] | None = None
    ) -> dict[str, dict[str, Any]]: ...

    def default_get(self, model: str, fields: list[str]) -> dict[str, Any]: ...

    def existing_models(self, names: list[str]) -> set[str]: ...

    def close(self) -> None: ...
