"""A Modbus slave written from the spec, over TCP (MBAP) and RTU (a pty pair standing for RS-485).

It deliberately shares no code with pymodbus, so it checks our pymodbus-based client from the
outside, and it lets tests inject faults at the byte level: silence, a wrong CRC, an exception
answer, a slow reply.

- `RegisterBank`: thread-safe holding/input registers per unit id, with the address ranges each
  unit defines, the registers it lets a master write, and its current faults (`UnitFaults`).
  `RegisterBank.execute` is the application layer (functions 03, 04, 06, 16).
- `ModbusTcpServer`: MBAP framing, one thread per client connection, none busy when idle.
- `ModbusRtuServer`: RTU framing with CRC-16/MODBUS on the master end of a pty; the client opens
  `port_path` (or the `link` symlink) as if it were a USB RS-485 adapter. Several units on one
  server share the line the way meters share one bus.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import select
import selectors
import socket
import struct
import termios
import threading
import time
import tty
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

RegisterKind = Literal["holding", "input"]

ILLEGAL_FUNCTION = 0x01
ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03
GATEWAY_TARGET_FAILED = 0x0B

READ_HOLDING = 0x03
READ_INPUT = 0x04
WRITE_SINGLE = 0x06
WRITE_MULTIPLE = 0x10

MAX_READ = 125
MAX_WRITE = 123


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF). Sent low byte first."""
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ b) & 0xFF]
    return crc


def with_crc(frame: bytes) -> bytes:
    """`frame` followed by its CRC, low byte first, as it goes on the wire."""
    return frame + struct.pack("<H", crc16(frame))


def crc_ok(adu: bytes) -> bool:
    """Whether an RTU frame (CRC included) is intact."""
    return len(adu) >= 4 and crc16(adu[:-2]) == struct.unpack("<H", adu[-2:])[0]


@dataclass(frozen=True, slots=True)
class UnitFaults:
    """Faults one unit shows the master. Replace them with `RegisterBank.set_faults`.

    `silent` (or `time.monotonic()` before `silent_until`): no reply at all, the master times
    out. `corrupt_crc_next`: the next N RTU replies carry a wrong CRC. `exception_code`: every
    request is answered with this Modbus exception. `reply_delay_s`: each reply waits this long.
    """

    silent: bool = False
    silent_until: float = 0.0
    corrupt_crc_next: int = 0
    exception_code: int | None = None
    reply_delay_s: float = 0.0

    def is_silent(self, now: float) -> bool:
        return self.silent or now < self.silent_until


@dataclass(frozen=True, slots=True)
class UnitStats:
    """What a server did for one unit id. `crc_corrupted` counts replies sent with a bad CRC."""

    requests: int = 0
    replies: int = 0
    exceptions: int = 0
    crc_corrupted: int = 0


class _Unit:
    __slots__ = ("faults", "holding", "input", "writable")

    def __init__(self) -> None:
        self.holding: dict[int, int] = {}
        self.input: dict[int, int] = {}
        self.writable: set[int] = set()
        self.faults = UnitFaults()

    def table(self, register: RegisterKind) -> dict[int, int]:
        return self.holding if register == "holding" else self.input


def exception_pdu(function: int, code: int) -> bytes:
    return bytes((function | 0x80, code))


