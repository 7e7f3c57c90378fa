"""Where a milking's milk went, in the store: the recorder's ruling, the operator's confirmation.

- `SeparationHook` is a recorder completion hook: in the completed session's own transaction it
  decides (`milkconsole.herd.separation.decide`, from the stored herd) whether the milk had to be
  kept out, sets `destination` ('diverted' | 'tank') and `divert_reason`, and when a cow's milk
  had to be diverted and nobody confirmed it, raises a CRITICAL `divert_unconfirmed` alert for
  the supervisor. It runs before the session is queued, so Odoo's milk.session carries the
  destination and a diverted milking gets no production record.
- `confirm_divert` records the operator's "milk diverted" (during or after the milking),
  audited; a late confirmation resolves the alert.
- `review_destination` rules again on a finished session whose cow changed (a cow named by
  hand, a tag registered, a herd list that now knows the tag); `review_since` on a cow's
  milkings since a treatment recorded for her.

The rules (`[separation]`) are kept in `sync_state` by the runtime (`set_rules`), so every
writer rules alike. 'diverted' with no confirmer means the console ruled the milk out and
nobody said it was diverted: the alert asks the supervisor to check the tank.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, tzinfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from milkconsole.herd.separation import DivertDecision, SeparationRules, decide, operator_decision
from milkconsole.meters.events import FINISHED_STATES, SessionSnapshot
from milkconsole.store.outbound import (
    queue_alert,
    queue_production_change,
    queue_session_fields,
)
from milkconsole.store.schema import AlertRow, Animal, SessionRow, SyncState, append_audit, utc_now
from milkconsole.store.treatments import separation_inputs

log = logging.getLogger(__name__)

ALERT_KIND = "divert_unconfirmed"
_RULES = "separation.rules"


def set_rules(tx: Session, rules: SeparationRules) -> None:
    """Keep the parlour's separation rules where every writer finds them."""
    text = json.dumps(rules.as_dict(), sort_keys=True)
    row = tx.get(SyncState, _RULES)
    if row is None:
        tx.add(SyncState(key=_RULES, value=text))
    elif row.value != text:
        row.value = text


def rules_of(tx: Session) -> SeparationRules:
    row = tx.get(SyncState, _RULES)
    if row is None or not row.value:
        return SeparationRules()
    values = json.loads(row.value)
    return SeparationRules(
        colostrum_milkings=int(values["colostrum_milkings"]),
        colostrum_max_days=float(values["colostrum_max_days"]),
    )


def decision_for(tx: Session, row: SessionRow, zone: tzinfo | None = None) -> DivertDecision:
    """What the herd says about this session's milk (not who confirmed what)."""
    if row.animal_id is None:
        return decide(None, row.started_at)
    rules = rules_of(tx)
    cows = separation_inputs(tx, row.started_at, rules, animal_ids=[row.animal_id])
    return decide(cows.get(row.animal_id), row.started_at, rules, zone=zone)


def _label(tx: Session, row: SessionRow) -> str:
    animal = tx.get(Animal, row.animal_id) if row.animal_id is not None else None
    if animal is None:
        return "unidentified cow"
    return f"cow {animal.number}" + (f" {animal.name}" if animal.name else "")


def _rule(tx: Session, row: SessionRow, zone: tzinfo | None) -> bool:
    """Set the finished session's destination and reason; True when its milk had to be kept
    out and nobody confirmed it."""
    decision = decision_for(tx, row, zone)
    if row.divert_confirmed_by is not None:
        row.destination = "diverted"
        row.divert_reason = decision.reason_text or row.divert_reason or "diverted by the operator"
        return False
    if decision.divert:
        row.destination = "diverted"
        row.divert_reason = decision.reason_text
        return True
    row.destination, row.divert_reason = "tank", None
    return False


def _open_alert(tx: Session, row: SessionRow) -> AlertRow | None:
    return tx.scalars(
        select(AlertRow).where(
            AlertRow.key == f"{row.key}:{ALERT_KIND}", AlertRow.state.in_(("open", "acknowledged"))
        )
    ).first()


