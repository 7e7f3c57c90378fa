"""Build what a farm installs, from this checkout, in the project's venv (`installer` extra):

    python installer/build.py bundle       dist/bundle/milkconsole/ (PyInstaller, one folder)
    python installer/build.py deb          dist/milkconsole_<version>_<arch>.deb (from the bundle)
    python installer/build.py wheelhouse   dist/milkconsole-<version>-wheelhouse.tar.gz

`deb` builds the bundle first unless `--bundle DIR` names one. `--out` and `--work` move the
results and the scratch space (the tests use temporary directories). Every step says what it
runs; a failing tool's own message is shown and the build stops with status 1.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "installer"
sys.path.insert(0, str(ROOT))

from milkconsole import __version__  # noqa: E402
from milkconsole.version import (  # noqa: E402
    BUILD_INFO_NAME,
    read_build_info,
    source_build_info,
    write_build_info,
)

PACKAGE = "milkconsole"
PREFIX = Path("opt/milkconsole")
UNIT = "milkconsole-gateway.service"
MAINTAINER = "Milk Console developers <milkconsole@example.invalid>"
# Pythons the wheelhouse carries wheels for; install.sh refuses any other with one message.
WHEEL_PYTHONS = ("3.11", "3.12", "3.13")
# Loaded with dlopen() by Qt, so no ELF file names it and dpkg-shlibdeps cannot see it.
DLOPENED_DEPENDS = ("libdbus-1-3",)
# adduser: postinst makes the service user with it. ca-certificates: the CAs the system's
# OpenSSL verifies the farm's Odoo against (TLS is always verified).
EXTRA_DEPENDS = ("adduser", "ca-certificates")


class BuildError(Exception):
    """A build step failed; the message says which and why."""


def run(cmd: Sequence[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a build tool, echoing the command; raise BuildError with its output if it fails."""
    words = [str(c) for c in cmd]
    shown = shlex.join(words)
    print("+", shown if len(shown) < 300 else f"{shown[:280]} ... ({len(words)} words)", flush=True)
    proc = subprocess.run(words, text=True, capture_output=True, check=False, cwd=cwd)
    if proc.returncode != 0:
        raise BuildError(
            f"{words[0]} failed with status {proc.returncode}:\n{proc.stdout[-4000:]}"
            f"{proc.stderr[-4000:]}"
        )
    return proc


def tree_size(path: Path) -> int:
    """Bytes of the regular files under `path` (symlinks not followed)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# -- the bundle ---------------------------------------------------------------------------------


def _has_debug_info(path: Path) -> bool:
    proc = subprocess.run(
        ["readelf", "-S", "--wide", str(path)], capture_output=True, text=True, check=False
    )
    return proc.returncode == 0 and ".debug_info" in proc.stdout


def strip_python_debug_info(bundle: Path) -> int:
    """Drop the debug sections of the Python runtime (libpython and its stdlib extension
    modules carry them in many builds: 23 MB of 28 here). Wheels' own libraries are left
    alone: they come stripped, and strip can break the patched ones auditwheel ships.
    Returns the bytes saved."""
    if not sys.platform.startswith("linux") or shutil.which("strip") is None:
        return 0
    internal = bundle / "_internal"
    candidates = [*internal.glob("libpython3*.so*")]
    candidates += internal.glob("python3.*/lib-dynload/*.so")
    saved = 0
    targets = [lib for lib in candidates if not lib.is_symlink() and _has_debug_info(lib)]
    if targets:
        before = sum(lib.stat().st_size for lib in targets)
        run(["strip", "--strip-debug", *targets])
        saved = before - sum(lib.stat().st_size for lib in targets)
    return saved


def build_bundle(out: Path, work: Path) -> Path:
    """PyInstaller's one-folder bundle at `out/milkconsole`; returns that folder."""
    spec = HERE / "pyinstaller" / "milkconsole.spec"
    started = time.monotonic()
    run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--clean",
            "--log-level",
            "WARN",
            "--distpath",
            out,
            "--workpath",
            work / "pyinstaller",
            spec,
        ],
        cwd=ROOT,
    )
    bundle = out / PACKAGE
    saved = strip_python_debug_info(bundle)
    info = read_build_info(bundle / "_internal" / PACKAGE / BUILD_INFO_NAME)
    print(
        f"bundle: {bundle} ({tree_size(bundle) / 1e6:.0f} MB, {saved / 1e6:.0f} MB of debug "
        f"info stripped) in {time.monotonic() - started:.0f} s; "
        f"{info.describe() if info else 'no build info'}",
        flush=True,
    )
    return bundle


