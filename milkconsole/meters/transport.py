"""Modbus transports (TCP and RTU) behind one blocking API; the only module importing pymodbus.

`open_transport(bus)` gives a `Transport` for a bus from the parlour config. Every failure is a
`TransportError` whose `kind` the poller counts: `timeout` (no answer), `crc` (a garbled or
mismatched frame), `exception` (the meter answered with a Modbus exception; `exception_code`
set) or `connection` (the link is down; reads fail at once while it is, and it is reopened with
exponential backoff).

pymodbus's async clients are much faster than its sync ones on a serial line, so each transport
runs one on a private event loop, created in (and only ever run by) the thread that connects it:
the bus poller. Requests are strictly one at a time, which a half-duplex RS-485 bus needs anyway,
and on RTU the inter-frame gap (3.5 character times, 1.75 ms above 19200 baud) is kept between
the end of one frame and the start of the next.

pymodbus drops an RTU frame whose CRC does not match and would just time out; the framer here is
pymodbus's own RTU framer with one hook that counts such a frame and fails the request at once as
kind `crc` (see `_CrcCheckingFramer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ModbusPDU

from milkconsole.errors import TransportError
from milkconsole.meters.parlour import BusConfig

log = logging.getLogger(__name__)

RegisterKind = Literal["holding", "input"]
_T = TypeVar("_T")

MODBUS_MAX_READ_REGISTERS = 125
MODBUS_MAX_WRITE_REGISTERS = 123
# First reconnect delay after a failed attempt; it doubles up to bus.reconnect_max_s.
RECONNECT_INITIAL_S = 0.1
# A TCP peer that stops answering without closing the socket (a hung gateway) is only noticed by
# silence; after this many unanswered requests in a row over all units the link is reopened.
TCP_SILENT_REQUESTS_BEFORE_RECONNECT = 10
# Modbus over serial line spec (V1.02) 2.5.1.1: above 19200 baud t3.5 is fixed at 1.75 ms.
_FIXED_GAP_S = 0.00175

_EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class Transport(Protocol):
    """A blocking Modbus master for one bus. Used by one thread only (the bus poller)."""

    def connect(self) -> None:
        """Open the link. Raises TransportError(kind="connection")."""

    def close(self) -> None:
        """Close the link; a later read reopens it."""

    def read_registers(
        self, unit: int, register: RegisterKind, address: int, count: int
    ) -> list[int]:
        """`count` registers from `address` of `unit`. Raises TransportError."""
        ...

    def write_registers(self, unit: int, address: int, values: list[int]) -> None:
        """Write holding registers (a technician action, logged). Raises TransportError."""


@runtime_checkable
class Interruptible(Protocol):
    """A transport whose request in flight another thread may abort (used by `BusPoller.stop`)."""

    def interrupt(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TransportStats:
    """Counters since the transport was made. `crc_errors` counts every garbled frame, including
    ones a retry recovered from; `requests` counts frames sent (retries included)."""

    requests: int = 0
    responses: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    exceptions: int = 0
    connection_errors: int = 0
    connects: int = 0


def inter_frame_gap_s(bus: BusConfig) -> float:
    """The silence an RTU master keeps between frames: 3.5 characters, 1.75 ms above 19200."""
    if bus.baudrate > 19200:
        return _FIXED_GAP_S
    return 3.5 * bus.char_time_s


class _BadFrame(Exception):
    """A frame arrived that cannot be the answer (bad CRC); raised into the waiting request."""


class _StaleLink(Exception):
    """The link closed while idle (seen before anything was sent): reopen and send again."""


class _LinkDropped(Exception):
    """The link closed while a request was waiting for its answer."""


class _CrcCheckingFramer(FramerRTU):
    """pymodbus's RTU framer, reporting the frames it throws away for a bad CRC.

    `FramerRTU.decode` returns (bytes used > 0, empty frame) only when a complete frame failed its
    CRC check; pymodbus then silently waits for a timeout. We report it instead.
    """

    def __init__(self, on_bad_crc: Callable[[], None]) -> None:
        super().__init__(DecodePDU(False))
        self._on_bad_crc = on_bad_crc

    def decode(self, data: bytes) -> tuple[int, int, int, bytes]:
        used, dev_id, tid, frame = super().decode(data)
        if used and not frame:
            self._on_bad_crc()
        return used, dev_id, tid, frame


class _DemotePymodbusLogs(logging.Filter):
    """pymodbus logs every unanswered request at ERROR. Failures are states here (the meter
    health tracker logs the first of a streak), so its lines are kept, demoted to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG:
            record.levelno = logging.DEBUG
            record.levelname = "DEBUG"
            # The logger let it through for its old level; keep it only if DEBUG is wanted.
            return logging.getLogger("pymodbus.logging").isEnabledFor(logging.DEBUG)
        return True


