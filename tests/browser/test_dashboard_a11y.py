"""The analyst dashboard for someone who works by keyboard alone or with a screen reader.

axe-core finds nothing wrong on any view at a desk, nor at 320 CSS pixels (a 1280-pixel window
zoomed to 400 %): contrast, landmarks, captioned tables, and every table wider than the screen
reachable and scrollable by keyboard.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.a11y_support import axe_violations
from tests.browser.conftest import _guarded
from tests.integration.conftest import Server

pytestmark = pytest.mark.browser

VIEWS = ["network", "timeline", "coverage", "route", "stats", "whatif", "sources"]
QUERY = "at=2019-12-01&drop=jpn-kor-2019-suspension"


@pytest.fixture
def narrow(browser: Browser) -> Iterator[Page]:
    """A guarded page 320 CSS pixels wide (WCAG 1.4.10, reflow)."""
    for ctx, _guard in _guarded(browser, 320, 640):
        yield ctx.new_page()


def shown(page: Page, url: str, view: str) -> None:
    page.goto(f"{url}/?view={view}&{QUERY}")
    if view == "network":
        expect(page.locator("#cy")).to_have_attribute("data-redraws", "1")
    else:
        expect(page.locator(f"#panel-{view}")).to_have_attribute("data-rendered", "1")
    for details in page.locator(f"#panel-{view} details").all():
        details.evaluate("el => { el.open = true; }")


@pytest.mark.parametrize("view", VIEWS)
def test_axe_finds_nothing_wrong_on_any_view(page: Page, bundled: Server, view: str) -> None:
    shown(page, bundled.url, view)
    if view == "network":
        # an agreement's details: its derived timeline, events and equivalence as tables
        page.locator("#network-table button", has_text="JPN-KOR-GSOMIA").click()
        expect(page.locator("#details-events")).to_be_visible()
    assert axe_violations(page) == []


def test_at_320_pixels_every_wide_table_scrolls_by_keyboard(narrow: Page, bundled: Server) -> None:
    shown(narrow, bundled.url, "coverage")
    expect(narrow.locator("#gaps-table")).to_be_attached()
    assert narrow.evaluate("document.documentElement.scrollWidth") <= 320
    assert axe_violations(narrow) == []
    wide = narrow.locator(".table-wrap").filter(has=narrow.locator("table"))
    scrolled = 0
    for wrap in wide.all():
        if not wrap.evaluate("el => el.scrollWidth > el.clientWidth"):
            continue
        expect(wrap).to_have_attribute("tabindex", "0")
        expect(wrap).to_have_attribute("role", "region")
        expect(wrap).to_have_attribute(
            "aria-label",
            "Coverage matrix (table)"
            if wrap.get_attribute("id")
            else wrap.locator("caption").inner_text() + " (table)",
        )
        wrap.focus()
        narrow.keyboard.press("ArrowRight")
        narrow.wait_for_function("el => el.scrollLeft > 0", arg=wrap.element_handle())
        scrolled += 1
    assert scrolled >= 2  # the matrix and the gaps, at least
