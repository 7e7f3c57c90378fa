"""Decoding: every data type round-trips, bad values are refused, calibration applies."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from milkconsole.meters.decode import decode_raw, decode_reading, encode_field, encode_raw
from milkconsole.meters.profiles import FieldSpec, Profile, load_profiles

PROFILES = load_profiles()
NOW = datetime(2026, 3, 2, 5, 12, tzinfo=UTC)


def registers_for(profile: Profile, values: dict[str, object]) -> dict:
    out = {}
    for block in profile.blocks():
        regs = [0] * block.count
        for name, spec in profile.fields.items():
            if name in values and spec.register == block.register:
                off = spec.address - block.address
                regs[off : off + spec.count] = encode_field(spec, values[name])  # type: ignore[arg-type]
        out[block] = regs
    return out


def read(profile_id: str, values: dict[str, object], factor: float = 1.0):
    p = PROFILES[profile_id]
    return decode_reading(
        p,
        registers_for(p, values),
        meter_id="MM-01",
        stall=1,
        t_mono=1.0,
        t_utc=NOW,
        calibration_factor=factor,
    )


def test_delaval_floats_are_big_endian_high_word_first() -> None:
    spec = PROFILES["delaval-mm27bc"].fields["yield_l"]
    assert encode_field(spec, 1.0) == [0x3F80, 0x0000]
    gea = PROFILES["gea"].fields["yield_l"]
    assert encode_field(gea, 1.0) == [0x0000, 0x3F80]


def test_delaval_reading_decodes_every_field_and_the_status_bit() -> None:
    r, refused = read(
        "delaval-mm27bc",
        {
            "yield_l": 12.5,
            "flow_l_min": 3.25,
            "conductivity_ms_cm": 5.1,
            "temperature_c": 37.0,
            "session_time_s": 310,
            "rfid": "83D5A16C4D5E0E1F",
            "status": 0b101,
            "vacuum_kpa": 45.2,
            "pulsation_cpm": 60,
        },
    )
    assert refused == []
    assert r.yield_l == 12.5 and r.flow_l_min == 3.25 and r.session_time_s == 310
    assert r.rfid == "83D5A16C4D5E0E1F" and r.milking is True
    assert math.isclose(r.vacuum_kpa or 0, 45.2, abs_tol=1e-9) and r.pulsation_cpm == 60


def test_afimilk_reading_has_no_status_and_ascii_tag() -> None:
    r, _ = read(
        "afimilk", {"yield_l": 8.0, "rfid": "C0001234", "scc_cells_ml": 250_000, "blood": 1}
    )
    assert r.milking is None and r.rfid == "C0001234" and r.scc_cells_ml == 250_000
    assert r.blood is True


def test_blank_tag_reads_as_no_tag() -> None:
    assert read("delaval-mm27bc", {"rfid": None})[0].rfid is None
    assert read("afimilk", {"rfid": ""})[0].rfid is None


def test_nan_and_out_of_range_values_are_refused_not_passed_on() -> None:
    r, refused = read(
        "delaval-mm27bc",
        {"yield_l": float("nan"), "flow_l_min": 99.0, "temperature_c": float("inf")},
    )
    assert r.yield_l is None and r.flow_l_min is None and r.temperature_c is None
    assert set(r.rejected) == {"yield_l", "flow_l_min", "temperature_c"}
    reasons = {x.field: x.reason for x in refused}
    assert "not a number" in reasons["yield_l"] and "above 15.0" in reasons["flow_l_min"]


def test_calibration_factor_scales_yield_and_flow_only() -> None:
    r, _ = read(
        "delaval-mm27bc", {"yield_l": 10.0, "flow_l_min": 2.0, "conductivity_ms_cm": 5.0}, 1.05
    )
    assert math.isclose(r.yield_l or 0, 10.5) and math.isclose(r.flow_l_min or 0, 2.1)
    assert r.conductivity_ms_cm == 5.0


def _spec(data_type: str, word: str, byte: str, count: int | None = None) -> FieldSpec:
    sizes = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2, "uint64": 4}
    return FieldSpec("x", "holding", 0, data_type, count or sizes[data_type], word, byte)  # type: ignore[arg-type]


orders = st.sampled_from(["big", "little"])


@given(st.integers(0, 2**32 - 1), orders, orders)
def test_uint32_round_trips_in_every_order(v: int, w: str, b: str) -> None:
    s = _spec("uint32", w, b)
    regs = encode_raw(s, v)
    assert all(0 <= x <= 0xFFFF for x in regs) and decode_raw(s, regs) == v


@given(st.integers(-(2**31), 2**31 - 1), orders, orders)
def test_int32_round_trips_in_every_order(v: int, w: str, b: str) -> None:
    s = _spec("int32", w, b)
    assert decode_raw(s, encode_raw(s, v)) == v


@given(st.integers(0, 2**64 - 1), orders, orders)
def test_uint64_round_trips_in_every_order(v: int, w: str, b: str) -> None:
    s = _spec("uint64", w, b)
    assert decode_raw(s, encode_raw(s, v)) == v


@given(st.floats(width=32, allow_nan=False), orders, orders)
def test_float32_round_trips_exactly(v: float, w: str, b: str) -> None:
    s = _spec("float32", w, b)
    assert decode_raw(s, encode_raw(s, v)) == v


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=8))
def test_ascii_tags_round_trip(tag: str) -> None:
    s = _spec("string", "big", "big", count=4)
    assert decode_raw(s, encode_raw(s, tag)) == tag


@given(st.floats(min_value=0, max_value=80, width=32), st.floats(0.8, 1.2))
def test_decoded_yield_is_never_nan_and_always_in_range_or_refused(v: float, factor: float) -> None:
    r, refused = read("delaval-mm27bc", {"yield_l": v}, factor)
    assert r.yield_l is not None and math.isclose(r.yield_l, v * factor, rel_tol=1e-9)
    assert refused == []


def test_conductivity_offset_is_added_to_cow_and_quarter_conductivity() -> None:
    p = PROFILES["gea"]
    values = {"conductivity_ms_cm": 5.0, "ec_lf_ms_cm": 5.5, "yield_l": 3.0}
    r, _ = decode_reading(
        p,
        registers_for(p, values),
        meter_id="MM-01",
        stall=1,
        t_mono=1.0,
        t_utc=NOW,
        conductivity_offset_ms_cm=-0.25,
    )
    assert r.conductivity_ms_cm == 4.75 and r.ec_lf_ms_cm == 5.25 and r.yield_l == 3.0
