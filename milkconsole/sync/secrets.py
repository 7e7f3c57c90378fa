"""The Odoo password / API key (and the MQTT password): where a console or a service finds it.

In this order:

1. A systemd credential: `$CREDENTIALS_DIRECTORY/odoo-secret` (`LoadCredential=` in the unit),
   for the headless gateway run as a service, which has no desktop keyring.
2. A file named in the config (`[odoo] secret_file`). It must belong to the user the console
   runs as and be readable by nobody else (mode 0600 or 0400): anything looser is refused with
   the file named, since a readable secret is as good as published.
3. The OS keyring (the `keyring` package): one secret per account (`login@url/database`) under
   the service name `milkconsole-odoo`. Which backend is used is keyring's own business (its
   documented `PYTHON_KEYRING_BACKEND` variable or `keyring.set_keyring()` choose another); when
   the machine has none, every keyring call raises `SecretsError` saying so, instead of
   keyring's generic failure or a silent fallback to a plain file.

`write_credential_file` is what `milkconsole odoo login --credential-file` uses to make 1 or 2.

The MQTT broker's password is found the same way: `$CREDENTIALS_DIRECTORY/mqtt-password`, then
`[mqtt] secret_file`, then the keyring under `milkconsole-mqtt` (account `user@host:port`), kept
there by `milkconsole mqtt login` (`milkconsole.mqtt.password`).
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

import keyring
import keyring.errors
from keyring.backend import KeyringBackend

from milkconsole.errors import MilkConsoleError
from milkconsole.sync.settings import OdooSettings

SERVICE = "milkconsole-odoo"
MQTT_SERVICE = "milkconsole-mqtt"
ODOO_CREDENTIAL = "odoo-secret"
MQTT_CREDENTIAL = "mqtt-password"


class SecretsError(MilkConsoleError):
    """The OS keyring cannot be used (none installed, locked, refused)."""


def _backend() -> KeyringBackend:
    backend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    # keyring's stand-ins when nothing usable was found: `fail` raises on use, `null` silently
    # forgets; neither may hold the farm's Odoo password.
    if name.startswith(("keyring.backends.fail.", "keyring.backends.null.")):
        raise SecretsError(
            "no OS keyring is available to keep the Odoo or MQTT password (keyring found only "
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
    store_keyring_secret(SERVICE, settings.account, secret)


def store_keyring_secret(service: str, account: str, secret: str) -> None:
    """Keep `secret` in the OS keyring for `account` of `service`, replacing any earlier one."""
    if not secret:
        raise SecretsError("refusing to store an empty password")
    backend = _backend()
    try:
        backend.set_password(service, account, secret)
    except Exception as exc:  # keyring's errors, and a backend's own (no D-Bus session, say)
        raise SecretsError(f"the OS keyring refused to store the {service} secret: {exc}") from exc


def get_secret(settings: OdooSettings) -> str | None:
    """The secret for `settings.account`: the systemd credential, else the config's
    `secret_file`, else the keyring; None when none of them holds one."""
    found = credential_secret(ODOO_CREDENTIAL, settings.secret_file)
    if found is not None:
        return found
    return keyring_secret(SERVICE, settings.account)


def credential_secret(name: str, secret_file: Path | None) -> str | None:
    """The secret from `$CREDENTIALS_DIRECTORY/<name>` or from `secret_file` (checked), or None."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        path = Path(directory) / name
        # The unit's fallback `SetCredential=name:\n` (LoadCredential= of a missing file fails
        # the unit) gives a blank credential: no secret there, look further.
        if path.is_file() and path.read_text(encoding="utf-8").strip():
            return _read_secret(path, check_owner=False)  # systemd made it private
    if secret_file is not None:
        return _read_secret(secret_file, check_owner=True)
    return None


def _read_secret(path: Path, *, check_owner: bool) -> str:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SecretsError(f"{path}: the secret file does not exist") from None
    except OSError as exc:
        raise SecretsError(f"{path}: cannot read the secret file: {exc.strerror}") from exc
    if check_owner and sys.platform != "win32":
        if info.st_uid != os.geteuid():
            raise SecretsError(
                f"{path}: refused: the secret file belongs to uid {info.st_uid}, not to the user "
                f"running Milk Console (uid {os.geteuid()}); chown it to that user"
            )
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise SecretsError(
                f"{path}: refused: the secret file is readable by others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); chmod 600 it"
            )
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretsError(f"{path}: cannot read the secret file: {exc.strerror}") from exc
    if not text:
        raise SecretsError(f"{path}: the secret file is empty")
    return text


def write_credential_file(path: Path, secret: str) -> None:
    """Write `secret` to `path` readable by its owner only (0600), atomically: a reader sees the
    old file or the new one, never a half-written or world-readable one."""
    if not secret:
        raise SecretsError("refusing to store an empty password / API key")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".secret-", dir=path.parent)
    try:
        # mkstemp made it 0600 already, before a byte of the secret is in it.
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secret + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def keyring_secret(service: str, account: str) -> str | None:
    """The secret kept in the OS keyring for `account`, or None."""
    backend = _backend()
    try:
        return backend.get_password(service, account)
    except Exception as exc:  # keyring's errors, and a backend's own (no D-Bus session, say)
        raise SecretsError(f"the OS keyring refused to give the {service} secret: {exc}") from exc


def delete_secret(settings: OdooSettings) -> bool:
    """Forget the secret for `settings.account`; False when there was none."""
    return delete_keyring_secret(SERVICE, settings.account)


def delete_keyring_secret(service: str, account: str) -> bool:
    """Forget the keyring's secret for `account` of `service`; False when there was none."""
    backend = _backend()
    try:
        backend.delete_password(service, account)
    except keyring.errors.PasswordDeleteError:
        return False
    except Exception as exc:  # keyring's errors, and a backend's own (no D-Bus session, say)
        raise SecretsError(f"the OS keyring refused to delete the {service} secret: {exc}") from exc
    return True
