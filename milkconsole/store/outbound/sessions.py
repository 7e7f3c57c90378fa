"""A finished session's way out: its milk.session (after its meter's registration), its
production record (after the session, only for a known cow whose milk went to the tank) and its
MQTT event, and the corrections made to it later."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from milkconsole.meters.events import FINISHED_STATES
from milkconsole.store.outbound.mqtt_events import mqtt_farm, publish_session
from milkconsole.store.outbound.payloads import (
    METER,
    PRODUCTION,
    SESSION,
    animal_payload,
    production_payload,
    session_payload,
    wants_production,
)
from milkconsole.store.outbox import amend, create_row, enqueue, enqueue_many, withdraw
from milkconsole.store.schema import Animal, OutboxRow, SessionRow


def queue_session(tx: Session, row: SessionRow) -> None:
    """A session finished: its milk.session (after its meter's registration), its production
    record (after the session) and its MQTT event. Idempotent per session key."""
    queue_sessions(tx, [row])


def queue_sessions(tx: Session, rows: Sequence[SessionRow]) -> None:
    """`queue_session` for many finished sessions at once (one INSERT per model, not one query
    and flush per row: a week recorded offline, or a bench, queues in seconds)."""
    if not rows:
        return
    keys = [r.key for r in rows]
    # Their cows, loaded once and held (the identity map is weak): each payload looks its cow up.
    cows = sorted({r.animal_id for r in rows if r.animal_id is not None})
    held = [
        a
        for start in range(0, len(cows), 500)
        for a in tx.scalars(select(Animal).where(Animal.id.in_(cows[start : start + 500])))
    ]
    have: dict[str, set[str]] = {SESSION: set(), PRODUCTION: set()}
    for start in range(0, len(keys), 500):
        for model, key in tx.execute(
            select(OutboxRow.model, OutboxRow.record_key).where(
                OutboxRow.channel == "odoo",
                OutboxRow.operation == "create",
                OutboxRow.model.in_((SESSION, PRODUCTION)),
                OutboxRow.record_key.in_(keys[start : start + 500]),
            )
        ):
            have[model].add(key)
    fresh = [r for r in rows if r.key not in have[SESSION]]
    enqueue_many(
        tx,
        SESSION,
        [(r.key, session_payload(tx, r)) for r in fresh],
        after={r.key: (METER, r.meter_id) for r in fresh},
    )
    milked = [r for r in rows if r.key not in have[PRODUCTION] and wants_production(r)]
    enqueue_many(
        tx,
        PRODUCTION,
        [(r.key, production_payload(tx, r)) for r in milked],
        after={r.key: (SESSION, r.key) for r in milked},
    )
    if mqtt_farm(tx) is not None:
        for r in fresh:
            publish_session(tx, r)
    del held


def queue_session_identity(tx: Session, row: SessionRow) -> None:
    """Who the cow was changed (a tag now known, a cow named by hand): the session learns it and
    her production record is queued or amended. Only for a finished session (an open one's
    create, queued when it completes, will carry the identity)."""
    if row.state not in FINISHED_STATES:
        return
    cow = animal_payload(tx, row.animal_id)
    session_kept = create_row(tx, SESSION, row.key) is not None
    # A finished session was queued when it completed; no create row means it was sent and
    # pruned since, so it is recreated-or-found and written.
    amend(
        tx,
        SESSION,
        row.key,
        {**cow, "id_source": row.id_source},
        recreate=session_payload(tx, row),
        after=(METER, row.meter_id),
    )
    _production_change(tx, row, session_kept)


def queue_production_change(tx: Session, row: SessionRow) -> None:
    """Bring a finished session's production record in line with it (cow, destination)."""
    if row.state in FINISHED_STATES:
        _production_change(tx, row, create_row(tx, SESSION, row.key) is not None)


def _production_change(tx: Session, row: SessionRow, session_kept: bool) -> None:
    """`queue_production_change`; `session_kept`: the session's own create row was still there
    (not pruned) before this transaction touched it."""
    if not wants_production(row):
        # No cow, or the milk did not go to the tank: a record not yet sent is taken back. One
        # Odoo already has stays (and is reported); the console never deletes in Odoo.
        withdraw(tx, PRODUCTION, row.key)
        return
    cow = animal_payload(tx, row.animal_id)
    if amend(tx, PRODUCTION, row.key, cow):
        return
    if session_kept:
        # The session's rows are still here, so no production record was ever queued.
        enqueue(tx, PRODUCTION, row.key, production_payload(tx, row), after=(SESSION, row.key))
        return
    # Both pruned: the production record may be in Odoo already (sent) or never have been
    # queued (no cow then); a create found by key or made, and the write, cover both.
    amend(
        tx,
        PRODUCTION,
        row.key,
        cow,
        recreate=production_payload(tx, row),
        after=(SESSION, row.key),
    )


def queue_session_fields(tx: Session, row: SessionRow, changed: Mapping[str, Any]) -> None:
    """Other corrections of a finished session (re-attached, milk destination...)."""
    if row.state not in FINISHED_STATES:
        return
    amend(
        tx,
        SESSION,
        row.key,
        dict(changed),
        recreate=session_payload(tx, row),
        after=(METER, row.meter_id),
    )
