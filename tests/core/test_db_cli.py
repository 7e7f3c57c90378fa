"""`milkconsole db status` / `db upgrade` on real SQLite files: where a database stands, a
migration with its backup and both revisions reported, a newer database refused, nothing
written by just looking."""

from __future__ import annotations

import os
import shutil
import sqlite3
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from milkconsole.app.entry import main
from milkconsole.errors import DatabaseError
from milkconsole.store import open_database
from milkconsole.store.db import MIGRATIONS_DIR
from milkconsole.store.upgrade import database_status, read_revision, upgrade_database

NEXT = '''
"""Test-only: one more revision, as the next release would ship."""
import sqlalchemy as sa
from alembic import op

revision = "t9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("next_release_probe", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("next_release_probe")
'''


def head() -> str:
    return database_status(Path("/nonexistent/x.sqlite")).head


def next_release(tmp_path: Path) -> Path:
    scripts = tmp_path / "next-release"
    shutil.copytree(MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "t9001_next.py").write_text(textwrap.dedent(NEXT.format(head=head())))
    return scripts


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Result]:
    """The `milkconsole` command, run in this process (its log in the test's directory)."""
    monkeypatch.setenv("MILKCONSOLE_LOG_DIR", str(tmp_path / "logs"))

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


def test_status_of_a_missing_a_current_and_a_newer_database(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    db = tmp_path / "m.sqlite"
    proc = cli("db", "status", "--db", str(db))
    assert proc.returncode == 0 and "no database yet" in proc.stdout
    assert not db.exists()

    open_database(db).close()
    proc = cli("db", "status", "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    assert f"revision {head()} (this version: {head()}): up to date" in proc.stdout

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'zz99'")
    proc = cli("db", "status", "--db", str(db))
    assert proc.returncode == 3
    assert "revision zz99" in proc.stdout and "newer Milk Console" in proc.stdout
    proc = cli("db", "upgrade", "--db", str(db))
    assert proc.returncode == 3
    assert str(db) in proc.stderr and "newer Milk Console (revision zz99)" in proc.stderr


def test_upgrade_migrates_with_a_backup_and_reports_both_revisions(tmp_path: Path) -> None:
    db = tmp_path / "farm.sqlite"
    open_database(db).close()
    scripts = next_release(tmp_path)
    before = database_status(db, migrations_dir=scripts)
    assert (before.state, before.revision, before.head) == ("behind", head(), "t9001")

    report = upgrade_database(db, migrations_dir=scripts)
    assert (report.before, report.after) == (head(), "t9001")
    assert report.backup is not None and report.backup.parent == db.parent
    assert report.backup.name.startswith(f"farm.sqlite.bak-{head()}-")
    assert read_revision(report.backup) == head()
    assert f"upgraded from {head()} to t9001; backup at {report.backup}" in report.describe()
    with sqlite3.connect(db) as conn:
        conn.execute("SELECT count(*) FROM next_release_probe").fetchone()

    again = upgrade_database(db, migrations_dir=scripts)
    assert again.backup is None and "already at revision t9001" in again.describe()


def test_upgrade_leaves_a_missing_database_missing(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    db = tmp_path / "none.sqlite"
    proc = cli("db", "upgrade", "--db", str(db))
    assert proc.returncode == 0
    assert "nothing to upgrade" in proc.stdout
    assert not db.exists()


def test_looking_at_a_database_writes_nothing_beside_it(tmp_path: Path) -> None:
    db = tmp_path / "look.sqlite"
    open_database(db).close()
    before = sorted(os.listdir(tmp_path))
    assert database_status(db).state == "current"
    assert sorted(os.listdir(tmp_path)) == before  # no -wal / -shm made by a reader

    in_use = open_database(db)  # the service running: its -wal and -shm are there
    try:
        assert read_revision(db) == head()
    finally:
        in_use.close()


def test_a_file_that_is_not_a_database_is_refused_by_name(tmp_path: Path) -> None:
    bad = tmp_path / "notes.sqlite"
    bad.write_text("these are not the tables you are looking for\n" * 200)
    with pytest.raises(DatabaseError, match=r"notes\.sqlite"):
        read_revision(bad)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_root_is_sent_to_the_owner_of_someone_elses_database(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    db = tmp_path / "svc.sqlite"
    open_database(db).close()
    os.chown(db, 65534, 65534)  # nobody
    proc = cli("db", "upgrade", "--db", str(db))
    assert proc.returncode == 2
    assert "belongs to the user" in proc.stderr and "runuser -u" in proc.stderr
