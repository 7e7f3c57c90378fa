"""Which Milk Console this is: its version and the git commit it was built from.

A bundle or a wheel carries `_build_info.json` beside this module, written when it was built
(`installer/build.py`, `installer/milkconsole.spec`); a source checkout asks git; anything
else says "unknown". `milkconsole --version` prints `describe()`.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from milkconsole import __version__

BUILD_INFO_NAME = "_build_info.json"
BUILD_INFO_PATH = Path(__file__).resolve().parent / BUILD_INFO_NAME
SOURCE_ROOT = Path(__file__).resolve().parent.parent
UNKNOWN = "unknown"
_GIT_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class BuildInfo:
    """`commit`: the full hash, with "-dirty" when the tree had uncommitted changes, or
    "unknown". `source`: where the commit came from ("build", "git" or "unknown")."""

    version: str
    commit: str
    source: str
    built_at: str | None = None

    def describe(self) -> str:
        parts = [f"commit {self.commit}"]
        if self.built_at:
            parts.append(f"built {self.built_at}")
        return f"milkconsole {self.version} ({', '.join(parts)})"

    def document(self) -> dict[str, Any]:
        """What `_build_info.json` holds."""
        return {"version": self.version, "commit": self.commit, "built_at": self.built_at}


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_commit(root: Path = SOURCE_ROOT) -> str | None:
    """The commit `root` is checked out at ("-dirty" if tracked files changed), or None when
    `root` is not the top of a git work tree (an installed copy inside some other repository
    must not claim that repository's commit)."""
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root.resolve():
        return None
    head = _git(root, "rev-parse", "HEAD")
    if not head:
        return None
    changes = _git(root, "status", "--porcelain", "--untracked-files=no")
    return f"{head}-dirty" if changes else head


def read_build_info(path: Path) -> BuildInfo | None:
    """The build info file at `path`, or None if there is none (a bad file is reported as
    such rather than hiding which build this is)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return BuildInfo(__version__, f"{UNKNOWN} ({path.name} unreadable: {exc})", "build")
    return BuildInfo(
        version=str(doc.get("version") or __version__),
        commit=str(doc.get("commit") or UNKNOWN),
        source="build",
        built_at=doc.get("built_at"),
    )


def source_build_info(root: Path = SOURCE_ROOT) -> BuildInfo:
    """What a build made from the source tree at `root` right now should record."""
    commit = git_commit(root)
    return BuildInfo(
        version=__version__,
        commit=commit or UNKNOWN,
        source="git" if commit else UNKNOWN,
        built_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def write_build_info(path: Path, info: BuildInfo) -> Path:
    """Write `_build_info.json` (build tools call this; the running app only reads it)."""
    path.write_text(json.dumps(info.document(), indent=2) + "\n", encoding="utf-8")
    return path


@cache
def build_info() -> BuildInfo:
    """This copy's version and commit: the build's record, else git, else "unknown"."""
    recorded = read_build_info(BUILD_INFO_PATH)
    if recorded is not None:
        return recorded
    commit = git_commit()
    if commit is not None:
        return BuildInfo(__version__, commit, "git")
    return BuildInfo(__version__, UNKNOWN, UNKNOWN)
