"""The demo parlour's herd, put in a console's database the way a farm would put its own there:
through the herd import and the treatment records (`milkconsole.supervision.herd_changes`), then a
week of past milkings as another program's history (`SessionStore.add_past_milkings`).

The console (`ui.app.open_demo_console`) and the headless demo (`milkconsole demo --headless`)
both call `seed_demo_herd`, so both know the same cows: numbers and names instead of raw tags,
an expected yield, a mastitis baseline, and a few cows whose milk must be kept out of the tank
(two under treatment, two fresh calvers in their colostrum period) and one whose withdrawal
ended just before her milking today ("milk may go back in the tank"). A few cows are left out
of the herd list on purpose, so "unknown tag" shows up too.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from milkconsole.config import ParlourConfig
from milkconsole.grants import Grant
from milkconsole.herd.file import COLUMNS, HerdFile, HerdRow
from milkconsole.herd.withdrawal import Treatment
from milkconsole.meters.events import SessionSnapshot
from milkconsole.meters.rfid import fdx_b_to_iso, normalize_tag
from milkconsole.store.db import Database
from milkconsole.store.directory import load_herd
from milkconsole.store.sessions import PastMilking, SessionStore
from milkconsole.supervision.herd_changes import import_herd, seed_treatments
from simulators.parlour import (
    CONDUCTIVITY_RANGE_MS_CM,
    SICK_QUARTER,
    Cow,
    ParlourScenario,
    PlannedMilking,
)

DEMO_COW_NAMES = (
    "Daisy",
    "Bella",
    "Molly",
    "Rosie",
    "Clover",
    "Buttercup",
    "Luna",
    "Maisy",
    "Hazel",
    "Poppy",
    "Bramble",
    "Dot",
    "Flora",
    "Ivy",
    "Juno",
    "Lottie",
    "Mabel",
    "Nell",
    "Olive",
    "Pearl",
    "Ruby",
    "Tilly",
    "Willow",
    "Primrose",
)
# Every this-many-th cow is left out of the demo herd list, so "unknown tag" shows up.
DEMO_UNLISTED_EVERY = 23
# Days of past milkings per cow: more than the mastitis detector's minimum baseline (6).
DEMO_HISTORY_DAYS = 8
DEMO_SICK_COWS = 2
# A clinical case: the sick quarter's conductivity half as high again.
DEMO_SICK_FACTOR = 1.5
DEMO_ACTOR = "demo"


@dataclass(frozen=True, slots=True)
class DemoHerd:
    """What was put in the database: cows, and the herd numbers of the special ones."""

    animals: int
    treated: tuple[str, ...]
    fresh: tuple[str, ...]
    back_to_tank: tuple[str, ...]
    past_milkings: int


def listed(cow_index: int) -> bool:
    return cow_index % DEMO_UNLISTED_EVERY != DEMO_UNLISTED_EVERY - 1


def demo_herd_rows(scenario: ParlourScenario, *, today: datetime) -> list[HerdRow]:
    """The herd file a farm would import for the simulated herd (every listed cow)."""
    rng = random.Random(scenario.seed * 31 + 7)
    rows = []
    for cow in scenario.herd:
        if not listed(cow.index):
            continue
        lactation = 1 + cow.index % 5
        born = today.date() - timedelta(days=700 + 365 * (lactation - 1) + rng.randrange(200))
        calved = today.date() - timedelta(days=20 + rng.randrange(250))
        rows.append(
            HerdRow(
                number=str(cow.herd_number),
                name=DEMO_COW_NAMES[cow.index % len(DEMO_COW_NAMES)],
                rfid_tag=fdx_b_to_iso(cow.fdx_code),
                # Afimilk meters read the cow's 8-character ASCII tag, not her ISO tag.
                other_tags=(normalize_tag(f"C{cow.herd_number:07d}"),),
                group=f"Group {1 + cow.index % 4}",
                birth_date=born,
                lactation_number=lactation,
                last_calving_date=calved,
            )
        )
    return rows


def _first_milkings(scenario: ParlourScenario, avoid: set[int]) -> list[PlannedMilking]:
    """The plan's first milkings of listed cows whose tag will be read, in attach order."""
    out = []
    for m in sorted(scenario.plan, key=lambda p: p.attach_s):
        if listed(m.cow_index) and "missed_rfid" not in m.faults and m.cow_index not in avoid:
            out.append(m)
    return out


