"""The what-if tab over the exchange's own traffic, against a live exchange in exercise mode.

The exchange runs on an exercise clock at 10:00 Seoul time on 5 December 2019, after the date
Korea's notice would have ended the Japan–Korea GSOMIA had it not been suspended. JPN sends
KOR a missile track (TISA covers it: relayed through the United States without the GSOMIA) and
a military-movement report (outside TISA's scope: stopped). An auditor replays that traffic
under "drop the suspension" from the what-if tab, on a desktop and on a phone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import PHONE, SCREENSHOTS, Guard, expect_refused, shot
from tests.browser.test_dashboard_phone import page_width
from tests.integration.exchange_support import Exchange, start_exchange

pytestmark = pytest.mark.browser

TRAFFIC = "/api/v1/whatif/traffic"
DROP = "jpn-kor-2019-suspension"
TOKEN_KEY = "gsomia.exchange-token"


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[Exchange]:
    ex = start_exchange(tmp_path_factory.mktemp("traffic"), exercise_clock="2019-12-05T01:00:00Z")
    try:
        created = "2019-12-05T09:58:00+09:00"
        for rid, topic in (("track-1", "dprk.missile.launch"), ("moves-1", "dprk.military.movement")):
            r = ex.submit("JPN", report_id=rid, topic=topic, recipients=["KOR"], created=created)
            assert r.status_code == 201, r.text
            assert r.json()["recipients"][0]["decision"] == "direct", r.text  # the suspension kept it in force
        yield ex
    finally:
        ex.stop()


def api_group(api: dict[str, Any], change: str) -> dict[str, Any]:
    group: dict[str, Any] = next(g for g in api["groups"] if g["change"] == change)
    return group


def section_shot(page: Page, name: str) -> None:
    """A screenshot of the traffic section alone (the full page is long)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#whatif-traffic").screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def set_token(page: Page, token: str) -> None:
    """As an auditor does: paste the token under Exchange statistics, Live exchange."""
    page.get_by_role("tab", name="Exchange statistics").click()
    page.fill("#live-token", token)
    page.get_by_role("button", name="Use token").click()


def test_an_auditor_replays_the_traffic_under_the_whatif(
    page: Page, context: tuple[BrowserContext, Guard], exchange: Exchange
) -> None:
    page.goto(f"{exchange.url}/?view=whatif&drop={DROP}")
    section = page.locator("#whatif-traffic")
    expect(section).to_be_visible()
    # without a token: what it needs, and no request for the traffic
    expect(section).to_have_attribute("data-token", "none")
    expect(page.locator("#traffic-intro")).to_contain_text("auditor’s or operator’s token")
    expect(page.locator("#traffic-run")).to_be_disabled()

    set_token(page, exchange.tokens["auditor"])
    expect(page.locator("#live")).to_have_attribute("data-state", "ok")
    page.get_by_role("tab", name="What-if").click()
    expect(section).to_have_attribute("data-token", "set")
    with page.expect_request(lambda r: TRAFFIC in r.url) as sent:
        page.locator("#traffic-run").click()
    assert sent.value.headers["authorization"] == f"Bearer {exchange.tokens['auditor']}"
    assert exchange.tokens["auditor"] not in sent.value.url and exchange.tokens["auditor"] not in page.url
    expect(section).to_have_attribute("data-state", "ok")

    # the same groups the API gives the auditor, every report id whole
    api = exchange.call("auditor", "GET", TRAFFIC, params={"drop": DROP}).json()
    assert api["changed"] == {"stopped": 1, "rerouted": 1, "changed": 0, "released": 0}, api
    expect(page.locator("#traffic-summary")).to_have_attribute("data-decisions", str(api["decisions"]))
    expect(page.locator('#traffic-summary [data-kind="stopped"]')).to_have_text("1 stopped")
    expect(page.locator('#traffic-summary [data-kind="rerouted"]')).to_have_text("1 rerouted")
    rows = page.locator("#traffic-groups tbody tr")
    expect(rows).to_have_count(len(api["groups"]))
    rerouted = page.locator('#traffic-groups tr[data-topic="dprk.missile.launch"]')
    expect(rerouted).to_have_attribute("data-change", "rerouted")
    expect(rerouted.locator("td.before")).to_have_text("direct")
    expect(rerouted.locator("td.after")).to_contain_text("relay via USA (+4 h")
    expect(rerouted.locator("td.ids code")).to_have_text(["JPN/track-1"])
    stopped = page.locator('#traffic-groups tr[data-topic="dprk.military.movement"]')
    expect(stopped).to_have_attribute("data-change", "stopped")
    expect(stopped.locator("td.after")).to_have_text("none")
    expect(stopped.locator("td.ids code")).to_have_text(["JPN/moves-1"])
    expect(stopped.locator("td").nth(6)).to_have_text(
        api_group(api, "stopped")["first"]
    )  # decided at the exchange clock
    shot(page, "whatif-traffic")
    section_shot(page, "whatif-traffic-section")

    # another what-if: the replay shown belonged to the previous one, so it goes
    page.goto(f"{exchange.url}/?view=whatif&add=JPN-KOR-GSOMIA%20termination%202019-12-01")
    expect(section).to_have_attribute("data-state", "idle")
    expect(page.locator("#traffic-groups")).to_have_count(0)


def test_a_party_token_gets_the_exchange_s_refusal(
    page: Page, context: tuple[BrowserContext, Guard], exchange: Exchange
) -> None:
    _, guard = context
    page.goto(f"{exchange.url}/?view=whatif&drop={DROP}")
    page.evaluate("([k, v]) => sessionStorage.setItem(k, v)", [TOKEN_KEY, exchange.tokens["JPN"]])
    page.reload()
    page.locator("#traffic-run").click()
    expect(page.locator("#whatif-traffic")).to_have_attribute("data-state", "refused")
    detail = exchange.call("JPN", "GET", TRAFFIC, params={"drop": DROP}).json()["detail"]
    expect(page.locator("#traffic-problem-detail")).to_have_text(detail)
    expect(page.locator("#traffic-problem")).to_contain_text("HTTP 403")
    expect_refused(guard, TRAFFIC, 403)


def test_the_traffic_table_scrolls_inside_its_card_on_a_phone(
    phone: Page, phone_context: tuple[BrowserContext, Guard], exchange: Exchange
) -> None:
    phone.goto(f"{exchange.url}/?view=whatif&drop={DROP}")
    phone.evaluate("([k, v]) => sessionStorage.setItem(k, v)", [TOKEN_KEY, exchange.tokens["operator"]])
    phone.reload()
    phone.locator("#traffic-run").click()
    expect(phone.locator("#whatif-traffic")).to_have_attribute("data-state", "ok")
    expect(phone.locator("#traffic-groups tbody tr")).to_have_count(2)
    assert page_width(phone) <= PHONE["width"]
    wrap = phone.locator("#whatif-traffic .table-wrap")
    box = wrap.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    # the table is wider than the phone and scrolls inside its wrapper, ids whole
    assert wrap.evaluate("el => el.scrollWidth > el.clientWidth")
    expect(phone.locator('#traffic-groups tr[data-change="stopped"] td.ids code')).to_have_text(["JPN/moves-1"])
    shot(phone, "whatif-traffic-phone")
    section_shot(phone, "whatif-traffic-section-phone")
