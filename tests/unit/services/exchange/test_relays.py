"""Relays and the originator's consent (DESIGN §3 rule 6; TISA para. 4): had Korea's notice
taken effect, a Japanese track reaches Korea only through the US, and only once Japan consents;
a refusal or an unanswered request releases nothing, and a grant is decided again at its own
instant."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from gsomia.bootstrap import build
from gsomia.errors import Conflict, InvalidInput, NotPermitted, UnknownEntity
from gsomia.services.exchange.operator import EventSpec
from tests.harness import DEC1, Harness, TestClock, start_terminated

TRACK = b'{"launch": "2019-11-28T16:59+09:00", "track": [[39.7, 127.1, 0], [40.9, 131.8, 380]]}'


def pending(h: Harness, **fields: object) -> tuple[str, str]:
    """Submit a JPN track to KOR (a relay via the US); return the report id and its consent id."""
    result = h.submit("JPN", recipients=["KOR"], **fields)
    kor = h.decision(result, "KOR")
    assert (kor["decision"], kor["outcome"], kor["via"]) == ("relay", "pending_consent", "USA")
    return result.body["report"], kor["consent"]["id"]


def outcome_of(h: Harness, report_id: str, party: str = "JPN", recipient: str = "KOR") -> str:
    result = h.exchange.submissions.result(h.principals[party], report_id)
    (found,) = [r["outcome"] for r in result["recipients"] if r["recipient"] == recipient]
    return str(found)


def test_a_relay_waits_for_consent_then_reaches_the_hub_and_the_recipient(terminated: Harness) -> None:
    report, consent = pending(terminated, payload=TRACK)
    assert terminated.deliveries("KOR") == [] and terminated.deliveries("USA") == []
    (request,) = terminated.consent_requests("JPN")
    assert (request["id"], request["recipient"], request["hub"], request["arrangement"], request["level"]) == (
        consent,
        "KOR",
        "USA",
        "TISA",
        "極秘",
    )
    assert request["expires_at"] == "2019-12-04T01:00+00:00"  # 72 hours of exchange time
    (listed,) = terminated.exchange.consents.consents(terminated.principals["JPN"])
    assert (listed["id"], listed["state"], listed["topic"]) == (consent, "pending", "dprk.missile.launch")

    answer = terminated.exchange.consents.answer(terminated.principals["JPN"], consent, grant=True)
    assert (answer["state"], answer["outcome"]["relayed"], answer["outcome"]["delay"]) == ("granted", True, "PT4H")
    (hub,) = terminated.deliveries("USA", report)
    (onward,) = terminated.deliveries("KOR", report)
    assert sorted(answer["outcome"]["deliveries"]) == sorted([hub["id"], onward["id"]])
    # an exercise delivery says so in its banner
    assert (hub["purpose"], hub["via"], hub["marking"]["banner"]) == ("relay_hub", None, "EXERCISE SECRET (JPN 極秘)")
    assert (onward["purpose"], onward["via"], onward["marking"]["banner"]) == (
        "relay_onward",
        "USA",
        "EXERCISE 군사II급비밀 (JPN 極秘)",
    )
    assert terminated.open("KOR", onward["id"]) == TRACK
    assert terminated.open("USA", hub["id"]) == TRACK
    assert outcome_of(terminated, report) == "relayed"
    entry = terminated.app.ledger.entry(answer["resolution_leaf_index"])["entry"]
    assert (entry["type"], entry["action"], entry["consent"], entry["by"]) == (
        "consent",
        "granted",
        consent,
        terminated.principals["JPN"].id,
    )
    decisions = [
        e["entry"]
        for e in terminated.app.ledger.entries(0, 100)
        if e["entry"]["type"] == "decision" and e["entry"].get("consent") == consent
    ]
    assert [d["outcome"] for d in decisions] == ["relayed"]


def test_korean_reports_need_koreas_consent_not_japans(terminated: Harness) -> None:
    result = terminated.submit("KOR", recipients=["JPN"], level="군사II급비밀")
    jpn = terminated.decision(result, "JPN")
    assert (jpn["outcome"], jpn["via"]) == ("pending_consent", "USA")
    assert terminated.consent_requests("JPN") == []
    (request,) = terminated.consent_requests("KOR")
    assert request["id"] == jpn["consent"]["id"]
    with pytest.raises(UnknownEntity):
        terminated.exchange.consents.answer(terminated.principals["JPN"], request["id"], grant=True)


def test_a_refusal_releases_nothing_and_is_final(terminated: Harness) -> None:
    report, consent = pending(terminated)
    answer = terminated.exchange.consents.answer(
        terminated.principals["JPN"], consent, grant=False, reason="source protection"
    )
    assert (answer["state"], answer["reason"], answer["outcome"]["relayed"]) == ("refused", "source protection", False)
    assert terminated.deliveries("KOR") == [] and terminated.deliveries("USA") == []
    assert outcome_of(terminated, report) == "consent_refused"
    entry = terminated.app.ledger.entry(answer["resolution_leaf_index"])["entry"]
    assert entry["action"] == "refused" and entry["reason_commitment"]
    assert "source protection" not in str(entry)  # a salted commitment to the reason, never the text
    written = terminated.written()
    with pytest.raises(Conflict, match="already refused"):
        terminated.exchange.consents.answer(terminated.principals["JPN"], consent, grant=True)
    assert terminated.written() == written
    assert terminated.exchange.consents.consents(terminated.principals["JPN"]) == []
    (refused,) = terminated.exchange.consents.consents(terminated.principals["JPN"], state="refused")
    assert refused["id"] == consent


def test_a_granted_consent_cannot_be_answered_again(terminated: Harness) -> None:
    _, consent = pending(terminated)
    terminated.exchange.consents.answer(terminated.principals["JPN"], consent, grant=True)
    with pytest.raises(Conflict, match="already granted"):
        terminated.exchange.consents.answer(terminated.principals["JPN"], consent, grant=False)
    assert len(terminated.deliveries("KOR")) == 1


def test_an_unanswered_request_expires_when_the_clock_passes_its_ttl(terminated: Harness) -> None:
    report, consent = pending(terminated)
    consents = terminated.exchange.consents
    terminated.clock.advance(timedelta(hours=72) - timedelta(seconds=1))
    assert consents.expire_due() == 0
    terminated.clock.advance(timedelta(seconds=1))
    assert consents.expire_due() == 1
    assert consents.expire_due() == 0  # once
    (expired,) = consents.consents(terminated.principals["JPN"], state="expired")
    assert (expired["id"], expired["reason"], expired["resolved_at"]) == (
        consent,
        "no answer within P3D",
        "2019-12-04T01:00+00:00",
    )
    assert expired["outcome"] == {
        "relayed": False,
        "reasons": [{"rule": "third_party", "message": "no answer within P3D"}],
    }
    assert outcome_of(terminated, report) == "consent_expired"
    entry = terminated.app.ledger.entry(expired["resolution_leaf_index"])["entry"]
    assert (entry["type"], entry["action"], entry["at"]) == ("consent", "expired", "2019-12-04T01:00+00:00")
    with pytest.raises(Conflict, match="already expired"):
        consents.answer(terminated.principals["JPN"], consent, grant=True)
    assert terminated.deliveries("KOR") == [] and terminated.deliveries("USA") == []


def test_a_late_answer_expires_the_request_instead_of_releasing(terminated: Harness) -> None:
    report, consent = pending(terminated)
    terminated.clock.advance(timedelta(hours=80))
    with pytest.raises(Conflict, match=f"consent request {consent} expired at 2019-12-04T01:00"):
        terminated.exchange.consents.answer(terminated.principals["JPN"], consent, grant=True)
    assert terminated.deliveries("KOR") == []
    assert outcome_of(terminated, report) == "consent_expired"


def test_listing_consents_expires_the_ones_that_ran_out(terminated: Harness) -> None:
    _, consent = pending(terminated)
    terminated.clock.advance(timedelta(days=4))
    assert terminated.exchange.consents.consents(terminated.principals["JPN"]) == []
    (expired,) = terminated.exchange.consents.consents(terminated.principals["JPN"], state="expired")
    assert expired["id"] == consent


def test_expiring_one_originators_requests_leaves_the_others(terminated: Harness) -> None:
    _, jpn_consent = pending(terminated)
    kor = terminated.submit("KOR", recipients=["JPN"], level="군사II급비밀")
    kor_consent = terminated.decision(kor, "JPN")["consent"]["id"]
    terminated.clock.advance(timedelta(days=4))
    assert terminated.exchange.consents.expire_due(originator="KOR") == 1
    states = {
        c["id"]: c["state"]
        for who in ("JPN", "KOR")
        for c in terminated.exchange.consents.consents(terminated.principals[who], state=None)
    }
    # JPN's listing expired its own request on the way
    assert states == {jpn_consent: "expired", kor_consent: "expired"}


def test_the_consent_ttl_is_a_setting(tmp_path: Path) -> None:
    h = start_terminated(tmp_path, consent_ttl_hours=1)
    try:
        _, consent = pending(h)
        (request,) = h.consent_requests()
        assert request["expires_at"] == "2019-12-01T02:00+00:00"
        h.clock.advance(timedelta(hours=1))
        assert h.exchange.consents.expire_due() == 1
        (expired,) = h.exchange.consents.consents(h.principals["JPN"], state="expired")
        assert (expired["id"], expired["reason"]) == (consent, "no answer within PT1H")
    finally:
        h.close()


def test_a_grant_after_the_arrangement_ended_refuses_the_relay_with_reasons(terminated: Harness) -> None:
    report, consent = pending(terminated)
    terminated.exchange.operator.record_event(
        terminated.principals["operator"], "TISA", EventSpec(kind="termination", note="exercise inject")
    )
    terminated.clock.advance(timedelta(minutes=1))
    answer = terminated.exchange.consents.answer(terminated.principals["JPN"], consent, grant=True)
    assert (answer["state"], answer["outcome"]["relayed"]) == ("granted", False)
    reasons = answer["outcome"]["reasons"]
    assert {"rule": "third_party", "message": "at consent the route is deny, not a relay via USA"} in reasons
    assert any(r["rule"] == "in_force" and r.get("agreement") == "TISA" for r in reasons)
    assert terminated.deliveries("KOR") == [] and terminated.deliveries("USA") == []
    assert outcome_of(terminated, report) == "relay_refused"


def test_consents_belong_to_the_originator_alone(terminated: Harness) -> None:
    _, consent = pending(terminated)
    written = terminated.written()
    for party in ("KOR", "USA"):
        assert terminated.exchange.consents.consents(terminated.principals[party], state=None) == []
        # the id is named, as a delivery's is (it said "no consent request", which one unsaid)
        with pytest.raises(UnknownEntity, match=f"no consent request '{consent}'") as foreign:
            terminated.exchange.consents.answer(terminated.principals[party], consent, grant=True)
        with pytest.raises(UnknownEntity) as missing:
            terminated.exchange.consents.answer(terminated.principals[party], "c-missing", grant=True)
        # existence does not leak: the same words but for the id asked for
        assert str(foreign.value).replace(consent, "ID") == str(missing.value).replace("c-missing", "ID")
    for role in ("operator", "auditor"):
        with pytest.raises(NotPermitted):
            terminated.exchange.consents.answer(terminated.principals[role], consent, grant=True)
        with pytest.raises(NotPermitted):
            terminated.exchange.consents.consents(terminated.principals[role])
    assert terminated.written() == written
    assert terminated.deliveries("KOR") == []


def test_bad_answers_and_filters_are_refused(terminated: Harness) -> None:
    _, consent = pending(terminated)
    written = terminated.written()
    with pytest.raises(InvalidInput, match="at most 2000"):
        terminated.exchange.consents.answer(terminated.principals["JPN"], consent, grant=False, reason="x" * 2001)
    with pytest.raises(InvalidInput, match="state must be"):
        terminated.exchange.consents.consents(terminated.principals["JPN"], state="maybe")
    assert terminated.written() == written
    (still,) = terminated.exchange.consents.consents(terminated.principals["JPN"])
    assert still["id"] == consent


def test_the_sweep_expires_requests_when_the_exercise_clock_jumps(tmp_path: Path) -> None:
    h = start_terminated(tmp_path, exercise_clock=DEC1)
    consents = h.exchange.consents
    swept: list[int] = []
    done = threading.Event()
    expire_due = consents.expire_due

    def observed(*, originator: str | None = None) -> int:
        n = expire_due(originator=originator)
        if originator is None:  # the sweep's own call
            swept.append(n)
            if n:
                done.set()
        return n

    consents.expire_due = observed  # type: ignore[method-assign]
    try:
        _, consent = pending(h)
        h.exchange.start()
        h.exchange.start()  # a second start keeps the one sweep
        h.exchange.operator.advance_clock(h.principals["operator"], "2019-12-05T00:00+09:00")
        assert done.wait(timeout=30), "the sweep did not run after the clock moved"
        assert sum(swept) == 1
        (expired,) = [c for c in consents.consents(h.principals["JPN"], state="expired") if c["id"] == consent]
        assert expired["reason"] == "no answer within P3D"
    finally:
        h.close()


def test_a_grant_wraps_to_the_keys_registered_through_another_process_meanwhile(terminated: Harness) -> None:
    h = terminated
    report, consent = pending(h, payload=TRACK)
    h.exchange.context.identity._ttl = 3600.0  # this process holds the keys it read: no re-read by time
    other = build(h.app.settings, clock=TestClock(h.clock.at))  # a second process over the same database
    try:
        fresh = type(h.keys["KOR"]).generate("KOR", h.keys["KOR"].profile)
        other.exchange.keys.register(h.principals["KOR"], "KOR", fresh.public_keys())
    finally:
        other.close()
    answer = h.exchange.consents.answer(h.principals["JPN"], consent, grant=True)
    assert answer["outcome"]["relayed"] is True
    (onward,) = h.deliveries("KOR", report)
    view = h.exchange.deliveries.delivery(h.principals["KOR"], onward["id"])
    assert view["key"] == fresh.fingerprint()  # the current key, never the one retired a moment ago
    h.keys["KOR"] = fresh
    assert h.open("KOR", onward["id"]) == TRACK
