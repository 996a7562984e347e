"""The party node's console in Chromium, against real nodes and a real exchange, at a desk
(1440 × 900) and on a phone (390 × 844).

A Korean liaison officer signs in to KOR's node and reads what Japan sent during the exercise:
a missile track at 極秘, shown as 군사II급비밀 (JPN 極秘) and marked EXERCISE; acknowledges it;
reports a compromise under Art. 17. A delivery whose signature the exchange altered is shown
quarantined, never as a report. A Japanese officer previews a release for each recipient
before JPN's node signs it; after the agreement ends (under the exercise's what-if), JPN's
approver grants the relay through the US. Every page is guarded: no request leaves 127.0.0.1,
no console error, no CSP violation; nothing is wider than the screen.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from tests.browser.conftest import Guard, expect_refused
from tests.browser.console_support import (
    AFTER,
    PASSWORD,
    SIZES,
    World,
    alter_signature,
    fits,
    guarded,
    shot,
    sign_in,
    start_world,
    track,
)
from tests.integration.exchange_support import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ALTERED = "altered-signature"
MOVEMENT = "Two brigades of the 4th Corps moved south of Kaesong overnight; readiness raised."
TRACK_BANNER = "EXERCISE 군사II급비밀 (JPN 極秘)"


@dataclass
class Seeded:
    """What JPN sent KOR before the tests, as KOR's node shows it."""

    track: dict[str, Any]
    movement: dict[str, Any]
    assessment: dict[str, Any]
    altered: dict[str, Any]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[World]:
    w = start_world(tmp_path_factory.mktemp("console"), before_serving=lambda ex: alter_signature(ex, ALTERED, ["KOR"]))
    yield w
    w.stop()


@pytest.fixture(scope="module")
def seeded(world: World) -> Seeded:
    return Seeded(
        track=world.deliver(track()),
        movement=world.deliver(MOVEMENT, topic="dprk.military.movement", level="秘", content_type="text/plain"),
        assessment=world.deliver(
            {"assessment": "solid-fuel ICBM", "confidence": "high", "sources": ["radar", "imagery"]},
            topic="dprk.missile.development",
            rel_to=["JPN", "KOR", "USA"],
        ),
        altered=world.kor.arrived(ALTERED),
    )


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


def filters(page: Page) -> Page:
    """Unfold the inbox's filters if folded (a phone folds them away until one is in use)."""
    folded = page.locator("#more-filters:not([open]) > summary")
    if folded.count():
        folded.click()
    expect(page.locator("#more-filters")).to_have_attribute("open", "")
    return page


def clear_filters(page: Page) -> None:
    """Clear every filter and wait for the inbox drawn again without them: until then the old,
    unfolded filters are still on the page, and a phone's new ones come folded."""
    page.get_by_role("link", name="Clear all filters").click()
    expect(page).to_have_url(re.compile(r"#/inbox$"))
    expect(page.locator("#more-filters > summary")).to_have_text("Filters")
    expect(page.get_by_label("Search in reports")).to_have_value("")


def open_as(page: Page, node_url: str, address: str) -> None:
    page.goto(f"{node_url}/{address}")
    expect(page.locator("body")).to_have_attribute("data-signed-in", "1")


# --- signing in ---------------------------------------------------------------------------------------------------


