"""Reports as printable HTML (the subset `QTextDocument` lays out): the console's report view
shows it and `ui.report_pdf` prints it, so the screen and the paper say the same thing.

Plain black on white with grey rules, big headline figures, every table headed in words; a
change against yesterday or the week is written with its sign and an arrow, never colour alone.
Times are the farm's local time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from milkconsole.reports.cow import CowTrend
from milkconsole.reports.day import DayReport
from milkconsole.reports.herd import HerdTrend
from milkconsole.reports.meters import MeterComparison
from milkconsole.reports.milking import EXCEPTIONS, MilkingReport, ShiftFigures
from milkconsole.reports.tables import Report

CSS = """
body { font-family: 'DejaVu Sans', sans-serif; font-size: 9.5pt; color: #000; }
h1 { font-size: 17pt; margin-bottom: 2pt; }
h2 { font-size: 12pt; margin-top: 12pt; margin-bottom: 4pt; }
h3 { font-size: 10.5pt; margin-top: 8pt; margin-bottom: 3pt; }
p.sub { color: #333; margin-bottom: 8pt; }
th { background-color: #dcdcdc; font-weight: bold; text-align: left; }
td.n, th.n { text-align: right; }
td.big { font-size: 15pt; font-weight: bold; }
p.none { color: #444; font-style: italic; }
"""


def _t(dt: datetime | None, fmt: str = "%H:%M") -> str:
    return dt.astimezone().strftime(fmt) if dt else "—"


def _l(value: float | None, places: int = 1) -> str:
    return "—" if value is None else f"{value:,.{places}f} L"


def _n(value: float | None, places: int = 0) -> str:
    return "—" if value is None else f"{value:,.{places}f}"


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d} h" if s >= 3600 else f"{s // 60}:{s % 60:02d} min"


def change(now: float | None, before: float | None) -> str:
    """'▲ +4.2 %' / '▼ −3.0 %' / '= 0.0 %' (words and arrows, not colour)."""
    if now is None or not before:
        return "—"
    pct = 100.0 * (now - before) / before
    if abs(pct) < 0.05:
        return "= 0.0 %"
    arrow = "▲" if pct > 0 else "▼"
    return f"{arrow} {pct:+.1f} %".replace("-", "−")


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int] | None = None
) -> str:
    numeric = numeric or set()
    head = "".join(
        f'<th class="{"n" if i in numeric else ""}">{escape(h)}</th>' for i, h in enumerate(headers)
    )
    body = "".join(
        _row(
            "".join(
                f'<td class="{"n" if i in numeric else ""}">{escape(c)}</td>'
                for i, c in enumerate(r)
            ),
            k,
        )
        for k, r in enumerate(rows)
    )
    return f"{TABLE}<tr>{head}</tr>{body}</table>"


# QTextDocument pads cells by attribute, not by CSS; every other row is shaded to guide the eye.
TABLE = '<table width="100%" cellspacing="0" cellpadding="4" border="0">'


def _row(cells: str, k: int) -> str:
    return f'<tr bgcolor="{"#f0f0f0" if k % 2 else "#ffffff"}">{cells}</tr>'


def _none(text: str) -> str:
    return f'<p class="none">{escape(text)}</p>'


def _doc(title: str, sub: str, body: str, farm: str) -> str:
    head = f"<h1>{escape(title)}</h1><p class='sub'>{escape(sub)}"
    if farm:
        head += f" · {escape(farm)}"
    return f"<html><head><style>{CSS}</style></head><body>{head}</p>{body}</body></html>"


def _headline(
    figures: ShiftFigures,
    yesterday: ShiftFigures | None,
    week: ShiftFigures | None,
    week_days: int,
    label: str,
) -> str:
    week_label = f"7-day mean ({week_days} found)" if week_days != 7 else "7-day mean"

    def pick(f: ShiftFigures | None, name: str) -> float | None:
        return None if f is None else getattr(f, name)

    rows = [
        (text_, pick(figures, name), pick(yesterday, name), pick(week, name), places)
        for text_, name, places in (
            ("Cows milked", "cows_milked", 0),
            ("Total milk (L)", "yield_l", 1),
            ("Average per cow (L)", "per_cow_l", 2),
        )
    ]
    head = (
        f"<tr><th></th><th class='n'>{escape(label)}</th><th class='n'>Same shift yesterday</th>"
        f"<th class='n'>vs yesterday</th><th class='n'>{escape(week_label)}</th>"
        "<th class='n'>vs week</th></tr>"
    )
    body = ""
    for k, (name, now, y, w, places) in enumerate(rows):
        body += _row(
            f"<td>{name}</td><td class='n big'>{_n(now, places)}</td>"
            f"<td class='n'>{_n(y, places) if y is not None else '—'}</td>"
            f"<td class='n'>{change(now, y)}</td>"
            f"<td class='n'>{_n(w, places) if w is not None else '—'}</td>"
            f"<td class='n'>{change(now, w)}</td>",
            k,
        )
    return f"{TABLE}{head}{body}</table>"


def milking_body(r: MilkingReport, *, details: bool = True) -> str:
    parts = [_headline(r.figures, r.yesterday, r.week_mean, r.week_days, "This milking")]
    parts.append(
        table(
            (
                "Milking",
                "First cow on",
                "Last cow off",
                "Duration",
                "Cows per hour",
                "To the tank",
                "Diverted",
            ),
            [
                (
                    f"{int(r.figures.sessions)} milkings",
                    _t(r.first_start),
                    _t(r.last_end),
                    _dur(r.duration_s),
                    _n(r.cows_per_hour, 0),
                    _l(r.tank_l),
                    _l(r.diverted_l) + f" ({len(r.diverted)} cows)",
                )
            ],
            numeric={1, 2, 3, 4, 5, 6},
        )
    )
    pct = round(100 * r.drop_share)
    parts.append(f"<h2>Cows more than {pct} % below their expected yield ({len(r.drops)})</h2>")
    if r.drops:
        parts.append(
            table(
                ("Cow", "Stall", "Milk", "Expected", "Of expected"),
                [
                    (
                        d.cow,
                        str(d.stall),
                        _l(d.yield_l, 2),
                        _l(d.expected_l, 2),
                        f"{100 * d.share:.0f} %",
                    )
                    for d in r.drops
                ],
                numeric={1, 2, 3, 4},
            )
        )
    else:
        parts.append(_none("None: every cow gave close to what she usually does."))
    counts = ", ".join(f"{label.lower()} {len(r.exceptions[key])}" for key, label in EXCEPTIONS)
    parts.append(f"<h2>Milkings to look at</h2><p>{escape(counts)}</p>")
    if details:
        for key, label in EXCEPTIONS:
            notes = r.exceptions[key]
            if not notes:
                continue
            parts.append(f"<h3>{escape(label)} ({len(notes)})</h3>")
            parts.append(
                table(
                    ("Time", "Stall", "Cow", "Milk", "Why"),
                    [
                        (_t(n.started_at), str(n.stall), n.cow, _l(n.yield_l, 2), n.note)
                        for n in notes
                    ],
                    numeric={1, 3},
                )
            )
    parts.append(f"<h2>Alerts raised ({len(r.alerts)})</h2>")
    if r.alerts:
        parts.append(
            table(
                ("Time", "Alert", "Severity", "Cow", "Message"),
                [
                    (_t(a.raised_at), a.kind.replace("_", " "), a.severity, a.cow or "—", a.message)
                    for a in r.alerts
                ],
            )
        )
    else:
        parts.append(_none("No alerts."))
    parts.append(f"<h2>Milk diverted ({_l(r.diverted_l)})</h2>")
    if r.diverted:
        parts.append(
            table(
                ("Cow", "Stall", "Milk", "Why"),
                [(d.cow, str(d.stall), _l(d.yield_l, 2), d.reason or "—") for d in r.diverted],
                numeric={1, 2},
            )
        )
    else:
        parts.append(_none("No milk was diverted."))
    parts.append("<h2>Throughput</h2>")
    parts.append(
        table(
            ("Side", "Milkings", "Milk", "Cows per hour", "Mean milking"),
            [
                (
                    s.name,
                    str(s.sessions),
                    _l(s.yield_l),
                    _n(s.cows_per_hour, 1),
                    _dur(s.mean_duration_s),
                )
                for s in r.sides
            ],
            numeric={1, 2, 3, 4},
        )
    )
    if details:
        parts.append(
            table(
                ("Stall", "Meter", "Milkings", "Milk", "Cows per hour", "Mean milking"),
                [
                    (
                        s.name,
                        s.meter_id,
                        str(s.sessions),
                        _l(s.yield_l),
                        _n(s.cows_per_hour, 1),
                        _dur(s.mean_duration_s),
                    )
                    for s in r.stalls
                ],
                numeric={2, 3, 4, 5},
            )
        )
    return "".join(parts)


def day_body(r: DayReport) -> str:
    parts = [_headline(r.figures, r.yesterday, r.week_mean, r.week_days, "Today")]
    parts.append(
        f"<p>To the tank {_l(r.tank_l)}, diverted {_l(r.diverted_l)}; "
        f"{r.ec_outliers} milkings with high conductivity.</p>"
    )
    if not r.milkings:
        parts.append(_none("No milking recorded this day."))
    for m in r.milkings:
        parts.append(f"<h2>{escape(m.period.label)}</h2>")
        parts.append(milking_body(m, details=False))
    return "".join(parts)


def cow_body(t: CowTrend, chart: str = "") -> str:
    c = t.cow
    facts = [
        ("Herd number", c.number),
        ("Name", c.name or "—"),
        ("Tag", c.rfid_tag or "—"),
        ("Group", c.group_name or "—"),
        ("Lactation", str(c.lactation_number) if c.lactation_number else "—"),
        ("Calved", c.last_calving_date.isoformat() if c.last_calving_date else "unknown"),
    ]
    parts = [table(("", ""), facts)]
    if c.milk_withheld_reason:
        parts.append(f"<p><b>Milk withheld:</b> {escape(c.milk_withheld_reason)}</p>")
    if chart:
        parts.append(f'<p><img src="{chart}" width="640"></p>')
    parts.append(f"<h2>Days ({len(t.days)})</h2>")
    parts.append(
        table(
            ("Day", "DIM", "Milkings", "Milk", "Expected", "Of expected", "Max EC mS/cm"),
            [
                (
                    d.day.isoformat(),
                    _n(d.dim),
                    str(d.milkings),
                    _l(d.yield_l, 2),
                    _l(d.expected_l, 2),
                    f"{100 * d.yield_l / d.expected_l:.0f} %" if d.expected_l else "—",
                    _n(d.conductivity_max_ms_cm, 2),
                )
                for d in reversed(t.days)
            ],
            numeric={1, 2, 3, 4, 5, 6},
        )
    )
    parts.append(f"<h2>Alerts ({len(t.alerts)}) and health events ({len(t.events)})</h2>")
    rows = [
        (_t(a.raised_at, "%d %b %H:%M"), f"alert: {a.title}", a.severity, a.state, a.message)
        for a in t.alerts
    ]
    rows += [
        (_t(e.recorded_at, "%d %b %H:%M"), e.kind.replace("_", " "), "", "", e.detail or "")
        for e in t.events
    ]
    parts.append(
        table(("When", "What", "Severity", "State", "Detail"), sorted(rows))
        if rows
        else _none("None.")
    )
    return "".join(parts)


def meter_body(m: MeterComparison) -> str:
    rows = []
    for r in m.rows:
        d = r.deviation
        verdict = (
            "CALIBRATE"
            if r.flagged
            else ("ok" if d and d.cows >= m.settings.min_cows else "too few cows")
        )
        rows.append(
            (
                str(r.stall),
                r.meter_id,
                str(r.sessions),
                _n(r.mean_yield_l, 2),
                _n(r.mean_flow_l_min, 2),
                f"{100 * r.incomplete_share:.1f} %" if r.incomplete_share is not None else "—",
                str(r.comm_errors),
                f"{100 * d.deviation:+.1f} %".replace("-", "−") if d else "—",
                str(d.cows) if d else "0",
                verdict,
                _t(r.last_calibrated_at, "%d %b %Y") if r.last_calibrated_at else "never",
            )
        )
    flagged = m.flagged
    intro = (
        "Each cow is her own control: her milk on a meter against her milk on the other meters. "
        f"A meter is flagged when at least {m.settings.min_cows} cows show it reading "
        f"{100 * m.settings.min_deviation:.0f} % or more off, beyond chance."
    )
    verdict = (
        "<p><b>Calibrate: "
        + ", ".join(
            f"stall {r.stall} ({r.meter_id}) reads {100 * r.deviation.deviation:+.1f} %".replace(
                "-", "−"
            )
            for r in flagged
            if r.deviation
        )
        + ".</b></p>"
        if flagged
        else _none("No meter reads differently from the others.")
    )
    return f"<p>{escape(intro)}</p>{verdict}" + table(
        (
            "Stall",
            "Meter",
            "Milkings",
            "Mean L",
            "Mean flow L/min",
            "Incomplete",
            "Comm errors",
            "Deviation",
            "Cows",
            "Verdict",
            "Calibrated",
        ),
        rows,
        numeric={0, 2, 3, 4, 5, 6, 7, 8},
    )


def herd_body(h: HerdTrend, chart: str = "") -> str:
    parts = []
    if chart:
        parts.append(f'<p><img src="{chart}" width="640"></p>')
    parts.append(
        table(
            ("Day", "Cows milked", "Milk", "Per cow", "Milkings", "High EC", "Diverted"),
            [
                (
                    d.day.isoformat(),
                    str(d.cows_milked),
                    _l(d.yield_l),
                    _l(d.per_cow_l, 2),
                    str(d.sessions),
                    str(d.ec_outliers),
                    _l(d.diverted_l),
                )
                for d in reversed(h.days)
            ],
            numeric={1, 2, 3, 4, 5, 6},
        )
    )
    return "".join(parts)


def title_of(report: Report) -> tuple[str, str]:
    """The report's title and its subtitle (the period)."""
    if isinstance(report, MilkingReport):
        return "Milking report", report.period.label
    if isinstance(report, DayReport):
        return "Day report", report.period.label
    if isinstance(report, CowTrend):
        return (
            f"Cow {report.cow.label}",
            f"{_t(report.start, '%d %b %Y')} to {_t(report.end, '%d %b %Y')}",
        )
    if isinstance(report, MeterComparison):
        return (
            "Meter comparison",
            f"{_t(report.start, '%d %b %Y %H:%M')} to {_t(report.end, '%d %b %Y %H:%M')}",
        )
    return "Herd day by day", f"{report.first.isoformat()} to {report.last.isoformat()}"


def report_html(report: Report, *, farm: str = "", chart: str = "") -> str:
    """The whole report as one HTML document (`chart`: an image resource name to show)."""
    title, sub = title_of(report)
    if isinstance(report, MilkingReport):
        body = milking_body(report)
    elif isinstance(report, DayReport):
        body = day_body(report)
    elif isinstance(report, CowTrend):
        body = cow_body(report, chart)
    elif isinstance(report, MeterComparison):
        body = meter_body(report)
    else:
        body = herd_body(report, chart)
    return _doc(title, sub, body, farm)
