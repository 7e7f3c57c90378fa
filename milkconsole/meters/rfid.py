"""RFID tags: every form a reader or a person writes, normalised to one canonical string.

Canonical forms (what the store keeps and what the animal cache is keyed on):

* ISO 11784/11785 animal tags -> the 15-digit ISO decimal, ``"982000123456789"``: 3 digits of
  country (or manufacturer, 900-998) code then the 12-digit national ID, no separator.
  ``format_display`` shows it as ``"982 000123456789"``. The FDX-B flags (animal, data block,
  reserved bits) are not part of an animal's identity and are dropped.
* Any other tag (Afimilk's 8 ASCII characters, a farm's own codes) -> ``"ASCII:<text>"`` with
  the text as read (case kept, 1-16 printable ASCII characters, no whitespace).

Accepted input forms (``normalize_tag(text)``, ``form="auto"``):

* 15 decimal digits, optionally one space, dot or dash after the country code
  (``"982 000123456789"``).
* The 64-bit FDX-B code as 16 hex digits, bare or split by ``:`` ``-`` ``.`` or spaces
  (``"80:00:F5:80:07:5B:CD:15"`` is 982 000123456789). Readers send it in either byte order;
  both are tried and the order whose country code is <= 999 wins. When both are valid, the one
  whose reserved bits are zero and whose animal flag is set wins, then the most-significant-
  byte-first reading (the order ``milkconsole.meters.decode`` writes). For an animal tag with zero
  reserved bits this always picks the right order (see ``_byte_order_rank``).
* Shorter hex: ``0x`` prefix, separators between hex groups, or a bare hex string of 1-15
  digits other than 8 characters: the 64-bit code with its leading zeros dropped, read most
  significant byte first.
* ``"ASCII:<text>"``, or any other string of 1-16 printable, non-space ASCII characters,
  including a bare 8-character string (the Afimilk meter's form, even when it is all digits).

A caller that knows what its source produces passes ``form="hex"``, ``"ascii"`` or ``"iso"``
and the guessing is skipped (the DeLaval/GEA profiles say ``hex16``; Afimilk's is a string).

FDX-B bit layout used here (the 64-bit integer, bit 0 least significant): national ID bits 0-37,
country code bits 38-47, data-block flag bit 48, reserved bits 49-62, animal flag bit 63.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

TagForm = Literal["auto", "hex", "ascii", "iso"]

ASCII_PREFIX = "ASCII:"
MAX_COUNTRY = 999
MAX_NATIONAL_ID = (1 << 38) - 1  # 274877906943: the 38-bit FDX-B field
MAX_ASCII_LEN = 16

_NATIONAL_SHIFT = 0
_COUNTRY_SHIFT = 38
_DATA_BLOCK_SHIFT = 48
_RESERVED_SHIFT = 49
_ANIMAL_SHIFT = 63
_COUNTRY_MASK = 0x3FF
_RESERVED_MASK = 0x3FFF

_ISO_DECIMAL = re.compile(r"^(\d{3})[ .\-]?(\d{12})$")
_SEPARATORS = re.compile(r"[ :\-.]+")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class InvalidTag(ValueError):
    """A tag that is not any known form. `reason` says what is wrong, `text` is the input."""

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"RFID tag {text!r}: {reason}")


@dataclass(frozen=True, slots=True)
class FdxB:
    """The fields of one 64-bit FDX-B identification code."""

    country: int
    national_id: int
    animal: bool = True
    data_block: bool = False
    reserved: int = 0

    @property
    def canonical(self) -> str:
        return iso_decimal(self.country, self.national_id)


def iso_decimal(country: int, national_id: int) -> str:
    """The canonical 15-digit form of an ISO tag; refuses values outside the FDX-B fields."""
    _check_iso(f"{country}/{national_id}", country, national_id)
    return f"{country:03d}{national_id:012d}"


def iso_to_fdx_b(country: int, national_id: int, animal: bool = True) -> int:
    """The 64-bit FDX-B code (data-block flag and reserved bits zero) for an ISO tag."""
    _check_iso(f"{country}/{national_id}", country, national_id)
    return (int(animal) << _ANIMAL_SHIFT) | (country << _COUNTRY_SHIFT) | national_id


def parse_fdx_b(code: int) -> FdxB:
    """Split a 64-bit FDX-B code (most significant byte first) into its fields.

    Raises InvalidTag when the code is not 64 bits or its country code is above 999.
    """
    text = f"{code:#x}"
    if not 0 <= code < (1 << 64):
        raise InvalidTag(text, "not a 64-bit FDX-B code")
    fields = _fields(code)
    if fields.country > MAX_COUNTRY:
        raise InvalidTag(text, f"country code {fields.country} is above {MAX_COUNTRY}")
    return fields


def fdx_b_to_iso(code: int) -> str:
    """The canonical 15-digit ISO decimal of a 64-bit FDX-B code (MSB-first integer)."""
    return parse_fdx_b(code).canonical


def fdx_b_from_hex(text: str) -> FdxB:
    """The FDX-B fields of a 16-hex-digit code read in whichever byte order is valid."""
    digits = _SEPARATORS.sub("", text.strip())
    if len(digits) != 16 or not _is_hex(digits):
        raise InvalidTag(text, "an FDX-B code is 16 hex digits")
    return _decode_hex16(text, int(digits, 16))


def to_hex16(code: int, byte_order: Literal["big", "little"] = "big") -> str:
    """16 upper-case hex digits of a 64-bit code in the byte order a reader would send."""
    if byte_order == "little":
        code = int.from_bytes(code.to_bytes(8, "big"), "little")
    return f"{code:016X}"


def normalize_tag(text: str, *, form: TagForm = "auto") -> str:
    """The canonical form of a tag (see the module docstring), or InvalidTag with a reason."""
    if not isinstance(text, str):
        raise InvalidTag(repr(text), "not text")
    s = text.strip()
    if not s:
        raise InvalidTag(text, "empty tag (no tag read)")
    bad = next((c for c in s if not (c.isascii() and c.isprintable())), None)
    if bad is not None:
        raise InvalidTag(text, f"character {bad!r} is not printable ASCII")
    if form == "ascii":
        return _ascii(text, s[len(ASCII_PREFIX) :] if _has_ascii_prefix(s) else s)
    if form == "iso":
        return _iso(text, s)
    if form == "hex":
        return _hex(text, s[2:] if s[:2].lower() == "0x" else s)
    if form != "auto":
        raise ValueError(f"unknown tag form {form!r} (auto, hex, ascii or iso)")
    return _auto(text, s)


def format_display(canonical: str) -> str:
    """How a canonical tag is shown to people: ``"982 000123456789"`` or the ASCII text."""
    if canonical.startswith(ASCII_PREFIX):
        return canonical[len(ASCII_PREFIX) :]
    if len(canonical) == 15 and canonical.isdigit():
        return f"{canonical[:3]} {canonical[3:]}"
    raise InvalidTag(canonical, "not a canonical tag (use normalize_tag first)")


def is_canonical(text: str) -> bool:
    """True when `text` is already in canonical form (normalising it changes nothing)."""
    try:
        return normalize_tag(text) == text
    except InvalidTag:
        return False


# --- the animal cache: primary and alternative tags -> animal ---------------------------------


@dataclass(frozen=True, slots=True)
class AnimalTags:
    """One animal's tags as the cache (Odoo) lists them: the primary first, then the others.

    `active` False: a cow that left the herd; her tag may have been reused by an active cow.
    """

    animal_id: int
    primary: str | None
    alternatives: tuple[str, ...] = ()
    active: bool = True


@dataclass(frozen=True, slots=True)
class TagMatch:
    """A tag found in the cache: whose it is and whether it is the animal's primary tag."""

    animal_id: int
    canonical: str
    primary: bool


