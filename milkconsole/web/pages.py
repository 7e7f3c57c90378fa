"""The live view's HTML, rendered on the server (every page reads without JavaScript; the one
small script, `static/live.js`, only keeps it current).

Written for a 360-pixel-wide phone in sunlight: black on white, large bold figures, every state
a coloured band AND a word. Times are the farm's local time. Everything a person or the
database wrote is escaped. No inline scripts or styles (the server's Content-Security-Policy
forbids them), so a stored alert message can never run in a phone's browser.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo
from html import escape
from typing import Any

from milkconsole.clock import local_zone
from milkconsole.herd.directory import AnimalInfo
from milkconsole.reports.dashboard import ProductionSnapshot
from milkconsole.store.alerts import AlertRecord
from milkconsole.store.cow_history import CowHistory
from milkconsole.web.live import StallView

STATE_WORDS = {
    "idle": "EMPTY",
    "milking": "MILKING",
    "done": "DONE",
    "incomplete": "INCOMPLETE",
    "alert": "ALERT",
    "offline": "METER OFFLINE",
}
NAV = (("stalls", "/", "Stalls"), ("today", "/today", "Today"), ("alerts", "/alerts", "Alerts"))


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _time(dt: datetime | None, zone: tzinfo | None = None, fmt: str = "%H:%M") -> str:
    return dt.astimezone(zone or local_zone()).strftime(fmt) if dt is not None else "—"


def _litres(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def layout(title: str, page: str, body: str, *, farm: str, alerts_open: int | None) -> str:
    """The frame of every page: farm name, live indicator, navigation, then `body`."""
    links = []
    for key, href, label in NAV:
        current = ' aria-current="page"' if key == page else ""
        badge = ""
        if key == "alerts":
            hidden = "" if alerts_open else " hidden"
            badge = f' <b id="alert-count" class="badge"{hidden}>{_e(alerts_open or 0)}</b>'
        links.append(f'<a href="{href}"{current}>{label}{badge}</a>')
    cow_current = ' aria-current="page"' if page == "cow" else ""
    links.append(f'<a href="/cows"{cow_current}>Cow</a>')
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light">'
        f"<title>{_e(title)} · {_e(farm)}</title>"
        '<link rel="stylesheet" href="/static/live.css">'
        '<link rel="icon" href="/static/icon.svg" type="image/svg+xml">'
        '<script src="/static/live.js" defer></script></head>'
        f'<body data-page="{_e(page)}">'
        '<header><div class="top">'
        f'<span class="farm">{_e(farm)}</span>'
        '<span id="conn" class="conn" data-state="static">—</span></div>'
        f"<nav>{''.join(links)}</nav></header>"
        f"<main>{body}</main></body></html>\n"
    )


# -- stalls ---------------------------------------------------------------------------------------


def stall_card(v: StallView) -> str:
    """One stall's card; `live.js` renders the very same markup from the stall JSON."""
    word = STATE_WORDS.get(v.state, v.state.upper())
    divert = (
        f'<div class="divert">DIVERT · {_e(v.divert)}</div>'
        if v.divert
        else '<div class="divert" hidden></div>'
    )
    cow_class = "cow" + (" warn" if v.cow_status in ("unknown_tag", "no_id") else "")
    cow = _e(v.cow) if v.cow else "&nbsp;"
    if v.animal_id is not None:
        cow = f'<a href="/cows/{v.animal_id}">{cow}</a>'
    flow = f"{v.flow_l_min:.1f} L/min" if v.session_state == "milking" else ""
    expected = f"of {v.expected_l:.0f} L" if v.expected_l else ""
    chips = "".join(f'<span class="chip">{_e(a)}</span>' for a in v.alerts)
    return (
        f'<article class="stall s-{_e(v.state)}" id="stall-{v.stall}" data-stall="{v.stall}">'
        f'<div class="band"><span class="num">{v.stall}</span>'
        f'<span class="word">{_e(word)}</span></div>'
        f"{divert}"
        f'<div class="{cow_class}">{cow}</div>'
        f'<div class="yield"><span class="v">{_litres(v.yield_l)}</span>'
        f'<span class="u">{" L" if v.yield_l is not None else ""}</span></div>'
        f'<div class="meta"><span class="flow">{flow}</span>'
        f'<span class="exp">{expected}</span></div>'
        f'<div class="chips">{chips}</div>'
        "</article>"
    )


