"""A cow's history: her milkings' conductivity and yield over time, and her alerts (the chart the
console and the phones show when a cow is picked). Frozen values, read in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from milkconsole.store.alerts import AlertError, AlertRecord, alert_record
from milkconsole.store.db import Database
from milkconsole.store.schema import AlertRow, Animal, SessionRow, utc_now
from milkconsole.store.sessions import SessionRecord, record_from_row

HISTORY_DAYS = 60.0
HISTORY_MAX_POINTS = 1000


@dataclass(frozen=True, slots=True)
class CowHistory:
    """A cow's milkings since `since` (oldest first), as recorded, and her alerts raised since
    then."""

    animal_id: int
    number: str
    name: str | None
    since: datetime
    points: tuple[SessionRecord, ...]
    alerts: tuple[AlertRecord, ...]

    @property
    def label(self) -> str:
        return f"{self.number} {self.name}" if self.name else self.number


def cow_history(
    db: Database,
    animal_id: int,
    *,
    days: float = HISTORY_DAYS,
    now: datetime | None = None,
    max_points: int = HISTORY_MAX_POINTS,
) -> CowHistory:
    """The cow's finished milkings of the last `days` (at most the newest `max_points`, oldest
    first) with their conductivity and yield, and her alerts raised in that time, any state."""
    since = (now or utc_now()) - timedelta(days=days)
    with db.read() as tx:
        animal = tx.get(Animal, animal_id)
        if animal is None:
            raise AlertError(f"no animal with id {animal_id}")
        sessions = list(
            tx.scalars(
                select(SessionRow)
                .where(
                    SessionRow.animal_id == animal_id,
                    SessionRow.state != "in_progress",
                    SessionRow.started_at >= since,
                )
                .order_by(SessionRow.started_at.desc())
                .limit(max_points)
            )
        )
        alerts = [
            alert_record(row, animal)
            for row in tx.scalars(
                select(AlertRow)
                .where(AlertRow.animal_id == animal_id, AlertRow.raised_at >= since)
                .order_by(AlertRow.raised_at)
            )
        ]
        points = tuple(record_from_row(row, animal) for row in reversed(sessions))
        return CowHistory(animal.id, animal.number, animal.name, since, points, tuple(alerts))
