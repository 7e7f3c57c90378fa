"""Fixtures and helpers for the Odoo sync tests: a simulated Odoo, an in-memory keyring, a store,
and the parlour's records queued the way the console queues them (`store/outbound/`).

Registered as a plugin in tests/conftest.py, so `sim`, `vault`, `db` and the engine clean-up are
available to every test module that does not define its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import keyring
import pytest
from sqlalchemy import select

from milkconsole.meters.events import SessionSnapshot
from milkconsole.store import open_database
from milkconsole.store.db import Database
from milkconsole.store.outbound import (
    queue_alert,
    queue_health_event,
    queue_meter,
    queue_sessions,
)
from milkconsole.store.schema import AlertRow, Animal, HealthEvent, Meter
from milkconsole.store.sessions import new_session_row, resolve_animal
from milkconsole.sync import secrets
from milkconsole.sync.engine import SyncEngine
from milkconsole.sync.settings import OdooSettings, parse_odoo_settings
from simulators.keyring_memory import MemoryKeyring
from simulators.odoo.server import OdooSimulator

T0 = datetime(2025, 3, 1, 4, 30, tzinfo=UTC)
FIRST_TAG = 982000000000001
METERS = [f"M{i:02d}" for i in range(1, 25)]


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def vault() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "console.sqlite")
    yield database
    database.close()


@pytest.fixture
def sim() -> Iterator[OdooSimulator]:
    with OdooSimulator(version="17.0") as s:
        s.seed_devices(METERS)
        yield s


def odoo_settings(sim: OdooSimulator, **changes: Any) -> OdooSettings:
    section: dict[str, Any] = {
        "url": sim.url,
        "database": sim.database,
        "login": "admin",
        "timeout_s": 5,
        "timezone": "Europe/Dublin",
    }
    section.update(changes)
    return parse_odoo_settings(section, "parlour.toml")


def logged_in(sim: OdooSimulator, vault: MemoryKeyring, **changes: Any) -> OdooSettings:
    settings = odoo_settings(sim, **changes)
    secrets.store_secret(settings, sim.api_key)
    return settings


def registration(mid: str, stall: int) -> dict[str, Any]:
    """What `outbound.meter_registration` makes of a configured GEA meter on a TCP bus."""
    return {
        "meter_id": mid,
        "name": f"Milk meter {mid}",
        "stall": stall,
        "profile": "gea",
        "manufacturer": "GEA",
        "model": "DemaTron",
        "transport": "tcp",
        "host": "10.0.0.5",
        "port": 502,
        "unit": stall,
        "has_rfid": True,
        "has_conductivity": True,
        "has_temperature": True,
        "has_flow": True,
        "has_quality": False,
    }


def add_meters(db: Database) -> None:
    """The parlour's meters, registered as a console start registers them (idempotent)."""
    with db.write() as tx:
        for i, mid in enumerate(METERS):
            row = tx.get(Meter, mid)
            if row is None:
                row = Meter(id=mid, name=mid, bus_id="b1", unit=i + 1, profile="gea", stall=i + 1)
                tx.add(row)
                tx.flush()
            queue_meter(tx, row, registration(mid, i + 1))


