"""Backups on real files: taken while a parlour records, checked, rotated, put back; a backup that
fails (no USB stick) is an alert and shows; restore refuses what it must refuse; the daily timer;
the `milkconsole backup` command; a backup killed half-way leaves the database as it was."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path

import pytest
from sqlalchemy import select

from milkconsole.app.entry import main as cli_main
from milkconsole.errors import ConfigError
from milkconsole.housekeeping import Housekeeping
from milkconsole.meters.events import FlowSample, SessionCompleted, SessionSnapshot, SessionStarted
from milkconsole.store import Recorder, SessionStore, open_database
from milkconsole.store.backup import (
    BackupError,
    BackupSettings,
    check_database,
    list_backups,
    restore_backup,
    rotate,
    take_backup,
)
from milkconsole.store.backup_jobs import BackupJobs
from milkconsole.store.db import Database, known_revisions
from milkconsole.store.retention import RetentionPolicy
from milkconsole.store.run_lock import DatabaseInUse, RunLock
from milkconsole.store.schema import AlertRow, AuditEntry, OutboxRow

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 4, 30, tzinfo=UTC)


def session(key: str, started: datetime, n: int = 90) -> SessionCompleted:
    samples = tuple(
        FlowSample(2.0 * i, round(0.05 * i, 2), round(2.0 + (i % 5) * 0.1, 2), 5.1)
        for i in range(n)
    )
    snap = SessionSnapshot(
        key=key,
        meter_id="M01",
        stall=1,
        started_at=started,
        state="completed",
        ended_at=started + timedelta(seconds=2 * n),
        duration_s=2.0 * n,
        yield_l=samples[-1].yield_l,
    )
    return SessionCompleted(snap, samples)


def keys_in(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {k for (k,) in conn.execute("SELECT key FROM milk_sessions")}
    finally:
        conn.close()


def test_a_backup_taken_while_a_parlour_records_is_whole_and_checked(tmp_path, db: Database):
    target = tmp_path / "usb"
    target.mkdir()
    rec = Recorder(db, farm_code="F1", checkpoint_s=0.05)
    rec.start()
    stop = threading.Event()
    written: list[str] = []

    def parlour() -> None:  # a busy parlour: a session started and one completed every few ms
        i = 0
        while not stop.is_set():
            key = f"S{i:05d}"
            started = T0 + timedelta(minutes=i)
            rec.submit(SessionStarted(SessionSnapshot(key, "M01", 1, started)))
            rec.submit(session(key, started))
            written.append(key)
            i += 1
            time.sleep(0.002)

    thread = threading.Thread(target=parlour)
    thread.start()
    try:
        time.sleep(0.5)
        backups = [take_backup(db.path, target) for _ in range(3)]
    finally:
        stop.set()
        thread.join()
        assert rec.stop(10.0)
    assert len({b.path for b in backups}) == 3
    for b in backups:
        assert check_database(b.path) == max(known_revisions())
        assert b.path.name.startswith("milkconsole-") and b.size == b.path.stat().st_size
        assert not Path(f"{b.path}-wal").exists()  # one self-contained file
    # Each backup holds whole sessions (a completed session has its curve) and the last one
    # more of them than the first.
    first, last = keys_in(backups[0].path), keys_in(backups[-1].path)
    assert first and first <= last <= set(written)
    conn = sqlite3.connect(backups[-1].path)
    try:
        missing = conn.execute(
            "SELECT COUNT(*) FROM milk_sessions s WHERE s.state = 'completed' AND NOT EXISTS "
            "(SELECT 1 FROM flow_curves c WHERE c.session_key = s.key)"
        ).fetchone()[0]
    finally:
        conn.close()
    assert missing == 0
    assert list(target.glob(".*partial")) == []


def test_a_restore_brings_everything_back_and_keeps_the_replaced_database(tmp_path, db: Database):
    rec = Recorder(db, farm_code="F1")
    rec.start()
    for i in range(20):
        rec.submit(session(f"S{i:02d}", T0 + timedelta(minutes=10 * i)))
    assert rec.flush(10.0)
    usb = tmp_path / "usb"
    usb.mkdir()
    backup = take_backup(db.path, usb)
    for i in range(20, 25):  # recorded after the backup
        rec.submit(session(f"S{i:02d}", T0 + timedelta(minutes=10 * i)))
    assert rec.stop(10.0)
    before = SessionStore(db).samples("S07")
    db.close()

    restored = restore_backup(backup.path, db.path, known_revisions=known_revisions())
    assert restored.replaced is not None and keys_in(restored.replaced) == {
        f"S{i:02d}" for i in range(25)
    }
    back = open_database(db.path)
    try:
        store = SessionStore(back)
        assert store.count() == 20
        assert store.samples("S07") == before
        assert store.get("S21") is None
    finally:
        back.close()


def test_restore_refuses_a_file_that_is_not_a_console_database(tmp_path, db: Database):
    text = tmp_path / "notes.sqlite"
    text.write_text("milk yields, week 9")
    with pytest.raises(BackupError, match="not an SQLite database"):
        restore_backup(text, db.path, known_revisions=known_revisions())
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE cows (id INTEGER)")
    conn.close()
    with pytest.raises(BackupError, match="not a Milk Console database"):
        restore_backup(other, db.path, known_revisions=known_revisions())
    damaged = tmp_path / "damaged.sqlite"
    take = take_backup(db.path, tmp_path)
    data = bytearray(take.path.read_bytes())
    data[4096 * 3 : 4096 * 3 + 200] = b"\xff" * 200  # a page of a table, overwritten
    damaged.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=r"damaged|cannot be read"):
        restore_backup(damaged, db.path, known_revisions=known_revisions())
    assert check_database(db.path)  # untouched


def test_restore_refuses_a_backup_from_a_newer_release(tmp_path, db: Database):
    newer = take_backup(db.path, tmp_path).path
    conn = sqlite3.connect(newer)
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.close()
    with pytest.raises(BackupError, match=r"newer Milk Console \(schema revision 9999\)"):
        restore_backup(newer, db.path, known_revisions=known_revisions())


def test_a_missing_backup_place_fails_raises_one_alert_a_day_and_shows(tmp_path, db: Database):
    settings = BackupSettings(directory=tmp_path / "usb-stick-not-plugged-in")
    jobs = BackupJobs(db, settings)
    for _ in range(2):
        with pytest.raises(BackupError, match="is not there"):
            jobs.run(T0)
    status = jobs.status()
    assert status.failing and "usb-stick-not-plugged-in" in (status.last_error or "")
    assert not (tmp_path / "usb-stick-not-plugged-in").exists()  # never created
    with db.read() as tx:
        alerts = list(tx.scalars(select(AlertRow)))
        queued = list(tx.scalars(select(OutboxRow).where(OutboxRow.model == "iot.device.alert")))
    assert [(a.kind, a.condition, a.severity, a.state) for a in alerts] == [
        ("backup", "failed", "critical", "open")
    ]
    assert queued == []  # the console's own alert: Odoo's device alerts need a device

    (tmp_path / "usb-stick-not-plugged-in").mkdir()
    taken = jobs.run(T0 + timedelta(hours=1))
    status = jobs.status()
    assert not status.failing and status.last_good_path == str(taken.path)


def test_a_backup_missing_for_more_than_a_day_is_an_alert(tmp_path, db: Database):
    usb = tmp_path / "usb"
    usb.mkdir()
    jobs = BackupJobs(db, BackupSettings(directory=usb))
    assert jobs.check_missing(T0)  # never backed up
    jobs.run(T0)
    assert not jobs.check_missing(T0 + timedelta(hours=20))
    assert jobs.check_missing(T0 + timedelta(days=2))
    with db.read() as tx:
        conditions = sorted(a.condition or "" for a in tx.scalars(select(AlertRow)))
    assert conditions == ["missing", "missing"]  # one per day it was missing


def test_rotation_keeps_seven_daily_and_four_weekly(tmp_path, db: Database):
    usb = tmp_path / "usb"
    usb.mkdir()
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    for day in range(60):
        for hour in (0, 6):  # two a day: an on-demand one too
            take_backup(db.path, usb, now=start + timedelta(days=day, hours=hour))
    (usb / ".milkconsole-20260101T000000Z.sqlite.partial").write_bytes(b"half")
    os.utime(usb / ".milkconsole-20260101T000000Z.sqlite.partial", (0, 0))
    (usb / "holiday-photos.jpg").write_bytes(b"not ours")
    rotate(usb, keep_daily=7, keep_weekly=4)
    kept = list_backups(usb)
    days = {b.taken_at.astimezone().date() for b in kept}
    newest = max(b.taken_at for b in kept)
    assert len(kept) <= 7 + 4 and len(kept) >= 9
    assert all(newest - b.taken_at < timedelta(days=29) for b in kept)
    assert {(newest - timedelta(days=d)).astimezone().date() for d in range(7)} <= days
    assert sorted(p.name for p in usb.iterdir() if not p.name.startswith("milkconsole-")) == [
        "holiday-photos.jpg"
    ]


def test_the_daily_backup_runs_once_a_day_from_its_hour_and_catches_up(tmp_path, db: Database):
    usb = tmp_path / "usb"
    usb.mkdir()
    seen = []
    local_2am = datetime.combine(datetime(2026, 3, 2).date(), clock(2, 0)).astimezone()
    settings = BackupSettings(directory=usb, daily_at=clock(2, 30))
    keeper = Housekeeping(db, settings, RetentionPolicy(), on_status=seen.append)
    keeper.tick(local_2am.astimezone(UTC))  # before 02:30: nothing yet
    assert list_backups(usb) == []
    keeper.tick((local_2am + timedelta(minutes=45)).astimezone(UTC))
    keeper.tick((local_2am + timedelta(hours=5)).astimezone(UTC))
    assert len(list_backups(usb)) == 1  # once that day
    # The console was off at 02:30 the next day: it catches up when it runs again.
    keeper.tick((local_2am + timedelta(days=1, hours=9)).astimezone(UTC))
    assert len(list_backups(usb)) == 2
    assert seen[-1].last_good_at is not None and not seen[-1].failing


def test_a_backup_on_demand_while_another_runs_waits_its_turn(tmp_path, db: Database):
    usb = tmp_path / "usb"
    usb.mkdir()
    keeper = Housekeeping(db, BackupSettings(directory=usb), RetentionPolicy())
    results = []
    threads = [threading.Thread(target=lambda: results.append(keeper.backup_now())) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.path for r in results}) == 2


def test_restore_is_refused_while_a_console_runs_on_the_database(tmp_path, db: Database):
    backup = take_backup(db.path, tmp_path)
    lock = RunLock(db.path)
    lock.acquire()
    try:
        with pytest.raises(DatabaseInUse, match=rf"pid {os.getpid()}\) is running"):
            RunLock(db.path).acquire()
        code = cli_main(["backup", "restore", str(backup.path), "--db", str(db.path), "--yes"])
        assert code == 1
    finally:
        lock.release()


def config_file(tmp_path: Path, usb: Path | None) -> Path:
    path = tmp_path / "parlour.toml"
    text = textwrap.dedent(
        """\
        [parlour]
        name = "P"
        farm_code = "F1"

        [[bus]]
        id = "b1"
        transport = "tcp"
        host = "127.0.0.1"

        [[meter]]
        id = "M01"
        bus = "b1"
        unit = 1
        profile = "gea"
        stall = 1
        """
    )
    if usb is not None:
        text += f'\n[backup]\ndir = "{usb}"\ndaily_at = "03:15"\nkeep_daily = 3\n'
    path.write_text(text, encoding="utf-8")
    return path


def test_the_backup_command_backs_up_lists_and_restores(tmp_path, capsys):
    usb = tmp_path / "usb"
    usb.mkdir()
    config = config_file(tmp_path, usb)
    db_path = tmp_path / "parlour.sqlite"
    db = open_database(db_path)
    rec = Recorder(db, farm_code="F1")
    rec.start()
    rec.submit(session("S1", T0))
    assert rec.stop(5.0)
    db.close()
    args = ["--config", str(config), "--db", str(db_path)]
    assert cli_main(["backup", "now", *args]) == 0
    assert "(checked)" in capsys.readouterr().out
    assert cli_main(["backup", "list", "--config", str(config)]) == 0
    [line] = capsys.readouterr().out.splitlines()
    [backup] = list_backups(usb)
    assert str(backup.path) in line

    db = open_database(db_path)
    rec = Recorder(db, farm_code="F1")
    rec.start()
    rec.submit(session("S2", T0 + timedelta(hours=8)))
    assert rec.stop(5.0)
    db.close()
    assert cli_main(["backup", "restore", str(backup.path), "--db", str(db_path), "--yes"]) == 0
    out = capsys.readouterr().out
    assert "restored" in out and "replaced database is kept" in out
    db = open_database(db_path)
    try:
        assert SessionStore(db).get("S1") is not None and SessionStore(db).get("S2") is None
        with db.read() as tx:
            [entry] = tx.scalars(select(AuditEntry).where(AuditEntry.action == "database_restored"))
        assert entry.after["backup"] == str(backup.path)
    finally:
        db.close()


def test_backup_settings_are_checked_at_load_naming_the_key(tmp_path):
    from milkconsole.config import load_config

    path = config_file(tmp_path, tmp_path / "usb")
    config = load_config(path)
    settings = BackupSettings.from_table(config.extra["backup"], config.source)
    assert settings == BackupSettings(tmp_path / "usb", clock(3, 15), 3, 4)
    path.write_text(path.read_text().replace('"03:15"', '"3 am"'))
    with pytest.raises(ConfigError, match=r"parlour.toml: backup.daily_at: must be a local time"):
        load_config(path)
    path.write_text(path.read_text().replace('daily_at = "3 am"', "keep_hourly = 5"))
    with pytest.raises(ConfigError, match=r"backup.keep_hourly: unknown key"):
        load_config(path)


KILL_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from milkconsole.store.backup import take_backup
    print("go", flush=True)
    take_backup(Path(sys.argv[1]), Path(sys.argv[2]))
    """
)


