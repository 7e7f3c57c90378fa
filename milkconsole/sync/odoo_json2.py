"""The JSON-2 transport (Odoo >= 19): `POST /json/2/<model>/<method>`, named arguments, API key.

Each call is one HTTP request on a kept-alive connection with `Authorization: bearer <key>` and
`X-Odoo-Database`; the body holds the method's parameters by name (`ids`, `context`, `domain`,
`vals_list`, ...). Success is a 200 with the result; an error is a 4xx/5xx with Odoo's error
object (`name`, `message`, `arguments`, `debug`). A 5xx without that object came from a proxy
or a dying server and counts as unavailable.
"""

from __future__ import annotations

import http.client
import json
import logging
from typing import Any
from urllib.parse import quote

from milkconsole.sync.client import (
    OdooAuthError,
    OdooContractError,
    OdooServerError,
    OdooUnavailable,
    _connection,
    _request,
    classify,
)
from milkconsole.sync.settings import OdooSettings

log = logging.getLogger(__name__)


class Json2Client:
    """A JSON-2 session: one kept-alive HTTP(S) connection. Not thread-safe: one per worker."""

    transport = "json2"

    def __init__(self, settings: OdooSettings, api_key: str, server_version: str | None) -> None:
        self._settings = settings
        self._url = settings.url
        self._headers = {
            "Authorization": f"bearer {api_key}",
            "X-Odoo-Database": settings.database,
        }
        self._conn: http.client.HTTPConnection | None = None
        self.server_version = server_version or ""
        # Checks the key (and the database) now, so a wrong one is reported at connect time.
        try:
            ctx = self.call("res.users", "context_get", {})
        except OdooContractError as exc:
            raise OdooServerError(
                f"{self._url} does not offer the JSON-2 API ({exc.message}); it needs Odoo 19 "
                'or later: set [odoo] transport = "jsonrpc"'
            ) from None
        except OdooAuthError as exc:
            raise OdooAuthError(
                f"Odoo at {self._url} refused the API key of {settings.login!r} on database "
                f"{settings.database!r}: {exc.message.split(': ', 1)[-1]}",
                exc.name,
            ) from None
        if not isinstance(ctx, dict):
            raise OdooServerError(f"{self._url}: res.users.context_get answered {ctx!r}")

    def call(self, model: str, method: str, params: dict[str, Any]) -> Any:
        """One JSON-2 call; returns the decoded result or raises the sync's error."""
        if self._conn is None:
            self._conn = _connection(self._settings)
        path = f"/json/2/{quote(model, safe='.')}/{quote(method)}"
        body = json.dumps(params, allow_nan=False)
        try:
            status, data = _request(self._conn, "POST", path, body, self._url, self._headers)
        except OdooUnavailable:
            # A kept-alive connection the server closed while idle fails on first use: retry
            # once on a fresh one, but never a create, which may have landed before the failure
            # (the sync's look-up before its next create attempt settles that).
            self._conn = _connection(self._settings)
            if method == "create":
                raise
            status, data = _request(self._conn, "POST", path, body, self._url, self._headers)
        if status == 200:
            try:
                return json.loads(data) if data else None
            except ValueError as exc:
                raise OdooUnavailable(
                    f"{self._url} answered {model}.{method} with non-JSON"
                ) from exc
        try:
            err = json.loads(data)
        except ValueError:
            err = None
        if not isinstance(err, dict) or "name" not in err:
            if status >= 500 or status in (408, 429):
                raise OdooUnavailable(f"{self._url} answered HTTP {status} to {model}.{method}")
            if status == 404:
                raise OdooContractError(f"{self._url}: no JSON-2 route for {model}.{method}")
            if status == 401:
                raise OdooAuthError(f"Odoo at {self._url} refused the API key (HTTP 401)")
            raise OdooServerError(f"{self._url} answered HTTP {status} to {model}.{method}")
        name = str(err.get("name") or "")
        message = str(err.get("message") or "")
        if status == 404 and name == "werkzeug.exceptions.NotFound":
            raise OdooContractError(f"{model}.{method}: {message}", name)
        raise classify(name, message, status=status)

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
        params: dict[str, Any] = {"domain": domain, "fields": fields}
        if order:
            params["order"] = order
        if limit:
            params["limit"] = limit
        if context:
            params["context"] = context
        return list(self.call(model, "search_read", params) or [])

    def search(
        self, model: str, domain: list[Any], *, context: dict[str, Any] | None = None
    ) -> list[int]:
        params: dict[str, Any] = {"domain": domain}
        if context:
            params["context"] = context
        return [int(i) for i in self.call(model, "search", params) or []]

    def create(self, model: str, vals_list: list[dict[str, Any]]) -> list[int]:
        ids = self.call(model, "create", {"vals_list": vals_list})
        if not isinstance(ids, list) or len(ids) != len(vals_list):
            raise OdooServerError(f"{model}.create of {len(vals_list)} records returned {ids!r}")
        return [int(i) for i in ids]

    def write(self, model: str, ids: list[int], vals: dict[str, Any]) -> None:
        self.call(model, "write", {"ids": ids, "vals": vals})

    def fields_get(
        self, model: str, attributes: list[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        attrs = attributes or ["type", "relation"]
        return dict(self.call(model, "fields_get", {"attributes": attrs}) or {})

    def default_get(self, model: str, fields: list[str]) -> dict[str, Any]:
        return dict(self.call(model, "default_get", {"fields_list": fields}) or {})

    def existing_models(self, names: list[str]) -> set[str]:
        rows = self.search_read("ir.model", [["model", "in", names]], ["model"])
        return {str(r["model"]) for r in rows}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