# -- the Debian package -------------------------------------------------------------------------


def debian_version(version: str) -> str:
    """A PEP 440 version as Debian orders it: pre-releases sort before the release
    (0.2.0rc1 -> 0.2.0~rc1), a local part after it (0.2.0+farm1 stays)."""
    m = re.fullmatch(
        r"(?P<base>\d+(?:\.\d+)*)(?:[-_.]?(?P<pre>a|b|rc|alpha|beta|c)[-_.]?(?P<pren>\d*))?"
        r"(?:[-_.]?post[-_.]?(?P<post>\d+))?(?:[-_.]?dev[-_.]?(?P<dev>\d*))?(?:\+(?P<local>.+))?",
        version,
    )
    if m is None:
        raise BuildError(f"version {version!r} is not a PEP 440 version")
    out = m["base"]
    if m["pre"]:
        out += f"~{m['pre']}{m['pren']}"
    if m["post"]:
        out += f".post{m['post']}"
    if m["dev"] is not None:
        out += f"~dev{m['dev']}"
    if m["local"]:
        out += f"+{m['local'].replace('_', '.').replace('-', '.')}"
    return out


def debian_arch() -> str:
    return run(["dpkg", "--print-architecture"]).stdout.strip()


def _elf_files(root: Path) -> list[Path]:
    out = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            with p.open("rb") as f:
                if f.read(4) == b"\x7fELF":
                    out.append(p)
    return out


def shlib_depends(workdir: Path, pkgroot: Path) -> list[str]:
    """The Debian packages the bundle's ELF files link against, with the minimum versions
    their symbols need (dpkg-shlibdeps). Libraries inside the bundle count as the package's
    own. `pkgroot` must be `workdir/debian/<package>`, where dpkg-shlibdeps looks for them."""
    bundle = pkgroot / PREFIX
    dirs = sorted({p.parent for p in bundle.rglob("*.so*")} | {bundle / "_internal"})
    private = [f"-l/{d.relative_to(pkgroot)}" for d in dirs]
    proc = run(
        ["dpkg-shlibdeps", "-O", "--ignore-missing-info", *private, *_elf_files(bundle)],
        cwd=workdir,
    )
    m = re.search(r"^shlibs:Depends=(.*)$", proc.stdout, re.MULTILINE)
    if m is None:
        raise BuildError(f"dpkg-shlibdeps printed no dependencies:\n{proc.stdout}")
    return [d.strip() for d in m.group(1).split(",") if d.strip()]


def merge_depends(*groups: Iterable[str]) -> list[str]:
    """One entry per package, in order of first mention; a versioned entry replaces a bare
    one (`libdbus-1-3` and `libdbus-1-3 (>= 1.9.14)` -> the latter)."""
    merged: dict[str, str] = {}
    for dep in (d for group in groups for d in group):
        name = dep.split("(")[0].strip()
        if name not in merged or "(" in dep:
            merged[name] = dep
    return list(merged.values())


