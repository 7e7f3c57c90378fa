"""The command line: sessions export as CSV, exit statuses, the gateway's one line per milking."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from milkconsole.app.gateway import run_gateway, session_line
from milkconsole.config import load_config
from milkconsole.meters.events import SessionCompleted, SessionSnapshot, SessionStarted
from milkconsole.store import Recorder, open_database
from simulators.demo import SimulatedParlour, make_demo_config

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 5, 12, tzinfo=UTC)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "milkconsole", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def record(db_path: Path, n: int) -> list[str]:
    db = open_database(db_path)
    rec = Recorder(db, farm_code="F1")
    rec.start()
    keys = []
    for i in range(n):
        key = f"F1-MM-01-2026030{i + 1}T051200Z-00{i}"
        start = T0 + timedelta(days=i)
        snap = SessionSnapshot(
            key=key, meter_id="MM-01", stall=1, started_at=start, rfid="83D5A16C4D5E0E1F"
        )
        rec.submit(SessionStarted(snap))
        done = replace(
            snap,
            state="completed",
            ended_at=start + timedelta(minutes=7),
            duration_s=420,
            yield_l=12.25 + i,
            peak_flow_l_min=3.1,
            avg_flow_l_min=1.75,
            conductivity_mean_ms_cm=5.2,
            temperature_c=37.1,
            flags=("rfid_late",),
        )
        rec.submit(SessionCompleted(done))
        keys.append(key)
    assert rec.stop(10)
    db.close()
    return keys


def test_sessions_export_prints_one_csv_row_per_session_since_a_time(tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite"
    keys = record(db, 3)
    proc = cli("sessions", "export", "--format", "csv", "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [r["key"] for r in rows] == keys
    first = rows[0]
    assert first["rfid"] == "83D5A16C4D5E0E1F" and first["stall"] == "1"
    assert first["meter_id"] == "MM-01" and first["start"] == "2026-03-02T05:12:00Z"
    assert float(first["yield_l"]) == 12.25 and first["flags"] == "rfid_late"
    later = cli("sessions", "export", "--db", str(db), "--since", "2026-03-03T00:00:00Z")
    assert [r["key"] for r in csv.DictReader(io.StringIO(later.stdout))] == keys[1:]


def test_a_bad_since_time_is_refused_with_status_2(tmp_path: Path) -> None:
    proc = cli("sessions", "export", "--db", str(tmp_path / "x.sqlite"), "--since", "yesterday")
    assert proc.returncode == 2 and "--since" in proc.stderr


def test_a_database_from_a_newer_release_exits_3_and_says_so(tmp_path: Path) -> None:
    db = tmp_path / "new.sqlite"
    record(db, 1)
    import sqlite3

    with sqlite3.connect(db) as con:
        con.execute("UPDATE alembic_version SET version_num = '9999_future'")
    proc = cli("sessions", "export", "--db", str(db))
    assert proc.returncode == 3
    assert "newer" in proc.stderr and str(db) in proc.stderr


def test_gateway_prints_one_line_per_completed_session_and_stops_on_request(tmp_path: Path) -> None:
    cfg = load_config(make_demo_config(tmp_path, stalls=4, time_scale=120.0))
    out = io.StringIO()
    stop = threading.Event()

    def stop_when_all_printed() -> None:
        park.scenario.wait_done(120)
        deadline = time.monotonic() + 30  # flow-detected meters end after end_after_s
        while out.getvalue().count("\n") < 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()

    with SimulatedParlour(cfg, cows=8, seed=2, time_scale=120.0) as park:
        done = threading.Thread(target=stop_when_all_printed)
        done.start()
        status = run_gateway(cfg, tmp_path / "gw.sqlite", out=out, stop_event=stop)
        done.join()
    assert status == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 8
    assert all(" L peak " in line and " stall " in line for line in lines)


def test_session_line_names_the_stall_cow_yield_and_state() -> None:
    s = SessionSnapshot(
        key="k",
        meter_id="MM-07",
        stall=7,
        started_at=T0,
        state="incomplete",
        rfid="C0001234",
        ended_at=T0 + timedelta(minutes=2),
        yield_l=1.5,
        duration_s=120,
        flags=("short",),
    )
    assert session_line(s) == (
        "2026-03-02T05:14:00Z stall  7 MM-07 cow C0001234   1.50 L peak 0.00 L/min   120 s "
        "incomplete [short]"
    )


def test_main_in_process_exports_checks_and_maps_errors_to_exit_statuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from milkconsole.app.entry import main

    db = tmp_path / "x.sqlite"
    keys = record(db, 2)
    assert main(["sessions", "export", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert all(k in out for k in keys), out
    cfg = make_demo_config(tmp_path / "demo", stalls=4)
    assert main(["check-config", str(cfg)]) == 0
    assert "4 meters" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(cfg.read_text().replace('farm_code = "DEMO"', 'farm_code = "DEMO"\nfoo = 1'))
    assert main(["check-config", str(bad)]) == 2
    assert f"{bad}: parlour.foo: unknown key" in capsys.readouterr().err
    assert main(["gateway", "--config", str(tmp_path / "missing.toml"), "--db", str(db)]) == 2
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["sessions", "export", "--since", "not-a-time", "--db", str(db)])
    assert exit_.value.code == 2


def test_the_headless_demo_records_its_cows_in_simulated_time(tmp_path: Path) -> None:
    """At --time-scale 120 a 6-minute milking is recorded as 6 minutes (not 3 wall seconds,
    as 'incomplete [short]' at hundreds of L/min), every cow of the herd list by her number,
    and the treated and fresh cows' milk as diverted."""
    import signal

    db = tmp_path / "demo.sqlite"
    env = {**__import__("os").environ, "MILKCONSOLE_LOG_DIR": str(tmp_path / "logs")}
    argv = ["demo", "--headless", "--cows", "30", "--time-scale", "120", "--db", str(db)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "milkconsole", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline()
        deadline = time.monotonic() + 150
        while len(lines) < 30 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "29 cows in the herd list" in header
    treated = header.split("treated: ")[1].split(";")[0].split(", ")
    fresh = header.split("fresh: ")[1].split(")")[0].split(", ")
    assert len(lines) == 30, err[-2000:]
    proc = cli("sessions", "export", "--db", str(db))
    rows = [r for r in csv.DictReader(io.StringIO(proc.stdout)) if "HIST" not in r["key"]]
    assert len(rows) == 30
    assert all(r["state"] == "completed" for r in rows), [r["flags"] for r in rows]
    durations = [float(r["duration_s"]) for r in rows]
    assert min(durations) >= 180 and max(durations) <= 660  # the plan's 4-10 minute milkings
    flows = [float(r["avg_flow_l_min"]) for r in rows]
    assert min(flows) >= 1.0 and max(flows) <= 5.0
    # One cow of the 30 is left out of the herd list on purpose (cow index 22).
    assert sum(1 for r in rows if not r["animal"]) == 1
    diverted = [line for line in lines if "-> DIVERTED" in line]
    cows = {line.split(" cow ")[1].split()[0] for line in diverted}
    assert cows == set(treated) | set(fresh)
    assert all("NOT CONFIRMED" in line for line in diverted)  # nobody stands at a headless stall


def test_a_scaled_clock_runs_the_scenarios_time() -> None:
    from milkconsole.clock import ScaledClock

    wall = [100.0]
    clock = ScaledClock(120.0, start_utc=T0, wall=lambda: wall[0])
    wall[0] += 3.0
    assert clock.monotonic() - 100.0 == pytest.approx(360.0)
    assert clock.now() == T0 + timedelta(minutes=6)
    with pytest.raises(ValueError):
        ScaledClock(0)