def test_an_officer_signs_in_after_a_wrong_password_and_signs_out(
    world: World, page: Page, context: tuple[BrowserContext, Guard], size: str
) -> None:
    page.goto(world.kor.url + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    fits(page, size)
    shot(page, "login", size)
    page.get_by_label("User name").fill("duty")
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#bad-credentials")).to_have_text("The user name or the password is wrong.")
    expect(page.get_by_label("Password")).to_have_value("")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    expect(page).to_have_url(re.compile(r"#/inbox$"))
    expect(page.locator("#party")).to_have_text("KOR")
    expect(page.locator("#user")).to_contain_text("duty")
    expect(page.locator("#user .role")).to_have_text("officer")
    # an officer administers nobody: no users, no audit log in the navigation
    nav = page.get_by_role("navigation", name="Sections")
    expect(nav.get_by_role("link")).to_have_text(["Inbox", "Submit", "Consents", "Incidents", "Keys and ledger"])

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#nav")).to_be_empty()
    # the first look (no session yet) and the wrong password were 401s, on purpose
    expect_refused(context[1], "/api/session", 401, times=2)


def test_keyboard_alone_signs_in_and_acknowledges_a_report(
    world: World, page: Page, context: tuple[BrowserContext, Guard], size: str
) -> None:
    item = world.deliver(track(apogee_km=210.0))
    page.goto(world.kor.url + "/")
    expect(page.get_by_label("User name")).to_be_focused()
    page.keyboard.type("duty")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    # the form that had the focus is gone: the inbox's heading takes it (and is announced)
    expect(page.get_by_role("heading", name="Inbox", level=1)).to_be_focused()
    link = page.locator(f'#inbox-list > li[data-delivery="{item["delivery_id"]}"] .item-link')
    tab_to(page, link)
    page.keyboard.press("Enter")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("dprk.missile.launch from JPN")
    expect(heading).to_be_focused()  # the loaded report's heading, not the placeholder's
    tab_to(page, page.get_by_label(re.compile(r"^I attest that the recipients")))
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Acknowledge receipt")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#ack-done")).to_be_visible()
    # on a fresh load the first stop is the skip link; it leads past the navigation to the
    # content's heading and keeps the address (the view) as it was
    address = page.url
    page.reload()
    expect(heading).to_contain_text("dprk.missile.launch from JPN")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(heading).to_be_focused()
    assert page.url == address
    expect_refused(context[1], "/api/session", 401)  # the first look, before signing in


def test_a_revoked_user_is_sent_back_to_sign_in_and_returns_where_they_were(
    world: World, page: Page, context: tuple[BrowserContext, Guard], size: str
) -> None:
    name = f"leaver-{size}"
    chief = world.kor.api("chief")
    made = chief.post("/api/users", json={"username": name, "password": PASSWORD, "role": "officer"})
    assert made.status_code == 201, made.text
    sign_in(context[0], world.kor, name)
    open_as(page, world.kor.url, "#/incidents")
    expect(page.get_by_role("heading", name="Incidents")).to_be_visible()
    expect(page.locator("body")).to_have_attribute("data-live", "open")
    # an administrator revokes the user: the open console signs out by itself, at once
    assert chief.delete(f"/api/users/{name}").status_code == 200
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#login-message")).to_have_text("Your session has ended. Sign in again to continue.")
    expect(page.locator("#nav")).to_be_empty()
    expect_refused(context[1], "/api/status", 401)
    # the stream's reconnection may also have met the ended session before the console closed it
    context[1].errors[:] = [e for e in context[1].errors if not ("status of 401" in e and "/api/events" in e)]
    page.get_by_label("User name").fill("duty")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Incidents")).to_be_visible()
    expect(page).to_have_url(re.compile(r"#/incidents$"))


def tab_to(page: Page, target: Locator, *, limit: int = 60) -> None:
    """Press Tab until ``target`` has the focus (failing after ``limit`` presses)."""
    for _ in range(limit):
        if target.evaluate("el => el === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{target} is not reached with Tab")


# --- the inbox ----------------------------------------------------------------------------------------------------


