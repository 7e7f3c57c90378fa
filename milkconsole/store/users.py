"""The console's users in the store: who they are, their PIN hashes, and the grant check.

`check_grant` is what every change that needs a PIN calls inside its own write transaction: the
grant must allow the action (`milkconsole.grants`) and its user must still exist with that role,
so a grant outlives neither its user nor a change of role, and the check and the change are one.

The user changes are audited in their own transaction. The rules that need no database (what a
name or a PIN may look like, hashing a PIN) are `milkconsole.supervision.users` and `.pins`,
which call these with the name checked and the PIN already hashed. Unlocks and wrong PINs are
audit rows too (`record_unlock`); `pin_failures` reads them back so a restart buys no guesses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from milkconsole.grants import AccessDenied, Grant, Role, UserError, refuse_unless_allowed
from milkconsole.store.db import Database
from milkconsole.store.schema import AuditEntry, User, append_audit, utc_now

# Enough audit rows to see the back-off at its longest (it stops growing long before).
_PIN_FAILURES_LOOKBACK = 64


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A console user, without the PIN hash."""

    name: str
    role: Role
    created_at: datetime


def _info(row: User) -> UserInfo:
    return UserInfo(row.name, cast(Role, row.role), row.created_at)


def check_grant(tx: Session, grant: Grant | None, action: str) -> Grant:
    """Refuse (AccessDenied) unless `grant` allows `action` and its user still has that role.

    Call it inside the write transaction of the change, so the check and the change are one.
    """
    grant = refuse_unless_allowed(grant, action)
    role = tx.scalar(select(User.role).where(User.name == grant.user))
    if role != grant.role:
        raise AccessDenied(f"{grant.user} is no longer a {grant.role}; enter the PIN again")
    return grant


# -- reading --------------------------------------------------------------------------------------


def list_users(db: Database) -> list[UserInfo]:
    """Every user, by role and then name."""
    with db.read() as tx:
        return [_info(u) for u in tx.scalars(select(User).order_by(User.role, User.name))]


def get_user(db: Database, name: str) -> UserInfo | None:
    with db.read() as tx:
        row = tx.scalar(select(User).where(User.name == name))
        return None if row is None else _info(row)


def has_supervisor(db: Database) -> bool:
    with db.read() as tx:
        return bool(tx.scalar(select(func.count()).where(User.role == "supervisor")))


def credentials(db: Database, name: str) -> tuple[UserInfo, str] | None:
    """The user called `name` and their stored PIN hash (None: no such user). Only the PIN
    check (`milkconsole.supervision.users.UserStore.verify`) asks for the hash."""
    with db.read() as tx:
        row = tx.scalar(select(User).where(User.name == name))
        return None if row is None else (_info(row), row.pin_hash)


def pin_failures(db: Database) -> tuple[int, datetime | None]:
    """Wrong PINs in a row since the last unlock (as audited) and when the last one was."""
    with db.read() as tx:
        rows = tx.execute(
            select(AuditEntry.action, AuditEntry.at)
            .where(AuditEntry.action.in_(("unlock", "pin_accepted", "pin_refused")))
            .order_by(AuditEntry.id.desc())
            .limit(_PIN_FAILURES_LOOKBACK)
        ).all()
    failures, last_at = 0, None
    for action, at in rows:
        if action != "pin_refused":
            break
        failures += 1
        last_at = last_at or at
    return failures, last_at


# -- changing -------------------------------------------------------------------------------------


def record_unlock(
    db: Database,
    actor: str,
    ok: bool,
    *,
    failures: int = 0,
    wait_s: float = 0.0,
    target: str = "console",
) -> None:
    """Audit one unlock (`ok`) or one wrong PIN (`failures` in a row, then `wait_s`).

    `target` is where the PIN was typed: the console, or `web:<token label>` for a PIN
    checked for one action from a phone (audited as `pin_accepted`, not `unlock`: the
    console stays locked)."""
    with db.write() as tx:
        if ok:
            action = "unlock" if target == "console" else "pin_accepted"
            append_audit(tx, actor=actor, action=action, target=target)
        else:
            append_audit(
                tx,
                actor=actor,
                action="pin_refused",
                target=target,
                after={"failures_in_a_row": failures, "backoff_s": wait_s},
            )


