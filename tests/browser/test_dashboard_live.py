"""The statistics view's "Live exchange" section, against a live exchange that has one report.

JPN submits one ``dprk.missile.launch`` report at 極秘; at the real clock the Japan–Korea GSOMIA
is in force, so KOR receives it directly. An auditor pastes a token and sees the exchange's
own counts; the token stays in the tab's session storage, never in the URL or localStorage,
and a token the exchange does not know shows the exchange's 401 detail.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import SCREENSHOTS, Guard, shot
from tests.integration.exchange_support import Exchange, start_exchange

pytestmark = pytest.mark.browser

STATS = "/api/v1/exchange/stats"
TOKEN_KEY = "gsomia.exchange-token"
WRONG_TOKEN = "not-a-token-the-exchange-issued"


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[Exchange]:
    """The bundled scenario served as an exchange (principals for JPN, KOR, USA, an operator and
    an auditor, the parties' keys registered), with one report from JPN."""
    ex = start_exchange(tmp_path_factory.mktemp("live"))
    try:
        created = datetime.now(UTC).isoformat(timespec="seconds")
        r = ex.submit("JPN", report_id="live-1", topic="dprk.missile.launch", level="極秘", created=created)
        assert r.status_code == 201, r.text
        kor = next(x for x in r.json()["recipients"] if x["recipient"] == "KOR")
        assert (kor["outcome"], kor["decision"]) == ("delivered", "direct"), kor
        yield ex
    finally:
        ex.stop()


def session_token(page: Page) -> str | None:
    token: str | None = page.evaluate("(k) => sessionStorage.getItem(k)", TOKEN_KEY)
    return token


def section_shot(page: Page, name: str) -> Path:
    """A screenshot of the live section alone (the full page is long)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.locator("#live").screenshot(path=str(path))
    return path


def drop_expected_refusal(guard: Guard, url: str, status: int) -> None:
    """Chromium logs every 4xx response as a console error ("Failed to load resource"): the one
    the test provoked on purpose is expected, exactly once; any other error still fails."""
    expected = [e for e in guard.errors if f"status of {status}" in e and url in e]
    assert len(expected) == 1, guard.errors
    guard.errors.remove(expected[0])


def test_live_exchange_counts_for_an_auditor(
    page: Page, context: tuple[BrowserContext, Guard], exchange: Exchange
) -> None:
    _, guard = context
    auditor = exchange.tokens["auditor"]
    sent: list[tuple[str, str | None]] = []  # every request's URL and Authorization header
    page.on("request", lambda r: sent.append((r.url, r.headers.get("authorization"))))

    page.goto(f"{exchange.url}/?view=stats")
    live = page.locator("#live")
    expect(live).to_have_attribute("data-token", "none")
    # without a token: what the section needs and why
    intro = page.locator("#live-intro")
    expect(intro).to_be_visible()
    expect(intro).to_contain_text("auditors and operators")
    expect(intro).to_contain_text("never shows payloads")
    expect(page.locator("#live-out")).to_be_hidden()
    expect(page.locator("#live-refresh")).to_be_disabled()
    section_shot(page, "live-exchange-no-token")

    # a token the exchange never issued: its 401 detail, word for word, and nothing kept
    detail = httpx.get(exchange.url + STATS, headers={"Authorization": f"Bearer {WRONG_TOKEN}"}).json()["detail"]
    page.fill("#live-token", WRONG_TOKEN)
    page.press("#live-token", "Enter")
    problem = page.locator("#live-problem")
    expect(problem).to_be_visible()
    expect(page.locator("#live-problem-detail")).to_have_text(detail)
    expect(problem).to_contain_text("HTTP 401")
    expect(live).to_have_attribute("data-state", "refused")
    assert session_token(page) is None
    section_shot(page, "live-exchange-401")
    drop_expected_refusal(guard, exchange.url + STATS, 401)

    # the auditor's token: one report, a delivery JPN→KOR
    page.fill("#live-token", auditor)
    page.get_by_role("button", name="Use token").click()
    expect(live).to_have_attribute("data-state", "ok")
    expect(problem).to_be_hidden()
    expect(page.locator("#live-reports")).to_have_attribute("data-value", "1")
    expect(page.locator("#live-reports .figure-value")).to_have_text("1")
    pair = page.locator('#live-pairs tr[data-from="JPN"][data-to="KOR"]')
    expect(pair).to_have_attribute("data-count", "1")
    expect(page.locator('#live-decisions-table tr[data-code="delivered"]')).to_be_visible()
    expect(page.locator('#live-deliveries-table tr[data-code="ready"]')).to_be_visible()
    expect(page.locator("#live-consents-table")).to_contain_text("No consent requests yet.")
    expect(page.locator("#live-incidents")).to_have_attribute("data-value", "0")
    expect(page.locator("#live-chart canvas")).to_have_count(1)
    expect(page.locator("#live-chart")).to_have_attribute(
        "aria-label", "Deliveries per ordered pair: JPN→KOR 1, JPN→USA 1; the table beside gives the same numbers."
    )
    # the same numbers as the exchange answers the auditor
    stats = exchange.call("auditor", "GET", STATS).json()
    assert stats["reports"] == 1
    assert {"originator": "JPN", "recipient": "KOR", "deliveries": 1} in stats["pairs"]
    expect(page.locator("#live-deliveries")).to_have_attribute("data-value", str(sum(stats["deliveries"].values())))

    # the token: in this tab's session storage, in the Authorization header, nowhere else
    assert auditor not in page.url
    assert session_token(page) == auditor
    assert page.evaluate("() => localStorage.length") == 0
    assert page.locator("#live-token").input_value() == ""
    assert all(auditor not in url for url, _ in sent)
    assert (exchange.url + STATS, f"Bearer {auditor}") in sent
    assert {auth for url, auth in sent if not url.endswith(STATS)} == {None}  # the token goes nowhere else
    page.evaluate("() => window.scrollTo(0, 0)")  # sticky table headers, drawn where they stick otherwise
    shot(page, "stats-live-exchange")
    section_shot(page, "live-exchange-auditor")

    # keyboard: Refresh from the keyboard reads the counts again
    loaded = int(live.get_attribute("data-loaded") or "0")
    page.focus("#live-refresh")
    page.keyboard.press("Enter")
    expect(live).to_have_attribute("data-loaded", str(loaded + 1))
    # auto-refresh is off unless asked for
    expect(page.locator("#live-auto")).not_to_be_checked()

    # a reload in the same tab keeps the token (session storage) and reads the counts at once
    page.reload()
    expect(live).to_have_attribute("data-state", "ok")
    expect(page.locator("#live-reports")).to_have_attribute("data-value", "1")
    assert auditor not in page.url

    # "Forget token" drops it and the counts
    page.get_by_role("button", name="Forget token").click()
    expect(live).to_have_attribute("data-token", "none")
    expect(page.locator("#live-out")).to_be_hidden()
    expect(intro).to_be_visible()
    assert session_token(page) is None


def test_a_party_token_is_refused_with_the_exchange_s_reason(
    page: Page, context: tuple[BrowserContext, Guard], exchange: Exchange
) -> None:
    _, guard = context
    page.goto(f"{exchange.url}/?view=stats")
    page.fill("#live-token", exchange.tokens["JPN"])
    page.press("#live-token", "Enter")
    expect(page.locator("#live")).to_have_attribute("data-state", "refused")
    expect(page.locator("#live-problem-detail")).to_have_text("party JPN (JPN desk) may not read exchange statistics")
    expect(page.locator("#live-problem")).to_contain_text("HTTP 403")
    assert session_token(page) is None
    drop_expected_refusal(guard, exchange.url + STATS, 403)
