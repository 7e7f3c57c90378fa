"""`milkconsole --version`: the version and the commit, from a build's record, from git in a
checkout, or "unknown"; and where the console looks for its config and logs by default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from milkconsole import __version__, paths
from milkconsole.app.entry import main
from milkconsole.version import (
    UNKNOWN,
    BuildInfo,
    git_commit,
    read_build_info,
    source_build_info,
    write_build_info,
)

ROOT = Path(__file__).resolve().parents[2]


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_version_in_a_checkout_names_the_checked_out_commit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    head = git("rev-parse", "HEAD")
    assert capsys.readouterr().out.startswith(f"milkconsole {__version__} (commit {head}")
    # and as a program, from the checkout
    proc = subprocess.run(
        [sys.executable, "-m", "milkconsole", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"milkconsole {__version__} (commit {head}")


def test_a_tree_with_changes_is_marked_dirty(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    (repo / "a.txt").write_text("one\n")
    git("add", "a.txt", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "a", cwd=repo)
    head = git("rev-parse", "HEAD", cwd=repo)
    assert git_commit(repo) == head
    (repo / "a.txt").write_text("two\n")
    assert git_commit(repo) == f"{head}-dirty"


def test_a_folder_inside_another_repository_claims_no_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "site-packages").mkdir(parents=True)
    git("init", "-q", cwd=repo)
    assert git_commit(repo / "site-packages") is None
    assert git_commit(tmp_path / "no-such-dir") is None


def test_the_build_record_round_trips_and_a_bad_one_says_so(tmp_path: Path) -> None:
    info = BuildInfo("1.2.3", "abc123", "git", "2026-01-02T03:04:05Z")
    path = write_build_info(tmp_path / "_build_info.json", info)
    read = read_build_info(path)
    assert read == BuildInfo("1.2.3", "abc123", "build", "2026-01-02T03:04:05Z")
    assert read.describe() == "milkconsole 1.2.3 (commit abc123, built 2026-01-02T03:04:05Z)"
    assert read_build_info(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    bad = read_build_info(tmp_path / "bad.json")
    assert bad is not None and bad.commit.startswith(f"{UNKNOWN} (bad.json unreadable")


def test_a_build_from_this_checkout_records_its_commit() -> None:
    info = source_build_info(ROOT)
    assert info.version == __version__
    assert info.commit.removesuffix("-dirty") == git("rev-parse", "HEAD")
    assert info.built_at is not None


def test_the_system_config_is_the_default_only_without_a_users_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "home" / "parlour.toml"
    system = tmp_path / "etc" / "parlour.toml"
    monkeypatch.setattr(paths, "user_config_path", lambda: user)
    monkeypatch.setattr(paths, "system_config_path", lambda: system)
    assert paths.default_config_path() == user  # neither exists: name the user's
    system.parent.mkdir()
    system.write_text("")
    assert paths.default_config_path() == system
    user.parent.mkdir()
    user.write_text("")
    assert paths.default_config_path() == user


def test_the_log_dir_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(paths.LOG_DIR_ENV, str(tmp_path / "logs"))
    assert paths.log_dir() == tmp_path / "logs"
    monkeypatch.setenv(paths.LOG_DIR_ENV, "")
    assert paths.log_dir() != tmp_path / "logs"
