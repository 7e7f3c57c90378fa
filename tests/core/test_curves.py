"""The packed flow curve: what goes in comes back at the stated resolution, small, and a value
that cannot be read says so."""

from __future__ import annotations

import itertools
import math
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from milkconsole.meters.events import FlowSample
from milkconsole.store.curves import (
    CONDUCTIVITY_STEP_MS_CM,
    ELAPSED_STEP_S,
    FLOW_STEP_L_MIN,
    YIELD_STEP_L,
    CurveError,
    pack_counted,
    pack_curve,
    thin_curve,
    unpack_curve,
)


def milking(n: int = 180, *, ec: bool = True) -> list[FlowSample]:
    """A six-minute milking as a meter gives it: 2 s apart, a let-down, a plateau, a decline."""
    out = []
    y = 0.0
    for i in range(n):
        t = i * 2.0 + (0.013 * i) % 0.05
        f = min(3.6, 0.09 * t) if t < 250 else max(0.2, 3.6 - (t - 250) * 0.03)
        f = round(f + 0.04 * math.sin(i * 1.7), 2)
        y += f * 2.0 / 60.0
        c = round(5.2 + 0.4 * math.exp(-t / 40.0) + 0.03 * math.cos(i), 2) if ec else None
        out.append(FlowSample(round(t, 3), round(y, 2), f, c))
    return out


def close(a: FlowSample, b: FlowSample) -> bool:
    def near(x: float | None, y: float | None, step: float) -> bool:
        if x is None or y is None:
            return x is y
        return abs(x - y) <= step / 2 + 1e-9

    return (
        near(a.elapsed_s, b.elapsed_s, ELAPSED_STEP_S)
        and near(a.yield_l, b.yield_l, YIELD_STEP_L)
        and near(a.flow_l_min, b.flow_l_min, FLOW_STEP_L_MIN)
        and near(a.conductivity_ms_cm, b.conductivity_ms_cm, CONDUCTIVITY_STEP_MS_CM)
    )


def test_a_six_minute_milking_packs_small_and_comes_back_sample_for_sample() -> None:
    curve = milking()
    data = pack_curve(curve)
    # 180 samples were 21 KB as rows; packed they fit well inside the 2.5 KB a session may take.
    assert len(data) < 800
    back = unpack_curve(data)
    assert len(back) == len(curve)
    assert all(close(a, b) for a, b in zip(curve, back, strict=True))
    # Values a meter gives (0.01 steps) come back exactly.
    assert [s.flow_l_min for s in back] == [s.flow_l_min for s in curve]
    assert [s.conductivity_ms_cm for s in back] == [s.conductivity_ms_cm for s in curve]


def test_conductivity_missing_for_some_or_all_samples_stays_missing() -> None:
    curve = milking(40)
    some = [
        s if i % 3 else FlowSample(s.elapsed_s, s.yield_l, s.flow_l_min)
        for i, s in enumerate(curve)
    ]
    back = unpack_curve(pack_curve(some))
    assert [s.conductivity_ms_cm is None for s in back] == [i % 3 == 0 for i in range(40)]
    assert all(close(a, b) for a, b in zip(some, back, strict=True))
    none = milking(40, ec=False)
    assert [s.conductivity_ms_cm for s in unpack_curve(pack_curve(none))] == [None] * 40


def test_an_empty_curve_and_a_single_sample_round_trip() -> None:
    assert unpack_curve(pack_curve([])) == []
    one = [FlowSample(0.0, 0.0, 0.0, 5.5)]
    assert unpack_curve(pack_curve(one)) == one


def test_a_replayed_or_backwards_sample_is_left_out_and_counted_out() -> None:
    curve = milking(10)
    replayed = curve[:6] + curve[4:]  # a checkpoint written twice
    data, n = pack_counted(replayed)
    assert n == 10
    back = unpack_curve(data)
    assert len(back) == 10 and all(close(a, b) for a, b in zip(curve, back, strict=True))


def test_numbers_a_broken_meter_gives_do_not_break_the_curve() -> None:
    nan, inf = float("nan"), float("inf")
    samples = [
        FlowSample(0.0, 0.0, 0.0, 5.0),
        FlowSample(2.0, 0.1, 3.0, nan),
        FlowSample(4.0, nan, inf, inf),
        FlowSample(nan, 1.0, 1.0, 1.0),  # no time: dropped
        FlowSample(6.0, 0.3, 3.1, 5.1),
    ]
    back = unpack_curve(pack_curve(samples))
    assert [s.elapsed_s for s in back] == [0.0, 2.0, 4.0, 6.0]
    assert back[1].conductivity_ms_cm is None and back[2].conductivity_ms_cm is None
    assert back[2].yield_l == 0.1  # the yield before it
    assert back[2].flow_l_min == 0.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0.001, 30.0),
            st.floats(0.0, 2.0),
            st.floats(0.0, 15.0),
            st.one_of(st.none(), st.floats(0.0, 20.0)),
        ),
        max_size=300,
    )
)
def test_any_curve_comes_back_at_the_stated_resolution(steps: list[tuple]) -> None:  # type: ignore[type-arg]
    t = y = 0.0
    curve = []
    for dt, dy, f, c in steps:
        t += dt
        y += dy
        curve.append(FlowSample(t, y, f, c))
    back = unpack_curve(pack_curve(curve))
    assert len(back) == len(curve)
    assert all(close(a, b) for a, b in zip(curve, back, strict=True))


def test_a_damaged_value_or_one_from_a_newer_release_raises_curve_error() -> None:
    data = pack_curve(milking(20))
    with pytest.raises(CurveError, match="format 9"):
        unpack_curve(bytes([9]) + data[1:])
    with pytest.raises(CurveError, match="corrupt"):
        unpack_curve(data[:2] + b"not zlib at all")
    with pytest.raises(CurveError, match="too short"):
        unpack_curve(b"\x01")
    # Well-formed zlib holding too few numbers for the count it claims.
    with pytest.raises(CurveError):
        unpack_curve(data[:2] + zlib.compress(b"\x28\x02\x04"))


def test_thinning_keeps_one_sample_per_interval_and_the_ends() -> None:
    curve = milking(180)
    thin = thin_curve(curve, 10.0)
    assert thin[0] == curve[0] and thin[-1] == curve[-1]
    gaps = [b.elapsed_s - a.elapsed_s for a, b in itertools.pairwise(thin[:-1])]
    assert all(9.9 <= g < 12.1 for g in gaps)
    assert 34 <= len(thin) <= 38
    assert len(pack_curve(thin)) < 0.6 * len(pack_curve(curve))
