"""The `milkconsole sync` and `milkconsole odoo` commands.

    milkconsole sync [--once | --status | --retry-dead]   push the outbox, pull the herd
    milkconsole odoo login [--url U] [--db D] [--user L] [--password-stdin] [--no-check]
                           [--credential-file F]      (a file for a service, not the keyring)
    milkconsole odoo check                                  can we log in; is the contract there
    milkconsole odoo logout                                 forget the stored secret

`add_sync_arguments` / `run_sync` and `add_odoo_arguments` / `run_odoo` plug into the main
`milkconsole` parser; `python -m milkconsole.sync.cli` runs them alone (the crash tests do, to
start fast). Under `odoo`, `--db` is the Odoo database, as Odoo's own tools call it.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from milkconsole.errors import ConfigError
from milkconsole.paths import default_config_path, default_db_path
from milkconsole.sync.client import (
    OdooAuthError,
    OdooError,
    OdooUnavailable,
)
from milkconsole.sync.connect import connect
from milkconsole.sync.settings import OdooSettings, load_odoo_settings, normalize_url

log = logging.getLogger(__name__)

Common = Callable[..., None]


def _own_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="parlour config file")
    p.add_argument("--db", type=Path, default=None, help="SQLite database")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")


def add_sync_arguments(subparsers: Any, common: Common | None = None) -> None:
    """Add `sync` to the main parser's subparsers (`common` adds --config/--db/--verbose)."""
    p = subparsers.add_parser("sync", help="send recorded data to Odoo and fetch the herd")
    (common or _own_common)(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one pass, then exit")
    mode.add_argument("--status", action="store_true", help="show the outbox and exit")
    mode.add_argument(
        "--retry-dead", action="store_true", help="give the records Odoo refused another go"
    )


def add_odoo_arguments(subparsers: Any, common: Common | None = None) -> None:
    """Add `odoo login|check|logout` (`common` is accepted for symmetry; `--db` here is the
    Odoo database, so the SQLite --db option is not added)."""
    p = subparsers.add_parser("odoo", help="the farm's Odoo: log in, check the contract")
    sub = p.add_subparsers(dest="odoo_command", required=True)
    for name, text in (
        ("login", "store the Odoo password / API key in the OS keyring"),
        ("check", "log in and check the models and fields the sync needs"),
        ("logout", "forget the stored Odoo password / API key"),
    ):
        s = sub.add_parser(name, help=text)
        s.add_argument("--config", type=Path, default=None, help="parlour config file")
        s.add_argument("--url", default=None, help="Odoo address, https://host[:port]")
        s.add_argument("--db", dest="odoo_db", default=None, help="Odoo database name")
        s.add_argument("--user", default=None, help="Odoo login")
        s.add_argument("--verbose", "-v", action="store_true", help="debug logging")
        if name == "login":
            s.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the password / API key from standard input (for scripts)",
            )
            s.add_argument("--no-check", action="store_true", help="store without trying to log in")
            s.add_argument(
                "--credential-file",
                type=Path,
                default=None,
                help="write the secret to this file (mode 0600) instead of the OS keyring: for "
                "the gateway run as a service (systemd LoadCredential= or [odoo] secret_file)",
            )


# -- sync ---------------------------------------------------------------------------------------


def _settings_or_none(args: argparse.Namespace) -> tuple[Path, OdooSettings | None]:
    path = getattr(args, "config", None) or default_config_path()
    return path, load_odoo_settings(path)


