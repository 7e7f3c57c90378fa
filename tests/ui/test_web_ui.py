"""The console with a [web] section: the status bar shows the view's state and its connected
phones, and the supervisor's Phone access window hands out a QR code (after a PIN) and revokes
a phone (after a PIN)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.web_helpers import (
    ANN,
    SUPERVISOR,
    Client,
    EventStream,
    database_with_users,
    web_config,
)
from ui.app import Console

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture
def console(tmp_path, qtbot):
    config = web_config(tmp_path)
    database_with_users(tmp_path / "web.sqlite").close()
    c = Console(config, tmp_path / "web.sqlite")
    qtbot.addWidget(c.window)
    c.window.show()
    c.start()
    yield c
    c.shutdown()


def test_the_status_bar_counts_connected_phones(qtbot, console):
    button = console.window.status.web_button
    qtbot.waitUntil(lambda: button.isVisible() and "no phone connected" in button.text())
    web = console.runtime.web
    assert web is not None
    assert web.status.fingerprint is not None and web.status.fingerprint in button.toolTip()
    issued, _ = web.issue_token(ANN, "Yard")
    stream = EventStream(Client(web), issued.secret)
    assert stream.next()[0] == "snapshot"
    qtbot.waitUntil(lambda: button.text() == "Phones: 1 connected", timeout=5000)
    stream.close()


def test_a_supervisor_hands_out_a_qr_code_and_revokes_it_with_a_pin(qtbot, console):
    window = console.window
    window.access.unlock(*SUPERVISOR)  # the PIN prompt is then satisfied at once
    dialog = window.open_web_access()
    assert dialog is not None and "Certificate SHA-256" in dialog.status_label.text()
    dialog.issue("Vet phone")
    qtbot.waitUntil(lambda: dialog.link is not None, timeout=5000)
    assert dialog.qr.isVisible() and len(dialog.qr.matrix) >= 25
    link = dialog.link
    assert link is not None and link.startswith("https://") and "token=" in link
    secret = link.split("token=", 1)[1]
    web = console.runtime.web
    assert web is not None
    http = Client(web)
    assert http.get("/", cookie=secret).status == 200
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=5000)
    assert dialog.table.item(0, 0).text() == "Vet phone"
    dialog.resize(1150, 720)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dialog.grab().save(str(ARTIFACTS / "web_phone_access_dialog.png"))

    dialog.table.selectRow(0)
    dialog.revoke_selected()
    qtbot.waitUntil(
        lambda: "revoked by Ann" in (dialog.table.item(0, 4).text() or ""), timeout=5000
    )
    assert http.get("/", cookie=secret).status == 403
    dialog.accept()
    assert dialog.link is None  # a closed window forgets the secret


def test_without_a_pin_nothing_is_handed_out(qtbot, console):
    dialog = console.window.open_web_access()
    assert dialog is not None
    dialog.issue("Someone")
    qtbot.waitUntil(lambda: console.window.pin_dialog is not None, timeout=5000)
    console.window.pin_dialog.reject()
    qtbot.wait(200)
    assert dialog.link is None
    assert console.runtime.web is not None and console.runtime.web.tokens.tokens() == []
