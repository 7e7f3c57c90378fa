"""`milkconsole web token new|list|revoke`: phone access for a headless gateway (no window to
show the QR code in). The QR code is drawn in the terminal, once; the database keeps only the
token's hash. New and revoke need a supervisor's name and PIN, checked with the same back-off
as the console and audited (target `cli`).

    milkconsole web token new "Vet phone" --as Ann --config parlour.toml
    milkconsole web token list
    milkconsole web token revoke 3 --as Ann
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from milkconsole.errors import ConfigError
from milkconsole.grants import AccessDenied
from milkconsole.paths import default_db_path
from milkconsole.store.db import open_database
from milkconsole.store.web_tokens import TokenError, WebTokenStore
from milkconsole.supervision.lock import AccessControl, AccessSettings
from milkconsole.supervision.users import UserStore
from milkconsole.web.certificate import read_certificate
from milkconsole.web.qr import qr_text
from milkconsole.web.service import in_url, url_host_for
from milkconsole.web.settings import parse_web_settings

if TYPE_CHECKING:
    from milkconsole.config import ParlourConfig


def add_web_arguments(subparsers: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    web = subparsers.add_parser("web", help="the live view for phones: phone access tokens")
    tokens = web.add_subparsers(dest="web_command", required=True).add_parser(
        "token", help="hand out, list or revoke phone access"
    )
    cmds = tokens.add_subparsers(dest="token_command", required=True)
    p = cmds.add_parser("new", help="new phone access: prints its link and QR code once")
    p.add_argument("label", help="whose phone, or where it is")
    p.add_argument("--as", dest="as_user", required=True, metavar="SUPERVISOR")
    p.add_argument("--pin-stdin", action="store_true", help="read the PIN from standard input")
    common(p)
    p = cmds.add_parser("list", help="every phone access, active first")
    common(p)
    p = cmds.add_parser("revoke", help="take a phone's access back")
    p.add_argument("token_id", type=int)
    p.add_argument("--as", dest="as_user", required=True, metavar="SUPERVISOR")
    p.add_argument("--pin-stdin", action="store_true", help="read the PIN from standard input")
    common(p)


def run_web(
    args: argparse.Namespace,
    config: ParlourConfig,
    *,
    out: TextIO = sys.stdout,
    stdin: TextIO = sys.stdin,
) -> int:
    """`config` is the parlour's, loaded by the command line. Exit status 0 ok, 2 refused
    input, 4 refused authorisation."""
    section = config.extra.get("web")
    if section is None:
        raise ConfigError(config.source, "web", "missing: the live view is not configured")
    settings = parse_web_settings(section, config.source)
    db_path = args.db or default_db_path()
    db = open_database(db_path)
    try:
        store = WebTokenStore(db)
        if args.token_command == "list":
            for t in store.tokens():
                state = "active" if t.active else f"revoked by {t.revoked_by}"
                used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
                print(f"{t.id}\t{t.label}\t{t.created_by}\tlast used {used}\t{state}", file=out)
            return 0
        pin = (
            stdin.readline().strip()
            if args.pin_stdin
            else getpass.getpass(f"PIN of {args.as_user}: ")
        )
        access = AccessControl(UserStore(db), AccessSettings.from_parlour(config))
        try:
            grant = access.authorize(args.as_user, pin, "web_access", where="cli")
            if args.token_command == "revoke":
                info = store.revoke(grant, args.token_id)
                print(f"phone access {info.id} ({info.label}) revoked", file=out)
                return 0
            if settings.port == 0:
                raise ConfigError(config.source, "web.port", "0 (any free port): set a fixed port")
            issued = store.issue(grant, args.label)
        except AccessDenied as exc:
            print(f"milkconsole web: {exc}", file=sys.stderr)
            return 4
        except TokenError as exc:
            print(f"milkconsole web: {exc}", file=sys.stderr)
            return 2
        host = in_url(url_host_for(settings))
        link = f"{settings.scheme}://{host}:{settings.port}/?token={issued.secret}"
        print(qr_text(link), file=out)
        print(f"Phone access {issued.info.id} for {issued.info.label}: {link}", file=out)
        cert = read_certificate(settings.cert_dir_for(db_path)) if settings.tls else None
        if cert is not None:
            print(f"Certificate SHA-256: {cert.fingerprint_sha256}", file=out)
        elif settings.tls:
            print("The certificate is made when the gateway first starts the view.", file=out)
        return 0
    finally:
        db.close()