def record_sessions(
    db: Database,
    cows: int,
    milkings: int,
    *,
    start: datetime = T0,
    unknown_every: int = 0,
    incomplete_every: int = 0,
    prefix: str = "F1",
    first_tag: int = FIRST_TAG,
) -> list[str]:
    """Sessions as the recorder stores them: the row with its identity from the local animal
    cache, and its milk.session outbox row with the store's payload, one transaction per
    milking (the outbox rows inserted in one statement, so a week of them is quick to make)."""
    keys: list[str] = []
    n = 0
    add_meters(db)
    with db.read() as tx:
        cache = {str(first_tag + c): resolve_animal(tx, str(first_tag + c)) for c in range(cows)}
    for milking in range(milkings):
        at = start + timedelta(hours=8 * milking)
        with db.write() as tx:
            rows = []
            for cow in range(cows):
                n += 1
                meter = METERS[cow % len(METERS)]
                tag = None if unknown_every and n % unknown_every == 0 else str(first_tag + cow)
                state = (
                    "incomplete" if incomplete_every and n % incomplete_every == 0 else "completed"
                )
                began = at + timedelta(seconds=20 * cow)
                snap = SessionSnapshot(
                    key=f"{prefix}-{meter}-{milking:03d}-{cow:04d}",
                    meter_id=meter,
                    stall=cow % len(METERS) + 1,
                    started_at=began,
                    state=state,  # type: ignore[arg-type]
                    rfid=tag,
                    ended_at=began + timedelta(minutes=7),
                    duration_s=420.0,
                    yield_l=round(8 + (cow % 13) * 0.7, 2),
                    peak_flow_l_min=3.8,
                    avg_flow_l_min=1.6,
                    conductivity_mean_ms_cm=4.9,
                    temperature_c=35.2,
                    fat_pct=4.1,
                    protein_pct=3.4,
                    lactose_pct=4.7,
                    scc_cells_ml=120_000 + cow,
                    blood=False,
                )
                row = new_session_row(snap, began)
                animal = cache.get(tag) if tag else None
                if animal is not None:
                    row.animal_id, row.id_source = animal, "rfid"
                rows.append(row)
            tx.add_all(rows)
            tx.flush()
            queue_sessions(tx, rows)
            keys.extend(r.key for r in rows)
    return keys


def raise_alerts(
    db: Database, n: int, *, acknowledged_every: int = 0, prefix: str = "ALERT"
) -> list[str]:
    keys = []
    with db.write() as tx:
        animals = list(tx.scalars(select(Animal.id).order_by(Animal.id)))
        for i in range(n):
            ack = acknowledged_every and i % acknowledged_every == 0
            alert = AlertRow(
                key=f"{prefix}-{i:05d}",
                kind="mastitis" if i % 2 else "blood",
                severity="critical" if i % 5 == 0 else "warning",
                state="acknowledged" if ack else "open",
                animal_id=animals[i % len(animals)] if animals else None,
                meter_id=METERS[i % len(METERS)],
                message=f"conductivity up {10 + i % 30}% on the left front",
                raised_at=T0 + timedelta(minutes=i),
                acknowledged_at=T0 + timedelta(minutes=i + 5) if ack else None,
                acknowledged_by="mary" if ack else None,
            )
            tx.add(alert)
            queue_alert(tx, alert)
            keys.append(alert.key)
    return keys


def record_health_events(db: Database, n: int, *, prefix: str = "HEALTH") -> list[str]:
    keys = []
    with db.write() as tx:
        animals = list(tx.scalars(select(Animal.id).order_by(Animal.id)))
        for i in range(n):
            ev = HealthEvent(
                key=f"{prefix}-{i:05d}",
                animal_id=animals[i % len(animals)] if animals else None,
                kind="clinical_mastitis_suspected",
                detail="EC ratio 1.3 on LF",
                recorded_at=T0 + timedelta(minutes=3 * i),
            )
            tx.add(ev)
            queue_health_event(tx, ev)
            keys.append(ev.key)
    return keys


def by_key(sim: OdooSimulator, model: str, key_field: str, fields: list[str]) -> dict[str, dict]:
    rows = sim.records(model, fields=[key_field, *fields])
    counts = Counter(r[key_field] for r in rows)
    dupes = [k for k, c in counts.items() if c > 1]
    assert not dupes, f"{model}: duplicated keys {dupes[:5]}"
    return {r[key_field]: r for r in rows}


_ENGINES: list[SyncEngine] = []


def engine_for(db: Database, settings: OdooSettings, **kwargs: Any) -> SyncEngine:
    engine = SyncEngine(db, settings, **kwargs)
    engine.start()
    _ENGINES.append(engine)
    return engine


@pytest.fixture(autouse=True)
def _close_engines() -> Iterator[None]:
    yield
    while _ENGINES:
        _ENGINES.pop().close()
