"""A year of a herd's milkings in a real console database, written through the real recorder.

`build(path, cows=1000, milkings_per_day=3, days=365, seed=1)` makes the database a parlour PC
holds after `days` of milking `cows` cows `milkings_per_day` times a day, and returns `path`:

- the herd (animals with their tags) and one meter per stall, registered for Odoo through
  `Recorder.upsert_meters` (`store/outbound/` queues the registrations);
- every milking as a `SessionCompleted` with its whole flow curve (a sample every 2 s, about
  180 for a six-minute milking: yield, flow and conductivity as a meter gives them), submitted
  to a running `Recorder`, which writes it, runs its completion hook and queues its
  `milk.session` and `farm.milk.production` outbox rows, many sessions per transaction;
- health events and alerts at a realistic rate (blood, mastitis episodes with an escalation,
  now and then a cow-swap), raised by a completion hook inside the session's transaction and
  queued with `queue_health_event` / `queue_alert`; a supervisor resolves each alert a day or
  two later (`milkconsole.supervision.alerts.resolve_alert`: audited, queued for Odoo);
- each meter calibrated twice a year by the technician (`CalibrationStore.save`: a calibration
  row, the meter's new factor, audited, queued for Odoo);
- the Odoo sync keeping up: at the end of each day what was queued is marked sent
  (`Outbox.mark_sent`), except the last day's, which is still waiting;
- the console's daily retention pass (`store/retention.py`, default policy: sent outbox rows
  kept 30 days), so the outbox holds what a year-old console's does.

Milkings are written when they end (no progress checkpoints): a year of checkpoints would add
nothing to the finished database but hours to its build. Curves come from a pool of realistic
shapes (let-down ramp, plateau, decline; meter noise and resolution; foremilk conductivity),
one per yield and conductivity step, so 1.1 million sessions do not cost 200 million new
sample objects; each session keeps the curve whose total is its yield.

The year ends at `end` (default: today's UTC midnight), so a console opened on the result shows
yesterday's milkings. The file is written under a temporary name and renamed when complete:
a build that is interrupted never leaves a half-built database at `path`.
"""

from __future__ import annotations

import logging
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy.orm import Session  # noqa: E402

from milkconsole.config import ParlourConfig, parse_config  # noqa: E402
from milkconsole.flags import MASTITIS_SUSPECTED  # noqa: E402
from milkconsole.grants import Grant  # noqa: E402
from milkconsole.meters.events import FlowSample, SessionCompleted, SessionSnapshot  # noqa: E402
from milkconsole.store.bulk import NewCow, add_cows  # noqa: E402
from milkconsole.store.calibrations import CalibrationStore  # noqa: E402
from milkconsole.store.db import Database, open_database  # noqa: E402
from milkconsole.store.health import HealthRecords  # noqa: E402
from milkconsole.store.outbound import meter_registration  # noqa: E402
from milkconsole.store.outbox import Outbox  # noqa: E402
from milkconsole.store.recorder import Recorder  # noqa: E402
from milkconsole.store.retention import RetentionPolicy, apply_retention  # noqa: E402
from milkconsole.store.sessions import SessionRecord  # noqa: E402
from milkconsole.supervision.alerts import resolve_alert  # noqa: E402
from milkconsole.supervision.users import UserStore  # noqa: E402
from milkconsole.technician.calibration import (  # noqa: E402
    CalibrationReading,
    CalibrationSettings,
    evaluate,
    save_calibration,
)
from simulators.parlour import FlowCurve, draw_flow_curve  # noqa: E402

log = logging.getLogger("bench.yeardb")

FARM = "YEAR"
SUPERVISOR = "Year Supervisor"
TECHNICIAN = "Year Technician"
SAMPLE_S = 2.0
COWS_PER_STALL = 20  # per milking: a 50-stall parlour milks 1,000 cows in under three hours
SLOT_S = 480.0  # a stall's turn: a six-minute milking, then the next cow walks in
FIRST_MILKING_H = 4.5  # UTC hour of the day's first milking; the others follow evenly
BATCH = 2000  # sessions the recorder may write in one transaction
# Rates (per session unless said otherwise).
P_NO_TAG = 0.004
P_INCOMPLETE = 0.01
P_INTERRUPTED = 0.003
P_BLOOD = 0.003
P_SWAP = 0.0005
MASTITIS_PER_COW_YEAR = 0.4
MASTITIS_DAYS = (3, 7)


