"""The simulated Odoo's HTTP side: the routes a real Odoo serves, over plain HTTP or TLS.

`HttpServer` accepts connections (TLS handshakes on the handler's thread) and can drop every open
one at once, as a server that went away. `_Handler` answers `/jsonrpc` (services `common`, `db`,
`object`), `/web/session/authenticate`, `/web/webclient/version_info`, and from Odoo 19 on
`/json/2/<model>/<method>` (bearer API key) and `GET /web/version`; it applies the simulator's
injected faults before anything else.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from simulators.odoo.errors import OdooFault, access_denied, json2_error, not_found, rpc_error

if TYPE_CHECKING:
    from simulators.odoo.server import OdooSimulator


class HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, addr: tuple[str, int], sim: OdooSimulator) -> None:
        self.sim = sim
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.sim.tls_context is not None:
            # The handshake happens on the handler thread (finish_request), not here, so one
            # slow client cannot block the accept loop.
            sock = self.sim.tls_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.sockets_lock:
            self.open_sockets.add(sock)
        return sock, addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            if isinstance(request, ssl.SSLSocket):
                request.settimeout(10)
                request.do_handshake()
                request.settimeout(None)
            super().finish_request(request, client_address)
        except (ssl.SSLError, OSError):
            pass

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self.sockets_lock:
            socks = list(self.open_sockets)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffered: headers and body leave in one write. Two small writes on a kept-alive
    # connection meet the client's delayed ACK (Nagle) and stall each answer ~40 ms.
    wbufsize = -1
    server: HttpServer
    server_version = "Werkzeug/3.0.1"
    sys_version = "Python/3.11"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests and the demo want quiet; faults are visible in the client's behaviour

    @property
    def sim(self) -> OdooSimulator:
        return self.server.sim

    # -- plumbing -----------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json; charset=utf-8")

    def _send_html(self, status: int, title: str, text: str) -> None:
        body = (
            "<!doctype html>\n<html lang=en>\n"
            f"<title>{status} {title}</title>\n<h1>{title}</h1>\n<p>{text}</p>\n"
        ).encode()
        self._send(status, body, "text/html; charset=utf-8")

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _pre(self) -> bool:
        """Apply the faults; False when the request got no normal answer."""
        fail_status = self.sim.take_request()
        if self.sim.faults.down:
            self._drop()
            return False
        if self.sim.faults.slow_s:
            time.sleep(self.sim.faults.slow_s)
        if fail_status is not None:
            self._read_body()
            self._send_html(fail_status, "Internal Server Error", "The server is overloaded.")
            return False
        return True

    # -- routes -------------------------------------------------------------------------------
    def do_GET(self) -> None:
        if not self._pre():
            return
        if self.path.split("?")[0] == "/web/version" and self.sim.major >= 19:
            self._send_json(
                200, {"version_info": self._version_info(), "version": self.sim.version}
            )
            return
        self._send_html(404, "Not Found", "The requested URL was not found on the server.")

    def do_POST(self) -> None:
        if not self._pre():
            return
        path = self.path.split("?")[0]
        raw = self._read_body()
        try:
            if path.startswith("/json/2/") and self.sim.major >= 19:
                self._json2(path, raw)
            elif path == "/jsonrpc" and self.sim.jsonrpc_enabled:
                self._jsonrpc(raw, self._rpc_service)
            elif path == "/web/webclient/version_info":
                self._jsonrpc(raw, lambda _p: self._version())
            elif path == "/web/session/authenticate" and self.sim.jsonrpc_enabled:
                self._jsonrpc(raw, self._session_authenticate)
            else:
                self._send_html(404, "Not Found", "The requested URL was not found on the server.")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _version_info(self) -> list[Any]:
        return [self.sim.major, 0, 0, "final", 0, ""]

    def _version(self) -> dict[str, Any]:
        return {
            "server_version": self.sim.version,
            "server_version_info": self._version_info(),
            "server_serie": self.sim.version,
            "protocol_version": 1,
        }

    # -- JSON-RPC -----------------------------------------------------------------------------
    def _jsonrpc(self, raw: bytes, handler: Callable[[dict[str, Any]], Any]) -> None:
        req_id: Any = None
        try:
            req = json.loads(raw or b"{}")
            req_id = req.get("id")
            params = req.get("params") or {}
            result = handler(params)
            self._send_json(200, {"jsonrpc": "2.0", "id": req_id, "result": result})
        except OdooFault as exc:
            self._send_json(200, {"jsonrpc": "2.0", "id": req_id, "error": rpc_error(exc)})
        except json.JSONDecodeError as exc:
            self._send_html(400, "Bad Request", f"Invalid JSON data: {exc}")
        except Exception as exc:
            fault = OdooFault(f"builtins.{type(exc).__name__}", str(exc))
            self._send_json(200, {"jsonrpc": "2.0", "id": req_id, "error": rpc_error(fault)})

    def _session_authenticate(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("db") != self.sim.database:
            raise access_denied()
        uid = self.sim.check_password(str(params.get("login")), str(params.get("password")))
        if uid is None:
            raise access_denied()
        return {
            "uid": uid,
            "db": self.sim.database,
            "username": self.sim.user.login,
            "user_context": {"lang": "en_US", "tz": "UTC", "uid": uid},
            "server_version": self.sim.version,
            "server_version_info": self._version_info(),
        }

    def _rpc_service(self, params: dict[str, Any]) -> Any:
        service = params.get("service")
        method = params.get("method")
        args = list(params.get("args") or [])
        if service == "common":
            if method == "version":
                return self._version()
            if method in ("login", "authenticate"):
                if len(args) < 3:
                    raise OdooFault("builtins.TypeError", f"{method}() missing arguments")
                db, login, password = args[0], args[1], args[2]
                self._check_db(db)
                uid = self.sim.check_password(str(login), str(password))
                return uid if uid is not None else False
            raise OdooFault("builtins.KeyError", f"Method not available {method}")
        if service == "db":
            if method == "list":
                return [self.sim.database]
            if method == "server_version":
                return self.sim.version
            raise OdooFault("builtins.KeyError", f"Method not available {method}")
        if service == "object":
            if method not in ("execute", "execute_kw"):
                raise OdooFault("builtins.NameError", f"Method not available {method}")
            if len(args) < 5:
                raise OdooFault("builtins.TypeError", f"{method}() missing arguments")
            db, uid, password, model, orm_method = args[:5]
            self._check_db(db)
            if self.sim.check_password(self.sim.user.login, str(password)) != uid:
                raise access_denied()
            rest = args[5:]
            if method == "execute_kw":
                call_args = list(rest[0]) if rest else []
                call_kwargs = dict(rest[1]) if len(rest) > 1 and rest[1] else {}
            else:
                call_args, call_kwargs = list(rest), {}
            ids = None
            if orm_method in ("read", "write", "unlink"):
                if not call_args:
                    raise OdooFault("builtins.TypeError", f"{orm_method}() missing ids")
                first = call_args.pop(0)
                ids = first if isinstance(first, list) else [first]
            return self.sim.call(str(model), str(orm_method), ids, call_args, call_kwargs)
        raise OdooFault("builtins.Exception", f"No such service: {service!r}")

    def _check_db(self, db: Any) -> None:
        if db != self.sim.database:
            raise OdooFault(
                "psycopg2.OperationalError",
                f'connection to server failed: FATAL:  database "{db}" does not exist',
            )

    # -- JSON-2 -------------------------------------------------------------------------------
    def _json2(self, path: str, raw: bytes) -> None:
        parts = path[len("/json/2/") :].split("/")
        if len(parts) != 2 or not all(parts):
            self._send_json_error(not_found("Did you mean POST /json/2/<model>/<method>?"))
            return
        model, method = parts
        auth = self.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.sim.user.api_key:
            self._send_json_error(
                OdooFault("werkzeug.exceptions.Unauthorized", "Invalid apikey", 401)
            )
            return
        db = self.headers.get("X-Odoo-Database")
        if db is not None and db != self.sim.database:
            self._send_json_error(not_found(f"database {db!r} not found"))
            return
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            self._send_json_error(OdooFault("werkzeug.exceptions.BadRequest", "Bad Request", 400))
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise TypeError
        except (ValueError, TypeError):
            self._send_json_error(
                OdooFault(
                    "werkzeug.exceptions.BadRequest",
                    "could not parse the body, expecting a json object",
                    400,
                )
            )
            return
        if model not in self.sim.store.models and model != "ir.model":
            self._send_json_error(not_found(f"the model {model!r} does not exist"))
            return
        ids = body.pop("ids", None)
        kwargs = dict(body)
        if method == "write" and "vals" not in kwargs:
            self._send_json_error(
                OdooFault(
                    "werkzeug.exceptions.UnprocessableEntity",
                    "missing a required argument: 'vals'",
                    422,
                )
            )
            return
        try:
            result = self.sim.call(model, method, list(ids) if ids else [], [], kwargs)
        except OdooFault as exc:
            self._send_json_error(exc)
            return
        except Exception as exc:
            self._send_json_error(OdooFault(f"builtins.{type(exc).__name__}", str(exc), 500))
            return
        self._send_json(200, result)

    def _send_json_error(self, exc: OdooFault) -> None:
        self._send_json(exc.http_status, json2_error(exc))
