"""The simulated Odoo server: its lifecycle, the faults a test injects, the price of a call,
the dispatch of ORM calls onto the `Store`, seeding, and `main()` (`python -m simulators.odoo`).

Faults: `set_down` (connections dropped unanswered), `set_slow`, `fail_next` (HTTP 500 from a
proxy), `set_password` (the stored credentials stop working), `refuse` (one record value refused
with a ValidationError or AccessError), `on_commit` (a hook run after a create or write committed
and before the answer leaves: a test kills its client there). `set_cost` models a real Odoo's
price per call and per record (a list of 500 in one create is ~60x faster than 500 calls).
"""

from __future__ import annotations

import argparse
import inspect
import secrets
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulators.odoo.errors import OdooFault, access_error, validation_error, value_error
from simulators.odoo.http import HttpServer
from simulators.odoo.models import ModelDef, contract_models
from simulators.odoo.records import Store
from simulators.odoo.tls import server_context


@dataclass(slots=True)
class _Faults:
    down: bool = False
    slow_s: float = 0.0
    fail_next: int = 0
    fail_status: int = 500
    call_overhead_s: float = 0.0
    per_record_s: float = 0.0


@dataclass(slots=True)
class _Users:
    login: str
    password: str
    api_key: str
    uid: int = 2
    name: str = "Milk Console"


