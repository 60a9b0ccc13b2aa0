"""The call and status panels against the service in process, with a fake phone and a
fake SIP agent (tests/phones.py): the states of contract §6 without SIP. The same panel
with a real call (baresip through Kamailio) is tests/peers/test_web_call.py."""

import re
import time

import pytest
from playwright.sync_api import Browser, Page, expect

from intercom_sip.agent import status
from intercom_sip.calls import CallRecord
from intercom_sip.contract.dialing import parse_number
from tests.web.browser import PHONE, log_in, open_page, shot, shot_path
from tests.web.rig import InProcessService

pytestmark = pytest.mark.served

LOG_LOOKS, LOG_WAIT_MS = 10, 200  # app.js: how often the page looks for an ended call's row

RECORD = CallRecord(
    "c-1", "in", "sip:100@example.com", 1764441600, 1764441640, "local hangup", 1764441602, 38
)


def test_a_ringing_call_is_answered_counted_keyed_and_hung_up(
    page: Page, service: InProcessService
) -> None:
    log_in(page, service.url)
    expect(page.locator("#answer")).to_be_disabled()
    service.run(service.phone.ring)
    state = page.locator("#call-state")
    expect(state).to_have_text("ringing — sip:100@example.com")
    expect(state).to_have_attribute("aria-live", "assertive")
    expect(page.locator("#call-direction")).to_have_text("incoming")
    page.get_by_role("button", name="Answer").click()
    expect(state).to_have_text("active — sip:100@example.com")
    assert service.run(lambda: service.phone.current.state) == "active"
    expect(page.locator("#call-duration")).to_have_text(re.compile(r"^0:0[1-9]$"))  # counts
    expect(page.locator("#call-left")).to_have_text(re.compile(r"^1:5[0-9]$"))  # of 2:00
    page.get_by_role("button", name="1", exact=True).click()
    page.get_by_role("button", name="hash").click()
    expect(page.locator("#call-error")).to_be_empty()
    assert service.run(lambda: service.phone.sent_dtmf) == ["1", "#"]
    service.run(lambda: service.store.save_call(RECORD))  # what the real phone logs
    page.get_by_role("button", name="Hang up").click()
    expect(state).to_have_text("idle")
    expect(page.locator("#calls-rows tr")).to_have_count(1)
    expect(page.locator("#calls-rows tr td").nth(2)).to_have_text("sip:100@example.com")
    expect(page.locator("#calls-rows tr td").nth(4)).to_have_text("local hangup")


def test_the_call_log_row_written_after_the_hangup_is_shown(
    page: Page, service: InProcessService
) -> None:
    # The real phone writes the ended call on a worker thread: the row comes after the
    # answer to Hang up, and after the page's first look at the log.
    log_in(page, service.url)
    service.run(service.phone.ring)
    page.get_by_role("button", name="Answer").click()
    expect(page.locator("#call-state")).to_have_text("active — sip:100@example.com")
    with page.expect_response(lambda response: "/call/history" in response.url):
        page.get_by_role("button", name="Hang up").click()
    expect(page.locator("#calls-rows tr")).to_have_count(0)
    service.run(lambda: service.store.save_call(RECORD))  # RECORD is call c-1
    expect(page.locator("#calls-rows tr")).to_have_count(1)
    expect(page.locator("#calls-rows tr td").nth(4)).to_have_text("local hangup")


def test_the_page_stops_looking_for_a_row_never_written(
    page: Page, service: InProcessService
) -> None:
    looks: list[str] = []
    page.on("request", lambda request: looks.append(request.url))
    log_in(page, service.url)
    service.run(service.phone.ring)
    page.get_by_role("button", name="Answer").click()
    expect(page.locator("#call-state")).to_contain_text("active")
    looks.clear()
    page.get_by_role("button", name="Hang up").click()  # and no row ever comes
    history = [url for url in looks if "/call/history" in url]
    deadline = time.monotonic() + 15
    while len(history) < LOG_LOOKS and time.monotonic() < deadline:
        page.wait_for_timeout(100)
        history = [url for url in looks if "/call/history" in url]
    page.wait_for_timeout(3 * LOG_WAIT_MS)  # time for more looks, were there any
    assert len([url for url in looks if "/call/history" in url]) == LOG_LOOKS
    expect(page.locator("#calls-empty")).to_be_visible()


def test_dial_and_the_refusal_of_a_bad_number(page: Page, service: InProcessService) -> None:
    log_in(page, service.url)
    page.get_by_label("Number to call").fill("12a")
    page.get_by_label("Number to call").press("Enter")
    expect(page.locator("#dial-error")).to_have_text("Wrong number format")
    page.get_by_label("Number to call").fill("101")
    page.get_by_role("button", name="Call", exact=True).click()
    expect(page.locator("#call-state")).to_have_text("calling — sip:101@example.com")
    assert service.run(lambda: service.phone.dialled) == [parse_number("101")]
    page.get_by_role("button", name="Hang up").click()
    expect(page.locator("#call-state")).to_have_text("idle")


def test_the_auto_answer_switch(page: Page, service: InProcessService) -> None:
    log_in(page, service.url)
    switch = page.get_by_role("switch", name="Auto-answer")
    expect(switch).not_to_be_checked()
    switch.focus()
    page.keyboard.press("Space")  # the keyboard alone
    expect(switch).to_be_checked()
    page.reload()
    expect(page.get_by_role("switch", name="Auto-answer")).to_be_checked()
    assert service.run(lambda: service.phone.auto_answer)[-1] is True


def test_the_status_panel_follows_the_agent_and_registers_now(
    page: Page, service: InProcessService
) -> None:
    log_in(page, service.url)
    page.get_by_role("button", name="Register now").click()
    expect(page.locator("#reg-message")).to_have_text("SIP is disabled")
    registered = status.Status(
        "registered", 200, "OK", 60, 1764441655, "sip:101@127.0.0.1:5060", None, "udp", 0, True
    )
    service.run(lambda: setattr(service.agent, "current", registered))
    expect(page.locator("#reg-state")).to_have_text("registered")
    expect(page.locator("#reg-code")).to_have_text("200")
    expect(page.locator("#reg-contact")).to_have_text("sip:101@127.0.0.1:5060")


def test_screenshots_of_the_call_panel(browser: Browser, service: InProcessService) -> None:
    token = service.login()
    for name, viewport in (("360", PHONE), ("1280", None)):
        page, console = open_page(browser, viewport) if viewport else open_page(browser)
        log_in(page, service.url)
        service.run(service.phone.ring)
        expect(page.locator("#call-state")).to_contain_text("ringing")
        page.locator("#call-panel").screenshot(path=str(shot_path(f"call-ringing-{name}")))
        page.get_by_role("button", name="Answer").click()
        page.get_by_role("button", name="5", exact=True).click()
        expect(page.locator("#call-duration")).to_have_text(re.compile(r"^0:0[1-9]$"))
        page.locator("#call-panel").screenshot(path=str(shot_path(f"call-active-{name}")))
        shot(page, f"call-active-page-{name}")
        assert service.call("POST", "/api/v1/call/hangup", token)[0] == 200
        page.context.close()
        assert console.errors == []
