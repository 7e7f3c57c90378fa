"""The live view's HTTP server over real sockets: tokens, pages, the live stream, acknowledging
with a PIN, limits, plain HTTP when configured, and the headless gateway serving it."""

from __future__ import annotations

import io
import socket
import threading
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from milkconsole.app.gateway import run_gateway
from milkconsole.meters.events import ReadingTaken, SessionSnapshot, SessionStarted
from milkconsole.meters.readings import Reading
from milkconsole.store.schema import AlertRow, AuditEntry
from milkconsole.supervision.lock import AccessControl, AccessSettings
from milkconsole.supervision.users import UserStore
from tests.helpers.web_helpers import (
    ANN,
    SUPERVISOR,
    TECHNICIAN,
    Client,
    EventStream,
    add_cow_alert,
    database_with_users,
    running_view,
    web_config,
)


def wait_for(pred, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout_s} s")


@pytest.fixture
def parlour(tmp_path):
    config = web_config(tmp_path)
    db = database_with_users(tmp_path / "web.sqlite")
    yield config, db
    db.close()


def cow_starts(view, stall=1, key="K1", yield_l=7.25):
    meter = f"MM-{stall:02d}"
    now = datetime.now(UTC)
    s = SessionSnapshot(key=key, meter_id=meter, stall=stall, started_at=now, rfid=None)
    view.publish(SessionStarted(s))
    view.publish(
        ReadingTaken(Reading(meter, stall, 0.0, now, yield_l=yield_l, flow_l_min=3.1), key)
    )


def test_no_token_is_401_a_wrong_one_403_and_the_qr_link_moves_the_token_to_a_cookie(parlour):
    config, db = parlour
    with running_view(config, db) as view:
        http = Client(view)
        issued, link = view.issue_token(ANN, "Vet phone")
        assert link == f"{view.base_url}/?token={issued.secret}"

        refused = http.get("/")
        assert refused.status == 401 and "Scan the QR code" in refused.text
        assert "default-src 'self'" in refused.headers["content-security-policy"]
        assert http.get("/?token=not-a-token").status == 403
        assert http.get("/events").status == 401

        moved = http.get(f"/today?{urlencode({'token': issued.secret})}")
        assert moved.status == 303 and moved.headers["location"] == "/today"
        cookie = moved.headers["set-cookie"]
        assert f"mc_access={issued.secret}" in cookie
        for attribute in ("HttpOnly", "Secure", "SameSite=Lax"):
            assert attribute in cookie

        page = http.get("/", cookie=issued.secret)
        assert page.status == 200 and 'id="stall-4"' in page.text
        assert page.headers["cache-control"] == "no-store"
        assert http.get("/api/stalls", token=issued.secret).json()["stalls"][0]["stall"] == 1
        missing = http.get("/no/such/page", cookie=issued.secret)
        assert missing.status == 404 and "no such page" in missing.text

        script = http.get("/static/live.js")  # assets need no token: nothing secret in them
        assert script.status == 200 and "EventSource" in script.text
        assert http.get("/static/live.css").status == 200


def test_a_reading_reaches_an_open_stream_and_divert_is_in_the_stall_json(parlour):
    config, db = parlour
    statuses = []
    with running_view(config, db, on_status=statuses.append) as view:
        http = Client(view)
        issued, _ = view.issue_token(ANN, "Yard")
        stream = EventStream(http, issued.secret)
        event, first = stream.next()
        assert event == "snapshot" and [s["stall"] for s in first["stalls"]] == [1, 2, 3, 4]
        assert all(s["divert"] is None for s in first["stalls"])
        wait_for(lambda: view.status.clients == 1)

        cow_starts(view, stall=2, yield_l=7.25)
        event, data = stream.next()
        while event != "stalls" or data["stalls"][-1].get("yield_l") != 7.25:
            event, data = stream.next()
        [stall] = [s for s in data["stalls"] if s["stall"] == 2]
        assert stall["state"] == "milking" and stall["cow"] == "no ID"
        assert stall["read_at"] is not None and stall["divert"] is None

        view.set_divert(2, "antibiotic withdrawal")
        event, data = stream.next()
        while event != "stalls":
            event, data = stream.next()
        assert data["stalls"][0]["divert"] == "antibiotic withdrawal"
        api = http.get("/api/stalls", token=issued.secret).json()["stalls"]
        assert api[1]["divert"] == "antibiotic withdrawal" and api[1]["yield_l"] == 7.25
        page = http.get("/", cookie=issued.secret).text
        assert "DIVERT · antibiotic withdrawal" in page

        stream.close()
        # The server notices a page gone at its next write.
        for i in range(50):
            view.set_divert(3, f"check {i}")
            if view.status.clients == 0:
                break
            time.sleep(0.2)
        assert view.status.clients == 0
    assert [s.state for s in statuses][:2] == ["starting", "serving"]
    assert statuses[-1].state == "stopped"