@dataclass
class _Cow:
    animal_id: int
    tag: str
    ec_base: float
    peak_l_day: float
    calved: float  # day index of the last calving (may be before day 0)
    mastitis: list[tuple[float, float, float]] = field(default_factory=list)  # start, end, rise

    def daily_yield(self, day: float) -> float:
        """Wood lactation curve (peak ~50 days in milk); dry off after 305 days (then calve)."""
        dim = (day - self.calved) % 365.0 + 5.0
        if dim > 305.0:
            dim = 5.0 + (dim - 305.0)  # the replacement heifer's fresh lactation
        a, b, c = 1.0, 0.2, 0.004
        wood = a * dim**b * math.exp(-c * dim)
        top = a * 50.0**b * math.exp(-c * 50.0)
        return self.peak_l_day * wood / top

    def ec_rise(self, day: float) -> float:
        for start, end, rise in self.mastitis:
            if start <= day < end:
                return rise
        return 0.0


@dataclass(frozen=True)
class _Curve:
    """A pool curve and the figures a session with it reports (computed once, not per use)."""

    samples: tuple[FlowSample, ...]
    yield_l: float
    duration_s: float
    last_flow_l_min: float
    peak_flow_l_min: float
    ec_mean: float | None
    ec_max: float | None
    ec_sum: float
    ec_n: int

    @classmethod
    def of(cls, samples: tuple[FlowSample, ...]) -> _Curve:
        ecs = [s.conductivity_ms_cm for s in samples if s.conductivity_ms_cm is not None]
        last = samples[-1]
        return cls(
            samples=samples,
            yield_l=last.yield_l,
            duration_s=last.elapsed_s + 4.0,
            last_flow_l_min=last.flow_l_min,
            peak_flow_l_min=max(s.flow_l_min for s in samples),
            ec_mean=round(sum(ecs) / len(ecs), 3) if ecs else None,
            ec_max=max(ecs) if ecs else None,
            ec_sum=sum(ecs),
            ec_n=len(ecs),
        )


class _CurvePool:
    """Realistic flow curves by (yield step, conductivity step), made once each."""

    YIELD_STEP_L = 0.25
    EC_STEP = 0.1

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._pool: dict[tuple[int, int, int], _Curve] = {}

    def get(self, yield_l: float, ec: float, variant: int) -> _Curve:
        key = (
            max(1, round(yield_l / self.YIELD_STEP_L)),
            round(ec / self.EC_STEP),
            variant,
        )
        curve = self._pool.get(key)
        if curve is None:
            curve = _Curve.of(self._make(key))
            self._pool[key] = curve
        return curve

    def _make(self, key: tuple[int, int, int]) -> tuple[FlowSample, ...]:
        y_step, ec_step, variant = key
        rng = random.Random(hash((self._seed, y_step, ec_step, variant)))
        total = y_step * self.YIELD_STEP_L
        ec = ec_step * self.EC_STEP
        shape = draw_flow_curve(rng)
        # The drawn shape, stretched to this total at a plausible flow: a six-minute milking
        # of a 10 L cow peaks near 2.7 L/min and averages about half of that.
        peak = min(5.0, max(1.2, 1.4 + 0.13 * total + rng.uniform(-0.4, 0.4)))
        duration = max(120.0, min(900.0, 60.0 * total / (0.55 * peak)))
        scale = duration / shape.duration_s
        fc = FlowCurve(
            shape.ramp_s * scale,
            shape.plateau_s * scale,
            shape.decline_s * scale,
            peak,
            shape.end_flow_l_min,
        )
        gain = total / fc.total_l
        samples: list[FlowSample] = []
        t = 0.0
        while True:
            y = round(fc.yield_at(t) * gain, 2)
            f = round(max(0.0, fc.flow_at(t) * gain * (1.0 + rng.gauss(0.0, 0.03))), 2)
            # Foremilk conducts more; the meter's cell reads with a little noise.
            fore = 0.08 * math.exp(-t / 40.0)
            c = round(ec * (1.0 + fore + rng.gauss(0.0, 0.008)), 2)
            samples.append(FlowSample(round(t, 2), y, f, c))
            if t >= fc.duration_s:
                break
            t = min(fc.duration_s, t + SAMPLE_S + rng.uniform(-0.02, 0.03))
        last = samples[-1]
        samples[-1] = FlowSample(
            last.elapsed_s, round(total, 2), last.flow_l_min, last.conductivity_ms_cm
        )
        return tuple(samples)