_filter_lock = threading.Lock()
_filter_installed = False


def _install_log_filter() -> None:
    global _filter_installed
    with _filter_lock:
        if not _filter_installed:
            logging.getLogger("pymodbus.logging").addFilter(_DemotePymodbusLogs())
            _filter_installed = True


class ModbusTransport:
    """A Modbus TCP or RTU master on a private event loop; see the module docstring."""

    def __init__(self, bus: BusConfig) -> None:
        if bus.transport == "tcp" and bus.host is None:
            raise ValueError(f"bus {bus.id}: a tcp bus needs a host")
        _install_log_filter()
        self.bus = bus
        self._is_rtu = bus.transport == "rtu"
        self._gap_s = inter_frame_gap_s(bus) if self._is_rtu else 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owner: int | None = None
        self._client: AsyncModbusSerialClient | AsyncModbusTcpClient | None = None
        self._task: asyncio.Future[Any] | None = None
        self._last_frame_mono = 0.0
        self._backoff_s = 0.0
        self._next_connect_mono = 0.0
        self._silent_requests = 0
        self._bad_crc_seen = False
        self._counts = dict.fromkeys(TransportStats.__dataclass_fields__, 0)

    # -- public API ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    @property
    def stats(self) -> TransportStats:
        return TransportStats(**self._counts)

    @property
    def reconnect_delay_s(self) -> float:
        """The wait before the next connect attempt (0 while connected or after a drop)."""
        return self._backoff_s

    def connect(self) -> None:
        """Open the link now (ignoring backoff). Raises TransportError(kind="connection")."""
        self._check_thread()
        self._next_connect_mono = 0.0
        self._open()

    def close(self) -> None:
        """Close the link and the private loop. Safe to call twice; a later call reopens."""
        if self._loop is None:
            return
        self._check_thread()
        self._drop_client()
        loop, self._loop, self._owner = self._loop, None, None
        # Let the closed sockets' callbacks run before the loop goes away.
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    def interrupt(self) -> None:
        """Abort the request in flight (or the next one, if none is), from any thread; it fails
        as kind `connection`. For stopping the poller: the link stays usable afterwards."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # closed between the check and the call
            loop.call_soon_threadsafe(self._cancel_current)

    def read_registers(
        self, unit: int, register: RegisterKind, address: int, count: int
    ) -> list[int]:
        """`count` registers from `address` of `unit`, after the bus's retries. Raises
        TransportError; a read while the link is down fails at once as kind `connection`."""
        if not 1 <= unit <= 247:
            raise ValueError(f"unit must be 1-247, not {unit}")
        if register not in ("holding", "input"):
            raise ValueError(f"register must be holding or input, not {register!r}")
        if not 1 <= count <= MODBUS_MAX_READ_REGISTERS or not 0 <= address <= 65536 - count:
            raise ValueError(f"cannot read {count} registers from {address}")

        def request(client: AsyncModbusSerialClient | AsyncModbusTcpClient) -> Awaitable[Any]:
            if register == "holding":
                return client.read_holding_registers(address, count=count, device_id=unit)
            return client.read_input_registers(address, count=count, device_id=unit)

        what = f"read {count} {register} registers from {address}"
        pdu = self._request(unit, what, request)
        registers = list(getattr(pdu, "registers", None) or [])
        if len(registers) != count:
            self._counts["crc_errors"] += 1
            raise TransportError(
                "crc", f"{self._where(unit)}: {what}: answer held {len(registers)} registers"
            )
        return registers

    def write_registers(self, unit: int, address: int, values: list[int]) -> None:
        """Write holding registers: only ever a technician's explicit action, so it is logged."""
        if not 1 <= unit <= 247:
            raise ValueError(f"unit must be 1-247, not {unit}")
        if not 1 <= len(values) <= MODBUS_MAX_WRITE_REGISTERS or not all(
            0 <= v <= 0xFFFF for v in values
        ):
            raise ValueError(f"cannot write {values!r}: 1-123 values of 0-65535")
        if not 0 <= address <= 65536 - len(values):
            raise ValueError(f"cannot write {len(values)} registers at {address}")
        log.info("%s: writing %s to holding register %d", self._where(unit), values, address)
        self._request(
            unit,
            f"write {len(values)} registers at {address}",
            lambda client: client.write_registers(address, values, device_id=unit),
        )

    # -- internals ----------------------------------------------------------------------------

    def _where(self, unit: int) -> str:
        return f"bus {self.bus.id} ({self.bus.endpoint}) unit {unit}"

    def _check_thread(self) -> None:
        if self._owner is not None and self._owner != threading.get_ident():
            raise RuntimeError(f"bus {self.bus.id}: transport used from a second thread")

    def _run(self, coro: Awaitable[_T]) -> _T:
        assert self._loop is not None
        task = asyncio.ensure_future(coro, loop=self._loop)
        self._task = task
        try:
            return self._loop.run_until_complete(task)
        except asyncio.CancelledError:
            # interrupt() landed here (it may land on any step, not only a request).
            raise TransportError("connection", f"bus {self.bus.id}: interrupted") from None
        finally:
            self._task = None

    def _cancel_current(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def _open(self) -> None:
        """One connect attempt; on failure the next is due after the (doubled) backoff."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._owner = threading.get_ident()
        self._drop_client()
        try:
            self._client = self._run(self._make_client())
            ok = self._run(self._client.connect())
        except Exception as exc:  # pymodbus lets a few OS errors through on some platforms
            log.debug("bus %s: connect raised %r", self.bus.id, exc)
            ok = False
        if ok:
            # The serial transport registers its reader a loop turn after connect returns.
            self._run(asyncio.sleep(0))
            ok = self.connected
        if not ok:
            self._drop_client()
            self._counts["connection_errors"] += 1
            self._backoff_s = min(
                max(self._backoff_s * 2, RECONNECT_INITIAL_S), self.bus.reconnect_max_s
            )
            self._next_connect_mono = time.monotonic() + self._backoff_s
            raise TransportError(
                "connection",
                f"bus {self.bus.id}: cannot open {self.bus.endpoint}"
                f" (next try in {self._backoff_s:.1f} s)",
            )
        self._counts["connects"] += 1
        self._backoff_s = 0.0
        self._silent_requests = 0
        self._last_frame_mono = time.monotonic()
        log.debug("bus %s: connected to %s", self.bus.id, self.bus.endpoint)

    async def _make_client(self) -> AsyncModbusSerialClient | AsyncModbusTcpClient:
        # Built inside the loop: pymodbus binds its futures and lock to the running loop.
        # reconnect_delay=0: pymodbus must not reconnect on its own; _open does, with backoff.
        # retries=0: _request retries, so each attempt is classified and the gap kept.
        bus = self.bus
        client: AsyncModbusSerialClient | AsyncModbusTcpClient
        if self._is_rtu:
            port = str(bus.port)
            client = AsyncModbusSerialClient(
                port,
                baudrate=bus.baudrate,
                bytesize=bus.bytesize,
                # A pty (the simulators, `milkconsole demo`) cannot do parity: Linux drops the
                # flag and then refuses, EINVAL, pyserial's next reconfigure of the same port.
                # The bytes are the same either way; the gap still uses the configured framing.
                parity="N" if _is_pty(port) else bus.parity,
                stopbits=bus.stopbits,
                name=bus.id,
                reconnect_delay=0,
                timeout=bus.timeout_s,
                retries=0,
                trace_connect=self._on_link_change,
            )
            client.ctx.framer = _CrcCheckingFramer(self._on_bad_crc)
        else:
            assert bus.host is not None
            client = AsyncModbusTcpClient(
                bus.host,
                port=int(bus.port),
                name=bus.id,
                reconnect_delay=0,
                timeout=bus.timeout_s,
                retries=0,
                trace_connect=self._on_link_change,
            )
        # pymodbus closes a TCP link after a few unanswered requests, even when only one unit
        # behind a gateway is silent; our own rule (TCP_SILENT_REQUESTS_...) replaces it.
        client.set_max_no_responses(1_000_000_000)
        return client

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _fail_waiting_request(self, exc: Exception) -> None:
        client = self._client
        if client is None:
            return
        future = client.ctx.response_future
        if not future.done():
            future.set_exception(exc)

    def _on_bad_crc(self) -> None:
        self._bad_crc_seen = True
        self._fail_waiting_request(_BadFrame())

    def _on_link_change(self, connected: bool) -> None:
        if not connected:
            self._fail_waiting_request(_LinkDropped())

    def _ensure_link(self) -> None:
        self._check_thread()
        if self.connected:
            return
        if self._loop is not None and self._client is not None:
            # The link was up and has dropped: retry at once, then back off.
            log.debug("bus %s: link to %s lost", self.bus.id, self.bus.endpoint)
            self._drop_client()
            self._next_connect_mono = 0.0
        if time.monotonic() < self._next_connect_mono:
            self._counts["connection_errors"] += 1
            wait_s = self._next_connect_mono - time.monotonic()
            raise TransportError(
                "connection",
                f"bus {self.bus.id}: {self.bus.endpoint} is down (next try in {wait_s:.1f} s)",
            )
        self._open()

    async def _attempt(
        self,
        send: Callable[[AsyncModbusSerialClient | AsyncModbusTcpClient], Awaitable[Any]],
    ) -> Any:
        assert self._client is not None
        # Two loop turns first, in the same loop run as the request (a run of the loop costs
        # more than the request itself at 100 meters): a late answer to an earlier, timed-out
        # request waiting in the OS buffer reaches pymodbus now and is dropped, and a peer's
        # close since the last request (EOF, then connection_lost) is seen before we send.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        if not self.connected:
            raise _StaleLink()
        return await send(self._client)

    def _request(
        self,
        unit: int,
        what: str,
        send: Callable[[AsyncModbusSerialClient | AsyncModbusTcpClient], Awaitable[Any]],
    ) -> ModbusPDU:
        self._ensure_link()
        tries = self.bus.retries + 1
        saw_crc = False
        reopened = False
        last_kind, last_msg = "timeout", ""
        attempt = 0
        while attempt < tries:
            attempt += 1
            if self._gap_s:
                wait_s = self._last_frame_mono + self._gap_s - time.monotonic()
                if wait_s > 0:
                    # time.sleep, not asyncio: epoll rounds its timeout up to whole milliseconds.
                    time.sleep(wait_s)
            self._bad_crc_seen = False
            self._counts["requests"] += 1
            try:
                pdu = self._run(self._attempt(send))
            except _StaleLink:
                # Dropped while idle: reopen at once, and this does not use up a try.
                self._counts["requests"] -= 1
                if reopened:
                    return self._link_failed(unit, what, "link closed")
                reopened = True
                attempt -= 1
                log.debug("bus %s: link to %s lost", self.bus.id, self.bus.endpoint)
                self._drop_client()
                self._next_connect_mono = 0.0
                self._ensure_link()
                continue
            except _BadFrame:
                saw_crc = True
                self._counts["crc_errors"] += 1
                last_kind, last_msg = "crc", "answer failed its CRC check"
                continue
            except ModbusException as exc:
                if isinstance(exc, ConnectionException) or not self.connected:
                    return self._link_failed(unit, what, str(exc))
                if self._bad_crc_seen:  # a garbled frame arrived, then nothing
                    saw_crc = True
                    self._counts["crc_errors"] += 1
                    last_kind, last_msg = "crc", "answer failed its CRC check"
                    continue
                self._counts["timeouts"] += 1
                last_kind = "timeout"
                last_msg = f"no answer within {self.bus.timeout_s:g} s"
                self._silent_requests += 1
                if (
                    not self._is_rtu
                    and self._silent_requests >= TCP_SILENT_REQUESTS_BEFORE_RECONNECT
                ):
                    log.debug("bus %s: peer silent, reopening the link", self.bus.id)
                    self._drop_client()
                    self._next_connect_mono = 0.0
                    break
                continue
            except _LinkDropped:
                return self._link_failed(unit, what, "link closed")
            finally:
                self._last_frame_mono = time.monotonic()
            self._silent_requests = 0
            self._counts["responses"] += 1
            if pdu.isError():
                code = int(getattr(pdu, "exception_code", 0))
                self._counts["exceptions"] += 1
                name = _EXCEPTION_NAMES.get(code, "unknown")
                raise TransportError(
                    "exception",
                    f"{self._where(unit)}: {what}: exception {code:02d} ({name})",
                    code,
                )
            if not isinstance(pdu, ModbusPDU):  # pragma: no cover - pymodbus contract
                raise TransportError("crc", f"{self._where(unit)}: {what}: no usable answer")
            return pdu
        kind = "crc" if saw_crc else last_kind
        msg = "answer failed its CRC check" if saw_crc else last_msg
        raise TransportError(
            kind, f"{self._where(unit)}: {what}: {msg} ({tries} tr{'y' if tries == 1 else 'ies'})"
        )

    def _link_failed(self, unit: int, what: str, detail: str) -> ModbusPDU:
        self._counts["connection_errors"] += 1
        self._drop_client()
        self._next_connect_mono = 0.0  # first reconnect attempt at the next request
        raise TransportError("connection", f"{self._where(unit)}: {what}: {detail}")


def _is_pty(path: str) -> bool:
    """Whether `path` (or what it links to) is a Unix98 pty slave (char majors 136-143)."""
    major = getattr(os, "major", None)  # not on Windows, which has no ptys
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    return major is not None and stat.S_ISCHR(st.st_mode) and 136 <= major(st.st_rdev) <= 143


def open_transport(bus: BusConfig) -> Transport:
    """A transport for `bus`, not yet connected (the caller connects it in its own thread)."""
    return ModbusTransport(bus)