@dataclass(frozen=True, slots=True)
class RefusedTag:
    """A cache entry that could not be used: malformed, or claimed by two animals."""

    animal_id: int
    text: str
    reason: str


class TagIndex:
    """Canonical tag -> animal, built from the animal cache. Immutable once built.

    A tag claimed by two active animals (or by two inactive ones and no active one) is refused
    for all of them: an RFID that could be either cow must not silently pick one. An active
    animal's claim beats an inactive one's (tags are reused). Malformed cache tags are refused
    with the reason. Both kinds are listed in `refused` so the console can show them.
    """

    def __init__(self, entries: Iterable[AnimalTags]) -> None:
        owners: dict[str, list[TagMatch]] = {}
        active: dict[int, bool] = {}
        refused: list[RefusedTag] = []
        for entry in entries:
            active[entry.animal_id] = entry.active
            tags = ([(entry.primary, True)] if entry.primary else []) + [
                (t, False) for t in entry.alternatives
            ]
            for text, primary in tags:
                try:
                    canonical = normalize_tag(text)
                except InvalidTag as exc:
                    refused.append(RefusedTag(entry.animal_id, text, exc.reason))
                    continue
                same = owners.setdefault(canonical, [])
                if any(m.animal_id == entry.animal_id for m in same):
                    continue  # the same tag listed twice for one animal is harmless
                same.append(TagMatch(entry.animal_id, canonical, primary))
        self._by_tag: dict[str, TagMatch] = {}
        for canonical, claims in owners.items():
            matches = [m for m in claims if active[m.animal_id]] or claims
            if len(matches) == 1:
                self._by_tag[canonical] = matches[0]
                continue
            ids = ", ".join(str(m.animal_id) for m in matches)
            for m in matches:
                refused.append(RefusedTag(m.animal_id, canonical, f"tag shared by animals {ids}"))
        self.refused: tuple[RefusedTag, ...] = tuple(refused)

    def __len__(self) -> int:
        return len(self._by_tag)

    def lookup(self, tag: str, *, form: TagForm = "auto") -> TagMatch | None:
        """The animal that carries `tag`, or None when unknown. InvalidTag if malformed."""
        return self._by_tag.get(normalize_tag(tag, form=form))

    def lookup_canonical(self, canonical: str) -> TagMatch | None:
        """Like `lookup` for a tag already in canonical form (no parsing)."""
        return self._by_tag.get(canonical)


