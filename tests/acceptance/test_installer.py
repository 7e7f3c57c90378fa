"""The installer as a dealer's technician uses it, on this machine, for real.

The bundle (PyInstaller) and the Debian package are built once for the module. The package is
installed with dpkg, the installed `milkconsole` is run with no Python anywhere on its PATH
(version, config check, the headless demo, the console offscreen and on an X server, the gateway
unit's own command line as the service user against simulated meters), then upgraded to a newer
build that carries one more migration, removed and purged. The machine is left as it was found:
the test removes the service user and the data only if it made them.

The wheel path: the wheel carries its data and runs installed; the wheelhouse resolves for
Python 3.11, 3.12 and 3.13 offline; install.sh installs from it and refuses other Pythons.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "installer" / "build.py"

PACKAGE = "milkconsole"
OPT = Path("/opt/milkconsole")
BIN = Path("/usr/bin/milkconsole")
ETC = Path("/etc/milkconsole")
CONFIG = ETC / "parlour.toml"
DATA = Path("/var/lib/milkconsole")
LOGS = Path("/var/log/milkconsole")
DB = DATA / "milkconsole.sqlite"
UNIT_FILE = Path("/usr/lib/systemd/system/milkconsole-gateway.service")
SERVICE_USER = "milkconsole"
# What the package puts on the machine, and what it makes there: none of it may be left over.
FOOTPRINT = (
    OPT,
    BIN,
    ETC,
    DATA,
    LOGS,
    UNIT_FILE,
    Path("/usr/share/applications/milkconsole.desktop"),
    Path("/usr/share/icons/hicolor/scalable/apps/milkconsole.svg"),
    Path("/usr/share/doc/milkconsole"),
    Path("/run/milkconsole-gateway.restart-after-upgrade"),
)
NEXT_REVISION = "t9000"


def git_head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def run(
    cmd: list[str],
    *,
    timeout: float = 300,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{shlex.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
            f"{proc.stderr[-3000:]}"
        )
    return proc


# -- the build, once for the module ---------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    bundle: Path
    deb: Path
    version: str
    work: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The bundle and the .deb, built by installer/build.py as a release would be."""
    out = tmp_path_factory.mktemp("dist")
    work = tmp_path_factory.mktemp("build")
    proc = run(
        [sys.executable, str(BUILD), "deb", "--out", str(out), "--work", str(work)],
        timeout=1500,
    )
    print(proc.stdout[-2000:])
    debs = list(out.glob("milkconsole_*.deb"))
    assert len(debs) == 1, debs
    version = run(["dpkg-deb", "-f", str(debs[0]), "Version"]).stdout.strip()
    return Built(out / "bundle" / PACKAGE, debs[0], version, work)


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    """What the installed program gets: no Python on PATH (an empty directory is all of it),
    no PYTHONPATH/PYTHONHOME, a home of its own."""
    empty = home / "empty-bin"
    empty.mkdir(parents=True, exist_ok=True)
    return {"PATH": str(empty), "HOME": str(home), "LANG": "C.UTF-8", **extra}


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the module's build runs inside the first test that asks for it
def test_the_bundle_holds_its_data_and_leaves_the_platform_libraries_to_debian(
    built: Built,
) -> None:
    internal = built.bundle / "_internal"
    for needed in (
        "resources/profiles/delaval-mm27bc.toml",
        "resources/profiles/afimilk.toml",
        "resources/profiles/gea.toml",
        "resources/styles/dark.qss",
        "resources/icons/milking.svg",
        "milkconsole/store/migrations/env.py",
        "milkconsole/store/migrations/versions/0001_initial.py",
        "milkconsole/_build_info.json",
        "PySide6/Qt/plugins/platforms/libqxcb.so",
        "PySide6/Qt/plugins/platforms/libqoffscreen.so",
        "PySide6/Qt/plugins/imageformats/libqsvg.so",
    ):
        assert (internal / needed).is_file(), needed
    assert list(internal.glob("libpython3*.so*")), "the bundle carries its own Python"
    # keyring finds its backends through the distribution's entry points.
    assert list(internal.glob("keyring-*.dist-info/entry_points.txt"))
    info = json.loads((internal / "milkconsole" / "_build_info.json").read_text())
    assert info["commit"].removesuffix("-dirty") == git_head()
    # Qt's platform libraries come from Debian (the package depends on them), not the bundle.
    # So are the C++ runtime and OpenSSL (its security fixes come with the distribution's).
    system_libs = ("libX11.so.6", "libxcb-cursor.so.0", "libstdc++.so.6", "libssl.so.3")
    for system_lib in (*system_libs, "libcrypto.so.3", "libgtk-3.so.0"):
        assert not list(built.bundle.rglob(system_lib)), system_lib
    # Nothing bundled points at a library that is gone (the Wayland/EGL plugins were left out).
    dangling = [p for p in built.bundle.rglob("*") if p.is_symlink() and not p.exists()]
    assert dangling == []


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_package_declares_what_it_needs(built: Built) -> None:
    assert built.deb.name == f"milkconsole_{built.version}_amd64.deb"
    assert built.version == _python_version()
    fields = run(["dpkg-deb", "-f", str(built.deb)]).stdout
    depends = re.search(r"^Depends: (.*)$", fields, re.MULTILINE)
    assert depends is not None
    names = {d.split("(")[0].strip() for d in depends.group(1).split(",")}
    for needed in ("adduser", "libc6", "libxcb-cursor0", "libxkbcommon-x11-0", "libfontconfig1"):
        assert needed in names, needed
    assert {"libssl3", "ca-certificates"} <= names  # the system's TLS and its CAs
    assert "libdbus-1-3" in names  # Qt loads it with dlopen(): no ELF file names it
    assert f"Built from commit {git_head()}" in fields
    listing = run(["dpkg-deb", "-c", str(built.deb)]).stdout
    for path in (
        "./opt/milkconsole/milkconsole",
        "./usr/bin/milkconsole -> /opt/milkconsole/milkconsole",
        "./etc/milkconsole/parlour.toml",
        "./usr/lib/systemd/system/milkconsole-gateway.service",
        "./usr/share/applications/milkconsole.desktop",
        "./usr/share/icons/hicolor/scalable/apps/milkconsole.svg",
        "./usr/share/doc/milkconsole/README.md",
    ):
        assert path in listing, path
    control = Path(tempfile.mkdtemp(prefix="milkconsole-control-"))
    try:
        run(["dpkg-deb", "-e", str(built.deb), str(control)])
        assert (control / "conffiles").read_text().split() == ["/etc/milkconsole/parlour.toml"]
    finally:
        shutil.rmtree(control)


