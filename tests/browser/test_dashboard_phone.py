"""The dashboard on a phone held upright (390 × 844): nothing wider than the screen, the graph
in the first screenful, tapped details brought into view, tables scrolling inside their card,
and timeline labels that do not collide."""

from __future__ import annotations

import itertools

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PHONE, shot
from tests.browser.test_dashboard_analyst import tap_edge
from tests.integration.conftest import Server

pytestmark = pytest.mark.browser

VIEWS = ["network", "timeline", "coverage", "route", "stats", "whatif", "sources"]
QUERY = "at=2019-12-01&drop=jpn-kor-2019-suspension"

# The text the timeline's canvas draws, with its box on the page: every label of the axes, of
# the bars and of the "shown" line (the legend scrolls inside its own clip and is left out).
DRAWN_TEXT = """() => {
  const chart = document.querySelector('#timeline-chart').gsomiaChart;
  const legendBottom = 30;
  const out = [];
  for (const el of chart.getZr().storage.getDisplayList(true)) {
    if ((el.type !== 'tspan' && el.type !== 'text') || el.invisible || el.ignore || !el.style?.text) continue;
    const r = el.getBoundingRect().clone();
    if (el.transform) r.applyTransform(el.transform);
    if (r.y < legendBottom) continue;
    out.push({ text: String(el.style.text), x: r.x, y: r.y, w: r.width, h: r.height });
  }
  return out;
}"""


def page_width(page: Page) -> int:
    width: int = page.evaluate("document.documentElement.scrollWidth")
    return width


@pytest.mark.parametrize("view", VIEWS)
def test_no_view_is_wider_than_the_phone(phone: Page, bundled: Server, view: str) -> None:
    phone.goto(f"{bundled.url}/?view={view}&{QUERY}")
    panel = phone.locator(f"#panel-{view}")
    expect(panel).to_be_visible()
    if view != "network":
        expect(panel).to_have_attribute("data-rendered", "1")
    else:
        expect(phone.locator("#cy")).to_have_attribute("data-redraws", "1")
    for details in phone.locator(f"#panel-{view} details").all():
        details.evaluate("el => { el.open = true; }")
    assert page_width(phone) <= PHONE["width"]


def test_the_graph_is_above_the_fold_and_tapped_details_come_into_view(phone: Page, bundled: Server) -> None:
    phone.goto(f"{bundled.url}/?view=network&at=2019-11-22T17:00%2B09:00")
    graph = phone.locator("#cy")
    expect(graph).to_have_attribute("data-redraws", "1")
    box = graph.bounding_box()
    assert box is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], box
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    assert box["height"] >= 250  # a graph, not a strip
    shot(phone, "phone-network")

    tap_edge(phone, "JPN-KOR-GSOMIA")
    details = phone.locator("#details-title")
    expect(details).to_have_text("JPN-KOR-GSOMIA")
    expect(details).to_be_in_viewport()
    expect(phone.locator("#agreement-details dd").first).to_be_in_viewport()
    assert page_width(phone) <= PHONE["width"]
    # the hour steppers fit beside each other, and step
    phone.get_by_role("button", name="One hour later").click()
    expect(graph).to_have_attribute("data-at", "2019-11-22T18:00+09:00")
    expect(phone.locator('#network-table tr[data-agreement="JPN-KOR-GSOMIA"]')).to_have_attribute(
        "data-state", "notice_suspended"
    )


def test_tables_scroll_inside_their_card(phone: Page, bundled: Server) -> None:
    phone.goto(f"{bundled.url}/?view=coverage&{QUERY}")
    matrix = phone.locator("#matrix")
    expect(matrix).to_be_visible()
    wrap = phone.locator("#matrix-wrap")
    assert wrap.evaluate("el => getComputedStyle(el).overflowX") == "auto"
    assert wrap.evaluate("el => el.scrollWidth > el.clientWidth")  # 11 × 11 parties: wider than the phone
    wrap_box = wrap.bounding_box()
    assert wrap_box is not None and wrap_box["x"] + wrap_box["width"] <= PHONE["width"]
    # the user can scroll it sideways to the last column
    wrap.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    expect(phone.locator('#matrix td[data-from="AUS"][data-to="USA"]')).to_be_in_viewport()
    assert page_width(phone) <= PHONE["width"]

    phone.get_by_role("tab", name="Route check").click()
    phone.get_by_role("button", name="Check").click()
    reasons = phone.locator("#route-reasons")
    expect(reasons).to_be_attached()
    holder = reasons.locator("xpath=..")
    assert holder.evaluate("el => getComputedStyle(el).overflowX") == "auto"
    assert page_width(phone) <= PHONE["width"]
    shot(phone, "phone-route-check")


def test_timeline_labels_do_not_collide(phone: Page, bundled: Server) -> None:
    phone.goto(f"{bundled.url}/?view=timeline&at=2019-11-22T19:00%2B09:00")
    expect(phone.locator("#panel-timeline")).to_have_attribute("data-rendered", "1")
    # ECharts may draw the markLine's label ("shown") a frame after the series it belongs to:
    # the labels are compared once it is drawn (a label never drawn still fails, on the timeout)
    phone.wait_for_function(f"() => ({DRAWN_TEXT})().some((t) => t.text === 'shown')", timeout=10_000)
    texts = phone.evaluate(DRAWN_TEXT)
    names = {t["text"] for t in texts}
    assert {"JPN-KOR-GSOMIA", "shown", "2019"} <= names and {"19", "11"} <= names, names
    overlaps = [
        (a["text"], b["text"])
        for a, b in itertools.combinations(texts, 2)
        if a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    ]
    assert not overlaps, overlaps
    chart = phone.locator("#timeline-chart").bounding_box()
    assert chart is not None and chart["x"] + chart["width"] <= PHONE["width"]
    shot(phone, "phone-timeline")