def _runtime_distributions() -> list[importlib.metadata.Distribution]:
    """The installed distributions Milk Console runs on (its requirements, recursively)."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = ["milkconsole"]
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        seen[name] = dist
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            marker = req.split(";", 1)
            if len(marker) == 2 and "sys_platform" in marker[1] and "linux" not in marker[1]:
                continue
            todo.append(re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0])
    return [d for n, d in sorted(seen.items()) if n != "milkconsole"]


def copy_licences(dest: Path) -> None:
    """Each bundled library's licence files (as its wheel ships them), and Python's."""
    pattern = re.compile(r"^(licen[cs]e|copying|notice)", re.IGNORECASE)
    for dist in _runtime_distributions():
        name = dist.metadata["Name"]
        target = dest / name
        for f in dist.files or []:
            if pattern.match(Path(str(f)).name):
                src = Path(str(dist.locate_file(f)))
                if src.is_file():
                    out = target / str(f).replace("/", "__")
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, out)
        meta = dist.metadata
        declared = meta["License-Expression"] or meta["License"]
        if declared and not target.exists():
            target.mkdir(parents=True)
            (target / "LICENSE-declared.txt").write_text(declared + "\n", encoding="utf-8")
    stdlib = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    python_licence = Path(sys.base_prefix) / "lib" / stdlib / "LICENSE.txt"
    if python_licence.is_file():
        (dest / "Python").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(python_licence, dest / "Python" / "LICENSE.txt")


def _install(src: Path, dest: Path, mode: int) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    dest.chmod(mode)


def _normalize_modes(root: Path) -> None:
    """Directories 0755, files 0644 or 0755 (executable if any x bit was set): nothing in
    the package writable by group or others, whatever the build machine's umask was."""
    for p in [root, *root.rglob("*")]:
        if p.is_symlink():
            continue
        if p.is_dir():
            p.chmod(0o755)
        else:
            p.chmod(0o755 if p.stat().st_mode & 0o111 else 0o644)


def write_md5sums(pkgroot: Path, dest: Path, *, skip: set[str]) -> None:
    """DEBIAN/md5sums, so `dpkg --verify milkconsole` can tell a damaged install (conffiles
    are dpkg's to track, so they are left out as Debian does)."""
    lines = []
    for p in sorted(pkgroot.rglob("*")):
        rel = p.relative_to(pkgroot).as_posix()
        if rel.startswith("DEBIAN/") or p.is_symlink() or not p.is_file() or f"/{rel}" in skip:
            continue
        lines.append(f"{hashlib.md5(p.read_bytes(), usedforsecurity=False).hexdigest()}  {rel}\n")
    dest.write_text("".join(lines), encoding="utf-8")


def control_text(
    version: str, arch: str, depends: Iterable[str], installed_kb: int, commit: str
) -> str:
    return (
        f"Package: {PACKAGE}\n"
        f"Version: {version}\n"
        f"Architecture: {arch}\n"
        f"Maintainer: {MAINTAINER}\n"
        f"Installed-Size: {installed_kb}\n"
        f"Depends: {', '.join(depends)}\n"
        "Section: misc\n"
        "Priority: optional\n"
        "Description: Milk Console: parlour milk recording\n"
        " Reads the milk meters over Modbus, records each cow's milking in a local\n"
        " database, raises health alerts and delivers everything to the farm's Odoo.\n"
        " The console is the `milkconsole` desktop program; the headless gateway is\n"
        f" the {UNIT} systemd unit (not enabled).\n"
        " .\n"
        " Python, Qt and every Python library are inside /opt/milkconsole; the\n"
        " libraries Qt draws with, OpenSSL and the C++ runtime are Debian's.\n"
        f" Built from commit {commit}.\n"
    )


