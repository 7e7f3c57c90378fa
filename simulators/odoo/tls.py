"""TLS for the simulated Odoo: a throw-away certificate, and the server context that serves it."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path


def make_self_signed_cert(directory: Path, hostname: str = "localhost") -> tuple[Path, Path]:
    """A throw-away certificate for `hostname` and 127.0.0.1 (needs the openssl command)."""
    cert, key = directory / "odoo-sim.crt", directory / "odoo-sim.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={hostname}",
            "-addext",
            f"subjectAltName=DNS:{hostname},IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The context an `OdooSimulator(tls=(cert, key))` accepts connections with."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx
