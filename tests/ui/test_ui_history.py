"""The History tab offscreen: the report screen, a cow's lactation trend, the herd day by day and
the meters compared, read from a real SQLite file on the task runner; screenshots are kept in
tests/artifacts/ to be looked at."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from milkconsole.store.db import open_database
from tests.helpers.report_week import AM, DAY, fabricate_meter_days, fabricate_week
from ui.history_view import HistoryWidget
from ui.theme import DARK, LIGHT, apply_theme
from ui.workers import TaskRunner

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def _shot(widget, name: str) -> None:
    QApplication.processEvents()  # let the layout place what was just drawn
    ARTIFACTS.mkdir(exist_ok=True)
    assert widget.grab().save(str(ARTIFACTS / name))


@pytest.fixture
def view(qtbot, db):
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    apply_theme(app, DARK)
    ids = fabricate_week(db)
    tasks = TaskRunner()
    w = HistoryWidget(db, tasks, theme=DARK)
    qtbot.addWidget(w)
    w.resize(1500, 950)
    w.ids = ids  # type: ignore[attr-defined]
    yield w
    tasks.wait_for_done(5)


def test_report_screen_shows_the_last_milking_and_saves_it(view, qtbot, tmp_path):
    with qtbot.waitSignal(view.reports.loaded, timeout=15000) as got:
        view.show()
    report = got.args[0]
    assert report.period.start == AM and report.figures.yield_l == 48.5
    text = view.reports.view.toPlainText()
    assert "Milking report" in text and "102 Bea" in text and "48.5" in text
    _shot(view, "history-report.png")
    pdf = view.reports.save("pdf", tmp_path / "r.pdf")
    assert pdf is not None and pdf.read_bytes().startswith(b"%PDF")
    csv = view.reports.save("csv", tmp_path / "r.csv")
    assert csv is not None and len(csv.read_text().splitlines()) == 7
    # The day report of that day, chosen by hand.
    view.reports.kind.setCurrentIndex(1)
    view.reports.day.setDate(view.reports.day.date().fromString(DAY.isoformat(), "yyyy-MM-dd"))
    with qtbot.waitSignal(view.reports.loaded, timeout=15000) as got:
        view.reports.show_selected()
    assert got.args[0].figures.yield_l == 48.5


def test_a_cow_is_found_by_number_and_her_lactation_drawn_in_both_themes(view, qtbot):
    view.show()
    view.pages.setCurrentWidget(view.cows)
    view.cows.search.setText("102")
    qtbot.waitUntil(lambda: view.cows.results.count() == 1, timeout=10000)
    with qtbot.waitSignal(view.cows.loaded, timeout=15000) as got:
        view.cows.results.itemClicked.emit(view.cows.results.item(0))
    trend = got.args[0]
    assert trend.cow.number == "102" and len(trend.milkings) == 15
    w = view.cows.trend
    assert w.title.text() == "Cow 102 Bea"
    day_items = w.plots[0].listDataItems()
    assert len(day_items) == 2  # milk per day and expected
    assert len(day_items[0].xData) == len(trend.days) == 8
    # Days in milk on the x-axis: her first day in the trend is day 42 of her lactation.
    assert min(day_items[0].xData) == pytest.approx(42.5, abs=0.01)
    _shot(view, "cow-trend.png")
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    apply_theme(app, LIGHT)  # as the console's theme button does, with the widget's own
    w.set_theme(LIGHT)
    assert len(w.plots[0].listDataItems()) == 2
    _shot(w, "cow-trend-light.png")
    apply_theme(app, DARK)
    # Opened from elsewhere (a herd list, an alert): Cleo, with her alerts marked.
    with qtbot.waitSignal(view.cows.loaded, timeout=15000):
        view.open_cow(view.ids["Cleo"])  # type: ignore[attr-defined]
    assert len(w.marks) == 2 * len(w.plots)


def test_herd_trend_draws_each_day(view, qtbot):
    view.show()
    view.pages.setCurrentWidget(view.herd)
    view.herd.start.setDate(
        view.herd.start.date().fromString((DAY - timedelta(days=8)).isoformat(), "yyyy-MM-dd")
    )
    view.herd.end.setDate(view.herd.end.date().fromString(DAY.isoformat(), "yyyy-MM-dd"))
    with qtbot.waitSignal(view.herd.loaded, timeout=15000) as got:
        view.herd.load()
    assert [d.yield_l for d in got.args[0].days][-2:] == [90.0, 48.5]
    (milk,) = view.herd.trend.plots[0].listDataItems()
    assert list(milk.yData)[-2:] == [90.0, 48.5]
    _shot(view, "herd-trend.png")


def test_meter_comparison_flags_the_low_meter_and_offers_the_wizard(qtbot, tmp_path):
    db = open_database(tmp_path / "meters.sqlite")
    fabricate_meter_days(db)
    tasks = TaskRunner()
    w = HistoryWidget(db, tasks, theme=DARK)
    qtbot.addWidget(w)
    w.resize(1500, 700)
    w.show()
    w.pages.setCurrentWidget(w.meters)
    day = (AM - timedelta(days=3)).date()
    w.meters.start.setDate(w.meters.start.date().fromString(day.isoformat(), "yyyy-MM-dd"))
    w.meters.end.setDate(w.meters.end.date().fromString(DAY.isoformat(), "yyyy-MM-dd"))
    with qtbot.waitSignal(w.meters.loaded, timeout=15000) as got:
        w.meters.load()
    assert [r.meter_id for r in got.args[0].flagged] == ["M3"]
    row = [w.meters.table.item(i, 1).text() for i in range(8)].index("M3")
    assert w.meters.table.item(row, 9).text() == "⚠ CALIBRATE"
    assert "stall 3 (M3) reads −" in w.meters.verdict.text().replace("-", "−")
    _shot(w, "meter-comparison.png")
    assert w.meters.calibrate_button.isEnabled()
    with qtbot.waitSignal(w.calibrate_requested, timeout=2000) as asked:
        w.meters.calibrate_button.click()
    assert asked.args[0] == ["M3"]
    tasks.wait_for_done(5)
    db.close()
