"""The live view's HTTP server: pages, the live event stream, tokens checked on every request.

The only module that imports aiohttp (pinned to a minor range in pyproject.toml). aiohttp, not
Starlette + uvicorn: one well-kept package gives the server, TLS from a plain `ssl.SSLContext`,
streamed responses for Server-Sent Events, and an `AppRunner` that runs inside an event loop we
own on our own thread, so starting and stopping it is two calls and no second process; uvicorn
wants to own the loop and the signals, and Starlette would add a third package for the same.

Threads: `WebServer.start()` starts one thread with its own asyncio loop. Poller threads only
touch `LiveInbox.put` (a lock and a deque); the inbox wakes this loop with
`loop.call_soon_threadsafe`, and events are applied and sent here. Database reads, PIN checks
and the acknowledge write run on the server's own two-thread pool, never on the loop (a slow
disk must not hold up the stream) and never on a poller or the GUI thread.

Security: every page and the stream need a token (query `?token=` once, from the QR code; then
an HttpOnly cookie, the token moved out of the address bar; or `Authorization: Bearer`). No
token is 401, an unknown or revoked one 403. There is no access log (the first request's URL
holds the token). Every response forbids scripts and styles from anywhere but this server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web

from milkconsole.grants import AccessDenied
from milkconsole.store.alerts import AlertError
from milkconsole.store.web_tokens import WebTokenInfo, token_hash
from milkconsole.supervision.lock import PinBackoff, PinRefused
from milkconsole.web import pages
from milkconsole.web.live import (
    DATABASE_CHANGED,
    Broadcaster,
    DatabaseChanged,
    LiveInbox,
    StallBoard,
    StallView,
    Subscriber,
    sse,
)
from milkconsole.web.settings import WebSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

STATIC_DIR = Path(__file__).resolve().parent / "static"
COOKIE = "mc_access"
COOKIE_MAX_AGE_S = 400 * 24 * 3600  # browsers cap cookies at 400 days
# The pages get at most four messages a second: what the pollers reported in the meantime (the
# buses' cycles, a stall changed several times) is one message with each stall's newest state.
# 20 pages then cost 80 writes a second instead of one per burst per page, and an update still
# reaches a page well inside the 1 s target (bench/lan.py: p95 264 ms at 80 stalls, against 78 ms
# with 0.05 s; the console's CPU share under load fell from +0.085 to +0.079 of a CPU).
FLUSH_DELAY_S = 0.25
KEEPALIVE_S = 10.0  # also how soon a page that went away stops being counted
TOKEN_CACHE_S = 5.0  # how long a token check is reused (a revocation elsewhere takes this long)
STREAM_RECHECK_S = 15.0
TOKEN_TOUCH_S = 600.0
REFRESH_MIN_S = 1.0
REFRESH_IDLE_S = 15.0
HERD_REFRESH_S = 120.0
TICK_S = 1.0
STOP_GRACE_S = 2.0
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    # Not no-referrer: with it a browser sends "Origin: null" on the acknowledge form, which
    # the same-origin check must refuse. Nothing secret is in a URL after the first redirect.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


class WebServer:
    """The aiohttp application on its own thread. `start()` returns once it listens."""

    def __init__(
        self,
        *,
        backend: Any,
        inbox: LiveInbox,
        board: StallBoard,
        settings: WebSettings,
        ssl_context: ssl.SSLContext | None,
        farm: str,
        on_clients: Callable[[int], None] | None = None,
    ) -> None:
        self.backend = backend
        self.inbox = inbox
        self.board = board
        self.settings = settings
        self.ssl_context = ssl_context
        self.farm = farm
        self.port = settings.port
        self.broadcaster = Broadcaster(on_clients)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="web-db")
        self._flush_handle: asyncio.TimerHandle | None = None
        self._sent: dict[int, StallView] = {}
        self._tokens: dict[str, tuple[WebTokenInfo | None, float]] = {}
        self._touched: dict[int, float] = {}
        self._production: dict[str, Any] | None = None
        self._alerts_open: int | None = None
        self._refreshing = False
        self._refresh_again = False
        self._last_refresh = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- any thread ---------------------------------------------------------------------------
    def start(self, timeout_s: float) -> None:
        self._thread = threading.Thread(target=self._run, name="web-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"the web server did not start within {timeout_s:g} s")
        if self._error is not None:
            raise self._error

    def stop(self, timeout_s: float = 5.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already ended
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout_s)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def drop_token(self, token_id: int) -> None:
        """A token was revoked here: forget it and cut off its open pages now."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._drop_token, token_id)

    # -- the server thread ----------------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._setup())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _setup(self) -> None:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.on_response_prepare.append(self._headers)
        r = app.router
        r.add_get("/", self._stalls)
        r.add_get("/today", self._today)
        r.add_get("/alerts", self._alerts)
        r.add_post("/alerts/{alert_id:[0-9]+}/acknowledge", self._acknowledge)
        r.add_get("/cows", self._cow_search)
        r.add_get("/cows/{animal_id:[0-9]+}", self._cow)
        r.add_get("/api/stalls", self._api_stalls)
        r.add_get("/api/today", self._api_today)
        r.add_get("/events", self._events)
        r.add_static("/static/", STATIC_DIR, show_index=False, append_version=False)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=STOP_GRACE_S)
        await runner.setup()
        site = web.TCPSite(
            runner,
            self.settings.host,
            self.settings.port,
            ssl_context=self.ssl_context,
            reuse_address=True,
        )
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(
                exc.errno,
                f"cannot listen on {self.settings.host} port {self.settings.port}: "
                f"{exc.strerror or exc}",
            ) from exc
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                self.port = int(address[1])
                break
        self.inbox.attach(self._wake)
        self._spawn(self._ticker())
        await self._refresh_herd()
        await self._refresh_db()

    async def _shutdown(self) -> None:
        self.inbox.attach(None)
        self.broadcaster.close_all()
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    # -- live events --------------------------------------------------------------------------
    def _wake(self) -> None:
        """Called on a poller thread when the inbox stops being empty."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._schedule_flush)

    def _schedule_flush(self) -> None:
        if self._flush_handle is None and self._loop is not None:
            self._flush_handle = self._loop.call_later(FLUSH_DELAY_S, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        dirty: set[int] = set()
        db_changed = False
        for item in self.inbox.take():
            if isinstance(item, DatabaseChanged):
                db_changed = True
            else:
                dirty |= self.board.apply(item)
        self._send_stalls(dirty)
        if db_changed:
            self._spawn(self._refresh_db())

    def _send_stalls(self, stalls: set[int]) -> None:
        changed = []
        for stall in sorted(stalls):
            view = self.board.view(stall)
            if self._sent.get(stall) != view:
                self._sent[stall] = view
                changed.append(view.to_json())
        if changed:
            self.broadcaster.send(sse("stalls", {"stalls": changed, "sent_at": time.time()}))

    def _snapshot(self) -> bytes:
        views = self.board.views()
        for v in views:
            self._sent[v.stall] = v
        return sse(
            "snapshot",
            {
                "stalls": [v.to_json() for v in views],
                "production": self._production,
                "alerts_open": self._alerts_open,
                "sent_at": time.time(),
            },
        )

    async def _ticker(self) -> None:
        last_herd = time.monotonic()
        while True:
            await asyncio.sleep(TICK_S)
            self._send_stalls(self.board.expire())
            now = time.monotonic()
            if now - self._last_refresh >= REFRESH_IDLE_S:
                self._spawn(self._refresh_db())
            if now - last_herd >= HERD_REFRESH_S:
                last_herd = now
                self._spawn(self._refresh_herd())

    async def _refresh_herd(self) -> None:
        try:
            herd = await self._blocking(self.backend.herd)
        except Exception:
            log.exception("live view: reading the herd failed")
            return
        self._send_stalls(self.board.set_herd(herd))

    async def _refresh_db(self) -> None:
        """Re-read today's figures and the stored alerts (at most once a second)."""
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        try:
            while True:
                self._refresh_again = False
                wait = self._last_refresh + REFRESH_MIN_S - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._last_refresh = time.monotonic()
                try:
                    views = await self._blocking(self.backend.db_views)
                except Exception:
                    log.exception("live view: reading today's figures failed")
                    return
                self._apply_db(views)
                if not self._refresh_again:
                    return
        finally:
            self._refreshing = False

    def _apply_db(self, views: Any) -> None:
        production = pages.production_json(views.production)
        if production != self._production:
            self._production = production
            self.broadcaster.send(sse("production", production))
        if views.marks.open_count != self._alerts_open:
            self._alerts_open = views.marks.open_count
            self.broadcaster.send(
                sse(
                    "alerts",
                    {"open": views.marks.open_count, "attention": views.marks.attention_count},
                )
            )
        self._send_stalls(
            self.board.set_alert_marks(views.production.session_alerts(), views.marks.by_animal)
        )

    # -- tokens -------------------------------------------------------------------------------
    async def _token(self, secret: str, *, fresh: bool = False) -> WebTokenInfo | None:
        key = token_hash(secret)
        now = time.monotonic()
        cached = self._tokens.get(key)
        if cached is not None and not fresh and now - cached[1] < TOKEN_CACHE_S:
            return cached[0]
        info = await self._blocking(self.backend.check_token, secret)
        if len(self._tokens) > 1000:  # bounded: guesses must not grow memory
            self._tokens.clear()
        self._tokens[key] = (info, now)
        if info is not None and info.active:
            touched = self._touched.get(info.id, -TOKEN_TOUCH_S)
            if now - touched >= TOKEN_TOUCH_S:
                self._touched[info.id] = now
                self._spawn(self._blocking(self.backend.mark_used, info.id))
        return info

    def _drop_token(self, token_id: int) -> None:
        for key, (info, _at) in list(self._tokens.items()):
            if info is not None and info.id == token_id:
                del self._tokens[key]
        n = self.broadcaster.close_token(token_id)
        log.info("phone access %d revoked: %d live page(s) cut off", token_id, n)

    def _refuse(self, status: int, title: str, text: str) -> web.Response:
        return web.Response(
            status=status,
            text=pages.refused_page(title, text, farm=self.farm),
            content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/static/"):
            return await handler(request)
        from_query = request.query.get("token")
        secret = from_query or request.cookies.get(COOKIE)
        auth = request.headers.get("Authorization", "")
        if not secret and auth.lower().startswith("bearer "):
            secret = auth[7:].strip()
        if not secret:
            return self._refuse(
                401,
                "Scan the QR code first",
                "This page needs the phone access the console gives: open Supervisor → "
                "Phone access on the console and scan its QR code with this phone.",
            )
        info = await self._token(secret)
        if info is None:
            return self._refuse(
                403,
                "Not a valid phone access",
                "This link is not one the console gave. Ask a supervisor for a new QR code.",
            )
        if not info.active:
            return self._refuse(
                403,
                "Phone access revoked",
                f"The access {info.label!r} was revoked by {info.revoked_by}. "
                "Ask a supervisor for a new QR code.",
            )
        request["token"] = info
        if from_query and request.method == "GET":
            # Keep the secret out of the address bar, the history and any screenshot.
            rest = {k: v for k, v in request.query.items() if k != "token"}
            location = request.path + (f"?{urlencode(rest)}" if rest else "")
            resp = web.Response(status=303, headers={"Location": location})
            resp.set_cookie(
                COOKIE,
                secret,
                max_age=COOKIE_MAX_AGE_S,
                httponly=True,
                secure=self.settings.tls,
                samesite="Lax",
                path="/",
            )
            return resp
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return self._refuse(404, "Not found", "There is no such page here.")

    async def _headers(self, _request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(SECURITY_HEADERS)
        response.headers.setdefault("Cache-Control", "no-store")

    # -- pages --------------------------------------------------------------------------------
    def _html(self, text: str, status: int = 200) -> web.Response:
        return web.Response(text=text, status=status, content_type="text/html")

    async def _stalls(self, _request: web.Request) -> web.Response:
        return self._html(pages.stalls_page(self.farm, self.board.views(), self._alerts_open))

    async def _today(self, _request: web.Request) -> web.Response:
        snap = await self._blocking(self.backend.production)
        return self._html(pages.production_page(self.farm, snap, self._alerts_open))

    async def _alerts(self, request: web.Request) -> web.Response:
        alerts = await self._blocking(self.backend.alerts)
        notice = None
        done = request.query.get("acknowledged", "")
        if done.isdigit():
            hit = next((a for a in alerts if a.id == int(done)), None)
            if hit is not None:
                notice = f"Acknowledged: {hit.title} {hit.cow_label} by {hit.acknowledged_by}."
        return self._html(
            pages.alerts_page(
                self.farm, alerts, allow_acknowledge=self.settings.allow_acknowledge, notice=notice
            )
        )

    async def _acknowledge(self, request: web.Request) -> web.Response:
        alert_id = int(request.match_info["alert_id"])
        origin = request.headers.get("Origin")
        if origin and origin != f"{request.scheme}://{request.host}":
            return self._refuse(403, "Refused", "A form from another site cannot act here.")
        if not self.settings.allow_acknowledge:
            return self._refuse(403, "Refused", "Acknowledging from a phone is switched off.")
        form = await request.post()
        name = str(form.get("name", "")).strip()[:32]
        pin = str(form.get("pin", ""))
        note = str(form.get("note", "")).strip() or None
        token: WebTokenInfo = request["token"]
        where = f"web:{token.label}"[:64]
        status, error = 200, None
        try:
            await self._blocking(self.backend.acknowledge, where, alert_id, name, pin, note)
        except PinBackoff as exc:
            status, error = 429, f"Too many wrong PINs: try again in {exc.retry_in_s:.0f} s."
        except PinRefused:
            status, error = 403, "Wrong name or PIN."
        except AccessDenied as exc:
            status, error = 403, str(exc)
        except AlertError as exc:
            status, error = 409, str(exc)
        if error is None:
            self.inbox.put(DATABASE_CHANGED)
            resp = web.Response(
                status=303, headers={"Location": f"/alerts?acknowledged={alert_id}"}
            )
            return resp
        alerts = await self._blocking(self.backend.alerts)
        return self._html(
            pages.alerts_page(
                self.farm,
                alerts,
                allow_acknowledge=True,
                error=error,
                open_form=alert_id if any(a.id == alert_id for a in alerts) else None,
                name=name,
            ),
            status,
        )

    async def _cow_search(self, request: web.Request) -> web.Response:
        query = request.query.get("q", "").strip()[:40]
        herd = self.board.herd
        found = herd.search(query) if query else []
        exact = herd.find_number(query) if query else None
        if exact is not None:
            return web.Response(status=303, headers={"Location": f"/cows/{exact.id}"})
        return self._html(pages.cow_search_page(self.farm, query, found, self._alerts_open))

    async def _cow(self, request: web.Request) -> web.Response:
        animal_id = int(request.match_info["animal_id"])
        try:
            history = await self._blocking(self.backend.cow, animal_id)
        except AlertError:
            return self._refuse(404, "No such cow", f"No cow has the id {animal_id} here.")
        return self._html(pages.cow_page(self.farm, history, self._alerts_open))

    async def _api_stalls(self, _request: web.Request) -> web.Response:
        body = {"stalls": [v.to_json() for v in self.board.views()], "sent_at": time.time()}
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def _api_today(self, _request: web.Request) -> web.Response:
        snap = await self._blocking(self.backend.production)
        return web.Response(
            text=json.dumps(pages.production_json(snap)), content_type="application/json"
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if len(self.broadcaster.subscribers) >= self.settings.max_clients:
            return self._refuse(503, "Too many phones", "Too many live pages are open; try later.")
        token: WebTokenInfo = request["token"]
        secret = request.cookies.get(COOKIE) or request.headers.get("Authorization", "")[7:]
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
        )
        resp.force_close()  # when the stream ends (revoked, stopping) the connection goes too
        await resp.prepare(request)
        sub = Subscriber(token.id, token.label)
        self.broadcaster.add(sub)
        loop = asyncio.get_running_loop()
        checked = loop.time()
        try:
            await resp.write(b"retry: 2000\n\n" + self._snapshot())
            while not sub.closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sub.ready.wait(), KEEPALIVE_S)
                sub.ready.clear()
                transport = request.transport
                if sub.closed or transport is None or transport.is_closing():
                    break
                chunks = []
                if sub.resync:
                    sub.resync = False
                    sub.backlog.clear()
                    chunks.append(self._snapshot())
                while sub.backlog:
                    chunks.append(sub.backlog.popleft())
                await resp.write(b"".join(chunks) if chunks else b": ping\n\n")
                if secret and loop.time() - checked >= STREAM_RECHECK_S:
                    checked = loop.time()
                    info = await self._token(secret, fresh=True)
                    if info is None or not info.active:
                        break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.broadcaster.remove(sub)
        return resp
