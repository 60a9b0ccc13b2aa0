"""The page in Debian's Chromium against a served instance: login, the settings form
with the contract's errors beside their fields, logout, and a token that ends."""

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from intercom_sip.contract.fields import FACTORY
from intercom_sip.contract.settings import to_view
from tests.peers.ports import free_tcp_port
from tests.served import Served
from tests.web.browser import PHONE, log_in, open_page, shot

pytestmark = pytest.mark.served

FACTORY_VIEW = to_view(FACTORY)
GOOD = {
    "#f-proxy": "sip:127.0.0.1:5999",
    "#f-realm": "example.com",
    "#f-user": "101",
    "#f-password": "s3cret-pass",
    "#f-user_id": "",
    "#f-registration_interval": "120",
    "#f-stun-ip": "",
    "#f-stun-port": "3478",
}


def fill(page: Page, values: dict[str, str]) -> None:
    for selector, value in values.items():
        page.locator(selector).fill(value)


def body_of(values: dict[str, str], enable: bool = True) -> dict[str, Any]:
    """The body the page sends for these inputs (the other fields at factory values)."""

    def number(text: str) -> int | str:
        return int(text) if text.lstrip("-").isdigit() else text

    return {
        "enable": enable,
        "proxy": values["#f-proxy"],
        "realm": values["#f-realm"],
        "user": values["#f-user"],
        "password": values["#f-password"],
        "transport": values.get("#f-transport", "udp"),
        "user_id": values["#f-user_id"],
        "is_enable_ring_code": False,
        "timeout": 120,
        "registration_interval": number(values["#f-registration_interval"]),
        "stun": {"ip": values["#f-stun-ip"], "port": number(values["#f-stun-port"])},
    }


def test_the_page_computes_md5_as_rfc_1321_says(page: Page, served: Served) -> None:
    page.goto(served.url + "/")
    vectors = [
        "",
        "a",
        "abc",
        "message digest",
        "abcdefghijklmnopqrstuvwxyz",
        "1234567890" * 8,
        "x" * 55,
        "x" * 56,
        "x" * 64,
        "pässwörd ✓ 😀",
    ]
    got = page.evaluate("texts => texts.map(md5)", vectors)
    assert got == [hashlib.md5(text.encode()).hexdigest() for text in vectors]
    assert got[:3] == [
        "d41d8cd98f00b204e9800998ecf8427e",
        "0cc175b9c0f1b6a831c399e269772661",
        "900150983cd24fb0d6963f7d28e17f72",
    ]


def test_log_in_and_see_the_factory_settings(page: Page, served: Served) -> None:
    log_in(page, served.url)
    expect(page.locator("#f-enable")).not_to_be_checked()
    for selector in ("#f-proxy", "#f-realm", "#f-user", "#f-user_id", "#f-stun-ip"):
        expect(page.locator(selector)).to_have_value("")
    expect(page.locator("#f-password")).to_have_value("")
    expect(page.locator("#f-password")).to_have_attribute("placeholder", "none stored")
    expect(page.locator("#f-transport")).to_have_value("udp")
    expect(page.locator("#f-timeout")).to_have_value("120")
    expect(page.locator("#f-registration_interval")).to_have_value("60")
    expect(page.locator("#f-stun-port")).to_have_value("3478")
    expect(page.locator("#reg-state")).to_have_text("disabled")
    expect(page.locator("#call-state")).to_have_text("idle")
    expect(page.locator("#history-empty")).to_be_visible()


def test_a_wrong_password_is_refused_with_the_contracts_message(
    page: Page, served: Served
) -> None:
    page.goto(served.url + "/")
    page.locator("#login-password").fill("nope-nope")
    page.locator("#login-password").press("Enter")  # the keyboard alone
    expect(page.locator("#login-error")).to_have_text("Wrong login or password")
    expect(page.locator("#app-view")).to_be_hidden()