def test_the_inbox_shows_markings_exercise_and_verification_and_filters(
    world: World, seeded: Seeded, page: Page, context: tuple[BrowserContext, Guard], size: str
) -> None:
    sign_in(context[0], world.kor, "duty")
    open_as(page, world.kor.url, "#/inbox")
    items = page.locator("#inbox-list > li")
    expect(page.locator("#inbox-list")).to_have_attribute("data-loaded", "1")

    tr = page.locator(f'#inbox-list > li[data-delivery="{seeded.track["delivery_id"]}"]')
    expect(tr.locator(".banner")).to_have_text(TRACK_BANNER)
    # each level in its party's language (so each is set in its own CJK face)
    expect(tr.locator('.banner [lang="ko"]')).to_have_text("군사II급비밀")
    expect(tr.locator('.banner [lang="ja"]')).to_have_text("極秘")
    expect(tr.locator(".badge-exercise")).to_have_text("EXERCISE")
    expect(tr.locator(".badge.state")).to_have_text("✓ Verified")
    mv = page.locator(f'#inbox-list > li[data-delivery="{seeded.movement["delivery_id"]}"]')
    expect(mv.locator(".banner")).to_have_text("EXERCISE 군사III급비밀 (JPN 秘)")
    expect(page.locator(f'#inbox-list > li[data-delivery="{seeded.assessment["delivery_id"]}"] .caveats')).to_have_text(
        "Originator’s caveats: REL TO JPN, KOR, USA"
    )
    # everything here was made under the exercise, and every item says so
    expect(items.locator(".badge-exercise")).to_have_count(items.count())
    for banner in items.locator(".banner").all_text_contents():
        assert banner.startswith("EXERCISE "), banner

    # the altered delivery: quarantined, with the reason, never shown as a verified report
    bad = page.locator(f'#inbox-list > li[data-delivery="{seeded.altered["delivery_id"]}"]')
    expect(bad).to_have_class(re.compile(r"\bitem-quarantined\b"))
    expect(bad.locator(".badge.state")).to_have_text("⚠ QUARANTINED")
    expect(bad.locator(".quarantine-reason")).to_have_text(
        "Quarantined: the originator's signature over the report does not verify (signature)"
    )
    expect(bad.locator(".state-verified")).to_have_count(0)
    fits(page, size)
    shot(page, "inbox", size)

    # topic, then level in KOR's own ladder: the address keeps the filters
    filters(page).get_by_label("Topic").select_option("dprk.military.movement")
    expect(page).to_have_url(re.compile(r"#/inbox\?topic=dprk\.military\.movement$"))
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-delivery", seeded.movement["delivery_id"])
    expect(page.locator("#more-filters > summary")).to_have_text("Filters (1 in use)")
    filters(page).get_by_label("Level (KOR ladder)").select_option("군사II급비밀")
    expect(page.locator("#inbox-summary")).to_have_text("No report matches the filters.")
    clear_filters(page)

    # verification state and originator
    filters(page).get_by_label("Verification").select_option("quarantined")
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-state", "quarantined")
    filters(page).get_by_label("Verification").select_option("all")
    expect(page).to_have_url(re.compile(r"#/inbox$"))
    filters(page).get_by_label("Originator").select_option("USA")
    expect(page.locator("#inbox-summary")).to_have_text("No report matches the filters.")
    filters(page).get_by_label("Originator").select_option("JPN")
    expect(items.first).to_be_visible()

    # search in the decrypted content
    page.get_by_label("Search in reports").fill("Kaesong")
    page.get_by_label("Search in reports").press("Enter")
    expect(page).to_have_url(re.compile(r"q=Kaesong"))
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-delivery", seeded.movement["delivery_id"])
    page.get_by_label("Search in reports").fill("solid-fuel")
    page.get_by_role("button", name="Search").click()
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-delivery", seeded.assessment["delivery_id"])

    # dates received (UTC): the exercise's day holds them, the day before nothing
    clear_filters(page)
    filters(page).get_by_label("Received from (UTC)").fill("2019-11-22")
    filters(page).get_by_label("Received to (UTC)").fill("2019-11-22")
    expect(page).to_have_url(re.compile(r"from=2019-11-22&to=2019-11-22"))
    expect(page.locator(f'#inbox-list > li[data-delivery="{seeded.track["delivery_id"]}"]')).to_be_visible()
    filters(page).get_by_label("Received to (UTC)").fill("2019-11-21")
    expect(page.locator("#inbox-summary")).to_have_text("No report matches the filters.")
    fits(page, size)


def test_a_new_report_is_announced_live(
    world: World, seeded: Seeded, page: Page, context: tuple[BrowserContext, Guard], size: str
) -> None:
    sign_in(context[0], world.kor, "duty")
    open_as(page, world.kor.url, "#/inbox")
    expect(page.locator("#inbox-list")).to_have_attribute("data-loaded", "1")
    expect(page.locator("body")).to_have_attribute("data-live", "open")
    sent = world.send(track(apogee_km=620.0))["report"]
    fresh = page.locator("#inbox-fresh")
    expect(fresh).to_contain_text("New reports have arrived.")
    fresh.get_by_role("button", name="Show them").click()
    expect(page.locator("#inbox-list > li").first.locator(".item-meta")).to_contain_text(sent)


# --- a report -----------------------------------------------------------------------------------------------------


