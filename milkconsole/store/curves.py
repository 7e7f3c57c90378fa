"""Flow curves kept compactly: one small value per finished session instead of a row per sample.

A six-minute milking has about 180 samples (every 2 s: elapsed time, yield, flow, conductivity).
As rows they took about 21 KB; packed they take about 0.5-0.8 KB. The recorder keeps the rows
of a session while it is open (each checkpoint appends a few), and packs them into its
`flow_curves` value in the transaction that completes it.

The packed form (version 1) is fixed point, delta coded and compressed:

    byte 0      format version (1)
    byte 1      flags: bit 0 = some sample has a conductivity, bit 1 = some have none
    bytes 2...  zlib of: n, [conductivity presence bitmap when bit 1], then each column as
                zigzag LEB128 varints of its differences: elapsed in 0.01 s and yield in mL
                (second differences: both climb steadily), flow in 0.01 L/min and
                conductivity in 0.01 mS/cm (first differences, over the samples that have one)

Those steps are finer than any meter reports (0.1 L / 0.01 mS/cm at best), so charts, the
health checks and a re-packed curve see the same numbers. `unpack_curve` reads every version
this module ever wrote; a value it cannot read raises `CurveError`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from milkconsole.meters.events import FlowSample

FORMAT_VERSION = 1
ELAPSED_STEP_S = 0.01
YIELD_STEP_L = 0.001
FLOW_STEP_L_MIN = 0.01
CONDUCTIVITY_STEP_MS_CM = 0.01
_HAS_EC = 1
_SOME_EC_MISSING = 2
_ZLIB_LEVEL = 6
# Far beyond any real value (10^12 s, 10^9 L): a corrupt or absurd number is clipped, not a crash.
_LIMIT = 2**50

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class CurveError(ValueError):
    """A stored curve value that cannot be read (corrupt, or from a newer release)."""


def _undiff(values: IntArray, order: int) -> IntArray:
    out = values
    for _ in range(order):
        out = np.cumsum(out)
    return out


def _varints(values: IntArray) -> bytes:
    """Zigzag LEB128: small magnitudes (either sign) in one byte, vectorised."""
    if values.size == 0:
        return b""
    u = ((values << 1) ^ (values >> 63)).astype(np.uint64)
    top = int(u.max())
    if top < 0x80:
        return u.astype(np.uint8).tobytes()
    if top < 0x4000:
        # The usual case (differences under 8192 steps): one or two bytes each.
        two = u >= 0x80
        out = np.empty((u.size, 2), dtype=np.uint8)
        out[:, 0] = (u & np.uint64(0x7F)) | (two.astype(np.uint64) << np.uint64(7))
        out[:, 1] = u >> np.uint64(7)
        keep = np.ones((u.size, 2), dtype=bool)
        keep[:, 1] = two
        return out[keep].tobytes()
    nbytes = np.ones(u.shape, dtype=np.int64)
    for shift in range(7, top.bit_length(), 7):
        nbytes += u >= np.uint64(1 << shift)
    owner = np.repeat(np.arange(u.size), nbytes)
    starts = np.cumsum(nbytes) - nbytes
    pos = np.arange(owner.size) - starts[owner]
    chunk = (u[owner] >> (np.uint64(7) * pos.astype(np.uint64))) & np.uint64(0x7F)
    more = (pos < nbytes[owner] - 1).astype(np.uint64) << np.uint64(7)
    return (chunk | more).astype(np.uint8).tobytes()


def _read_varints(data: bytes, offset: int, count: int) -> tuple[IntArray, int]:
    """`count` zigzag varints from `data` at `offset`; the values and the offset after them."""
    if count == 0:
        return np.zeros(0, dtype=np.int64), offset
    raw = np.frombuffer(data, dtype=np.uint8, offset=offset)
    ends = np.flatnonzero(raw < 0x80)
    if ends.size < count:
        raise CurveError("curve value ends inside its numbers")
    end = int(ends[count - 1]) + 1
    raw = raw[:end].astype(np.uint64)
    stops = ends[:count]
    starts = np.concatenate(([0], stops[:-1] + 1))
    lengths = stops - starts + 1
    if int(lengths.max()) > 10:
        raise CurveError("curve value holds a number longer than 64 bits")
    pos = np.arange(end) - np.repeat(starts, lengths)
    parts = (raw & np.uint64(0x7F)) << (np.uint64(7) * pos.astype(np.uint64))
    u = np.add.reduceat(parts, starts)
    values = (u >> np.uint64(1)).astype(np.int64) ^ -((u & np.uint64(1)).astype(np.int64))
    return values, offset + end


def _columns(
    samples: Sequence[FlowSample],
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """The samples as four columns (NaN: no conductivity). A sample without a finite time, or
    not later than the samples before it, is dropped; a non-finite yield keeps the one before
    (0 at the start), a non-finite flow is 0 and a non-finite conductivity is none."""
    nan = math.nan
    e = np.array([s.elapsed_s for s in samples], dtype=np.float64)
    y = np.array([s.yield_l for s in samples], dtype=np.float64)
    f = np.array([s.flow_l_min for s in samples], dtype=np.float64)
    c = np.array(
        [nan if s.conductivity_ms_cm is None else s.conductivity_ms_cm for s in samples],
        dtype=np.float64,
    )
    if e.size:
        # Time only moves forward: a sample not later than every one before it is a replay.
        before = np.fmax.accumulate(np.concatenate(([-np.inf], e[:-1])))
        keep = np.isfinite(e) & (e > before)
        if not keep.all():
            e, y, f, c = e[keep], y[keep], f[keep], c[keep]
    bad = ~np.isfinite(y)
    if bad.any():
        idx = np.where(bad, 0, np.arange(y.size))
        np.maximum.accumulate(idx, out=idx)
        y = np.where(np.isfinite(y[idx]), y[idx], 0.0)
    if not np.isfinite(f).all():
        f = np.where(np.isfinite(f), f, 0.0)
    if np.isinf(c).any():
        c = np.where(np.isinf(c), nan, c)
    return e, y, f, c


def pack_curve(samples: Sequence[FlowSample]) -> bytes:
    """The packed value of a curve (samples in time order, as recorded; one not later than the
    samples before it is left out)."""
    return pack_counted(samples)[0]


def _fixed(values: FloatArray, step: float) -> IntArray:
    return np.clip(np.rint(values / step), -_LIMIT, _LIMIT).astype(np.int64)


def _delta(values: IntArray) -> IntArray:
    """First differences, the first value kept (what `np.cumsum` undoes)."""
    out = values.copy()
    np.subtract(values[1:], values[:-1], out=out[1:])
    return out


def pack_counted(samples: Sequence[FlowSample]) -> tuple[bytes, int]:
    """`pack_curve`, and how many samples the value holds."""
    e, y, f, c = _columns(samples)
    n = e.size
    present = ~np.isnan(c)
    has_ec, all_ec = bool(present.any()), bool(present.all())
    flags = (_HAS_EC if has_ec else 0) | (0 if all_ec else _SOME_EC_MISSING)
    parts = [
        np.asarray([n], dtype=np.int64),
        _delta(_delta(_fixed(e, ELAPSED_STEP_S))),
        _delta(_delta(_fixed(y, YIELD_STEP_L))),
        _delta(_fixed(f, FLOW_STEP_L_MIN)),
    ]
    if has_ec:
        ec = c if all_ec else c[present]
        parts.append(_delta(_fixed(ec, CONDUCTIVITY_STEP_MS_CM)))
    numbers = _varints(np.concatenate(parts))
    bitmap = np.packbits(present).tobytes() if has_ec and not all_ec else b""
    # The bitmap goes after the count, so a reader knows how many conductivities follow.
    count = _varints(parts[0])
    body = count + bitmap + numbers[len(count) :]
    return bytes((FORMAT_VERSION, flags)) + zlib.compress(body, _ZLIB_LEVEL), n


def unpack_curve(data: bytes) -> list[FlowSample]:
    """The samples of a packed curve, in time order (`CurveError` when it cannot be read)."""
    if len(data) < 2:
        raise CurveError("curve value is too short")
    version, flags = data[0], data[1]
    if version != FORMAT_VERSION:
        raise CurveError(
            f"curve value has format {version}; this version reads format {FORMAT_VERSION}"
        )
    try:
        body = zlib.decompress(data[2:])
    except zlib.error as exc:
        raise CurveError(f"curve value is corrupt: {exc}") from exc
    (n_arr, at) = _read_varints(body, 0, 1)
    n = int(n_arr[0])
    if n < 0 or n > len(body) * 8:
        raise CurveError(f"curve value claims {n} samples")
    present: npt.NDArray[np.bool_] = np.ones(n, dtype=bool)
    if not flags & _HAS_EC:
        present = np.zeros(n, dtype=bool)
    elif flags & _SOME_EC_MISSING:
        size = (n + 7) // 8
        bits = np.frombuffer(body, dtype=np.uint8, count=size, offset=at)
        present = np.unpackbits(bits)[:n].astype(bool)
        at += size
    elapsed, at = _read_varints(body, at, n)
    yields, at = _read_varints(body, at, n)
    flows, at = _read_varints(body, at, n)
    m = int(present.sum())
    ecs, at = _read_varints(body, at, m) if flags & _HAS_EC else (np.zeros(0, np.int64), at)
    if at != len(body):
        raise CurveError("curve value has bytes left over")
    e = (_undiff(elapsed, 2) * ELAPSED_STEP_S).round(2).tolist()
    y = (_undiff(yields, 2) * YIELD_STEP_L).round(3).tolist()
    f = (_undiff(flows, 1) * FLOW_STEP_L_MIN).round(2).tolist()
    c_present = (_undiff(ecs, 1) * CONDUCTIVITY_STEP_MS_CM).round(2).tolist()
    c: list[float | None] = [None] * n
    for i, value in zip(np.flatnonzero(present).tolist(), c_present, strict=True):
        c[i] = value
    return [FlowSample(e[i], y[i], f[i], c[i]) for i in range(n)]


def thin_curve(samples: Sequence[FlowSample], interval_s: float) -> list[FlowSample]:
    """The curve with at most one sample per `interval_s` (the first at or after each step of
    the grid), its first and last sample always kept: an old milking's chart, smaller."""
    if interval_s <= 0 or len(samples) <= 2:
        return list(samples)
    out = [samples[0]]
    next_at = samples[0].elapsed_s + interval_s
    for s in samples[1:-1]:
        if s.elapsed_s >= next_at - 1e-9:
            out.append(s)
            next_at = samples[0].elapsed_s + interval_s * (
                math.floor((s.elapsed_s - samples[0].elapsed_s) / interval_s + 1e-9) + 1
            )
    out.append(samples[-1])
    return out


__all__ = [
    "FORMAT_VERSION",
    "CurveError",
    "pack_counted",
    "pack_curve",
    "thin_curve",
    "unpack_curve",
]