# --- parsing ----------------------------------------------------------------------------------


def _auto(text: str, s: str) -> str:
    if _has_ascii_prefix(s):
        return _ascii(text, s[len(ASCII_PREFIX) :])
    if s[:2].lower() == "0x":
        return _hex(text, s[2:])
    if _ISO_DECIMAL.match(s):
        return _iso(text, s)
    if _SEPARATORS.search(s):
        groups = [g for g in _SEPARATORS.split(s) if g]
        if groups and all(_is_hex(g) for g in groups):
            return _hex(text, s)
        if any(c.isspace() for c in s):
            raise InvalidTag(text, "neither hex groups, an ISO number nor a tag without spaces")
        return _ascii(text, s)
    if _is_hex(s) and (len(s) == 16 or (len(s) < 16 and len(s) != 8)):
        return _hex(text, s)
    if len(s) > MAX_ASCII_LEN:
        if _is_hex(s):
            raise InvalidTag(text, f"{len(s)} hex digits: longer than the 64-bit FDX-B code")
        raise InvalidTag(text, f"longer than {MAX_ASCII_LEN} characters")
    return _ascii(text, s)


def _iso(text: str, s: str) -> str:
    m = _ISO_DECIMAL.match(s.strip())
    if m is None:
        raise InvalidTag(text, "an ISO tag is 15 digits: 3 of country code, 12 of national ID")
    country, national = int(m.group(1)), int(m.group(2))
    _check_iso(text, country, national)
    return f"{country:03d}{national:012d}"