def test_a_backup_killed_half_way_leaves_the_database_usable_and_no_backup(tmp_path):
    db_path = tmp_path / "parlour.sqlite"
    db = open_database(db_path)
    rec = Recorder(db, farm_code="F1")
    rec.start()
    for i in range(3000):
        rec.submit(session(f"S{i:05d}", T0 + timedelta(minutes=i), n=200))
    assert rec.stop(120.0)
    db.close()
    size = db_path.stat().st_size
    usb = tmp_path / "usb"
    usb.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", KILL_CHILD, str(db_path), str(usb)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "go"
    partial = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill it mid-copy: the partial file exists, not whole
        found = list(usb.glob(".*.partial"))
        if found and found[0].stat().st_size > 0:
            partial = found[0]
            break
        time.sleep(0.001)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert partial is not None, "the backup finished before it could be killed"
    assert list_backups(usb) == []  # nothing named as a backup
    assert check_database(db_path) and db_path.stat().st_size == size
    db = open_database(db_path)
    try:
        assert SessionStore(db).count() == 3000
    finally:
        db.close()
    taken = take_backup(db_path, usb)  # the next one is fine
    assert keys_in(taken.path) == {f"S{i:05d}" for i in range(3000)}
    rotate(usb, 7, 4)
    assert replace(taken, size=taken.size) in list_backups(usb)