def test_a_track_is_shown_as_a_table_and_a_plot(
    world: World, seeded: Seeded, page: Page, context: tuple[BrowserContext, Guard], size: str
) -> None:
    sign_in(context[0], world.kor, "duty")
    open_as(page, world.kor.url, "#/inbox")
    page.locator(f'#inbox-list > li[data-delivery="{seeded.track["delivery_id"]}"] .item-link').click()
    expect(page).to_have_url(re.compile(rf"#/deliveries/{seeded.track['delivery_id']}$"))
    expect(page.locator(".doc-banner-top .banner")).to_have_text(TRACK_BANNER)
    expect(page.locator(".doc-banner-bottom .banner")).to_have_text(TRACK_BANNER)
    expect(page.get_by_role("heading", level=1)).to_have_text("dprk.missile.launch from JPN")
    # the classification stays in sight however far the report is scrolled
    top = page.locator(".doc-banner-top")
    assert top.evaluate("el => getComputedStyle(el).position") == "sticky"
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    box, height = top.bounding_box(), page.evaluate("window.innerHeight")
    assert box is not None and 0 <= box["y"] < height, (box, height)
    page.evaluate("window.scrollTo(0, 0)")

    table = page.locator("#track-table")
    expect(table.locator("thead th")).to_have_text(
        ["Since first", "UTC, 2019-11-22", "Lat (°)", "Lon (°)", "Altitude (km)", "Range (km)", "Speed (m/s)"]
    )
    expect(table.locator("tbody tr")).to_have_count(11)
    expect(table.locator("tbody tr").nth(0).locator("td")).to_have_text(
        ["T+00:00", "00:51:00", "39.500", "125.000", "0.0", "0.0", "1500"]
    )
    expect(table.locator("tbody tr").nth(5).locator("td").nth(4)).to_have_text("400.0")

    plot = page.locator("#track-plot")
    expect(plot.locator("path.line")).to_have_count(2)
    expect(plot.locator("circle.dot-altKm")).to_have_count(11)
    expect(plot.locator("title")).to_contain_text("apogee 400 km at T+05:00")
    heights = plot.locator("circle.dot-altKm").evaluate_all("cs => cs.map((c) => Number(c.getAttribute('cy')))")
    assert heights.index(min(heights)) == 5  # the apogee is the highest point drawn
    ranges = plot.locator("circle.dot-rangeKm").evaluate_all("cs => cs.map((c) => Number(c.getAttribute('cy')))")
    assert ranges == sorted(ranges, reverse=True)  # ground range only grows along this track
    box = plot.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= SIZES[size]["width"]

    verification = page.locator("#card-verification").locator("xpath=..")
    expect(verification).to_contain_text("✓ valid")
    expect(verification).to_contain_text("✓ entry")
    wrap = table.locator("xpath=..")
    assert wrap.evaluate("el => getComputedStyle(el).overflowX") == "auto"
    fits(page, size)
    shot(page, "report-track", size)


def test_json_and_text_payloads_are_shown_as_sent(
    world: World, seeded: Seeded, page: Page, context: tuple[BrowserContext, Guard], size: str
) -> None:
    sign_in(context[0], world.kor, "duty")
    open_as(page, world.kor.url, f"#/deliveries/{seeded.assessment['delivery_id']}")
    expect(page.locator("#payload")).to_have_text(
        '{\n  "assessment": "solid-fuel ICBM",\n  "confidence": "high",\n  "sources": [\n    "radar",\n    "imagery"\n  ]\n}'
    )
    expect(page.locator(".doc-banner-top .caveats")).to_have_text("Originator’s caveats: REL TO JPN, KOR, USA")
    open_as(page, world.kor.url, f"#/deliveries/{seeded.movement['delivery_id']}")
    expect(page.locator("#payload")).to_have_text(MOVEMENT)
    expect(page.locator(".doc-banner-top .banner")).to_have_text("EXERCISE 군사III급비밀 (JPN 秘)")
    fits(page, size)


def test_an_officer_acknowledges_with_the_need_to_know_attestation(
    world: World, page: Page, context: tuple[BrowserContext, Guard], size: str
) -> None:
    item = world.deliver(track(apogee_km=150.0))
    sign_in(context[0], world.kor, "duty")
    open_as(page, world.kor.url, f"#/deliveries/{item['delivery_id']}")
    page.get_by_role("button", name="Acknowledge receipt").click()
    expect(page.locator(".ack-form .problem")).to_have_text(
        "Tick the attestation first: the acknowledgement states need-to-know."
    )
    page.get_by_label(re.compile(r"^I attest that the recipients")).check()
    page.get_by_role("button", name="Acknowledge receipt").click()
    expect(page.locator("#ack-done")).to_have_text("✓ Receipt acknowledged; the exchange has recorded it.")
    expect(page.locator("#acks")).to_contain_text("duty")
    expect(page.locator(".view-head .badge-ack")).to_have_text("Acknowledged")
    # the node recorded it, and says so in the inbox too
    assert [i["acknowledged"] for i in world.kor.inbox() if i["delivery_id"] == item["delivery_id"]] == [True]
    fits(page, size)


