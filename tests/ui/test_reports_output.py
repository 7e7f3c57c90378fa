"""What leaves the console: the PDF (rendered to PNG with poppler's pdftoppm and read back with
pdftotext), the ICAR ADE file (valid against ICAR's published schema), and the `report` /
`export` commands."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from milkconsole.reports import meters, milking, periods
from milkconsole.reports.ade import ANIMAL_SCHEME, export_ade
from milkconsole.store.db import open_database
from tests.helpers.report_week import AM, TAGS, fabricate_week
from tests.ui.ade_schema import errors

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
NOW = AM + timedelta(hours=2)


def _pdf_tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} missing: scripts/bootstrap.sh installs poppler-utils"
    return path


def _png_has_ink(png: Path) -> float:
    """Share of pixels that are not white (PNG read with Qt, which the tests have anyway)."""
    from PySide6.QtGui import QImage

    img = QImage(str(png))
    assert not img.isNull(), png
    step = 4
    dark = total = 0
    for y in range(0, img.height(), step):
        for x in range(0, img.width(), step):
            total += 1
            dark += img.pixelColor(x, y).lightness() < 200
    return dark / total


def test_the_milking_report_pdf_is_printed_and_kept_as_a_png(db, tmp_path, qapp):
    from ui.report_pdf import write_report_pdf

    fabricate_week(db)
    period = periods.last_milking(db, NOW, UTC)
    assert period is not None
    report = milking.build_milking_report(db, period, now=NOW)
    pdf = tmp_path / "milking.pdf"
    pages = write_report_pdf(report, pdf, farm="Fabricated farm")
    assert pages >= 1 and pdf.read_bytes().startswith(b"%PDF")
    text = subprocess.run(
        [_pdf_tool("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, text=True
    ).stdout
    for words in ("Milking report", "48.5", "102 Bea", "antibiotic treatment", "Side"):
        assert words in text, f"{words!r} not in the PDF"
    subprocess.run(
        [
            _pdf_tool("pdftoppm"),
            "-png",
            "-r",
            "80",
            "-f",
            "1",
            "-l",
            "1",
            str(pdf),
            str(tmp_path / "p"),
        ],
        check=True,
    )
    png = next(tmp_path.glob("p-*.png"))
    assert 0.02 < _png_has_ink(png) < 0.5  # printed text on white, not a blank or black page
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(png, ARTIFACTS / "milking-report-page1.png")


def test_every_report_kind_prints(db, tmp_path, qapp):
    from milkconsole.reports import cow, day, herd
    from tests.helpers.report_week import DAY
    from ui.report_pdf import write_report_pdf

    ids = fabricate_week(db)
    reports = [
        day.build_day_report(db, DAY, zone=UTC, now=NOW),
        cow.build_cow_trend(db, ids["Bea"], end=NOW, zone=UTC),
        herd.build_herd_trend(db, DAY - timedelta(days=8), DAY, zone=UTC),
        meters.build_meter_comparison(db, AM - timedelta(days=8), NOW),
    ]
    for i, r in enumerate(reports):
        pdf = tmp_path / f"r{i}.pdf"
        assert write_report_pdf(r, pdf) >= 1
        text = subprocess.run(
            [_pdf_tool("pdftotext"), str(pdf), "-"], capture_output=True, text=True
        ).stdout
        assert "page 1 of" in text


def test_ade_export_is_valid_against_the_icar_schema(db):
    fabricate_week(db)
    export = export_ade(db, AM, AM + timedelta(hours=1))
    assert errors(export.document, "collections/icarMilkingVisitEventCollection.json") == []
    members = export.document["member"]
    for m in members:
        assert errors(m, "resources/icarMilkingVisitEventResource.json") == []
    # The milking with no tag cannot name a cow in ADE: left out and said so.
    assert export.skipped == ("D-noid",)
    assert export.exported == len(members) == 5
    by_key = {m["id"]: m for m in members}
    ada = by_key["D-Ada"]
    assert ada["animal"] == {"id": TAGS["Ada"], "scheme": ANIMAL_SCHEME}
    assert ada["milkingMilkWeight"] == {"unitCode": "KGM", "value": 10.3}
    assert ada["milkingDuration"] == {"unitCode": "SEC", "value": 400.0}
    assert ada["milkingStartingDateTime"] == "2026-03-10T05:00:00Z"
    assert ada["milkingDeviceId"] == "M1" and ada["milkingParlourUnit"] == "1"
    assert by_key["D-Cleo"]["milkingRemarks"] == ["MilkingIncomplete"]
    assert by_key["D-Dot"]["milkingRemarks"] == ["MilkedSeparately"]
    assert by_key["D-stranger"]["animal"]["id"] == "982000000000999"


def test_ade_quarters_and_characteristics_where_the_meter_gives_them(db):
    from milkconsole.reports.ade import milking_visit
    from milkconsole.store.history import finished_between

    fabricate_week(db)
    rec = finished_between(db, AM, AM + timedelta(minutes=1))[0]
    from dataclasses import replace

    rich = replace(
        rec, ec_lf_ms_cm=5.1234, ec_rr_ms_cm=6.0, fat_pct=4.1, scc_cells_ml=123456, blood=False
    )
    visit = milking_visit(rich, TAGS["Ada"])
    assert errors(visit, "resources/icarMilkingVisitEventResource.json") == []
    assert [q["icarQuarterId"] for q in visit["quarterMilkings"]] == ["LF", "RR"]
    assert visit["quarterMilkings"][0]["icarQuarterCharacteristics"] == [
        {"characteristic": "AVGCOND", "value": "5.12"}
    ]
    chars = {c["characteristic"]: c["value"] for c in visit["milkCharacteristics"]}
    assert (chars["FAT"], chars["SCC"], chars["BLOOD"]) == ("4.10", "123", "false")
    broken = dict(visit, milkingMilkWeight={"unitCode": "LTR", "value": 10})
    assert errors(broken, "resources/icarMilkingVisitEventResource.json")


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env.pop("DISPLAY", None)
    return subprocess.run(
        [sys.executable, "-m", "milkconsole", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def week_db(tmp_path):
    path = tmp_path / "week.sqlite"
    database = open_database(path)
    fabricate_week(database)
    database.close()
    return path


def test_report_command_writes_the_last_milking_as_csv_and_pdf(week_db, tmp_path):
    proc = cli("report", "milking", "--format", "csv", "--db", str(week_db))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == 6 and {r["start"][:10] for r in rows} == {"2026-03-10"}
    pdf = tmp_path / "out.pdf"
    proc = cli("report", "milking", "--format", "pdf", "--db", str(week_db), "--out", str(pdf))
    assert proc.returncode == 0, proc.stderr
    assert pdf.read_bytes().startswith(b"%PDF") and "page" in proc.stderr
    proc = cli(
        "report",
        "meter",
        "--format",
        "csv",
        "--db",
        str(week_db),
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-10",
    )
    assert proc.returncode == 0, proc.stderr
    assert [r["meter_id"] for r in csv.DictReader(io.StringIO(proc.stdout))] == [
        "M1",
        "M2",
        "M3",
        "M4",
    ]
    proc = cli("report", "cow", "--cow", "104", "--format", "csv", "--db", str(week_db))
    assert proc.returncode == 0, proc.stderr
    assert len(list(csv.DictReader(io.StringIO(proc.stdout)))) == 15


def test_report_command_refuses_bad_input_with_a_clear_message(week_db):
    proc = cli("report", "cow", "--cow", "777", "--format", "csv", "--db", str(week_db))
    assert proc.returncode == 1 and "777" in proc.stderr
    proc = cli("report", "day", "--from", "10/03/2026", "--format", "csv", "--db", str(week_db))
    assert proc.returncode == 2 and "10/03/2026" in proc.stderr


def test_export_commands(week_db, tmp_path):
    out = tmp_path / "ade.json"
    proc = cli(
        "export",
        "ade",
        "--from",
        "2026-03-10T05:00:00Z",
        "--to",
        "2026-03-10T06:00:00Z",
        "--db",
        str(week_db),
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert (
        doc["view"]["totalItems"] == 5
        and errors(doc, "collections/icarMilkingVisitEventCollection.json") == []
    )
    assert "1 milking(s) left out" in proc.stderr
    proc = cli("export", "calibrations", "--db", str(week_db))
    assert proc.returncode == 0 and proc.stdout.startswith("id,meter_id,performed_at")
    proc = cli(
        "users",
        "add",
        "sue",
        "--role",
        "supervisor",
        "--pin-stdin",
        "--db",
        str(week_db),
        stdin="4711\n4711\n",
    )
    assert proc.returncode == 0, proc.stderr
    proc = cli(
        "export", "audit", "--db", str(week_db), "--as", "sue", "--pin-stdin", stdin="4711\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert [r["action"] for r in csv.DictReader(io.StringIO(proc.stdout))] == ["user_add"]
    proc = cli(
        "export", "audit", "--db", str(week_db), "--as", "sue", "--pin-stdin", stdin="0000\n"
    )
    assert proc.returncode == 4 and "wrong name or PIN" in proc.stderr
