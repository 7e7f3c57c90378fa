"""What a person does to an alert: acknowledge it (seen, maybe with a note) or resolve it (with a
note saying what was done).

The health hook raises alerts (`milkconsole.health.hook`), the store keeps and lists them
(`milkconsole.store.alerts`, `milkconsole.store.cow_history`). Here is what a note must be; the
change itself is one write transaction in the store that checks the person's grant, changes the
alert, appends its `audit_log` row and queues it for Odoo. Both return the alert as it is now
(`AlertRecord`, a frozen value). No Qt.
"""

from __future__ import annotations

from datetime import datetime

from milkconsole.grants import Grant
from milkconsole.store import alerts as alert_rows
from milkconsole.store.alerts import AlertError, AlertRecord
from milkconsole.store.db import Database

NOTE_MAX_CHARS = 2000


def clean_note(note: str | None, *, required: bool) -> str | None:
    """The note stripped (None when empty); AlertError when it is required and empty, or
    longer than `NOTE_MAX_CHARS`."""
    text = (note or "").strip()
    if not text:
        if required:
            raise AlertError("resolving an alert needs a note saying what was done")
        return None
    if len(text) > NOTE_MAX_CHARS:
        raise AlertError(f"a note is at most {NOTE_MAX_CHARS} characters, this one {len(text)}")
    return text


def acknowledge_alert(
    db: Database,
    grant: Grant | None,
    alert_id: int,
    note: str | None = None,
    *,
    now: datetime | None = None,
) -> AlertRecord:
    """Mark an open alert as seen by the grant's user (audited, queued for Odoo); the alert
    as it is now. Acknowledging an acknowledged alert changes nothing; a resolved one is
    refused. `AccessDenied` without a grant that may acknowledge."""
    text = clean_note(note, required=False)
    return alert_rows.acknowledge(db, grant, alert_id, text, now=now)


def resolve_alert(
    db: Database,
    grant: Grant | None,
    alert_id: int,
    note: str,
    *,
    now: datetime | None = None,
) -> AlertRecord:
    """Close an alert with a note saying what was done (required; audited, queued for Odoo).
    An open alert is acknowledged by the same person at the same time. A resolved alert is
    refused. `AccessDenied` without a grant that may resolve."""
    text = clean_note(note, required=True)
    assert text is not None  # required: clean_note refused an empty one
    return alert_rows.resolve(db, grant, alert_id, text, now=now)
