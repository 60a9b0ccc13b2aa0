"""The page's status panel with the agent pointed at a real Kamailio (issue 8, item 2):
`failed` with the reason after a wrong password, then `registered` after Save with the
right one, without a reload."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.peers.kamailio import Kamailio
from tests.peers.test_agent import Device, body
from tests.web.browser import browser, log_in, open_page

pytestmark = pytest.mark.peers

__all__ = ["browser"]  # the fixture, for this module


@pytest.fixture
def device(tmp_path: Path, kamailio: Kamailio) -> Iterator[Device]:
    made = Device(tmp_path / "data", kamailio.ca_cert).start()
    yield made
    made.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened, console = open_page(browser)
    yield opened
    opened.context.close()
    assert console.errors == []


def fill_account(page: Page, settings: dict[str, str | int | bool]) -> None:
    page.locator("#f-enable").check()
    for name in ("proxy", "realm", "user", "password"):
        page.locator(f"#f-{name}").fill(str(settings[name]))
    page.locator("#f-registration_interval").fill(str(settings["registration_interval"]))
    page.locator("#f-stun-port").fill(str(settings["stun"]["port"]))  # type: ignore[index]


def test_the_status_panel_shows_registered_then_failed_with_the_reason(
    page: Page, device: Device, kamailio: Kamailio
) -> None:
    assert device.served is not None
    log_in(page, device.served.url)
    expect(page.locator("#reg-state")).to_have_text("disabled")
    fill_account(page, body(kamailio, password="wrong-pw"))
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#settings-saved")).to_have_text("Saved.")
    expect(page.locator("#reg-state")).to_have_text("failed")  # no reload
    status = device.status()
    assert (status["state"], status["code"]) == ("failed", 401)
    expect(page.locator("#reg-code")).to_have_text("401")
    expect(page.locator("#reg-reason")).to_have_text(status["reason"])
    page.locator("#f-password").fill("secret")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#reg-state")).to_have_text("registered")
    expect(page.locator("#reg-code")).to_have_text("200")
    expect(page.locator("#reg-contact")).to_contain_text(f":{device.sip_port}")
    assert len(kamailio.bindings("101")) == 1
    page.get_by_role("button", name="Register now").click()
    expect(page.locator("#reg-message")).to_have_text("REGISTER sent.")