def build_deb(
    bundle: Path,
    out: Path,
    work: Path,
    *,
    version: str | None = None,
    compression: str = "zstd",
) -> Path:
    """The .deb holding `bundle`; returns its path (`out/milkconsole_<ver>_<arch>.deb`).

    zstd packs the 200 MB bundle in seconds where xz takes minutes, and every dpkg since
    1.21.18 (Debian 12, Ubuntu 22.04) reads it; `compression="xz"` for anything older."""
    info = read_build_info(bundle / "_internal" / PACKAGE / BUILD_INFO_NAME)
    if info is None:
        raise BuildError(f"{bundle} has no {BUILD_INFO_NAME}: not a bundle this spec built")
    deb_ver = debian_version(version or info.version)
    arch = debian_arch()
    workdir = work / "deb"
    shutil.rmtree(workdir, ignore_errors=True)
    pkgroot = workdir / "debian" / PACKAGE
    (workdir / "debian").mkdir(parents=True)
    # dpkg-shlibdeps reads the package's name and architecture from here.
    (workdir / "debian" / "control").write_text(
        f"Source: {PACKAGE}\n\nPackage: {PACKAGE}\nArchitecture: any\n", encoding="utf-8"
    )
    print(f"deb: copying the bundle into {pkgroot / PREFIX}", flush=True)
    shutil.copytree(bundle, pkgroot / PREFIX, symlinks=True)
    linux = HERE / "linux"
    (pkgroot / "usr" / "bin").mkdir(parents=True)
    (pkgroot / "usr" / "bin" / PACKAGE).symlink_to(f"/{PREFIX}/{PACKAGE}")
    _install(linux / "parlour.toml", pkgroot / "etc" / PACKAGE / "parlour.toml", 0o644)
    _install(linux / UNIT, pkgroot / "usr" / "lib" / "systemd" / "system" / UNIT, 0o644)
    _install(
        linux / "milkconsole.desktop",
        pkgroot / "usr" / "share" / "applications" / "milkconsole.desktop",
        0o644,
    )
    _install(
        linux / "milkconsole.svg",
        pkgroot / "usr" / "share" / "icons" / "hicolor" / "scalable" / "apps" / "milkconsole.svg",
        0o644,
    )
    doc = pkgroot / "usr" / "share" / "doc" / PACKAGE
    _install(HERE / "README.md", doc / "README.md", 0o644)
    _install(HERE / "debian" / "copyright", doc / "copyright", 0o644)
    copy_licences(doc / "licenses")
    _normalize_modes(pkgroot)

    depends = merge_depends(EXTRA_DEPENDS, DLOPENED_DEPENDS, shlib_depends(workdir, pkgroot))
    debian = pkgroot / "DEBIAN"
    debian.mkdir()
    installed_kb = (tree_size(pkgroot) + 1023) // 1024
    (debian / "control").write_text(
        control_text(deb_ver, arch, depends, installed_kb, info.commit), encoding="utf-8"
    )
    conffiles = [f"/etc/{PACKAGE}/parlour.toml"]
    (debian / "conffiles").write_text("".join(f"{c}\n" for c in conffiles), encoding="utf-8")
    write_md5sums(pkgroot, debian / "md5sums", skip=set(conffiles))
    for script in ("postinst", "prerm", "postrm"):
        _install(HERE / "debian" / script, debian / script, 0o755)

    out.mkdir(parents=True, exist_ok=True)
    deb = out / f"{PACKAGE}_{deb_ver}_{arch}.deb"
    started = time.monotonic()
    level = {"zstd": ["-z9"], "xz": ["-z6"]}.get(compression, [])
    run(["dpkg-deb", "--root-owner-group", f"-Z{compression}", *level, "--build", pkgroot, deb])
    print(
        f"deb: {deb} ({deb.stat().st_size / 1e6:.0f} MB, packed in "
        f"{time.monotonic() - started:.0f} s); Depends: {', '.join(depends)}",
        flush=True,
    )
    return deb


# -- the wheelhouse -----------------------------------------------------------------------------


# The Linux x86_64 wheels a PC with glibc 2.34 or newer can take (Debian 12, Ubuntu 22.04 on):
# PySide6 6.11's wheels need 2.34, so the wheelhouse cannot serve older systems anyway. pip
# takes each manylinux_2_N tag literally, so every one up to that is listed.
WHEEL_GLIBC_MINOR = 34
_PLATFORMS = [
    arg
    for minor in range(17, WHEEL_GLIBC_MINOR + 1)
    for arg in ("--platform", f"manylinux_2_{minor}_x86_64")
] + ["--platform", "manylinux2014_x86_64"]


