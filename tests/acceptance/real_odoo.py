"""A real Odoo 17 for the tests (fixtures and hooks, taken in by tests/acceptance/conftest.py).

- `real_odoo` (session fixture): a real Odoo 17 Community server with PostgreSQL on 127.0.0.1,
  with this repository's Odoo module `milkconsole_dairy` installed, started once per test
  session by the test machine's `serve` script and removed (database cluster included) at the
  end. It yields a frozen `RealOdoo` (url, db, login, password, the odoo-bin PID).
- `OdooRpc`: a tiny JSON-RPC client (stdlib only) for tests to read back what landed.
- `OdooGate` / `odoo_gate`: a loopback TCP proxy in front of the server whose `close()` refuses
  new connections and cuts open ones ("Odoo went away mid-drain") without touching the
  server or its database; `open()` lets connections through again.
- `frozen_odoo()`: SIGSTOP/SIGCONT of the odoo-bin process (a hung server that accepts
  connections and never answers).

Tests that use the server carry the `real_odoo` marker (pyproject.toml).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ADDONS_DIR = REPO_ROOT / "installer" / "odoo"
MODULES = ("milkconsole_dairy",)
SERVE_ENV = "MILKCONSOLE_ODOO17_SERVE"
# A first run builds Odoo's virtualenv (one to two minutes measured, more on a slow mirror);
# later runs answer in about ten seconds.
READY_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 40


class RealOdooError(RuntimeError):
    """The real Odoo could not be found, started or stopped."""


def find_serve(repo_root: Path = REPO_ROOT, environ: Mapping[str, str] = os.environ) -> Path | None:
    """The `serve` script of the test machine's real Odoo 17, or None when there is none.

    The test machines (every developer's and CI's) carry a real Odoo 17 Community server beside
    the checkout, outside the repository: `shared/odoo17/` next to the repository's parent (Odoo's
    own source trimmed to the server, base and web, plus `serve`, which starts it on a private
    PostgreSQL cluster). It is not ours to ship and far too big to vendor, and the module this
    repository provides must be tested on that real server, not on a stand-in. This function is
    the one place in the repository that knows that directory.

    `MILKCONSOLE_ODOO17_SERVE` names the script directly (another layout, another machine); it
    wins over the search. Otherwise: the first `shared/odoo17/serve` found walking up the parent
    directories of the repository root.
    """
    named = environ.get(SERVE_ENV)
    if named:
        return Path(named)
    for parent in repo_root.resolve().parents:
        candidate = parent / "shared" / "odoo17" / "serve"
        if candidate.is_file():
            return candidate
    return None


def _serve_or_fail(repo_root: Path = REPO_ROOT) -> Path:
    serve = find_serve(repo_root)
    if serve is None:
        pytest.fail(
            "No real Odoo 17 for the tests: no shared/odoo17/serve in any parent directory of "
            f"{repo_root}. Set {SERVE_ENV} to the path of a `serve` script that starts Odoo 17 "
            "(see its README: `serve --addons DIR --modules m1,m2` prints a `ready url=...` "
            "line and removes its database on SIGTERM).",
            pytrace=False,
        )
    if not (serve.is_file() and os.access(serve, os.X_OK)):
        pytest.fail(
            f"{SERVE_ENV}={serve} is not an executable file; point it at shared/odoo17/serve.",
            pytrace=False,
        )
    return serve


@dataclass(frozen=True, slots=True)
class RealOdoo:
    """A running real Odoo: where it answers and with which credentials."""

    url: str
    db: str
    login: str
    password: str
    odoo_pid: int | None  # the odoo-bin server process (to freeze it), when it could be found
    serve_pid: int
    started_in_s: float
    log_path: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def rpc(self, url: str | None = None, timeout_s: float = 30.0) -> OdooRpc:
        """A JSON-RPC client logged in as the admin (optionally through another URL: a gate)."""
        return OdooRpc(url or self.url, self.db, self.login, self.password, timeout_s=timeout_s)


# -- JSON-RPC ------------------------------------------------------------------------------


class OdooRpcError(Exception):
    """Odoo answered a call with an error: `name` is the exception class Odoo names
    (e.g. 'odoo.exceptions.ValidationError'), `message` its text."""

    def __init__(self, name: str, message: str, debug: str = "") -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
        self.debug = debug


class OdooRpc:
    """`call(model, method, *args, **kwargs)` over `POST /jsonrpc` (`object.execute_kw`)."""

    def __init__(
        self, url: str, db: str, login: str, password: str, timeout_s: float = 30.0
    ) -> None:
        self.url = url.rstrip("/")
        self.db = db
        self.login = login
        self.password = password
        self.timeout_s = timeout_s
        self._uid: int | None = None
        self._ids = itertools.count(1)

    def _post(self, service: str, method: str, args: list[Any]) -> Any:
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "method": "call",
                "params": {"service": service, "method": method, "args": args},
                "id": next(self._ids),
            }
        ).encode()
        request = urllib.request.Request(
            self.url + "/jsonrpc", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            answer = json.loads(response.read())
        if "error" in answer:
            data = answer["error"].get("data") or {}
            raise OdooRpcError(
                str(data.get("name") or answer["error"].get("message")),
                str(data.get("message") or answer["error"].get("message")),
                str(data.get("debug") or ""),
            )
        return answer["result"]

    @property
    def uid(self) -> int:
        if self._uid is None:
            uid = self._post("common", "login", [self.db, self.login, self.password])
            if not uid:
                raise OdooRpcError("AccessDenied", f"login {self.login!r} refused on {self.db!r}")
            self._uid = int(uid)
        return self._uid

    def call(self, model: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._post(
            "object",
            "execute_kw",
            [self.db, self.uid, self.password, model, method, list(args), kwargs],
        )


# -- starting and stopping serve ----------------------------------------------------------


def _parse_ready(line: str) -> dict[str, str]:
    # ready url=http://127.0.0.1:PORT db=NAME login=admin password=admin pg_socket=DIR pg_port=N
    return dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)


def _log_tail(log_path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _odoo_server_pid(serve_pid: int) -> int | None:
    """The long-running odoo-bin among serve's children (not the --stop-after-init install)."""
    try:
        children = psutil.Process(serve_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    for child in children:
        with contextlib.suppress(psutil.Error):
            cmdline = child.cmdline()
            if any(arg.endswith("odoo-bin") for arg in cmdline) and (
                "--stop-after-init" not in cmdline
            ):
                return child.pid
    return None


def _serve_work_dir(serve_pid: int, ready: Mapping[str, str]) -> Path | None:
    """serve's temp dir (its PostgreSQL socket and cluster), from the ready line or, before
    that, from the --db_host argument of the odoo-bin it is running."""
    if ready.get("pg_socket"):
        return Path(ready["pg_socket"])
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(serve_pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                for arg in child.cmdline():
                    if arg.startswith("--db_host="):
                        return Path(arg.split("=", 1)[1])
    return None


def _stop_postmaster(work_dir: Path) -> None:
    """Stop a PostgreSQL that serve started and could not stop itself (serve was killed):
    its postmaster runs in a session of its own, out of reach of a group kill."""
    pid_file = work_dir / "pg" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(pid_file.read_text().splitlines()[0])
        with contextlib.suppress(psutil.Error):
            postmaster = psutil.Process(pid)
            postmaster.send_signal(signal.SIGQUIT)  # immediate shutdown, children included
            try:
                postmaster.wait(10)
            except psutil.TimeoutExpired:
                postmaster.kill()
                postmaster.wait(10)
    shutil.rmtree(work_dir, ignore_errors=True)


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM it when the test run dies (SIGKILL, or a timeout that
    ends the interpreter with os._exit), so serve's trap still removes Odoo and PostgreSQL."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class ServeProcess:
    """One run of `serve`: started in its own process group, stopped with everything it made."""

    def __init__(self, serve: Path, log_path: Path, addons: Path, modules: tuple[str, ...]):
        self.serve = serve
        self.log_path = log_path
        self.addons = addons
        self.modules = modules
        self.ready: dict[str, str] = {}
        self.proc: subprocess.Popen[str] | None = None
        self.odoo_pid: int | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> RealOdoo:
        started = time.monotonic()
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [
                    str(self.serve),
                    "--addons",
                    str(self.addons),
                    "--modules",
                    ",".join(self.modules),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,  # its own process group, so the stop reaches it all
                preexec_fn=_terminate_with_parent if sys.platform == "linux" else None,
            )
        threading.Thread(target=self._read_stdout, name="serve-stdout", daemon=True).start()
        deadline = started + timeout_s
        while not self.ready:
            try:
                line = self._lines.get(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            except queue.Empty:
                line = ""
            if line is None or self.proc.poll() is not None:
                self._fail_start(f"serve exited (status {self.proc.poll()}) before it was ready")
            if line and line.startswith("ready "):
                self.ready = _parse_ready(line)
            elif time.monotonic() > deadline:
                self._fail_start(f"serve was not ready after {timeout_s:.0f} s")
        self.odoo_pid = _odoo_server_pid(self.proc.pid)
        return RealOdoo(
            url=self.ready["url"],
            db=self.ready["db"],
            login=self.ready["login"],
            password=self.ready["password"],
            odoo_pid=self.odoo_pid,
            serve_pid=self.proc.pid,
            started_in_s=time.monotonic() - started,
            log_path=self.log_path,
        )

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def _fail_start(self, why: str) -> None:
        self.stop()
        pytest.fail(
            f"real Odoo 17: {why}.\ncommand: {self.serve} --addons {self.addons} --modules "
            f"{','.join(self.modules)}\nlast lines of {self.log_path}:\n{_log_tail(self.log_path)}",
            pytrace=False,
        )

    def stop(self) -> None:
        """SIGTERM the group (serve's trap stops Odoo and PostgreSQL and removes its cluster),
        wait; SIGKILL the group if it hangs, and then clean up what serve could not."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        # A frozen server would hold serve's cleanup forever (it waits for Odoo to exit).
        if self.odoo_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.odoo_pid, signal.SIGCONT)
        work_dir = _serve_work_dir(proc.pid, self.ready)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT_S)
        # Whatever of the group outlived serve (it should be nothing).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if work_dir is not None and work_dir.exists():
            _stop_postmaster(work_dir)


_started: list[RealOdoo] = []


@pytest.fixture(scope="session")
def real_odoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealOdoo]:
    """A real Odoo 17 with `milkconsole_dairy` installed, for the whole test session."""
    serve = _serve_or_fail()
    log_path = tmp_path_factory.mktemp("real_odoo") / "serve.log"
    process = ServeProcess(serve, log_path, ADDONS_DIR, MODULES)
    try:
        odoo = process.start()
        _started.append(odoo)
        yield odoo
    finally:
        process.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The first test to use the server pays for starting it (up to READY_TIMEOUT_S on a first
    # run that builds Odoo's virtualenv): the suite's default timeout would cut it short.
    for item in items:
        if item.get_closest_marker("real_odoo") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(READY_TIMEOUT_S + 120))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for odoo in _started:
        terminalreporter.write_line(
            f"real Odoo 17: ready in {odoo.started_in_s:.1f} s at {odoo.url} (log: {odoo.log_path})"
        )


# -- faults: a gate in front of the server, a frozen server ---------------------------------


class OdooGate:
    """A loopback TCP proxy in front of a server.

    `close()` refuses new connections (the listening port is closed: connect() gets
    ECONNREFUSED) and cuts the open ones with a reset; `open()` listens on the same port again.
    The server behind it and its database are untouched, so a test can make "Odoo stopped
    mid-drain" happen without losing the session's server.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.connections_accepted = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_open(self) -> bool:
        return self._listener is not None

    def open(self) -> OdooGate:
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))  # port 0 the first time, then the same port
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(
            target=self._accept, args=(listener,), name="odoo-gate-accept", daemon=True
        ).start()
        return self

    def close(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        if listener is not None:
            # shutdown() wakes the accept() blocked in the other thread; close() alone may not.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in conns:
            _reset(conn)

    def __enter__(self) -> OdooGate:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # closed meanwhile
                    _reset(client)
                    _reset(upstream)
                    return
                self._conns.update((client, upstream))
                self.connections_accepted += 1
            link = _Link(client, upstream, self._forget)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=link.pump, args=(src, dst), name="odoo-gate-pump", daemon=True
                ).start()

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            self._conns.difference_update(socks)


class _Link:
    """One proxied connection: two pumps; closed once both directions have ended."""

    def __init__(self, client: socket.socket, upstream: socket.socket, forget: Any) -> None:
        self.socks = (client, upstream)
        self._forget = forget
        self._lock = threading.Lock()
        self._running = 2

    def pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            # This side has finished sending; let the other finish its answer.
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            for sock in self.socks:  # cut (a gate close, or a peer's reset): cut the other side
                _reset(sock)
        with self._lock:
            self._running -= 1
            last = self._running == 0
        if last:
            for sock in self.socks:
                with contextlib.suppress(OSError):
                    sock.close()
            self._forget(*self.socks)


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the peer sees its connection cut, not a clean end."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        sock.close()


@pytest.fixture
def odoo_gate(real_odoo: RealOdoo) -> Iterator[OdooGate]:
    """An open gate in front of the session's real Odoo, closed at the end of the test."""
    with OdooGate("127.0.0.1", real_odoo.port) as gate:
        yield gate


def freeze(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)


def unfreeze(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def frozen_odoo(odoo: RealOdoo) -> Iterator[None]:
    """The odoo-bin process stopped (SIGSTOP) inside the block: connections are accepted by the
    kernel and never answered, as with a hung server. Always resumed (SIGCONT) on exit, since
    the whole session shares the server."""
    if odoo.odoo_pid is None:
        raise RealOdooError("the odoo-bin process of serve was not found; cannot freeze it")
    freeze(odoo.odoo_pid)
    try:
        yield
    finally:
        unfreeze(odoo.odoo_pid)


def wait_until_answers(url: str, timeout_s: float = 30.0) -> None:
    """Block until the server at `url` answers /web/webclient/version_info (after a thaw)."""
    deadline = time.monotonic() + timeout_s
    body = json.dumps({"jsonrpc": "2.0", "params": {}}).encode()
    while True:
        try:
            request = urllib.request.Request(
                url + "/web/webclient/version_info",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=2) as response:
                json.loads(response.read())
            return
        except (OSError, urllib.error.URLError, ValueError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