def test_an_officer_files_an_incident_and_follows_it_up(
    world: World, page: Page, context: tuple[BrowserContext, Guard], size: str
) -> None:
    item = world.deliver(f"Launch warning ({size}), copy 3 of 5.", content_type="text/plain")
    sign_in(context[0], world.kor, "duty")
    open_as(page, world.kor.url, f"#/deliveries/{item['delivery_id']}")
    page.get_by_text("File an incident for this report").click()
    page.get_by_role("button", name="File the incident").click()
    expect(page.locator("#incident-form .problem")).to_have_text(
        "Choose loss or compromise and describe what happened."
    )
    page.get_by_label(re.compile(r"^Compromise")).check()
    description = f"Copy 3 was left on an unattended printer in room 402 for about 40 minutes ({size})."
    page.get_by_label("Description").fill(description)
    page.get_by_role("button", name="File the incident").click()
    incident = page.locator("li.incident")
    expect(incident).to_have_count(1)
    expect(incident.locator(".badge")).to_have_text("Compromise")
    expect(incident.locator(".incident-description")).to_have_text(description)

    incident.get_by_text("Add a follow-up").click()
    incident.get_by_label("Result of the investigation").fill("The printer's room was locked; no visitor log entry.")
    incident.get_by_label("Measures taken").fill("Copy destroyed; printing moved to the secure room.")
    incident.get_by_role("button", name="Add the follow-up").click()
    expect(page.locator("li.incident .updates")).to_contain_text(
        "Measures: Copy destroyed; printing moved to the secure room."
    )
    fits(page, size)
    shot(page, "incident", size)

    # on the incidents page, linked to its report; and the originator's node was told (Art. 17)
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Incidents").click()
    filed = page.locator(f'li.incident:has(a[href="#/deliveries/{item["delivery_id"]}"])')
    expect(filed.locator(".incident-description")).to_have_text(description)
    # set apart as the reporter's words, so that no line of them passes for a follow-up
    expect(filed.locator(".incident-said")).to_have_text("Description, as KOR filed it:")
    assert filed.locator(".incident-description").evaluate("el => el.tagName") == "BLOCKQUOTE"
    wait_for(
        lambda: any(
            i.get("description") == description for i in world.jpn.api("duty").get("/api/incidents").json()["items"]
        ),
        timeout=60,
        what="JPN's node to learn of the incident",
    )
    fits(page, size)


def test_a_quarantined_delivery_is_withheld_and_only_an_approver_inspects_it(
    world: World, seeded: Seeded, page: Page, context: tuple[BrowserContext, Guard], size: str
) -> None:
    address = f"#/deliveries/{seeded.altered['delivery_id']}"
    sign_in(context[0], world.kor, "duty")
    open_as(page, world.kor.url, address)
    alert = page.locator("#quarantine-alert")
    expect(alert.get_by_role("heading")).to_have_text("Quarantined: do not use this report")
    expect(page.locator("#quarantine-reason")).to_have_text(
        "Reason: the originator's signature over the report does not verify (signature)"
    )
    expect(page.locator(".view-head .badge.state")).to_have_text("⚠ QUARANTINED")
    expect(page.locator(".doc-banner-top")).to_have_class(re.compile(r"\bstate-quarantined\b"))
    expect(page.locator("#payload-withheld")).to_have_text("Withheld: the report is quarantined.")
    expect(page.locator("#payload")).to_have_count(0)
    expect(page.get_by_role("button", name="Acknowledge receipt")).to_have_count(0)
    expect(page.get_by_role("button", name="Inspect the quarantined content")).to_have_count(0)
    expect(page.locator("#card-verification").locator("xpath=..")).to_contain_text("✗ failed")
    fits(page, size)
    shot(page, "quarantined", size)

    sign_in(context[0], world.kor, "approver")
    page.reload()
    page.get_by_role("button", name="Inspect the quarantined content").click()
    expect(page.locator(".unverified-note")).to_have_text("Unverified content: shown for inspection only.")
    expect(page.locator(".payload-unverified")).to_be_visible()
    expect(page.locator("#quarantine-alert")).to_be_visible()  # still quarantined, and still said


