"""The page's call panel with a real call (issue 8, item 3): a baresip caller rings the
monitor through Kamailio (over UDP, and over TLS with SRTP), and Chromium on the served
page answers it, sends DTMF and hangs up; the caller sees each step, the page shows each
state and the call log's row.

Two pages watch the one call, at 360 and 1280 px, for the screenshots of a real ringing
and active call (`screenshots/real-call-{ringing,active}-{udp,tls}-{360,1280}.png`)."""

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.peers.baresip import Account, Baresip, Transport
from tests.peers.conftest import MakeBaresip, require
from tests.peers.kamailio import Kamailio, MakeKamailio
from tests.peers.test_agent import Device, body, registered
from tests.web.browser import PHONE, Console, browser, log_in, open_page, shot_path

pytestmark = pytest.mark.peers

__all__ = ["browser"]  # the fixture, for this module

USERS = {"101": "secret", "201": "pw201"}  # the monitor, the caller
RING_WITHIN = 1.0  # seconds from the INVITE to `ringing` on the page (issue 8)

# Records (in the page's clock, which is this machine's wall clock) when the call badge
# first says `ringing`: the moment the page shows it, not when a poll of ours noticed.
WATCH_RINGING = """() => {
  const badge = document.getElementById("call-state");
  window.ringingAt = null;
  new MutationObserver(() => {
    if (window.ringingAt === null && badge.textContent.startsWith("ringing")) {
      window.ringingAt = Date.now();
    }
  }).observe(badge, { childList: true, characterData: true, subtree: true });
}"""


@pytest.fixture
def kamailio(kamailio_factory: MakeKamailio) -> Kamailio:
    require("baresip")
    return kamailio_factory(users=USERS)


@pytest.fixture(params=["udp", "tls"])
def transport(request: pytest.FixtureRequest) -> Transport:
    """The monitor's and the caller's transport; over TLS the media is SRTP (§6)."""
    chosen: Transport = request.param
    return chosen


@pytest.fixture
def monitor(tmp_path: Path, kamailio: Kamailio, transport: Transport) -> Iterator[Device]:
    device = Device(tmp_path / "data", kamailio.ca_cert)
    device.log_level = "info"
    device.start()
    assert device.post(body(kamailio, transport))[0] == 200
    device.wait_status(registered, timeout=20)
    assert device.served is not None
    answer = device.served.call(
        "POST", "/api/v1/device/call/auto_answer", device.token, {"is_enabled": False}
    )
    assert answer[0] == 200
    yield device
    device.stop()


@pytest.fixture
def pages(browser: Browser, monitor: Device) -> Iterator[dict[str, Page]]:
    """The page logged in at 360 and at 1280 px, each waiting with its call panel idle."""
    assert monitor.served is not None
    opened: dict[str, tuple[Page, Console]] = {
        "360": open_page(browser, PHONE),
        "1280": open_page(browser),
    }
    for page, _ in opened.values():
        log_in(page, monitor.served.url)
        expect(page.locator("#call-state")).to_have_text("idle")
        page.evaluate(WATCH_RINGING)
    yield {name: page for name, (page, _) in opened.items()}
    for page, console in opened.values():
        page.context.close()
        assert console.errors == []


def panel_shot(page: Page, name: str) -> None:
    page.locator("#call-panel").screenshot(path=str(shot_path(name)))


def test_a_real_call_rings_the_page_is_answered_keyed_and_hung_up(
    kamailio: Kamailio,
    baresip_factory: MakeBaresip,
    transport: Transport,
    monitor: Device,
    pages: dict[str, Page],
) -> None:
    secure = transport == "tls"
    account = Account("201", "pw201", transport, answer="manual", srtp=secure)
    caller: Baresip = baresip_factory(kamailio, account)
    page = pages["1280"]
    remote = caller.aor  # its From: sip:201@127.0.0.1:<the proxy's port>
    state = page.locator("#call-state")

    dialled_at = time.time()  # before the INVITE leaves: the figure can only be larger
    caller.dial(caller.uri("101"))
    for each in pages.values():
        expect(each.locator("#call-state")).to_have_text(f"ringing — {remote}")
        ringing_at = each.evaluate("() => window.ringingAt") / 1000
        assert ringing_at - dialled_at < RING_WITHIN, f"ringing after {ringing_at - dialled_at}s"
    expect(page.locator("#call-direction")).to_have_text("incoming")
    caller.wait_event("CALL_RINGING")  # the 180 reached the caller
    for name, each in pages.items():
        panel_shot(each, f"real-call-ringing-{transport}-{name}")

    page.get_by_role("button", name="Answer").click()
    caller.wait_event("CALL_ESTABLISHED")  # the caller got the 200
    if secure:
        caller.wait_event("CALL_MENC")  # SRTP: the keys below go encrypted
    assert monitor.served is not None
    call = monitor.served.call("GET", "/api/v1/call/status", monitor.token)[1]
    assert (call["state"], call["srtp"]) == ("active", secure)
    expect(state).to_have_text(f"active — {remote}")
    duration = page.locator("#call-duration")
    expect(duration).to_have_text(re.compile(r"^0:0[1-9]$"))
    first = duration.text_content()
    expect(duration).not_to_have_text(first or "")  # it counts
    expect(page.locator("#call-left")).to_have_text(re.compile(r"^1:5[0-9]$"))  # of 2:00

    for key in ("1", "5", "hash"):
        page.get_by_role("button", name=key, exact=True).click()
        expect(page.locator("#call-error")).to_be_empty()
    deadline = time.monotonic() + 10
    while caller.received_digits() != "15#" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert caller.received_digits() == "15#", caller.event_types()
    caller.send_dtmf("9")
    expect(page.locator("#call-dtmf")).to_have_text("9")  # and the other way
    for name, each in pages.items():
        expect(each.locator("#call-state")).to_have_text(f"active — {remote}")
        panel_shot(each, f"real-call-active-{transport}-{name}")

    page.get_by_role("button", name="Hang up").click()
    closed = caller.wait_event("CALL_CLOSED")  # the caller got the BYE
    assert closed.get("param") == "Connection reset by peer"
    expect(state).to_have_text("idle")
    # The call log's duration as the service logged it: at least the 2 s seen counting
    # above, and however long a loaded machine made the rest of the call take.
    (logged,) = monitor.served.call("GET", "/api/v1/call/history", monitor.token)[1]["calls"]
    assert logged["duration"] >= 2, logged
    shown = f"{logged['duration'] // 60}:{logged['duration'] % 60:02d}"
    for each in pages.values():
        rows = each.locator("#calls-rows tr")
        expect(rows).to_have_count(1)
        cells = rows.first.locator("td")
        expect(cells.nth(1)).to_have_text("in")
        expect(cells.nth(2)).to_have_text(remote)
        expect(cells.nth(3)).to_have_text(shown)
        expect(cells.nth(4)).to_have_text("local hangup")
