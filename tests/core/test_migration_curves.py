"""Migration 0007 on real files: a database whose curves are rows (revision 0006) gets them packed,
read back the same, with the backup taken first; one killed half-way (during its backup or
during the packing) is still the old database, usable, and the next start migrates it."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect

from milkconsole.meters.events import FlowSample, SessionCompleted, SessionSnapshot
from milkconsole.store import Recorder, SessionStore, open_database
from milkconsole.store.db import MIGRATIONS_DIR, schema_revision

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 6, 1, 4, 30)  # naive UTC, as the store writes it


# The curves migration, and the revision before it (curves stored as a row per sample).
BEFORE, CURVES = "0006", "0007"


def before_curves(path: Path) -> None:
    """A database as the release before this one left it (schema BEFORE, curves as rows)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, BEFORE)
    engine.dispose()


def curve(i: int, n: int) -> list[tuple[float, float, float, float | None]]:
    out = []
    y = 0.0
    for k in range(n):
        f = round(min(3.5, 0.1 * k) if k < 120 else max(0.3, 3.5 - 0.05 * (k - 120)), 2)
        y += f / 30.0
        c = None if (i + k) % 17 == 0 else round(5.0 + 0.01 * ((i * 7 + k) % 23), 2)
        out.append((round(2.0 * k + 0.01 * (k % 3), 2), round(y, 3), f, c))
    return out


def fill_rows(path: Path, sessions: int, n: int, *, open_ones: int = 0) -> dict[str, list]:
    """Sessions with curves as rows; the last `open_ones` still in progress."""
    conn = sqlite3.connect(path)
    curves: dict[str, list] = {}
    with conn:
        for i in range(sessions):
            key = f"OLD-{i:05d}"
            state = "in_progress" if i >= sessions - open_ones else "completed"
            started = (T0 + timedelta(minutes=7 * i)).isoformat(sep=" ")
            conn.execute(
                "INSERT INTO milk_sessions (key, meter_id, stall, state, started_at, duration_s, "
                "yield_l, meter_yield_l, yield_offset_l, flow_l_min, peak_flow_l_min, "
                "avg_flow_l_min, conductivity_sum, conductivity_n, flags, abnormal, reattached, "
                "created_at, updated_at) VALUES (?, 'M01', 1, ?, ?, ?, 9.5, 9.5, 0, 0, 3.5, 1.6, "
                "0, 0, '', 0, 0, ?, ?)",
                (key, state, started, 2.0 * n, started, started),
            )
            curves[key] = curve(i, n)
            conn.executemany(
                "INSERT INTO flow_samples (session_key, elapsed_s, yield_l, flow_l_min, "
                "conductivity_ms_cm) VALUES (?, ?, ?, ?, ?)",
                [(key, *s) for s in curves[key]],
            )
    conn.close()
    return curves


def count(path: Path, sql: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def revision(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])
    finally:
        conn.close()


def test_curves_stored_as_rows_are_packed_and_read_back_the_same(tmp_path):
    path = tmp_path / "parlour.sqlite"
    before_curves(path)
    curves = fill_rows(path, 6, 180, open_ones=1)
    db = open_database(path)
    try:
        assert schema_revision(db) == CURVES
        [backup] = tmp_path.glob(f"parlour.sqlite.bak-{BEFORE}-*")
        assert revision(backup) == BEFORE and count(backup, "SELECT COUNT(*) FROM flow_samples")
        assert count(path, "SELECT COUNT(*) FROM flow_curves") == 5
        # The open session keeps its rows: the recorder packs them when it completes.
        assert count(path, "SELECT COUNT(DISTINCT session_key) FROM flow_samples") == 1
        store = SessionStore(db)
        for key, rows in curves.items():
            assert [
                (s.elapsed_s, s.yield_l, s.flow_l_min, s.conductivity_ms_cm)
                for s in store.samples(key)
            ] == rows, key
        indexes = {i["name"] for i in inspect(db.engine).get_indexes("milk_sessions")}
        assert {
            "ix_milk_sessions_meter_id_started_at",
            "ix_milk_sessions_animal_id_started_at",
        } <= indexes
        assert "ix_milk_sessions_meter_id" not in indexes

        rec = Recorder(db, farm_code="F1")
        rec.start()
        key = "OLD-00005"
        snap = SessionSnapshot(
            key=key,
            meter_id="M01",
            stall=1,
            started_at=(T0 + timedelta(minutes=35)).replace(tzinfo=UTC),
            state="completed",
            duration_s=400.0,
            yield_l=10.0,
        )
        rec.submit(SessionCompleted(snap, (FlowSample(360.0, 9.9, 0.2, 5.0),)))
        assert rec.stop(5.0)
        whole = store.samples(key)
        assert len(whole) == 181 and whole[-1].elapsed_s == 360.0
        assert count(path, "SELECT COUNT(*) FROM flow_samples") == 0
    finally:
        db.close()


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from milkconsole.store.db import open_database
    print("go", flush=True)
    open_database(Path(sys.argv[1])).close()
    print("done", flush=True)
    """
)


def start_migration(path: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "go"
    return child


def kill_when(child: subprocess.Popen[str], ready: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if ready():
            child.send_signal(signal.SIGKILL)
            child.wait()
            return
        time.sleep(0.002)
    raise AssertionError(f"the migration ended before {what}: nothing was killed")


def assert_old_and_usable(path: Path, samples: int) -> None:
    assert revision(path) == BEFORE
    conn = sqlite3.connect(path)
    try:
        assert [r[0] for r in conn.execute("PRAGMA integrity_check")] == ["ok"]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert "flow_curves" not in tables
    assert count(path, "SELECT COUNT(*) FROM flow_samples") == samples


@pytest.mark.slow
def test_a_migration_killed_half_way_leaves_the_old_database_usable(tmp_path):
    path = tmp_path / "parlour.sqlite"
    before_curves(path)
    fill_rows(path, 2000, 200)
    samples = 2000 * 200

    # Killed while packing: its backup is whole, the packing has written part of its work.
    child = start_migration(path)
    wal = Path(f"{path}-wal")
    kill_when(
        child,
        lambda: (
            list(tmp_path.glob("parlour.sqlite.bak-*Z"))
            and wal.exists()
            and wal.stat().st_size > 4_000_000
        ),
        "it had packed a good part of the curves",
    )
    assert_old_and_usable(path, samples)
    [backup] = tmp_path.glob("parlour.sqlite.bak-*Z")
    assert revision(backup) == BEFORE

    # Killed while taking its backup: nothing but a partial copy, never named as a backup.
    backup.unlink()
    child = start_migration(path)
    kill_when(
        child,
        lambda: any(p.stat().st_size > 0 for p in tmp_path.glob("*.bak-*.partial")),
        "it began its backup",
    )
    assert_old_and_usable(path, samples)
    assert list(tmp_path.glob("parlour.sqlite.bak-*Z")) == []

    # The next start migrates it.
    db = open_database(path)
    try:
        assert schema_revision(db) == CURVES
        assert SessionStore(db).count() == 2000
        assert len(SessionStore(db).samples("OLD-01234")) == 200
    finally:
        db.close()
    assert count(path, "SELECT COUNT(*) FROM flow_samples") == 0
