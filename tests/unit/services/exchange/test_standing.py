"""Standing consents: an originator's prior approval of relays of a topic prefix to one recipient
(optionally through one hub) for a period. A relay it covers is released at once, except for an
ORCON report, which needs consent for the very report."""

from __future__ import annotations

from typing import Any

import pytest

from gsomia.errors import InvalidInput, NotPermitted, UnknownEntity
from gsomia.services.exchange.standing import StandingConsentSpec
from tests.harness import Harness


def give(h: Harness, party: str = "JPN", **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"topic_prefix": "dprk.missile", "recipient": "KOR", "valid_until": "2020-12-31T00:00+09:00"}
    return h.exchange.standing.add(h.principals[party], StandingConsentSpec(**(spec | fields)))


def relay_outcome(h: Harness, **fields: Any) -> dict[str, Any]:
    result = h.submit("JPN", recipients=["KOR"], **fields)
    return h.decision(result, "KOR")


def test_a_standing_consent_releases_a_relay_at_once(terminated: Harness) -> None:
    sc = give(terminated, note="missile warning, standing")
    kor = relay_outcome(terminated, payload=b"track")
    assert kor["outcome"] == "relayed"
    assert (kor["consent"]["state"], kor["consent"]["standing_consent"]) == ("granted", sc["id"])
    assert [(d["recipient"], d["purpose"]) for d in kor["deliveries"]] == [
        ("USA", "relay_hub"),
        ("KOR", "relay_onward"),
    ]
    (onward,) = terminated.deliveries("KOR")
    assert terminated.open("KOR", onward["id"]) == b"track"
    assert terminated.consent_requests() == []  # nothing to answer
    entry = terminated.app.ledger.entry(kor["consent"]["leaf_index"])["entry"]
    assert (entry["action"], entry["standing_consent"]) == ("granted", sc["id"])


def test_an_orcon_report_still_needs_consent_for_that_report(terminated: Harness) -> None:
    give(terminated)
    kor = relay_outcome(terminated, orcon=True)
    assert (kor["outcome"], kor["consent"]["state"], kor["consent"]["standing_consent"]) == (
        "pending_consent",
        "pending",
        None,
    )
    assert terminated.deliveries("KOR") == []
    (request,) = terminated.consent_requests()
    assert request["id"] == kor["consent"]["id"]


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"topic_prefix": "dprk.nuclear"}, "another topic"),
        ({"recipient": "USA"}, "another recipient"),
        ({"hub": "GBR"}, "another hub"),
        ({"valid_from": "2020-01-01T00:00+09:00"}, "not yet valid"),
        ({"valid_from": "2019-01-01T00:00+09:00", "valid_until": "2019-11-30T00:00+09:00"}, "no longer valid"),
    ],
)
def test_a_standing_consent_that_does_not_cover_the_relay_leaves_it_pending(
    terminated: Harness, fields: dict[str, Any], why: str
) -> None:
    give(terminated, **fields)
    assert relay_outcome(terminated)["outcome"] == "pending_consent", why
    assert terminated.deliveries("KOR") == []


def test_a_standing_consent_naming_the_hub_applies(terminated: Harness) -> None:
    sc = give(terminated, hub="USA", topic_prefix="dprk")
    assert sc["hub"] == "USA"
    assert relay_outcome(terminated)["outcome"] == "relayed"


def test_a_revoked_standing_consent_no_longer_applies_and_revoking_is_idempotent(terminated: Harness) -> None:
    sc = give(terminated)
    assert relay_outcome(terminated)["outcome"] == "relayed"
    revoked = terminated.exchange.standing.revoke(terminated.principals["JPN"], sc["id"])
    assert revoked["revoked_at"] == "2019-12-01T01:00+00:00"
    written = terminated.written()
    assert terminated.exchange.standing.revoke(terminated.principals["JPN"], sc["id"]) == revoked
    assert terminated.written() == written  # ledgered once
    assert relay_outcome(terminated)["outcome"] == "pending_consent"
    (listed,) = terminated.exchange.standing.list(terminated.principals["JPN"])
    assert listed == revoked


def test_a_standing_consent_is_ledgered_and_listed_for_its_originator_only(terminated: Harness) -> None:
    sc = give(terminated)
    assert sc["valid_from"] == "2019-12-01T01:00+00:00"  # from now unless told
    assert sc["valid_until"] == "2020-12-30T15:00+00:00"
    assert sc["note"] is None and sc["revoked_at"] is None
    entry = terminated.app.ledger.entry(sc["leaf_index"])["entry"]
    assert (entry["type"], entry["action"], entry["standing_consent"], entry["topic_prefix"]) == (
        "consent",
        "standing_granted",
        sc["id"],
        "dprk.missile",
    )
    assert terminated.exchange.standing.list(terminated.principals["JPN"]) == [sc]
    assert terminated.exchange.standing.list(terminated.principals["KOR"]) == []
    for party in ("KOR", "USA"):
        with pytest.raises(UnknownEntity, match="no standing consent"):
            terminated.exchange.standing.revoke(terminated.principals[party], sc["id"])
    assert relay_outcome(terminated)["outcome"] == "relayed"  # still in force


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"topic_prefix": "DPRK!"}, "topic_prefix"),
        ({"recipient": "XYZ"}, "recipient: unknown party 'XYZ'"),
        ({"hub": "XYZ"}, "hub: unknown party 'XYZ'"),
        ({"hub": "JPN"}, "hub: a relay goes through a third party"),  # the originator
        ({"hub": "KOR"}, "hub: a relay goes through a third party"),  # the recipient
        ({"recipient": "JPN"}, "names another party"),
        ({"valid_until": "2019-12-01T00:00+09:00"}, "valid_until must be after valid_from"),
        ({"valid_from": "2020-01-02", "valid_until": "2020-01-01"}, "valid_until must be after valid_from"),
        ({"valid_until": "someday"}, "invalid instant"),
    ],
)
def test_bad_standing_consents_are_refused_and_write_nothing(
    terminated: Harness, fields: dict[str, Any], message: str
) -> None:
    written = terminated.written()
    with pytest.raises(InvalidInput, match=message):
        give(terminated, **fields)
    assert terminated.written() == written
    assert terminated.exchange.standing.list(terminated.principals["JPN"]) == []


@pytest.mark.parametrize("role", ["operator", "auditor"])
def test_only_parties_manage_standing_consents(terminated: Harness, role: str) -> None:
    with pytest.raises(NotPermitted):
        give(terminated, party=role)
    with pytest.raises(NotPermitted):
        terminated.exchange.standing.list(terminated.principals[role])
    with pytest.raises(NotPermitted):
        terminated.exchange.standing.revoke(terminated.principals[role], "sc-anything")


def test_revoking_an_unknown_standing_consent_is_not_found(terminated: Harness) -> None:
    with pytest.raises(UnknownEntity, match="no standing consent 'sc-missing'"):
        terminated.exchange.standing.revoke(terminated.principals["JPN"], "sc-missing")
