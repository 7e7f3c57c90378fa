"""The JSON-RPC transport over odoorpc 0.10.1 (Odoo 16-19): the one module that imports odoorpc.

odoorpc asks `/web/webclient/version_info`, logs in with `common.login` and sends every call as
`object.execute_kw(db, uid, password, model, method, args, kwargs)` on `/jsonrpc`. Its errors
(RPCError carrying Odoo's error object, urllib errors, its BaseException-derived ConnectorError)
are turned into the sync's own errors here, so a renamed odoorpc internal touches this file only.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import urllib.error
from http.cookiejar import CookieJar
from typing import Any
from urllib.request import HTTPCookieProcessor, HTTPSHandler, build_opener

import odoorpc
import odoorpc.error
import odoorpc.rpc.error

from milkconsole.sync.client import (
    OdooAuthError,
    OdooError,
    OdooServerError,
    OdooUnavailable,
    classify,
    network_error,
    ssl_context,
)
from milkconsole.sync.settings import OdooSettings

log = logging.getLogger(__name__)

# odoorpc logs every request at DEBUG and hides only a parameter named 'password'; execute_kw
# carries the password inside `args`, so its debug lines would put the secret in our log files.
logging.getLogger("odoorpc.rpc.jsonrpclib").setLevel(logging.INFO)


class OdooRpcClient:
    """A logged-in odoorpc session. Not thread-safe: one per sync worker."""

    transport = "jsonrpc"

    def __init__(self, settings: OdooSettings, secret: str) -> None:
        self._settings = settings
        self._url = settings.url
        handlers: list[Any] = [HTTPCookieProcessor(CookieJar())]
        if settings.scheme == "https":
            handlers.append(HTTPSHandler(context=ssl_context(settings)))
        opener = build_opener(*handlers)
        protocol = "jsonrpc+ssl" if settings.scheme == "https" else "jsonrpc"
        try:
            # The constructor already talks to the server (it asks the version).
            self._odoo = odoorpc.ODOO(
                settings.host,
                protocol=protocol,
                port=settings.port,
                timeout=settings.timeout_s,
                opener=opener,
            )
        except odoorpc.rpc.error.ConnectorError as exc:  # a BaseException in odoorpc
            raise OdooUnavailable(f"odoorpc refused {self._url}: {exc.message}") from None
        except Exception as exc:
            raise self._translate(exc) from exc
        self.server_version = str(self._odoo.version or "")
        major = _major(self.server_version)
        if major is not None and major >= 19:
            log.info(
                "Odoo %s deprecates /jsonrpc (removal planned for Odoo 22); "
                'set [odoo] transport = "json2" with an API key',
                self.server_version,
            )
        try:
            self._odoo.login(settings.database, settings.login, secret)
        except odoorpc.error.RPCError as exc:
            err = self._rpc_error(exc)
            if isinstance(err, OdooAuthError):
                raise err from None
            if not exc.info:  # odoorpc's own "Wrong login ID or password"
                raise OdooAuthError(
                    f"Odoo at {self._url} refused login {settings.login!r} on database "
                    f"{settings.database!r}: wrong login or password / API key"
                ) from None
            raise err from None
        except Exception as exc:
            raise self._translate(exc) from exc

    # -- error translation ----------------------------------------------------------------------
    def _rpc_error(self, exc: odoorpc.error.RPCError) -> OdooError:
        info = exc.info if isinstance(exc.info, dict) else {}
        data = info.get("data") or {}
        name = data.get("name")
        message = data.get("message") or str(exc)
        return classify(name, message)

    def _translate(self, exc: BaseException) -> OdooError:
        if isinstance(exc, OdooError):
            return exc
        if isinstance(exc, odoorpc.error.RPCError):
            return self._rpc_error(exc)
        if isinstance(exc, urllib.error.HTTPError):
            if exc.code == 404:
                return OdooServerError(
                    f"{self._url} has no /jsonrpc endpoint (HTTP 404); Odoo 22 removes it: "
                    'set [odoo] transport = "json2"'
                )
            return network_error(exc, self._url)
        if isinstance(
            exc,
            urllib.error.URLError
            | OSError
            | socket.timeout
            | http.client.HTTPException
            | json.JSONDecodeError,
        ):
            if isinstance(exc, json.JSONDecodeError):
                return OdooUnavailable(f"{self._url} answered something that is not JSON")
            return network_error(exc, self._url)
        if isinstance(exc, odoorpc.error.InternalError):
            return OdooServerError(f"odoorpc: {exc}")
        return OdooServerError(f"{type(exc).__name__}: {exc}")

    def _call(self, model: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        try:
            return self._odoo.execute_kw(model, method, args, kwargs)
        except Exception as exc:
            raise self._translate(exc) from exc

    # -- OdooClient -----------------------------------------------------------------------------
    def search_read(
        self,
        model: str,
        domain: list[Any],
        fields: list[str],
        *,
        order: str | None = None,
        limit: int | None = None,
        context: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"fields": fields}
        if order:
            kwargs["order"] = order
        if limit:
            kwargs["limit"] = limit
        if context:
            kwargs["context"] = context
        result = self._call(model, "search_read", [domain], kwargs)
        return list(result or [])

    def search(
        self, model: str, domain: list[Any], *, context: dict[str, Any] | None = None
    ) -> list[int]:
        kwargs: dict[str, Any] = {"context": context} if context else {}
        return [int(i) for i in self._call(model, "search", [domain], kwargs) or []]

    def create(self, model: str, vals_list: list[dict[str, Any]]) -> list[int]:
        result = self._call(model, "create", [vals_list], {})
        ids = result if isinstance(result, list) else [result]
        if len(ids) != len(vals_list):
            raise OdooServerError(
                f"{model}.create of {len(vals_list)} records returned {len(ids)} ids"
            )
        return [int(i) for i in ids]

    def write(self, model: str, ids: list[int], vals: dict[str, Any]) -> None:
        self._call(model, "write", [ids, vals], {})

    def fields_get(
        self, model: str, attributes: list[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        attrs = attributes or ["type", "relation"]
        result = self._call(model, "fields_get", [], {"attributes": attrs})
        return dict(result or {})

    def default_get(self, model: str, fields: list[str]) -> dict[str, Any]:
        return dict(self._call(model, "default_get", [fields], {}) or {})

    def existing_models(self, names: list[str]) -> set[str]:
        rows = self.search_read("ir.model", [["model", "in", names]], ["model"])
        return {str(r["model"]) for r in rows}

    def close(self) -> None:
        try:
            self._odoo.logout()
        except Exception:  # closing is best effort; the session is dropped either way
            log.debug("odoorpc logout failed", exc_info=True)


def _major(version: str) -> int | None:
    try:
        return int(version.split(".")[0].split("~")[-1].split("-")[-1])
    except ValueError:
        return None
