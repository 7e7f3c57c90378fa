"""The broker password: found like the Odoo secret (`milkconsole.sync.secrets`), kept by
`milkconsole mqtt login`.

Order: the systemd credential `$CREDENTIALS_DIRECTORY/mqtt-password`, then `[mqtt] secret_file`
(owner-only), then the OS keyring under the service `milkconsole-mqtt` and the account
`user@host:port`. No username: no password is looked for (an anonymous broker).
"""

from __future__ import annotations

from milkconsole.mqtt.settings import MqttSettings
from milkconsole.sync import secrets

SERVICE = secrets.MQTT_SERVICE
CREDENTIAL = secrets.MQTT_CREDENTIAL


def find_password(settings: MqttSettings) -> str | None:
    """The password for `settings.account`, or None when nothing holds one (or there is no
    username). Raises `SecretsError` when a secret file is unusable or no keyring exists."""
    if settings.username is None:
        return None
    found = secrets.credential_secret(CREDENTIAL, settings.secret_file)
    if found is not None:
        return found
    return secrets.keyring_secret(SERVICE, settings.account)


def store_password(settings: MqttSettings, password: str) -> None:
    secrets.store_keyring_secret(SERVICE, settings.account, password)


def forget_password(settings: MqttSettings) -> bool:
    return secrets.delete_keyring_secret(SERVICE, settings.account)