def test_revoking_a_token_cuts_its_open_page_and_refuses_it_after(parlour):
    config, db = parlour
    with running_view(config, db) as view:
        http = Client(view)
        issued, _ = view.issue_token(ANN, "Lost phone")
        other, _ = view.issue_token(ANN, "Office")
        stream = EventStream(http, issued.secret)
        kept = EventStream(http, other.secret)
        assert stream.next()[0] == "snapshot" and kept.next()[0] == "snapshot"
        view.revoke_token(ANN, issued.info.id)
        assert stream.next() is None  # the server closed it
        page = http.get("/", cookie=issued.secret)
        assert page.status == 403 and "revoked by Ann" in page.text
        assert http.get("/", cookie=other.secret).status == 200
        cow_starts(view)
        assert kept.next() is not None  # the other phone still gets updates
        kept.close()


def ack(http, token, alert_id, name, pin, **headers):
    body = urlencode({"name": name, "pin": pin, "note": "seen from the yard"})
    return http.request(
        "POST", f"/alerts/{alert_id}/acknowledge", cookie=token, body=body, headers=headers
    )


def alert_state(db, alert_id):
    with db.read() as tx:
        row = tx.get(AlertRow, alert_id)
        return row.state, row.acknowledged_by


def audit_rows(db):
    with db.read() as tx:
        return [(r.action, r.actor, r.target) for r in tx.scalars(select(AuditEntry))]


def test_acknowledging_needs_a_supervisors_pin_and_is_audited_like_at_the_console(parlour):
    config, db = parlour
    alert_id = add_cow_alert(db)
    with running_view(config, db) as view:
        http = Client(view)
        issued, _ = view.issue_token(ANN, "Vet phone")
        page = http.get("/alerts", cookie=issued.secret)
        assert page.status == 200 and "Mastitis (quarter lf)" in page.text
        assert f'action="/alerts/{alert_id}/acknowledge"' in page.text

        wrong = ack(http, issued.secret, alert_id, SUPERVISOR[0], "0000")
        assert wrong.status == 403 and "Wrong name or PIN" in wrong.text
        tech = ack(http, issued.secret, alert_id, *TECHNICIAN)
        assert tech.status == 403 and "a supervisor PIN" in tech.text
        foreign = ack(http, issued.secret, alert_id, *SUPERVISOR, Origin="https://evil.example")
        assert foreign.status == 403
        assert alert_state(db, alert_id) == ("open", None)

        done = ack(http, issued.secret, alert_id, *SUPERVISOR)
        assert done.status == 303 and done.headers["location"] == f"/alerts?acknowledged={alert_id}"
        assert alert_state(db, alert_id) == ("acknowledged", "Ann")
        after = http.get(done.headers["location"], cookie=issued.secret).text
        assert "Acknowledged: Mastitis" in after and "acknowledged by Ann" in after
        again = ack(http, issued.secret, alert_id, *SUPERVISOR)
        assert again.status == 303  # acknowledging twice changes nothing

    rows = audit_rows(db)
    assert ("pin_refused", "Ann", "web:Vet phone") in rows
    assert ("pin_accepted", "Tom", "web:Vet phone") in rows
    assert ("pin_accepted", "Ann", "web:Vet phone") in rows
    assert [r for r in rows if r[0] == "alert_acknowledge"] == [
        ("alert_acknowledge", "Ann", "alert:TEST-ALERT-1002")
    ]


def test_wrong_pins_from_a_phone_back_off_the_console_too(parlour):
    config, db = parlour
    alert_id = add_cow_alert(db)
    access = AccessControl(UserStore(db), AccessSettings(free_attempts=2, backoff_first_s=60))
    with running_view(config, db, access=access) as view:
        http = Client(view)
        issued, _ = view.issue_token(ANN, "Yard")
        assert ack(http, issued.secret, alert_id, "Ann", "1111").status == 403
        assert ack(http, issued.secret, alert_id, "Ann", "2222").status == 403
        blocked = ack(http, issued.secret, alert_id, *SUPERVISOR)  # even the right PIN waits
        assert blocked.status == 429 and "try again in" in blocked.text
        assert access.backoff_remaining_s() > 50  # the console's own lock waits as well
    assert alert_state(db, alert_id) == ("open", None)