def _raise(tx: Session, row: SessionRow) -> None:
    key = f"{row.key}:{ALERT_KIND}"
    existing = tx.scalars(select(AlertRow).where(AlertRow.key == key)).first()
    message = (
        f"{_label(tx, row)}, stall {row.stall}: milk to be kept out of the tank "
        f"({row.divert_reason}), {row.yield_l:.1f} L; nobody confirmed it was diverted. "
        "Check where it went (the bulk tank?)"
    )
    if existing is not None:
        if existing.state == "resolved":
            existing.state, existing.resolved_at, existing.resolved_by = "open", None, None
            existing.message = message
            queue_alert(tx, existing)
        return
    alert = AlertRow(
        key=key,
        kind=ALERT_KIND,
        condition=None,
        severity="critical",
        state="open",
        animal_id=row.animal_id,
        rfid=row.rfid,
        session_key=row.key,
        meter_id=row.meter_id,
        message=message,
        raised_at=row.ended_at or utc_now(),
    )
    tx.add(alert)
    queue_alert(tx, alert)
    log.error("%s", message)


def _resolve(tx: Session, row: SessionRow, by: str, note: str) -> None:
    alert = _open_alert(tx, row)
    if alert is None:
        return
    alert.state, alert.resolved_at, alert.resolved_by, alert.note = "resolved", utc_now(), by, note
    queue_alert(tx, alert)


class SeparationHook:
    """The recorder's completion hook for milk separation (see the module docstring)."""

    def __init__(self, zone: tzinfo | None = None) -> None:
        self.zone = zone

    def __call__(self, tx: Session, snapshot: SessionSnapshot) -> None:
        row = tx.get(SessionRow, snapshot.key)
        if row is None or row.state not in FINISHED_STATES:
            return
        if _rule(tx, row, self.zone):
            _raise(tx, row)
        tx.flush()


def review_destination(tx: Session, row: SessionRow, zone: tzinfo | None = None) -> None:
    """Rule again on a finished session whose cow changed; Odoo learns a changed destination
    (and the production record follows), the alert is raised or resolved."""
    if row.state not in FINISHED_STATES:
        return  # the completion hook rules on it
    before = (row.destination, row.divert_reason)
    unconfirmed = _rule(tx, row, zone)
    if unconfirmed:
        _raise(tx, row)
    else:
        _resolve(tx, row, "console", "the cow was corrected: her milk may go in the tank")
    if (row.destination, row.divert_reason) != before:
        queue_session_fields(
            tx, row, {"destination": row.destination, "divert_reason": row.divert_reason}
        )
        queue_production_change(tx, row)


def review_since(tx: Session, animal_id: int, since: datetime) -> None:
    """A cow's milkings since `since` ruled again (a treatment recorded for her then: their
    milk may have had to be kept out)."""
    for row in tx.scalars(
        select(SessionRow).where(SessionRow.animal_id == animal_id, SessionRow.started_at >= since)
    ):
        review_destination(tx, row)


def confirm_divert(
    tx: Session,
    key: str,
    actor: str,
    *,
    reason: str | None = None,
    role: str | None = None,
    at: datetime | None = None,
    zone: tzinfo | None = None,
) -> SessionRow:
    """The operator says this milking's milk went to the divert line; audited. `reason`: why,
    when the herd gives none (blood, clots). LookupError when the session is not stored yet."""
    row = tx.get(SessionRow, key)
    if row is None:
        raise LookupError(f"no milk session with key {key!r}")
    if row.divert_confirmed_by is not None:
        return row
    decision = decision_for(tx, row, zone)
    if not decision.divert:
        decision = operator_decision(reason or "diverted by the operator")
    before = {"destination": row.destination, "divert_confirmed_by": None}
    row.destination = "diverted"
    row.divert_reason = decision.reason_text
    row.divert_confirmed_by = actor
    row.divert_confirmed_at = at or utc_now()
    row.updated_at = utc_now()
    append_audit(
        tx,
        actor=actor,
        role=role,
        action="milk_diverted",
        target=f"milk_session:{key}",
        before=before,
        after={
            "destination": "diverted",
            "divert_reason": row.divert_reason,
            "divert_confirmed_by": actor,
        },
    )
    if row.state in FINISHED_STATES:
        _resolve(tx, row, actor, "confirmed diverted at the stall after the milking ended")
        queue_session_fields(
            tx,
            row,
            {
                "destination": "diverted",
                "divert_reason": row.divert_reason,
                "divert_confirmed_by": actor,
            },
        )
        queue_production_change(tx, row)
    tx.flush()
    return row