def stalls_page(farm: str, views: Sequence[StallView], alerts_open: int | None) -> str:
    busy = sum(1 for v in views if v.session_state != "idle")
    body = (
        '<div class="bar"><h1>Stalls</h1>'
        f'<span class="sub" id="busy">{busy} of {len(views)} in use</span>'
        '<button type="button" id="only-busy" aria-pressed="false">In use only</button></div>'
        f'<section class="stalls" id="stalls">{"".join(stall_card(v) for v in views)}</section>'
    )
    return layout("Stalls", "stalls", body, farm=farm, alerts_open=alerts_open)


# -- today --------------------------------------------------------------------------------------


def production_json(snap: ProductionSnapshot) -> dict[str, Any]:
    """The figures `live.js` refreshes on the Today page."""
    return {
        "total_yield_l": round(snap.total_yield_l, 1),
        "finished_sessions": snap.finished_sessions,
        "average_yield_l": None if snap.average_yield_l is None else round(snap.average_yield_l, 1),
        "milk_per_hour_l": None if snap.milk_per_hour_l is None else round(snap.milk_per_hour_l),
        "cows_per_hour": None if snap.cows_per_hour is None else round(snap.cows_per_hour),
        "milking_yield_l": round(snap.milking_yield_l, 1),
        "in_stalls": len(snap.open_sessions),
        "unidentified": snap.unidentified_sessions,
        "alerts_open": sum(1 for a in snap.alerts if a.state == "open"),
    }


def _figure(key: str, label: str, value: str, unit: str = "") -> str:
    return (
        f'<div class="fig"><span class="lbl">{_e(label)}</span>'
        f'<span class="val" data-fig="{key}">{_e(value)}</span>'
        f'<span class="unit">{_e(unit)}</span></div>'
    )


def _num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def production_page(farm: str, snap: ProductionSnapshot, alerts_open: int | None) -> str:
    figures = production_json(snap)
    grid = "".join(
        (
            _figure("total_yield_l", "Milk today", _num(snap.total_yield_l, 1), "L"),
            _figure("finished_sessions", "Cows milked", str(snap.finished_sessions)),
            _figure("average_yield_l", "Average", _num(snap.average_yield_l, 1), "L per cow"),
            _figure("in_stalls", "In the stalls now", str(figures["in_stalls"])),
            _figure("milk_per_hour_l", "This milking", _num(snap.milk_per_hour_l), "L per hour"),
            _figure("cows_per_hour", "This milking", _num(snap.cows_per_hour), "cows per hour"),
            _figure("unidentified", "Without a cow ID", str(snap.unidentified_sessions)),
        )
    )
    grades = " ".join(
        f'<span class="grade">{_e(g)} <b>{n}</b></span>' for g, n in snap.quality.items()
    )
    top = max((h.yield_l for h in snap.hourly), default=0.0)
    hours = "".join(
        f'<li><span class="h">{_time(h.hour_start)}</span>'
        f'<progress max="{top:.1f}" value="{h.yield_l:.1f}"></progress>'
        f'<span class="l">{h.yield_l:.0f} L</span></li>'
        for h in snap.hourly
    )
    recent = "".join(
        f"<tr><td>{_time(r.ended_at)}</td><td>{r.stall}</td>"
        f"<td>{_cow_cell(r.animal_id, r.cow_label, r.rfid)}</td>"
        f'<td class="r">{r.yield_l:.1f}</td><td>{_e(r.quality_grade or "")}</td></tr>'
        for r in snap.recent[:15]
    )
    body = (
        f'<div class="bar"><h1>Today</h1><span class="sub">since {_time(snap.day_start)}'
        f" · read {_time(snap.taken_at, fmt='%H:%M:%S')}</span></div>"
        f'<section class="figs">{grid}</section>'
        f'<h2>Milk quality</h2><p class="grades">{grades}</p>'
        "<h2>Milk per hour</h2>"
        + (f'<ul class="hours">{hours}</ul>' if hours else "<p>No milk yet today.</p>")
        + "<h2>Last cows</h2>"
        '<table class="list"><thead><tr><th>Time</th><th>Stall</th><th>Cow</th>'
        '<th class="r">L</th><th>Grade</th></tr></thead>'
        f"<tbody>{recent or '<tr><td colspan=5>None yet today.</td></tr>'}</tbody></table>"
        '<p class="note" id="stale" hidden>New figures: <a href="/today">refresh</a></p>'
    )
    return layout("Today", "today", body, farm=farm, alerts_open=alerts_open)