def seed_demo_herd(
    db: Database,
    scenario: ParlourScenario,
    *,
    start: datetime,
    seed: int = 1,
    days: int = DEMO_HISTORY_DAYS,
    sick_cows: Mapping[int, float] | None = None,
    grant: Grant | None = None,
) -> DemoHerd:
    """Put the simulated herd in the demo database (see the module docstring). `start` is the
    time the scenario's simulated clock starts at: a cow planned `attach_s` into the scenario
    is milked at `start + attach_s` (the console's clock, `milkconsole.clock.ScaledClock`).
    `grant`: a supervisor's, when the database has supervisors already (the herd import then
    needs one)."""
    rows = demo_herd_rows(scenario, today=start)
    first = _first_milkings(scenario, set(sick_cows or {}))
    at = {m.cow_index: start + timedelta(seconds=m.attach_s) for m in first}
    # The special cows come from the first milkings (so the demo shows them soon); a herd too
    # small for all five gets none: its cows keep to the tank.
    special = len(first) > max(ROLES.values())
    role = {name: first[i] for name, i in ROLES.items()} if special else {}
    fresh = {role[r].cow_index for r in ("fresh_a", "fresh_b") if r in role}
    rows = [
        _fresh(r, at, scenario.herd) if _index_of(r, scenario.herd) in fresh else r for r in rows
    ]
    import_herd(db, HerdFile("demo herd", COLUMNS, tuple(rows)), grant=grant, actor=DEMO_ACTOR)
    herd = load_herd(db)
    ids = {a.number: a.id for a in herd.animals.values()}
    number = {m.cow_index: str(scenario.herd[m.cow_index].herd_number) for m in first}
    if special:
        seed_treatments(db, _treatments(role, at, ids, number), actor=DEMO_ACTOR)
    past = _past_milkings(scenario, ids, start, days, seed, sick_cows or {}, fresh, at)
    SessionStore(db).add_past_milkings(past)

    def numbers(*names: str) -> tuple[str, ...]:
        return tuple(number[role[n].cow_index] for n in names if n in role)

    return DemoHerd(
        animals=len(rows),
        treated=numbers("treated_hours", "treated_milkings"),
        fresh=numbers("fresh_a", "fresh_b"),
        back_to_tank=numbers("back"),
        past_milkings=len(past),
    )


# Which of the first milkings of the plan are special (by position).
ROLES = {"treated_hours": 0, "fresh_a": 1, "treated_milkings": 3, "fresh_b": 5, "back": 7}


def _treatments(
    role: Mapping[str, PlannedMilking],
    at: Mapping[int, datetime],
    ids: Mapping[str, int],
    number: Mapping[int, str],
) -> list[Treatment]:
    def cow(name: str) -> tuple[int, datetime]:
        m = role[name]
        return ids[number[m.cow_index]], at[m.cow_index]

    hours_cow, hours_at = cow("treated_hours")
    milk_cow, milk_at = cow("treated_milkings")
    back_cow, back_at = cow("back")
    return [
        # Tubes yesterday evening: 84 h, so today's milk stays out and the end shows ahead.
        Treatment(
            key="DEMO-TRT-1",
            animal_id=hours_cow,
            product="Mastiplan LC",
            start=hours_at - timedelta(hours=14),
            withdrawal_hours=84,
            note="left front quarter",
        ),
        # An injection a day and a half ago, withdrawal in milkings: a few more to go.
        Treatment(
            key="DEMO-TRT-2",
            animal_id=milk_cow,
            product="Cobactan LC",
            start=milk_at - timedelta(hours=36),
            withdrawal_milkings=4,
        ),
        # Ended half an hour before today's milking: her milk may go back in the tank.
        Treatment(
            key="DEMO-TRT-3",
            animal_id=back_cow,
            product="Synulox",
            start=back_at - timedelta(hours=60, minutes=30),
            withdrawal_hours=60,
        ),
    ]


def _index_of(row: HerdRow, herd: list[Cow]) -> int:
    return int(row.number) - herd[0].herd_number


def _fresh(row: HerdRow, at: Mapping[int, datetime], herd: list[Cow]) -> HerdRow:
    """She calved the day before her milking today: lactation one more, colostrum."""
    from dataclasses import replace

    milked = at[_index_of(row, herd)]
    return replace(
        row,
        last_calving_date=(milked - timedelta(days=1)).astimezone().date(),
        lactation_number=(row.lactation_number or 0) + 1,
    )


