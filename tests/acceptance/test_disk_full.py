"""A full disk, for real: the database on a small tmpfs that is filled up while the recorder
works. Nothing committed is damaged, the sessions wait in memory, the error is clear, and
recording resumes by itself once space is freed.

The tmpfs is mounted by the fixture (root, or password-less sudo) and unmounted after. Where
mounting is not permitted the tests say so and are skipped: no other test machine can make a
disk fill up for real.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from milkconsole.meters.events import (
    FlowSample,
    SessionCompleted,
    SessionSnapshot,
    SessionStarted,
    SessionUpdated,
    StorageStatus,
)
from milkconsole.store import Recorder, SessionStore, open_database

T0 = datetime(2026, 3, 2, 4, 30, tzinfo=UTC)


def _mount(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs of its own (so filling it fills nothing else)."""
    where = tmp_path / "disk"
    where.mkdir()
    cmd = ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0777", "tmpfs", str(where)]
    prefix: list[str] = []
    done = _mount(cmd) if os.geteuid() == 0 else None
    if (done is None or done.returncode != 0) and shutil.which("sudo"):
        prefix = ["sudo", "-n"]
        done = _mount(prefix + cmd)
    if done is None or done.returncode != 0:
        reason = done.stderr.strip() if done is not None else "not root and no sudo"
        pytest.skip(f"cannot mount a small tmpfs here ({reason}); a full disk needs one")
    try:
        yield where
    finally:
        _mount([*prefix, "umount", "-l", str(where)])


def fill(directory: Path) -> Path:
    """Write a file until the disk refuses another byte."""
    filler = directory / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (65536, 4096, 1):
            chunk = b"\0" * size
            with contextlib.suppress(OSError):
                while os.write(fd, chunk) == size:
                    pass
    finally:
        os.close(fd)
    return filler


def samples(start: float, n: int) -> tuple[FlowSample, ...]:
    return tuple(
        FlowSample(start + 2.0 * i, round(0.06 * (start / 2 + i), 2), 2.4, 5.2) for i in range(n)
    )


def snap(key: str, started: datetime, **changes: object) -> SessionSnapshot:
    values: dict[str, object] = {"key": key, "meter_id": "M01", "stall": 1, "started_at": started}
    values.update(changes)
    return SessionSnapshot(**values)  # type: ignore[arg-type]


def record_one(rec: Recorder, key: str, started: datetime, n: int = 150) -> None:
    """A milking as the tracker hands it over: started, progress with samples, completed."""
    rec.submit(SessionStarted(snap(key, started)))
    for part in range(3):
        rec.submit(SessionUpdated(snap(key, started), samples(2.0 * part * 50, 50)))
    rec.submit(
        SessionCompleted(
            snap(
                key,
                started,
                state="completed",
                ended_at=started + timedelta(seconds=2 * n),
                duration_s=2.0 * n,
                yield_l=9.0,
            ),
            samples(2.0 * n, 1),
        )
    )


def integrity(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()


def test_a_full_disk_loses_nothing_committed_and_recording_resumes(small_disk, caplog):
    caplog.set_level(logging.WARNING, logger="milkconsole.store.recorder")
    db_path = small_disk / "parlour.sqlite"
    db = open_database(db_path)
    statuses: list[StorageStatus] = []
    rec = Recorder(db, farm_code="F1", on_status=statuses.append, checkpoint_s=0.05)
    rec.start()
    try:
        for i in range(10):
            record_one(rec, f"before-{i}", T0 + timedelta(minutes=10 * i))
        assert rec.flush(10.0)
        filler = fill(small_disk)
        for i in range(40):  # a busy quarter of an hour while the disk is full
            record_one(rec, f"during-{i}", T0 + timedelta(hours=2, minutes=i))
        assert not rec.flush(2.0)  # they wait
        assert rec.outstanding > 0
        down = [s for s in statuses if not s.ok]
        assert down and down[0].problem == "disk full"
        assert str(db_path) in down[0].detail and "wait in memory" in down[0].detail
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]  # one clear error, not one each
        assert "disk full" in errors[0].getMessage()
        # What was committed before is whole and readable, by another connection too.
        assert integrity(db_path) == ["ok"]
        store = SessionStore(db)
        assert [len(store.samples(f"before-{i}")) for i in range(10)] == [151] * 10

        filler.unlink()  # the farmer frees space
        assert rec.flush(45.0), "recording did not resume once space was freed"
        assert statuses[-1].ok
        assert any("takes writes again" in r.getMessage() for r in caplog.records)
    finally:
        assert rec.stop(30.0)
    assert integrity(db_path) == ["ok"]
    store = SessionStore(db)
    assert store.count() == 50 and store.count("completed") == 50
    assert all(len(store.samples(f"during-{i}")) == 151 for i in range(40))
    db.close()
