"""Who may do what at the console: roles, users with hashed PINs, and the PIN lock.

Three roles. The *operator* never logs in (the console is theirs while nobody has unlocked it).
A *technician* calibrates meters and runs meter tests; a *supervisor* manages users and reads the
audit log. What each role may do is the `PERMISSIONS` table (data, read by the UI and the core
alike). A PIN is stored only as a salted scrypt hash (`hash_pin`) and compared in constant time.

`AccessControl` is the console's lock: `unlock(name, pin)` gives a `Grant` for a while, every
user action calls `touch()`, and after `lock_after_s` without one the console is locked again.
Wrong PINs back off: after `free_attempts` failures in a row each further failure doubles a wait
during which no PIN is even checked. Every unlock and every wrong PIN is an audit row
(`unlock`, `pin_refused`), and a console starting again takes up the back-off from them: a
restart does not buy more guesses. The clocks are injectable, so tests need no sleeping.

Every change that needs a PIN takes the `Grant` into its write transaction and calls
`check_grant`, which also checks the user still exists with that role: a grant outlives neither
its user nor a change of role. User changes are audited in the same transaction.

    milkconsole users add --role supervisor NAME     # the first supervisor; PIN prompted
    milkconsole users list
    milkconsole users set-pin NAME --as SUPERVISOR
    milkconsole users remove NAME --as SUPERVISOR

Settings (`[calibration.access]` in the parlour config; every key optional)::

    lock_after_s = 300        # lock again after this long without a touch or a key press
    free_attempts = 3         # wrong PINs in a row before the back-off starts
    backoff_first_s = 5       # first wait; doubled on each further wrong PIN
    backoff_max_s = 300
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import logging
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from milkconsole.config import ParlourConfig
from milkconsole.errors import ConfigError, MilkConsoleError
from milkconsole.store.db import Database
from milkconsole.store.schema import AuditEntry, User, append_audit, utc_now

log = logging.getLogger(__name__)

Role = Literal["operator", "technician", "supervisor"]
ROLES: tuple[Role, ...] = ("operator", "technician", "supervisor")
LOGIN_ROLES: tuple[Role, ...] = ("technician", "supervisor")
OPERATOR = "operator"  # the actor name of everything done without a PIN

# Who may do what. Calibration is the technician's alone (the product owner: nobody else may
# change a calibration factor); users and the audit log are the supervisor's.
PERMISSIONS: Mapping[str, frozenset[Role]] = {
    "calibrate": frozenset({"technician"}),
    "bulk_tank": frozenset({"technician"}),
    "self_test": frozenset({"technician", "supervisor"}),
    "change_config": frozenset({"technician", "supervisor"}),
    "alert_acknowledge": frozenset({"technician", "supervisor"}),
    "alert_resolve": frozenset({"technician", "supervisor"}),
    "manage_users": frozenset({"supervisor"}),
    "view_audit": frozenset({"supervisor"}),
    # Phones (milkconsole.web): who may hand out or take back access, and acknowledge from one.
    "web_access": frozenset({"supervisor"}),
    "remote_acknowledge": frozenset({"supervisor"}),
    # Milk kept out of the tank: the supervisor's call (and the herd list it works from).
    "record_treatment": frozenset({"supervisor"}),
    "keep_milk_out": frozenset({"supervisor"}),
    "import_herd": frozenset({"supervisor"}),
}

ACTION_LABELS: Mapping[str, str] = {
    "calibrate": "calibrate meters",
    "bulk_tank": "reconcile with the bulk tank",
    "self_test": "run a meter self-test",
    "change_config": "change settings",
    "alert_acknowledge": "acknowledge alerts",
    "alert_resolve": "resolve alerts",
    "manage_users": "manage users",
    "view_audit": "read the audit log",
    "web_access": "give or revoke phone access",
    "remote_acknowledge": "acknowledge alerts from a phone",
    "record_treatment": "record a treatment",
    "keep_milk_out": "keep a cow's milk out of the tank",
    "import_herd": "import the herd",
}

_PIN = re.compile(r"^[0-9]{4,8}$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9 ._-]{0,31}$")

# scrypt at n=2**14, r=8 costs ~16 MiB and ~50 ms here: cheap for one unlock, dear for someone
# trying all 10**4 four-digit PINs against a copied database file.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32


class AccessDenied(MilkConsoleError):
    """The action needs a PIN of another role (or the console is locked)."""


class PinRefused(AccessDenied):
    """A wrong name or PIN. `retry_in_s` is the wait the next attempt faces (0: none)."""

    def __init__(self, message: str, retry_in_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_in_s = retry_in_s


class PinBackoff(AccessDenied):
    """Too many wrong PINs: no PIN is checked for `retry_in_s` more seconds."""

    def __init__(self, retry_in_s: float) -> None:
        super().__init__(f"too many wrong PINs: try again in {math.ceil(retry_in_s)} s")
        self.retry_in_s = retry_in_s


class UserError(MilkConsoleError):
    """A user change was refused (bad name or PIN, unknown user, last supervisor...)."""


# -- PIN hashing ------------------------------------------------------------------------------


def validate_pin(pin: str) -> str:
    """The PIN if it is 4-8 digits; else UserError saying so (without echoing it)."""
    if not isinstance(pin, str) or not _PIN.fullmatch(pin):
        raise UserError("a PIN is 4 to 8 digits")
    return pin


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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    """`scrypt$n$r$p$salt$key` (base64) for a PIN; a fresh random salt per call by default."""
    validate_pin(pin)
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    key = hashlib.scrypt(
        pin.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=_KEY_BYTES
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_pin(pin: str, stored: str) -> bool:
    """Whether `pin` matches a `hash_pin` string (constant-time compare; bad input is False)."""
    try:
        scheme, n, r, p, salt_b64, key_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        key = base64.b64decode(key_b64, validate=True)
        # The parameters come from the stored string, so hashes made with older settings verify.
        candidate = hashlib.scrypt(
            pin.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(key)
        )
    except (ValueError, TypeError) as exc:
        log.error("a stored PIN hash is malformed (%s); refusing it", type(exc).__name__)
        return False
    return hmac.compare_digest(candidate, key)


# A hash to check unknown names against, so "no such user" takes as long as "wrong PIN".
_DUMMY_HASH = (
    f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(b'0' * _SALT_BYTES)}${_b64(b'0' * 32)}"
)


# -- grants -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grant:
    """A user who entered their PIN: what the guarded changes take and record as the actor."""

    user: str
    role: Role
    granted_at: datetime = field(default_factory=utc_now)

    def allows(self, action: str) -> bool:
        return self.role in allowed_roles(action)


def allowed_roles(action: str) -> frozenset[Role]:
    """The roles that may do `action`; an unknown action is a programming error."""
    try:
        return PERMISSIONS[action]
    except KeyError:
        raise ValueError(
            f"unknown action {action!r} (known: {', '.join(sorted(PERMISSIONS))})"
        ) from None


def needs_text(action: str) -> str:
    """'a technician PIN' / 'a technician or supervisor PIN' for messages."""
    roles = [r for r in LOGIN_ROLES if r in allowed_roles(action)]
    return f"a {' or '.join(roles)} PIN"


def check_grant(tx: Session, grant: Grant | None, action: str) -> Grant:
    """Refuse (AccessDenied) unless `grant` allows `action` and its user still has that role.

    Call it inside the write transaction of the change, so the check and the change are one.
    """
    allowed = allowed_roles(action)
    label = ACTION_LABELS.get(action, action)
    if grant is None:
        raise AccessDenied(f"to {label} enter {needs_text(action)}")
    if grant.role not in allowed:
        raise AccessDenied(f"{grant.user} ({grant.role}) may not {label}: {needs_text(action)}")
    role = tx.scalar(select(User.role).where(User.name == grant.user))
    if role != grant.role:
        raise AccessDenied(f"{grant.user} is no longer a {grant.role}; enter the PIN again")
    return grant


# -- users ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A console user, without the PIN hash (which never leaves this module)."""

    name: str
    role: Role
    created_at: datetime