def test_valid_settings_are_saved_and_seen_after_a_reload(page: Page, served: Served) -> None:
    log_in(page, served.url)
    page.locator("#f-enable").check()
    fill(page, GOOD)
    page.locator("#f-timeout").select_option("300")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#settings-saved")).to_have_text("Saved.")
    expect(page.locator("#f-password")).to_have_value("")
    expect(page.locator("#f-password")).to_have_attribute("placeholder", "stored (unchanged)")
    expect(page.locator("#history-rows tr")).to_have_count(1)
    page.reload()
    expect(page.locator("#app-view")).to_be_visible()  # the token outlives a reload
    expect(page.locator("#f-enable")).to_be_checked()
    expect(page.locator("#f-proxy")).to_have_value("sip:127.0.0.1:5999")
    expect(page.locator("#f-realm")).to_have_value("example.com")
    expect(page.locator("#f-user")).to_have_value("101")
    expect(page.locator("#f-timeout")).to_have_value("300")
    expect(page.locator("#f-registration_interval")).to_have_value("120")
    token = served.login()
    _, stored = served.call("GET", "/api/v1/device/sip/settings", token)
    assert stored == {
        **body_of(GOOD),
        "password": "WebPass",
        "timeout": 300,
        "user_agent": FACTORY_VIEW["user_agent"],
    }
    # Saved again untouched: the password field left empty keeps the stored password.
    page.locator("#f-registration_interval").fill("90")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#settings-saved")).to_have_text("Saved.")
    _, stored = served.call("GET", "/api/v1/device/sip/settings", token)
    assert (stored["registration_interval"], stored["password"]) == (90, "WebPass")


def test_what_the_user_typed_before_the_first_settings_came_stays(
    page: Page, served: Served
) -> None:
    """The events' first settings (or the GET's) fill the form; on a slow link the user
    may type first. The fields they typed keep their text, the others are filled: a
    flaky test once saw the late first settings wipe the form before Save."""
    held: list[Route] = []

    def hold(route: Route) -> None:
        if route.request.method == "GET":
            held.append(route)
        else:
            route.continue_()

    page.route("**/api/v1/events", hold)
    page.route("**/api/v1/device/sip/settings", hold)
    page.goto(served.url + "/")
    page.locator("#login-password").fill("123456")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#app-view")).to_be_visible()
    page.locator("#f-enable").check()
    fill(page, {"#f-realm": "example.com", "#f-registration_interval": "120"})
    for _ in range(200):  # both asked for (bounded): then let the settings come
        if len(held) == 2:
            break
        page.wait_for_timeout(25)
    assert [route.request.url.rsplit("/", 1)[1] for route in held] in (
        ["events", "settings"],
        ["settings", "events"],
    )
    for route in held:
        route.continue_()
    expect(page.locator("#link")).to_have_text("live")
    expect(page.locator("#f-password")).to_have_attribute("placeholder", "none stored")
    expect(page.locator("#f-stun-port")).to_have_value("3478")  # filled: not typed in
    expect(page.locator("#f-realm")).to_have_value("example.com")  # typed: kept
    expect(page.locator("#f-registration_interval")).to_have_value("120")
    expect(page.locator("#f-enable")).to_be_checked()


# One value of each kind a person can get wrong, and the field the contract names.
INVALID = [
    ("#f-proxy", "bad host!", "proxy"),
    ("#f-proxy", "sip:example.com:0", "proxy"),
    ("#f-realm", "sip:example.com", "realm"),
    ("#f-user", "", "user"),
    ("#f-user", "bad:user", "user"),
    ("#f-password", "123", "password"),
    ("#f-user_id", "x" * 32, "user_id"),
    ("#f-registration_interval", "10", "registration_interval"),
    ("#f-registration_interval", "ten", "registration_interval"),
    ("#f-stun-ip", "999.1.1.1", "stun.ip"),
    ("#f-stun-port", "70000", "stun.port"),
]


@pytest.mark.parametrize(("selector", "value", "field"), INVALID)
def test_an_invalid_value_shows_the_contracts_message_beside_its_field(
    page: Page, served: Served, selector: str, value: str, field: str
) -> None:
    values = {**GOOD, selector: value}
    token = served.login()
    status, expected = served.call("POST", "/api/v1/device/sip/settings", token, body_of(values))
    assert status == 400 and f"`{field}`" in expected["error"]  # what the service says
    log_in(page, served.url)
    page.locator("#f-enable").check()
    fill(page, values)
    page.get_by_role("button", name="Save").click()
    error = page.locator(selector.replace("#f-", "#e-"))
    expect(error).to_have_text(expected["error"])
    expect(page.locator(selector)).to_have_attribute("aria-invalid", "true")
    expect(page.locator(selector)).to_be_focused()
    expect(page.locator(selector)).to_have_value(value)  # what the user typed stays
    expect(page.locator("#f-realm")).to_have_value(values["#f-realm"])
    _, stored = served.call("GET", "/api/v1/device/sip/settings", token)
    assert stored == FACTORY_VIEW  # nothing saved
    expect(page.locator("#history-empty")).to_be_visible()


