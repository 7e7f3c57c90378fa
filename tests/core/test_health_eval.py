"""Evaluating the detector: the herd simulator, the files, the CLI and the scorer."""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from milkconsole.health.cli import add_health_arguments, run_health
from milkconsole.health.evaluate import (
    SESSION_COLUMNS,
    SeedRuleDetector,
    SessionsFileError,
    read_alerts_csv,
    read_sessions_csv,
    run_detector,
    write_alerts_csv,
    write_sessions_csv,
)
from milkconsole.health.mastitis import MastitisDetector, MilkingSignals, RaisedAlert
from milkconsole.health.scoring import TruthCase, read_cases_csv, score
from simulators.herd import HerdConfig, simulate_herd, write_cases_csv

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
SMALL = HerdConfig(cows=40, days=30)


def health(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="milkconsole")
    add_health_arguments(parser.add_subparsers(dest="command"))
    return run_health(parser.parse_args(argv))


def test_the_same_seed_gives_the_same_herd_and_another_seed_another() -> None:
    a = simulate_herd(5, config=SMALL)
    assert a == simulate_herd(5, config=SMALL)
    assert a[0] != simulate_herd(6, config=SMALL)[0]


def test_simulated_clinical_quarters_rise_10_to_30_percent_by_onset() -> None:
    records, cases = simulate_herd(11, config=HerdConfig(cows=150, days=60))
    by_cow: dict[str, list[MilkingSignals]] = {}
    for r in records:
        by_cow.setdefault(r.cow_id, []).append(r)
    names = ("lf", "rf", "lr", "rr")
    rises = []
    clinical = [c for c in cases if c.kind == "clinical"]
    assert len(clinical) >= 8
    for c in clinical:
        q = names.index(c.quarters[0])
        mine = by_cow[c.cow_id]
        at_onset = [r for r in mine if r.start == c.onset]
        assert len(at_onset) == 1, "the onset is one of the cow's milkings"
        before = [
            value
            for r in mine
            if c.onset - timedelta(days=8) <= r.start < c.onset - timedelta(hours=c.preclinical_h)
            and (value := r.quarters[q]) is not None
        ]
        value = at_onset[0].quarters[q]
        if len(before) >= 5 and value is not None:
            rises.append(value / statistics.median(before) - 1)
    # Measured with the herd's noise on top: centred in the documented 10-30 % (a few weak
    # cases lower), never the 50-100 % that would make detection trivial.
    assert 0.08 <= statistics.median(rises) <= 0.30
    assert max(rises) < 0.6