def add_user(db: Database, name: str, role: Role, pin_hash: str, *, by: Grant | None) -> UserInfo:
    """Add a user (audited). `by` must be a supervisor's grant, except for the very first
    supervisor (no supervisor exists yet), who authorises their own addition."""
    with db.write() as tx:
        supervisors = tx.scalar(select(func.count()).where(User.role == "supervisor")) or 0
        if by is None:
            if supervisors:
                raise AccessDenied("adding a user needs a supervisor PIN")
            if role != "supervisor":
                raise UserError("the first user must be a supervisor (who then adds the rest)")
            actor, actor_role = name, "supervisor"
        else:
            check_grant(tx, by, "manage_users")
            actor, actor_role = by.user, by.role
        if tx.scalar(select(User.id).where(func.lower(User.name) == name.lower())):
            raise UserError(f"a user called {name!r} already exists")
        now = utc_now()
        tx.add(User(name=name, role=role, pin_hash=pin_hash, created_at=now))
        append_audit(
            tx,
            actor=actor,
            role=actor_role,
            action="user_add",
            target=f"user:{name}",
            after={"name": name, "role": role, "first_supervisor": by is None},
            at=now,
        )
        return UserInfo(name, role, now)


def set_user_pin(db: Database, name: str, pin_hash: str, *, by: Grant) -> None:
    """Store a new PIN hash: a supervisor's change for anyone, or a user's own (audited, the
    hash not logged)."""
    with db.write() as tx:
        if by.user != name:
            check_grant(tx, by, "manage_users")
        else:
            role = tx.scalar(select(User.role).where(User.name == by.user))
            if role != by.role:
                raise AccessDenied(f"{by.user} is no longer a {by.role}")
        row = _row(tx, name)
        row.pin_hash = pin_hash
        append_audit(
            tx,
            actor=by.user,
            role=by.role,
            action="user_pin_change",
            target=f"user:{name}",
            after={"pin": "changed"},
        )


def set_user_role(db: Database, name: str, role: Role, *, by: Grant) -> None:
    """Make a user a technician or a supervisor; the last supervisor cannot be demoted."""
    with db.write() as tx:
        check_grant(tx, by, "manage_users")
        row = _row(tx, name)
        if row.role == role:
            return
        if row.role == "supervisor":
            _keep_a_supervisor(tx, name)
        before = row.role
        row.role = role
        append_audit(
            tx,
            actor=by.user,
            role=by.role,
            action="user_role_change",
            target=f"user:{name}",
            before={"role": before},
            after={"role": role},
        )


def remove_user(db: Database, name: str, *, by: Grant) -> None:
    """Remove a user (their past actions stay in the audit log under their name)."""
    with db.write() as tx:
        check_grant(tx, by, "manage_users")
        row = _row(tx, name)
        if row.role == "supervisor":
            _keep_a_supervisor(tx, name)
        before = {"name": row.name, "role": row.role}
        tx.delete(row)
        append_audit(
            tx,
            actor=by.user,
            role=by.role,
            action="user_remove",
            target=f"user:{name}",
            before=before,
        )


def _row(tx: Session, name: str) -> User:
    row = tx.scalar(select(User).where(User.name == name))
    if row is None:
        raise UserError(f"no user called {name!r}")
    return row


def _keep_a_supervisor(tx: Session, name: str) -> None:
    others = tx.scalar(select(func.count()).where(User.role == "supervisor", User.name != name))
    if not others:
        raise UserError(f"{name} is the last supervisor: add another supervisor first")
