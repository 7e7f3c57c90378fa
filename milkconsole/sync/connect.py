"""Logging in to Odoo: the transport picked for a server, and its secret found.

`connect(settings)` takes `settings.transport` or, for `auto`, asks the server its version
(JSON-2 from 19 on, since Odoo 19 deprecates `/jsonrpc` and plans to remove it in 22), then
logs in with the secret from the keyring (or the one given). It lives apart from
`sync.client` so the transports build on the client and nothing there imports them back.
"""

from __future__ import annotations

import logging

from milkconsole.sync.client import OdooClient, OdooNotConfigured, ServerVersion, probe_version
from milkconsole.sync.odoo_json2 import Json2Client
from milkconsole.sync.odoo_rpc import OdooRpcClient
from milkconsole.sync.secrets import get_secret
from milkconsole.sync.settings import OdooSettings

log = logging.getLogger(__name__)


def connect(settings: OdooSettings | None, secret: str | None = None) -> OdooClient:
    """A logged-in client for `settings` (the secret from the keyring unless given).

    Raises `OdooNotConfigured`, `OdooAuthError` or `OdooUnavailable` with a message for the user.
    """
    if settings is None:
        raise OdooNotConfigured("Odoo sync is not set up: the config file has no [odoo] section")
    if secret is None:
        secret = get_secret(settings)
        if not secret:
            raise OdooNotConfigured(
                f"no Odoo password / API key stored for {settings.account}; run "
                f"`milkconsole odoo login --url {settings.url} --db {settings.database} "
                f"--user {settings.login}`"
            )
    transport = settings.transport
    version: ServerVersion | None = None
    if transport == "auto":
        version = probe_version(settings)
        transport = "json2" if version.major >= 19 else "jsonrpc"
        log.debug("Odoo %s at %s: using %s", version.text, settings.url, transport)
    if transport == "json2":
        client: OdooClient = Json2Client(settings, secret, version.text if version else None)
    else:
        client = OdooRpcClient(settings, secret)
    return client
