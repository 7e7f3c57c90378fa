"""Registers <-> values, per profile. Pure functions: no I/O, no pymodbus.

`decode_reading` turns the registers of a meter's block reads into a validated, calibrated
`Reading`; NaN, infinities and values outside the profile's physical range are refused (listed
in `Reading.rejected`), never passed on as data. `encode_field` is the inverse, used by the
simulators and the tests so both sides share one definition of every data type.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from milkconsole.meters.profiles import Block, FieldSpec, Profile
from milkconsole.meters.readings import CALIBRATED_FIELDS, CONDUCTIVITY_FIELDS, FIELD_KINDS, Reading

_STRUCT = {
    "uint16": "H",
    "int16": "h",
    "uint32": "I",
    "int32": "i",
    "float32": "f",
    "uint64": "Q",
}

Value = float | int | str | bool


@dataclass(frozen=True, slots=True)
class Refusal:
    """A value the profile refused, with the reason, for counting and one log line."""

    field: str
    raw: object
    reason: str


def _to_bytes(spec: FieldSpec, regs: Sequence[int]) -> bytes:
    # One pack call per field: this runs for every field of every meter on every poll.
    words = regs if spec.word_order == "big" else list(reversed(regs))
    return struct.pack(f"{'<' if spec.byte_order == 'little' else '>'}{len(words)}H", *words)


def _from_bytes(spec: FieldSpec, data: bytes) -> list[int]:
    order = "<" if spec.byte_order == "little" else ">"
    words = [struct.unpack(order + "H", data[i : i + 2])[0] for i in range(0, len(data), 2)]
    if spec.word_order == "little":
        words.reverse()
    return words


def decode_raw(spec: FieldSpec, regs: Sequence[int]) -> int | float | str:
    """The field's raw value before scale: a number, or text for strings."""
    if len(regs) != spec.count:
        raise ValueError(f"{spec.name}: expected {spec.count} registers, got {len(regs)}")
    data = _to_bytes(spec, regs)
    if spec.data_type == "string":
        return data.rstrip(b"\x00 ").decode("ascii", errors="replace")
    value: int | float = struct.unpack(">" + _STRUCT[spec.data_type], data)[0]
    return value


def encode_raw(spec: FieldSpec, raw: int | float | str) -> list[int]:
    """Registers that hold `raw` (a value before scale), as the meter would store them."""
    if spec.data_type == "string":
        data = str(raw).encode("ascii")[: spec.count * 2].ljust(spec.count * 2, b"\x00")
    elif spec.data_type == "float32":
        data = struct.pack(">f", float(raw))
    else:
        data = struct.pack(">" + _STRUCT[spec.data_type], int(raw))
    return _from_bytes(spec, data)


def encode_field(spec: FieldSpec, value: Value | None) -> list[int]:
    """Registers for an engineering value (scale applied in reverse). None encodes as zero."""
    if value is None:
        return [0] * spec.count
    if spec.name == "rfid" and spec.format == "hex16":
        return encode_raw(spec, int(str(value), 16) if value else 0)
    if spec.data_type == "string":
        return encode_raw(spec, str(value))
    if isinstance(value, bool):
        return encode_raw(spec, int(value))
    raw = float(value) / spec.scale
    if spec.data_type != "float32":
        return encode_raw(spec, round(raw))
    return encode_raw(spec, raw)


def _engineering(spec: FieldSpec, raw: int | float | str) -> tuple[Value | None, str | None]:
    """(value, None) or (None, reason refused)."""
    kind = FIELD_KINDS[spec.name]
    if kind is str:
        if isinstance(raw, str):
            text = raw.strip()
            if not text:
                return None, None
            if not text.isprintable():
                return None, f"not printable text {raw!r}"
            return text, None
        if raw == 0:
            return None, None
        return (f"{raw:016X}" if spec.format == "hex16" else str(raw)), None
    assert not isinstance(raw, str)
    if isinstance(raw, float) and not math.isfinite(raw):
        return None, f"not a number ({raw})"
    value = raw * spec.scale if spec.scale != 1.0 else raw
    if spec.min is not None and value < spec.min:
        return None, f"{value} below {spec.min} {spec.unit}".rstrip()
    if spec.max is not None and value > spec.max:
        return None, f"{value} above {spec.max} {spec.unit}".rstrip()
    if kind is bool:
        return bool(value), None
    if kind is int:
        return int(value), None
    return float(value), None


def decode_fields(
    profile: Profile, block_regs: Mapping[Block, Sequence[int]]
) -> tuple[dict[str, Value | None], list[Refusal]]:
    """Every field's engineering value from the registers of `profile.blocks()`."""
    values: dict[str, Value | None] = {}
    refusals: list[Refusal] = []
    for block, regs in block_regs.items():
        for spec in profile.fields.values():
            if spec.register != block.register:
                continue
            if spec.address < block.address or spec.end > block.address + block.count:
                continue
            off = spec.address - block.address
            raw = decode_raw(spec, regs[off : off + spec.count])
            value, reason = _engineering(spec, raw)
            if reason is not None:
                refusals.append(Refusal(spec.name, raw, reason))
            values[spec.name] = value
    return values, refusals


def decode_reading(
    profile: Profile,
    block_regs: Mapping[Block, Sequence[int]],
    *,
    meter_id: str,
    stall: int,
    t_mono: float,
    t_utc: datetime,
    calibration_factor: float = 1.0,
    conductivity_offset_ms_cm: float = 0.0,
) -> tuple[Reading, list[Refusal]]:
    """A validated `Reading` and the list of values refused in it.

    `calibration_factor` multiplies yield and flow (the flow calibration); the conductivity
    offset (reference solution minus what the meter read) is added to cow and quarter EC.
    """
    values, refusals = decode_fields(profile, block_regs)
    for name in CALIBRATED_FIELDS:
        v = values.get(name)
        if isinstance(v, float):
            values[name] = v * calibration_factor
    if conductivity_offset_ms_cm:
        for name in CONDUCTIVITY_FIELDS:
            v = values.get(name)
            if isinstance(v, float):
                values[name] = max(0.0, v + conductivity_offset_ms_cm)
    milking: bool | None = None
    if profile.detection.mode == "status":
        status = values.get(profile.detection.status_field)
        if isinstance(status, int):
            milking = bool((status >> profile.detection.status_bit) & 1)
    reading = Reading(
        meter_id=meter_id,
        stall=stall,
        t_mono=t_mono,
        t_utc=t_utc,
        milking=milking,
        rejected=tuple(r.field for r in refusals),
        **values,  # type: ignore[arg-type]
    )
    return reading, refusals
