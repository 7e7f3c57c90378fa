"""What the MQTT publisher tells the rest of the console: frozen values that cross threads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

BrokerStateName = Literal[
    "connecting", "online", "offline", "auth_failed", "tls_failed", "busy", "stopped"
]

_LABEL: dict[str, str] = {
    "connecting": "connecting",
    "online": "online",
    "offline": "offline",
    "auth_failed": "login refused",
    "tls_failed": "certificate refused",
    "busy": "another process publishes",
    "stopped": "stopped",
}


@dataclass(frozen=True, slots=True)
class MqttStatus:
    """The broker connection as the status bar shows it. Frozen: handed from the publisher's
    thread to the GUI thread.

    `backlog` counts messages waiting (pending or unacknowledged), `sent` the messages the
    broker acknowledged since start, `last_error` says why it is not online (in words a farmer
    can act on: the broker down, the password refused, the certificate not trusted).
    """

    state: BrokerStateName
    broker: str
    backlog: int = 0
    sent: int = 0
    last_sent_at: datetime | None = None
    last_error: str | None = None

    @property
    def label(self) -> str:
        return _LABEL[self.state]

    @property
    def needs_action(self) -> bool:
        """Someone must fix something (the login or the certificate); waiting will not help."""
        return self.state in ("auth_failed", "tls_failed")

    @property
    def summary(self) -> str:
        """One short line: 'MQTT online · 3 waiting'."""
        parts = [f"MQTT {self.label}"]
        if self.backlog:
            parts.append(f"{self.backlog} waiting")
        return " · ".join(parts)
