"""Modbus TCP: MBAP framing over real sockets, one thread per client connection."""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from types import TracebackType
from typing import Self

from simulators.modbus.registers import GATEWAY_TARGET_FAILED, RegisterBank, exception_pdu
from simulators.modbus.responder import Responder, UnitStats


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
        self._responder = Responder(bank)
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