class OdooSimulator:
    """An Odoo server on a real TCP port. Use as a context manager or `start()` / `stop()`.

    `version` is the Odoo series it claims ('16.0' ... '19.0'); JSON-2 exists from 19.0.
    Credentials: `login` / `password`, and `api_key`, which (as in a real Odoo) also works as the
    password over JSON-RPC. `port=0` picks a free port; `stop()` then `start()` keeps the port.
    """

    def __init__(
        self,
        *,
        version: str = "17.0",
        database: str = "farm",
        login: str = "admin",
        password: str = "admin",
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        models: dict[str, ModelDef] | None = None,
        db_path: Path | None = None,
        jsonrpc_enabled: bool = True,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.version = version
        self.major = int(version.split(".")[0])
        self.database = database
        self.user = _Users(login, password, api_key or secrets.token_hex(20))
        self.host = host
        self.port = port
        self.jsonrpc_enabled = jsonrpc_enabled
        self.store = Store(models or contract_models(), db_path)
        self.faults = _Faults()
        self.calls: Counter[tuple[str, str]] = Counter()
        self.requests = 0
        self.on_commit: Callable[[str, str, list[int]], None] | None = None
        self._lock = threading.Lock()
        self.tls_context: ssl.SSLContext | None = server_context(*tls) if tls is not None else None
        self._server: HttpServer | None = None
        self._thread: threading.Thread | None = None
        self.store.ensure_user(self.user.uid, self.user.name, login)

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        scheme = "https" if self.tls_context else "http"
        host = "localhost" if self.tls_context and self.host == "127.0.0.1" else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def api_key(self) -> str:
        return self.user.api_key

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> OdooSimulator:
        if self._server is not None:
            return self
        server = HttpServer((self.host, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection (as a server that went away)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.drop_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OdooSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults -------------------------------------------------------------------------------
    def set_down(self, down: bool = True) -> None:
        """While down, every connection is dropped without an answer."""
        self.faults.down = down
        if down and self._server is not None:
            self._server.drop_connections()

    def set_slow(self, seconds: float) -> None:
        """Answer every request `seconds` late (a client timeout shorter than that fails)."""
        self.faults.slow_s = seconds

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """The next `count` requests get an HTTP `status` with an HTML body, as from a proxy."""
        with self._lock:
            self.faults.fail_next = count
            self.faults.fail_status = status

    def take_request(self) -> int | None:
        """Count one HTTP request; the status to fail it with while `fail_next` has some left."""
        with self._lock:
            self.requests += 1
            if self.faults.fail_next <= 0:
                return None
            self.faults.fail_next -= 1
            return self.faults.fail_status

    def set_password(self, password: str, api_key: str | None = None) -> None:
        """Change the user's credentials: the ones a client holds stop working."""
        self.user.password = password
        if api_key is not None:
            self.user.api_key = api_key

    def set_cost(self, call_overhead_s: float = 0.0, per_record_s: float = 0.0) -> None:
        """Charge each RPC call a fixed time and each created/written record a time of its own."""
        self.faults.call_overhead_s = call_overhead_s
        self.faults.per_record_s = per_record_s

    def refuse(
        self,
        model: str,
        field_name: str,
        value: Any,
        message: str = "Invalid value",
        error: str = "ValidationError",
    ) -> None:
        """Refuse any create or write whose `field_name` equals `value`, with Odoo's error."""
        fault = access_error(message) if error == "AccessError" else validation_error(message)
        self.store.add_refusal(model, field_name, value, fault)

    def clear_refusals(self) -> None:
        self.store.clear_refusals()

    # -- direct access (tests, seeding) -------------------------------------------------------
    def records(
        self,
        model: str,
        domain: list[Any] | None = None,
        fields: list[str] | None = None,
        active_test: bool = False,
    ) -> list[dict[str, Any]]:
        return self.store.search_read(
            model, domain or [], fields, context={"active_test": active_test}
        )

    def count(self, model: str, domain: list[Any] | None = None) -> int:
        return self.store.search_count(model, domain or [], context={"active_test": False})

    def create(self, model: str, vals: dict[str, Any] | list[dict[str, Any]]) -> list[int]:
        return self.store.create(model, vals)

    def write(self, model: str, ids: list[int], vals: dict[str, Any]) -> None:
        self.store.write(model, ids, vals)

    def seed_herd(self, cows: int, *, first_tag: int = 982000000000001) -> list[int]:
        """Create `cows` animals numbered and named '1', '2', ... with 15-digit tags; returns
        their ids."""
        vals = [
            {
                "name": str(i + 1),
                "number": str(i + 1),
                "rfid_tag": str(first_tag + i),
                "conductivity_baseline": round(4.6 + (i % 7) * 0.1, 2),
            }
            for i in range(cows)
        ]
        return self.store.create("farm.animal", vals)

    def seed_devices(self, device_ids: list[str]) -> list[int]:
        """Devices a farm registered by hand before the console did (the console then adds
        its `iot.milk_meter` to each)."""
        return self.store.create(
            "iot.device",
            [
                {"name": f"Milk meter {d}", "device_id": d, "device_type": "milk_meter"}
                for d in device_ids
            ],
        )

    # -- dispatch -----------------------------------------------------------------------------
    def _count(self, model: str, method: str) -> None:
        with self._lock:
            self.calls[(model, method)] += 1

    def _cost(self, method: str, args: list[Any], kwargs: dict[str, Any]) -> float:
        records = 0
        if method == "create":
            v = kwargs.get("vals_list", args[0] if args else [])
            records = len(v) if isinstance(v, list) else 1
        elif method == "write":
            ids = kwargs.get("ids", args[0] if args else [])
            records = len(ids) if isinstance(ids, list) else 1
        return self.faults.call_overhead_s + self.faults.per_record_s * records

    def call(
        self,
        model: str,
        method: str,
        ids: list[int] | None,
        args: list[Any],
        kwargs: dict[str, Any],
    ) -> Any:
        """Run one ORM method as Odoo's RPC layer would (ids given for record methods)."""
        self._count(model, method)
        cost = self._cost(method, [ids, *args] if ids is not None else args, kwargs)
        if cost:
            time.sleep(cost)
        context = kwargs.pop("context", None) or {}
        if not isinstance(context, dict):
            raise value_error(f"Invalid context {context!r}")
        if model == "res.users" and method == "context_get":
            return {"lang": "en_US", "tz": "UTC", "uid": self.user.uid}
        if model != "ir.model":
            self.store.model(model)
        record_methods = {"read", "write", "unlink"}
        methods: dict[str, Callable[..., Any]] = {
            "search_read": self.store.search_read,
            "search": self.store.search,
            "search_count": self.store.search_count,
            "create": self.store.create,
            "fields_get": self.store.fields_get,
            "default_get": self.store.default_get,
            "read": self.store.read,
            "write": self.store.write,
            "unlink": self.store.unlink,
        }
        fn = methods.get(method)
        if fn is None:
            raise OdooFault(
                "builtins.AttributeError",
                f"The method '{method}' does not exist on the model '{model}'",
                404,
            )
        if method in ("search_read", "search", "search_count"):
            kwargs["context"] = context
        call_args: list[Any] = [model]
        if method in record_methods:
            call_args.append(list(ids or []))
        call_args.extend(args)
        try:
            inspect.signature(fn).bind(*call_args, **kwargs)
        except TypeError as exc:
            raise OdooFault("builtins.TypeError", str(exc), 422) from exc
        result = fn(*call_args, **kwargs)
        if method in ("create", "write") and self.on_commit is not None:
            self.on_commit(model, method, result if method == "create" else list(ids or []))
        return result

    def check_password(self, login: str, password: str) -> int | None:
        if login == self.user.login and password in (self.user.password, self.user.api_key):
            return self.user.uid
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="A simulated Odoo server for Milk Console.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8069)
    p.add_argument("--version", default="17.0", help="Odoo series to claim (16.0 .. 19.0)")
    p.add_argument("--database", default="farm")
    p.add_argument("--login", default="admin")
    p.add_argument("--password", default="admin")
    p.add_argument("--api-key", default=None)
    p.add_argument("--animals", type=int, default=0, help="seed this many cows")
    p.add_argument("--devices", default="", help="comma-separated meter device ids to seed")
    p.add_argument("--sqlite", type=Path, default=None, help="keep the data in this file")
    args = p.parse_args(argv)
    sim = OdooSimulator(
        version=args.version,
        database=args.database,
        login=args.login,
        password=args.password,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        db_path=args.sqlite,
    )
    if args.animals and sim.count("farm.animal") == 0:
        sim.seed_herd(args.animals)
    if args.devices:
        known = {r["device_id"] for r in sim.records("iot.device", fields=["device_id"])}
        new = [d for d in args.devices.split(",") if d and d not in known]
        if new:
            sim.seed_devices(new)
    sim.start()
    print(f"simulated Odoo {args.version} at {sim.url} database {args.database!r}", flush=True)
    print(f"login {args.login!r}, API key {sim.api_key}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sim.stop()
    return 0