def _info(row: User) -> UserInfo:
    return UserInfo(row.name, cast(Role, row.role), row.created_at)


def _login_role(role: str) -> Role:
    if role not in LOGIN_ROLES:
        raise UserError(f"role {role!r}: a user is a technician or a supervisor")
    return role


# Enough audit rows to see the back-off at its longest (it stops growing long before).
_PIN_FAILURES_LOOKBACK = 64


class UserStore:
    """The users table: adding, changing and removing users (audited) and checking PINs."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def users(self) -> list[UserInfo]:
        with self._db.read() as tx:
            return [_info(u) for u in tx.scalars(select(User).order_by(User.role, User.name))]

    def get(self, name: str) -> UserInfo | None:
        with self._db.read() as tx:
            row = tx.scalar(select(User).where(User.name == name))
            return None if row is None else _info(row)

    def has_supervisor(self) -> bool:
        with self._db.read() as tx:
            return bool(tx.scalar(select(func.count()).where(User.role == "supervisor")))

    def verify(self, name: str, pin: str) -> UserInfo | None:
        """The user if `pin` is theirs; None for a wrong PIN or an unknown name (same cost)."""
        with self._db.read() as tx:
            row = tx.scalar(select(User).where(User.name == name.strip()))
            stored = row.pin_hash if row is not None else _DUMMY_HASH
            info = _info(row) if row is not None else None
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
        """Audit one unlock (`ok`) or one wrong PIN (`failures` in a row, then `wait_s`).

        `target` is where the PIN was typed: the console, or `web:<token label>` for a PIN
        checked for one action from a phone (audited as `pin_accepted`, not `unlock`: the
        console stays locked)."""
        actor = name.strip()[:64] or "?"
        with self._db.write() as tx:
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

    def pin_failures(self) -> tuple[int, datetime | None]:
        """Wrong PINs in a row since the last unlock (as audited) and when the last one was."""
        with self._db.read() as tx:
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

    def add(self, name: str, role: str, pin: str, *, by: Grant | None) -> UserInfo:
        """Add a user. `by` must be a supervisor's grant, except for the very first supervisor
        (no supervisor exists yet: `milkconsole users add --role supervisor NAME`)."""
        name = validate_name(name)
        role_ = _login_role(role)
        pin_hash = hash_pin(pin)  # ~50 ms: outside the write lock
        with self._db.write() as tx:
            supervisors = tx.scalar(select(func.count()).where(User.role == "supervisor")) or 0
            if by is None:
                if supervisors:
                    raise AccessDenied("adding a user needs a supervisor PIN")
                if role_ != "supervisor":
                    raise UserError("the first user must be a supervisor (who then adds the rest)")
                actor, actor_role = name, "supervisor"
            else:
                check_grant(tx, by, "manage_users")
                actor, actor_role = by.user, by.role
            if tx.scalar(select(User.id).where(func.lower(User.name) == name.lower())):
                raise UserError(f"a user called {name!r} already exists")
            now = utc_now()
            tx.add(User(name=name, role=role_, pin_hash=pin_hash, created_at=now))
            append_audit(
                tx,
                actor=actor,
                role=actor_role,
                action="user_add",
                target=f"user:{name}",
                after={"name": name, "role": role_, "first_supervisor": by is None},
                at=now,
            )
            return UserInfo(name, role_, now)

    def set_pin(self, name: str, pin: str, *, by: Grant) -> None:
        """Change a PIN: a supervisor's for anyone, or a user's own (audited, hash not logged)."""
        pin_hash = hash_pin(pin)
        with self._db.write() as tx:
            if by.user != name:
                check_grant(tx, by, "manage_users")
            else:
                role = tx.scalar(select(User.role).where(User.name == by.user))
                if role != by.role:
                    raise AccessDenied(f"{by.user} is no longer a {by.role}")
            row = self._row(tx, name)
            row.pin_hash = pin_hash
            append_audit(
                tx,
                actor=by.user,
                role=by.role,
                action="user_pin_change",
                target=f"user:{name}",
                after={"pin": "changed"},
            )

    def set_role(self, name: str, role: str, *, by: Grant) -> None:
        """Make a user a technician or a supervisor; the last supervisor cannot be demoted."""
        role_ = _login_role(role)
        with self._db.write() as tx:
            check_grant(tx, by, "manage_users")
            row = self._row(tx, name)
            if row.role == role_:
                return
            if row.role == "supervisor":
                self._keep_a_supervisor(tx, name)
            before = row.role
            row.role = role_
            append_audit(
                tx,
                actor=by.user,
                role=by.role,
                action="user_role_change",
                target=f"user:{name}",
                before={"role": before},
                after={"role": role_},
            )

    def remove(self, name: str, *, by: Grant) -> None:
        """Remove a user (their past actions stay in the audit log under their name)."""
        with self._db.write() as tx:
            check_grant(tx, by, "manage_users")
            row = self._row(tx, name)
            if row.role == "supervisor":
                self._keep_a_supervisor(tx, name)
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

    @staticmethod
    def _row(tx: Session, name: str) -> User:
        row = tx.scalar(select(User).where(User.name == name))
        if row is None:
            raise UserError(f"no user called {name!r}")
        return row

    @staticmethod
    def _keep_a_supervisor(tx: Session, name: str) -> None:
        others = tx.scalar(select(func.count()).where(User.role == "supervisor", User.name != name))
        if not others:
            raise UserError(f"{name} is the last supervisor: add another supervisor first")


# -- the lock ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessSettings:
    """How the PIN lock behaves; see the module docstring for the config keys."""

    lock_after_s: float = 300.0
    free_attempts: int = 3
    backoff_first_s: float = 5.0
    backoff_max_s: float = 300.0

    def __post_init__(self) -> None:
        if not self.lock_after_s > 0:
            raise ValueError(f"lock_after_s must be above 0, not {self.lock_after_s}")
        if self.free_attempts < 1:
            raise ValueError(f"free_attempts must be at least 1, not {self.free_attempts}")
        if not 0 < self.backoff_first_s <= self.backoff_max_s:
            raise ValueError("backoff_first_s must be above 0 and at most backoff_max_s")

    @classmethod
    def from_parlour(cls, config: ParlourConfig) -> AccessSettings:
        """`[calibration.access]` of a parlour config (defaults for what it leaves out)."""
        table = config_table(config, "calibration", "access")
        return settings_from_table(cls(), table, config.source, "calibration.access")

    def backoff_s(self, failures: int) -> float:
        """The wait after `failures` wrong PINs in a row (0 while under `free_attempts`)."""
        over = failures - self.free_attempts
        if over < 0:
            return 0.0
        return min(self.backoff_max_s, self.backoff_first_s * 2.0 ** min(over, 30))


def config_table(config: ParlourConfig, section: str, sub: str | None = None) -> Any:
    """`config.extra[section][sub]` (None when absent); a non-table is a ConfigError."""
    table: Any = config.extra.get(section)
    where = section
    if table is not None and not isinstance(table, Mapping):
        raise ConfigError(config.source, where, "must be a table")
    if sub is not None and table is not None:
        where = f"{section}.{sub}"
        table = table.get(sub)
        if table is not None and not isinstance(table, Mapping):
            raise ConfigError(config.source, where, "must be a table")
    return table


def settings_from_table(
    defaults: Any,
    table: Mapping[str, Any] | None,
    source: str,
    where: str,
    skip: tuple[str, ...] = (),
) -> Any:
    """`defaults` (a frozen dataclass of numbers/bools) with what a config table sets.

    Unknown keys, wrong types and values the dataclass refuses raise ConfigError naming
    `source` and `where.key`. Keys in `skip` (sub-tables) are left for their own reader.
    """
    if table is None:
        return defaults
    known = {f: type(getattr(defaults, f)) for f in defaults.__dataclass_fields__}
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key in skip:
            continue
        at = f"{where}.{key}"
        if key not in known:
            raise ConfigError(source, at, f"unknown key (known: {', '.join(sorted(known))})")
        kind = known[key]
        if kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(source, at, f"{value!r} is not true or false")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(source, at, f"{value!r} is not a number")
        elif not math.isfinite(value):
            raise ConfigError(source, at, f"{value!r} is not a finite number")
        elif kind is int and value != int(value):
            raise ConfigError(source, at, f"{value!r} is not a whole number")
        changes[key] = kind(value)
    try:
        return replace(defaults, **changes)
    except ValueError as exc:
        raise ConfigError(source, where, str(exc)) from exc


class AccessControl:
    """The console's PIN lock (see the module docstring). Thread-safe; cheap to query.

    `clock` is a monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        users: UserStore,
        settings: AccessSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.users = users
        self.settings = settings or AccessSettings()
        self._clock = clock
        self._lock = threading.Lock()
        self._grant: Grant | None = None
        self._last_activity = 0.0
        # Take up the back-off where the last run left it.
        self._failures, last_at = users.pin_failures()
        self._blocked_until = 0.0
        if self._failures and last_at is not None:
            since = (wall_clock() - last_at).total_seconds()
            left = self.settings.backoff_s(self._failures) - max(0.0, since)
            if left > 0:
                self._blocked_until = clock() + left

    # -- state --------------------------------------------------------------------------------
    @property
    def grant(self) -> Grant | None:
        """Who is unlocked now (None: locked; an idle grant expires here)."""
        with self._lock:
            return self._current_locked()

    def _current_locked(self) -> Grant | None:
        if self._grant is not None and (
            self._clock() - self._last_activity >= self.settings.lock_after_s
        ):
            log.info("console locked after %.0f s without activity", self.settings.lock_after_s)
            self._grant = None
        return self._grant

    def seconds_until_lock(self) -> float | None:
        with self._lock:
            if self._current_locked() is None:
                return None
            return self.settings.lock_after_s - (self._clock() - self._last_activity)

    def backoff_remaining_s(self) -> float:
        with self._lock:
            return max(0.0, self._blocked_until - self._clock())

    @property
    def failed_attempts(self) -> int:
        return self._failures

    # -- changes ------------------------------------------------------------------------------
    def unlock(self, name: str, pin: str) -> Grant:
        """Check the PIN; a Grant on success. PinBackoff while backing off (no PIN checked),
        PinRefused for a wrong name or PIN (counts toward the back-off)."""
        with self._lock:
            wait = self._blocked_until - self._clock()
            if wait > 0:
                raise PinBackoff(wait)
        user = self.users.verify(name, pin) if _PIN.fullmatch(pin or "") else None
        with self._lock:
            now = self._clock()
            if user is None:
                self._failures += 1
                failures = self._failures
                wait = self.settings.backoff_s(failures)
                self._blocked_until = now + wait
                log.warning("wrong PIN for %r (%d in a row)", name, failures)
            else:
                self._failures = 0
                self._blocked_until = 0.0
                grant = self._grant = Grant(user.name, user.role)
                self._last_activity = now
                log.info("console unlocked by %s (%s)", user.name, user.role)
        if user is None:
            self.users.record_unlock(name, False, failures=failures, wait_s=wait)
            raise PinRefused("wrong name or PIN", wait)
        self.users.record_unlock(user.name, True)
        return grant

    def authorize(self, name: str, pin: str, action: str, *, where: str) -> Grant:
        """A `Grant` for one `action` from somewhere else than the console (a phone: `where`
        like `web:Vet phone`), without unlocking the console.

        The same back-off as `unlock`: PinBackoff while it runs (no PIN checked), and a wrong
        name or PIN (PinRefused) counts toward it, so guesses from a phone and at the console
        share one limit. Both outcomes are audited with `where` as the target. A right PIN of
        a role that may not do `action` is AccessDenied (and is no wrong PIN)."""
        allowed = allowed_roles(action)
        with self._lock:
            wait = self._blocked_until - self._clock()
            if wait > 0:
                raise PinBackoff(wait)
        user = self.users.verify(name, pin) if _PIN.fullmatch(pin or "") else None
        with self._lock:
            if user is None:
                self._failures += 1
                failures = self._failures
                wait = self.settings.backoff_s(failures)
                self._blocked_until = self._clock() + wait
                log.warning("wrong PIN for %r from %s (%d in a row)", name, where, failures)
            else:
                self._failures = 0
                self._blocked_until = 0.0
        if user is None:
            self.users.record_unlock(name, False, failures=failures, wait_s=wait, target=where)
            raise PinRefused("wrong name or PIN", wait)
        self.users.record_unlock(user.name, True, target=where)
        if user.role not in allowed:
            label = ACTION_LABELS.get(action, action)
            raise AccessDenied(f"{user.name} ({user.role}) may not {label}: {needs_text(action)}")
        return Grant(user.name, user.role)

    def touch(self) -> None:
        """The user did something: the inactivity countdown starts again (if unlocked)."""
        with self._lock:
            if self._current_locked() is not None:
                self._last_activity = self._clock()

    def lock(self) -> None:
        with self._lock:
            if self._grant is not None:
                log.info("console locked by %s", self._grant.user)
            self._grant = None

    def require(self, action: str) -> Grant:
        """The current grant if it allows `action` (and counts as activity); else AccessDenied."""
        with self._lock:
            grant = self._current_locked()
            allowed = allowed_roles(action)
            label = ACTION_LABELS.get(action, action)
            if grant is None:
                raise AccessDenied(f"locked: to {label} enter {needs_text(action)}")
            if grant.role not in allowed:
                raise AccessDenied(
                    f"{grant.user} ({grant.role}) may not {label}: {needs_text(action)}"
                )
            self._last_activity = self._clock()
            return grant