class RegisterBank:
    """Registers of every unit one server answers for. Every method is thread-safe.

    A unit answers only the addresses it defined; reading or writing anything else is exception
    02, as a real meter does. The simulator side (`write`, `write_many`) may change any defined
    register; the master side (`execute`) may write only holding registers marked writable.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._units: dict[int, _Unit] = {}

    # -- simulator side --------------------------------------------------------------------
    def add_unit(self, unit: int) -> None:
        """Make `unit` answer (with no registers yet). Unit ids are 1-247."""
        if not 1 <= unit <= 247:
            raise ValueError(f"unit id must be 1-247, not {unit}")
        with self._lock:
            self._units.setdefault(unit, _Unit())

    def define(
        self, unit: int, register: RegisterKind, addresses: Iterable[int], *, writable: bool = False
    ) -> None:
        """Define registers (value 0 until written); `writable` lets the master write them."""
        self.add_unit(unit)
        addrs = list(addresses)
        for a in addrs:
            if not 0 <= a <= 0xFFFF:
                raise ValueError(f"register address must be 0-65535, not {a}")
        if writable and register != "holding":
            raise ValueError("only holding registers can be writable")
        with self._lock:
            u = self._units[unit]
            table = u.table(register)
            for a in addrs:
                table.setdefault(a, 0)
            if writable:
                u.writable.update(addrs)

    def units(self) -> list[int]:
        with self._lock:
            return sorted(self._units)

    def has_unit(self, unit: int) -> bool:
        with self._lock:
            return unit in self._units

    def defined(self, unit: int, register: RegisterKind) -> list[int]:
        """The addresses `unit` answers for in `register`, sorted."""
        with self._lock:
            return sorted(self._units[unit].table(register))

    def write(self, unit: int, register: RegisterKind, address: int, values: Sequence[int]) -> None:
        """Set registers from the simulator side (any defined register, writable or not)."""
        self.write_many(unit, [(register, address, values)])

    def write_many(
        self, unit: int, writes: Iterable[tuple[RegisterKind, int, Sequence[int]]]
    ) -> None:
        """Several writes under one lock, so a master's block read never sees half of them."""
        with self._lock:
            u = self._units[unit]
            for register, address, values in writes:
                table = u.table(register)
                for i, v in enumerate(values):
                    if address + i not in table:
                        raise ValueError(f"unit {unit}: {register} {address + i} is not defined")
                    table[address + i] = v & 0xFFFF

    def read(self, unit: int, register: RegisterKind, address: int, count: int) -> list[int]:
        """Current register values (simulator side; raises KeyError on an undefined address)."""
        with self._lock:
            table = self._units[unit].table(register)
            return [table[a] for a in range(address, address + count)]

    def faults(self, unit: int) -> UnitFaults:
        with self._lock:
            return self._units[unit].faults

    def set_faults(self, unit: int, **changes: object) -> UnitFaults:
        """Change some of `unit`'s faults (names of `UnitFaults` fields); returns the new set."""
        with self._lock:
            u = self._units[unit]
            u.faults = dataclasses.replace(u.faults, **changes)  # type: ignore[arg-type]
            return u.faults

    def clear_faults(self, unit: int) -> None:
        with self._lock:
            self._units[unit].faults = UnitFaults()

    def take_crc_corruption(self, unit: int) -> bool:
        """True (and one fewer left) when the next reply of `unit` must carry a wrong CRC."""
        with self._lock:
            u = self._units[unit]
            if u.faults.corrupt_crc_next <= 0:
                return False
            u.faults = dataclasses.replace(u.faults, corrupt_crc_next=u.faults.corrupt_crc_next - 1)
            return True

    # -- master side -----------------------------------------------------------------------
    def execute(self, unit: int, pdu: bytes) -> bytes:
        """Apply one request PDU for `unit` (0 = broadcast write to every unit); the reply PDU.

        The reply is an exception PDU for an unknown function (01), an undefined or read-only
        address (02) or a malformed request or a count out of range (03).
        """
        if not pdu:
            return exception_pdu(0, ILLEGAL_FUNCTION)
        fc = pdu[0]
        if fc in (READ_HOLDING, READ_INPUT):
            return self._read(unit, fc, pdu)
        if fc == WRITE_SINGLE:
            if len(pdu) != 5:
                return exception_pdu(fc, ILLEGAL_DATA_VALUE)
            address, value = struct.unpack(">HH", pdu[1:5])
            code = self._master_write(unit, address, [value])
            return exception_pdu(fc, code) if code else pdu
        if fc == WRITE_MULTIPLE:
            if len(pdu) < 6:
                return exception_pdu(fc, ILLEGAL_DATA_VALUE)
            address, quantity, byte_count = struct.unpack(">HHB", pdu[1:6])
            if not 1 <= quantity <= MAX_WRITE or byte_count != 2 * quantity:
                return exception_pdu(fc, ILLEGAL_DATA_VALUE)
            if len(pdu) != 6 + byte_count:
                return exception_pdu(fc, ILLEGAL_DATA_VALUE)
            values = list(struct.unpack(f">{quantity}H", pdu[6:]))
            code = self._master_write(unit, address, values)
            return exception_pdu(fc, code) if code else pdu[:5]
        return exception_pdu(fc, ILLEGAL_FUNCTION)

    def _read(self, unit: int, fc: int, pdu: bytes) -> bytes:
        if len(pdu) != 5:
            return exception_pdu(fc, ILLEGAL_DATA_VALUE)
        address, count = struct.unpack(">HH", pdu[1:5])
        if not 1 <= count <= MAX_READ:
            return exception_pdu(fc, ILLEGAL_DATA_VALUE)
        with self._lock:
            u = self._units.get(unit)
            if u is None:
                return exception_pdu(fc, GATEWAY_TARGET_FAILED)
            table = u.holding if fc == READ_HOLDING else u.input
            try:
                values = [table[a] for a in range(address, address + count)]
            except KeyError:
                return exception_pdu(fc, ILLEGAL_DATA_ADDRESS)
        return struct.pack(f">BB{count}H", fc, 2 * count, *values)

    def _master_write(self, unit: int, address: int, values: list[int]) -> int:
        """0 when written, else the exception code."""
        span = range(address, address + len(values))
        with self._lock:
            if unit == 0:
                # A broadcast reaches every meter on the line; each applies what it accepts.
                targets = [u for u in self._units.values() if all(a in u.writable for a in span)]
            else:
                target = self._units.get(unit)
                if target is None:
                    return GATEWAY_TARGET_FAILED
                if not all(a in target.writable for a in span):
                    return ILLEGAL_DATA_ADDRESS
                targets = [target]
            for u in targets:
                for a, v in zip(span, values, strict=True):
                    u.holding[a] = v
        return 0


