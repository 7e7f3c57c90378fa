"""Errors with Odoo's names, and the shapes they take on the wire.

An `OdooFault` carries what Odoo serialises of an exception: its fully qualified name, its
message and the HTTP status JSON-2 answers it with. JSON-RPC wraps it in `rpc_error`
(`{"code": 200, "message": "Odoo Server Error", "data": {...}}`, HTTP 200); JSON-2 sends
`json2_error` with the status.
"""

from __future__ import annotations

from typing import Any


class OdooFault(Exception):
    """An exception as Odoo serialises it: fully qualified `name`, `message`, JSON-2 status."""

    def __init__(self, name: str, message: str, http_status: int = 500) -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.http_status = http_status


def validation_error(message: str) -> OdooFault:
    return OdooFault("odoo.exceptions.ValidationError", message, 422)


def user_error(message: str) -> OdooFault:
    return OdooFault("odoo.exceptions.UserError", message, 422)


def access_error(message: str) -> OdooFault:
    return OdooFault("odoo.exceptions.AccessError", message, 403)


def access_denied() -> OdooFault:
    return OdooFault("odoo.exceptions.AccessDenied", "Access Denied", 403)


def value_error(message: str) -> OdooFault:
    return OdooFault("builtins.ValueError", message, 500)


def not_found(message: str) -> OdooFault:
    return OdooFault("werkzeug.exceptions.NotFound", message, 404)


def _debug(exc: OdooFault) -> str:
    return (
        "Traceback (most recent call last):\n"
        '  File "/opt/odoo/odoo/service/model.py", line 176, in retrying\n'
        "    result = func()\n"
        f"{exc.name}: {exc.message}\n"
    )


def rpc_error(exc: OdooFault) -> dict[str, Any]:
    """The `error` member of a JSON-RPC answer."""
    return {
        "code": 200,
        "message": "Odoo Server Error",
        "data": {
            "name": exc.name,
            "debug": _debug(exc),
            "message": exc.message,
            "arguments": [exc.message],
            "context": {},
        },
    }


def json2_error(exc: OdooFault) -> dict[str, Any]:
    """The body of a JSON-2 error answer (sent with `exc.http_status`)."""
    return {
        "name": exc.name,
        "message": exc.message,
        "arguments": [exc.message],
        "context": {},
        "debug": _debug(exc),
    }