# -- the `milkconsole users` command ------------------------------------------------------------


def add_users_arguments(subparsers: Any) -> None:
    """Register `users add|list|set-pin|set-role|remove` on the `milkconsole` subparsers."""
    users = subparsers.add_parser("users", help="console users (technicians, supervisors)")
    cmds = users.add_subparsers(dest="users_command", required=True)

    def common(p: argparse.ArgumentParser, *, auth: bool = True) -> None:
        p.add_argument("--db", type=Path, default=None, help="SQLite database")
        p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
        p.add_argument(
            "--pin-stdin",
            action="store_true",
            help="read PINs from standard input, one per line (for scripts), not the terminal",
        )
        if auth:
            p.add_argument("--as", dest="as_user", metavar="SUPERVISOR", help="who authorises it")

    p = cmds.add_parser("add", help="add a user (the first supervisor needs no --as)")
    p.add_argument("name")
    p.add_argument("--role", choices=LOGIN_ROLES, required=True)
    common(p)
    p = cmds.add_parser("list", help="list users and their roles")
    p.add_argument("--db", type=Path, default=None, help="SQLite database")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    p = cmds.add_parser("set-pin", help="set a user's PIN")
    p.add_argument("name")
    common(p)
    p = cmds.add_parser("set-role", help="make a user a technician or a supervisor")
    p.add_argument("name")
    p.add_argument("--role", choices=LOGIN_ROLES, required=True)
    common(p)
    p = cmds.add_parser("remove", help="remove a user")
    p.add_argument("name")
    common(p)