def test_read_only_when_the_config_switches_acknowledging_off(tmp_path):
    config = web_config(tmp_path, 'host = "127.0.0.1"\nport = 0\nallow_acknowledge = false\n')
    db = database_with_users(tmp_path / "web.sqlite")
    alert_id = add_cow_alert(db)
    try:
        with running_view(config, db) as view:
            http = Client(view)
            issued, _ = view.issue_token(ANN, "Yard")
            page = http.get("/alerts", cookie=issued.secret).text
            assert "switched off" in page and "/acknowledge" not in page
            assert ack(http, issued.secret, alert_id, *SUPERVISOR).status == 403
        assert alert_state(db, alert_id) == ("open", None)
    finally:
        db.close()


def test_pages_today_and_a_cows_milkings_render(parlour):
    config, db = parlour
    add_cow_alert(db)
    with running_view(config, db) as view:
        http = Client(view)
        issued, _ = view.issue_token(ANN, "Office")
        today = http.get("/today", cookie=issued.secret)
        assert today.status == 200 and "Milk today" in today.text
        assert http.get("/api/today", token=issued.secret).json()["alerts_open"] == 1
        found = http.get("/cows?q=1002", cookie=issued.secret)
        assert found.status == 303
        cow = http.get(found.headers["location"], cookie=issued.secret)
        assert cow.status == 200 and "1002 Daisy" in cow.text and "Recent milkings" in cow.text
        assert http.get("/cows/999", cookie=issued.secret).status == 404
        search = http.get("/cows?q=Dai", cookie=issued.secret)
        assert search.status == 200 and "1002 Daisy" in search.text


def test_more_live_pages_than_allowed_are_refused(tmp_path):
    config = web_config(tmp_path, 'host = "127.0.0.1"\nport = 0\nmax_clients = 1\n')
    db = database_with_users(tmp_path / "web.sqlite")
    try:
        with running_view(config, db) as view:
            http = Client(view)
            issued, _ = view.issue_token(ANN, "Yard")
            first = EventStream(http, issued.secret)
            assert first.next()[0] == "snapshot"
            second = EventStream(http, issued.secret)
            assert second.response.status == 503
            first.close()
            second.close()
    finally:
        db.close()


def test_plain_http_when_the_config_says_tls_false_and_no_certificate_is_made(tmp_path):
    config = web_config(tmp_path, 'host = "127.0.0.1"\nport = 0\ntls = false\n')
    db = database_with_users(tmp_path / "web.sqlite")
    try:
        with running_view(config, db) as view:
            assert view.certificate is None and view.base_url.startswith("http://")
            assert view.status.fingerprint is None
            issued, _ = view.issue_token(ANN, "Yard")
            reply = Client(view).get(f"/?token={issued.secret}")
            assert reply.status == 303 and "Secure" not in reply.headers["set-cookie"]
        assert not (tmp_path / "web-tls").exists()
    finally:
        db.close()


def test_the_headless_gateway_serves_the_view_and_milks_on_when_the_port_is_taken(tmp_path):
    config = web_config(tmp_path / "a")
    db_path = tmp_path / "a" / "gw.sqlite"
    database_with_users(db_path).close()
    stop = threading.Event()
    started = []
    gw = threading.Thread(
        target=run_gateway,
        args=(config, db_path),
        kwargs={
            "out": io.StringIO(),
            "stop_event": stop,
            "on_started": started.append,
        },
    )
    gw.start()
    try:
        runtime = wait_for(lambda: started and started[0])
        assert runtime.web is not None and runtime.web.status.state == "serving"
        issued, _ = runtime.web.issue_token(ANN, "Yard")
        assert Client(runtime.web).get("/", cookie=issued.secret).status == 200
    finally:
        stop.set()
        gw.join(20)
    assert runtime.web.status.state == "stopped"

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = web_config(tmp_path / "b", f'host = "127.0.0.1"\nport = {port}\n')
        stop, started = threading.Event(), []
        gw = threading.Thread(
            target=run_gateway,
            args=(config, tmp_path / "b" / "gw.sqlite"),
            kwargs={
                "out": io.StringIO(),
                "stop_event": stop,
                "on_started": started.append,
            },
        )
        gw.start()
        try:
            runtime = wait_for(lambda: started and started[0])
            assert runtime.web.status.state == "failed"
            assert f"port {port}" in (runtime.web.status.error or "")
            assert all(t.is_alive() for t in runtime._threads)  # the pollers milk on
        finally:
            stop.set()
            gw.join(20)