def _cow_cell(animal_id: int | None, label: str | None, rfid: str | None) -> str:
    if animal_id is not None and label:
        return f'<a href="/cows/{animal_id}">{_e(label)}</a>'
    return '<span class="warn">no ID</span>' if not rfid else '<span class="warn">unknown</span>'


# -- alerts -------------------------------------------------------------------------------------


def alerts_page(
    farm: str,
    alerts: Sequence[AlertRecord],
    *,
    allow_acknowledge: bool,
    notice: str | None = None,
    error: str | None = None,
    open_form: int | None = None,
    name: str = "",
) -> str:
    open_count = sum(1 for a in alerts if a.state == "open")
    items = []
    for a in alerts:
        who = a.cow_label or (f"meter {a.meter_id}" if a.meter_id else "")
        cow = f'<a href="/cows/{a.animal_id}">{_e(who)}</a>' if a.animal_id is not None else _e(who)
        state = (
            f"acknowledged by {_e(a.acknowledged_by)} at {_time(a.acknowledged_at)}"
            if a.state == "acknowledged"
            else "OPEN"
        )
        form = ""
        if a.state == "open" and allow_acknowledge:
            err = (
                f'<p class="error" role="alert">{_e(error)}</p>'
                if error and open_form == a.id
                else ""
            )
            opened = " open" if open_form == a.id else ""
            form = (
                f"<details{opened}><summary>Acknowledge…</summary>{err}"
                f'<form method="post" action="/alerts/{a.id}/acknowledge" class="ack">'
                f'<label>Supervisor name<input name="name" autocomplete="username" '
                f'required maxlength="32" value="{_e(name)}"></label>'
                '<label>PIN<input name="pin" type="password" inputmode="numeric" '
                'autocomplete="current-password" pattern="[0-9]{4,8}" required></label>'
                '<label>Note (optional)<input name="note" maxlength="200"></label>'
                '<button type="submit">Acknowledge</button></form></details>'
            )
        items.append(
            f'<li class="alert sev-{_e(a.severity)} st-{_e(a.state)}" id="alert-{a.id}">'
            f'<div class="head"><span class="title">{_e(a.title)}</span>'
            f'<span class="sev">{_e(a.severity.upper())}</span></div>'
            f'<div class="cow">{cow}</div>'
            f'<div class="msg">{_e(a.message)}</div>'
            f'<div class="when">raised {_time(a.raised_at, fmt="%d %b %H:%M")} · '
            f'<span class="state">{state}</span></div>{form}</li>'
        )
    notice_html = f'<p class="notice" role="status">{_e(notice)}</p>' if notice else ""
    error_html = (
        f'<p class="error" role="alert">{_e(error)}</p>' if error and open_form is None else ""
    )
    off = (
        ""
        if allow_acknowledge
        else '<p class="note">Acknowledging from a phone is switched off here.</p>'
    )
    body = (
        f'<div class="bar"><h1>Alerts</h1><span class="sub">{open_count} open, '
        f"{len(alerts) - open_count} acknowledged</span></div>{notice_html}{error_html}{off}"
        '<p class="note" id="stale" hidden>Alerts changed: <a href="/alerts">refresh</a></p>'
        f'<ul class="alerts">{"".join(items) or "<li>No alert needs anyone.</li>"}</ul>'
    )
    return layout("Alerts", "alerts", body, farm=farm, alerts_open=open_count)


