"""The live stalls for the phones: what each stall shows, kept from the pollers' events, and the
hand-over of those events from the poller threads to the server thread.

`LiveInbox.publish` is what the runtime calls on a poller thread: it only appends to a locked,
bounded queue and, when the queue was empty, wakes the server thread once (the server passes
`loop.call_soon_threadsafe`). A poller never waits on the web server or on a phone.

On the server thread `StallBoard` applies the events (the same rules as the console's tiles:
a new cow clears the last one's figures, a live reading moves the yield between session updates,
a finished cow stays shown for `DONE_SHOWN_S`), and `Broadcaster` hands each change, encoded
once, to every connected page. A page that cannot keep up loses its backlog and gets the whole
board again (coalescing per stall: only the newest state of a stall matters).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from milkconsole.herd.directory import HerdDirectory, display_tag
from milkconsole.meters.events import (
    MeterStateChanged,
    PollCycleCompleted,
    ReadingTaken,
    SessionCompleted,
    SessionSnapshot,
    SessionStarted,
    SessionUpdated,
)
from milkconsole.reports.dashboard import tile_alerts

# A finished cow's figures stay on the page this long (or until the next cow comes in),
# as on the console's tiles.
DONE_SHOWN_S = 600.0
# Bounded so a stalled server thread cannot grow memory without end; only the newest state of a
# stall matters, so dropping the oldest events loses nothing a page would show.
MAX_INBOX = 50_000
# Messages a page may have waiting before it is given the whole board instead.
MAX_BACKLOG = 64

LIVE_EVENTS = (
    ReadingTaken,
    SessionStarted,
    SessionUpdated,
    SessionCompleted,
    MeterStateChanged,
    PollCycleCompleted,
)


class DatabaseChanged:
    """Marker in the inbox: something was written, so the stored figures (today's milk, the
    alerts) may have changed and are read again."""


DATABASE_CHANGED = DatabaseChanged()


@dataclass(frozen=True, slots=True)
class DivertSet:
    """Milk of a stall must go to the divert line (`reason`), or back to the tank (None).

    Published by the milk-diversion feature through the same inbox as the pollers' events."""

    stall: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class StallView:
    """One stall as a phone shows it. `state` is the one word the card's band says: offline
    beats alert beats the session's state (idle, milking, done, incomplete). `read_at` is the
    wall time (epoch seconds) of the meter reading behind the figures, for latency figures."""

    stall: int
    meter_id: str
    state: str = "idle"
    session_state: str = "idle"
    cow: str = ""
    cow_status: str = "none"  # known, unknown_tag, no_id, none (no cow)
    animal_id: int | None = None
    yield_l: float | None = None
    expected_l: float | None = None
    flow_l_min: float = 0.0
    duration_s: float = 0.0
    alerts: tuple[str, ...] = ()
    divert: str | None = None
    meter_state: str = "ok"
    read_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "stall": self.stall,
            "meter_id": self.meter_id,
            "state": self.state,
            "session_state": self.session_state,
            "cow": self.cow,
            "cow_status": self.cow_status,
            "animal_id": self.animal_id,
            "yield_l": None if self.yield_l is None else round(self.yield_l, 2),
            "expected_l": None if self.expected_l is None else round(self.expected_l, 1),
            "flow_l_min": round(self.flow_l_min, 2),
            "duration_s": round(self.duration_s),
            "alerts": list(self.alerts),
            "divert": self.divert,
            "meter_state": self.meter_state,
            "read_at": self.read_at,
        }


@dataclass
class _Stall:
    """One stall's state on the server thread (never leaves it)."""

    stall: int
    meter_id: str
    session: SessionSnapshot | None = None
    session_state: str = "idle"
    yield_l: float | None = None
    flow_l_min: float = 0.0
    finished_mono: float | None = None
    meter_state: str = "ok"
    divert: str | None = None
    read_at: float | None = None