def run_sync(args: argparse.Namespace) -> int:
    """`milkconsole sync`: exit 0 when the pass (or the loop) ended normally, 1 otherwise
    (`--once`: also when Odoo refused a record, which is then listed)."""
    from milkconsole.store.db import open_database
    from milkconsole.store.outbox import Outbox
    from milkconsole.sync.engine import SyncEngine

    config_path, settings = _settings_or_none(args)
    db = open_database(getattr(args, "db", None) or default_db_path())
    try:
        outbox = Outbox(db)
        if args.status:
            _print_outbox(outbox, settings, config_path)
            return 0
        if args.retry_dead:
            n = outbox.requeue_dead([i.id for i in outbox.dead()])
            print(f"{n} refused record(s) queued again")
            return 0
        if settings is None:
            print(
                f"milkconsole: Odoo sync is not set up: {config_path} has no [odoo] section "
                "(see docs/odoo.md)",
                file=sys.stderr,
            )
            return 1
        if args.once:
            engine = SyncEngine(db, settings)
            engine.start()
            try:
                report = engine.run_once()
            except OdooError as exc:
                print(f"milkconsole: sync: {_advice(exc, settings)}", file=sys.stderr)
                return 1
            finally:
                engine.close()
            created = ", ".join(f"{n} {m}" for m, n in report.created.items() if n) or "nothing"
            print(
                f"sync: created {created}; {report.already_in_odoo} already in Odoo, "
                f"{report.written} updated, {report.dead} refused, {report.retried} to retry; "
                f"{report.animals_pulled} animals pulled ({report.duration_s:.1f} s)"
            )
            if report.deferred:
                print(f"{report.deferred} record(s) wait for their cow or meter in Odoo")
            for w in report.warnings:
                print(f"warning: {w}")
            if report.dead:
                print(
                    f"milkconsole: sync: Odoo refused {report.dead} record(s) in this pass; "
                    "`milkconsole sync --status` lists them, `--retry-dead` sends them again "
                    "after the cause is fixed",
                    file=sys.stderr,
                )
                for item in outbox.dead()[-report.dead :]:
                    print(
                        f"refused #{item.id} {item.model} {item.record_key}: {item.last_error}",
                        file=sys.stderr,
                    )
                return 1
            return 0
        return _run_loop(db, settings)
    finally:
        db.close()


def _run_loop(db: Any, settings: OdooSettings) -> int:
    from milkconsole.sync.status import SyncStatus
    from milkconsole.sync.worker import SyncWorker

    stop = threading.Event()
    last: list[str] = []

    def on_status(status: SyncStatus) -> None:
        line = status.summary + (f" — {status.last_error}" if status.last_error else "")
        if not last or last[-1] != line:
            last.append(line)
            print(line, flush=True)

    worker = SyncWorker(db, settings, on_status)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
    worker.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        worker.stop()
    return 0


def _advice(exc: OdooError, settings: OdooSettings) -> str:
    if isinstance(exc, OdooAuthError):
        return (
            f"{exc.message}. Store the right one with: milkconsole odoo login --url "
            f"{settings.url} --db {settings.database} --user {settings.login}"
        )
    if isinstance(exc, OdooUnavailable):
        return f"{exc.message}; the records stay in the outbox and go when Odoo is back"
    return exc.message


def _print_outbox(outbox: Any, settings: OdooSettings | None, config_path: Path) -> None:
    counts = outbox.counts()
    where = settings.account if settings else f"not set up ({config_path} has no [odoo])"
    print(f"Odoo: {where}")
    print(
        f"outbox: {counts['pending']} pending, {counts['in_flight']} in flight, "
        f"{counts['sent']} sent, {counts['dead']} refused"
    )
    oldest = outbox.oldest_pending_at()
    if oldest is not None:
        print(f"oldest waiting since {oldest.isoformat()}")
    for item in outbox.dead():
        print(f"refused #{item.id} {item.model} {item.record_key}: {item.last_error}")


# -- odoo ---------------------------------------------------------------------------------------


