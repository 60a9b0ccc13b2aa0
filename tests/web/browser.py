"""Debian's Chromium driven by Playwright (never `playwright install`), kept off the
network by its flags; every page checked for script errors and CSP violations."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.web.rig import InProcessService

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 740}

expect.set_options(timeout=15_000)  # a loaded machine


# Per module: Playwright's sync API holds an event loop in the main thread while it runs,
# and the tests of other modules call asyncio.run() there.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-peers (Debian's chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


class Console:
    """What the page said wrong: errors in the console (CSP violations among them) and
    uncaught exceptions."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def _message(self, message: ConsoleMessage) -> None:
        # Chromium logs a fetch answered 4xx, and one refused while the service restarts:
        # those the page expects and handles.
        expected = ("the server responded with a status of", "net::ERR_CONNECTION_REFUSED")
        if message.type == "error" and not any(text in message.text for text in expected):
            self.errors.append(message.text)


def open_page(browser: Browser, viewport: dict[str, int] = DESKTOP) -> tuple[Page, Console]:
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = context.new_page()
    return page, Console(page)


# The services a page may talk to. Set up before the page, they are torn down after it:
# else the service stops first and a fetch the open page makes meanwhile fails, which
# the console check below reports (seen on a loaded machine).
SERVICES = ("service", "served")


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    for name in SERVICES:
        if name in request.fixturenames:
            request.getfixturevalue(name)
    opened, console = open_page(browser)
    yield opened
    opened.context.close()
    assert console.errors == [], console.errors


@pytest.fixture
def service(tmp_path: Path) -> Iterator[InProcessService]:
    instance = InProcessService(tmp_path / "data").start()
    yield instance
    instance.stop()


def log_in(page: Page, url: str, password: str = "123456") -> None:
    page.goto(url + "/")
    page.locator("#login-password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#app-view")).to_be_visible()
    expect(page.locator("#link")).to_have_text("live")


def shot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(shot_path(name)), full_page=True)
