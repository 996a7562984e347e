"""The node console for an officer who works by keyboard alone or with a screen reader.

axe-core finds nothing wrong on any view (WCAG 2.1 AA and best practice: contrast, names,
table headers, landmarks); a filter changed with the arrow keys keeps the focus; a new
delivery is said in a polite live region while the focus stays where the officer works; a
form's error is tied to its field; each level of a marking is in its party's language.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.a11y_support import axe_violations
from tests.browser.conftest import Guard, expect_refused
from tests.browser.console_support import World, guarded, sign_in, start_world, track

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[World]:
    w = start_world(tmp_path_factory.mktemp("console-a11y"))
    yield w
    w.stop()


@pytest.fixture(scope="module")
def delivered(world: World) -> dict[str, Any]:
    return world.deliver(track())


@pytest.fixture
def context(browser: Browser) -> Iterator[tuple[BrowserContext, Guard]]:
    yield from guarded(browser, "desk")


@pytest.fixture
def page(context: tuple[BrowserContext, Guard]) -> Page:
    return context[0].new_page()


def open_as(page: Page, node_url: str, address: str) -> None:
    page.goto("about:blank")
    page.goto(f"{node_url}/{address}")
    expect(page.locator("body")).to_have_attribute("data-signed-in", "1")


def test_axe_finds_nothing_wrong_on_any_view(
    world: World, delivered: dict[str, Any], page: Page, context: tuple[BrowserContext, Guard]
) -> None:
    page.goto(f"{world.kor.url}/#/login")
    expect(page.get_by_label("User name")).to_be_focused()
    assert axe_violations(page) == []
    expect_refused(context[1], "/api/session", 401)
    sign_in(context[0], world.kor, "chief")
    ready = {
        "#/inbox": "#inbox-list[data-loaded]",
        f"#/deliveries/{delivered['delivery_id']}": "#report:not([aria-busy])",
        "#/consents": "#consents-pending:not([aria-busy])",
        "#/incidents": "#incidents:not([aria-busy])",
        "#/keys": "#keys:not([aria-busy])",
        "#/users": "#users:not([aria-busy])",
        "#/audit": "#audit:not([aria-busy])",
    }
    for address, selector in ready.items():
        open_as(page, world.kor.url, address)
        expect(page.locator(selector)).to_be_attached()
        expect(page.locator("#status-line")).not_to_be_empty()
        assert axe_violations(page) == [], address


def _inbox_as_duty(world: World, page: Page, context: tuple[BrowserContext, Guard]) -> None:
    """KOR's duty officer signed in, the inbox loaded."""
    sign_in(context[0], world.kor, "duty")
    open_as(page, world.kor.url, "#/inbox")
    expect(page.locator("#inbox-list")).to_have_attribute("data-loaded", "1")


def test_a_filter_changed_with_the_arrow_keys_keeps_the_focus(
    world: World, delivered: dict[str, Any], page: Page, context: tuple[BrowserContext, Guard]
) -> None:
    _inbox_as_duty(world, page, context)
    state = page.get_by_label("Verification")
    state.focus()
    page.keyboard.press("ArrowDown")
    expect(page).to_have_url(re.compile(r"state=verified"))
    expect(page.get_by_label("Verification")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(page).to_have_url(re.compile(r"state=quarantined"))
    expect(page.get_by_label("Verification")).to_be_focused()
    expect(page.get_by_label("Verification")).to_have_value("quarantined")


def test_a_new_delivery_is_announced_politely_and_the_focus_stays(
    world: World, delivered: dict[str, Any], page: Page, context: tuple[BrowserContext, Guard]
) -> None:
    _inbox_as_duty(world, page, context)
    expect(page.locator("body")).to_have_attribute("data-live", "open")
    # every live region but the one that says the news: redrawn at each status, a screen reader
    # would read it out again (the exercise banner's clock reading changes at every status)
    expect(page.locator("#exercise")).to_be_visible()
    page.evaluate(
        """() => { window.redrawn = [];
        const regions = [...document.querySelectorAll('[role=status], [role=alert], [aria-live]')].filter((el) => el.id !== 'announce');
        const seen = new MutationObserver((m) => window.redrawn.push(...m.map((r) => r.target.id || r.target.parentElement?.closest('[id]')?.id)));
        for (const el of regions) seen.observe(el, { childList: true, subtree: true, characterData: true }); }"""
    )
    search = page.get_by_label("Search in reports")
    search.focus()
    page.keyboard.type("brig")
    world.send(track(apogee_km=500.0))
    announce = page.locator("#announce")
    expect(announce).to_have_attribute("role", "status")
    expect(announce).to_have_attribute("aria-live", "polite")
    expect(announce).to_have_text(re.compile(r"New report delivered|A delivered report was verified"))
    expect(search).to_be_focused()
    expect(search).to_have_value("brig")
    assert page.evaluate("window.redrawn") == []
    # the note's button, once pressed and gone, hands the focus to the newest report
    show = page.get_by_role("button", name="Show them")
    show.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#inbox-list .item-link").first).to_be_focused()


def described_by(page: Page, selector: str) -> str:
    text: str = page.evaluate(
        """(sel) => (document.querySelector(sel).getAttribute('aria-describedby') ?? '').split(' ').filter(Boolean)
        .map((id) => document.getElementById(id)?.textContent ?? '').join(' ')""",
        selector,
    )
    return text


def test_a_form_error_is_tied_to_its_field_until_it_changes(
    world: World, page: Page, context: tuple[BrowserContext, Guard]
) -> None:
    page.goto(f"{world.kor.url}/#/login")
    page.get_by_role("button", name="Sign in").click()
    user = page.get_by_label("User name")
    expect(user).to_be_focused()
    expect(user).to_have_attribute("aria-invalid", "true")
    assert described_by(page, "#login-user") == "Enter your user name and password."
    expect_refused(context[1], "/api/session", 401)
    sign_in(context[0], world.jpn, "duty")
    open_as(page, world.jpn.url, "#/submit")
    page.get_by_role("button", name="Preview the release").click()
    topic = page.get_by_label("Topic")
    expect(topic).to_be_focused()
    expect(topic).to_have_attribute("aria-invalid", "true")
    assert described_by(page, "#submit-topic") == "Choose a topic."
    topic.select_option("dprk.missile.launch")
    expect(topic).not_to_have_attribute("aria-invalid", "true")
    assert described_by(page, "#submit-topic") == ""
    page.get_by_role("button", name="Preview the release").click()
    level = page.get_by_label("Level (JPN ladder)")
    expect(level).to_have_attribute("aria-invalid", "true")
    assert described_by(page, "#submit-level") == "Choose a level of your ladder."


def test_each_level_of_a_previewed_marking_is_in_its_party_language(
    world: World, page: Page, context: tuple[BrowserContext, Guard]
) -> None:
    sign_in(context[0], world.jpn, "duty")
    open_as(page, world.jpn.url, "#/submit")
    page.get_by_label("Topic").select_option("dprk.missile.launch")
    page.get_by_label("Level (JPN ladder)").select_option("極秘")
    page.locator("#recipient-KOR").check()
    page.get_by_label("Content", exact=True).fill("{}")
    page.get_by_role("button", name="Preview the release").click()
    row = page.locator('#preview-table tr[data-party="KOR"]')
    expect(row.locator('[lang="ko"]')).to_have_text("군사II급비밀")
    expect(row.locator('[lang="ja"]')).to_have_text("極秘")
    assert axe_violations(page) == []
