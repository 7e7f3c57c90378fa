"""What both simulated Modbus servers do with one request PDU: apply the unit's faults, run it on
the register bank, and count what happened."""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass

from simulators.modbus.registers import RegisterBank, exception_pdu


@dataclass(frozen=True, slots=True)
class UnitStats:
    """What a server did for one unit id. `crc_corrupted` counts replies sent with a bad CRC."""

    requests: int = 0
    replies: int = 0
    exceptions: int = 0
    crc_corrupted: int = 0


class Responder:
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