def test_backup_now_output_and_restore_prompt(tmp_path, db: Database):
    from milkconsole.app.backup_cli import _restore

    backup = take_backup(db.path, tmp_path)
    out = io.StringIO()
    db.close()
    assert _restore(backup.path, db.path, yes=False, out=out, stdin=io.StringIO("n\n")) == 1
    assert "not restored" in out.getvalue()


def test_after_a_restore_the_outbox_resumes_without_a_duplicate_in_odoo(
    tmp_path, sim, vault
) -> None:
    from tests.helpers.odoo_fixtures import (
        add_meters,
        by_key,
        engine_for,
        logged_in,
        raise_alerts,
        record_sessions,
    )

    sim.seed_herd(20)
    db_path = tmp_path / "parlour.sqlite"
    db = open_database(db_path)
    settings = logged_in(sim, vault, batch_size=50)
    engine = engine_for(db, settings)
    engine.run_once()  # the herd and the meters
    add_meters(db)
    first = record_sessions(db, 20, 3)
    engine.run_once()
    second = record_sessions(db, 20, 3, start=T0 + timedelta(days=1), prefix="F2")
    alerts = raise_alerts(db, 5)
    # The backup is taken with part of the second batch in flight and the rest not sent yet.
    flying = engine.outbox.claim("milk.session", 10, datetime.now(UTC))
    usb = tmp_path / "usb"
    usb.mkdir()
    backup = take_backup(db_path, usb).path
    engine.outbox.reset_in_flight()
    engine.run_once()
    engine.run_once()
    assert engine.outbox.counts()["pending"] == 0
    third = record_sessions(db, 20, 1, start=T0 + timedelta(days=2), prefix="F3")
    engine.run_once()
    engine.close()
    db.close()

    # The disk fails; the backup is put back: the second batch and the alerts wait again (some
    # "in flight"), the third batch is gone from the console but is in Odoo.
    restore_backup(backup, db_path, known_revisions=known_revisions())
    db = open_database(db_path)
    with db.read() as tx:
        states = {
            (r.record_key, r.state)
            for r in tx.scalars(select(OutboxRow).where(OutboxRow.model == "milk.session"))
        }
    assert {(i.record_key, "in_flight") for i in flying} <= states
    engine = engine_for(db, settings)
    report = engine.run_once()
    engine.run_once()
    counts = engine.outbox.counts()
    assert counts["pending"] == counts["in_flight"] == counts["dead"] == 0
    assert report.total_created == 0  # everything it had was found by key
    assert report.already_in_odoo >= len(second) + len(alerts)
    sessions = by_key(sim, "milk.session", "name", [])
    assert set(sessions) == set(first + second + third)
    productions = by_key(sim, "farm.milk.production", "source_reference", [])
    assert set(productions) == set(first + second + third)
    assert set(by_key(sim, "iot.device.alert", "reference", [])) == set(alerts)
    assert len(by_key(sim, "iot.device", "device_id", [])) == 24
    db.close()


