"""The dashboard over the bundled 2019 Japan–Korea scenario, as an analyst uses it."""

from __future__ import annotations

import re
from datetime import date

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.browser.conftest import Guard, expect_refused, shot
from tests.integration.conftest import Server

pytestmark = pytest.mark.browser

WINDOW_START = date(2014, 1, 1)  # the scenario's analysis window starts here (the slider's 0)


def drag_slider_to(page: Page, day: date) -> None:
    """Move the time slider as a drag would: set its value, fire 'input'."""
    page.eval_on_selector(
        "#at-slider",
        "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('input', { bubbles: true })); }",
        (day - WINDOW_START).days,
    )


def fact(details: Locator, name: str) -> Locator:
    """The value beside ``name`` in the agreement's facts (a <dl>)."""
    return details.locator("dt", has_text=name).locator("xpath=following-sibling::dd[1]")


def show_instant(page: Page, text: str) -> None:
    page.fill("#at-input", text)
    page.press("#at-input", "Enter")


def test_network_shows_the_gsomia_edge_through_the_2019_crisis(page: Page, bundled: Server) -> None:
    page.goto(f"{bundled.url}/?view=network&at=2019-08-01")
    cy = page.locator("#cy")
    row = page.locator('#network-table tr[data-agreement="JPN-KOR-GSOMIA"]')
    expect(cy).to_have_attribute("data-at", "2019-08-01T00:00+09:00")
    expect(row).to_have_attribute("data-state", "in_force")
    expect(page.locator("#source")).to_contain_text("japan-korea-2019")
    expect(page.locator("#database")).to_contain_text("sqlite:///")
    expect(page.locator("#instant-shown")).to_have_text("2019-08-01T00:00+09:00 (Asia/Seoul)")

    # 17:00 KST on 22 November: Korea's notice is still pending, due to end the agreement at midnight
    show_instant(page, "2019-11-22T17:00+09:00")
    expect(cy).to_have_attribute("data-at", "2019-11-22T17:00+09:00")
    expect(row).to_have_attribute("data-state", "notice_pending")
    # the edge's detail: derived term end and notice deadline (Art. 21.3)
    row.get_by_role("button", name="JPN-KOR-GSOMIA").click()
    details = page.locator("#agreement-details")
    expect(fact(details, "Current term ends")).to_have_text("2019-11-23T00:00+09:00")
    expect(fact(details, "Notice deadline for that term")).to_have_text("2019-08-24")
    expect(details.locator('#details-segments tr[data-state="notice_suspended"]')).to_have_attribute(
        "data-start", "2019-11-22T18:00+09:00"
    )
    assert "agreement=JPN-KOR-GSOMIA" in page.url
    shot(page, "network-2019-11-22T1700")

    # 19:00: the notice was suspended at about 18:00, the agreement stays in force
    show_instant(page, "2019-11-22T19:00+09:00")
    expect(row).to_have_attribute("data-state", "notice_suspended")
    expect(fact(details, "State")).to_have_text("notice suspended")

    # April 2023, with the slider: the notice was withdrawn on 21 March, plain extension again
    drag_slider_to(page, date(2023, 4, 1))
    expect(cy).to_have_attribute("data-at", "2023-04-01T00:00+09:00")
    expect(row).to_have_attribute("data-state", "in_force")
    expect(page).to_have_url(re.compile(r"[?&]at=2023-04-01&"))  # once the slider rests

    # the ◀ event button steps back to the withdrawal itself
    page.click("#prev-event")
    expect(cy).to_have_attribute("data-at", "2023-03-21T00:00+09:00")
    shot(page, "network-2023-03-21")


