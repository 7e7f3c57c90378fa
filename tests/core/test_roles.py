"""Users, PIN hashes and the PIN lock, on a real SQLite file, with an injected clock."""

from __future__ import annotations

import argparse
import io
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from milkconsole.config import ParlourConfig
from milkconsole.errors import ConfigError
from milkconsole.grants import AccessDenied, Grant, UserError
from milkconsole.store.db import open_database
from milkconsole.store.schema import AuditEntry
from milkconsole.supervision.lock import AccessControl, AccessSettings, PinBackoff, PinRefused
from milkconsole.supervision.pins import hash_pin, verify_pin
from milkconsole.supervision.users import UserStore
from milkconsole.supervision.users_cli import add_users_arguments, run_users
from tests.helpers.tech_helpers import (
    SUPERVISOR,
    SUPERVISOR_PIN,
    TECHNICIAN,
    TECHNICIAN_PIN,
    parlour_config,
    tech_db,
)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


def test_pin_hash_is_salted_scrypt_and_verifies_only_the_right_pin() -> None:
    a, b = hash_pin("2468"), hash_pin("2468")
    assert a != b  # a fresh salt each time
    assert a.startswith("scrypt$16384$8$1$") and "2468" not in a
    assert verify_pin("2468", a) and verify_pin("2468", b)
    assert not verify_pin("2469", a)
    assert not verify_pin("2468", "md5$abc")
    assert not verify_pin("2468", "scrypt$16384$8$1$not base64!$xx")


def test_a_pin_is_four_to_eight_digits() -> None:
    for bad in ("123", "123456789", "12a4", "", "１２３４"):
        with pytest.raises(UserError, match="4 to 8 digits"):
            hash_pin(bad)


def test_pins_are_stored_only_as_hashes(tmp_path: Path) -> None:
    t = tech_db(tmp_path)
    con = sqlite3.connect(t.db.path)
    dump = "\n".join(con.iterdump())
    con.close()
    assert SUPERVISOR_PIN not in dump and TECHNICIAN_PIN not in dump
    assert dump.count("scrypt$") == 2


def test_the_first_supervisor_needs_no_pin_but_every_later_user_needs_a_supervisors(
    tmp_path: Path,
) -> None:
    users = UserStore(open_database(tmp_path / "u.sqlite"))
    with pytest.raises(UserError, match="first user must be a supervisor"):
        users.add("Tom", "technician", "1111", by=None)
    users.add("Sue", "supervisor", "2222", by=None)
    with pytest.raises(AccessDenied, match="supervisor PIN"):
        users.add("Sam", "supervisor", "3333", by=None)
    sue = Grant("Sue", "supervisor")
    users.add("Tom", "technician", "1111", by=sue)
    with pytest.raises(AccessDenied, match="may not manage users"):
        users.add("Tim", "technician", "4444", by=Grant("Tom", "technician"))
    with pytest.raises(UserError, match="already exists"):
        users.add("tom", "technician", "5555", by=sue)
    with pytest.raises(UserError, match="reserved for the operator"):
        users.add("Operator", "technician", "5555", by=sue)
    assert [(u.name, u.role) for u in users.users()] == [
        ("Sue", "supervisor"),
        ("Tom", "technician"),
    ]


def test_user_changes_are_audited_without_any_pin_or_hash(tmp_path: Path) -> None:
    t = tech_db(tmp_path)
    t.users.set_pin(TECHNICIAN, "8642", by=t.technician)  # one's own PIN
    t.users.set_role(TECHNICIAN, "supervisor", by=t.supervisor)
    t.users.remove(TECHNICIAN, by=t.supervisor)
    with t.db.read() as tx:
        rows = tx.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [(r.actor, r.action, r.target) for r in rows] == [
        ("Sue", "user_add", "user:Sue"),
        ("Sue", "user_add", "user:Tom"),
        ("Tom", "user_pin_change", "user:Tom"),
        ("Sue", "user_role_change", "user:Tom"),
        ("Sue", "user_remove", "user:Tom"),
    ]
    assert rows[0].after == {"name": "Sue", "role": "supervisor", "first_supervisor": True}
    assert rows[3].before == {"role": "technician"} and rows[3].after == {"role": "supervisor"}
    text = repr([(r.before, r.after) for r in rows])
    assert "scrypt" not in text and "8642" not in text


