"""The dashboard in Debian's Chromium, driven by Playwright, against a live ``gsomia serve``.

Every page is guarded: a request to any host but 127.0.0.1 is refused and fails the test,
and so does a console error, an uncaught exception or a Content-Security-Policy violation.
Without Chromium the tests fail and say how to install it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Route,
    expect,
    sync_playwright,
)

from tests.integration.conftest import Server, start_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}

# Reports every CSP violation to the test (Chromium also logs them as console errors).
REPORT_CSP = """
document.addEventListener('securitypolicyviolation', (e) => {
  window.gsomiaCspViolation(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`);
});
"""

expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium (never one Playwright downloads)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/system-packages.sh (or: sudo apt-get install -y chromium)")
    return CHROMIUM


# Module scope, not session: Playwright's sync API keeps an asyncio loop running in this
# thread while it is open, which would break any later test that starts its own loop.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright, chromium: Path) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
    yield b
    b.close()


@dataclass
class Guard:
    """What a page did that it must not: external requests, console errors, CSP violations."""

    external: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname != "127.0.0.1":
            self.external.append(url)
            route.abort()
        else:
            route.continue_()

    def violation(self, text: str) -> None:
        self.csp.append(text)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location.get('url', '')})")

    def check(self) -> None:
        assert not self.external, f"requests left 127.0.0.1: {self.external}"
        assert not self.csp, f"Content-Security-Policy violations: {self.csp}"
        assert not self.errors, f"errors in the page: {self.errors}"


def _guarded(browser: Browser, width: int, height: int) -> Iterator[tuple[BrowserContext, Guard]]:
    guard = Guard()
    ctx = browser.new_context(viewport={"width": width, "height": height}, service_workers="block")
    ctx.route("**/*", guard.route)
    ctx.expose_function("gsomiaCspViolation", guard.violation)
    ctx.add_init_script(REPORT_CSP)

    def watch(page: Page) -> None:
        page.on("console", guard.console)
        page.on("pageerror", lambda exc: guard.errors.append(f"pageerror: {exc}"))

    ctx.on("page", watch)
    yield ctx, guard
    ctx.close()
    guard.check()


@pytest.fixture
def context(browser: Browser) -> Iterator[tuple[BrowserContext, Guard]]:
    """A fresh browser context whose pages are all guarded; the guard is checked at the end."""
    yield from _guarded(browser, 1400, 1000)


@pytest.fixture
def page(context: tuple[BrowserContext, Guard]) -> Page:
    return context[0].new_page()


@pytest.fixture
def phone_context(browser: Browser) -> Iterator[tuple[BrowserContext, Guard]]:
    """A guarded context the size of a phone held upright (390 × 844 CSS pixels)."""
    yield from _guarded(browser, PHONE["width"], PHONE["height"])


@pytest.fixture
def phone(phone_context: tuple[BrowserContext, Guard]) -> Page:
    return phone_context[0].new_page()


def expect_refused(guard: Guard, path: str, status: int, times: int = 1) -> None:
    """Chromium logs every 4xx response as a console error ("Failed to load resource"): those
    the test provoked on purpose (``times`` answers with ``status`` to a URL containing
    ``path``) are expected; any other error still fails the test."""
    expected = [e for e in guard.errors if f"status of {status}" in e and path in e]
    assert len(expected) == times, guard.errors
    for e in expected:
        guard.errors.remove(e)


def shot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as a test artifact."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _load(db: str, scenario: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "gsomia", "scenario", "load", scenario],
        env={**os.environ, "GSOMIA_DB": db},
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[Server]:
    """``gsomia serve`` over the bundled japan-korea-2019 scenario."""
    work = tmp_path_factory.mktemp("dashboard")
    db = f"sqlite:///{work / 'g.db'}"
    _load(db, "japan-korea-2019")
    server = start_server(db, work)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[Server]:
    """``gsomia serve`` over the 200-party synthetic network (2,000 agreements, 10 years)."""
    work = tmp_path_factory.mktemp("synthetic")
    path = work / "synthetic.yaml"
    subprocess.run(
        [sys.executable, "-m", "gsomia", "scenario", "synthetic", "--out", str(path)],
        check=True,
        capture_output=True,
    )
    db = f"sqlite:///{work / 's.db'}"
    _load(db, str(path))
    server = start_server(db, work)
    yield server
    server.stop()
