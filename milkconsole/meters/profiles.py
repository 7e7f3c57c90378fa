"""Meter register-map profiles: data files in `resources/profiles/*.toml`, validated on load.

A profile says, per field, where the value lives (register type, address), how to decode it
(data type, word and byte order, scale) and the physical range outside which it is refused.
It also says how a milking is detected (status bit or flow) and how registers may be grouped
into block reads. Adding a meter model is a new file here, never new code.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from milkconsole.errors import ProfileError
from milkconsole.meters.readings import FIELD_KINDS

RegisterType = Literal["holding", "input"]
DataType = Literal["uint16", "int16", "uint32", "int32", "float32", "uint64", "string"]

# Registers each data type occupies; strings declare their own count.
TYPE_REGISTERS: dict[str, int] = {
    "uint16": 1,
    "int16": 1,
    "uint32": 2,
    "int32": 2,
    "float32": 2,
    "uint64": 4,
}
MODBUS_MAX_READ = 125
PROFILE_DIR = Path(__file__).resolve().parents[2] / "resources" / "profiles"

_FIELD_KEYS = {
    "register",
    "address",
    "type",
    "count",
    "word_order",
    "byte_order",
    "scale",
    "unit",
    "min",
    "max",
    "format",
}
_TOP_KEYS = {"profile", "read", "detection", "fields"}
_PROFILE_KEYS = {"id", "manufacturer", "model", "description"}
_READ_KEYS = {"max_registers", "span_gaps"}
_DETECTION_KEYS = {
    "mode",
    "status_field",
    "status_bit",
    "start_flow_l_min",
    "end_flow_l_min",
    "end_after_s",
}
# What each field name must decode as: which data types may carry it.
_ALLOWED_TYPES: dict[type, set[str]] = {
    float: {"float32", "uint16", "int16", "uint32", "int32"},
    int: {"uint16", "int16", "uint32", "int32", "uint64"},
    bool: {"uint16"},
    str: {"string", "uint64", "uint32"},
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """Where one field lives and how it decodes. `count` is in 16-bit registers."""

    name: str
    register: RegisterType
    address: int
    data_type: DataType
    count: int
    word_order: Literal["big", "little"] = "big"
    byte_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    unit: str = ""
    min: float | None = None
    max: float | None = None
    format: str | None = None  # for rfid read as an integer: "hex16"

    @property
    def end(self) -> int:
        """One past the last register."""
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class Detection:
    """How a milking is detected on this meter model.

    mode "status": `status_bit` of `status_field` set means milking in progress.
    mode "flow": a milking starts when flow reaches `start_flow_l_min` (or yield rises), and ends
    once flow has stayed at or below `end_flow_l_min` with yield not rising for `end_after_s`.
    """

    mode: Literal["status", "flow"]
    status_field: str = "status"
    status_bit: int = 0
    start_flow_l_min: float = 0.3
    end_flow_l_min: float = 0.05
    end_after_s: float = 20.0


@dataclass(frozen=True, slots=True)
class Block:
    """One Modbus read request: `count` registers of `register` type from `address`."""

    register: RegisterType
    address: int
    count: int


@dataclass(frozen=True, slots=True)
class Profile:
    id: str
    manufacturer: str
    model: str
    fields: dict[str, FieldSpec]
    detection: Detection
    max_registers: int
    span_gaps: bool
    source: str

    def blocks(self) -> list[Block]:
        """The fewest block reads that cover every field (each <= max_registers).

        Fields are grouped per register type in address order; a gap between fields is read
        through only when the profile says the meter answers undefined registers (`span_gaps`).
        """
        out: list[Block] = []
        for reg in ("holding", "input"):
            specs = sorted(
                (f for f in self.fields.values() if f.register == reg), key=lambda f: f.address
            )
            start = end = -1
            for f in specs:
                contiguous = f.address == end or (self.span_gaps and f.address > end)
                if start >= 0 and contiguous and f.end - start <= self.max_registers:
                    end = max(end, f.end)
                    continue
                if start >= 0:
                    out.append(Block(reg, start, end - start))
                start, end = f.address, f.end
            if start >= 0:
                out.append(Block(reg, start, end - start))
        return out


def _require(table: dict[str, Any], key: str, where: str, source: str) -> Any:
    if key not in table:
        raise ProfileError(source, f"{where}.{key}" if where else key, "missing")
    return table[key]


def _check_keys(table: dict[str, Any], allowed: set[str], where: str, source: str) -> None:
    for key in table:
        if key not in allowed:
            raise ProfileError(
                source,
                f"{where}.{key}" if where else key,
                f"unknown key (allowed: {', '.join(sorted(allowed))})",
            )


def _number(value: Any, key: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProfileError(source, key, f"must be a number, got {value!r}")
    return float(value)


def _parse_field(name: str, raw: Any, source: str) -> FieldSpec:
    where = f"fields.{name}"
    if name not in FIELD_KINDS:
        raise ProfileError(
            source, where, f"unknown field name (known: {', '.join(sorted(FIELD_KINDS))})"
        )
    if not isinstance(raw, dict):
        raise ProfileError(source, where, "must be a table")
    _check_keys(raw, _FIELD_KEYS, where, source)
    register = _require(raw, "register", where, source)
    if register not in ("holding", "input"):
        raise ProfileError(
            source, f"{where}.register", f"must be holding or input, not {register!r}"
        )
    address = _require(raw, "address", where, source)
    if not isinstance(address, int) or isinstance(address, bool) or not 0 <= address <= 65535:
        raise ProfileError(
            source, f"{where}.address", f"must be an integer 0-65535, not {address!r}"
        )
    data_type = _require(raw, "type", where, source)
    if data_type not in (*TYPE_REGISTERS, "string"):
        raise ProfileError(
            source,
            f"{where}.type",
            f"unknown data type {data_type!r} (known: {', '.join([*TYPE_REGISTERS, 'string'])})",
        )
    kind = FIELD_KINDS[name]
    if data_type not in _ALLOWED_TYPES[kind]:
        raise ProfileError(
            source, f"{where}.type", f"{data_type} cannot carry {name} (a {kind.__name__})"
        )
    if data_type == "string":
        count = _require(raw, "count", where, source)
        if not isinstance(count, int) or count < 1:
            raise ProfileError(
                source, f"{where}.count", f"must be a positive integer, not {count!r}"
            )
    else:
        count = raw.get("count", TYPE_REGISTERS[data_type])
        if count != TYPE_REGISTERS[data_type]:
            raise ProfileError(
                source,
                f"{where}.count",
                f"{data_type} takes {TYPE_REGISTERS[data_type]} register(s), not {count!r}",
            )
    if address + count > 65536:
        raise ProfileError(source, f"{where}.address", "field runs past register 65535")
    word_order = raw.get("word_order", "big")
    byte_order = raw.get("byte_order", "big")
    for key, val in (("word_order", word_order), ("byte_order", byte_order)):
        if val not in ("big", "little"):
            raise ProfileError(source, f"{where}.{key}", f"must be big or little, not {val!r}")
    scale = _number(raw.get("scale", 1.0), f"{where}.scale", source)
    if scale == 0:
        raise ProfileError(source, f"{where}.scale", "must not be 0")
    lo = raw.get("min")
    hi = raw.get("max")
    lo_f = None if lo is None else _number(lo, f"{where}.min", source)
    hi_f = None if hi is None else _number(hi, f"{where}.max", source)
    if lo_f is not None and hi_f is not None and lo_f > hi_f:
        raise ProfileError(source, f"{where}.min", f"min {lo_f} is above max {hi_f}")
    if kind is float and (lo_f is None or hi_f is None):
        raise ProfileError(
            source, f"{where}.min", "a measured quantity needs its physical range (min and max)"
        )
    fmt = raw.get("format")
    if fmt is not None and (name != "rfid" or fmt != "hex16"):
        raise ProfileError(
            source, f"{where}.format", f"unknown format {fmt!r} (only rfid may say hex16)"
        )
    unit = raw.get("unit", "")
    if not isinstance(unit, str):
        raise ProfileError(source, f"{where}.unit", "must be a string")
    return FieldSpec(
        name=name,
        register=register,
        address=address,
        data_type=data_type,
        count=count,
        word_order=word_order,
        byte_order=byte_order,
        scale=scale,
        unit=unit,
        min=lo_f,
        max=hi_f,
        format=fmt,
    )


def parse_profile(data: dict[str, Any], source: str) -> Profile:
    """Validate a profile already read from TOML. Raises ProfileError naming source and key."""
    _check_keys(data, _TOP_KEYS, "", source)
    head = _require(data, "profile", "", source)
    _check_keys(head, _PROFILE_KEYS, "profile", source)
    pid = _require(head, "id", "profile", source)
    if not isinstance(pid, str) or not pid:
        raise ProfileError(source, "profile.id", "must be a non-empty string")
    read = data.get("read", {})
    _check_keys(read, _READ_KEYS, "read", source)
    max_registers = read.get("max_registers", MODBUS_MAX_READ)
    if not isinstance(max_registers, int) or not 1 <= max_registers <= MODBUS_MAX_READ:
        raise ProfileError(source, "read.max_registers", f"must be 1-{MODBUS_MAX_READ}")
    span_gaps = read.get("span_gaps", False)
    if not isinstance(span_gaps, bool):
        raise ProfileError(source, "read.span_gaps", "must be true or false")

    raw_fields = _require(data, "fields", "", source)
    if not isinstance(raw_fields, dict) or not raw_fields:
        raise ProfileError(source, "fields", "must list at least one field")
    fields = {name: _parse_field(name, raw, source) for name, raw in raw_fields.items()}
    for name, f in fields.items():
        if f.count > max_registers:
            raise ProfileError(
                source, f"fields.{name}.count", "field larger than read.max_registers"
            )
    # Overlaps: two fields sharing a register of the same type.
    by_reg = sorted(fields.values(), key=lambda f: (f.register, f.address))
    for a, b in itertools.pairwise(by_reg):
        if a.register == b.register and b.address < a.end:
            raise ProfileError(
                source,
                f"fields.{b.name}.address",
                f"register {b.address} overlaps fields.{a.name} ({a.address}-{a.end - 1})",
            )
    if "yield_l" not in fields:
        raise ProfileError(source, "fields.yield_l", "missing: every meter must report yield")

    det_raw = _require(data, "detection", "", source)
    _check_keys(det_raw, _DETECTION_KEYS, "detection", source)
    mode = _require(det_raw, "mode", "detection", source)
    if mode not in ("status", "flow"):
        raise ProfileError(source, "detection.mode", f"must be status or flow, not {mode!r}")
    status_field = det_raw.get("status_field", "status")
    status_bit = det_raw.get("status_bit", 0)
    if mode == "status":
        if status_field not in fields:
            raise ProfileError(
                source, "detection.status_field", f"{status_field!r} is not a field of this profile"
            )
        if not isinstance(status_bit, int) or not 0 <= status_bit < 16 * fields[status_field].count:
            raise ProfileError(source, "detection.status_bit", f"bit {status_bit!r} out of range")
    elif "flow_l_min" not in fields:
        raise ProfileError(source, "detection.mode", "flow detection needs a flow_l_min field")
    detection = Detection(
        mode=mode,
        status_field=status_field,
        status_bit=status_bit,
        start_flow_l_min=_number(
            det_raw.get("start_flow_l_min", 0.3), "detection.start_flow_l_min", source
        ),
        end_flow_l_min=_number(
            det_raw.get("end_flow_l_min", 0.05), "detection.end_flow_l_min", source
        ),
        end_after_s=_number(det_raw.get("end_after_s", 20.0), "detection.end_after_s", source),
    )
    if detection.end_flow_l_min > detection.start_flow_l_min:
        raise ProfileError(source, "detection.end_flow_l_min", "must not be above start_flow_l_min")
    return Profile(
        id=pid,
        manufacturer=str(head.get("manufacturer", "")),
        model=str(head.get("model", "")),
        fields=fields,
        detection=detection,
        max_registers=max_registers,
        span_gaps=span_gaps,
        source=source,
    )


def load_profile_file(path: Path) -> Profile:
    """Read and validate one profile file."""
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(source, "-", f"cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(source, "-", f"not valid TOML: {exc}") from exc
    profile = parse_profile(data, source)
    if profile.id != path.stem:
        raise ProfileError(
            source, "profile.id", f"{profile.id!r} must match the file name {path.stem!r}"
        )
    return profile


def load_profiles(*dirs: Path) -> dict[str, Profile]:
    """All profiles in the bundled directory and any extra directories (later ones win)."""
    out: dict[str, Profile] = {}
    for d in (PROFILE_DIR, *dirs):
        for path in sorted(d.glob("*.toml")):
            p = load_profile_file(path)
            out[p.id] = p
    return out