def test_the_last_supervisor_can_be_neither_removed_nor_demoted(tmp_path: Path) -> None:
    t = tech_db(tmp_path)
    with pytest.raises(UserError, match="last supervisor"):
        t.users.remove(SUPERVISOR, by=t.supervisor)
    with pytest.raises(UserError, match="last supervisor"):
        t.users.set_role(SUPERVISOR, "technician", by=t.supervisor)


def test_console_locks_again_after_five_minutes_without_activity(tmp_path: Path) -> None:
    t = tech_db(tmp_path)
    clock = Clock()
    access = AccessControl(t.users, AccessSettings(lock_after_s=300), clock=clock)
    with pytest.raises(AccessDenied, match="locked: to calibrate meters enter a technician PIN"):
        access.require("calibrate")
    grant = access.unlock(TECHNICIAN, TECHNICIAN_PIN)
    assert grant.user == TECHNICIAN and access.require("calibrate") == grant
    clock.advance(299)
    access.touch()  # the technician pressed a key
    clock.advance(299)
    assert access.grant == grant
    assert access.seconds_until_lock() == pytest.approx(1.0)
    clock.advance(1)
    assert access.grant is None
    with pytest.raises(AccessDenied, match="locked"):
        access.require("calibrate")
    access.touch()  # activity while locked does not unlock
    assert access.grant is None


def test_a_supervisor_pin_does_not_open_calibration_and_a_technicians_not_the_audit_log(
    tmp_path: Path,
) -> None:
    t = tech_db(tmp_path)
    access = AccessControl(t.users, clock=Clock())
    access.unlock(SUPERVISOR, SUPERVISOR_PIN)
    with pytest.raises(AccessDenied, match=r"Sue \(supervisor\) may not calibrate meters"):
        access.require("calibrate")
    assert access.require("view_audit").user == SUPERVISOR
    access.unlock(TECHNICIAN, TECHNICIAN_PIN)
    with pytest.raises(AccessDenied, match="supervisor PIN"):
        access.require("view_audit")
    access.lock()
    assert access.grant is None


def test_wrong_pins_back_off_doubling_and_no_pin_is_checked_meanwhile(tmp_path: Path) -> None:
    t = tech_db(tmp_path)
    clock = Clock()
    settings = AccessSettings(free_attempts=3, backoff_first_s=5, backoff_max_s=20)
    access = AccessControl(t.users, settings, clock=clock)
    for _ in range(2):
        with pytest.raises(PinRefused) as refused:
            access.unlock(TECHNICIAN, "0000")
        assert refused.value.retry_in_s == 0
    with pytest.raises(PinRefused) as refused:
        access.unlock("Nobody", TECHNICIAN_PIN)  # an unknown name counts the same
    assert refused.value.retry_in_s == 5
    # Even the right PIN is not looked at while backing off.
    with pytest.raises(PinBackoff, match="try again in 5 s"):
        access.unlock(TECHNICIAN, TECHNICIAN_PIN)
    clock.advance(5)
    with pytest.raises(PinRefused) as refused:
        access.unlock(TECHNICIAN, "9999")
    assert refused.value.retry_in_s == 10
    clock.advance(10)
    with pytest.raises(PinRefused) as refused:
        access.unlock(TECHNICIAN, "9999")
    assert refused.value.retry_in_s == 20
    clock.advance(20)
    with pytest.raises(PinRefused) as refused:
        access.unlock(TECHNICIAN, "9999")
    assert refused.value.retry_in_s == 20  # capped
    assert access.failed_attempts == 6
    clock.advance(20)
    assert access.unlock(TECHNICIAN, TECHNICIAN_PIN).role == "technician"
    assert access.failed_attempts == 0 and access.backoff_remaining_s() == 0


