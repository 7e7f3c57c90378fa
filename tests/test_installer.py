"""The wheel a farm installs carries its data: profiles, migrations, styles; and it runs from it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_profiles_migrations_and_styles_and_works_installed(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(ROOT),
            "-w",
            str(tmp_path / "wheels"),
        ],
        check=True,
        timeout=300,
    )
    wheel = next((tmp_path / "wheels").glob("milkconsole-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "resources/profiles/delaval-mm27bc.toml",
        "resources/profiles/afimilk.toml",
        "resources/profiles/gea.toml",
        "resources/styles/dark.qss",
        "milkconsole/store/migrations/env.py",
        "milkconsole/store/migrations/versions/0001_initial.py",
    ):
        assert needed in names, needed
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    # Run from elsewhere with only the installed copy of our packages on the path.
    code = (
        "import sys, milkconsole.profiles as p, milkconsole.store.db as d;"
        f"assert p.__file__.startswith({str(target)!r}), p.__file__;"
        "print(sorted(p.load_profiles()));"
        f"d.open_database(__import__('pathlib').Path({str(tmp_path / 'x.sqlite')!r}));"
        "print('db ok')"
    )
    env = dict(os.environ, PYTHONPATH=str(target), PYTHONSAFEPATH="1")
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "'afimilk', 'delaval-mm27bc', 'gea'" in proc.stdout and "db ok" in proc.stdout
