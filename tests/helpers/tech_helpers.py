"""What the technician-tools tests share: a small parlour config, a real database with users and
meters, and sessions written by the real recorder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from milkconsole.config import ParlourConfig, parse_config
from milkconsole.grants import Grant
from milkconsole.meters.events import SessionCompleted, SessionSnapshot, SessionStarted
from milkconsole.store.db import Database, open_database
from milkconsole.store.recorder import Recorder
from milkconsole.supervision.users import UserStore

FARM = "T1"
SUPERVISOR, SUPERVISOR_PIN = "Sue", "4321"
TECHNICIAN, TECHNICIAN_PIN = "Tom", "1357"


def parlour_config(
    meters: int = 4, *, port: int = 1502, extra: dict[str, Any] | None = None
) -> ParlourConfig:
    data: dict[str, Any] = {
        "parlour": {"name": "Test parlour", "farm_code": FARM, "poll_interval_s": 0.1},
        "bus": [{"id": "bus-1", "transport": "tcp", "host": "127.0.0.1", "port": port}],
        "meter": [
            {"id": f"M{i:02d}", "bus": "bus-1", "unit": i, "profile": "delaval-mm27bc", "stall": i}
            for i in range(1, meters + 1)
        ],
    }
    data.update(extra or {})
    return parse_config(data, "test-parlour.toml")


@dataclass
class TechDb:
    db: Database
    config: ParlourConfig
    users: UserStore
    technician: Grant
    supervisor: Grant


def tech_db(tmp_path: Path, config: ParlourConfig | None = None) -> TechDb:
    """A fresh database with the config's meters, a supervisor and a technician."""
    config = config or parlour_config()
    db = open_database(tmp_path / "tech.sqlite")
    Recorder(db, farm_code=config.farm_code).upsert_meters(list(config.meters))
    users = UserStore(db)
    users.add(SUPERVISOR, "supervisor", SUPERVISOR_PIN, by=None)
    sup = users.verify(SUPERVISOR, SUPERVISOR_PIN)
    assert sup is not None
    supervisor = Grant(sup.name, sup.role)
    users.add(TECHNICIAN, "technician", TECHNICIAN_PIN, by=supervisor)
    tech = users.verify(TECHNICIAN, TECHNICIAN_PIN)
    assert tech is not None
    return TechDb(db, config, users, Grant(tech.name, tech.role), supervisor)


def record_sessions(
    db: Database, milkings: Sequence[tuple[str, int, float, datetime]], farm: str = FARM
) -> list[str]:
    """Write finished sessions (meter id, stall, yield L, ended at) through the real recorder."""
    rec = Recorder(db, farm_code=farm)
    rec.start()
    keys = []
    for i, (meter_id, stall, yield_l, ended) in enumerate(milkings):
        started = ended - timedelta(minutes=6)
        key = f"{farm}-{meter_id}-{started:%Y%m%dT%H%M%SZ}-{i:04x}"
        snap = SessionSnapshot(key=key, meter_id=meter_id, stall=stall, started_at=started)
        rec.submit(SessionStarted(snap))
        done = SessionSnapshot(
            key=key,
            meter_id=meter_id,
            stall=stall,
            started_at=started,
            ended_at=ended,
            state="completed",
            duration_s=360.0,
            yield_l=yield_l,
            meter_yield_l=yield_l,
        )
        rec.submit(SessionCompleted(done))
        keys.append(key)
    assert rec.stop(30.0)
    return keys


def cell_text(table: Any, row: int, column: int) -> str:
    """The text of a table cell; an empty cell fails the test."""
    item = table.item(row, column)
    assert item is not None, f"no item at ({row}, {column})"
    return str(item.text())


def now_utc() -> datetime:
    return datetime.now(UTC)
