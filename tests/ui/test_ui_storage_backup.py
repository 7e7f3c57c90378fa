"""What a person sees of the database's health on a running console: a full disk on the status
bar (and back to normal once recording resumes), the last good backup, a failed backup in red
with its reason and as a supervisor alert."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from milkconsole.config import parse_config
from milkconsole.meters.events import StorageStatus
from milkconsole.store.backup import BackupError, BackupStatus
from ui.app import Console
from ui.status_bar import backup_text


def config(usb: Path):  # type: ignore[no-untyped-def]
    data = {
        "parlour": {"name": "Test", "farm_code": "F1"},
        "bus": [
            {"id": "b1", "transport": "tcp", "host": "127.0.0.1", "port": 1, "timeout_s": 0.05}
        ],
        "meter": [
            {"id": f"M{s}", "bus": "b1", "unit": s, "profile": "gea", "stall": s} for s in (1, 2)
        ],
        "backup": {"dir": str(usb)},
    }
    return parse_config(data, "test-parlour.toml")


@pytest.fixture
def console(qtbot, tmp_path):  # type: ignore[no-untyped-def]
    usb = tmp_path / "usb"
    usb.mkdir()
    c = Console(config(usb), tmp_path / "parlour.sqlite")
    c.window.resize(1400, 800)
    c.window.show()
    c.start()
    yield c
    c.shutdown()


def on_a_thread(fn) -> None:  # type: ignore[no-untyped-def]
    t = threading.Thread(target=fn)
    t.start()
    t.join()


def test_a_full_disk_shows_on_the_status_bar_until_recording_resumes(qtbot, console, tmp_path):
    bar = console.window.status
    since = datetime.now(UTC)
    full = StorageStatus(
        False,
        "disk full",
        f"cannot write the database {tmp_path}/parlour.sqlite: disk full (0 MB free on /x); "
        "12 events wait in memory and are written as soon as it takes writes",
        12,
        since,
    )
    on_a_thread(lambda: console.runtime._emit(full))  # as the recorder thread reports it
    qtbot.waitUntil(lambda: "DISK FULL" in bar.db_label.text())
    assert bar.db_label.text() == "⚠ DB: DISK FULL — 12 waiting"
    assert "12 events wait in memory" in bar.db_label.toolTip()
    assert "recording resumes by itself" in bar.db_label.toolTip()
    console.window.grab().save(str(tmp_path / "disk-full.png"))
    on_a_thread(lambda: console.runtime._emit(StorageStatus(True)))
    qtbot.waitUntil(lambda: bar.db_label.text().startswith("DB: "))
    assert bar.db_label.styleSheet() == ""


def test_the_last_good_backup_and_a_failed_one_show_and_the_failure_is_an_alert(
    qtbot, console, tmp_path
):
    bar = console.window.status
    keeper = console.runtime.housekeeping
    on_a_thread(keeper.backup_now)
    qtbot.waitUntil(lambda: bar.backup_state == "ok")
    assert bar.backup_button.text().startswith("Backup ")
    assert str(tmp_path / "usb") in bar.backup_button.toolTip()

    (tmp_path / "usb").rename(tmp_path / "usb-unplugged")
    failures: list[BaseException] = []

    def fail() -> None:
        try:
            keeper.backup_now()
        except BackupError as exc:
            failures.append(exc)

    on_a_thread(fail)
    assert failures
    qtbot.waitUntil(lambda: bar.backup_state == "error")
    assert bar.backup_button.text() == "Backup FAILED"
    assert "is not there" in bar.backup_button.toolTip()
    console.window.grab().save(str(tmp_path / "backup-failed.png"))
    from milkconsole.store.alerts import list_alerts

    [alert] = list_alerts(console.db)
    assert (alert.kind, alert.severity) == ("backup", "critical")
    assert "Backup failed" in alert.message


def test_backup_words_for_each_state() -> None:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert backup_text(BackupStatus(configured=False), now) == ("Backup: not set up", "idle")
    assert backup_text(BackupStatus(configured=True), now) == ("Backup: none yet", "error")
    good = BackupStatus(configured=True, last_good_at=datetime(2026, 3, 2, 2, 30, tzinfo=UTC))
    text, state = backup_text(good, now)
    assert state == "ok" and text == f"Backup {good.last_good_at.astimezone():%H:%M}"  # type: ignore[union-attr]
    old = BackupStatus(configured=True, last_good_at=datetime(2026, 2, 27, 2, 30, tzinfo=UTC))
    assert backup_text(old, now)[1] == "error"
    failed = BackupStatus(
        configured=True,
        last_good_at=datetime(2026, 3, 1, 2, 30, tzinfo=UTC),
        last_error="backup place /media/usb is not there",
        last_error_at=datetime(2026, 3, 2, 2, 30, tzinfo=UTC),
    )
    assert backup_text(failed, now) == ("Backup FAILED", "error")


def test_clicking_the_backup_button_backs_up_now(qtbot, console, tmp_path):
    from PySide6.QtCore import Qt

    from milkconsole.store.backup import list_backups

    bar = console.window.status
    assert list_backups(tmp_path / "usb") == []
    qtbot.mouseClick(bar.backup_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bar.backup_state == "ok", timeout=15000)
    [backup] = list_backups(tmp_path / "usb")
    assert bar.backup_status is not None and bar.backup_status.last_good_path == str(backup.path)