def test_simulator_cli_writes_files_that_evaluate_reads(tmp_path: Path) -> None:
    sessions, cases = tmp_path / "sessions.csv", tmp_path / "cases.csv"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "simulators.herd"),
            *("--out", str(sessions), "--cases", str(cases)),
            *("--seed", "3", "--cows", "40", "--days", "30"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with sessions.open(newline="") as fh:
        assert tuple(next(csv.reader(fh))) == SESSION_COLUMNS
    expected_records, expected_cases = simulate_herd(3, config=HerdConfig(cows=40, days=30))
    assert read_sessions_csv(sessions) == expected_records
    truth = read_cases_csv(cases)
    assert [(c.cow_id, c.kind, c.onset, c.end) for c in truth] == [
        (c.cow_id, c.kind, c.onset, c.end) for c in expected_cases
    ]
    assert truth, "a 40-cow month has at least a sub-clinical flare"
    assert done.stdout.startswith(f"{len(expected_records)} milkings")


def test_health_evaluate_writes_the_alerts_and_scores_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records, cases = simulate_herd(4, config=SMALL)
    sessions, alerts_out, cases_file = (
        tmp_path / "in.csv",
        tmp_path / "alerts.csv",
        tmp_path / "cases.csv",
    )
    write_sessions_csv(sessions, records)
    write_cases_csv(cases_file, cases)
    argv = ["health", "evaluate", "--sessions", str(sessions), "--alerts", str(alerts_out)]
    assert health([*argv, "--cases", str(cases_file)]) == 0
    out = capsys.readouterr().out
    assert f"{len(records)} milkings" in out and "sensitivity" in out
    with alerts_out.open(newline="") as fh:
        assert next(csv.reader(fh)) == ["cow_id", "start_time", "severity", "reason"]
    written = read_alerts_csv(alerts_out)
    expected = run_detector(MastitisDetector(), records)
    assert [(a.cow_id, a.start_time, a.severity) for a in written] == [
        (a.cow_id, a.start_time, a.severity) for a in expected
    ]
    assert health([*argv, "--detector", "seed"]) == 0
    assert all(a.severity in ("warning", "critical") for a in read_alerts_csv(alerts_out))


def test_the_milkconsole_command_runs_health_evaluate(tmp_path: Path) -> None:
    sessions, alerts_out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_sessions_csv(sessions, simulate_herd(2, config=HerdConfig(cows=10, days=8))[0])
    done = subprocess.run(
        [
            *(sys.executable, "-m", "milkconsole", "health", "evaluate"),
            *("--sessions", str(sessions), "--alerts", str(alerts_out)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert alerts_out.read_text().startswith("cow_id,start_time,severity,reason")


HEADER = ",".join(SESSION_COLUMNS)
GOOD = "C1,2026-03-02T05:12:00Z,2026-03-02T05:20:00Z,14.2,5.1,5.0,5.2,,5.1,36.9,0"


@pytest.mark.parametrize(
    ("text", "line", "column", "problem"),
    [
        ("", 1, None, "empty file"),
        ("cow_id,start_time\nC1,x\n", 1, "end_time", "missing from the header"),
        (HEADER + ",extra\n", 1, "extra", "unknown column"),
        (f"{HEADER}\n{GOOD}\n{GOOD.replace('05:12:00Z', 'yesterday')}\n", 3, "start_time", "ISO"),
        (f"{HEADER}\n{GOOD.replace('05:12:00Z', '05:12:00')}\n", 2, "start_time", "time zone"),
        (f"{HEADER}\n{GOOD.replace(',14.2,', ',lots,')}\n", 2, "yield_l", "not a number"),
        (f"{HEADER}\n{GOOD.replace(',14.2,', ',,')}\n", 2, "yield_l", "required"),
        (f"{HEADER}\n{GOOD.replace(',5.1,5.0,', ',nan,5.0,')}\n", 2, "conductivity_ms_cm", ""),
        (f"{HEADER}\n{GOOD.replace(',5.2,', ',-3,')}\n", 2, "ec_rf", "outside"),
        (f"{HEADER}\n{GOOD[:-2]}\n", 2, None, "10 cells"),
        (f"{HEADER}\n{GOOD[:-1]}maybe\n", 2, "blood", "0/1"),
        (f"{HEADER}\n{GOOD.replace('05:20:00Z', '05:00:00Z')}\n", 2, "end_time", "before"),
        (f"{HEADER}\n,{GOOD[3:]}\n", 2, "cow_id", "empty"),
        (f"{HEADER}\n{GOOD}\n{GOOD}\n", 3, "start_time", "already has a milking"),
    ],
)
def test_bad_sessions_files_are_refused_naming_file_line_and_column(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    line: int,
    column: str | None,
    problem: str,
) -> None:
    path = tmp_path / "history.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SessionsFileError) as err:
        read_sessions_csv(path)
    assert (err.value.path, err.value.line, err.value.column) == (str(path), line, column)
    assert problem in err.value.problem
    rc = health(["health", "evaluate", "--sessions", str(path), "--alerts", str(tmp_path / "a")])
    assert rc == 2
    message = capsys.readouterr().err
    assert f"{path}:{line}" in message and (column is None or f"column {column}" in message)
    assert not (tmp_path / "a").exists()


def test_a_missing_sessions_file_is_exit_2_with_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.csv"
    rc = health(["health", "evaluate", "--sessions", str(missing), "--alerts", str(tmp_path / "a")])
    assert rc == 2
    assert str(missing) in capsys.readouterr().err


def test_sessions_with_empty_quarter_cells_read_as_missing_values(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(f"{HEADER}\r\n{GOOD}\r\n", encoding="utf-8-sig")  # as a spreadsheet saves
    (record,) = read_sessions_csv(path)
    assert record.quarters == (5.0, 5.2, None, 5.1)
    assert record.start == datetime(2026, 3, 2, 5, 12, tzinfo=UTC)
    assert record.blood is False
    write_sessions_csv(tmp_path / "again.csv", [record])
    assert read_sessions_csv(tmp_path / "again.csv") == [record]


def test_the_seed_rule_alerts_on_every_milking_over_6_6_ms_cm() -> None:
    def milking(ec: float, hours: int) -> MilkingSignals:
        start = T0 + timedelta(hours=hours)
        return MilkingSignals("C1", start, start + timedelta(minutes=8), 12.0, ec)

    alerts = run_detector(SeedRuleDetector(), [milking(6.6, 0), milking(6.7, 12), milking(8.3, 24)])
    assert [a.severity for a in alerts] == ["warning", "critical"]


def _alert(cow: str, at: datetime) -> RaisedAlert:
    return RaisedAlert(cow, at, "warning", "mastitis", "")


def test_the_scorer_counts_detections_in_the_window_and_false_alerts_on_healthy_days() -> None:
    # Two cows milked twice a day for 20 days; cow A has a case on day 10, cow B a flare.
    records = [
        MilkingSignals(
            cow, T0 + timedelta(hours=12 * i), T0 + timedelta(hours=12 * i, minutes=8), 10
        )
        for cow in ("A", "B")
        for i in range(40)
    ]
    onset = T0 + timedelta(days=10)
    cases = [
        TruthCase("A", "clinical", onset, onset + timedelta(days=4)),
        TruthCase("B", "subclinical", T0 + timedelta(days=5), T0 + timedelta(days=6)),
    ]
    alerts = [
        _alert("A", onset - timedelta(hours=12)),  # detection, 12 h early
        _alert("A", onset + timedelta(hours=12)),  # still the same case
        _alert("B", T0 + timedelta(days=5, hours=12)),  # on a flare day
        _alert("B", T0 + timedelta(days=15)),  # false
    ]
    s = score(records, cases, alerts)
    assert (s.clinical_cases, s.detected, s.sensitivity) == (1, 1, 1.0)
    assert s.median_lead_h == 12.0
    # Healthy cow-days: A's days outside [day 3, day 17], B's outside [day 4, day 7].
    a_healthy = 3 + 2  # days 0-2 and 18-19
    b_healthy = 20 - 4
    assert s.healthy_cow_days == a_healthy + b_healthy
    assert math.isclose(s.specificity, 1 - 1 / (a_healthy + b_healthy))
    assert math.isclose(s.false_alerts_per_1000, 1000 / 80)
    assert math.isclose(s.strict_specificity, 1 - 2 / (a_healthy + 20))
    assert (s.flares, s.flares_alerted) == (1, 1)
    late = score(records, cases, [_alert("A", onset + timedelta(hours=25))])
    assert late.detected == 0 and late.median_lead_h is None
    early = score(records, cases, [_alert("A", onset - timedelta(hours=49))])
    assert early.detected == 0


def test_alert_files_round_trip(tmp_path: Path) -> None:
    alerts = [
        RaisedAlert(
            "C7", T0, "warning", "mastitis", "quarter LF conductivity up (4.1 sd); score 3.2"
        ),
        RaisedAlert("C7", T0 + timedelta(hours=12), "critical", "mastitis", "escalated: x", True),
    ]
    assert write_alerts_csv(tmp_path / "a.csv", alerts) == 2
    assert read_alerts_csv(tmp_path / "a.csv") == alerts
