"""The analyst's dashboard over the bundled scenario: the route check, equivalence tables, the
sources behind every tag, coverage that is not known, stepping by hour and by event, refused
what-ifs, and the wording a reader relies on."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.browser.conftest import Guard, expect_refused, shot
from tests.integration.conftest import Server

pytestmark = pytest.mark.browser

EDGE_STYLE = """([id, prop]) => {
  const cy = document.getElementById('cy')._cyreg.cy;  // Cytoscape's own handle on its container
  return cy.getElementById(id).style(prop);
}"""
EDGE_CLASSES = "(id) => document.getElementById('cy')._cyreg.cy.getElementById(id).classes()"


def tap_edge(page: Page, edge: str) -> None:
    """Click the middle of an edge of the drawn graph, as a user would."""
    expect(page.locator("#cy")).to_have_attribute("data-redraws", re.compile(r"[1-9]"))
    box = page.locator("#cy").bounding_box()
    assert box is not None
    x, y = page.evaluate(
        "(id) => { const p = document.getElementById('cy')._cyreg.cy.getElementById(id).renderedMidpoint(); "
        "return [p.x, p.y]; }",
        edge,
    )
    page.mouse.click(box["x"] + x, box["y"] + y)


def fact(details: Locator, name: str) -> Locator:
    return details.locator("dt", has_text=name).locator("xpath=following-sibling::dd[1]")


def test_route_check_answers_with_the_marking_and_every_reason(page: Page, bundled: Server) -> None:
    page.goto(f"{bundled.url}/?view=network&at=2019-12-01")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.get_by_role("tab", name="Route check").click()
    # the level offered is the originator's own ladder
    page.select_option("#route-from", "JPN")
    expect(page.locator("#route-level option")).to_have_text(
        ["機密 (Kimitsu)", "極秘 (Gokuhi)", "特定秘密 (Tokutei Himitsu (statutory, since 2014-12))", "秘 (Hi)"]
    )
    page.select_option("#route-level", "極秘")
    page.select_option("#route-topic", "dprk.missile.launch")
    page.select_option("#route-to", "KOR")
    page.fill("#route-at", "2019-12-01")
    page.get_by_role("button", name="Check").click()

    answer = page.locator("#route-answer")
    expect(answer).to_have_attribute("data-decision", "direct")
    expect(page.locator("#route-path")).to_have_text("JPN → KOR")
    expect(page.locator("#route-marking")).to_contain_text("군사II급비밀 (JPN 極秘)")
    expect(page.locator("#route-reasons")).to_contain_text("Every rule holds")
    for key, value in [("route_from", "JPN"), ("route_to", "KOR"), ("route_topic", "dprk.missile.launch")]:
        assert f"{key}={value}" in page.url
    assert f"route_level={quote('極秘')}" in page.url

    # 機密 is not in the GSOMIA's table: denied, each reason with its rule and article
    page.select_option("#route-level", "機密")
    page.get_by_role("button", name="Check").click()
    expect(answer).to_have_attribute("data-decision", "deny")
    gsomia = page.locator('#route-reasons tr[data-rule="level"][data-agreement="JPN-KOR-GSOMIA"]')
    expect(gsomia.locator("td.rule")).to_contain_text("Rule 3")
    expect(gsomia.locator("td.article")).to_have_text("Art. 4")
    expect(gsomia).to_contain_text("has no equivalent in the JPN-KOR-GSOMIA Art. 4 table")
    expect(page.locator('#route-reasons tr[data-agreement="TISA"] td.rule')).to_contain_text("Rule 3")
    shot(page, "route-check-deny")

    # the shared address, with a what-if, reopens on the relay through the USA and its consent rule
    shared = re.sub(r"route_level=[^&]*", f"route_level={quote('極秘')}", page.url) + "&drop=jpn-kor-2019-suspension"
    again = page.context.new_page()
    again.goto(shared)
    expect(again.locator("#route-answer")).to_have_attribute("data-decision", "relay")
    expect(again.locator("#route-path")).to_have_text("JPN → USA → KOR")
    expect(again.locator("#route-marking")).to_contain_text("군사II급비밀 (JPN 極秘)")
    consent = again.locator('#route-reasons tr[data-rule="third_party"]')
    expect(consent.locator("td.rule")).to_contain_text("Rule 6")
    expect(consent.locator("td.article")).to_have_text("para. 4")
    ended = again.locator('#route-reasons tr[data-rule="in_force"][data-agreement="JPN-KOR-GSOMIA"]')
    expect(ended.locator("td.article")).to_have_text("Art. 21.3, Art. 21.4")
    expect(again.locator("#route-legs")).to_contain_text("SECRET (JPN 極秘)")
    shot(again, "route-check-relay-whatif")


def test_the_clicked_edge_shows_the_agreements_equivalence_table(page: Page, bundled: Server) -> None:
    page.goto(f"{bundled.url}/?view=network&at=2019-12-01")
    tap_edge(page, "JPN-KOR-GSOMIA")
    details = page.locator("#agreement-details")
    expect(details.locator("#details-title")).to_have_text("JPN-KOR-GSOMIA")
    assert "agreement=JPN-KOR-GSOMIA" in page.url
    table = details.locator("#details-equivalence")
    expect(table.locator("thead th")).to_have_text(["JPN", "KOR", "Common level"])
    expect(table.locator('tr[data-common="SECRET"] td')).to_have_text(["極秘 / 特定秘密", "군사II급비밀"])
    expect(table.locator('tr[data-common="CONFIDENTIAL"] td')).to_have_text(["秘", "군사III급비밀"])
    expect(details).to_contain_text("e.g. 極秘 ↔ 군사II급비밀 ↔ SECRET")
    expect(details.locator("h4", has_text="Equivalence")).to_have_text("Equivalence (Art. 4)")

    # TISA's table runs three ways, and its TOP SECRET row is above its maximum
    page.locator('#network-table tr[data-agreement="TISA"]').get_by_role("button").click()
    tisa = details.locator("#details-equivalence")
    expect(tisa.locator("thead th")).to_have_text(["KOR", "JPN", "USA", "Common level"])
    expect(tisa.locator('tr[data-common="TOP SECRET"]')).to_have_class("above-max")
    expect(tisa.locator('tr[data-common="TOP SECRET"]')).to_contain_text("above the maximum: not releasable")
    expect(tisa.locator('tr[data-common="SECRET"] td')).to_have_text(["군사II급비밀", "極秘 / 特定秘密", "SECRET"])


def test_every_tag_links_to_its_source(page: Page, bundled: Server) -> None:
    page.goto(f"{bundled.url}/?view=network&at=2019-12-01&agreement=JPN-KOR-GSOMIA")
    details = page.locator("#agreement-details")
    expect(fact(details, "Source").locator("a.source-link")).to_have_text(["S1", "S3", "S4", "S5"])
    # the notice says why it is dated 23 August while the decision was announced on the 22nd
    notice = details.locator('#details-events tr[data-event="jpn-kor-2019-notice"]')
    expect(notice).to_contain_text("Dated 23 August, not 22")
    expect(notice).to_contain_text("announced the termination on 2019-08-22")
    expect(notice).to_contain_text("Art. 21.3 counts the written notice")
    expect(notice.locator("a.source-link")).to_have_text(["S4", "S19", "S20", "S21", "S19", "S20", "S21"])

    notice.locator("a.source-link", has_text="S19").first.click()
    expect(page.locator("#tab-sources")).to_have_attribute("aria-selected", "true")
    entry = page.locator("#source-S19")
    expect(entry).to_have_class(re.compile(r"\bcurrent\b"))
    expect(entry).to_be_in_viewport()
    expect(entry.locator(".source-title")).to_have_text(
        'Yonhap, 22 Aug 2019, "S. Korea to scrap military info-sharing pact with Japan"'
    )
    expect(entry.locator(".source-date")).to_have_text("(22 Aug 2019)")
    expect(entry.locator("a.external")).to_have_attribute("href", "https://en.yna.co.kr/view/AEN20190822011700315")
    assert page.url.endswith("#source-S19") and "view=sources" in page.url
    shot(page, "sources-S19")

    # back returns to the agreement; a tag that cites no source id stays plain text
    page.go_back()
    expect(page.locator("#tab-network")).to_have_attribute("aria-selected", "true")
    page.get_by_role("tab", name="Timeline").click()
    page.locator("#panel-timeline details summary").click()
    rows = page.locator("#timeline-table tbody tr")
    expect(rows.first).to_be_visible()
    # every link to a source on the page names an entry of the list
    ids = page.eval_on_selector_all("a.source-link", "els => [...new Set(els.map(e => e.dataset.source))]")
    page.get_by_role("tab", name="Sources").click()
    listed = page.eval_on_selector_all(".source-entry", "els => els.map(e => e.dataset.source)")
    assert len(listed) == 48 and ids and set(ids) <= set(listed)
    expect(page.locator("#source-S15")).to_contain_text("link recorded truncated")


def test_coverage_that_is_not_known_is_not_painted_as_a_gap(page: Page, bundled: Server) -> None:
    page.goto(f"{bundled.url}/?view=coverage&at=2019-12-01&parties=KOR,AUS,JPN&topic=dprk.missile.launch")
    cell = page.locator('#matrix td[data-from="KOR"][data-to="AUS"]')
    expect(cell).to_have_attribute("data-route", "unknown")
    expect(cell).to_have_text("unknown")
    gap = page.locator('#matrix td[data-from="DEU"][data-to="FRA"]')
    expect(gap).to_have_attribute("data-route", "none")
    red = gap.evaluate("el => getComputedStyle(el).backgroundColor")
    assert cell.evaluate("el => getComputedStyle(el).backgroundColor") != red
    assert cell.evaluate("el => getComputedStyle(el).backgroundImage").startswith("repeating-linear-gradient")
    assert cell.locator(".route").evaluate("el => getComputedStyle(el).color") != gap.locator(".route").evaluate(
        "el => getComputedStyle(el).color"
    )
    expect(page.locator("#matrix-notes")).to_contain_text("not a gap")
    # listed apart from the gaps
    expect(page.locator('#gaps-table tr[data-from="KOR"][data-to="AUS"]')).to_have_count(0)
    expect(page.locator('#unknowns-table tr[data-from="KOR"][data-to="AUS"]')).to_have_attribute(
        "data-start", "2014-01-01T00:00+09:00"
    )
    shot(page, "coverage-unknown-kor-aus")

    # the network and its table say "not known", not "not yet in force"
    page.get_by_role("tab", name="Network").click()
    row = page.locator('#network-table tr[data-agreement="KOR-AUS-CMI"]')
    expect(row).to_have_attribute("data-state", "unknown")
    expect(row.locator(".badge")).to_have_text("not known (no entry into force recorded)")
    assert "st-unknown" in page.evaluate(EDGE_CLASSES, "KOR-AUS-CMI")
    assert page.evaluate(EDGE_STYLE, ["KOR-AUS-CMI", "line-color"]) != page.evaluate(
        EDGE_STYLE, ["JPN-UKR-ISA", "line-color"]
    )
    # before its signature (2009-05-30) it is simply not yet in force
    page.fill("#at-input", "2009-01-01")
    page.press("#at-input", "Enter")
    expect(row).to_have_attribute("data-state", "not_yet_in_force")

    # the timeline: a band of its own, and the rows of not-known coverage
    page.goto(f"{bundled.url}/?view=timeline&at=2019-12-01&parties=KOR,AUS")
    rows = page.locator("#timeline-table tbody tr")
    expect(rows.filter(has_text="Not known KOR→AUS")).to_have_count(1)
    expect(rows.filter(has_text="Gaps KOR→AUS")).to_have_count(0)


def test_stepping_by_hour_and_by_event_around_the_suspension(page: Page, bundled: Server) -> None:
    page.goto(f"{bundled.url}/?view=network&at=2019-11-22T17:00%2B09:00")
    row = page.locator('#network-table tr[data-agreement="JPN-KOR-GSOMIA"]')
    cy = page.locator("#cy")
    expect(row).to_have_attribute("data-state", "notice_pending")
    expect(page.locator("#slider-date")).to_have_text("2019-11-22 17:00")
    pending = page.evaluate(EDGE_STYLE, ["JPN-KOR-GSOMIA", "line-color"])

    page.get_by_role("button", name="One hour later").click()
    expect(cy).to_have_attribute("data-at", "2019-11-22T18:00+09:00")
    page.get_by_role("button", name="One hour later").click()
    expect(cy).to_have_attribute("data-at", "2019-11-22T19:00+09:00")
    expect(page.locator("#slider-date")).to_have_text("2019-11-22 19:00")
    expect(page.locator("#at-input")).to_have_value("2019-11-22T19:00+09:00")
    expect(row).to_have_attribute("data-state", "notice_suspended")
    assert "st-notice_suspended" in page.evaluate(EDGE_CLASSES, "JPN-KOR-GSOMIA")
    assert page.evaluate(EDGE_STYLE, ["JPN-KOR-GSOMIA", "line-color"]) != pending
    assert "at=2019-11-22T19%3A00%2B09%3A00" in page.url

    page.get_by_role("button", name="One hour earlier").click()
    expect(cy).to_have_attribute("data-at", "2019-11-22T18:00+09:00")
    # ◀ event: the notice of 23 August; event ▶: the suspension itself, then its derived term end
    page.get_by_role("button", name="Previous event").click()
    expect(cy).to_have_attribute("data-at", "2019-08-23T15:30+09:00")
    expect(row).to_have_attribute("data-state", "notice_pending")
    page.get_by_role("button", name="Next event").click()
    expect(cy).to_have_attribute("data-at", "2019-11-22T18:00+09:00")
    expect(row).to_have_attribute("data-state", "notice_suspended")
    expect(page.locator("#slider-date")).to_have_text("2019-11-22 18:00")


def test_a_refused_whatif_in_the_address_opens_on_the_record(
    page: Page, context: tuple[BrowserContext, Guard], bundled: Server
) -> None:
    _, guard = context
    page.goto(f"{bundled.url}/?view=network&at=2019-11-23T01:00%2B09:00&add=NOPE+termination+2019-11-23")
    expect(page.locator("#scenario-name")).to_have_text("japan-korea-2019")
    problem = page.locator("#problem")
    expect(problem).to_be_visible()
    expect(problem).to_contain_text("refused")
    expect(problem.locator('li[data-param="add"]')).to_contain_text("add=NOPE termination 2019-11-23")
    # the value from the address is isolated (<bdi>): a right-to-left override in it cannot turn
    # the dashboard's own words around it
    expect(problem.locator('li[data-param="add"] bdi')).to_have_text("NOPE termination 2019-11-23")
    expect(problem).to_contain_text("unknown agreement 'NOPE'")
    expect(page.locator("#whatif-banner")).to_be_hidden()
    expect(page.locator('#network-table tr[data-agreement="JPN-KOR-GSOMIA"]')).to_have_attribute(
        "data-state", "notice_suspended"
    )
    assert "add=" not in page.url and "at=2019-11-23T01%3A00%2B09%3A00" in page.url
    expect_refused(guard, "/api/v1/lifecycles", 404)
    # a malformed one is refused before anything is asked
    page.goto(f"{bundled.url}/?view=whatif&add=TISA+explodes+2019-11-23&drop=jpn-kor-2019-suspension")
    expect(page.locator("#problem li")).to_have_count(2)
    expect(page.locator("#problem")).to_contain_text("explodes is not an event kind")
    expect(page.locator("#whatif-items")).to_contain_text("Nothing yet")
    assert "drop=" not in page.url


def test_a_refused_whatif_never_enters_the_state_the_url_or_the_graph(
    page: Page, context: tuple[BrowserContext, Guard], bundled: Server
) -> None:
    _, guard = context
    page.goto(f"{bundled.url}/?view=whatif&at=2019-11-23T01:00%2B09:00")
    page.get_by_role("button", name="The scenario’s question").click()
    expect(page.locator("#whatif-banner")).to_contain_text("drop jpn-kor-2019-suspension")
    applied = page.url

    # a suspension of TISA cannot apply (no notice is pending): refused, nothing changes
    page.select_option("#add-agreement", "TISA")
    page.select_option("#add-kind", "suspension")
    page.fill("#add-at", "2019-11-23")
    page.get_by_role("button", name="Add it").click()
    expect(page.locator("#problem")).to_contain_text("This what-if was refused, so nothing changed")
    expect(page.locator("#problem")).to_contain_text("nothing to suspend")
    assert page.url == applied
    expect(page.locator("#whatif-items li")).to_have_count(1)
    expect(page.locator("#whatif-banner")).not_to_contain_text("TISA")
    page.get_by_role("tab", name="Network").click()
    row = page.locator('#network-table tr[data-agreement="JPN-KOR-GSOMIA"]')
    expect(row).to_have_attribute("data-state", "terminated")  # the accepted what-if, still drawn

    # an address from history with a what-if the API refuses: the graph shows the record, not
    # the previous what-if, and the address is put right
    bad = applied.replace("view=whatif", "view=network").replace("drop=jpn-kor-2019-suspension", "drop=no-such-event")
    page.evaluate("(u) => { history.pushState(null, '', u); dispatchEvent(new PopStateEvent('popstate')); }", bad)
    expect(row).to_have_attribute("data-state", "notice_suspended")
    expect(page.locator("#whatif-banner")).to_be_hidden()
    expect(page.locator("#problem")).to_contain_text("drop=no-such-event")
    assert "drop=" not in page.url
    assert page.evaluate(EDGE_CLASSES, "JPN-KOR-GSOMIA").count("st-notice_suspended") == 1
    expect_refused(guard, "/api/v1/lifecycles", 422)
    expect_refused(guard, "/api/v1/lifecycles", 404)


def test_the_wording_a_reader_relies_on(page: Page, bundled: Server) -> None:
    page.goto(f"{bundled.url}/?view=timeline&at=2019-12-01&parties=JPN,KOR")
    page.locator("#panel-timeline details summary").click()
    gsomia = page.locator(
        "#timeline-table tbody tr", has=page.locator("td:nth-child(2)", has_text=re.compile(r"^JPN-KOR-GSOMIA$"))
    )
    # the first row of the agreement is its entry into force, not the signature of the same day
    expect(gsomia.first).to_contain_text("entry into force — in force from here")
    expect(gsomia.nth(1)).to_contain_text("signature")
    notice = gsomia.filter(has_text="notice of termination by KOR")
    expect(notice).to_contain_text("Dated 23 August, not 22")
    # "provision" is explained where the counts are
    expect(page.locator("#timeline-notes .provision-note")).to_contain_text("Provision: one occasion")
    page.get_by_role("tab", name="Exchange statistics").click()
    note = page.locator("#stats-note .provision-note")
    expect(note).to_contain_text("one occasion on which classified information was provided under the agreement")
    expect(note.locator("a.source-link")).to_have_text(["S32", "S32", "S34"])


def test_the_dashboard_reads_the_records_reports_not_the_exchanges(page: Page, bundled: Server) -> None:
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    page.goto(f"{bundled.url}/?view=timeline&at=2019-12-01")
    expect(page.locator("#panel-timeline")).to_have_attribute("data-rendered", "1")
    paths = [u.split("?")[0].removeprefix(bundled.url) for u in asked]
    assert "/api/v1/record/reports" in paths and "/api/v1/reports" not in paths
