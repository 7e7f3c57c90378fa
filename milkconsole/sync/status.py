"""What the sync tells the rest of the console: frozen values that cross from its thread."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

SyncStateName = Literal["online", "offline", "not_configured", "auth_failed"]


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """What the status bar shows. Frozen: handed from the sync thread to the GUI thread.

    `backlog` counts outbox rows waiting (pending or in flight), `dead` the rows Odoo refused
    for good (the supervisor's list). `warnings` name contract problems (a missing model).
    """

    state: SyncStateName
    backlog: int = 0
    dead: int = 0
    last_sync_at: datetime | None = None
    last_error: str | None = None
    oldest_pending_at: datetime | None = None
    transport: str | None = None
    server_version: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """One short line: 'Odoo online · 3 waiting · 1 refused'."""
        label = {
            "online": "online",
            "offline": "offline",
            "not_configured": "not set up",
            "auth_failed": "login refused",
        }[self.state]
        parts = [f"Odoo {label}"]
        if self.backlog:
            parts.append(f"{self.backlog} waiting")
        if self.dead:
            parts.append(f"{self.dead} refused")
        if self.warnings:
            parts.append(f"{len(self.warnings)} contract problem(s)")
        return " · ".join(parts)


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one pass did. `created` / `already_in_odoo` count records by contract model."""

    created: Mapping[str, int] = field(default_factory=dict)
    already_in_odoo: int = 0
    written: int = 0
    dead: int = 0
    retried: int = 0
    animals_pulled: int = 0
    tags_pulled: int = 0
    treatments_pulled: int = 0
    meters_updated: int = 0
    create_calls: int = 0
    deferred: int = 0
    warnings: tuple[str, ...] = ()
    duration_s: float = 0.0

    @property
    def total_created(self) -> int:
        return sum(self.created.values())