def test_a_sips_proxy_over_udp_is_refused_beside_transport(page: Page, served: Served) -> None:
    log_in(page, served.url)
    page.locator("#f-enable").check()
    fill(page, {**GOOD, "#f-proxy": "sips:example.com"})
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#e-transport")).to_contain_text("Wrong JSON body: value `transport`")
    expect(page.locator("#f-transport")).to_have_attribute("aria-invalid", "true")


def test_webpass_with_another_account_asks_for_the_password(page: Page, served: Served) -> None:
    token = served.login()
    status, _ = served.call("POST", "/api/v1/device/sip/settings", token, body_of(GOOD))
    assert status == 200
    log_in(page, served.url)
    expect(page.locator("#f-user")).to_have_value("101")
    page.locator("#f-user").fill("102")  # the password field left empty: WebPass is sent
    page.get_by_role("button", name="Save").click()
    wrong = {**body_of(GOOD), "user": "102", "password": "WebPass"}
    _, expected = served.call("POST", "/api/v1/device/sip/settings", token, wrong)
    expect(page.locator("#e-password")).to_have_text(expected["error"])
    expect(page.locator("#f-user")).to_have_value("102")


def test_log_out_brings_the_login_form_and_ends_the_token(page: Page, served: Served) -> None:
    log_in(page, served.url)
    token = page.evaluate("sessionStorage.getItem('intercom-sip.token')")
    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#login-view")).to_be_visible()
    expect(page.locator("#login-note")).to_have_text("You are logged out.")
    assert page.evaluate("sessionStorage.getItem('intercom-sip.token')") is None
    status, _ = served.call("GET", "/api/v1/device/sip/settings", token)
    assert status == 401


def test_a_token_revoked_by_passwd_brings_the_login_form(page: Page, served: Served) -> None:
    log_in(page, served.url)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "intercom_sip",
            "passwd",
            "--stdin",
            "--data-dir",
            str(served.data_dir),
        ],
        input="n3w-Secret\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # No click, no reload: the events stream ends with its token, and its reconnection
    # is answered 401.
    expect(page.locator("#login-view")).to_be_visible()
    expect(page.locator("#login-note")).to_have_text("Your session ended: log in again.")
    log_in(page, served.url, "n3w-Secret")


def test_screenshots_of_login_and_settings_with_an_error(browser: Browser, served: Served) -> None:
    for name, viewport in (("360", PHONE), ("1280", None)):
        page, console = open_page(browser, viewport) if viewport else open_page(browser)
        page.goto(served.url + "/")
        expect(page.locator("#login-password")).to_be_focused()
        shot(page, f"login-{name}")
        log_in(page, served.url)
        page.locator("#f-enable").check()
        fill(page, {**GOOD, "#f-proxy": "bad host!"})
        page.get_by_role("button", name="Save").click()
        expect(page.locator("#e-proxy")).not_to_be_empty()
        shot(page, f"settings-error-{name}")
        page.context.close()
        assert console.errors == []


def test_the_page_reconnects_after_a_restart_of_the_service(page: Page, tmp_path: Path) -> None:
    options = (
        *("--port", str(free_tcp_port()), "--data-dir", str(tmp_path / "data")),
        *("--sip-host", "127.0.0.1", "--sip-port", "0"),
    )
    first = Served(tmp_path / "data", *options, env={}).start()
    try:
        log_in(page, first.url)
    finally:
        first.stop()
    expect(page.locator("#link")).to_have_text("reconnecting…")
    again = Served(tmp_path / "data", *options, env={}).start()
    try:
        # The restart ended every token: the stream's reconnection is answered 401.
        expect(page.locator("#login-view")).to_be_visible()
        expect(page.locator("#login-note")).to_have_text("Your session ended: log in again.")
        log_in(page, again.url)
    finally:
        again.stop()