def test_whatif_drop_the_suspension_is_shown_side_by_side_and_shareable(page: Page, bundled: Server) -> None:
    page.goto(f"{bundled.url}/?view=whatif")
    page.get_by_role("button", name="The scenario’s question").click()

    def check(p: Page) -> None:
        missile = p.locator('#whatif-changes tr[data-from="JPN"][data-to="KOR"][data-topic="dprk.missile.launch"]')
        expect(missile).to_have_attribute("data-route", "relay")
        expect(missile).to_have_attribute("data-via", "USA")
        expect(missile).to_have_attribute("data-start", "2019-11-23T00:00+09:00")
        expect(missile.locator("td.before")).to_have_text("direct")
        expect(missile.locator("td.after")).to_contain_text("relay via USA (+4 h*)")
        gap = p.locator(
            '#gaps-after tr[data-from="JPN"][data-to="KOR"][data-topic="dprk.military.movement"]'
            '[data-start="2019-11-23T00:00+09:00"]'
        )
        expect(gap).to_have_attribute("data-changed", "new")
        expect(p.locator('#whatif-reports tr[data-report="r-2019-11-28-mrl"] td.after')).to_contain_text(
            "relay via USA"
        )
        expect(p.locator("#whatif-banner")).to_contain_text("drop jpn-kor-2019-suspension")

    check(page)
    assert "drop=jpn-kor-2019-suspension" in page.url
    shot(page, "whatif-drop-suspension")

    # add a hypothetical event on top: TISA ends the same night, so the relay is gone too
    page.select_option("#add-agreement", "TISA")
    page.select_option("#add-kind", "termination")
    page.fill("#add-at", "2019-11-23")
    page.get_by_role("button", name="Add it").click()
    missile = page.locator('#whatif-changes tr[data-from="JPN"][data-to="KOR"][data-topic="dprk.missile.launch"]')
    expect(missile).to_have_attribute("data-kind", "stopped")
    assert "add=TISA+termination+2019-11-23" in page.url
    page.locator("#whatif-items li", has_text="add TISA termination").get_by_role("button", name="remove").click()
    expect(missile).to_have_attribute("data-kind", "rerouted")
    assert "add=" not in page.url

    # the URL alone reproduces it, in a new page
    again = page.context.new_page()
    again.goto(page.url)
    check(again)

    # and the what-if applies to the other views: the coverage matrix on 1 December 2019
    again.goto(re.sub(r"([?&])at=[^&]*", r"\1at=2019-12-01", page.url.replace("view=whatif", "view=coverage")))
    expect(again.locator("#matrix")).to_have_attribute("data-at", "2019-12-01T00:00+09:00")
    cell = again.locator('#matrix td[data-from="JPN"][data-to="KOR"]')
    expect(cell).to_have_attribute("data-route", "relay")
    expect(cell).to_have_attribute("data-via", "USA")
    expect(again.locator("#matrix-notes")).to_contain_text("modelling assumptions")
    shot(again, "coverage-whatif-2019-12-01-missile-launch")
    again.get_by_label("Topic", exact=True).select_option("dprk.military.movement")
    expect(again.locator('#matrix td[data-from="JPN"][data-to="KOR"]')).to_have_attribute("data-route", "none")
    expect(
        again.locator(
            '#gaps-table tr[data-from="JPN"][data-to="KOR"][data-topic="dprk.military.movement"]'
            '[data-start="2019-11-23T00:00+09:00"]'
        )
    ).to_have_count(1)
    shot(again, "coverage-whatif-2019-12-01-military-movement")


def test_a_whatif_shows_the_recorded_relays_modelled_delay(page: Page, bundled: Server) -> None:
    # before the Japan-Korea GSOMIA, JPN-KOR went through the USA under TISA: a TISA ending in
    # 2015 stops that relay, and the recorded side shows its delay, marked as an assumption
    page.goto(f"{bundled.url}/?view=whatif&parties=JPN,KOR&add=TISA+termination+2015-06-01")
    missile = page.locator('#whatif-changes tr[data-from="JPN"][data-to="KOR"][data-topic="dprk.missile.launch"]')
    expect(missile).to_have_attribute("data-kind", "stopped")
    expect(missile.locator("td.before")).to_have_text("relay via USA (+4 h*)")