class _Responder:
    """The part both servers share: faults, the application layer, and the counters."""

    def __init__(self, bank: RegisterBank) -> None:
        self.bank = bank
        self._lock = threading.Lock()
        self._stats: dict[int, UnitStats] = {}

    def count(self, unit: int, **inc: int) -> None:
        with self._lock:
            s = self._stats.get(unit, UnitStats())
            self._stats[unit] = dataclasses.replace(
                s, **{k: getattr(s, k) + v for k, v in inc.items()}
            )

    def stats(self) -> dict[int, UnitStats]:
        with self._lock:
            return dict(self._stats)

    def respond(self, unit: int, pdu: bytes) -> tuple[bytes | None, float]:
        """(reply PDU or None for silence, seconds to hold the reply back)."""
        self.count(unit, requests=1)
        faults = self.bank.faults(unit)
        if faults.is_silent(time.monotonic()):
            return None, 0.0
        if faults.exception_code is not None:
            reply = exception_pdu(pdu[0] if pdu else 0, faults.exception_code)
        else:
            reply = self.bank.execute(unit, pdu)
        if reply[0] & 0x80:
            self.count(unit, replies=1, exceptions=1)
        else:
            self.count(unit, replies=1)
        return reply, faults.reply_delay_s


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


class ModbusTcpServer:
    """Modbus TCP slave: `start()` binds `host:port` (port 0 = any free one, see `.port`).

    Each client connection gets its own thread blocked in `recv`, so idle costs nothing and a
    slow (delayed) unit delays only its own client. A unit id the bank lacks is answered with
    exception 0x0B (gateway target failed to respond), as a TCP gateway does.
    """

    def __init__(self, bank: RegisterBank, host: str = "127.0.0.1", port: int = 0) -> None:
        self.bank = bank
        self.host = host
        self._port = port
        self._responder = _Responder(bank)
        self._listener: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._stopping = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._conn_threads: set[threading.Thread] = set()
        self._conns_lock = threading.Lock()

    @property
    def port(self) -> int:
        """The port listened on (the one the OS chose when created with port 0)."""
        return self._port

    @property
    def stats(self) -> dict[int, UnitStats]:
        return self._responder.stats()

    @property
    def connections(self) -> int:
        with self._conns_lock:
            return len(self._conns)

    def start(self) -> Self:
        if self._listener is not None:
            raise RuntimeError("server already started")
        listener = socket.create_server((self.host, self._port), backlog=128, reuse_port=False)
        self._listener = listener
        self._port = listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"modbus-tcp-{self._port}", daemon=True
        )
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every client connection, join the threads."""
        if self._listener is None or self._stopping.is_set():
            return
        self._stopping.set()
        assert self._wake_r is not None and self._wake_w is not None
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(5)
        with self._conns_lock:
            conns = list(self._conns)
            threads = list(self._conn_threads)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        for t in threads:
            t.join(5)
        if self._selector is not None:
            self._selector.close()
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._selector is not None and self._listener is not None
        while not self._stopping.is_set():
            for key, _ in self._selector.select():
                if key.data == "wake":
                    return
                try:
                    conn, _addr = self._listener.accept()
                except OSError:
                    continue
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                t = threading.Thread(
                    target=self._serve_conn, args=(conn,), name="modbus-tcp-conn", daemon=True
                )
                with self._conns_lock:
                    self._conns.add(conn)
                    self._conn_threads.add(t)
                t.start()

    def _serve_conn(self, conn: socket.socket) -> None:
        try:
            while not self._stopping.is_set():
                header = _recv_exact(conn, 7)
                if header is None:
                    return
                tid, proto, length, unit = struct.unpack(">HHHB", header)
                if proto != 0 or not 2 <= length <= 254:
                    return  # not Modbus: a real device drops such a connection
                pdu = _recv_exact(conn, length - 1)
                if pdu is None:
                    return
                if self.bank.has_unit(unit):
                    reply, delay = self._responder.respond(unit, pdu)
                else:
                    self._responder.count(unit, requests=1, replies=1, exceptions=1)
                    reply, delay = exception_pdu(pdu[0], GATEWAY_TARGET_FAILED), 0.0
                if reply is None:
                    continue
                if delay > 0 and self._stopping.wait(delay):
                    return
                adu = struct.pack(">HHHB", tid, 0, len(reply) + 1, unit) + reply
                try:
                    conn.sendall(adu)
                except OSError:
                    return
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
                self._conn_threads.discard(threading.current_thread())
            conn.close()


def rtu_request_length(buf: bytes | bytearray) -> int | None:
    """Length of the RTU request at the start of `buf`, from its function code, or None when
    it cannot be told yet (too few bytes, or a function whose length we do not know)."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if fc in (0x01, 0x02, 0x03, 0x04, 0x05, 0x06):
        return 8
    if fc in (0x0F, 0x10):
        return 9 + buf[6] if len(buf) >= 7 else None
    if fc == 0x17:
        return 13 + buf[10] if len(buf) >= 11 else None
    return None


