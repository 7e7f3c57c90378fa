"""The live view in a real headless browser (Debian's chromium, see tests/acceptance/web_browser.py)
on a simulated parlour: a cow's yield reaches the phone's page, a page without a valid token is
refused, acknowledging needs the PIN, and the 360 x 800 screenshots in tests/artifacts/.

How long the yield took to appear is printed; the benchmark (bench/lan.py) owns the figures.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from milkconsole.app.runtime import ParlourRuntime
from milkconsole.meters.rfid import fdx_b_to_iso
from milkconsole.store.schema import AlertRow, Animal, AuditEntry
from simulators.demo import SimulatedParlour
from simulators.meter import ISO_COUNTRY_DEFAULT, fdx_b_code
from tests.acceptance.web_browser import PHONE, Browser, chromium
from tests.helpers.web_helpers import (
    ANN,
    SUPERVISOR,
    add_cow_alert,
    database_with_users,
    web_config,
)

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FDX = fdx_b_code(ISO_COUNTRY_DEFAULT, 4_000_123)
APPEAR_TIMEOUT_S = 15.0  # generous: the behaviour is "it appears"; bench/lan.py times it


class Parlour:
    def __init__(self, tmp: Path, *, cows: int, time_scale: float, stalls: int = 4) -> None:
        self.config = web_config(tmp, stalls=stalls, time_scale=time_scale)
        self.db = database_with_users(tmp / "web.sqlite")
        self.sim = SimulatedParlour(self.config, cows=cows, seed=3, time_scale=time_scale)
        self.runtime = ParlourRuntime(self.config, self.db)

    def start(self) -> None:
        self.sim.start()
        self.runtime.start_threads()
        self.runtime.start_web()

    def stop(self) -> None:
        self.runtime.stop()
        self.sim.stop()
        self.db.close()

    @property
    def web(self):
        assert self.runtime.web is not None
        return self.runtime.web

    def browser(self):
        cert = self.web.certificate
        assert cert is not None
        return chromium((cert.spki_sha256_b64,))


@pytest.fixture(scope="module")
def quiet(tmp_path_factory) -> Iterator[tuple[Parlour, Browser]]:
    """A parlour whose meters stand still until a test moves them, and one browser."""
    p = Parlour(tmp_path_factory.mktemp("quiet"), cows=0, time_scale=60.0)
    with p.db.write() as tx:
        tx.add(Animal(number="1002", name="Daisy", rfid_tag=fdx_b_to_iso(FDX), active=True))
    p.start()
    try:
        with p.browser() as b:
            yield p, b
    finally:
        p.stop()


def open_with_new_token(p: Parlour, b: Browser, label: str, path: str = "/") -> str:
    issued, link = p.web.issue_token(ANN, label)
    b.driver.delete_all_cookies()
    b.get(link.replace("/?", f"{path}?"))
    return issued.secret


def test_a_simulated_cows_yield_appears_on_the_phone(quiet):
    p, b = quiet
    open_with_new_token(p, b, "Yard phone")
    b.wait(lambda: b.text("#conn").startswith("LIVE"), APPEAR_TIMEOUT_S)
    assert "token" not in b.driver.current_url  # moved to a cookie, out of the address bar

    meter = p.sim.meters["MM-01"]
    tag = meter.tag_for(FDX, 1002)
    meter.set_values(status=1, rfid=tag, flow_l_min=3.0, yield_l=0.8)
    b.wait(
        lambda: "MILKING" in b.text("#stall-1") and "1002 Daisy" in b.text("#stall-1"),
        APPEAR_TIMEOUT_S,
    )

    shown = meter.shown("yield_l", 12.34)
    assert isinstance(shown, float)
    want = f"{shown:.1f}"
    t0 = time.monotonic()
    meter.set_values(yield_l=12.34, flow_l_min=3.4)
    b.wait(lambda: b.text("#stall-1 .yield .v") == want, APPEAR_TIMEOUT_S, poll_s=0.01)
    delay = time.monotonic() - t0
    print(f"\nyield {want} L on the phone {delay * 1000:.0f} ms after the meter had it")
    assert "3.4 L/min" in b.text("#stall-1")
    latencies = b.js("return window.mcLatencies")
    assert latencies, "the page timed no reading"


def test_a_page_without_a_valid_token_is_refused(quiet):
    p, b = quiet
    b.driver.delete_all_cookies()
    b.get(p.web.base_url + "/")
    assert "Scan the QR code first" in b.text("h1")
    assert not b.driver.find_elements("css selector", ".stall")
    b.get(p.web.base_url + "/alerts?token=made-up")
    assert "Not a valid phone access" in b.text("h1")

    secret = open_with_new_token(p, b, "Lost phone")
    b.wait(lambda: b.text("#conn").startswith("LIVE"), APPEAR_TIMEOUT_S)
    token_id = p.web.tokens.check(secret).id  # type: ignore[union-attr]
    p.web.revoke_token(ANN, token_id)
    # The open page loses its stream, finds it refused and reloads into the refusal.
    b.wait(lambda: "Phone access revoked" in b.text("body"), 30.0, poll_s=0.2)
    b.get(p.web.base_url + "/today")
    assert "Phone access revoked" in b.text("h1")


def test_acknowledging_an_alert_from_the_phone_needs_the_pin(quiet):
    p, b = quiet
    alert_id = add_cow_alert(p.db, number="1077", name="Bella")
    open_with_new_token(p, b, "Vet phone", "/alerts")
    item = f"#alert-{alert_id}"
    assert "OPEN" in b.text(item)

    def submit(name: str, pin: str) -> None:
        if b.find(f"{item} details").get_attribute("open") is None:
            b.find(f"{item} summary").click()
        b.find(f"{item} input[name=name]").clear()
        b.find(f"{item} input[name=name]").send_keys(name)
        b.find(f"{item} input[name=pin]").send_keys(pin)
        b.find(f"{item} form button").click()

    submit(SUPERVISOR[0], "0000")
    b.wait(lambda: "Wrong name or PIN" in b.text(item), APPEAR_TIMEOUT_S)
    assert "OPEN" in b.text(item)
    with p.db.read() as tx:
        assert tx.get(AlertRow, alert_id).state == "open"  # type: ignore[union-attr]

    submit(*SUPERVISOR)
    b.wait(lambda: "Acknowledged: Mastitis" in b.text("main"), APPEAR_TIMEOUT_S)
    assert "acknowledged by Ann" in b.text(item)
    with p.db.read() as tx:
        row = tx.get(AlertRow, alert_id)
        assert row is not None and (row.state, row.acknowledged_by) == ("acknowledged", "Ann")
        actions = [
            (a.action, a.actor)
            for a in tx.scalars(select(AuditEntry).where(AuditEntry.target.like("%Vet phone%")))
        ]
    assert actions == [("pin_refused", "Ann"), ("pin_accepted", "Ann")]


def png_size(path: Path) -> tuple[int, int]:
    with path.open("rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_screenshots_of_a_busy_parlour_at_360_by_800(tmp_path):
    from simulators.demo_herd import seed_demo_herd  # the demo's herd: names, past milkings

    p = Parlour(tmp_path, cows=40, time_scale=30.0, stalls=12)
    seed_demo_herd(p.db, p.sim.scenario, start=datetime.now(UTC), seed=3, grant=ANN)
    add_cow_alert(p.db, number="1093", name="Clover")
    p.start()
    try:
        with p.browser() as b:
            open_with_new_token(p, b, "Screenshots")
            b.wait(
                lambda: len(b.driver.find_elements("css selector", ".s-milking")) >= 4, 60.0, 0.2
            )
            # A few cows done too, so the Today page has figures to show.
            b.wait(lambda: len(b.driver.find_elements("css selector", ".s-done")) >= 2, 90.0, 0.2)
            time.sleep(1.0)
            shots = [b.screenshot(ARTIFACTS / "web_stalls_360x800.png")]
            b.get(p.web.base_url + "/today")
            shots.append(b.screenshot(ARTIFACTS / "web_today_360x800.png"))
            b.get(p.web.base_url + "/alerts")
            b.find("li.alert summary").click()
            shots.append(b.screenshot(ARTIFACTS / "web_alerts_360x800.png"))
    finally:
        p.stop()
    for shot in shots:
        assert png_size(shot) == PHONE