# --- keys, users, audit -------------------------------------------------------------------------------------------


def test_an_administrator_rotates_the_keys_and_the_old_ones_are_kept(
    world: World, seeded: Seeded, page: Page, context: tuple[BrowserContext, Guard], size: str
) -> None:
    sign_in(context[0], world.kor, "chief")
    open_as(page, world.kor.url, "#/keys")
    before = page.locator("#key-current").inner_text()
    page.get_by_role("button", name="Rotate the keys").click()
    dialog = page.get_by_role("dialog", name="Rotate the keys?")
    expect(dialog).to_contain_text("The current keys are kept")
    dialog.get_by_role("button", name="Rotate").click()
    expect(page.locator("#key-current")).not_to_have_text(before)
    retired = page.locator(f'#key-history tr[data-fingerprint="{before}"]')
    expect(retired.locator("td").nth(1)).to_have_text("retired: verifies what it signed, opens what was sent to it")
    expect(page.locator("#ledger-ok")).to_have_text("✓ No fork or rollback seen.")
    fits(page, size)
    shot(page, "keys", size)
    # what came before still opens, and what comes after is sent to the new keys and verifies
    old = world.kor.api("chief").get(f"/api/deliveries/{seeded.track['delivery_id']}").json()
    assert old["payload"]["json"] == track()
    assert world.deliver(track(apogee_km=90.0))["state"] == "verified"


def test_the_status_line_and_the_keys_view_show_missing_keys_a_rewind_and_the_cot_counters(
    world: World, page: Page, context: tuple[BrowserContext, Guard], size: str
) -> None:
    # What `gsomia node status` says of the keys, the exchange and the CoT bridge, the console
    # says too: the node's own status, with those fields as a node in trouble gives them, read
    # and streamed (the live stream's first event is the whole status).
    lost = "7a0b6dbf406c9afaeac17cb9441d21d5973d2376ba168942213243e5bfb6e899"
    status = world.kor.api("duty").get("/api/status").json()
    status["keys"] |= {"registered": False, "pending": lost, "missing": {"fingerprint": lost}}
    status["exchange"] |= {
        "reachable": False,
        "error": "connection refused",
        "rewound": {"at": "2019-11-22T01:00:00Z", "from": 42, "why": "the exchange's inbox ends before 42"},
    }
    status["cot"] = {
        "in": {"received": 12, "sent": 10, "unmapped": 1, "malformed": 0, "refused": 0, "dropped": 1},
        "out": {"sent": 9, "failed": 0, "dropped": 0},
    }
    stream = f"retry: 600000\nevent: status\ndata: {json.dumps(status)}\n\n"
    page.route("**/api/status", lambda route: route.fulfill(json=status))
    page.route("**/api/events", lambda route: route.fulfill(body=stream, content_type="text/event-stream"))
    sign_in(context[0], world.kor, "duty")
    open_as(page, world.kor.url, "#/keys")
    line = page.locator("#status-line")
    expect(line.locator("#keys-missing")).to_contain_text("KEYS MISSING: the exchange’s current key set 7a0b6dbf")
    expect(line.locator("#keys-state")).to_have_text(
        "keys NOT registered with the exchange (set 7a0b6dbf406c9afa… pending)"
    )
    expect(line.locator("#exchange-error")).to_have_text("last error: connection refused")
    expect(line.locator("#exchange-rewound")).to_have_text(
        "inbox read again from the start at 2019-11-22 01:00:00 UTC (cursor was 42)"
    )
    expect(line.locator("#cot-counts")).to_have_text(
        "CoT in 12 received · 10 sent · 1 unmapped · 1 dropped; out 9 sent"
    )
    expect(page.locator("#keys-missing-detail")).to_contain_text(lost)
    expect(page.locator("#exchange-error-detail")).to_have_text("connection refused")
    expect(page.locator("#cot-detail")).to_contain_text("CoT in 12 received")
    fits(page, size)


