"""Print, one per line, what the Qt-free core virtualenv (.venv-core) installs: the project's
dependencies and its `dev` extra, read from pyproject.toml, without Qt and without the linters.

The core's tests run there (scripts/test_core.sh) to show that the core and its tests need no Qt:
PySide6 and pyqtgraph are not installed, nor pytest-qt (its plugin refuses to start without a Qt
binding). ruff and mypy run once, in .venv; they are left out to keep this virtualenv small.
Run: python3 scripts/core_requirements.py [pyproject.toml]
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

QT = frozenset({"pyside6", "pyside6-essentials", "pyside6-addons", "shiboken6", "pyqtgraph"})
LEFT_OUT = QT | {"pytest-qt", "ruff", "mypy"}


def requirement_name(requirement: str) -> str:
    """The normalised project name of a PEP 508 requirement ("PySide6-Essentials>=6" -> ...)."""
    match = re.match(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)", requirement)
    if match is None:
        raise ValueError(f"pyproject.toml: not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def core_requirements(pyproject: Path) -> list[str]:
    """The dependencies and the `dev` extra of `pyproject`, without the ones left out."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return [r for r in wanted if requirement_name(r) not in LEFT_OUT]


def main(argv: list[str]) -> int:
    pyproject = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "pyproject.toml"
    print("\n".join(core_requirements(pyproject)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
