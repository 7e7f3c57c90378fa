"""RFID tags: every form normalises to one canonical string; malformed tags are refused."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from milkconsole.meters.decode import decode_reading, encode_field
from milkconsole.meters.profiles import load_profiles
from milkconsole.meters.rfid import (
    MAX_NATIONAL_ID,
    AnimalTags,
    InvalidTag,
    TagIndex,
    fdx_b_from_hex,
    fdx_b_to_iso,
    format_display,
    iso_decimal,
    iso_to_fdx_b,
    normalize_tag,
    parse_fdx_b,
    to_hex16,
)

countries = st.integers(min_value=0, max_value=999)
nationals = st.integers(min_value=1, max_value=MAX_NATIONAL_ID)


def test_the_iso_example_reads_the_same_in_every_written_form() -> None:
    forms = [
        "982000123456789",
        "982 000123456789",
        "982-000123456789",
        "  982.000123456789 ",
        "8000F580075BCD15",
        "8000f580075bcd15",
        "80:00:F5:80:07:5B:CD:15",
        "80-00-F5-80-07-5B-CD-15",
        "8000 F580 075B CD15",
        "15CD5B0780F50080",  # the reader that sends the least significant byte first
        "15:CD:5B:07:80:F5:00:80",
        "0x8000F580075BCD15",
    ]
    assert {normalize_tag(f) for f in forms} == {"982000123456789"}
    assert format_display("982000123456789") == "982 000123456789"


def test_fdx_b_fields_sit_where_iso_11784_puts_them() -> None:
    code = iso_to_fdx_b(982, 123456789)
    assert code == (1 << 63) | (982 << 38) | 123456789
    fields = parse_fdx_b(code | (1 << 48))
    assert (fields.country, fields.national_id) == (982, 123456789)
    assert fields.animal and fields.data_block and fields.reserved == 0
    assert fdx_b_to_iso(code) == "982000123456789"


@given(countries, nationals, st.booleans())
@example(0, 128, False)  # 0x80: byte-swapped it is the animal flag alone, an all-zero ID
@example(1, 128, False)  # byte-swapped, a valid animal tag (the next test)
def test_decimal_to_64_bit_to_hex_and_back_is_the_same_tag(
    country: int, national: int, animal: bool
) -> None:
    canonical = iso_decimal(country, national)
    code = iso_to_fdx_b(country, national, animal=animal)
    assert fdx_b_to_iso(code) == canonical
    hex_msb_first = to_hex16(code)
    assert len(hex_msb_first) == 16
    assert normalize_tag(format_display(canonical)) == canonical
    assert normalize_tag(canonical, form="iso") == canonical
    if animal:
        # Every ear tag in a parlour is an animal tag: its hex reads back in either form.
        assert normalize_tag(hex_msb_first) == canonical
        assert normalize_tag(hex_msb_first, form="hex") == canonical
    else:
        # A non-animal code reads back as itself or, when that is also a valid tag, as its
        # byte-swap (see the next test), never as anything else and never as no tag at all.
        swapped = int.from_bytes(code.to_bytes(8, "big"), "little")
        readings = {canonical}
        with contextlib.suppress(InvalidTag):
            readings.add(fdx_b_to_iso(swapped))
        readings.discard("000000000000000")
        assert normalize_tag(hex_msb_first) in readings


def test_a_non_animal_code_whose_byte_swap_is_an_animal_tag_reads_as_the_animal_tag() -> None:
    # 001 000000000128 without the animal flag is 00 00 00 40 00 00 00 80; read the other way
    # round it is an animal tag (flag from the 0x80) of country 0. The wire cannot tell them
    # apart; a parlour reads ear tags, so the animal reading wins (rfid._byte_order_rank).
    code = iso_to_fdx_b(1, 128, animal=False)
    assert to_hex16(code) == "0000004000000080"
    assert normalize_tag(to_hex16(code)) == iso_decimal(0, 1 << 30)
    assert normalize_tag(to_hex16(iso_to_fdx_b(1, 128, animal=True))) == "001000000000128"


@given(countries, nationals)
def test_an_animal_tag_reads_right_in_either_byte_order(country: int, national: int) -> None:
    code = iso_to_fdx_b(country, national, animal=True)
    little = to_hex16(code, "little")
    assert normalize_tag(little) == iso_decimal(country, national)
    colons = ":".join(little[i : i + 2] for i in range(0, 16, 2))
    assert fdx_b_from_hex(colons).canonical == iso_decimal(country, national)


@given(countries, nationals)
def test_separators_and_case_do_not_change_a_hex_tag(country: int, national: int) -> None:
    text = to_hex16(iso_to_fdx_b(country, national))
    for sep in (":", "-", " "):
        spaced = sep.join(text[i : i + 2] for i in range(0, 16, 2)).lower()
        assert normalize_tag(spaced) == iso_decimal(country, national)


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20))
def test_any_text_is_either_canonical_or_refused_with_a_reason(text: str) -> None:
    try:
        canonical = normalize_tag(text)
    except InvalidTag as exc:
        assert exc.reason
        assert repr(text) in str(exc)
        return
    # A canonical tag is a fixed point, and what people are shown reads back as the same tag.
    assert normalize_tag(canonical) == canonical
    shown = format_display(canonical)
    if canonical.startswith("ASCII:"):
        assert normalize_tag(shown, form="ascii") == canonical
    else:
        assert normalize_tag(shown, form="iso") == canonical


def test_shorter_hex_is_the_64_bit_code_without_its_leading_zeros() -> None:
    assert normalize_tag("0x75BCD15") == "000000123456789"
    assert normalize_tag("75BCD15") == "000000123456789"
    assert normalize_tag("07:5B:CD:15") == "000000123456789"
    assert normalize_tag("F580075BCD15") == "982000123456789"  # animal flag clear


def test_afimilk_ascii_tags_keep_their_text_even_when_all_digits() -> None:
    assert normalize_tag("00012345") == "ASCII:00012345"
    assert normalize_tag("AB12CD34") == "ASCII:AB12CD34"
    assert normalize_tag("COW-0042") == "ASCII:COW-0042"
    assert normalize_tag("ascii:xy7") == "ASCII:xy7"
    assert normalize_tag("12345678", form="ascii") == "ASCII:12345678"
    assert normalize_tag("ASCII:12345678", form="ascii") == "ASCII:12345678"
    assert format_display("ASCII:00012345") == "00012345"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("0000000000000000", "all zero"),
        ("00000000", "all zero"),
        ("982 999999999999", "38-bit"),
        ("FFFFFFFFFFFFFFFF", "country code 1023"),
        ("12345678901234567", "17 hex digits"),
        ("AB CD XY", "neither hex groups"),
        ("cow\u00e9", "not printable ASCII"),
        ("tag\x00", "not printable ASCII"),
        ("ABCDEFGHIJKLMNOPQ", "longer than 16"),
        ("0xZZ", "not a hex digit"),
    ],
)
def test_malformed_tags_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidTag) as err:
        normalize_tag(text)
    assert reason in err.value.reason
    assert isinstance(err.value, ValueError)


def test_a_hex_tag_from_the_delaval_meter_registers_matches_its_iso_number() -> None:
    profile = load_profiles()["delaval-mm27bc"]
    hex_tag = to_hex16(iso_to_fdx_b(276, 98765432101))
    regs = {}
    for block in profile.blocks():
        values = [0] * block.count
        spec = profile.fields["rfid"]
        if spec.register == block.register:
            off = spec.address - block.address
            values[off : off + spec.count] = encode_field(spec, hex_tag)
        regs[block] = values
    reading, _ = decode_reading(
        profile,
        regs,
        meter_id="MM-01",
        stall=1,
        t_mono=0.0,
        t_utc=datetime(2026, 3, 2, 5, 12, tzinfo=UTC),
    )
    assert reading.rfid is not None
    assert normalize_tag(reading.rfid, form="hex") == "276098765432101"


def test_the_cache_matches_primary_and_alternative_tags_in_any_form() -> None:
    index = TagIndex(
        [
            AnimalTags(1, "982 000123456789", ("ASCII:00012345",)),
            AnimalTags(2, "276098765432101", ()),
        ]
    )
    primary = index.lookup("8000F580075BCD15")
    assert primary is not None and primary.animal_id == 1 and primary.primary
    alternative = index.lookup("00012345", form="ascii")
    assert alternative is not None and alternative.animal_id == 1 and not alternative.primary
    assert index.lookup("982000000000001") is None
    with pytest.raises(InvalidTag):
        index.lookup("not a tag at all")


def test_a_tag_claimed_by_two_animals_matches_neither_and_is_reported() -> None:
    index = TagIndex(
        [
            AnimalTags(1, "982000123456789", ()),
            AnimalTags(2, "982 000123456789", ()),
            AnimalTags(3, "garbage tag", ("982000000000007",)),
        ]
    )
    assert index.lookup("982000123456789") is None
    assert index.lookup("982000000000007") is not None
    reasons = {(r.animal_id, r.reason.split(" ")[0]) for r in index.refused}
    assert (1, "tag") in reasons and (2, "tag") in reasons
    assert any(r.animal_id == 3 and r.text == "garbage tag" for r in index.refused)