def test_an_administrator_adds_and_revokes_a_user_and_reads_the_audit_log(
    world: World, page: Page, context: tuple[BrowserContext, Guard], size: str
) -> None:
    name = f"watch-{size}"
    sign_in(context[0], world.kor, "chief")
    open_as(page, world.kor.url, "#/users")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Initial password").fill(PASSWORD)
    page.get_by_label("Role").select_option("approver")
    page.get_by_role("button", name="Add the user").click()
    row = page.locator(f'#users-table tr[data-user="{name}"]')
    expect(row.locator("td")).to_have_text([name, "approver", re.compile(r"UTC$"), "active", "Revoke"])
    row.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(row.locator("td").nth(3)).to_have_text(re.compile(r"^revoked "))
    fits(page, size)

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Audit log").click()
    log = page.locator("#audit-table tbody")
    expect(log.locator('tr[data-action="revoke_user"]').first.locator("td")).to_contain_text(
        ["chief", "revoke_user", name]
    )
    expect(log.locator('tr[data-action="add_user"]').first.locator("td").nth(2)).to_have_text("add_user")
    fits(page, size)
    shot(page, "audit", size)


# --- sending ------------------------------------------------------------------------------------------------------


def test_an_officer_previews_each_recipient_before_the_node_signs(
    world: World, page: Page, context: tuple[BrowserContext, Guard], size: str
) -> None:
    sign_in(context[0], world.jpn, "duty")
    open_as(page, world.jpn.url, "#/submit")
    page.get_by_label("Topic").select_option("dprk.missile.launch")
    page.get_by_label("Level (JPN ladder)").select_option("極秘")
    for party in ("KOR", "USA", "UKR"):
        page.locator("#submit-recipients").get_by_label(party, exact=True).check()
    page.get_by_label("Content type").select_option("text/plain")
    content = f"Launch detected 09:51 KST from Sinpo; impact in the sea east of Hamgyong ({size})."
    page.get_by_label("Content", exact=True).fill(content)
    page.get_by_role("button", name="Preview the release").click()

    rows = page.locator("#preview-table tbody tr")
    expect(rows).to_have_count(3)
    kor = page.locator('#preview-table tr[data-party="KOR"]')
    expect(kor.locator("td").nth(0)).to_have_text("Direct")
    expect(kor.locator(".banner")).to_have_text("군사II급비밀 (JPN 極秘)")
    ukr = page.locator('#preview-table tr[data-party="UKR"]')
    expect(ukr).to_have_attribute("data-decision", "deny")
    expect(ukr.locator(".reasons")).to_contain_text("JPN-UKR-ISA is not yet in force")
    expect(page.locator(".preview .warning")).to_have_text(
        "1 recipient would be denied: the report would not reach it."
    )
    fits(page, size)
    shot(page, "submit-preview", size)

    # any change withdraws the preview: nothing is signed on a preview of another report
    page.get_by_label("Content", exact=True).fill(content + " Updated.")
    expect(page.locator("#preview-stale")).to_be_visible()
    expect(page.get_by_role("button", name="Sign and submit")).to_have_count(0)
    page.get_by_role("button", name="Preview the release").click()
    page.get_by_role("button", name="Sign and submit").click()
    dialog = page.get_by_role("dialog", name="Sign and submit?")
    expect(dialog).to_contain_text("for KOR, UKR, USA")
    dialog.get_by_role("button", name="Sign and submit").click()

    result = page.locator("#result-table")
    expect(result.locator('tr[data-party="KOR"]')).to_have_attribute("data-outcome", "delivered")
    expect(result.locator('tr[data-party="UKR"]')).to_have_attribute("data-outcome", "denied")
    heading = page.locator("#result-title").inner_text()
    report = heading.removeprefix("Submitted: report ")
    item = world.kor.arrived(report, state="verified")
    payload = world.kor.api("duty").get(f"/api/deliveries/{item['delivery_id']}").json()["payload"]
    assert payload["text"] == content + " Updated."
    fits(page, size)


# --- consent (after the agreement ended under the exercise's what-if) -------------------------------------------------