def _login_settings(args: argparse.Namespace) -> OdooSettings:
    config_path, configured = _settings_or_none(args)
    url = args.url or (configured.url if configured else None)
    database = args.odoo_db or (configured.database if configured else None)
    user = args.user or (configured.login if configured else None)
    missing = [opt for opt, v in (("--url", url), ("--db", database), ("--user", user)) if not v]
    if missing:
        raise ConfigError(
            str(config_path),
            "odoo",
            f"give {', '.join(missing)} (or set url, database and login in the [odoo] section)",
        )
    assert url and database and user
    base = configured or OdooSettings(url="", database="", login="", source="command line")
    from dataclasses import replace

    allow = base.allow_insecure_http
    settings = replace(
        base,
        url=normalize_url(url, "command line", "--url"),
        database=database,
        login=user,
    )
    if (
        settings.url.startswith("http://")
        and not allow
        and settings.host
        not in (
            "localhost",
            "127.0.0.1",
            "::1",
        )
    ):
        raise ConfigError(
            "command line",
            "--url",
            f"{settings.url} is plain http: the password would cross the network readable; "
            "use https://",
        )
    if configured and (
        configured.url,
        configured.database,
        configured.login,
    ) != (settings.url, settings.database, settings.login):
        print(
            f"note: {config_path} [odoo] names {configured.account}; the sync uses that "
            f"account, not {settings.account}",
            file=sys.stderr,
        )
    elif configured is None:
        print(
            f'note: add to {config_path}:\n[odoo]\nurl = "{settings.url}"\n'
            f'database = "{settings.database}"\nlogin = "{settings.login}"',
            file=sys.stderr,
        )
    return settings


def run_odoo(args: argparse.Namespace) -> int:
    """`milkconsole odoo login|check|logout`."""
    from milkconsole.sync import secrets

    settings = _login_settings(args)
    if args.odoo_command == "logout":
        gone = secrets.delete_secret(settings)
        print(f"{'forgot' if gone else 'no secret stored for'} {settings.account}")
        return 0
    if args.odoo_command == "check":
        return _check(settings)
    # login: a script or an installer pipes the secret in; only a person at a terminal is asked
    if args.password_stdin or not sys.stdin.isatty():
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = getpass.getpass(f"Odoo password or API key for {settings.account}: ")
    if not secret:
        print("milkconsole: odoo login: empty password / API key", file=sys.stderr)
        return 1
    if args.credential_file is None:
        secrets.backend_name()  # fail early, before asking the server, if there is no keyring
    if not args.no_check:
        try:
            client = connect(settings, secret)
        except OdooAuthError as exc:
            print(f"milkconsole: odoo login: {exc.message}; nothing stored", file=sys.stderr)
            return 1
        except OdooUnavailable as exc:
            print(
                f"warning: could not check the login now ({exc.message}); storing it anyway",
                file=sys.stderr,
            )
        else:
            print(
                f"logged in to Odoo {client.server_version} at {settings.url} as "
                f"{settings.login} ({client.transport})"
            )
            client.close()
    if args.credential_file is not None:
        secrets.write_credential_file(args.credential_file, secret)
        print(
            f"written to {args.credential_file} (mode 0600) for {settings.account}; give it to "
            "the service with LoadCredential=odoo-secret:<that file> or [odoo] secret_file"
        )
        return 0
    secrets.store_secret(settings, secret)
    print(f"stored in the OS keyring ({secrets.backend_name()}) for {settings.account}")
    return 0


def _check(settings: OdooSettings) -> int:
    from milkconsole.sync.check import check_contract
    from milkconsole.sync.contract import Contract

    try:
        client = connect(settings)
    except OdooError as exc:
        print(f"milkconsole: odoo check: {_advice(exc, settings)}", file=sys.stderr)
        return 1
    try:
        print(f"Odoo {client.server_version} at {settings.url}, transport {client.transport}")
        problems = check_contract(client, Contract(settings)).problems
    finally:
        client.close()
    if not problems:
        print("contract: every model, field, link and value the console sends is there")
        return 0
    for p in problems:
        print(f"contract: {p}")
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m milkconsole.sync.cli sync|odoo ...` without the rest of the CLI."""
    from milkconsole.logging_setup import setup_logging

    parser = argparse.ArgumentParser(prog="milkconsole")
    sub = parser.add_subparsers(dest="command", required=True)
    add_sync_arguments(sub)
    add_odoo_arguments(sub)
    args = parser.parse_args(argv)
    setup_logging(verbose=getattr(args, "verbose", False))
    from milkconsole.errors import run_reporting_errors

    return run_reporting_errors(
        lambda: run_sync(args) if args.command == "sync" else run_odoo(args)
    )


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