@dataclass
class StallBoard:
    """Every stall's state, fed with core events on the server thread (not thread-safe)."""

    meters: Iterable[tuple[int, str]]
    done_shown_s: float = DONE_SHOWN_S
    clock: Callable[[], float] = time.monotonic
    herd: HerdDirectory = field(default_factory=HerdDirectory)
    _stalls: dict[int, _Stall] = field(init=False)
    _by_meter: dict[str, int] = field(init=False)
    _session_alerts: Mapping[str, tuple[str, ...]] = field(init=False, default_factory=dict)
    _cow_alerts: Mapping[int, tuple[str, ...]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._stalls = {s: _Stall(s, m) for s, m in sorted(self.meters)}
        self._by_meter = {st.meter_id: s for s, st in self._stalls.items()}

    @property
    def stalls(self) -> list[int]:
        return list(self._stalls)

    def _of(self, meter_id: str, stall: int) -> _Stall | None:
        number = self._by_meter.get(meter_id, stall)
        return self._stalls.get(number)

    # -- inputs -------------------------------------------------------------------------------
    def apply(self, event: object) -> set[int]:
        """Take one event; the stalls whose view may have changed."""
        if isinstance(event, ReadingTaken):
            return self._reading(event)
        if isinstance(event, SessionStarted | SessionUpdated | SessionCompleted):
            return self._session(event.session, isinstance(event, SessionStarted))
        if isinstance(event, MeterStateChanged):
            return self._meter_state(event.health.meter_id, event.health.state)
        if isinstance(event, PollCycleCompleted):
            changed: set[int] = set()
            for h in event.health:
                changed |= self._meter_state(h.meter_id, h.state)
            return changed
        if isinstance(event, DivertSet):
            st = self._stalls.get(event.stall)
            if st is None or st.divert == event.reason:
                return set()
            st.divert = event.reason
            return {st.stall}
        return set()

    def _reading(self, event: ReadingTaken) -> set[int]:
        r = event.reading
        st = self._of(r.meter_id, r.stall)
        if st is None or st.session is None or st.session_state != "milking":
            return set()
        if event.session_key != st.session.key:
            return set()
        changed = False
        if r.flow_l_min is not None and r.flow_l_min != st.flow_l_min:
            st.flow_l_min = r.flow_l_min
            changed = True
        if r.yield_l is not None:
            y = r.yield_l + st.session.yield_offset_l
            if y != st.yield_l:
                st.yield_l = y
                changed = True
        # The session update the tracker made from this same reading came just before it,
        # so the figures may already be these: the reading still dates them.
        st.read_at = r.t_utc.timestamp()
        return {st.stall} if changed else set()

    def _session(self, s: SessionSnapshot, started: bool) -> set[int]:
        st = self._of(s.meter_id, s.stall)
        if st is None:
            return set()
        if started or st.session is None or st.session.key != s.key:
            st.read_at = None
        st.session = s
        if s.state == "in_progress":
            st.session_state = "milking"
            st.flow_l_min = s.flow_l_min
            st.finished_mono = None
        else:
            st.session_state = "done" if s.state == "completed" else "incomplete"
            st.flow_l_min = 0.0
            st.finished_mono = self.clock()
        st.yield_l = s.yield_l
        return {st.stall}

    def _meter_state(self, meter_id: str, state: str) -> set[int]:
        number = self._by_meter.get(meter_id)
        st = self._stalls.get(number) if number is not None else None
        if st is None or st.meter_state == state:
            return set()
        st.meter_state = state
        return {st.stall}

    def set_herd(self, herd: HerdDirectory) -> set[int]:
        self.herd = herd
        return {s.stall for s in self._stalls.values() if s.session is not None}

    def set_alert_marks(
        self, by_session: Mapping[str, tuple[str, ...]], by_animal: Mapping[int, tuple[str, ...]]
    ) -> set[int]:
        """The stored alerts: kinds by session key, and the cows' alerts needing someone."""
        self._session_alerts = by_session
        self._cow_alerts = by_animal
        return {s.stall for s in self._stalls.values() if s.session is not None}

    def expire(self) -> set[int]:
        """Stalls whose finished cow has been shown long enough: empty again."""
        now = self.clock()
        out = set()
        for st in self._stalls.values():
            if st.finished_mono is not None and now - st.finished_mono >= self.done_shown_s:
                st.session, st.session_state, st.yield_l = None, "idle", None
                st.flow_l_min, st.finished_mono, st.read_at = 0.0, None, None
                out.add(st.stall)
        return out

    # -- output -------------------------------------------------------------------------------
    def view(self, stall: int) -> StallView:
        st = self._stalls[stall]
        s = st.session
        cow, status, animal_id, expected = "", "none", None, None
        alerts: tuple[str, ...] = ()
        if s is not None:
            found = self.herd.find_tag(s.rfid)
            if found is not None:
                cow, status, animal_id = found.label, "known", found.id
            elif s.rfid:
                cow, status = f"unknown tag {display_tag(s.rfid)}", "unknown_tag"
            else:
                cow, status = "no ID", "no_id"
            expected = self.herd.expected_for(animal_id)
            stored = self._session_alerts.get(s.key, ())
            if animal_id is not None:
                stored = stored + self._cow_alerts.get(animal_id, ())
            alerts = tile_alerts(s, expected, stored)
        divert = st.divert
        if divert is None and s is not None and animal_id is not None:
            # The same decision the stall's tile makes (milkconsole.herd.separation): a treated,
            # fresh or kept-out cow's milk is to be diverted, with why and until when.
            decision = self.herd.decide(animal_id, s.started_at)
            if decision.divert:  # a phone's card is as small as a tile: the short words
                divert = f"{decision.short_text} · {decision.until_text(short=True)}"
        if st.meter_state == "offline":
            state = "offline"
        elif alerts:
            state = "alert"
        else:
            state = st.session_state
        return StallView(
            stall=stall,
            meter_id=st.meter_id,
            state=state,
            session_state=st.session_state,
            cow=cow,
            cow_status=status,
            animal_id=animal_id,
            yield_l=st.yield_l,
            expected_l=expected,
            flow_l_min=st.flow_l_min,
            duration_s=s.duration_s if s is not None else 0.0,
            alerts=alerts,
            divert=divert,
            meter_state=st.meter_state,
            read_at=st.read_at,
        )

    def views(self) -> list[StallView]:
        return [self.view(s) for s in self._stalls]


class LiveInbox:
    """Events from any thread to the server thread: append under a lock, wake once per burst."""

    def __init__(self, maxlen: int = MAX_INBOX) -> None:
        self._lock = threading.Lock()
        self._queue: deque[object] = deque(maxlen=maxlen)
        self._wake: Callable[[], None] | None = None
        self._pending = False
        self.dropped = 0

    def attach(self, wake: Callable[[], None] | None) -> None:
        """`wake()` is called (on the publishing thread) when the inbox stops being empty;
        it must only schedule work on the server thread (`loop.call_soon_threadsafe`)."""
        with self._lock:
            self._wake = wake
            self._pending = False

    def publish(self, event: object) -> None:
        """Any thread; cheap. Events the live view does not show are ignored here."""
        if not isinstance(event, (*LIVE_EVENTS, DivertSet)):
            return
        self.put(event)

    def put(self, item: object) -> None:
        with self._lock:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
            self._queue.append(item)
            wake = self._wake if not self._pending else None
            if wake is not None:
                self._pending = True
        if wake is not None:
            # RuntimeError: the server's loop closed while stopping; nothing left to wake.
            with contextlib.suppress(RuntimeError):
                wake()

    def take(self) -> list[object]:
        """Server thread: everything waiting, oldest first."""
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
            self._pending = False
        return items


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Events message (JSON data on one line)."""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event}\ndata: {body}\n\n".encode()


class Subscriber:
    """One connected page: what waits for it, and whether it must get the whole board again."""

    def __init__(self, token_id: int, label: str) -> None:
        self.token_id = token_id
        self.label = label
        self.backlog: deque[bytes] = deque()
        self.resync = False
        self.closed = False
        self.ready = asyncio.Event()

    def offer(self, message: bytes) -> None:
        if len(self.backlog) >= MAX_BACKLOG:
            self.backlog.clear()  # the page is behind: the whole board replaces the backlog
            self.resync = True
        else:
            self.backlog.append(message)
        self.ready.set()

    def close(self) -> None:
        self.closed = True
        self.ready.set()


class Broadcaster:
    """The connected pages (server thread only)."""

    def __init__(self, on_count: Callable[[int], None] | None = None) -> None:
        self.subscribers: set[Subscriber] = set()
        self._on_count = on_count

    def add(self, sub: Subscriber) -> None:
        self.subscribers.add(sub)
        self._count()

    def remove(self, sub: Subscriber) -> None:
        if sub in self.subscribers:
            self.subscribers.discard(sub)
            self._count()

    def send(self, message: bytes) -> None:
        for sub in self.subscribers:
            sub.offer(message)

    def close_token(self, token_id: int) -> int:
        """Disconnect every page that uses token `token_id` (it was revoked); how many."""
        n = 0
        for sub in list(self.subscribers):
            if sub.token_id == token_id:
                sub.close()
                n += 1
        return n

    def close_all(self) -> None:
        for sub in list(self.subscribers):
            sub.close()

    def _count(self) -> None:
        if self._on_count is not None:
            self._on_count(len(self.subscribers))
