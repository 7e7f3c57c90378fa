"""The live view as the runtime runs it: certificate, tokens, the stalls board and the server.

`ParlourRuntime.start_web` builds a `WebView` when the config has a `[web]` section, feeds it
every poller event (`publish`, any thread, cheap) and every committed batch (`committed`), and
starts it; the console and the headless gateway therefore serve the same pages. The server runs
on its own thread with its own event loop; database reads, PIN checks and the acknowledge write
run on a small pool of its own, never on a poller thread or the GUI thread.

`WebStatus` (frozen) goes to `on_status` on whichever thread changed it (the server thread when
a phone connects): the console's status bar hops it to the GUI thread.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from milkconsole.errors import MilkConsoleError
from milkconsole.grants import Grant
from milkconsole.herd.directory import HerdDirectory
from milkconsole.meters.events import EquipmentAlertsRaised
from milkconsole.reports.dashboard import ProductionSnapshot, production_snapshot
from milkconsole.store.alerts import (
    ATTENTION_STATES,
    AlertFilter,
    AlertMarks,
    AlertRecord,
    alert_marks,
    list_alerts,
)
from milkconsole.store.cow_history import CowHistory, cow_history
from milkconsole.store.db import Database
from milkconsole.store.directory import load_herd
from milkconsole.store.web_tokens import IssuedToken, WebTokenInfo, WebTokenStore
from milkconsole.supervision.alerts import acknowledge_alert
from milkconsole.supervision.lock import AccessControl, AccessSettings
from milkconsole.supervision.users import UserStore
from milkconsole.web.certificate import CertificateInfo, ensure_certificate
from milkconsole.web.live import DATABASE_CHANGED, DivertSet, LiveInbox, StallBoard
from milkconsole.web.settings import WebSettings

if TYPE_CHECKING:
    from milkconsole.config import ParlourConfig
    from milkconsole.web.server import WebServer

log = logging.getLogger(__name__)

COW_HISTORY_DAYS = 30.0
START_TIMEOUT_S = 10.0


class WebError(MilkConsoleError):
    """The live view could not start (port taken, certificate not writable...)."""


@dataclass(frozen=True, slots=True)
class WebStatus:
    """What the status bar shows: `state` off, starting, serving, failed or stopped; how many
    live pages are connected; the address phones open (without a token) and the certificate's
    SHA-256 fingerprint."""

    state: str = "off"
    clients: int = 0
    url: str | None = None
    fingerprint: str | None = None
    tls: bool = True
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DbViews:
    """What the server re-reads after a commit: today's figures and the stored alerts."""

    production: ProductionSnapshot
    marks: AlertMarks


def lan_address() -> str:
    """This machine's first non-loopback IPv4 address by its own name, else its name (no
    packet is sent to find it)."""
    try:
        name = socket.gethostname()
    except OSError:
        return "localhost"
    try:
        addresses = socket.gethostbyname_ex(name)[2]
    except OSError:
        addresses = []
    for a in addresses:
        if not ipaddress.ip_address(a).is_loopback:
            return a
    return name or "localhost"


def url_host_for(settings: WebSettings) -> str:
    """The host part phones use: the configured one, the bound address, or this machine's."""
    if settings.url_host:
        return settings.url_host
    if settings.host not in ("0.0.0.0", "::"):
        return settings.host
    return lan_address()


