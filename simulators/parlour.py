"""The parlour scenario engine: a herd milked group by group through simulated meters.

`ParlourScenario` plans every milking up front from its seed (which cow, which stall, when, the
flow curve, quality values, faults) in simulated seconds, then plays the plan in a thread,
writing each meter's registers every ~20 ms of wall time. `time_scale` simulated seconds pass
per wall second, so a 6-minute milking takes 6 wall seconds at 60x.

The plan knows what a correct console must record: `scenario.truth` lists each finished milking
(`MilkingTruth`) with the yield exactly as the meter's float32 register shows it at take-off
(plus the pre-reboot count when the meter rebooted mid-milking). Fault durations in `FaultPlan`
are in wall seconds, because the console's timeouts are.

A cow can be made sick (`sick_cows=` or `make_sick`): her left-front quarter's conductivity is
multiplied by a factor and her cow-level conductivity rises by a quarter of that quarter's rise
(the meter sees the four quarters' milk mixed), as in clinical mastitis of one quarter. Sickness
changes only the conductivity registers while she is milked, never the plan or the truth.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from milkconsole.meters.decode import Value
from simulators.meter import ISO_COUNTRY_DEFAULT, SimulatedMeter, fdx_b_code

log = logging.getLogger(__name__)

_M64 = (1 << 64) - 1

# Ranges the plan draws from; tests check the plan against the same numbers.
YIELD_RANGE_L = (6.0, 20.0)
DURATION_RANGE_S = (240.0, 600.0)
PEAK_FLOW_RANGE_L_MIN = (2.0, 5.0)
RAMP_RANGE_S = (30.0, 60.0)
TAKE_OFF_FLOW_L_MIN = 0.15  # the cluster comes off once flow falls below 0.2 L/min
CONDUCTIVITY_RANGE_MS_CM = (4.5, 6.0)  # a healthy cow's; a sick cow's goes above
SICK_QUARTER = 0  # LF: the quarter a sick cow's mastitis is in
TEMPERATURE_RANGE_C = (35.0, 38.0)
# Cows with usual yields (`cow_yield_cv`): the usual yields, and the totals a milking may have.
USUAL_YIELD_RANGE_L = (9.0, 17.0)
PLANNED_TOTAL_RANGE_L = (8.0, 19.0)


def _mix64(x: int) -> int:
    """splitmix64 finaliser: a cheap, seedable, thread-free source of noise."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _noise(seed: int, k: int, channel: int) -> float:
    """Deterministic noise in [-1, 1) for sample `k` of `channel`."""
    return _mix64((seed * 1_000_003 + k) * 64 + channel) / (1 << 63) - 1.0


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


@dataclass(frozen=True, slots=True)
class FlowCurve:
    """A milking's flow: linear let-down ramp to the peak, plateau, linear decline to the
    take-off flow. Times in seconds from cluster attach, flow in L/min, yield in L."""

    ramp_s: float
    plateau_s: float
    decline_s: float
    peak_flow_l_min: float
    end_flow_l_min: float = TAKE_OFF_FLOW_L_MIN

    @property
    def duration_s(self) -> float:
        return self.ramp_s + self.plateau_s + self.decline_s

    @property
    def total_l(self) -> float:
        p, e = self.peak_flow_l_min, self.end_flow_l_min
        return (p * self.ramp_s / 2 + p * self.plateau_s + (p + e) * self.decline_s / 2) / 60.0

    def flow_at(self, t_s: float) -> float:
        if t_s < 0 or t_s >= self.duration_s:
            return 0.0
        p = self.peak_flow_l_min
        if t_s < self.ramp_s:
            return p * t_s / self.ramp_s
        u = t_s - self.ramp_s - self.plateau_s
        if u < 0:
            return p
        return p - (p - self.end_flow_l_min) * u / self.decline_s

    def yield_at(self, t_s: float) -> float:
        """Litres milked from attach to `t_s` (the integral of `flow_at`)."""
        if t_s <= 0:
            return 0.0
        if t_s >= self.duration_s:
            return self.total_l
        p, r = self.peak_flow_l_min, self.ramp_s
        if t_s < r:
            return p * t_s * t_s / (2 * r) / 60.0
        u = t_s - r - self.plateau_s
        if u < 0:
            return (p * r / 2 + p * (t_s - r)) / 60.0
        slope = (p - self.end_flow_l_min) / self.decline_s
        return (p * r / 2 + p * self.plateau_s + p * u - slope * u * u / 2) / 60.0