def _python_version() -> str:
    from milkconsole import __version__

    return __version__


# -- the machine: taken as found, given back as found ---------------------------------------------


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def machine_state() -> dict[str, object]:
    """What the test must leave as it found it."""
    status = run(["dpkg-query", "-W", "-f=${Status}", PACKAGE], check=False).stdout.strip()
    return {
        # dpkg forgets a purged package, or keeps it as "unknown ok not-installed".
        "package": "not installed" if status in ("", "unknown ok not-installed") else status,
        "paths": {str(p): p.exists() or p.is_symlink() for p in FOOTPRINT},
        "user": _user_exists(SERVICE_USER),
        "group": _group_exists(SERVICE_USER),
        "dialout": sorted(grp.getgrnam("dialout").gr_mem) if _group_exists("dialout") else [],
    }


def _dpkg(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """dpkg, waiting out another dpkg/apt run's lock (others share this machine)."""
    deadline = time.monotonic() + 300
    while True:
        proc = run(["dpkg", *args], check=False, timeout=timeout)
        if "lock" in proc.stderr and proc.returncode != 0 and time.monotonic() < deadline:
            time.sleep(5)
            continue
        return proc


@pytest.fixture
def machine() -> Iterator[dict[str, object]]:
    """Exclusive use of this machine's milkconsole package; everything the test made undone."""
    if os.geteuid() != 0:
        pytest.skip("installing a Debian package needs root (CI runs as root)")
    lock = open(Path(tempfile.gettempdir()) / "milkconsole-installer-test.lock", "w")  # noqa: SIM115
    fcntl.flock(lock, fcntl.LOCK_EX)  # another run of this test on the machine waits here
    before = machine_state()
    assert before["package"] == "not installed", (
        f"milkconsole is installed on this machine ({before['package']}): the test would "
        "replace it; remove it first"
    )
    paths: dict[str, bool] = before["paths"]  # type: ignore[assignment]
    leftovers = [p for p, present in paths.items() if present]
    assert leftovers == [], f"milkconsole files are on this machine already: {leftovers}"
    try:
        yield before
    finally:
        _undo(before)
        lock.close()


def _undo(before: dict[str, object]) -> None:
    end_started()
    status = run(["dpkg-query", "-W", "-f=${Status}", PACKAGE], check=False).stdout
    if ("installed" in status and "not-installed" not in status) or "config-files" in status:
        _dpkg("--purge", PACKAGE)
    for path in (DATA, LOGS, ETC, Path("/run/milkconsole-gateway.restart-after-upgrade")):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
    if not before["user"] and _user_exists(SERVICE_USER):
        run(["userdel", SERVICE_USER], check=False)
    if not before["group"] and _group_exists(SERVICE_USER):
        run(["groupdel", SERVICE_USER], check=False)


# -- the installed program -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tcp_parlour(port: int) -> str:
    """A two-stall parlour on one Modbus TCP gateway (the simulator serves it), with the
    tracking thresholds of a scenario run 60 times faster than real time."""
    return textwrap.dedent(
        f"""\
        # The dealer's edit: two meters behind a Modbus TCP gateway.
        [parlour]
        name = "Installer test"
        farm_code = "INSTALL"
        poll_interval_s = 0.25

        [tracking]
        comm_timeout_s = 10.0
        min_duration_s = 1.0
        min_yield_l = 2.0
        sample_interval_s = 0.25
        end_after_s = 1.0

        [[bus]]
        id = "tcp-1"
        transport = "tcp"
        host = "127.0.0.1"
        port = {port}
        timeout_s = 0.3

        [[meter]]
        id = "MM-01"
        bus = "tcp-1"
        unit = 1
        profile = "delaval-mm27bc"
        stall = 1

        [[meter]]
        id = "MM-02"
        bus = "tcp-1"
        unit = 2
        profile = "gea"
        stall = 2
        """
    )


STARTED: list[subprocess.Popen[str]] = []


def start(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A background process of the test's, in a session of its own so that it and its
    children can be ended by its id if the test fails half way."""
    proc = subprocess.Popen(
        cmd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    STARTED.append(proc)
    return proc


def end_started() -> None:
    """Kill what the test started and did not stop (a failure half way): nothing of the
    service user's may outlive the test, or the user could not be removed."""
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


class Output:
    """A running process's output lines, read as they come (threads, so nothing blocks)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._cond = threading.Condition()
        for stream, sink in ((proc.stdout, self.lines), (proc.stderr, self.errors)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    def _pump(self, stream: object, sink: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._cond:
                sink.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> str | None:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hit = next((ln for ln in self.lines if rx.search(ln)), None)
                left = deadline - time.monotonic()
                if hit is not None or left <= 0:
                    return hit
                self._cond.wait(left)


def unit_command(unit: Path) -> tuple[str, list[str], dict[str, str]]:
    """User=, ExecStart= and Environment= of the unit's [Service] section, as systemd reads
    them (no systemd runs in this container, so the test starts that command line itself)."""
    user, argv, env = "", [], {}
    section = ""
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section != "[Service]":
            continue
        key, _, value = line.partition("=")
        if key == "User":
            user = value
        elif key == "ExecStart":
            argv = shlex.split(value)
        elif key == "Environment":
            for item in shlex.split(value):
                k, _, v = item.partition("=")
                env[k] = v
    assert user and argv, f"{unit} has no User= or ExecStart="
    return user, argv, env


def as_service_user(argv: list[str], env: dict[str, str]) -> list[str]:
    return [
        "runuser",
        "-u",
        SERVICE_USER,
        "--",
        "env",
        "-i",
        *[f"{k}={v}" for k, v in env.items()],
        *argv,
    ]


def service_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment systemd gives a User= service (HOME, USER, a system PATH)."""
    return {
        "HOME": str(DATA),
        "USER": SERVICE_USER,
        "LOGNAME": SERVICE_USER,
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        **(extra or {}),
    }


def stop(proc: subprocess.Popen[str], *, via_child: bool = False, timeout: float = 30) -> int:
    """SIGTERM, as systemd stops a service. Under runuser the signal goes to the program
    itself (runuser would report its own killing instead of the program's exit)."""
    pid = proc.pid
    if via_child:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert children, "runuser has no child"
        pid = int(children[0])
    os.kill(pid, signal.SIGTERM)
    return proc.wait(timeout=timeout)


def read_only(path: Path) -> sqlite3.Connection:
    """Look into the service's database without leaving root-owned -wal/-shm files beside it
    (it is not in use while the test looks)."""
    return sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)


def db_facts(path: Path) -> tuple[str, int]:
    with contextlib.closing(read_only(path)) as conn:
        rev = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        sessions = conn.execute("SELECT count(*) FROM milk_sessions").fetchone()[0]
    return str(rev), int(sessions)


def next_release(built: Built, work: Path, head: str) -> tuple[Path, str]:
    """The same bundle as a newer release: a higher version and one more migration (a table
    the test can look for), packaged by build.py. Returns the .deb and its version."""
    bundle = work / "next" / PACKAGE
    shutil.copytree(built.bundle, bundle, symlinks=True)
    internal = bundle / "_internal" / "milkconsole"
    version = f"{built.version}+test2"
    info = json.loads((internal / "_build_info.json").read_text())
    (internal / "_build_info.json").write_text(json.dumps({**info, "version": version}))
    (
        internal / "store" / "migrations" / "versions" / f"{NEXT_REVISION}_installer_test.py"
    ).write_text(
        textwrap.dedent(
            f'''\
            """Installer test: the next release's migration."""
            import sqlalchemy as sa
            from alembic import op

            revision = "{NEXT_REVISION}"
            down_revision = "{head}"
            branch_labels = None
            depends_on = None


            def upgrade() -> None:
                op.create_table(
                    "installer_upgrade_probe", sa.Column("id", sa.Integer(), primary_key=True)
                )


            def downgrade() -> None:
                op.drop_table("installer_upgrade_probe")
            '''
        )
    )
    out = work / "next-dist"
    run(
        [
            sys.executable,
            str(BUILD),
            "deb",
            "--bundle",
            str(bundle),
            "--version",
            version,
            "--out",
            str(out),
            "--work",
            str(work / "next-build"),
        ],
        timeout=900,
    )
    return next(out.glob("milkconsole_*.deb")), version


def installed_files() -> set[str]:
    listed = run(["dpkg-query", "-L", PACKAGE]).stdout.split("\n")
    return {p for p in listed if p.startswith(str(OPT))}


# -- the whole life of the package ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_install_run_upgrade_remove_purge(
    built: Built, machine: dict[str, object], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = bare_env(home)

    # -- install ---------------------------------------------------------------------------------
    proc = _dpkg("-i", str(built.deb))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert BIN.is_symlink() and os.readlink(BIN) == str(OPT / "milkconsole")
    user = pwd.getpwnam(SERVICE_USER)
    assert user.pw_dir == str(DATA) and user.pw_shell.endswith("nologin")
    assert SERVICE_USER in grp.getgrnam("dialout").gr_mem
    for d in (DATA, LOGS):
        st = d.stat()
        assert (st.st_uid, st.st_mode & 0o777) == (user.pw_uid, 0o750), d
    creds = (ETC / "credentials").stat()
    assert (creds.st_uid, creds.st_mode & 0o777) == (0, 0o700)
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", PACKAGE]).stdout
    assert str(CONFIG) in conffiles
    # Every library each installed binary needs is there: in the bundle or from a Depends.
    missing = []
    lib_env = {"LD_LIBRARY_PATH": str(OPT / "_internal"), "PATH": "/usr/bin:/bin"}
    for elf in [OPT / "milkconsole", *OPT.rglob("*.so*")]:
        if elf.is_file() and not elf.is_symlink():
            ldd = run(["ldd", str(elf)], check=False, env=lib_env).stdout
            missing += [f"{elf}: {ln.strip()}" for ln in ldd.splitlines() if "not found" in ln]
    assert missing == []
    assert _dpkg("--verify", PACKAGE).stdout == ""  # every file as packaged (md5sums)
    if shutil.which("systemd-analyze"):  # systemd's own parser (no systemd runs here)
        verify = run(["systemd-analyze", "verify", str(UNIT_FILE)], check=False)
        assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr

    # -- the installed program, with no Python on its PATH ---------------------------------------
    version = run([str(BIN), "--version"], env=env).stdout
    assert version.startswith(f"milkconsole {built.version} (commit {git_head()}")
    check = run([str(BIN), "check-config", str(CONFIG)], env=env).stdout
    assert check.startswith(f"{CONFIG}: ok") and "4 meters on 1 buses" in check

    demo = start([str(BIN), "demo", "--headless"], env=env)
    demo_out = Output(demo)
    try:
        assert demo_out.wait_for(r"^demo parlour: 24 meters", 60), demo_out.errors[-20:]
        time.sleep(20)
        assert demo.poll() is None, f"the headless demo stopped: {demo_out.errors[-20:]}"
        # Its gateway records: a milking ends within the first minute at 20x.
        assert demo_out.wait_for(r" stall +\d+ MM-\d+ cow .* completed", 60), demo_out.lines
    finally:
        assert stop(demo) == 0, demo_out.errors[-20:]

    console = run(
        [str(BIN), "demo"],
        env=bare_env(home, QT_QPA_PLATFORM="offscreen", MILKCONSOLE_QUIT_AFTER_PAINT_S="10"),
        timeout=120,
    )
    assert re.search(r"^first paint \d+\.\d+$", console.stdout, re.MULTILINE), console.stderr
    # On an X server too (Xvfb, from scripts/bootstrap.sh): the xcb platform plugin against
    # Debian's X libraries, as on a parlour PC's screen.
    xcb = run(
        ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", str(BIN), "demo"],
        env={**bare_env(home, MILKCONSOLE_QUIT_AFTER_PAINT_S="1"), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert "first paint" in xcb.stdout, xcb.stderr

    # -- the gateway unit's command line, as the service user -------------------------------------
    CONFIG.write_text(tcp_parlour(free_port()))  # the dealer edits the conffile
    run([str(BIN), "check-config", str(CONFIG)], env=env)
    # A user with no config of their own gets the system's: `milkconsole` alone opens it.
    own_db = home / ".local" / "share" / "milkconsole" / "milkconsole.sqlite"
    console = run(
        [str(BIN)],
        env=bare_env(home, QT_QPA_PLATFORM="offscreen", MILKCONSOLE_QUIT_AFTER_PAINT_S="1"),
        timeout=120,
    )
    assert "first paint" in console.stdout, console.stderr
    assert own_db.exists() and not (home / ".config" / "milkconsole" / "parlour.toml").exists()
    simulator = start(
        [str(BIN), "simulate", "--config", str(CONFIG), "--time-scale", "60", "--cows", "6"],
        env=env,
    )
    sim_out = Output(simulator)
    try:
        assert sim_out.wait_for(r"^simulating 6 cows", 60), sim_out.errors[-20:]
        service_user, argv, unit_env = unit_command(UNIT_FILE)
        assert service_user == SERVICE_USER
        assert argv[:2] == [str(OPT / "milkconsole"), "gateway"] and str(DB) in argv
        gateway = start(as_service_user(argv, service_env(unit_env)))
        gw_out = Output(gateway)
        try:
            line = gw_out.wait_for(r" stall +[12] MM-0[12] cow .* completed", 180)
            assert line, f"no milking recorded: {gw_out.errors[-30:]}"
        finally:
            assert stop(gateway, via_child=True) == 0, gw_out.errors[-20:]
    finally:
        stop(simulator)
    assert DB.stat().st_uid == user.pw_uid
    v1_head, sessions = db_facts(DB)
    assert sessions >= 1
    log = (LOGS / "milkconsole.log").read_text()
    assert f"gateway: 2 meters on 1 buses, database {DB}" in log
    svc = service_env({"MILKCONSOLE_LOG_DIR": str(LOGS)})
    exported = run(as_service_user([str(BIN), "sessions", "export", "--db", str(DB)], svc)).stdout
    recorded = [ln for ln in gw_out.lines if " completed" in ln]
    assert len(exported.strip().splitlines()) >= 1 + len(recorded)  # header + finished milkings
    run(as_service_user([str(BIN), "users", "list", "--db", str(DB)], svc))
    sync = run(
        as_service_user(
            [str(BIN), "sync", "--status", "--config", str(CONFIG), "--db", str(DB)], svc
        )
    ).stdout
    assert "outbox:" in sync
    status = run(as_service_user([str(BIN), "db", "status", "--db", str(DB)], svc)).stdout
    assert "up to date" in status
    # Running all of that wrote nothing into the installed tree (no __pycache__, no logs).
    on_disk = {str(p) for p in OPT.rglob("*")} | {str(OPT)}
    assert on_disk - installed_files() == set()

    # Only the edited config differs from what was packaged.
    changed = _dpkg("--verify", PACKAGE).stdout.splitlines()
    assert [ln.split()[-1] for ln in changed] == [str(CONFIG)], changed

    # -- upgrade to a newer release: database kept and migrated, with a backup -------------------
    edited = CONFIG.read_text()
    next_deb, next_version = next_release(built, tmp_path, v1_head)
    proc = _dpkg("-i", str(next_deb))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        f"upgraded from {v1_head} to {NEXT_REVISION}; backup at {DB}.bak-{v1_head}-" in proc.stdout
    )
    assert run([str(BIN), "--version"], env=env).stdout.startswith(f"milkconsole {next_version} ")
    assert db_facts(DB) == (NEXT_REVISION, sessions)
    with contextlib.closing(read_only(DB)) as conn:
        conn.execute("SELECT count(*) FROM installer_upgrade_probe").fetchone()
    backups = list(DATA.glob(f"milkconsole.sqlite.bak-{v1_head}-*"))
    assert len(backups) == 1 and backups[0].stat().st_uid == user.pw_uid
    assert db_facts(backups[0]) == (v1_head, sessions)
    assert CONFIG.read_text() == edited  # the dealer's config survives the upgrade
    status = run(as_service_user([str(BIN), "db", "status", "--db", str(DB)], svc)).stdout
    assert f"revision {NEXT_REVISION} (this version: {NEXT_REVISION}): up to date" in status

    # -- remove: the program goes, the farm's data stays ------------------------------------------
    proc = _dpkg("-r", PACKAGE)
    assert proc.returncode == 0, proc.stderr
    assert "Kept: the database" in proc.stdout
    assert not OPT.exists() and not BIN.is_symlink() and not UNIT_FILE.exists()
    assert db_facts(DB) == (NEXT_REVISION, sessions) and backups[0].exists()
    assert (LOGS / "milkconsole.log").exists() and CONFIG.read_text() == edited

    # -- purge: the configuration goes, and it says where the data was left ----------------------
    proc = _dpkg("-P", PACKAGE)
    assert proc.returncode == 0, proc.stderr
    assert "The farm's data was NOT deleted" in proc.stdout and str(DATA) in proc.stdout
    assert not ETC.exists()
    assert db_facts(DB) == (NEXT_REVISION, sessions)

    # -- and the machine as it was found ----------------------------------------------------------
    _undo(machine)
    assert machine_state() == machine


# -- the wheel path -----------------------------------------------------------------------------


def test_wheel_ships_profiles_migrations_and_styles_and_works_installed(tmp_path: Path) -> None:
    run(
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
        ]
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
    run(
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
        ]
    )
    # Run from elsewhere with only the installed copy of our packages on the path.
    code = (
        "import sys, milkconsole.meters.profiles as p, milkconsole.store.db as d;"
        f"assert p.__file__.startswith({str(target)!r}), p.__file__;"
        "print(sorted(p.load_profiles()));"
        f"d.open_database(__import__('pathlib').Path({str(tmp_path / 'x.sqlite')!r}));"
        "print('db ok')"
    )
    env = dict(os.environ, PYTHONPATH=str(target), PYTHONSAFEPATH="1")
    proc = run([sys.executable, "-c", code], cwd=tmp_path, env=env, timeout=120)
    assert "'afimilk', 'delaval-mm27bc', 'gea'" in proc.stdout and "db ok" in proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_wheelhouse_installs_on_python_3_11_to_3_13(tmp_path: Path) -> None:
    """Every dependency as a binary wheel for each of 3.11, 3.12 and 3.13 (what the old
    cp311-only wheelhouse lacked: "No matching distribution found for SQLAlchemy" on 3.12),
    each set checked by a pip dry run with no index; then installed and run here."""
    run(
        [
            sys.executable,
            str(BUILD),
            "wheelhouse",
            "--out",
            str(tmp_path / "dist"),
            "--work",
            str(tmp_path / "build"),
        ],
        timeout=1500,
    )
    archive = tmp_path / "dist" / f"milkconsole-{_python_version()}-wheelhouse.tar.gz"
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    house = tmp_path / "unpacked" / archive.name.removesuffix(".tar.gz")
    assert (house / "SUPPORTED-PYTHON").read_text().split() == ["3.11", "3.12", "3.13"]
    wheels = {p.name for p in (house / "wheels").iterdir()}
    for tag in ("cp311", "cp312", "cp313"):
        assert any(n.startswith("numpy-") and f"-{tag}-" in n for n in wheels), tag
        assert any(n.lower().startswith("sqlalchemy-") and f"-{tag}-" in n for n in wheels), tag
    assert any(n.startswith("milkconsole-") for n in wheels)

    prefix = tmp_path / "venv"
    proc = run(
        ["sh", str(house / "install.sh"), str(prefix)],
        env={**os.environ, "PYTHON": sys.executable},
        timeout=900,
    )
    assert f"installed: milkconsole {_python_version()} (commit {git_head()}" in proc.stdout
    check = run(
        [
            str(prefix / "bin" / "milkconsole"),
            "check-config",
            str(ROOT / "installer" / "linux" / "parlour.toml"),
        ],
        env={**os.environ, "MILKCONSOLE_LOG_DIR": str(tmp_path / "logs")},
    )
    assert "ok — 4 meters" in check.stdout


def test_install_sh_refuses_a_python_the_wheelhouse_has_no_wheels_for() -> None:
    checker = ROOT / "installer" / "wheelhouse" / "check_python.py"
    mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
    ok = run([sys.executable, str(checker), "3.11", "3.12", "3.13"], check=False)
    assert ok.returncode == (0 if mine in ("3.11", "3.12", "3.13") else 2)
    others = [v for v in ("3.10", "3.11", "3.12", "3.13", "3.14") if v != mine]
    refused = run([sys.executable, str(checker), *others], check=False)
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert refused.stderr.splitlines()[0] == (
        f"milkconsole: this wheelhouse is for Python {', '.join(others)}; "
        f"{sys.executable} is Python {mine}."
    )
    assert "Debian package" in refused.stderr
