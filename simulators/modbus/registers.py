"""The registers of the units one simulated Modbus server answers for, and the application layer
(functions 03, 04, 06, 16) a master's request PDU meets."""

from __future__ import annotations

import dataclasses
import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

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
