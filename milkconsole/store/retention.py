"""What the local database keeps, and for how long: the `[retention]` settings and the pruning.

- Outbox rows that were sent (both channels, 'odoo' and 'mqtt') are deleted once they are
  older than `sent_outbox_days` (default 30). Rows not sent yet (pending, in flight, dead)
  are never touched. The records they carried stay: only their way out goes. The outbound
  module copes with a record whose rows are gone (`outbound.queue_alert`, `queue_meter` and
  the session corrections recreate-or-find and write), a row waiting `after` a pruned record
  is not held up (`Outbox.claim`), and `queue_unqueued` runs once per database, so a pruned
  record never looks unqueued.
- Flow curves of sessions older than `thin_curves_after_days` (not set: never) keep one
  sample per `thin_curve_interval_s` (default 10 s) instead of one every 2 s.
- Sessions, alerts, health events, calibrations and the audit log are kept.

Pruning runs in short transactions of a few thousand rows, so the recorder never waits on it
for long.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from milkconsole.config_tables import checked_table
from milkconsole.errors import ConfigError
from milkconsole.store.curves import CurveError, pack_counted, thin_curve, unpack_curve
from milkconsole.store.db import Database
from milkconsole.store.schema import FlowCurveRow, OutboxRow, SessionRow, SyncState

log = logging.getLogger(__name__)

SECTION = "retention"
_KEYS = {"sent_outbox_days", "thin_curves_after_days", "thin_curve_interval_s"}
_THINNED_UNTIL = "retention.curves_thinned_until"  # sync_state: sessions ended before are done
CHUNK = 5000


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long sent outbox rows and full-resolution curves are kept (see the module doc)."""

    sent_outbox_days: float = 30.0
    thin_curves_after_days: float | None = None
    thin_curve_interval_s: float = 10.0

    @classmethod
    def from_table(cls, table: Any, source: str) -> RetentionPolicy:
        """The policy of a config's `[retention]` table (None: the defaults); `ConfigError`
        naming the file and key for anything wrong."""
        if table is None:
            return cls()
        checked_table(table, source, SECTION, _KEYS)
        sent = _number(table, "sent_outbox_days", source, 30.0, 1.0, 3650.0)
        interval = _number(table, "thin_curve_interval_s", source, 10.0, 2.0, 120.0)
        thin = (
            _number(table, "thin_curves_after_days", source, None, 7.0, 3650.0)
            if "thin_curves_after_days" in table
            else None
        )
        return cls(sent, thin, interval)


def _number(
    table: dict[str, Any], key: str, source: str, default: float | None, lo: float, hi: float
) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ConfigError(
            source, f"{SECTION}.{key}", f"must be a number from {lo:g} to {hi:g}, not {value!r}"
        )
    return float(value)


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one pass removed or thinned."""

    outbox_rows_pruned: int
    curves_thinned: int


def prune_sent_outbox(db: Database, older_than: datetime, *, chunk: int = CHUNK) -> int:
    """Delete outbox rows sent before `older_than` (any channel); how many went."""
    total = 0
    while True:
        with db.write() as tx:
            ids = (
                select(OutboxRow.id)
                .where(OutboxRow.state == "sent", OutboxRow.sent_at < older_than)
                .limit(chunk)
                .scalar_subquery()
            )
            n = int(tx.execute(delete(OutboxRow).where(OutboxRow.id.in_(ids))).rowcount)  # type: ignore[attr-defined]
        total += n
        if n < chunk:
            return total


def thin_old_curves(
    db: Database, ended_before: datetime, interval_s: float, *, chunk: int = 1000
) -> int:
    """Thin the curves of sessions that ended before `ended_before` to one sample per
    `interval_s`; how many were thinned. Resumes where the last pass stopped."""
    total = 0
    with db.read() as tx:
        mark = tx.get(SyncState, _THINNED_UNTIL)
        since = datetime.fromisoformat(mark.value) if mark is not None and mark.value else None
    while True:
        with db.write() as tx:
            query = (
                select(SessionRow.key, SessionRow.ended_at, FlowCurveRow.data)
                .join(FlowCurveRow, FlowCurveRow.session_key == SessionRow.key)
                .where(SessionRow.ended_at < ended_before, FlowCurveRow.interval_s.is_(None))
                .order_by(SessionRow.ended_at)
                .limit(chunk)
            )
            if since is not None:
                query = query.where(SessionRow.ended_at >= since)
            rows = tx.execute(query).all()
            for key, _ended, data in rows:
                try:
                    curve = unpack_curve(data)
                except CurveError as exc:
                    log.error("flow curve of session %s not thinned: %s", key, exc)
                    curve = None
                values: dict[str, Any] = {"interval_s": interval_s}
                if curve is not None:
                    packed, n = pack_counted(thin_curve(curve, interval_s))
                    values.update(data=packed, samples=n)
                tx.execute(
                    update(FlowCurveRow).where(FlowCurveRow.session_key == key).values(**values)
                )
            total += len(rows)
            if rows and rows[-1][1] is not None:
                since = rows[-1][1]
                mark_row = tx.get(SyncState, _THINNED_UNTIL)
                if mark_row is None:
                    tx.add(SyncState(key=_THINNED_UNTIL, value=since.isoformat()))
                else:
                    mark_row.value = since.isoformat()
        if len(rows) < chunk:
            return total


def apply_retention(db: Database, policy: RetentionPolicy, now: datetime) -> RetentionReport:
    """One retention pass as of `now`."""
    pruned = prune_sent_outbox(db, now - timedelta(days=policy.sent_outbox_days))
    thinned = 0
    if policy.thin_curves_after_days is not None:
        thinned = thin_old_curves(
            db,
            now - timedelta(days=policy.thin_curves_after_days),
            policy.thin_curve_interval_s,
        )
    if pruned or thinned:
        log.info("retention: %d sent outbox rows pruned, %d curves thinned", pruned, thinned)
    return RetentionReport(pruned, thinned)


__all__ = [
    "RetentionPolicy",
    "RetentionReport",
    "apply_retention",
    "prune_sent_outbox",
    "thin_old_curves",
]