def _past_milkings(
    scenario: ParlourScenario,
    ids: Mapping[str, int],
    start: datetime,
    days: int,
    seed: int,
    sick_cows: Mapping[int, float],
    fresh: set[int],
    at: Mapping[int, datetime],
) -> list[PastMilking]:
    rng = random.Random(seed)
    planned: dict[int, PlannedMilking] = {}
    for p in scenario.plan:
        planned.setdefault(p.cow_index, p)
    out = []
    for cow in scenario.herd:
        animal_id = ids.get(str(cow.herd_number))
        milking = planned.get(cow.index)
        if animal_id is None or milking is None or cow.index in fresh:
            continue  # unlisted, not milked today, or dry until she calved yesterday
        # Her past milkings at the time of day the demo milks her today, so the cow-swap check
        # sees her usual time, not a stranger's.
        today = at.get(cow.index, start + timedelta(seconds=milking.attach_s))
        tag = fdx_b_to_iso(cow.fdx_code)
        for day in range(days, 0, -1):
            started = today - timedelta(days=day, minutes=rng.uniform(-10.0, 10.0))
            duration_s = milking.curve.duration_s * rng.uniform(0.95, 1.05)
            factor = sick_cows.get(cow.index, 1.0) if day == 1 else 1.0
            ec = _conductivity(cow, rng, factor)
            snap = SessionSnapshot(
                key=f"DEMO-HIST-{cow.index}-{day}",
                meter_id=milking.meter_id,
                stall=milking.stall,
                started_at=started,
                state="completed",
                rfid=tag,
                ended_at=started + timedelta(seconds=duration_s),
                duration_s=round(duration_s, 1),
                yield_l=round(milking.yield_l * rng.uniform(0.97, 1.03), 2),
                avg_flow_l_min=round(milking.yield_l / (duration_s / 60.0), 2),
                peak_flow_l_min=round(milking.peak_flow_l_min, 2),
                conductivity_mean_ms_cm=ec[0],
                conductivity_max_ms_cm=ec[0] + 0.1,
                ec_lf_ms_cm=ec[1],
                ec_rf_ms_cm=ec[2],
                ec_lr_ms_cm=ec[3],
                ec_rr_ms_cm=ec[4],
                temperature_c=round(cow.temperature_c + rng.uniform(0.0, 0.08), 2),
            )
            out.append(PastMilking(snap, animal_id, rng.choice(("A", "A", "A", "B"))))
    return out


def _conductivity(cow: Cow, rng: random.Random, factor: float) -> tuple[float, ...]:
    """A past milking's conductivity as the simulator would show it for `cow`: cow mean, then
    LF, RF, LR, RR (a sick quarter's raised by `factor`, see `simulators.parlour`)."""
    lo, hi = CONDUCTIVITY_RANGE_MS_CM
    base = cow.conductivity_ms_cm
    quarters = [base + off for off in cow.quarter_offsets_ms_cm]
    rise = quarters[SICK_QUARTER] * (factor - 1.0)
    quarters[SICK_QUARTER] += rise
    shown = [round(min(max(q + rng.uniform(-0.1, 0.1), lo), hi * factor), 3) for q in quarters]
    mean = round(base + rise / 4.0 + rng.uniform(-0.03, 0.03), 3)
    return (mean, *shown)


def pick_sick_cows(
    scenario: ParlourScenario, config: ParlourConfig, count: int
) -> dict[int, float]:
    """The first `count` listed cows the plan milks on meters that report each quarter's
    conductivity (the detector is surest there), each with the factor DEMO_SICK_FACTOR."""
    quarter_meters = {
        m.id for m in config.meters if "ec_lf_ms_cm" in config.profiles[m.profile].fields
    }
    out: dict[int, float] = {}
    for milking in sorted(scenario.plan, key=lambda p: p.attach_s):
        if len(out) >= count:
            break
        # Her tag must be read and known, or no cow is there to alert about.
        if (
            milking.meter_id in quarter_meters
            and listed(milking.cow_index)
            and "missed_rfid" not in milking.faults
        ):
            out.setdefault(milking.cow_index, DEMO_SICK_FACTOR)
    return out