class ModbusRtuServer:
    """Modbus RTU slave on the master end of a pty pair; clients open `port_path` (or `link`).

    Requests are framed by their function's length (silence ends anything else), requests with
    a bad CRC are dropped, requests for unit ids not in the bank are ignored (they belong to
    other meters on the same RS-485 line), broadcast writes (unit 0) are applied without reply.
    With `wire_time` the reply is held as a real line would deliver it: written no sooner than
    request wire time + 3.5 character times + reply wire time after the request's first byte.
    """

    def __init__(
        self,
        bank: RegisterBank,
        *,
        link: Path | None = None,
        baudrate: int = 19200,
        parity: Literal["N", "E", "O"] = "E",
        stopbits: int = 1,
        bytesize: int = 8,
        wire_time: bool = False,
    ) -> None:
        if parity not in ("N", "E", "O"):
            raise ValueError(f"parity must be N, E or O, not {parity!r}")
        self.bank = bank
        self.link = link
        self.baudrate = baudrate
        self.parity = parity
        self.stopbits = stopbits
        self.bytesize = bytesize
        self.wire_time = wire_time
        self._responder = _Responder(bank)
        self._master: int | None = None
        self._port_path: str | None = None
        self._wake_r = self._wake_w = -1
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._counter_lock = threading.Lock()
        self.bad_frames = 0
        self.ignored_frames = 0

    @property
    def char_time_s(self) -> float:
        """Seconds per character on the line: start + data + parity + stop bits."""
        bits = 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits
        return bits / self.baudrate

    def wire_time_s(self, n_bytes: int) -> float:
        return n_bytes * self.char_time_s

    @property
    def silence_s(self) -> float:
        """Gap that ends a frame whose length the function code does not tell. A pty has no
        line timing, so it is longer than 3.5 characters to survive scheduler jitter."""
        return max(3.5 * self.char_time_s, 0.02)

    @property
    def port_path(self) -> str:
        """The pty slave device a client opens (e.g. /dev/pts/7)."""
        if self._port_path is None:
            raise RuntimeError("server not started")
        return self._port_path

    @property
    def stats(self) -> dict[int, UnitStats]:
        return self._responder.stats()

    def start(self) -> Self:
        if self._master is not None:
            raise RuntimeError("server already started")
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master = master
        self._port_path = os.ttyname(slave)
        # The server holds only the master: with no client on the slave end, poll reports a
        # hang-up, which is how the server knows to park the line settings (see _park).
        os.close(slave)
        self._park()
        if self.link is not None:
            if self.link.is_symlink():
                self.link.unlink()
            elif self.link.exists():
                os.close(master)
                self._master = None
                raise FileExistsError(f"{self.link} exists and is not a symlink")
            self.link.parent.mkdir(parents=True, exist_ok=True)
            self.link.symlink_to(self._port_path)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(
            target=self._serve, name=f"modbus-rtu-{self._port_path}", daemon=True
        )
        self._thread.start()
        return self

    def _park(self) -> None:
        """Set the line speed to 50 baud, which no client asks for.

        A pty cannot do parity, and Linux refuses (EINVAL) a tcsetattr whose only change is
        one the pty cannot make: what pyserial asks when it opens the port with parity E after
        an earlier client left every other setting as it wants it. With the speed parked, each
        opening configuration changes the speed too, and succeeds (pyserial, mbpoll). It cannot
        help a client that reconfigures at once after opening (pymodbus does): such a client
        must open a pty with parity N, as `milkconsole.meters.transport` does (pyserial issue 196).
        A pty ignores its speed, so parking under a connected client is harmless; termios calls
        on the master apply to the slave end.
        """
        assert self._master is not None
        with contextlib.suppress(termios.error):
            attrs = termios.tcgetattr(self._master)
            if attrs[4] != termios.B50 or attrs[5] != termios.B50:
                attrs[4] = attrs[5] = termios.B50
                termios.tcsetattr(self._master, termios.TCSANOW, attrs)

    def stop(self) -> None:
        """Stop serving, close the pty and remove the link."""
        if self._master is None or self._stopping.is_set():
            return
        self._stopping.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(5)
        if (
            self.link is not None
            and self.link.is_symlink()
            and os.readlink(self.link) == self._port_path
        ):
            self.link.unlink()
        for fd in (self._master, self._wake_r, self._wake_w):
            if fd is not None and fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        assert self._master is not None
        master = self._master
        poller = select.poll()
        poller.register(master, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        buf = bytearray()
        t_first = 0.0
        while not self._stopping.is_set():
            timeout_ms = None if not buf else max(1, int(self.silence_s * 1000))
            events = dict(poller.poll(timeout_ms))
            if self._stopping.is_set():
                return
            if not events:
                # Silence: whatever is buffered is one whole frame (or garbage).
                frame = bytes(buf)
                buf.clear()
                self._handle(frame, t_first)
                continue
            flags = events.get(master, 0)
            if not flags:
                continue
            data = b""
            if flags & select.POLLIN:
                try:
                    data = os.read(master, 4096)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno != errno.EIO:
                        raise
            if not data:
                # No client has the port open: park the settings for the next one, and look
                # again shortly (poll would report the hang-up at once, over and over).
                buf.clear()
                self._park()
                self._stopping.wait(0.05)
                continue
            now = time.monotonic()
            if not buf:
                t_first = now
            buf += data
            while buf:
                n = rtu_request_length(buf)
                if n is None or len(buf) < n:
                    break
                frame = bytes(buf[:n])
                if not crc_ok(frame):
                    # A slave resynchronises on the next silence: drop the rest too.
                    buf.clear()
                    with self._counter_lock:
                        self.bad_frames += 1
                    break
                del buf[:n]
                self._handle(frame, t_first)
                t_first = now

    def _handle(self, frame: bytes, t_first: float) -> None:
        if not crc_ok(frame):
            with self._counter_lock:
                self.bad_frames += 1
            return
        unit, pdu = frame[0], frame[1:-2]
        if unit == 0:
            if pdu and pdu[0] in (WRITE_SINGLE, WRITE_MULTIPLE):
                self.bank.execute(0, pdu)
            return
        if not self.bank.has_unit(unit):
            with self._counter_lock:
                self.ignored_frames += 1
            return
        reply, delay = self._responder.respond(unit, pdu)
        if reply is None:
            return
        adu = with_crc(bytes((unit,)) + reply)
        if self.bank.take_crc_corruption(unit):
            adu = adu[:-2] + bytes((adu[-2] ^ 0xFF, adu[-1] ^ 0x5A))
            self._responder.count(unit, crc_corrupted=1)
        hold_until = 0.0
        if self.wire_time:
            ct = self.char_time_s
            hold_until = t_first + (len(frame) + 3.5 + len(adu)) * ct
        wait = max(delay, hold_until - time.monotonic())
        if wait > 0 and self._stopping.wait(wait):
            return
        # Sleeps overshoot, never undershoot, but check against the clock all the same.
        while time.monotonic() < hold_until:
            time.sleep(hold_until - time.monotonic())
        self._write(adu)
        # A client that reconfigures while connected (pyserial does on some property changes)
        # needs the same help as one that opens the port.
        self._park()

    def _write(self, adu: bytes) -> None:
        assert self._master is not None
        try:
            os.write(self._master, adu)
        except (BlockingIOError, OSError):
            # The pty buffer is full because nobody reads the port: the bytes are lost, as on
            # a line with no master listening.
            with self._counter_lock:
                self.ignored_frames += 1
