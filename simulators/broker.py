"""A real MQTT broker for the tests and the bench: Debian's `mosquitto`, on free loopback ports.

Not a stand-in: the console's publisher talks to the same broker a farm runs. What this module
adds is the set-up a test needs and a farm does itself: a config file of its own (listeners on
127.0.0.1 only, persistence in the work directory, no anonymous clients), a password file made
with `mosquitto_passwd`, and a TLS listener whose certificate a throw-away CA made here signed
(`make_ca`, `make_server_cert`; Debian's `openssl`). `stop()` / `start()` take the
broker away and bring it back on the same ports with what it had persisted.

    with Mosquitto(workdir, users={"parlour": "s3cret"}) as broker:
        broker.port, broker.tls_port, broker.ca_file
"""

from __future__ import annotations

import getpass
import ipaddress
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from simulators.demo import _free_tcp_ports

HOST = "127.0.0.1"


class BrokerNotInstalled(RuntimeError):
    """mosquitto or mosquitto_passwd is missing: run scripts/bootstrap.sh."""


@dataclass(frozen=True, slots=True)
class Ca:
    """A certificate authority made for a test: its certificate and key files."""

    cert_file: Path
    key_file: Path


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BrokerNotInstalled("openssl is not installed: run scripts/bootstrap.sh")
    done = subprocess.run(
        [openssl, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def make_ca(directory: Path, name: str = "Milk Console test CA") -> Ca:
    """A self-signed CA in `directory` (`<name>.pem` and its key), made by `openssl`."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = name.lower().replace(" ", "-").replace("'", "")
    ca = Ca(directory / f"{stem}.pem", directory / f"{stem}.key")
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca.key_file.name, "-out", ca.cert_file.name, "-days", "30",
        "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
        cwd=directory,
    )  # fmt: skip
    ca.key_file.chmod(0o600)
    return ca


def make_server_cert(ca: Ca, directory: Path, hosts: tuple[str, ...] = (HOST, "localhost")) -> Ca:
    """A server certificate for `hosts` signed by `ca` (returned as cert and key files)."""
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for h in hosts:
        try:
            ipaddress.ip_address(h)
            names.append(f"IP:{h}")
        except ValueError:
            names.append(f"DNS:{h}")
    out = Ca(directory / "server.pem", directory / "server.key")
    extensions = directory / "server.ext"
    extensions.write_text(
        f"subjectAltName={','.join(names)}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\n"
    )
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", out.key_file.name, "-out", "server.csr", "-subj", f"/CN={hosts[0]}",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", str(ca.cert_file.resolve()),
        "-CAkey", str(ca.key_file.resolve()), "-CAcreateserial", "-days", "30",
        "-extfile", extensions.name, "-out", out.cert_file.name,
        cwd=directory,
    )  # fmt: skip
    out.key_file.chmod(0o600)
    return out


class Mosquitto:
    """One mosquitto process with its own config, ports and persistence under `workdir`.

    `users` go into its password file (no anonymous clients); `tls`: a second listener with a
    certificate for 127.0.0.1 signed by `ca_file`'s CA.
    """

    def __init__(
        self, workdir: Path, *, users: dict[str, str] | None = None, tls: bool = True
    ) -> None:
        for program in ("mosquitto", "mosquitto_passwd"):
            if shutil.which(program) is None and not Path(f"/usr/sbin/{program}").exists():
                raise BrokerNotInstalled(
                    f"{program} is not installed: run scripts/bootstrap.sh (Debian packages "
                    "mosquitto and mosquitto-clients)"
                )
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.users = dict(users or {})
        self.port, self.tls_port = _free_tcp_ports(2, HOST)
        self.ca: Ca | None = None
        if tls:
            self.ca = make_ca(workdir / "pki")
            self._server = make_server_cert(self.ca, workdir / "pki")
        self.log_file = workdir / "mosquitto.log"
        self.conf_file = workdir / "mosquitto.conf"
        self._write_config()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def ca_file(self) -> Path:
        assert self.ca is not None, "this broker has no TLS listener"
        return self.ca.cert_file

    def _write_config(self) -> None:
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        lines = [
            "per_listener_settings false",
            f"allow_anonymous {'false' if self.users else 'true'}",
            "persistence true",
            f"persistence_location {data}/",
            "autosave_interval 10",
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            # Running as root, mosquitto would switch to a 'mosquitto' user that cannot read
            # this directory: stay who we are.
            f"user {getpass.getuser()}",
        ]
        if self.users:
            passwd = self.workdir / "passwd"
            passwd.unlink(missing_ok=True)
            for i, (user, password) in enumerate(self.users.items()):
                create = ["-c"] if i == 0 else []
                subprocess.run(
                    [_program("mosquitto_passwd"), *create, "-b", str(passwd), user, password],
                    check=True,
                    capture_output=True,
                )
            passwd.chmod(0o600)
            lines.append(f"password_file {passwd}")
        lines += ["", f"listener {self.port} {HOST}"]
        if self.ca is not None:
            lines += [
                f"listener {self.tls_port} {HOST}",
                f"cafile {self.ca.cert_file}",
                f"certfile {self._server.cert_file}",
                f"keyfile {self._server.key_file}",
                "tls_version tlsv1.2",
            ]
        self.conf_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self, timeout_s: float = 15.0) -> Mosquitto:
        """Start the broker and wait until it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen(
            [_program("mosquitto"), "-c", str(self.conf_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        ports = [self.port] + ([self.tls_port] if self.ca is not None else [])
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited at start: {err}{self.log_tail()}")
            if all(_accepts(p) for p in ports):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen within {timeout_s} s: {self.log_tail()}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop it (SIGTERM: it saves what it holds for persistent sessions first)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(
        self,
        _t: type[BaseException] | None,
        _e: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()


def _program(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False
