"""Schema migrations on real files: backup before upgrading, newer databases refused, failed
upgrades rolled back. A "newer release" is the packaged Alembic scripts copied to a temporary
directory with one more revision added, exactly what the next release will ship."""

from __future__ import annotations

import shutil
import sqlite3
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from milkconsole.errors import DatabaseError
from milkconsole.meters.events import SessionSnapshot, SessionStarted
from milkconsole.store import Recorder, SessionStore, open_database
from milkconsole.store.db import MIGRATIONS_DIR, schema_revision


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


# This release's head, and the revision a next release would add on top of it.
HEAD = _head()
NEXT = f"{int(HEAD) + 1:04d}"

REVISION_NEXT = f'''
"""Test-only: add a column, as the next release would."""
import sqlalchemy as sa
from alembic import op

revision = "{NEXT}"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("milk_sessions") as batch:
        batch.add_column(sa.Column("teat_cups", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("milk_sessions") as batch:
        batch.drop_column("teat_cups")
'''

BROKEN_NEXT = f'''
"""Test-only: a migration that fails half way."""
from alembic import op

revision = "{NEXT}"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE half_done (id INTEGER PRIMARY KEY)")
    op.execute("INSERT INTO no_such_table VALUES (1)")


def downgrade() -> None:
    pass
'''


def next_release(tmp_path: Path, revision_source: str) -> Path:
    scripts = tmp_path / "next-release-migrations"
    shutil.copytree(MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / f"{NEXT}_next.py").write_text(textwrap.dedent(revision_source))
    return scripts


def db_with_a_session(path: Path) -> None:
    db = open_database(path)
    rec = Recorder(db, farm_code="F1")
    rec.start()
    started = datetime.now(UTC)
    rec.submit(
        SessionStarted(SessionSnapshot(key="s1", meter_id="m1", stall=1, started_at=started))
    )
    assert rec.stop(5.0)
    db.close()


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.bak-*"))


def revision_in(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    finally:
        conn.close()


def test_new_database_is_created_at_head_without_a_backup(tmp_path):
    path = tmp_path / "parlour.sqlite"
    db = open_database(path)
    assert schema_revision(db) == HEAD
    db.close()
    db = open_database(path)  # reopening a current database changes nothing
    db.close()
    assert backups(path) == []


def test_upgrading_an_older_database_takes_a_backup_first(tmp_path):
    path = tmp_path / "parlour.sqlite"
    db_with_a_session(path)

    db = open_database(path, migrations_dir=next_release(tmp_path, REVISION_NEXT))
    try:
        assert schema_revision(db) == NEXT
        with db.read() as tx:
            assert tx.execute(text("SELECT key, teat_cups FROM milk_sessions")).all() == [
                ("s1", None)
            ]
    finally:
        db.close()

    [backup] = backups(path)
    assert backup.name.startswith(f"parlour.sqlite.bak-{HEAD}-")
    assert backup.name.endswith("Z")
    assert revision_in(backup) == HEAD
    old = sqlite3.connect(backup)
    try:
        assert old.execute("SELECT key FROM milk_sessions").fetchall() == [("s1",)]
    finally:
        old.close()


def test_database_from_a_newer_release_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "parlour.sqlite"
    open_database(path, migrations_dir=next_release(tmp_path, REVISION_NEXT)).close()
    with pytest.raises(DatabaseError) as refused:
        open_database(path)
    message = str(refused.value)
    assert str(path) in message
    assert f"written by a newer Milk Console (revision {NEXT})" in message
    assert f"this version knows up to {HEAD}" in message
    assert revision_in(path) == NEXT  # untouched
    assert backups(path) == []


def test_database_stamped_with_an_unknown_revision_is_refused(tmp_path):
    path = tmp_path / "parlour.sqlite"
    open_database(path).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00dcafe9999'")
    conn.close()
    with pytest.raises(DatabaseError, match=r"revision f00dcafe9999\); this version knows up to"):
        open_database(path)


def test_failed_upgrade_leaves_the_database_at_its_old_revision(tmp_path):
    path = tmp_path / "parlour.sqlite"
    db_with_a_session(path)
    with pytest.raises(DatabaseError, match=f"migration from {HEAD} to {NEXT} failed") as failed:
        open_database(path, migrations_dir=next_release(tmp_path, BROKEN_NEXT))
    assert str(path) in str(failed.value)
    assert revision_in(path) == HEAD
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert "half_done" not in tables
    db = open_database(path)  # the current release still opens it
    try:
        assert SessionStore(db).get("s1") is not None
    finally:
        db.close()


def test_a_file_that_is_not_a_database_is_refused_naming_it(tmp_path):
    path = tmp_path / "parlour.sqlite"
    path.write_bytes(b"this is a spreadsheet, not a database" * 100)
    with pytest.raises(DatabaseError, match=str(path)):
        open_database(path)


def test_a_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE cows (id INTEGER)")
    conn.close()
    with pytest.raises(DatabaseError, match="not a Milk Console database"):
        open_database(path)
