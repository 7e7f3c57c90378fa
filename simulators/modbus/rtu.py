"""Modbus RTU: CRC-16/MODBUS framing on the master end of a pty pair standing for an RS-485 line."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import struct
import termios
import threading
import time
import tty
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from simulators.modbus.registers import WRITE_MULTIPLE, WRITE_SINGLE, RegisterBank
from simulators.modbus.responder import Responder, UnitStats


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
        self._responder = Responder(bank)
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
