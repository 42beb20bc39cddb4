"""Real-browser fixtures: Debian's Chromium, headless, driven by Playwright against the local stack.

The browser is the system's (never one Playwright downloads), kept on loopback by its resolver
rules; every page is watched for requests beyond the stack, console errors and CSP violations,
and each finished page is saved as a screenshot under the run's output directory.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    Playwright,
    Request,
    Response,
    expect,
    sync_playwright,
)

from tests.conftest import PROJECT_DIR, RunningStack

MISSING_CHROMIUM = (
    "Browser tests need Debian's chromium: `sudo apt-get install chromium` (make setup installs it "
    "where apt-get is available), or set CHROMIUM_PATH to a Chromium executable."
)

# Everything resolves nowhere except 127.0.0.1, and none of Chromium's own background traffic
# (component updates, sync, safe-browsing lists, metrics) starts: the tests stay on loopback.
CHROMIUM_ARGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-domain-reliability",
]

# Pages wait on a real stack whose jobs take seconds; a video is given this long to finish.
VIDEO_TIMEOUT_MS = 90_000
# Each Playwright action or web-first assertion waits this long before failing.
ACTION_TIMEOUT_MS = 15_000

# Set by app.js once it has wired the page (the contract's readiness flag).
READY = 'html[data-ready="true"]'

# What the page reports when the CSP blocked something, in addition to the console message.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI}`);
});
"""

LOOPBACK_URL = re.compile(r"^http://127\.0\.0\.1:\d+/")


def output_dir() -> Path:
    """Where this run's screenshots go: $TEST_OUTPUT_DIR/browser, else .test-output/browser."""
    base = os.environ.get("TEST_OUTPUT_DIR") or str(PROJECT_DIR / ".test-output")
    path = Path(base) / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


def chromium_executable() -> str:
    """Debian's Chromium, or CHROMIUM_PATH; the tests fail (never skip) without one, so a missing
    browser cannot pass `make test` unnoticed."""
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        if not os.access(configured, os.X_OK):
            pytest.fail(f"CHROMIUM_PATH={configured} is not an executable. {MISSING_CHROMIUM}")
        return configured
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(MISSING_CHROMIUM)


@pytest.fixture(scope="session", autouse=True)
def chromium_path() -> str:
    """The browser, looked up before any other fixture: without one, every browser test fails at
    once with what to install, before a stack is started for nothing."""
    return chromium_executable()


# Package scope, not session: Playwright's sync API keeps an asyncio loop running in the main
# thread while it is open, and tests elsewhere that run a loop of their own (asyncio.run, the dev
# host) must not find one running.
@pytest.fixture(scope="package")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright_driver: Playwright, chromium_path: str) -> Iterator[Browser]:
    """One headless Chromium for the session; each test gets a fresh context of its own."""
    for stale in output_dir().glob("FAILED-*.png"):
        stale.unlink()  # an earlier run's failures must not pass for this run's
    args = list(CHROMIUM_ARGS)
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox on
    launched = playwright_driver.chromium.launch(executable_path=chromium_path, headless=True, args=args)
    yield launched
    launched.close()