def _config(stalls: int) -> ParlourConfig:
    per_bus = 24
    buses = [
        {"id": f"gw{g + 1}", "transport": "tcp", "host": "127.0.0.1", "port": 1502 + g}
        for g in range(math.ceil(stalls / per_bus))
    ]
    meters = [
        {
            "id": f"M{s:03d}",
            "bus": f"gw{(s - 1) // per_bus + 1}",
            "unit": (s - 1) % per_bus + 1,
            "profile": "delaval-mm27bc",
            "stall": s,
        }
        for s in range(1, stalls + 1)
    ]
    data = {
        "parlour": {"name": "A year of milkings", "farm_code": FARM, "layout": "parallel"},
        "bus": buses,
        "meter": meters,
    }
    return parse_config(data, "<bench.yeardb>")


class _Health:
    """Completion hook: the health module's outputs at their real rates, without its cost.

    The real `HealthHook` compares each milking with the cow's history and her group's (the
    cow-swap check reads two weeks of the group); over a year of 1,000 cows that is hours. Here
    the outcomes come from the simulated truth (blood, a mastitis episode, a swap), and are
    written exactly as the hook writes them: through the store's `HealthRecords`, in the
    session's transaction, queued by `store/outbound/`.
    """

    def __init__(self, rng: random.Random, cows: dict[int, _Cow], t0: datetime) -> None:
        self._rng = rng
        self._cows = cows
        self._t0 = t0
        self._open: dict[int, tuple[int, str]] = {}  # animal id -> (alert id, severity)
        self.raised: list[int] = []

    def __call__(self, tx: Session, snap: SessionSnapshot) -> None:
        store = HealthRecords(tx)
        m = store.milking(snap.key)
        if m is None:
            return
        if m.blood:
            store.set_grade(m.key, "reject", ())
            store.add_flags(m.key, abnormal=True)
            store.record_event(m, "blood_in_milk", "blood detected by the meter")
        cow = self._cows.get(m.animal_id or -1)
        if cow is None or m.state != "completed":
            return
        day = (m.started_at - self._t0).total_seconds() / 86400.0
        rise = cow.ec_rise(day)
        if rise > 0.12:
            severity = "critical" if rise > 0.3 else "warning"
            store.add_flags(m.key, MASTITIS_SUSPECTED, abnormal=True)
            self._mastitis(store, m, cow, severity, rise)
        elif self._rng.random() < P_SWAP:
            alert_id = store.raise_alert(
                m,
                key=f"{m.key}:cow_swap",
                kind="identity",
                condition="cow_swap",
                severity="warning",
                message="cow swap suspected: yield unlike her own pattern",
            )
            if alert_id is not None:
                self.raised.append(alert_id)

    def _mastitis(
        self, store: HealthRecords, m: SessionRecord, cow: _Cow, severity: str, rise: float
    ) -> None:
        reason = f"conductivity {rise:+.0%} over her baseline"
        known = self._open.get(cow.animal_id)
        if known is not None:
            state = store.alert_state(known[0])
            if state is not None and state != "resolved":
                if severity == "critical" and known[1] == "warning":
                    store.escalate(known[0], "critical", reason)  # Odoo learns it
                    self._open[cow.animal_id] = (known[0], "critical")
                return
        alert_id = store.raise_alert(
            m,
            key=f"{m.key}:mastitis",
            kind="mastitis",
            condition="cow",
            severity=severity,
            message=reason,
        )
        if alert_id is None:
            return
        self._open[cow.animal_id] = (alert_id, severity)
        self.raised.append(alert_id)
        store.record_event(m, "mastitis_indicator", reason)


def _herd(db: Database, cows: int, rng: random.Random) -> dict[int, _Cow]:
    tags = [f"982{100000000000 + i:012d}" for i in range(cows)]
    ids = add_cows(
        db,
        [
            NewCow(
                odoo_id=10_000 + i,
                number=str(1000 + i),
                name=None,
                rfid_tag=tags[i],
                group_name=("fresh", "high", "low")[i % 3],
                birth_date=date(2019 + i % 4, 1 + i % 12, 1 + i % 28),
                lactation_number=1 + i % 5,
                active=True,
            )
            for i in range(cows)
        ],
    )
    return {
        animal_id: _Cow(
            animal_id=animal_id,
            tag=tag,
            ec_base=rng.gauss(5.0, 0.35),
            peak_l_day=max(22.0, rng.gauss(38.0, 6.0)),
            calved=-rng.uniform(0.0, 365.0),
        )
        for animal_id, tag in zip(ids, tags, strict=True)
    }


