"""`milkconsole users ...`: console users from the command line (a supervisor authorises each
change with their PIN; the very first supervisor needs nobody).

    milkconsole users add --role supervisor NAME     # the first supervisor; PIN prompted
    milkconsole users list
    milkconsole users set-pin NAME --as SUPERVISOR
    milkconsole users set-role NAME --role technician --as SUPERVISOR
    milkconsole users remove NAME --as SUPERVISOR
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any, TextIO

from milkconsole.grants import LOGIN_ROLES, AccessDenied, Grant, UserError
from milkconsole.paths import default_db_path
from milkconsole.store.db import open_database
from milkconsole.supervision.users import UserStore


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