@dataclass
class PageGuard:
    """What a page did that the console must never do, collected while the test runs.

    Failed responses are expected only where the test says so (a wrong key answers 401): any other
    4xx/5xx the page met is a bug. Chromium also logs each failed response as a console error
    ("Failed to load resource: ... status of 401"); those are judged by their status instead.
    """

    secrets: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    expected_statuses: set[int] = field(default_factory=set)
    dialogs: list[str] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> None:
        """Listen on the whole context, so a popup or a new tab is watched like the page itself."""
        context.on("request", self._on_request)
        context.on("response", self._on_response)
        context.on("requestfailed", self._on_request_failed)
        context.on("console", self._on_console)
        context.on("weberror", lambda error: self.problems.append(f"page error: {error.error}"))
        context.on("dialog", self._on_dialog)

    def expect_status(self, *statuses: int) -> None:
        """From now on, responses with these statuses are part of the test (e.g. a refused key)."""
        self.expected_statuses.update(statuses)

    def _on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _on_response(self, response: Response) -> None:
        if response.status >= 400 and response.status not in self.expected_statuses:
            self.problems.append(f"{response.request.method} {response.url} answered {response.status}")

    def _on_request_failed(self, request: Request) -> None:
        # A media element cancels range requests it no longer needs; that is not a failure.
        if request.failure != "net::ERR_ABORTED":
            self.problems.append(f"{request.method} {request.url} failed: {request.failure}")

    def _on_console(self, message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text:
            self.problems.append(f"CSP violation: {text}")
        elif message.type == "error" and not text.startswith("Failed to load resource"):
            self.problems.append(f"console error: {text}")

    def _on_dialog(self, dialog: Dialog) -> None:
        # The console asks confirm() before deleting a video or rotating a key; the tests agree.
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.accept()

    def assert_clean(self, page: Page) -> None:
        """No request left loopback, no key went into a URL, nothing broke, the CSP blocked nothing."""
        beyond = [
            url
            for url in self.requests
            if not (LOOPBACK_URL.match(url) or url.startswith(("blob:", "data:")))
        ]
        assert beyond == [], f"the page requested beyond the local stack: {beyond}"
        for secret in self.secrets:
            leaked = [url for url in self.requests if secret in url]
            assert leaked == [], "a key was sent in a URL"
        violations = page.evaluate("window.__cspViolations || []")
        assert violations == [], f"CSP violations: {violations}"
        assert self.problems == [], "the page misbehaved:\n" + "\n".join(self.problems)


@dataclass
class ConsolePage:
    """The console open in a fresh browser context, with its guard."""

    page: Page
    context: BrowserContext
    guard: PageGuard
    stack: RunningStack

    def open(self) -> None:
        self.page.goto(f"{self.stack.api}/console")
        self.page.wait_for_selector(READY, state="attached")

    def panel(self, name: str) -> Locator:
        return self.page.get_by_role("tabpanel", name=name)

    def tab(self, name: str) -> Locator:
        return self.page.get_by_role("tablist", name="Console sections").get_by_role("tab", name=name)

    def keep_secret(self, secret: str) -> None:
        """`secret` must never appear in a request URL, in the page's markup or in localStorage."""
        self.guard.secrets.append(secret)

    def assert_secrets_kept(self) -> None:
        """Keys live in sessionStorage only: none in localStorage, none in the DOM (markup or a field's
        value), none in a URL (checked by the guard)."""
        assert self.page.evaluate("localStorage.length") == 0, "the console wrote to localStorage"
        markup = self.page.content()
        values: list[str] = self.page.evaluate(
            "[...document.querySelectorAll('input, textarea, select')].map((e) => e.value)"
        )
        for secret in self.guard.secrets:
            assert secret not in markup, "a key was written into the page"
            assert not [value for value in values if secret in value], "a key was left in a form field"

    def screenshot(self, name: str) -> Path:
        path = output_dir() / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def finish(self, name: str) -> Path:
        """The page's end state: screenshot it, then check the guard and the keys."""
        path = self.screenshot(name)
        self.guard.assert_clean(self.page)
        self.assert_secrets_kept()
        return path

    def sign_in_app(self, key: str) -> None:
        """Sign in to the Playground with an app key and wait for the signed-in state."""
        panel = self.panel("Playground")
        form = panel.get_by_role("form", name="App sign-in")
        form.get_by_label("App key").fill(key)
        form.get_by_role("button", name="Sign in").click()
        expect(panel.get_by_text(f"Signed in with {key[:4]}…")).to_be_visible()
        expect(panel.get_by_role("form", name="New video")).to_be_visible()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember each phase's report on the item, so a fixture can tell a failed test at teardown."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def new_console_page(
    browser: Browser, stack: RunningStack, request: pytest.FixtureRequest, **context_options: Any
) -> Iterator[ConsolePage]:
    context = browser.new_context(accept_downloads=True, **context_options)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    guard = PageGuard()
    guard.attach(context)
    console = ConsolePage(page=page, context=context, guard=guard, stack=stack)
    try:
        yield console
        failed = getattr(request.node, "report_call", None)
        if failed is not None and failed.failed:
            # The page as the failure left it, next to the finished pages' screenshots, and what
            # the guard saw (pytest shows a failed test's captured output).
            console.screenshot(f"FAILED-{request.node.name}")
            print("guard problems:", *console.guard.problems, sep="\n  ")
            print("dialogs:", *console.guard.dialogs, sep="\n  ")
    finally:
        context.close()


@pytest.fixture
def console(browser: Browser, stack: RunningStack, request: pytest.FixtureRequest) -> Iterator[ConsolePage]:
    """The console in a desktop-sized context of the test's own."""
    expect.set_options(timeout=ACTION_TIMEOUT_MS)
    yield from new_console_page(browser, stack, request, viewport={"width": 1280, "height": 900})


@pytest.fixture
def phone_console(
    browser: Browser, stack: RunningStack, request: pytest.FixtureRequest
) -> Iterator[ConsolePage]:
    """The console in a phone-sized context (375x740, touch, mobile viewport rules)."""
    expect.set_options(timeout=ACTION_TIMEOUT_MS)
    yield from new_console_page(
        browser,
        stack,
        request,
        viewport={"width": 375, "height": 740},
        is_mobile=True,
        has_touch=True,
    )


def api_error_message(response: requests.Response) -> str:
    """The OpenAI-shaped error message the API answered, which the console must show as it is."""
    return str(response.json()["error"]["message"])


def poll(check: Callable[[], bool], timeout: float = 30.0, interval: float = 0.5) -> None:
    """Wait until `check()` is true (for state outside the page, e.g. an API record)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:.0f} s")
        time.sleep(interval)


def assert_controls_are_named(panel: Locator) -> None:
    """Every visible input, select, textarea and button in `panel` has a non-empty accessible name."""
    controls = panel.locator("input, select, textarea, button").filter(visible=True)
    count = controls.count()
    assert count > 0
    for index in range(count):
        expect(controls.nth(index)).to_have_accessible_name(re.compile(r"\S"))
