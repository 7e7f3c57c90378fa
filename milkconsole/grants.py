"""Who may do what at the console: the three roles, the permission table, and a `Grant`.

Three roles. The *operator* never logs in (the console is theirs while nobody has unlocked it).
A *technician* calibrates meters and runs meter tests; a *supervisor* manages users and reads the
audit log. What each role may do is the `PERMISSIONS` table (data, read by the UI and the core
alike). A `Grant` is what entering a PIN buys (`milkconsole.supervision.lock`); every change
that needs one takes it into its write transaction, where `milkconsole.store.users.check_grant`
also checks that the user still exists with that role.

Plain values only: the store, the supervisor's and the technician's modules and the UI all
import this, so it imports nothing of theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from milkconsole.errors import MilkConsoleError

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


class AccessDenied(MilkConsoleError):
    """The action needs a PIN of another role (or the console is locked)."""


class UserError(MilkConsoleError):
    """A user change was refused (bad name or PIN, unknown user, last supervisor...)."""


@dataclass(frozen=True, slots=True)
class Grant:
    """A user who entered their PIN: what the guarded changes take and record as the actor."""

    user: str
    role: Role
    granted_at: datetime = field(default_factory=lambda: datetime.now(UTC))

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


def refuse_unless_allowed(grant: Grant | None, action: str, *, locked: bool = False) -> Grant:
    """`grant` if its role may do `action`; else AccessDenied saying whose PIN it needs.

    Only what the grant itself says: the store's `check_grant` also asks the database whether
    the user still has that role. `locked` words the refusal of no grant for the console's lock.
    """
    allowed = allowed_roles(action)
    label = ACTION_LABELS.get(action, action)
    if grant is None:
        raise AccessDenied(f"{'locked: ' if locked else ''}to {label} enter {needs_text(action)}")
    if grant.role not in allowed:
        raise AccessDenied(f"{grant.user} ({grant.role}) may not {label}: {needs_text(action)}")
    return grant