# -- cows ---------------------------------------------------------------------------------------


def cow_search_page(
    farm: str, query: str, found: Iterable[AnimalInfo], alerts_open: int | None
) -> str:
    rows = "".join(
        f'<li><a href="/cows/{a.id}">{_e(a.label)}</a>'
        f'<span class="sub">{_e(a.group_name or "")}</span></li>'
        for a in found
    )
    result = ""
    if query:
        result = f'<ul class="cows">{rows}</ul>' if rows else "<p>No cow matches.</p>"
    body = (
        '<div class="bar"><h1>Cow</h1></div>'
        '<form method="get" action="/cows" class="search">'
        '<label>Herd number or name<input name="q" inputmode="search" '
        f'value="{_e(query)}" autofocus></label><button type="submit">Find</button></form>'
        f"{result}"
    )
    return layout("Cow", "cow", body, farm=farm, alerts_open=alerts_open)


def cow_page(farm: str, history: CowHistory, alerts_open: int | None, *, shown: int = 20) -> str:
    points = list(reversed(history.points))[:shown]
    rows = "".join(
        f"<tr><td>{_time(p.started_at, fmt='%d %b %H:%M')}</td>"
        f'<td class="r">{p.yield_l:.1f}</td>'
        f'<td class="r">{_num(p.conductivity_max_ms_cm, 1)}</td>'
        f"<td>{_e(_milking_note(p.state, p.abnormal, p.flags))}</td></tr>"
        for p in points
    )
    alerts = "".join(
        f'<li class="alert sev-{_e(a.severity)} st-{_e(a.state)}">'
        f'<div class="head"><span class="title">{_e(a.title)}</span>'
        f'<span class="sev">{_e(a.state.upper())}</span></div>'
        f'<div class="when">raised {_time(a.raised_at, fmt="%d %b %H:%M")}</div></li>'
        for a in reversed(history.alerts)
    )
    body = (
        f'<div class="bar"><h1>{_e(history.label)}</h1>'
        f'<span class="sub">since {_time(history.since, fmt="%d %b")}</span></div>'
        "<h2>Recent milkings</h2>"
        '<table class="list"><thead><tr><th>Started</th><th class="r">L</th>'
        '<th class="r">EC max</th><th></th></tr></thead>'
        f"<tbody>{rows or '<tr><td colspan=4>No milking recorded.</td></tr>'}</tbody></table>"
        f'<h2>Alerts</h2><ul class="alerts">{alerts or "<li>None.</li>"}</ul>'
    )
    return layout(history.label, "cow", body, farm=farm, alerts_open=alerts_open)


def _milking_note(state: str, abnormal: bool, flags: tuple[str, ...]) -> str:
    words = [] if state == "completed" else [state]
    if abnormal:
        words.append("abnormal")
    words.extend(f.replace("_", " ") for f in flags)
    return ", ".join(words)


# -- refusals -----------------------------------------------------------------------------------


def refused_page(title: str, text: str, *, farm: str = "Milk Console") -> str:
    """401 / 403 / 404 / 503: what happened and what to do, without the navigation."""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>"
        '<link rel="stylesheet" href="/static/live.css"></head>'
        f'<body data-page="refused"><header><div class="top"><span class="farm">{_e(farm)}'
        "</span></div></header>"
        f'<main class="refused"><h1>{_e(title)}</h1><p>{_e(text)}</p></main></body></html>\n'
    )