def test_restarting_the_console_does_not_buy_more_pin_guesses(tmp_path: Path) -> None:
    t = tech_db(tmp_path)
    settings = AccessSettings(free_attempts=3, backoff_first_s=5, backoff_max_s=300)
    wall = [datetime(2026, 11, 27, 6, 0, tzinfo=UTC)]
    clock = Clock()
    access = AccessControl(t.users, settings, clock=clock, wall_clock=lambda: wall[0])
    for _ in range(5):
        with pytest.raises(PinRefused):
            access.unlock("Mallory", "1234")
        clock.advance(300)  # the guesser waits out each back-off
    with t.db.read() as tx:
        refused = tx.scalars(select(AuditEntry).where(AuditEntry.action == "pin_refused")).all()
    assert [(a.actor, a.target, a.after["failures_in_a_row"]) for a in refused] == [
        ("Mallory", "console", n) for n in range(1, 6)
    ]
    last = refused[-1].at
    # The console starts again (a new lock on the same database) 4 s after the fifth guess:
    # the back-off it had earned (5 * 2**2 = 20 s) still has 16 s to run.
    wall[0] = last + timedelta(seconds=4)
    again = AccessControl(t.users, settings, clock=Clock(), wall_clock=lambda: wall[0])
    assert again.failed_attempts == 5
    assert again.backoff_remaining_s() == pytest.approx(16.0)
    with pytest.raises(PinBackoff):
        again.unlock(TECHNICIAN, TECHNICIAN_PIN)
    # Long after, the wait is over but the count is not: the next wrong PIN waits 40 s.
    wall[0] = last + timedelta(hours=1)
    clock = Clock()
    later = AccessControl(t.users, settings, clock=clock, wall_clock=lambda: wall[0])
    assert later.backoff_remaining_s() == 0
    with pytest.raises(PinRefused) as wrong:
        later.unlock(TECHNICIAN, "0000")
    assert wrong.value.retry_in_s == 40
    # A right PIN (audited as an unlock) ends the count for the next start too.
    clock.advance(40)
    assert later.unlock(TECHNICIAN, TECHNICIAN_PIN).user == TECHNICIAN
    fresh = AccessControl(t.users, settings, clock=Clock(), wall_clock=lambda: wall[0])
    assert (fresh.failed_attempts, fresh.backoff_remaining_s()) == (0, 0)


def test_access_settings_come_from_the_config_and_bad_values_are_named() -> None:
    cfg = parlour_config(extra={"calibration": {"access": {"lock_after_s": 120}}})
    assert AccessSettings.from_parlour(cfg).lock_after_s == 120
    assert AccessSettings.from_parlour(parlour_config()).lock_after_s == 300
    for table, match in (
        ({"lock_after": 1}, r"calibration\.access\.lock_after: unknown key"),
        ({"lock_after_s": "5 min"}, r"calibration\.access\.lock_after_s: '5 min' is not a number"),
        ({"free_attempts": 0}, "free_attempts must be at least 1"),
    ):
        bad: ParlourConfig = parlour_config(extra={"calibration": {"access": table}})
        with pytest.raises(ConfigError, match=match):
            AccessSettings.from_parlour(bad)


def _users_cli(argv: list[str], stdin: str) -> tuple[int, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="milkconsole")
    add_users_arguments(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return run_users(args, stdin=io.StringIO(stdin)), args


def test_users_command_creates_the_first_supervisor_then_wants_one_for_more(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "cli.sqlite")
    rc, _ = _users_cli(
        ["users", "add", "--role", "supervisor", "Sue", "--db", db, "--pin-stdin"], "4321\n"
    )
    assert rc == 0 and "added supervisor Sue" in capsys.readouterr().out
    rc, _ = _users_cli(
        ["users", "add", "--role", "technician", "Tom", "--db", db, "--pin-stdin"], "1357\n"
    )
    assert rc == 4 and "--as SUPERVISOR" in capsys.readouterr().err
    rc, _ = _users_cli(
        ["users", "add", "--role", "technician", "Tom", "--db", db, "--pin-stdin", "--as", "Sue"],
        "0000\n1357\n",
    )
    assert rc == 4 and "wrong name or PIN" in capsys.readouterr().err
    rc, _ = _users_cli(
        ["users", "add", "--role", "technician", "Tom", "--db", db, "--pin-stdin", "--as", "Sue"],
        "4321\n12\n",
    )
    assert rc == 2 and "4 to 8 digits" in capsys.readouterr().err
    rc, _ = _users_cli(
        ["users", "add", "--role", "technician", "Tom", "--db", db, "--pin-stdin", "--as", "Sue"],
        "4321\n1357\n",
    )
    assert rc == 0
    rc, _ = _users_cli(["users", "list", "--db", db], "")
    out = capsys.readouterr().out
    assert rc == 0 and "Sue\tsupervisor" in out and "Tom\ttechnician" in out
    users = UserStore(open_database(Path(db)))
    assert users.verify("Tom", "1357") is not None