def _hex(text: str, s: str) -> str:
    digits = _SEPARATORS.sub("", s.strip())
    if not digits:
        raise InvalidTag(text, "no hex digits")
    if not _is_hex(digits):
        bad = next(c for c in digits if c not in _HEX_DIGITS)
        raise InvalidTag(text, f"{bad!r} is not a hex digit")
    if len(digits) > 16:
        raise InvalidTag(text, f"{len(digits)} hex digits: longer than the 64-bit FDX-B code")
    code = int(digits, 16)
    if code == 0:
        raise InvalidTag(text, "all zero (the meter's 'no tag read')")
    if len(digits) == 16:
        return _decode_hex16(text, code).canonical
    # A shortened code lost its leading zeros, so it was written most significant byte first.
    fields = _fields(code)
    if fields.country > MAX_COUNTRY:
        raise InvalidTag(text, f"country code {fields.country} is above {MAX_COUNTRY}")
    return fields.canonical


def _ascii(text: str, body: str) -> str:
    if not body:
        raise InvalidTag(text, "empty ASCII tag")
    if len(body) > MAX_ASCII_LEN:
        raise InvalidTag(text, f"ASCII tag longer than {MAX_ASCII_LEN} characters")
    if any(c.isspace() for c in body):
        raise InvalidTag(text, "an ASCII tag has no spaces")
    if set(body) <= {"0"}:
        raise InvalidTag(text, "all zero (the meter's 'no tag read')")
    return ASCII_PREFIX + body


def _decode_hex16(text: str, code: int) -> FdxB:
    swapped = int.from_bytes(code.to_bytes(8, "big"), "little")
    # A reading whose country and national ID are both zero is no tag at all (0x80 read the
    # other way round is just the animal flag): never take it over the other byte order.
    candidates = [
        (c, i)
        for i, c in enumerate((code, swapped))
        if _fields(c).country <= 999 and (_fields(c).country, _fields(c).national_id) != (0, 0)
    ]
    if not candidates:
        a, b = _fields(code).country, _fields(swapped).country
        raise InvalidTag(text, f"country code {a} (or {b} byte-swapped) is above {MAX_COUNTRY}")
    best = max(candidates, key=lambda ci: _byte_order_rank(_fields(ci[0]), ci[1]))
    return _fields(best[0])


def _byte_order_rank(f: FdxB, order_index: int) -> tuple[bool, bool, bool, bool, bool]:
    # A byte-swapped reading of a real animal tag is rarely also a plausible tag: its reserved
    # bits come from the true code's low byte, and its animal flag from that byte's top bit.
    # When both readings still pass (a low byte of 0x80 and a small national ID), prefer the one
    # with a country that exists (0 is unassigned) and without the data-block flag (cattle ear
    # tags carry none), then the reader's usual most-significant-byte-first order.
    return (f.reserved == 0, f.animal, f.country != 0, not f.data_block, order_index == 0)


def _fields(code: int) -> FdxB:
    return FdxB(
        country=(code >> _COUNTRY_SHIFT) & _COUNTRY_MASK,
        national_id=code & MAX_NATIONAL_ID,
        animal=bool((code >> _ANIMAL_SHIFT) & 1),
        data_block=bool((code >> _DATA_BLOCK_SHIFT) & 1),
        reserved=(code >> _RESERVED_SHIFT) & _RESERVED_MASK,
    )


def _check_iso(text: str, country: int, national_id: int) -> None:
    if not 0 <= country <= MAX_COUNTRY:
        raise InvalidTag(text, f"country code {country} is outside 0-{MAX_COUNTRY}")
    if not 0 <= national_id <= MAX_NATIONAL_ID:
        raise InvalidTag(
            text,
            f"national ID {national_id} does not fit the 38-bit FDX-B field "
            f"(max {MAX_NATIONAL_ID})",
        )
    if country == 0 and national_id == 0:
        raise InvalidTag(text, "all zero (the meter's 'no tag read')")


def _has_ascii_prefix(s: str) -> bool:
    return s[: len(ASCII_PREFIX)].upper() == ASCII_PREFIX


def _is_hex(s: str) -> bool:
    return bool(s) and all(c in _HEX_DIGITS for c in s)
