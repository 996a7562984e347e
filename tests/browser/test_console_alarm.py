"""The ledger alarm and the sign-in throttle in the console, against a real exchange and KOR's
real node, at a desk (1440 × 900) and on a phone (390 × 844).

The exchange is stopped and served again, on the same address, from a copy of its database
taken before the node last checked it: the exchange now shows a smaller ledger than one the
node's witness cosigned, a rollback. The node raises its alarm, and the console shows it in
red on every page, naming both checkpoints, the moment it is raised.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import Guard, expect_refused
from tests.browser.console_support import (
    PASSWORD,
    SIZES,
    World,
    fits,
    guarded,
    serve_exchange_from,
    shot,
    sign_in,
    snapshot,
    start_world,
)
from tests.integration.conftest import Server
from tests.integration.exchange_support import Exchange, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@dataclass
class Rollback:
    """The world, the copy of the exchange taken early, and the exchange served from it."""

    world: World
    copy: Path
    served: list[Server] = field(default_factory=list)

    def happen(self) -> dict[str, Any]:
        """Roll the exchange back (once) and return the node's alarm, once raised."""
        kor = self.world.kor
        if not self.served:
            # the ledger grows past the copy, and the node's witness cosigns what it grew to
            ex = self.world.ex
            for _ in range(2):
                assert ex.submit("JPN", recipients=["KOR"]).status_code == 201
            size = ex.counts()[1]
            wait_for(
                lambda: (kor.api("chief").get("/api/status").json()["witness"]["cosigned_size"] or 0) >= size,
                timeout=60,
                what="KOR's witness to cosign the grown ledger",
            )
            ex.stop()
            self.served.append(serve_exchange_from(ex, self.copy))
        alarm: dict[str, Any] = wait_for(
            lambda: kor.api("chief").get("/api/status").json()["alarm"],
            timeout=60,
            what="KOR's node to raise the alarm",
        )
        return alarm

    def stop(self) -> None:
        for server in self.served:
            server.stop()


@pytest.fixture(scope="module")
def rollback(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[Rollback]:
    base = tmp_path_factory.mktemp("console-alarm")
    copies: list[Path] = []

    def keep_a_copy(ex: Exchange) -> None:
        copies.append(snapshot(ex, base / "copy"))

    world = start_world(base, parties=("KOR",), before_serving=keep_a_copy)
    rb = Rollback(world, copies[0])
    yield rb
    rb.stop()
    world.stop()


@pytest.fixture(params=list(SIZES))
def size(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def context(browser: Browser, size: str) -> Iterator[tuple[BrowserContext, Guard]]:
    yield from guarded(browser, size)


@pytest.fixture
def page(context: tuple[BrowserContext, Guard]) -> Page:
    return context[0].new_page()


def checkpoint_size(note: str) -> str:
    return note.split("\n")[1]


def test_the_alarm_is_red_on_every_page_and_names_both_checkpoints(
    rollback: Rollback, page: Page, context: tuple[BrowserContext, Guard], size: str
) -> None:
    kor = rollback.world.kor
    sign_in(context[0], kor, "chief")
    page.goto(kor.url + "/#/inbox")
    expect(page.locator("body")).to_have_attribute("data-live", "open")
    banner = page.locator("#alarm")
    if not rollback.served:
        expect(banner).to_be_hidden()
    alarm = rollback.happen()
    assert alarm["kind"] == "rollback"
    # raised while the page is open: it comes over the node's event stream, no reload
    expect(banner).to_be_visible()
    expect(banner.get_by_role("heading")).to_have_text("LEDGER ALARM: the exchange rolled its ledger back")
    first, second = checkpoint_size(alarm["first"]), checkpoint_size(alarm["second"])
    assert int(second) < int(first)
    for address in ("#/inbox", "#/submit", "#/consents", "#/users", "#/keys"):
        page.goto(f"{kor.url}/{address}")
        expect(page.locator("#main h1")).to_be_visible()
        expect(banner).to_be_visible()
        assert banner.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(164, 22, 26)"
        captions = banner.locator("figcaption")
        expect(captions).to_have_text(
            [
                re.compile(rf"^First checkpoint — size {first}, root "),
                re.compile(rf"^Second checkpoint — size {second}, root "),
            ]
        )
        expect(banner.locator("pre")).to_have_text([alarm["first"].rstrip("\n"), alarm["second"].rstrip("\n")])
        fits(page, size)
    expect(page.locator("#ledger .problem")).to_contain_text("Alarm: ")  # the keys page, last
    shot(page, "alarm", size)


def test_sign_in_is_held_after_five_failures(rollback: Rollback, browser: Browser) -> None:
    # Last in this module: the node then refuses any sign-in from this address for 15 minutes.
    kor = rollback.world.kor
    for size in SIZES:
        contexts = guarded(browser, size)
        ctx, guard = next(contexts)
        page = ctx.new_page()
        page.goto(kor.url + "/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        attempts = 6 if size == "desk" else 1
        for i in range(attempts):
            page.get_by_label("User name").fill("duty")
            page.get_by_label("Password").fill(PASSWORD if i == attempts - 1 else f"wrong password {i}")
            page.get_by_role("button", name="Sign in").click()
            if i < attempts - 1:
                expect(page.locator("#bad-credentials")).to_be_visible()
                expect(page.get_by_role("button", name="Sign in")).to_be_enabled()
        held = page.locator("#rate-limited")
        expect(held).to_contain_text("Too many failed sign-ins.")
        expect(held).to_contain_text(re.compile(r"try again in 1[0-5] minutes"))
        expect(page.get_by_role("button", name="Sign in")).to_be_disabled()
        fits(page, size)
        shot(page, "rate-limited", size)
        expect_refused(guard, "/api/session", 401, times=attempts)  # the first look, then the wrong passwords
        expect_refused(guard, "/api/session", 429)
        next(contexts, None)
