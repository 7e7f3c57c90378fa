"""Installer benchmark: the bundle's size and its start to first paint, cold and warm.

Prints and writes `bench/results/installer.json`:

- `bundle_mb`, `bundle_files`: the PyInstaller folder (what /opt/milkconsole holds), and
  `deb_mb`, the package made from it (zstd), when `--deb` names one.
- `start_to_first_paint_s`: a fresh `milkconsole console` process of the bundle, from just before
  it is started to its first painted stall tile (the console prints `first paint <monotonic>`
  when MILKCONSOLE_QUIT_AFTER_PAINT_S is set, then closes), on the 80-stall console of
  `bench/ui.py`, offscreen. `cold`: every file of the bundle dropped from the page cache first
  (posix_fadvise DONTNEED on the bundle's own files only, nothing else on the machine), as after
  a reboot; `warm`: started again straight after. Target <= 2 s, as from source.
- `from_source_s`: the same console started from the source checkout (`python -m milkconsole`)
  the same way, warm, for comparison on this machine at the same time (each round runs cold,
  warm and from source one after the other, so a busy machine slows all three alike).
- `load_average_1m`: how busy the machine was (others share it), before and after.

Run: `.venv/bin/python bench/installer.py` (builds the bundle into build/bench-bundle first), or
`--bundle DIR` for one built already (`installer/build.py bundle`), e.g. /opt/milkconsole.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_io import save  # noqa: E402
from bench.ui import STALLS, bench_config  # noqa: E402

TARGET_S = 2.0
FIRST_PAINT = re.compile(r"^first paint (\d+\.\d+)$", re.MULTILINE)


def tree_stats(path: Path) -> tuple[int, int]:
    """Bytes and count of the regular files under `path`."""
    files = [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files), len(files)


def drop_from_page_cache(path: Path) -> None:
    """Evict the bundle's files from the page cache (theirs only: other people's work on this
    machine keeps its cache), so the next start reads them from disk."""
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def first_paint_s(argv: list[str], work: Path) -> float:
    """Seconds from starting `argv` (a console on the bench parlour) to its first paint."""
    home = work / "home"
    home.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "HOME": str(home),
        "QT_QPA_PLATFORM": "offscreen",
        "MILKCONSOLE_QUIT_AFTER_PAINT_S": "0",
        "MILKCONSOLE_LOG_DIR": str(work / "logs"),
    }
    db = work / f"bench-{time.monotonic_ns()}.sqlite"
    config = bench_config(STALLS, work)
    started = time.monotonic()
    proc = subprocess.run(
        [*argv, "console", "--config", str(config), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    m = FIRST_PAINT.search(proc.stdout)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(
            f"{argv[0]} did not paint (exit {proc.returncode}): {proc.stderr[-2000:]}"
        )
    return float(m.group(1)) - started


def build_label(bundle: Path) -> str:
    """Which build was measured (its version and commit), not where it lay."""
    from milkconsole.version import BUILD_INFO_NAME, read_build_info

    info = read_build_info(bundle / "_internal" / "milkconsole" / BUILD_INFO_NAME)
    return info.describe() if info else "a bundle with no build record"


def build_bundle(work: Path) -> Path:
    build = [sys.executable, str(ROOT / "installer" / "build.py"), "bundle"]
    subprocess.run([*build, "--out", str(work), "--work", str(work / "scratch")], check=True)
    return work / "bundle" / "milkconsole"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--bundle", type=Path, help="a built bundle (default: build one)")
    parser.add_argument("--deb", type=Path, help="the .deb made from it, for its size")
    parser.add_argument("--runs", type=int, default=3, help="cold and warm starts each")
    parser.add_argument("--out", default="installer", help="results name (bench/results/)")
    args = parser.parse_args()

    bundle = args.bundle or build_bundle(ROOT / "build" / "bench-bundle")
    program = bundle / ("milkconsole.exe" if sys.platform == "win32" else "milkconsole")
    size, files = tree_stats(bundle)
    cold: list[float] = []
    warm: list[float] = []
    source: list[float] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="milkconsole-bench-") as tmp:
        work = Path(tmp)
        for _ in range(args.runs):
            drop_from_page_cache(bundle)
            cold.append(first_paint_s([str(program)], work))
            warm.append(first_paint_s([str(program)], work))
            source.append(first_paint_s([sys.executable, "-m", "milkconsole"], work))

    def summary(runs: list[float]) -> dict[str, Any]:
        return {"runs": [round(r, 3) for r in runs], "median": round(statistics.median(runs), 3)}

    figures: dict[str, Any] = {
        "build": build_label(bundle),
        "bundle_mb": round(size / 1e6, 1),
        "bundle_files": files,
        "deb_mb": round(args.deb.stat().st_size / 1e6, 1) if args.deb else None,
        "stalls": STALLS,
        "qt_platform": "offscreen",
        "start_to_first_paint_s": {"cold": summary(cold), "warm": summary(warm)},
        "from_source_s": summary(source),
        "targets": {"start_to_first_paint_s": TARGET_S},
        # Others share this machine: its 1-minute load average (2 cores) says how busy it was.
        "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
    }
    path = save(args.out, figures)
    print(f"bundle: {figures['bundle_mb']} MB in {files} files ({figures['build']})")
    if args.deb:
        print(f"package: {figures['deb_mb']} MB ({args.deb.name})")
    for name, runs in (("cold", cold), ("warm", warm), ("from source", source)):
        print(f"start to first paint, {name}: median {statistics.median(runs):.2f} s {runs}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
