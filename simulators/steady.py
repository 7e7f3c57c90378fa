"""A steady parlour for benchmarks: every stall milks cow after cow on the same fixed cycle.

`ParlourScenario` is a day in a parlour: groups of cows come and go at random, so how much work
the console has drifts from minute to minute, and two benchmark runs a minute apart do not get
the same work. `SteadyMilking` is the opposite. Each meter milks one cow after another on a
fixed cycle: `milk_s` with the cluster on (the same flow curve every time), then `gap_s` with
it off and the final yield held while the next cow walks in. The meters' cycles are spread
evenly over the cycle (neighbouring stalls, which share a gateway, far apart), so at every
moment the same number of stalls is milking, give or take one, and finished cows come at an
even rate, on every bus alike. A meter's registers are a function of the time since `start()`
only: two runs of a benchmark see the same work, whenever they start.

`python -m simulators.steady --config parlour.toml` serves a parlour config's meters this way
until SIGTERM / Ctrl-C (TCP and RTU buses alike, through `SimulatedParlour`); it prints one line
per meter first, as `python -m simulators.cli` does.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

from milkconsole.config import load_config
from milkconsole.errors import ConfigError
from milkconsole.meters.decode import Value
from simulators.meter import ISO_COUNTRY_DEFAULT, SimulatedMeter, fdx_b_code
from simulators.parlour import TAKE_OFF_FLOW_L_MIN, FlowCurve

# Herd numbers cycle through this many cows, so a tag comes back only after many cycles.
HERD_SIZE = 10_000
NATIONAL_BASE = 250_000_000_000


@dataclass(frozen=True, slots=True)
class SteadyCycle:
    """One stall's cycle, in wall seconds: `milk_s` milking (ramp up over `ramp_s` to
    `peak_flow_l_min`, plateau, decline over `decline_s` to the take-off flow), then `gap_s`
    with the cluster off. The defaults give about 6 L a cow at realistic flows, and a finished
    cow every 1.6 s across 80 stalls (a real 80-stall parlour: one every 7-8 s)."""

    milk_s: float = 120.0
    gap_s: float = 8.0
    peak_flow_l_min: float = 3.5
    ramp_s: float = 20.0
    decline_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("milk_s", "gap_s", "peak_flow_l_min", "ramp_s", "decline_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SteadyCycle.{name} must be above 0, not {getattr(self, name)}")
        if self.ramp_s + self.decline_s >= self.milk_s:
            raise ValueError(
                f"SteadyCycle: ramp_s + decline_s ({self.ramp_s + self.decline_s:g}) must be"
                f" below milk_s ({self.milk_s:g}): the curve needs a plateau"
            )
        if self.peak_flow_l_min <= TAKE_OFF_FLOW_L_MIN:
            raise ValueError(
                f"SteadyCycle.peak_flow_l_min must be above the take-off flow"
                f" {TAKE_OFF_FLOW_L_MIN}, not {self.peak_flow_l_min}"
            )

    @classmethod
    def of(cls, milk_s: float, gap_s: float) -> SteadyCycle:
        """A cycle of `milk_s` + `gap_s` with the default curve's shape: let-down over the
        first sixth of the milking, decline over the last quarter."""
        return cls(milk_s=milk_s, gap_s=gap_s, ramp_s=milk_s / 6, decline_s=milk_s / 4)

    @property
    def period_s(self) -> float:
        return self.milk_s + self.gap_s

    @property
    def curve(self) -> FlowCurve:
        plateau = self.milk_s - self.ramp_s - self.decline_s
        return FlowCurve(self.ramp_s, plateau, self.decline_s, self.peak_flow_l_min)


@dataclass(frozen=True, slots=True)
class StallState:
    """What one meter is doing at a moment: its `cycle`-th cow since `start()` (counted from 0:
    at start every meter is already part-way through its first cow's cycle, so the parlour is
    steady from the first second), milking or with the cluster off, and its counters (yield
    held at the final value while the cluster is off)."""

    milking: bool
    cycle: int
    elapsed_s: float  # since this cow's cluster went on
    yield_l: float
    flow_l_min: float


def spread_slots(n: int) -> list[int]:
    """A slot 0..n-1 for each of `n` meters in stall order, each slot used once, neighbours far
    apart (a stride near n / golden ratio, coprime to n), so the eight meters of one gateway do
    not all finish their cows in the same second."""
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    target = n / ((1 + math.sqrt(5)) / 2)
    stride = min(
        (k for k in range(1, n + 1) if math.gcd(k, n) == 1),
        key=lambda k: (abs(k - target), k),
    )
    return [(i * stride) % n for i in range(n)]


class SteadyMilking:
    """Drives `meters` on the steady cycle (see the module docstring) from a thread of its own.

    `state(i, t)` and `values(i, t)` are what meter `i` (in stall order) shows `t` seconds
    after `start()`; the thread writes them every `tick_s`. Cow qualities (conductivity, fat,
    ...) are fixed per cow and written once when her cluster goes on.
    """

    def __init__(
        self,
        meters: Sequence[SimulatedMeter],
        cycle: SteadyCycle | None = None,
        *,
        tick_s: float = 0.1,
        country: int = ISO_COUNTRY_DEFAULT,
    ) -> None:
        if not meters:
            raise ValueError("steady milking needs at least one meter")
        if not tick_s > 0:
            raise ValueError(f"tick_s must be above 0, not {tick_s}")
        self.meters = sorted(meters, key=lambda m: m.stall)
        self.cycle = cycle or SteadyCycle()
        self.tick_s = tick_s
        self.country = country
        self._curve = self.cycle.curve
        period = self.cycle.period_s
        n = len(self.meters)
        # Meter i is `offset` seconds into its cycle at start: its slot's share of the period.
        self._offsets = [slot * period / n for slot in spread_slots(n)]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._shown: list[tuple[bool, int] | None] = [None] * n

    # -- what each meter shows (pure) -------------------------------------------------------
    def state(self, i: int, t: float) -> StallState:
        """Meter `i` (stall order) at `t` seconds after start."""
        if t < 0:
            raise ValueError(f"t must be 0 or more (seconds since start), not {t}")
        period = self.cycle.period_s
        shifted = t + self._offsets[i]
        cycle = math.floor(shifted / period)
        elapsed = shifted - cycle * period
        if elapsed < self.cycle.milk_s:
            return StallState(
                True,
                cycle,
                elapsed,
                self._curve.yield_at(elapsed),
                self._curve.flow_at(elapsed),
            )
        return StallState(False, cycle, elapsed, self._curve.total_l, 0.0)

    def cow(self, i: int, cycle: int) -> int:
        """Herd index of meter `i`'s `cycle`-th cow (every meter gets cows of its own)."""
        return (i + len(self.meters) * cycle) % HERD_SIZE

    def values(self, i: int, t: float) -> dict[str, Value | None]:
        """Every register value meter `i` shows at `t` (fields its profile lacks are ignored
        by `SimulatedMeter.set_values`)."""
        st = self.state(i, t)
        return self._counters(st) | self._cow_values(i, st.cycle)

    def milking_count(self, t: float) -> int:
        return sum(self.state(i, t).milking for i in range(len(self.meters)))

    def _counters(self, st: StallState) -> dict[str, Value | None]:
        return {
            "yield_l": st.yield_l,
            "flow_l_min": st.flow_l_min,
            "session_time_s": int(min(st.elapsed_s, self.cycle.milk_s)),
            "status": 1 if st.milking else 0,
        }

    def _cow_values(self, i: int, cycle: int) -> dict[str, Value | None]:
        meter = self.meters[i]
        k = self.cow(i, cycle)
        # Small fixed differences between cows, the same every run (no random source).
        d = ((k * 2654435761) % 1000) / 1000.0 - 0.5
        cond = 5.2 + 0.4 * d
        return {
            "rfid": meter.tag_for(fdx_b_code(self.country, NATIONAL_BASE + k), 1000 + k),
            "conductivity_ms_cm": cond,
            "ec_lf_ms_cm": cond - 0.05,
            "ec_rf_ms_cm": cond + 0.05,
            "ec_lr_ms_cm": cond - 0.02,
            "ec_rr_ms_cm": cond + 0.02,
            "temperature_c": 37.2 + 0.4 * d,
            "fat_pct": 4.0 + 0.6 * d,
            "protein_pct": 3.3 + 0.3 * d,
            "lactose_pct": 4.8 + 0.2 * d,
            "scc_cells_ml": 150_000 + int(100_000 * d),
            "blood": False,
        }

    # -- running ------------------------------------------------------------------------------
    @property
    def elapsed_s(self) -> float:
        """Seconds since `start()` (0 before)."""
        return 0.0 if not self._t0 else time.monotonic() - self._t0

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("steady milking already started")
        self._t0 = time.monotonic()
        self.write(0.0)
        self._thread = threading.Thread(target=self._run, name="steady-milking", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def write(self, t: float) -> None:
        """Bring every meter's registers to `t` seconds after start. The cow's tag and
        qualities are written only when a meter's cow or cluster changes (cheap: the counters
        are all that moves)."""
        for i, meter in enumerate(self.meters):
            st = self.state(i, t)
            values = self._counters(st)
            if self._shown[i] != (st.milking, st.cycle):
                self._shown[i] = (st.milking, st.cycle)
                values.update(self._cow_values(i, st.cycle))
            meter.set_values(**values)

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.write(time.monotonic() - self._t0)
            next_t += self.tick_s
            now = time.monotonic()
            if next_t < now:  # held up: carry on from now rather than catch up in a burst
                next_t = now
            self._stop.wait(next_t - now)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m simulators.steady --config parlour.toml [--milk-s S --gap-s S]`: serve the
    config's meters milking steadily until SIGTERM / Ctrl-C (exit 2 on a config error)."""
    from simulators.demo import SimulatedParlour

    parser = argparse.ArgumentParser(
        prog="python -m simulators.steady",
        description="Serve a parlour's meters, every stall milking cow after cow on a fixed cycle.",
    )
    defaults = SteadyCycle()
    parser.add_argument("--config", type=Path, required=True, help="parlour config file")
    parser.add_argument("--milk-s", type=float, default=defaults.milk_s, help="cluster on, s")
    parser.add_argument("--gap-s", type=float, default=defaults.gap_s, help="cluster off, s")
    parser.add_argument("--tick-s", type=float, default=0.1, help="register update interval")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        cycle = SteadyCycle.of(args.milk_s, args.gap_s)
    except (ConfigError, ValueError) as exc:
        print(f"steady: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    # No cows for the scenario: the servers and meters only; SteadyMilking drives them.
    parlour = SimulatedParlour(config, cows=0, seed=1, time_scale=1.0).start(scenario=False)
    try:
        for line in parlour.describe():
            print(line, flush=True)
        with SteadyMilking(list(parlour.meters.values()), cycle, tick_s=args.tick_s) as driver:
            print(
                f"steady: {len(driver.meters)} stalls, {cycle.milk_s:g} s milking +"
                f" {cycle.gap_s:g} s change-over per cow; Ctrl-C stops",
                flush=True,
            )
            while not stop.wait(0.5):
                pass
    finally:
        parlour.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