def draw_flow_curve(rng: random.Random, total_l: float | None = None) -> FlowCurve:
    """A realistic curve: 6-20 L (or `total_l`) over 4-10 min, let-down 30-60 s, peak 2-5 L/min.
    A given total should be 8-19 L: every such total has curves within those ranges."""
    e = TAKE_OFF_FLOW_L_MIN
    while True:
        duration = rng.uniform(*DURATION_RANGE_S)
        ramp = rng.uniform(*RAMP_RANGE_S)
        decline = (duration - ramp) * rng.uniform(0.25, 0.5)
        plateau = duration - ramp - decline
        total = rng.uniform(*YIELD_RANGE_L) if total_l is None else total_l
        peak = (60.0 * total - e * decline / 2) / (ramp / 2 + plateau + decline / 2)
        if PEAK_FLOW_RANGE_L_MIN[0] <= peak <= PEAK_FLOW_RANGE_L_MIN[1]:
            return FlowCurve(ramp, plateau, decline, peak, e)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Which faults hit milkings, drawn per milking from `seed` (and the scenario's seed).

    At most one of timeout / crc / nan / reboot per milking (`*_prob` are the chances of each,
    summing to at most 1); a missed RFID read is drawn independently. Durations are wall
    seconds: `timeout_s` of silence, `nan_s` of a NaN in one float field, `crc_replies` corrupt
    RTU replies (TCP has no CRC, so it shows nothing there), and a reboot that first hangs the
    meter (registers frozen) for `reboot_hold_s`, is silent for `reboot_s`, then counts from 0.
    The hang lets a console that polls faster than `reboot_hold_s` see the last count, so the
    truth is knowable. Every silence stays under `max_silence_s`; a fault that does not fit
    inside a milking at the scenario's time scale is left out (the truth lists what applied).
    Silences are checked against `max_silence_s` only for faults that can happen.
    """

    seed: int = 0
    timeout_prob: float = 0.0
    timeout_s: float = 1.0
    crc_prob: float = 0.0
    crc_replies: int = 2
    nan_prob: float = 0.0
    nan_s: float = 1.0
    missed_rfid_prob: float = 0.0
    reboot_prob: float = 0.0
    reboot_s: float = 1.0
    reboot_hold_s: float = 1.5
    max_silence_s: float = 3.0

    def __post_init__(self) -> None:
        probs = {
            "timeout_prob": self.timeout_prob,
            "crc_prob": self.crc_prob,
            "nan_prob": self.nan_prob,
            "reboot_prob": self.reboot_prob,
            "missed_rfid_prob": self.missed_rfid_prob,
        }
        for name, p in probs.items():
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"FaultPlan.{name} must be 0-1, not {p}")
        exclusive = self.timeout_prob + self.crc_prob + self.nan_prob + self.reboot_prob
        if exclusive > 1.0 + 1e-9:
            raise ValueError(
                f"FaultPlan: timeout_prob + crc_prob + nan_prob + reboot_prob is {exclusive:g};"
                " at most one of them hits a milking, so they must sum to at most 1"
            )
        for name in ("timeout_s", "nan_s", "reboot_s", "reboot_hold_s", "max_silence_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"FaultPlan.{name} must be above 0, not {getattr(self, name)}")
        for name, prob in (("timeout_s", self.timeout_prob), ("reboot_s", self.reboot_prob)):
            if prob > 0 and getattr(self, name) >= self.max_silence_s:
                raise ValueError(
                    f"FaultPlan.{name} {getattr(self, name)} must be below max_silence_s"
                    f" {self.max_silence_s} so a correct console keeps the session"
                )
        if self.crc_replies < 1:
            raise ValueError(f"FaultPlan.crc_replies must be at least 1, not {self.crc_replies}")

    @classmethod
    def typical(cls, seed: int = 0) -> FaultPlan:
        """A bad day in the parlour: a fault in about one milking in three."""
        return cls(
            seed=seed,
            timeout_prob=0.08,
            crc_prob=0.08,
            nan_prob=0.08,
            reboot_prob=0.05,
            missed_rfid_prob=0.05,
        )


@dataclass(frozen=True, slots=True)
class Cow:
    """One cow of the herd, with what stays the same from milking to milking."""

    index: int
    herd_number: int
    fdx_code: int  # ISO 11784 FDX-B, country + national id
    conductivity_ms_cm: float
    quarter_offsets_ms_cm: tuple[float, float, float, float]  # LF, RF, LR, RR
    temperature_c: float
    fat_pct: float
    protein_pct: float
    lactose_pct: float
    scc_cells_ml: int


@dataclass(frozen=True, slots=True)
class PlannedMilking:
    """One milking as planned, times in simulated seconds since the scenario started.

    `yield_l` is what the console must record (meter float32, error applied, pre-reboot count
    added), `actual_yield_l` the milk that really flowed. Fault windows are absolute simulated
    times: `timeout` (start, end), `nan` (field, start, end), `crc` (at, replies), `reboot`
    (hang start, silence start, silence end).
    """

    index: int
    meter_id: str
    stall: int
    side: int
    group: int
    cow_index: int
    tag: str | int | None
    rfid: str | None
    attach_s: float
    curve: FlowCurve
    yield_l: float
    actual_yield_l: float
    peak_flow_l_min: float
    blood: bool
    faults: tuple[str, ...] = ()
    timeout: tuple[float, float] | None = None
    nan: tuple[str, float, float] | None = None
    crc: tuple[float, int] | None = None
    reboot: tuple[float, float, float] | None = None
    pre_reboot_l: float | None = None

    @property
    def takeoff_s(self) -> float:
        return self.attach_s + self.curve.duration_s

    @property
    def rebooted(self) -> bool:
        return self.reboot is not None

    def counter_l(self, t_s: float) -> float:
        """The meter's own yield counter (before error) at simulated time `t_s`: milk since
        attach, or since the meter came back from a reboot."""
        rel = self.curve.duration_s if t_s >= self.takeoff_s else t_s - self.attach_s
        y = self.curve.yield_at(rel)
        if self.reboot is not None and t_s >= self.reboot[2]:
            return y - self.curve.yield_at(self.reboot[2] - self.attach_s)
        return y


@dataclass(frozen=True, slots=True)
class MilkingTruth:
    """A finished milking as a correct console must record it.

    `rfid` is the tag as the meter shows it (None when the read was missed); `yield_l` the final
    value the meter reported (with a reboot, the sum of its counts before and after);
    `started_at`/`ended_at` the UTC wall times the cluster went on and came off.
    """

    meter_id: str
    stall: int
    cow_index: int
    rfid: str | None
    started_at: datetime
    ended_at: datetime
    yield_l: float
    rebooted: bool
    peak_flow_l_min: float
    actual_yield_l: float
    faults: tuple[str, ...] = ()


@dataclass(slots=True)
class _MeterRun:
    """Play state of one meter (scenario thread only)."""

    meter: SimulatedMeter
    milkings: list[PlannedMilking]
    idx: int = 0
    attached: bool = False
    started_at: datetime | None = None
    silent: bool = False
    nan_on: bool = False
    crc_done: bool = False
    hung: bool = False
    rebooting: bool = False


class ParlourScenario:
    """Cows milked through `meters` in groups, herringbone style.

    Meters are split by stall into sides of `group_size` stalls (default: two sides). A group
    of cows walks into a side, clusters go on one stall after another, the group leaves when
    its slowest cow is done, and the next group enters `gap_s` simulated seconds later. Both
    sides draw cows from one queue. Everything is planned from `seed` at construction.

    `sick_cows` maps a cow's index to the factor on her sick quarter's conductivity (see the
    module docstring; e.g. 1.5 for a clinical case); `make_sick` adds one while it runs.

    `rounds` milks the herd that many times (a new order each time, so cows rotate through the
    stalls; a round starts `gap_s` after the last cow of the one before). With `cow_yield_cv`
    each cow has her usual yield (`usual_yield_l`, 9-17 L) and each milking gives it times
    (1 + cow_yield_cv x a standard normal draw), as real cows do from one milking to the next;
    without it every milking's yield is drawn afresh from YIELD_RANGE_L.
    """

    def __init__(
        self,
        meters: list[SimulatedMeter],
        *,
        cows: int,
        seed: int,
        time_scale: float = 1.0,
        group_size: int | None = None,
        faults: FaultPlan | None = None,
        gap_s: float = 120.0,
        tick_s: float = 0.02,
        country: int = ISO_COUNTRY_DEFAULT,
        sick_cows: Mapping[int, float] | None = None,
        rounds: int = 1,
        cow_yield_cv: float | None = None,
    ) -> None:
        if rounds < 1:
            raise ValueError(f"rounds must be at least 1, not {rounds}")
        if cow_yield_cv is not None and not 0.0 <= cow_yield_cv <= 0.2:
            raise ValueError(f"cow_yield_cv must be 0 to 0.2, not {cow_yield_cv}")
        if not meters:
            raise ValueError("a scenario needs at least one meter")
        stalls = [m.stall for m in meters]
        if len(set(stalls)) != len(stalls):
            raise ValueError(f"two meters share a stall: {sorted(stalls)}")
        if cows < 0:
            raise ValueError(f"cows must be 0 or more, not {cows}")
        if not time_scale > 0:
            raise ValueError(f"time_scale must be above 0, not {time_scale}")
        if group_size is not None and group_size < 1:
            raise ValueError(f"group_size must be at least 1, not {group_size}")
        self.meters = sorted(meters, key=lambda m: m.stall)
        self.cows = cows
        self.seed = seed
        self.time_scale = time_scale
        self.group_size = group_size or max(1, math.ceil(len(meters) / 2))
        self.faults = faults or FaultPlan()
        self.gap_s = gap_s
        self.tick_s = tick_s
        self.country = country
        # Noise changes at most ~4 times per wall second: enough to look alive, cheap to write.
        self.noise_period_s = max(2.0, 0.25 * time_scale)
        self.rounds = rounds
        self.cow_yield_cv = cow_yield_cv
        self.herd = self._make_herd()
        # Drawn apart from the herd so that asking for usual yields changes no other cow trait.
        urng = random.Random(self.seed * 31 + 17)
        self.usual_yield_l = [urng.uniform(*USUAL_YIELD_RANGE_L) for _ in range(cows)]
        self._sick: dict[int, float] = {}
        for cow_index, factor in (sick_cows or {}).items():
            self.make_sick(cow_index, factor)
        self.plan: tuple[PlannedMilking, ...] = tuple(self._make_plan())
        self._runs = [
            _MeterRun(m, [p for p in self.plan if p.meter_id == m.meter_id]) for m in self.meters
        ]
        self._truth: list[MilkingTruth] = []
        self._truth_lock = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        if not self.plan:
            self._done.set()

    # -- planning ------------------------------------------------------------------------------
    def _make_herd(self) -> list[Cow]:
        rng = random.Random(self.seed)
        national_base = rng.randrange(10**9, 10**11)
        herd = []
        for i in range(self.cows):
            herd.append(
                Cow(
                    index=i,
                    herd_number=1000 + i,
                    fdx_code=fdx_b_code(self.country, national_base + i),
                    conductivity_ms_cm=rng.uniform(4.7, 5.7),
                    quarter_offsets_ms_cm=(
                        rng.uniform(-0.15, 0.15),
                        rng.uniform(-0.15, 0.15),
                        rng.uniform(-0.15, 0.15),
                        rng.uniform(-0.15, 0.15),
                    ),
                    temperature_c=rng.uniform(36.8, 37.7),
                    fat_pct=rng.uniform(3.4, 4.6),
                    protein_pct=rng.uniform(3.0, 3.6),
                    lactose_pct=rng.uniform(4.6, 5.0),
                    scc_cells_ml=rng.randrange(40_000, 400_000),
                )
            )
        return herd

    def _make_plan(self) -> list[PlannedMilking]:
        rng = random.Random(self.seed * 2 + 1)
        frng = random.Random(self.seed * 7919 + self.faults.seed * 104729 + 3)
        sides = [
            self.meters[i : i + self.group_size]
            for i in range(0, len(self.meters), self.group_size)
        ]
        out: list[PlannedMilking] = []
        groups = [0] * len(sides)
        round_start = 0.0
        for _ in range(self.rounds):
            queue = list(range(self.cows))
            rng.shuffle(queue)
            next_entry = [round_start + 45.0 * s for s in range(len(sides))]
            while queue:
                s = min(range(len(sides)), key=lambda i: (next_entry[i], i))
                entry = next_entry[s]
                herd_in = queue[: len(sides[s])]
                del queue[: len(sides[s])]
                takeoffs = []
                for pos, (meter, cow_i) in enumerate(zip(sides[s], herd_in, strict=False)):
                    attach = entry + 20.0 + 12.0 * pos + rng.uniform(0.0, 6.0)
                    curve = draw_flow_curve(rng, self._total_for(cow_i, rng))
                    blood = rng.random() < 0.01
                    m = self._plan_one(
                        len(out), meter, self.herd[cow_i], s, groups[s], attach, curve, blood, frng
                    )
                    out.append(m)
                    takeoffs.append(m.takeoff_s)
                groups[s] += 1
                next_entry[s] = max(takeoffs) + self.gap_s
            round_start = max(next_entry)
        return out

    def _total_for(self, cow_i: int, rng: random.Random) -> float | None:
        """This milking's yield when cows have their usual yields (None: drawn afresh)."""
        if self.cow_yield_cv is None:
            return None
        factor = 1.0 + self.cow_yield_cv * rng.gauss(0.0, 1.0)
        return _clamp(self.usual_yield_l[cow_i] * factor, *PLANNED_TOTAL_RANGE_L)

    def _plan_one(
        self,
        index: int,
        meter: SimulatedMeter,
        cow: Cow,
        side: int,
        group: int,
        attach: float,
        curve: FlowCurve,
        blood: bool,
        frng: random.Random,
    ) -> PlannedMilking:
        fp = self.faults
        # Always draw the same numbers so that changing one probability moves no other fault.
        u_kind, u_pos, u_rfid, u_field = (frng.random() for _ in range(4))
        d = curve.duration_s
        scale = self.time_scale
        faults: list[str] = []
        timeout = nan = crc = reboot = None

        def window(length: float, margin: float) -> tuple[float, float] | None:
            lo, hi = attach + margin * d, attach + d - margin * d - length
            if hi < lo:
                return None
            start = lo + u_pos * (hi - lo)
            return start, start + length

        kinds = (
            ("timeout", fp.timeout_prob),
            ("crc", fp.crc_prob),
            ("nan", fp.nan_prob),
            ("reboot", fp.reboot_prob),
        )
        acc = 0.0
        kind = None
        for name, p in kinds:
            acc += p
            if u_kind < acc:
                kind = name
                break
        if kind == "timeout":
            timeout = window(fp.timeout_s * scale, 0.1)
            if timeout is not None:
                faults.append("timeout")
        elif kind == "crc":
            w = window(0.0, 0.2)
            if w is not None:
                crc = (w[0], fp.crc_replies)
                faults.append("crc")
        elif kind == "nan":
            floats = sorted(n for n, f in meter.profile.fields.items() if f.data_type == "float32")
            w = window(fp.nan_s * scale, 0.1)
            if floats and w is not None:
                name = floats[min(int(u_field * len(floats)), len(floats) - 1)]
                nan = (name, w[0], w[1])
                faults.append(f"nan:{name}")
        elif kind == "reboot":
            hold, silent = fp.reboot_hold_s * scale, fp.reboot_s * scale
            w = window(hold + silent, 0.15)
            if w is not None:
                reboot = (w[0], w[0] + hold, w[1])
                faults.append("reboot")
        tag = meter.tag_for(cow.fdx_code, cow.herd_number)
        if u_rfid < fp.missed_rfid_prob and tag is not None:
            tag = None
            faults.append("missed_rfid")
        rfid = None if tag is None else meter.shown("rfid", tag)
        draft = PlannedMilking(
            index=index,
            meter_id=meter.meter_id,
            stall=meter.stall,
            side=side,
            group=group,
            cow_index=cow.index,
            tag=tag,
            rfid=None if rfid is None else str(rfid),
            attach_s=attach,
            curve=curve,
            yield_l=0.0,
            actual_yield_l=curve.total_l,
            peak_flow_l_min=0.0,
            blood=blood,
            faults=tuple(faults),
            timeout=timeout,
            nan=nan,
            crc=crc,
            reboot=reboot,
        )
        final = _as_float(meter.shown("yield_l", draft.counter_l(draft.takeoff_s)))
        pre: float | None = None
        if reboot is not None:
            pre = _as_float(meter.shown("yield_l", draft.counter_l(reboot[0])))
            final += pre
        return dataclasses.replace(
            draft,
            yield_l=final,
            pre_reboot_l=pre,
            peak_flow_l_min=_as_float(meter.shown("flow_l_min", curve.peak_flow_l_min)),
        )

    # -- sickness ------------------------------------------------------------------------------
    def make_sick(self, cow_index: int, ec_factor: float) -> None:
        """From now on cow `cow_index` milks with her sick quarter's conductivity times
        `ec_factor` (> 1; 1 makes her healthy again). Safe while the scenario runs."""
        if not 0 <= cow_index < self.cows:
            raise ValueError(f"no cow {cow_index}: the herd has cows 0 to {self.cows - 1}")
        if not 1.0 <= ec_factor <= 3.0:
            raise ValueError(f"ec_factor must be 1 to 3, not {ec_factor}")
        sick = {k: v for k, v in self._sick.items() if k != cow_index}
        if ec_factor > 1.0:
            sick[cow_index] = ec_factor
        # Replaced whole, never changed in place: the scenario thread reads it without a lock.
        self._sick = sick

    @property
    def sick_cows(self) -> dict[int, float]:
        """Cow index -> conductivity factor of her sick quarter."""
        return dict(self._sick)

    # -- running -------------------------------------------------------------------------------
    @property
    def truth(self) -> list[MilkingTruth]:
        """Milkings finished so far, in the order their clusters came off."""
        with self._truth_lock:
            return list(self._truth)

    @property
    def done(self) -> bool:
        """Every cow has been milked."""
        return self._done.is_set()

    @property
    def sim_time_s(self) -> float:
        """Simulated seconds since `start()`."""
        return 0.0 if not self._t0 else (time.monotonic() - self._t0) * self.time_scale

    @property
    def duration_s(self) -> float:
        """Simulated seconds from start until the last cluster comes off."""
        return max((m.takeoff_s for m in self.plan), default=0.0)

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("scenario already started")
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="parlour-scenario", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for run in self._runs:
            if run.silent or run.rebooting:
                run.meter.set_silent(False)

    def wait_done(self, timeout: float | None = None) -> bool:
        """Block until every cow is milked (True) or `timeout` wall seconds pass (False)."""
        return self._done.wait(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:
            # A dead scenario thread would leave wait_done() hanging with no clue why.
            log.exception("parlour scenario stopped by an error")
            raise

    def _loop(self) -> None:
        while True:
            now = (time.monotonic() - self._t0) * self.time_scale
            finished = True
            for run in self._runs:
                self._play(run, now)
                finished = finished and run.idx >= len(run.milkings)
            if finished:
                self._done.set()
                return
            if self._stop.wait(self.tick_s):
                return

    def _play(self, run: _MeterRun, now: float) -> None:
        """Bring one meter's registers to simulated time `now` (may finish several milkings
        when the thread was held up)."""
        while run.idx < len(run.milkings):
            m = run.milkings[run.idx]
            if not run.attached:
                if now < m.attach_s:
                    return
                run.attached = True
                run.started_at = datetime.now(UTC)
                run.crc_done = False
                run.meter.set_values(rfid=m.tag, **self._values(run.meter, m, m.attach_s))
            if now >= m.takeoff_s:
                self._take_off(run, m)
                continue
            self._milk(run, m, now)
            return

    def _milk(self, run: _MeterRun, m: PlannedMilking, now: float) -> None:
        meter = run.meter
        if m.reboot is not None:
            hang, off, back = m.reboot
            if hang <= now < back:
                if not run.hung:
                    # Registers freeze at the last count the meter made.
                    run.hung = True
                    meter.set_values(**self._values(run.meter, m, hang))
                if now >= off and not run.rebooting:
                    run.rebooting = True
                    meter.set_silent(True)
                    meter.reset_counters()
                return
            if run.rebooting and now >= back:
                run.rebooting = False
                meter.set_silent(False)
        if m.timeout is not None:
            inside = m.timeout[0] <= now < m.timeout[1]
            if inside != run.silent:
                run.silent = inside
                meter.set_silent(inside)
        if m.crc is not None and not run.crc_done and now >= m.crc[0]:
            run.crc_done = True
            meter.corrupt_crc(m.crc[1])
        values = self._values(run.meter, m, now)
        if m.nan is not None:
            inside = m.nan[1] <= now < m.nan[2]
            if inside:
                values.pop(m.nan[0], None)
                if not run.nan_on:
                    meter.set_nan(m.nan[0])
            run.nan_on = inside
        meter.set_values(**values)

    def _take_off(self, run: _MeterRun, m: PlannedMilking) -> None:
        meter = run.meter
        if run.silent or run.rebooting:
            meter.set_silent(False)
        final = self._values(run.meter, m, m.takeoff_s)
        final.update(flow_l_min=0.0, status=0)
        meter.set_values(**final)
        started = run.started_at or datetime.now(UTC)
        truth = MilkingTruth(
            meter_id=m.meter_id,
            stall=m.stall,
            cow_index=m.cow_index,
            rfid=m.rfid,
            started_at=started,
            ended_at=datetime.now(UTC),
            yield_l=m.yield_l,
            rebooted=m.rebooted,
            peak_flow_l_min=m.peak_flow_l_min,
            actual_yield_l=m.actual_yield_l,
            faults=m.faults,
        )
        with self._truth_lock:
            self._truth.append(truth)
        run.idx += 1
        run.attached = run.silent = run.nan_on = run.hung = run.rebooting = False
        run.started_at = None

    def _values(
        self, meter: SimulatedMeter, m: PlannedMilking, t: float
    ) -> dict[str, Value | None]:
        """Every register value of milking `m` at simulated time `t` (status: milking)."""
        rel = t - m.attach_s
        cow = self.herd[m.cow_index]
        k = int(rel // self.noise_period_s)
        seed = self.seed * 100_003 + m.index

        def n(channel: int) -> float:
            return _noise(seed, k, channel)

        since = m.attach_s if m.reboot is None or t < m.reboot[2] else m.reboot[2]
        lo_c, hi_c = CONDUCTIVITY_RANGE_MS_CM
        cond = cow.conductivity_ms_cm
        warm = min(1.0, rel / m.curve.ramp_s) if m.curve.ramp_s > 0 else 1.0
        temp = 35.0 + (cow.temperature_c - 35.0) * warm + 0.08 * n(1)
        quarters = [cond + off for off in cow.quarter_offsets_ms_cm]
        sick = self._sick.get(m.cow_index, 1.0)
        q_hi = [hi_c] * 4
        if sick > 1.0:
            rise = quarters[SICK_QUARTER] * (sick - 1.0)
            quarters[SICK_QUARTER] += rise
            q_hi[SICK_QUARTER] = hi_c * sick
            cond += rise / 4.0
        cow_hi = hi_c * (1.0 + (sick - 1.0) / 4.0)
        lf, rf, lr, rr = quarters
        return {
            "yield_l": m.counter_l(t),
            "flow_l_min": m.curve.flow_at(rel),
            "session_time_s": max(0, int(t - since)),
            "status": 1,
            "conductivity_ms_cm": _clamp(cond + 0.1 * n(0), lo_c, cow_hi),
            "ec_lf_ms_cm": _clamp(lf + 0.1 * n(2), lo_c, q_hi[0]),
            "ec_rf_ms_cm": _clamp(rf + 0.1 * n(3), lo_c, q_hi[1]),
            "ec_lr_ms_cm": _clamp(lr + 0.1 * n(4), lo_c, q_hi[2]),
            "ec_rr_ms_cm": _clamp(rr + 0.1 * n(5), lo_c, q_hi[3]),
            "temperature_c": _clamp(temp, *TEMPERATURE_RANGE_C),
            "fat_pct": cow.fat_pct + 0.05 * n(6),
            "protein_pct": cow.protein_pct + 0.03 * n(7),
            "lactose_pct": cow.lactose_pct + 0.03 * n(8),
            "scc_cells_ml": cow.scc_cells_ml,
            "blood": m.blood,
            "vacuum_kpa": max(0.0, meter.vacuum_kpa + 0.3 * n(9)),
            "pulsation_cpm": meter.pulsation_cpm,
        }


def _as_float(v: Value | None) -> float:
    if not isinstance(v, float | int) or isinstance(v, bool):
        raise ValueError(f"expected a number, got {v!r}")
    return float(v)