class _PinReader:
    def __init__(self, from_stdin: bool, stdin: TextIO) -> None:
        self.from_stdin = from_stdin
        self.stdin = stdin

    def read(self, prompt: str, *, confirm: bool = False) -> str:
        if self.from_stdin:
            return self.stdin.readline().strip()
        pin = getpass.getpass(prompt)
        if confirm and getpass.getpass("Again: ") != pin:
            raise UserError("the two PINs differ")
        return pin


def run_users(args: argparse.Namespace, *, stdin: TextIO | None = None) -> int:
    """Run a `users` command; exit status 0 ok, 2 refused input, 4 refused authorisation."""
    from milkconsole.paths import default_db_path
    from milkconsole.store.db import open_database

    db = open_database(args.db or default_db_path())
    try:
        store = UserStore(db)
        reader = _PinReader(getattr(args, "pin_stdin", False), stdin or sys.stdin)
        cmd = args.users_command
        if cmd == "list":
            for u in store.users():
                print(f"{u.name}\t{u.role}\t{u.created_at.isoformat()}")
            return 0
        try:
            grant = _cli_grant(store, args, reader)
            if cmd == "add":
                pin = reader.read(f"PIN for {args.name} (4-8 digits): ", confirm=True)
                info = store.add(args.name, args.role, pin, by=grant)
                print(f"added {info.role} {info.name}")
            elif cmd == "set-pin":
                assert grant is not None
                pin = reader.read(f"New PIN for {args.name}: ", confirm=True)
                store.set_pin(args.name, pin, by=grant)
                print(f"PIN of {args.name} changed")
            elif cmd == "set-role":
                assert grant is not None
                store.set_role(args.name, args.role, by=grant)
                print(f"{args.name} is now a {args.role}")
            elif cmd == "remove":
                assert grant is not None
                store.remove(args.name, by=grant)
                print(f"removed {args.name}")
            else:
                print(f"milkconsole users: unknown command {cmd!r}", file=sys.stderr)
                return 2
        except AccessDenied as exc:
            print(f"milkconsole users: {exc}", file=sys.stderr)
            return 4
        except UserError as exc:
            print(f"milkconsole users: {exc}", file=sys.stderr)
            return 2
        return 0
    finally:
        db.close()


def _cli_grant(store: UserStore, args: argparse.Namespace, reader: _PinReader) -> Grant | None:
    """The supervisor authorising a CLI change (None only to add the very first supervisor)."""
    as_user = getattr(args, "as_user", None)
    if as_user is None:
        if args.users_command == "add" and not store.has_supervisor():
            return None
        raise AccessDenied("a supervisor must authorise this: add --as SUPERVISOR")
    pin = reader.read(f"PIN of {as_user}: ")
    user = store.verify(as_user, pin)
    if user is None:
        raise AccessDenied("wrong name or PIN")
    return Grant(user.name, user.role)
