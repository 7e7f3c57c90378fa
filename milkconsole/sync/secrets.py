"""The Odoo password / API key, kept in the OS keyring (the `keyring` package) and nowhere else.

One secret per account (`login@url/database`) under the service name `milkconsole-odoo`. Which
keyring backend is used is keyring's own business (its documented `PYTHON_KEYRING_BACKEND`
variable or `keyring.set_keyring()` choose another); when the machine has none — a bare server
with no Secret Service running, say — every call here raises `SecretsError` saying so, instead of
keyring's generic failure or, worse, falling back to a plain file.
"""

from __future__ import annotations

import keyring
import keyring.errors
from keyring.backend import KeyringBackend

from milkconsole.errors import MilkConsoleError
from milkconsole.sync.settings import OdooSettings

SERVICE = "milkconsole-odoo"


class SecretsError(MilkConsoleError):
    """The OS keyring cannot be used (none installed, locked, refused)."""


def _backend() -> KeyringBackend:
    backend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    # keyring's stand-ins when nothing usable was found: `fail` raises on use, `null` silently
    # forgets; neither may hold the farm's Odoo password.
    if name.startswith(("keyring.backends.fail.", "keyring.backends.null.")):
        raise SecretsError(
            "no OS keyring is available to keep the Odoo password (keyring found only "
            f"{name}). On Windows and macOS the system keyring is built in; on Linux start a "
            "Secret Service (GNOME Keyring or KWallet) in the session that runs Milk Console. "
            "See docs/odoo.md, 'Secrets'."
        )
    return backend


def backend_name() -> str:
    """The keyring backend in use, for `milkconsole odoo status` (raises if there is none)."""
    backend = _backend()
    return f"{type(backend).__module__}.{type(backend).__name__}"


def store_secret(settings: OdooSettings, secret: str) -> None:
    """Keep `secret` for `settings.account`, replacing any earlier one."""
    if not secret:
        raise SecretsError("refusing to store an empty Odoo password / API key")
    backend = _backend()
    try:
        backend.set_password(SERVICE, settings.account, secret)
    except keyring.errors.KeyringError as exc:
        raise SecretsError(f"the OS keyring refused to store the Odoo secret: {exc}") from exc


def get_secret(settings: OdooSettings) -> str | None:
    """The secret kept for `settings.account`, or None when `odoo login` was never run."""
    backend = _backend()
    try:
        return backend.get_password(SERVICE, settings.account)
    except keyring.errors.KeyringError as exc:
        raise SecretsError(f"the OS keyring refused to give the Odoo secret: {exc}") from exc


def delete_secret(settings: OdooSettings) -> bool:
    """Forget the secret for `settings.account`; False when there was none."""
    backend = _backend()
    try:
        backend.delete_password(SERVICE, settings.account)
    except keyring.errors.PasswordDeleteError:
        return False
    except keyring.errors.KeyringError as exc:
        raise SecretsError(f"the OS keyring refused to delete the Odoo secret: {exc}") from exc
    return True
