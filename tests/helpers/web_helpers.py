"""Shared set-up for the live-view tests: a parlour with a [web] section, its database with a
supervisor and a technician, and an HTTP(S) client that verifies the console's certificate."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from milkconsole.config import ParlourConfig, load_config
from milkconsole.grants import Grant
from milkconsole.store import open_database
from milkconsole.store.db import Database
from milkconsole.store.schema import AlertRow, Animal
from milkconsole.supervision.users import UserStore
from milkconsole.web.service import WebView
from milkconsole.web.settings import parse_web_settings
from simulators.demo import make_demo_config

SUPERVISOR = ("Ann", "4321")
TECHNICIAN = ("Tom", "5678")
ANN = Grant("Ann", "supervisor")


def web_config(tmp: Path, web: str = 'host = "127.0.0.1"\nport = 0\n', **kw: Any) -> ParlourConfig:
    path = make_demo_config(tmp, **({"stalls": 4, "time_scale": 60.0} | kw))
    path.write_text(path.read_text() + "\n[web]\n" + web, encoding="utf-8")
    return load_config(path)


def database_with_users(path: Path) -> Database:
    db = open_database(path)
    users = UserStore(db)
    users.add(SUPERVISOR[0], "supervisor", SUPERVISOR[1], by=None)
    users.add(TECHNICIAN[0], "technician", TECHNICIAN[1], by=ANN)
    return db


def add_cow_alert(db: Database, number: str = "1002", name: str = "Daisy") -> int:
    """A cow and an open mastitis alert about her (as the health hook stores one); its id."""
    with db.write() as tx:
        cow = Animal(number=number, name=name, rfid_tag="982000123456789", active=True)
        tx.add(cow)
        tx.flush()
        alert = AlertRow(
            key=f"TEST-ALERT-{number}",
            kind="mastitis",
            condition="quarter_lf",
            severity="critical",
            state="open",
            animal_id=cow.id,
            message="LF conductivity 8.1 mS/cm, 35 % over her baseline",
            raised_at=datetime.now(UTC),
        )
        tx.add(alert)
        tx.flush()
        return alert.id


@contextmanager
def running_view(config: ParlourConfig, db: Database, **kw: Any) -> Iterator[WebView]:
    view = WebView(config, db, parse_web_settings(config.extra["web"], config.source), **kw)
    view.start()
    try:
        yield view
    finally:
        view.stop()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """Plain `http.client` requests to the view (TLS verified against its own certificate)."""

    def __init__(self, view: WebView) -> None:
        self.view = view
        self.ctx: ssl.SSLContext | None = None
        if view.certificate is not None:
            self.ctx = ssl.create_default_context(cafile=str(view.certificate.cert_path))

    def connect(self, timeout_s: float = 10.0) -> http.client.HTTPConnection:
        if self.ctx is not None:
            return http.client.HTTPSConnection(
                "127.0.0.1", self.view.port, context=self.ctx, timeout=timeout_s
            )
        return http.client.HTTPConnection("127.0.0.1", self.view.port, timeout=timeout_s)

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        cookie: str | None = None,
        body: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        if cookie:
            h["Cookie"] = f"mc_access={cookie}"
        if body is not None:
            h.setdefault("Content-Type", "application/x-www-form-urlencoded")
        conn = self.connect()
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)


class EventStream:
    """One Server-Sent Events connection, read message by message."""

    def __init__(self, client: Client, token: str) -> None:
        self.conn = client.connect()
        self.conn.request("GET", "/events", headers={"Authorization": f"Bearer {token}"})
        self.response = self.conn.getresponse()

    def next(self) -> tuple[str, Any] | None:
        """The next (event, data); None when the server closed the stream."""
        event, data = "message", ""
        while True:
            line = self.response.readline()
            if not line:
                return None
            text = line.decode("utf-8").rstrip("\r\n")
            if not text:
                if data:
                    return event, json.loads(data)
                event, data = "message", ""
                continue
            if text.startswith("event:"):
                event = text[6:].strip()
            elif text.startswith("data:"):
                data += text[5:].strip()

    def close(self) -> None:
        self.response.close()
        self.conn.close()