def _plan_mastitis(cows: dict[int, _Cow], days: int, rng: random.Random) -> None:
    rate = MASTITIS_PER_COW_YEAR * days / 365.0
    for cow in cows.values():
        n = sum(1 for _ in range(4) if rng.random() < rate / 4.0)
        for _ in range(n):
            start = rng.uniform(0.0, days)
            cow.mastitis.append(
                (start, start + rng.uniform(*MASTITIS_DAYS), rng.uniform(0.15, 0.6))
            )


def _snapshot(
    key: str,
    meter: str,
    stall: int,
    started: datetime,
    curve: _Curve,
    *,
    rfid: str | None,
    state: str,
    blood: bool,
    rng: random.Random,
) -> SessionSnapshot:
    duration = curve.duration_s
    return SessionSnapshot(
        key=key,
        meter_id=meter,
        stall=stall,
        started_at=started,
        state=state,  # type: ignore[arg-type]
        rfid=rfid,
        ended_at=started + timedelta(seconds=duration),
        duration_s=duration,
        yield_l=curve.yield_l,
        meter_yield_l=curve.yield_l,
        flow_l_min=curve.last_flow_l_min,
        peak_flow_l_min=curve.peak_flow_l_min,
        avg_flow_l_min=round(curve.yield_l / duration * 60.0, 3),
        conductivity_mean_ms_cm=curve.ec_mean,
        conductivity_max_ms_cm=curve.ec_max,
        conductivity_sum=curve.ec_sum,
        conductivity_n=curve.ec_n,
        temperature_c=round(rng.gauss(37.6, 0.25), 1),
        blood=blood,
        vacuum_kpa=round(rng.gauss(44.0, 0.6), 1),
        pulsation_cpm=round(rng.gauss(60.0, 0.8), 1),
        flags=("short",) if state == "incomplete" else (),
    )


def _sync_day(db: Database, day_id: int, at: datetime) -> int:
    """The Odoo sync kept up: everything queued so far is sent at `at` (ids as Odoo gave)."""
    box = Outbox(db)
    ids = box.pending_ids(day_id)
    if ids:
        box.mark_sent({i: 1_000_000 + i for i in ids}, now=at)
    return max(ids, default=day_id)


def _calibrate(
    db: Database, config: ParlourConfig, at: datetime, rng: random.Random, grant: Grant
) -> None:
    """Each meter tested with three jars of milk and calibrated as the technician's wizard
    does (`save_calibration`: audited, queued for Odoo)."""
    store = CalibrationStore(db)
    settings = CalibrationSettings()
    factors = {m.meter_id: m.calibration_factor for m in store.meters()}
    for m in config.meters:
        # The meter reads this much low (or high) now: the wizard's new factor makes up for it.
        drift = 1.0 + rng.gauss(0.0, 0.01)
        readings = [
            CalibrationReading(measured_l=round(ref / drift, 2), reference_l=ref)
            for ref in (10.1, 12.1, 9.5)
        ]
        old = factors[m.id]
        save_calibration(
            db,
            grant,
            meter_id=m.id,
            method="weighed_milk",
            readings=readings,
            outcome=evaluate(readings, old, settings),
            settings=settings,
            now=at,
        )