def test_statistics_as_known_when_korea_decided(page: Page, bundled: Server) -> None:
    page.goto(f"{bundled.url}/?view=stats")
    section = page.locator('.stats-agreement[data-agreement="JPN-KOR-GSOMIA"]')
    expect(section.locator("h3")).to_contain_text("as known at 2019-08-22T18:20+09:00")
    years = section.locator(".stats-years tbody tr[data-year]")
    expect(years).to_have_count(4)
    counts = {
        years.nth(i).get_attribute("data-year"): years.nth(i).get_attribute("data-count") for i in range(years.count())
    }
    assert counts == {"2016": "1", "2017": "19", "2018": "2", "2019": "7"}
    expect(section.locator("tr.total")).to_have_attribute("data-total", "29")
    trend = section.locator(".trend")
    expect(trend).to_contain_text("p = 0.75")
    expect(trend).to_contain_text("no trend can be significant at 5%")
    expect(page.locator("#stats-chart canvas")).to_have_count(1)
    shot(page, "stats-2019-08-22")

    # the analyst picks another "as known at": by the end of 2019, two more were dated
    page.fill("#stats-at", "2019-12-31")
    page.press("#stats-at", "Enter")
    expect(section.locator('tr[data-year="2019"]')).to_have_attribute("data-count", "9")
    expect(section.locator("tr.total")).to_have_attribute("data-total", "31")
    assert "stats_at=2019-12-31" in page.url


def test_timeline_and_coverage_views(page: Page, bundled: Server) -> None:
    page.goto(f"{bundled.url}/?view=timeline&at=2019-11-22T19:00%2B09:00")
    expect(page.locator("#panel-timeline")).to_have_attribute("data-rendered", "1")
    rows = page.locator("#timeline-table tbody tr")
    expect(rows.filter(has_text="notice suspended by KOR")).to_have_count(1)
    expect(rows.filter(has_text="notice withdrawn by KOR")).to_have_count(1)
    expect(rows.filter(has_text="Exchanges JPN-KOR-GSOMIA")).to_have_count(9)
    expect(rows.filter(has_text="Reports")).to_have_count(44)
    expect(rows.filter(has_text="Gaps JPN→KOR")).to_have_count(1)  # before TISA, missile launches
    expect(page.locator("#timeline-chart canvas")).to_have_count(1)
    shot(page, "timeline")

    # keyboard: from the selected tab, → moves to (and opens) the coverage view
    page.focus("#tab-timeline")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-coverage")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#tab-coverage")).to_be_focused()
    cell = page.locator('#matrix td[data-from="JPN"][data-to="KOR"]')
    expect(cell).to_have_attribute("data-route", "direct")
    expect(page.locator('#matrix td[data-from="KOR"][data-to="USA"]')).to_have_attribute("data-route", "direct")
    expect(page.locator('#gaps-table tr[data-from="JPN"][data-to="KOR"]')).to_have_attribute(
        "data-start", "2014-01-01T00:00+09:00"
    )
    shot(page, "coverage-2019-11-22T1900")


def test_a_refused_coverage_query_leaves_no_matrix_of_another_instant(
    page: Page, context: tuple[BrowserContext, Guard], bundled: Server
) -> None:
    _, guard = context
    page.goto(f"{bundled.url}/?view=coverage&at=2019-11-22T19:00%2B09:00")
    expect(page.locator('#matrix td[data-from="JPN"][data-to="KOR"]')).to_have_attribute("data-route", "direct")
    # an instant the exchange refuses (before 1900): the matrix of 2019 must not stay under it
    page.fill("#at-input", "1850-01-01")
    page.press("#at-input", "Enter")
    expect(page.locator("#problem")).to_be_visible()
    expect(page.locator("#matrix-problem")).to_contain_text("This coverage cannot be shown")
    expect(page.locator("#matrix")).to_have_count(0)
    expect(page.locator("#gaps-table")).to_have_count(0)
    expect_refused(guard, "/api/v1/matrix?at=1850-01-01", 422)
    expect_refused(guard, "/api/v1/network?at=1850-01-01", 422)


def test_api_reference_works_from_local_files(page: Page, bundled: Server) -> None:
    page.goto(f"{bundled.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("gsomia")
    expect(page.locator(".opblock-summary-path").filter(has_text="/api/v1/network")).to_have_count(1)