def _source_copy(dest: Path) -> Path:
    """The checkout's files (tracked and untracked, not ignored) copied to `dest`, so a wheel
    is built from exactly them, with no stale build/ directory to leak into it."""
    listed = run(
        ["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    ).stdout
    for name in filter(None, listed.split("\0")):
        src = ROOT / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def build_wheel(out: Path, work: Path) -> Path:
    """The project's wheel, with `_build_info.json` (version and commit) inside."""
    src = work / "wheel-src"
    shutil.rmtree(src, ignore_errors=True)
    _source_copy(src)
    write_build_info(src / PACKAGE / BUILD_INFO_NAME, source_build_info(ROOT))
    pip = [sys.executable, "-m", "pip"]
    run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", src, "-w", out])
    return next(out.glob(f"{PACKAGE}-{__version__}-*.whl"))


def build_wheelhouse(out: Path, work: Path, pythons: Sequence[str] = WHEEL_PYTHONS) -> Path:
    """`out/milkconsole-<version>-wheelhouse.tar.gz`: the wheel, every dependency as a
    binary wheel for each Python in `pythons` (manylinux x86_64), install.sh and the list of
    Pythons it was made for. Each Python's set is checked with a pip dry run, offline."""
    name = f"{PACKAGE}-{__version__}-wheelhouse"
    house = work / name
    shutil.rmtree(house, ignore_errors=True)
    wheels = house / "wheels"
    wheels.mkdir(parents=True)
    wheel = build_wheel(wheels, work)
    for py in pythons:
        pip = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:"]
        run([*pip, "--python-version", py, *_PLATFORMS, "-d", wheels, wheel])
        check_wheelhouse(wheels, py, work / f"dry-run-{py}")
    (house / "SUPPORTED-PYTHON").write_text(" ".join(pythons) + "\n", encoding="utf-8")
    for f in ("install.sh", "check_python.py"):
        _install(HERE / "wheelhouse" / f, house / f, 0o755 if f.endswith(".sh") else 0o644)
    out.mkdir(parents=True, exist_ok=True)
    archive = out / f"{name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(house, arcname=name)
    print(
        f"wheelhouse: {archive} ({archive.stat().st_size / 1e6:.0f} MB) for Python "
        f"{', '.join(pythons)}",
        flush=True,
    )
    return archive


def check_wheelhouse(wheels: Path, python: str, target: Path) -> None:
    """pip resolves the whole install for `python` from `wheels` alone, or BuildError."""
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "-q", "--no-index"]
    offline: list[str | Path] = ["--find-links", wheels, "--only-binary=:all:"]
    offline += ["--python-version", python]
    run([*pip, *offline, *_PLATFORMS, "--target", target, PACKAGE])


# -- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="installer/build.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("what", choices=("bundle", "deb", "wheelhouse"))
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="results (default dist/)")
    parser.add_argument(
        "--work", type=Path, default=ROOT / "build", help="scratch space (default build/)"
    )
    parser.add_argument("--bundle", type=Path, help="deb: package this bundle, do not build one")
    parser.add_argument("--version", help="deb: package version (default: the bundle's)")
    parser.add_argument(
        "--compression",
        choices=("zstd", "xz", "gzip"),
        default="zstd",
        help="deb: how the package is packed (zstd: dpkg >= 1.21.18; xz: any dpkg)",
    )
    parser.add_argument(
        "--python",
        action="append",
        help=f"wheelhouse: a Python to carry wheels for (default: {', '.join(WHEEL_PYTHONS)})",
    )
    args = parser.parse_args(argv)
    out, work = args.out.resolve(), args.work.resolve()
    try:
        if args.what == "bundle":
            build_bundle(out / "bundle", work)
        elif args.what == "deb":
            bundle = args.bundle.resolve() if args.bundle else build_bundle(out / "bundle", work)
            build_deb(bundle, out, work, version=args.version, compression=args.compression)
        else:
            build_wheelhouse(out, work, tuple(args.python or WHEEL_PYTHONS))
    except BuildError as exc:
        print(f"build: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    raise SystemExit(main())
