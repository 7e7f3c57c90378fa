"""Rows written many at once, for benchmarks and set-up tools that must build a database fast.

They skip what a person's change goes through (a tag clash check, the audit log), so nothing the
console does on someone's behalf uses them:

- `add_cows`: a herd as an Odoo pull leaves it (each cow with her Odoo id), in one transaction;
- `add_finished_sessions`: finished milkings stored and queued for Odoo (and MQTT, while it is
  on) as the recorder queues them, without its completion hooks: a backlog for the sync or the
  publisher to work through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from milkconsole.store.db import Database
from milkconsole.store.outbound import queue_sessions
from milkconsole.store.schema import Animal
from milkconsole.store.sessions import PastMilking, new_session_row


@dataclass(frozen=True, slots=True)
class NewCow:
    """A cow to add to the herd list, as Odoo keeps her (`odoo_id` None: known only here)."""

    number: str
    rfid_tag: str | None = None
    name: str | None = None
    group_name: str | None = None
    birth_date: date | None = None
    lactation_number: int | None = None
    odoo_id: int | None = None
    active: bool = True


def add_cows(db: Database, cows: Sequence[NewCow]) -> list[int]:
    """Add `cows` in one transaction; their animal ids, in the same order."""
    with db.write() as tx:
        rows = [
            Animal(
                odoo_id=c.odoo_id,
                number=c.number,
                name=c.name,
                rfid_tag=c.rfid_tag,
                group_name=c.group_name,
                birth_date=c.birth_date,
                lactation_number=c.lactation_number,
                active=c.active,
            )
            for c in cows
        ]
        tx.add_all(rows)
        tx.flush()
        return [row.id for row in rows]


def add_finished_sessions(
    db: Database, milkings: Sequence[PastMilking], *, now: datetime | None = None
) -> int:
    """Store finished milkings (identified as given: `id_source` 'rfid' when they have a cow)
    and queue their records the way the recorder does, in one transaction; how many.
    `now`: when they were stored (default each one's start, as if recorded as it began)."""
    with db.write() as tx:
        rows = []
        for m in milkings:
            row = new_session_row(m.session, now or m.session.started_at)
            row.animal_id = m.animal_id
            row.id_source = "rfid" if m.animal_id is not None else None
            row.quality_grade = m.quality_grade
            row.destination = m.destination
            rows.append(row)
        tx.add_all(rows)
        tx.flush()
        queue_sessions(tx, rows)
    return len(milkings)


__all__ = ["NewCow", "PastMilking", "add_cows", "add_finished_sessions"]