def build(
    path: Path,
    *,
    cows: int = 1000,
    milkings_per_day: int = 3,
    days: int = 365,
    seed: int = 1,
    end: datetime | None = None,
    retention: RetentionPolicy | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Build the database at `path` (replacing any file there) and return `path`.

    `retention` is the policy of the daily retention pass (default: the console's default;
    `RetentionPolicy(sent_outbox_days=3650)` keeps every outbox row, as a console from before
    retention would have)."""
    if cows < 1 or milkings_per_day < 1 or days < 1:
        raise ValueError("yeardb.build: cows, milkings_per_day and days must be at least 1")
    say = progress or log.info
    path = Path(path)
    building = path.with_name(path.name + ".building")
    for p in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
        p.unlink(missing_ok=True)
    rng = random.Random(seed)
    policy = retention or RetentionPolicy()
    if end is None:
        now = datetime.now(UTC)
        end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    t0 = end - timedelta(days=days)
    stalls = min(200, max(1, math.ceil(cows / COWS_PER_STALL)))
    config = _config(stalls)
    started = time.perf_counter()
    db = open_database(building)
    try:
        users = UserStore(db)
        users.add(SUPERVISOR, "supervisor", "4321", by=None)
        grant = Grant(SUPERVISOR, "supervisor")
        users.add(TECHNICIAN, "technician", "5678", by=grant)
        technician = Grant(TECHNICIAN, "technician")
        herd = _herd(db, cows, rng)
        _plan_mastitis(herd, days, rng)
        recorder = Recorder(db, farm_code=FARM, max_batch=BATCH)
        recorder.upsert_meters(
            list(config.meters), {m.id: meter_registration(config, m.id) for m in config.meters}
        )
        health = _Health(rng, herd, t0)
        recorder.add_completion_hook(health)
        recorder.start()
        pool = _CurvePool(seed)
        cow_list = list(herd.values())
        synced_to = 0
        sessions = 0
        gap_h = 24.0 / milkings_per_day
        to_resolve: list[tuple[datetime, int]] = []
        for d in range(days):
            day_start = t0 + timedelta(days=d)
            # A day's completions are made first and handed over together, so the recorder
            # takes them in large batches (one transaction each) instead of a few at a time.
            todo: list[SessionCompleted] = []
            if d % 182 == 0:
                _calibrate(db, config, day_start + timedelta(hours=1), rng, technician)
            for k in range(milkings_per_day):
                milking = day_start + timedelta(hours=FIRST_MILKING_H + k * gap_h)
                order = cow_list[:]
                rng.shuffle(order)
                for i, cow in enumerate(order):
                    stall = i % stalls + 1
                    slot = i // stalls
                    begin = milking + timedelta(seconds=slot * SLOT_S + rng.uniform(0.0, 50.0))
                    day = d + (k * gap_h + FIRST_MILKING_H) / 24.0
                    target = cow.daily_yield(day) / milkings_per_day * rng.gauss(1.0, 0.08)
                    state = "completed"
                    u = rng.random()
                    if u < P_INCOMPLETE:
                        state, target = "incomplete", target * rng.uniform(0.2, 0.6)
                    elif u < P_INCOMPLETE + P_INTERRUPTED:
                        state, target = "interrupted", target * rng.uniform(0.3, 0.9)
                    ec = cow.ec_base * (1.0 + cow.ec_rise(day))
                    curve = pool.get(max(0.5, target), ec, rng.randrange(2))
                    meter = f"M{stall:03d}"
                    key = f"{FARM}-{meter}-{begin:%Y%m%dT%H%M%SZ}-{rng.getrandbits(16):04x}"
                    rfid = None if rng.random() < P_NO_TAG else cow.tag
                    snap = _snapshot(
                        key,
                        meter,
                        stall,
                        begin,
                        curve,
                        rfid=rfid,
                        state=state,
                        blood=rng.random() < P_BLOOD,
                        rng=rng,
                    )
                    todo.append(SessionCompleted(snap, curve.samples))
            for event in todo:
                recorder.submit(event)
            sessions += len(todo)
            if not recorder.flush(600.0):
                raise RuntimeError("yeardb: the recorder did not keep up (10 min for one day)")
            for alert_id in health.raised:
                to_resolve.append((day_start + timedelta(days=1 + rng.random() * 2), alert_id))
            health.raised.clear()
            due = [a for at, a in to_resolve if at <= day_start + timedelta(days=1)]
            to_resolve = [(at, a) for at, a in to_resolve if at > day_start + timedelta(days=1)]
            for alert_id in due:
                resolve_alert(
                    db,
                    grant,
                    alert_id,
                    "checked the cow; treated as needed",
                    now=day_start + timedelta(days=1),
                )
            if d < days - 1:
                synced_to = _sync_day(db, synced_to, day_start + timedelta(days=1))
            apply_retention(db, policy, day_start + timedelta(days=1))
            if (d + 1) % 30 == 0 or d == days - 1:
                say(
                    f"yeardb: day {d + 1}/{days}, {sessions} sessions, "
                    f"{time.perf_counter() - started:.0f} s"
                )
        if not recorder.stop(600.0):
            raise RuntimeError("yeardb: the recorder did not write everything")
    finally:
        db.close()
    building.replace(path)
    return path


def _main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Build a year of a herd's milkings (bench database).")
    p.add_argument("path", type=Path)
    p.add_argument("--cows", type=int, default=1000)
    p.add_argument("--milkings-per-day", type=int, default=3)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t = time.perf_counter()
    build(
        args.path,
        cows=args.cows,
        milkings_per_day=args.milkings_per_day,
        days=args.days,
        seed=args.seed,
    )
    size = args.path.stat().st_size
    print(f"{args.path}: {size / 1e6:.1f} MB in {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())


__all__ = ["build"]