def test_the_gateway_runs_the_daily_jobs_too(tmp_path):
    from milkconsole.app.gateway import run_gateway
    from milkconsole.app.runtime import ParlourRuntime
    from milkconsole.config import load_config

    usb = tmp_path / "usb"
    usb.mkdir()
    config = load_config(config_file(tmp_path, usb))
    stop = threading.Event()
    started: list[ParlourRuntime] = []
    gateway = threading.Thread(
        target=run_gateway,
        args=(config, tmp_path / "parlour.sqlite"),
        kwargs={"out": io.StringIO(), "stop_event": stop, "on_started": started.append},
    )
    gateway.start()
    try:
        deadline = time.monotonic() + 30
        while not started and time.monotonic() < deadline:
            time.sleep(0.05)
        [runtime] = started
        assert runtime.housekeeping.settings.directory == usb
        assert runtime.housekeeping._thread is not None and runtime.housekeeping._thread.is_alive()
        with pytest.raises(DatabaseInUse):  # its run lock is held: no restore under it
            RunLock(tmp_path / "parlour.sqlite").acquire()
        taken = runtime.housekeeping.backup_now()
        assert list_backups(usb) == [taken]
    finally:
        stop.set()
        gateway.join(30)
    assert not gateway.is_alive()
    lock = RunLock(tmp_path / "parlour.sqlite")
    lock.acquire()  # released when it stopped
    lock.release()
