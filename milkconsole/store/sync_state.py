"""`sync_state`: small named values kept beside the data they describe, so they commit with it.

The pull cursors (the newest Odoo write_date read per model), the Odoo server the database
syncs with, the last `last_seen` pushed per meter. Each is a string, or None when unset.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from milkconsole.store.schema import SyncState


def state_get(tx: Session, key: str) -> str | None:
    """A value of `sync_state` (None when unset)."""
    row = tx.get(SyncState, key)
    return None if row is None else row.value


def state_set(tx: Session, key: str, value: str | None) -> None:
    """Set a value of `sync_state` inside the caller's transaction."""
    row = tx.get(SyncState, key)
    if row is None:
        tx.add(SyncState(key=key, value=value))
    else:
        row.value = value