def test_an_approver_grants_the_relay_through_the_us(
    world: World, page: Page, context: tuple[BrowserContext, Guard], size: str
) -> None:
    world.advance(AFTER)
    sent = world.send(f"Track of the 2019-12-01 launch ({size}).", content_type="text/plain")
    assert [r["outcome"] for r in sent["recipients"]] == ["pending_consent"]
    report = sent["report"]

    # an officer sees the request but may not answer it
    sign_in(context[0], world.jpn, "duty")
    open_as(page, world.jpn.url, "#/consents")
    request = page.locator("li.request", has_text=report)
    expect(request.get_by_role("heading")).to_have_text(f"Relay report {report} to KOR via USA")
    expect(request.get_by_role("button", name="Grant")).to_have_count(0)
    expect(page.get_by_text("Only an approver may grant or refuse a request.")).to_be_visible()

    sign_in(context[0], world.jpn, "approver")
    page.reload()
    request = page.locator("li.request", has_text=report)
    request.get_by_role("button", name="Grant").click()
    expect(request.locator(".problem")).to_have_text("Give the reason for your answer: it goes on the record.")
    reason = "TISA relay: launch warning for the Republic of Korea."
    request.get_by_label("Reason (recorded in the ledger)").fill(reason)
    fits(page, size)
    shot(page, "consents", size)
    request.get_by_role("button", name="Grant").click()
    page.get_by_role("dialog", name="Grant this relay?").get_by_role("button", name="Grant").click()
    answered = page.locator("#consents-table tr", has_text=report)
    expect(answered.locator("td")).to_have_text([report, "KOR", "USA", "Granted", re.compile(r"UTC$"), reason])
    expect(page.locator("li.request", has_text=report)).to_have_count(0)

    item = world.kor.arrived(report, state="verified")
    assert (item["via"], item["banner"]) == ("USA", TRACK_BANNER)
    fits(page, size)


def test_an_approver_refuses_a_relay_and_gives_a_standing_consent(
    world: World, page: Page, context: tuple[BrowserContext, Guard], size: str
) -> None:
    world.advance(AFTER)
    sent = world.send(f"Launcher sighted near Sunan ({size}).", content_type="text/plain")
    assert [r["outcome"] for r in sent["recipients"]] == ["pending_consent"]
    refused = sent["report"]
    sign_in(context[0], world.jpn, "approver")
    open_as(page, world.jpn.url, "#/consents")
    request = page.locator("li.request", has_text=refused)
    reason = "Source protection: not for onward relay."
    request.get_by_label("Reason (recorded in the ledger)").fill(reason)
    request.get_by_role("button", name="Refuse").click()
    dialog = page.get_by_role("dialog", name="Refuse this relay?")
    expect(dialog).to_contain_text(f"Report {refused} will not reach KOR through USA.")
    dialog.get_by_role("button", name="Refuse").click()
    answered = page.locator("#consents-table tr", has_text=refused)
    expect(answered.locator("td")).to_have_text([refused, "KOR", "USA", "Refused", re.compile(r"UTC$"), reason])
    expect(page.locator("li.request", has_text=refused)).to_have_count(0)

    # a standing consent to relay missile reports to KOR through the US: no request any more
    note = f"TISA launch warnings ({size})"
    page.locator("#standing .standing-details > summary").click()
    page.get_by_label("Topic or prefix").select_option("dprk.missile")
    page.get_by_label("Recipient").select_option("KOR")
    page.get_by_label("Hub").select_option("USA")
    page.get_by_label("Valid until (UTC date)").fill("2020-11-22")
    page.get_by_label("Note").fill(note)
    page.get_by_role("button", name="Give the standing consent").click()
    standing = page.locator("#standing-table tbody tr", has_text=note)
    expect(standing.locator("td")).to_have_text(
        [
            "dprk.missile",
            "KOR",
            "USA",
            re.compile(r"^2019-12-01 .*UTC$"),
            re.compile(r"^2020-11-23 .*UTC$"),
            "in effect",
            note,
            "Revoke",
        ]
    )
    fits(page, size)
    shot(page, "consents-standing", size)
    relayed = world.send(f"Track of a second launch ({size}).", content_type="text/plain")
    assert [r["outcome"] for r in relayed["recipients"]] == ["relayed"]
    item = world.kor.arrived(relayed["report"], state="verified")
    assert item["via"] == "USA"

    # revoked, relays are asked for one by one again
    standing.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog", name="Revoke this standing consent?").get_by_role("button", name="Revoke").click()
    expect(standing.locator("td").nth(5)).to_have_text(re.compile(r"^revoked "))
    again = world.send(f"Track of a third launch ({size}).", content_type="text/plain")
    assert [r["outcome"] for r in again["recipients"]] == ["pending_consent"]
    expect(page.locator("li.request", has_text=again["report"])).to_be_visible()  # arrives live