def in_url(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


class Backend:
    """The database side of the pages (plain blocking calls, run on the server's pool)."""

    def __init__(self, db: Database, tokens: WebTokenStore, access: AccessControl) -> None:
        self.db = db
        self.tokens = tokens
        self.access = access

    def check_token(self, secret: str) -> WebTokenInfo | None:
        return self.tokens.check(secret)

    def mark_used(self, token_id: int) -> None:
        self.tokens.mark_used(token_id)

    def herd(self) -> HerdDirectory:
        return load_herd(self.db)

    def db_views(self) -> DbViews:
        return DbViews(production_snapshot(self.db), alert_marks(self.db))

    def production(self) -> ProductionSnapshot:
        return production_snapshot(self.db)

    def alerts(self) -> list[AlertRecord]:
        return list_alerts(self.db, AlertFilter(states=ATTENTION_STATES))

    def cow(self, animal_id: int) -> CowHistory:
        return cow_history(self.db, animal_id, days=COW_HISTORY_DAYS)

    def acknowledge(
        self, where: str, alert_id: int, name: str, pin: str, note: str | None
    ) -> AlertRecord:
        """Check the supervisor's name and PIN exactly as the console does (same back-off,
        audited), then acknowledge with that grant (audited, queued for Odoo)."""
        grant: Grant = self.access.authorize(name, pin, "remote_acknowledge", where=where)
        return acknowledge_alert(self.db, grant, alert_id, note)


class WebView:
    """The live view of one parlour: `start()`, feed it events, `stop()`."""

    def __init__(
        self,
        config: ParlourConfig,
        db: Database,
        settings: WebSettings,
        *,
        access: AccessControl | None = None,
        on_status: Callable[[WebStatus], None] | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.settings = settings
        self.tokens = WebTokenStore(db)
        self.access = access or AccessControl(UserStore(db), AccessSettings.from_parlour(config))
        self.backend = Backend(db, self.tokens, self.access)
        self.inbox = LiveInbox()
        self.board = StallBoard([(m.stall, m.id) for m in config.meters])
        self.certificate: CertificateInfo | None = None
        self.url_host = url_host_for(settings)
        self._listeners: list[Callable[[WebStatus], None]] = [on_status] if on_status else []
        self._lock = threading.Lock()
        self._status = WebStatus(tls=settings.tls)
        self._server: WebServer | None = None

    # -- events (any thread) ----------------------------------------------------------------
    def publish(self, event: object) -> None:
        """A runtime listener: live events for the stalls; a raised alert re-reads the store."""
        if isinstance(event, EquipmentAlertsRaised):
            self.inbox.put(DATABASE_CHANGED)
        else:
            self.inbox.publish(event)

    def committed(self, _events: list[object]) -> None:
        """A committed-listener: the stored figures (today, alerts) may have changed."""
        self.inbox.put(DATABASE_CHANGED)

    def set_divert(self, stall: int, reason: str | None) -> None:
        """Show DIVERT (with `reason`) on a stall's card, or stop showing it (None)."""
        self.inbox.put(DivertSet(stall, reason))

    # -- status -------------------------------------------------------------------------------
    @property
    def status(self) -> WebStatus:
        with self._lock:
            return self._status

    def add_status_listener(self, fn: Callable[[WebStatus], None]) -> None:
        self._listeners.append(fn)
        fn(self.status)

    def _set_status(self, **changes: object) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)  # type: ignore[arg-type]
            status = self._status
        for fn in list(self._listeners):
            try:
                fn(status)
            except Exception:
                log.exception("web status listener %r failed", fn)

    def _on_clients(self, count: int) -> None:
        self._set_status(clients=count)

    @property
    def base_url(self) -> str:
        return f"{self.settings.scheme}://{in_url(self.url_host)}:{self.port}"

    @property
    def port(self) -> int:
        return self._server.port if self._server is not None else self.settings.port

    def link(self, secret: str) -> str:
        """The address a phone opens (what the QR code holds)."""
        return f"{self.base_url}/?token={secret}"

    # -- tokens -------------------------------------------------------------------------------
    def issue_token(self, grant: Grant | None, label: str) -> tuple[IssuedToken, str]:
        """A new phone access (supervisor; audited) and the link to show once as a QR code."""
        issued = self.tokens.issue(grant, label)
        return issued, self.link(issued.secret)

    def revoke_token(self, grant: Grant | None, token_id: int) -> WebTokenInfo:
        """Take a phone's access back (supervisor; audited); its open pages are cut off now."""
        info = self.tokens.revoke(grant, token_id)
        server = self._server
        if server is not None:
            server.drop_token(token_id)
        return info

    # -- running ------------------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.settings.tls:
            return None
        names = {self.url_host, "localhost", "127.0.0.1"}
        with contextlib.suppress(OSError):
            names.add(socket.gethostname())
        if self.settings.host not in ("0.0.0.0", "::"):
            names.add(self.settings.host)
        cert_dir = self.settings.cert_dir_for(self.db.path)
        self.certificate = ensure_certificate(
            cert_dir, tuple(sorted(names)), common_name=f"Milk Console {self.config.name}"
        )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.certificate.cert_path, self.certificate.key_path)
        return ctx

    def start(self) -> None:
        """Make or load the certificate and start serving; WebError (status failed) when the
        port or the certificate cannot be had."""
        from milkconsole.web.server import WebServer  # aiohttp only when the view is used

        self._set_status(state="starting", error=None)
        try:
            ctx = self._ssl_context()
            server = WebServer(
                backend=self.backend,
                inbox=self.inbox,
                board=self.board,
                settings=self.settings,
                ssl_context=ctx,
                farm=self.config.name,
                on_clients=self._on_clients,
            )
            server.start(START_TIMEOUT_S)
        except Exception as exc:
            self._set_status(state="failed", error=str(exc))
            raise WebError(f"the live view for phones did not start: {exc}") from exc
        self._server = server
        if not self.settings.tls and self.settings.host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("live view on plain HTTP (tls = false): anyone on the network can read it")
        self._set_status(
            state="serving",
            url=self.base_url,
            fingerprint=self.certificate.fingerprint_sha256 if self.certificate else None,
        )
        log.info("live view for phones at %s", self.base_url)

    def stop(self, timeout_s: float = 5.0) -> None:
        server = self._server
        self._server = None
        if server is not None:
            server.stop(timeout_s)
            self._set_status(state="stopped", clients=0)
