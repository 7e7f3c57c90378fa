"""Console users: adding, changing and removing them (audited), and checking their PINs.

`UserStore` is what the console, the web service and the CLIs use. It checks what needs no
database (a user name, a role a person may log in with, a PIN's form), hashes PINs
(`milkconsole.supervision.pins`, ~50 ms, so outside the write lock) and hands plain values to
`milkconsole.store.users`, which checks the grant and writes the change and its audit row in one
transaction.
"""

from __future__ import annotations

import re
from datetime import datetime

from milkconsole.grants import LOGIN_ROLES, OPERATOR, Grant, Role, UserError
from milkconsole.store import users as user_rows
from milkconsole.store.db import Database
from milkconsole.store.users import UserInfo
from milkconsole.supervision.pins import DUMMY_HASH, hash_pin, verify_pin

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9 ._-]{0,31}$")


def validate_name(name: str) -> str:
    """A user name: a letter, then up to 31 letters, digits, space, '.', '_' or '-'."""
    name = name.strip() if isinstance(name, str) else name
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UserError(
            f"user name {name!r}: start with a letter; up to 32 letters, digits, space, . _ -"
        )
    if name.lower() == OPERATOR:
        raise UserError(f"user name {name!r} is reserved for the operator, who has no PIN")
    return name


def login_role(role: str) -> Role:
    """`role` if a person may log in with it (technician, supervisor); else UserError."""
    if role not in LOGIN_ROLES:
        raise UserError(f"role {role!r}: a user is a technician or a supervisor")
    return role


class UserStore:
    """The console's users (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def users(self) -> list[UserInfo]:
        return user_rows.list_users(self._db)

    def get(self, name: str) -> UserInfo | None:
        return user_rows.get_user(self._db, name)

    def has_supervisor(self) -> bool:
        return user_rows.has_supervisor(self._db)

    def verify(self, name: str, pin: str) -> UserInfo | None:
        """The user if `pin` is theirs; None for a wrong PIN or an unknown name (same cost)."""
        found = user_rows.credentials(self._db, name.strip())
        info, stored = found if found is not None else (None, DUMMY_HASH)
        ok = verify_pin(pin, stored)
        return info if ok and info is not None else None

    def record_unlock(
        self,
        name: str,
        ok: bool,
        *,
        failures: int = 0,
        wait_s: float = 0.0,
        target: str = "console",
    ) -> None:
        """Audit one unlock or one wrong PIN (`milkconsole.store.users.record_unlock`)."""
        actor = name.strip()[:64] or "?"
        user_rows.record_unlock(
            self._db, actor, ok, failures=failures, wait_s=wait_s, target=target
        )

    def pin_failures(self) -> tuple[int, datetime | None]:
        """Wrong PINs in a row since the last unlock (as audited) and when the last one was."""
        return user_rows.pin_failures(self._db)

    def add(self, name: str, role: str, pin: str, *, by: Grant | None) -> UserInfo:
        """Add a user. `by` must be a supervisor's grant, except for the very first supervisor
        (no supervisor exists yet: `milkconsole users add --role supervisor NAME`)."""
        name = validate_name(name)
        role_ = login_role(role)
        pin_hash = hash_pin(pin)  # ~50 ms: outside the write lock
        return user_rows.add_user(self._db, name, role_, pin_hash, by=by)

    def set_pin(self, name: str, pin: str, *, by: Grant) -> None:
        """Change a PIN: a supervisor's for anyone, or a user's own (audited, hash not logged)."""
        user_rows.set_user_pin(self._db, name, hash_pin(pin), by=by)

    def set_role(self, name: str, role: str, *, by: Grant) -> None:
        """Make a user a technician or a supervisor; the last supervisor cannot be demoted."""
        user_rows.set_user_role(self._db, name, login_role(role), by=by)

    def remove(self, name: str, *, by: Grant) -> None:
        """Remove a user (their past actions stay in the audit log under their name)."""
        user_rows.remove_user(self._db, name, by=by)
