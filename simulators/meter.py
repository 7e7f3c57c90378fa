"""One simulated milk meter: a unit in a `RegisterBank` laid out by its register-map profile.

Values are set in engineering units and encoded with `milkconsole.meters.decode.encode_field`, the
same definition the console decodes with, so the simulator and the console cannot disagree on a data
type. The meter can lie the way real ones do: a yield/flow error (for calibration), a NaN in a float
register, a faulty vacuum or pulsation, a missed RFID read, a reboot that loses its counters,
silence and corrupted replies (through the bank's faults).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Literal

from milkconsole.meters.decode import Value, decode_fields, decode_raw, encode_field, encode_raw
from milkconsole.meters.profiles import Block, FieldSpec, Profile
from simulators.modbus.registers import RegisterBank, RegisterKind

# Fields the meter's measuring error scales (the ones a calibration factor corrects).
_ERROR_FIELDS = ("yield_l", "flow_l_min")
# Counters a reboot loses.
_COUNTERS = ("yield_l", "flow_l_min", "session_time_s")

ISO_COUNTRY_DEFAULT = 982
RfidStyle = Literal["hex16", "ascii", "int", "none"]


def fdx_b_code(country: int, national_id: int) -> int:
    """The 64-bit ISO 11784 FDX-B code as readers give it: animal flag in the top bit, the
    10-bit country code and the 38-bit national id in the low bits."""
    if not 0 <= country < 1 << 10:
        raise ValueError(f"country code must fit 10 bits, not {country}")
    if not 0 <= national_id < 1 << 38:
        raise ValueError(f"national id must fit 38 bits, not {national_id}")
    return (1 << 63) | (country << 38) | national_id


def _defined_addresses(profile: Profile, register: RegisterKind) -> list[int]:
    specs = [f for f in profile.fields.values() if f.register == register]
    if not specs:
        return []
    if profile.span_gaps:
        # The meter answers the reserved registers between its fields (that is what lets the
        # console read the whole map in one block).
        return list(range(min(f.address for f in specs), max(f.end for f in specs)))
    return sorted({a for f in specs for a in range(f.address, f.end)})


class SimulatedMeter:
    """A milk meter answering as `unit` in `bank`, laid out by `profile`.

    Every address the profile covers (and the gaps between fields when `profile.span_gaps`)
    answers; anything else is exception 02. `stall` is the stall the meter serves (defaults to
    the unit id). `error_pct` makes the meter report yield and flow `(1 + error_pct/100)` times
    the truth; set it before a scenario plans its milkings.
    """

    def __init__(
        self,
        bank: RegisterBank,
        unit: int,
        profile: Profile,
        *,
        meter_id: str,
        stall: int | None = None,
        error_pct: float = 0.0,
    ) -> None:
        if not -50.0 < error_pct < 100.0:
            raise ValueError(f"{meter_id}: error_pct {error_pct} is not a plausible meter error")
        self.bank = bank
        self.unit = unit
        self.profile = profile
        self.meter_id = meter_id
        self.stall = unit if stall is None else stall
        self._lock = threading.Lock()
        self._written: dict[str, tuple[int, ...]] = {}
        self.writes = 0  # register writes made (unchanged values are not rewritten)
        self._error_pct = error_pct
        self._vacuum_kpa = 45.0
        self._pulsation_cpm = 60.0
        bank.add_unit(unit)
        for register in ("holding", "input"):
            addrs = _defined_addresses(profile, register)
            if addrs:
                bank.define(unit, register, addrs)
        self.set_values(vacuum_kpa=self._vacuum_kpa, pulsation_cpm=self._pulsation_cpm)

    def __repr__(self) -> str:
        return f"SimulatedMeter({self.meter_id!r}, unit={self.unit}, profile={self.profile.id!r})"

    # -- what the meter is -------------------------------------------------------------------
    @property
    def error_pct(self) -> float:
        return self._error_pct

    @error_pct.setter
    def error_pct(self, value: float) -> None:
        self._error_pct = value

    @property
    def error_factor(self) -> float:
        return 1.0 + self._error_pct / 100.0

    @property
    def vacuum_kpa(self) -> float:
        """The line vacuum the meter measures (nominal ~45 kPa); set it to simulate a fault."""
        return self._vacuum_kpa

    @vacuum_kpa.setter
    def vacuum_kpa(self, value: float) -> None:
        self._vacuum_kpa = value
        self.set_values(vacuum_kpa=value)

    @property
    def pulsation_cpm(self) -> float:
        """The pulsation rate the meter reports (nominal 60 cycles/min); settable to a fault."""
        return self._pulsation_cpm

    @pulsation_cpm.setter
    def pulsation_cpm(self, value: float) -> None:
        self._pulsation_cpm = value
        self.set_values(pulsation_cpm=value)

    @property
    def rfid_style(self) -> RfidStyle:
        """How the meter stores a tag: 16 hex digits in a uint64, ASCII text, a plain integer,
        or not at all."""
        spec = self.profile.fields.get("rfid")
        if spec is None:
            return "none"
        if spec.format == "hex16":
            return "hex16"
        return "ascii" if spec.data_type == "string" else "int"

    def tag_for(self, fdx_code: int, herd_number: int) -> str | int | None:
        """What this meter model writes for a cow: the FDX-B code as 16 hex digits, an
        8-character ASCII tag like "C0001234", or the national id as an integer."""
        style = self.rfid_style
        if style == "hex16":
            return f"{fdx_code:016X}"
        if style == "ascii":
            spec = self.profile.fields["rfid"]
            return f"C{herd_number:07d}"[: spec.count * 2]
        if style == "int":
            spec = self.profile.fields["rfid"]
            return (fdx_code & ((1 << 38) - 1)) % (1 << (16 * spec.count))
        return None

    # -- registers -----------------------------------------------------------------------------
    def _encode(self, spec: FieldSpec, value: Value | None) -> list[int]:
        if (
            spec.name in _ERROR_FIELDS
            and isinstance(value, float | int)
            and not isinstance(value, bool)
        ):
            value = float(value) * self.error_factor
        if spec.name == "rfid" and isinstance(value, int) and spec.format != "hex16":
            return encode_raw(spec, value)
        return encode_field(spec, value)

    def set_values(self, **values: Value | None) -> None:
        """Write engineering values (yield and flow get the meter's error applied); names the
        profile lacks are ignored. All fields change under one lock: a block read sees all or
        none of them. None writes zero (a blank tag)."""
        writes: list[tuple[RegisterKind, int, list[int]]] = []
        with self._lock:
            for name, value in values.items():
                spec = self.profile.fields.get(name)
                if spec is None:
                    continue
                regs = self._encode(spec, value)
                key = tuple(regs)
                if self._written.get(name) == key:
                    continue
                self._written[name] = key
                writes.append((spec.register, spec.address, regs))
            if writes:
                self.bank.write_many(self.unit, writes)
                self.writes += 1

    def shown(self, name: str, value: Value | None) -> Value | None:
        """What the console would decode if `set_values(name=value)` were called now (float32
        rounding, scale and error included), without writing anything."""
        spec = self.profile.fields[name]
        regs = self._encode(spec, value)
        values, _ = decode_fields(
            self.profile, {Block(spec.register, spec.address, spec.count): regs}
        )
        return values.get(name)

    def reported(self, name: str) -> Value | None:
        """The field's value as the console decodes the registers now (None when refused)."""
        spec = self.profile.fields[name]
        regs = self.bank.read(self.unit, spec.register, spec.address, spec.count)
        values, _ = decode_fields(
            self.profile, {Block(spec.register, spec.address, spec.count): regs}
        )
        return values.get(name)

    def raw(self, name: str) -> int | float | str:
        """The field's raw register value before scale and checks (NaN shows as NaN)."""
        spec = self.profile.fields[name]
        return decode_raw(spec, self.bank.read(self.unit, spec.register, spec.address, spec.count))

    def set_nan(self, name: str) -> None:
        """Put a NaN into float field `name` until the next `set_values` of it."""
        spec = self.profile.fields.get(name)
        if spec is None or spec.data_type != "float32":
            raise ValueError(
                f"{self.meter_id}: {name!r} is not a float32 field of {self.profile.id}"
            )
        regs = encode_raw(spec, math.nan)
        with self._lock:
            self._written.pop(name, None)
            self.bank.write(self.unit, spec.register, spec.address, regs)

    # -- faults --------------------------------------------------------------------------------
    def set_silent(self, silent: bool) -> None:
        """Stop (or resume) answering: the master times out."""
        self.bank.set_faults(self.unit, silent=silent)

    def corrupt_crc(self, replies: int) -> None:
        """The next `replies` RTU replies carry a wrong CRC."""
        self.bank.set_faults(self.unit, corrupt_crc_next=replies)

    def reset_counters(self) -> None:
        """Yield, flow and session time back to 0, as after a power cycle."""
        self.set_values(**dict.fromkeys(_COUNTERS, 0))

    def reboot(self, duration_s: float) -> None:
        """Go silent for `duration_s`, then answer again with the counters at 0."""
        self.bank.set_faults(self.unit, silent_until=time.monotonic() + duration_s)
        self.reset_counters()
