"""The recipient's side: fetching a delivery changes nothing, acknowledging it attests
need-to-know (rule 5) once, the inbox pages in commit order, and nobody sees another party's
deliveries; auditors see counts, never content."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gsomia.errors import InvalidInput, NotPermitted, UnknownEntity
from tests.harness import Harness


def delivered(h: Harness, party: str = "KOR", **fields: object) -> str:
    """Submit a JPN track to ``party``; return the delivery id."""
    result = h.submit("JPN", recipients=[party], **fields)
    (d,) = h.decision(result, party)["deliveries"]
    return str(d["id"])


def test_fetching_a_delivery_changes_nothing(harness: Harness) -> None:
    did = delivered(harness, payload=b"track")
    written = harness.written()
    first = harness.exchange.deliveries.delivery(harness.principals["KOR"], did)
    assert (first["state"], first["acked_at"]) == ("ready", None)
    assert first["origin"]["report"]["originator"] == "JPN"
    assert first["marking"]["banner"] == "군사II급비밀 (JPN 極秘)"
    harness.clock.advance(timedelta(hours=1))
    assert harness.exchange.deliveries.delivery(harness.principals["KOR"], did) == first
    assert harness.written() == written  # reading is not ledgered; acknowledging is
    assert [i["state"] for i in harness.deliveries("KOR")] == ["ready"]


def test_acknowledging_attests_need_to_know_once(harness: Harness) -> None:
    did = delivered(harness)
    written = harness.written()
    with pytest.raises(InvalidInput, match="need-to-know"):
        harness.exchange.deliveries.acknowledge(harness.principals["KOR"], did, need_to_know=False)
    assert harness.written() == written
    harness.clock.advance(timedelta(minutes=5))
    ack = harness.exchange.deliveries.acknowledge(harness.principals["KOR"], did, need_to_know=True)
    assert (ack["id"], ack["state"], ack["acked_at"]) == (did, "acknowledged", "2019-11-22T01:05+00:00")
    entry = harness.app.ledger.entry(ack["leaf_index"])["entry"]
    assert (entry["type"], entry["delivery"], entry["recipient"], entry["need_to_know"]) == ("ack", did, "KOR", True)
    size = harness.app.ledger.size()
    harness.clock.advance(timedelta(hours=1))
    assert harness.exchange.deliveries.acknowledge(harness.principals["KOR"], did, need_to_know=True) == ack
    assert harness.app.ledger.size() == size
    view = harness.exchange.deliveries.delivery(harness.principals["KOR"], did)
    assert (view["state"], view["acked_at"]) == ("acknowledged", "2019-11-22T01:05+00:00")
    assert [i["state"] for i in harness.deliveries("KOR")] == ["acknowledged"]
    assert harness.written()[1]["deliveries"] == {"acknowledged": 1}


def test_nobody_fetches_or_acknowledges_another_partys_delivery(harness: Harness) -> None:
    did = delivered(harness)
    written = harness.written()
    for party in ("JPN", "USA"):  # not even the originator
        with pytest.raises(UnknownEntity, match="no delivery") as foreign:
            harness.exchange.deliveries.delivery(harness.principals[party], did)
        with pytest.raises(UnknownEntity) as missing:
            harness.exchange.deliveries.delivery(harness.principals[party], "d-missing")
        assert str(foreign.value).replace(did, "?") == str(missing.value).replace("d-missing", "?")
        with pytest.raises(UnknownEntity):
            harness.exchange.deliveries.acknowledge(harness.principals[party], did, need_to_know=True)
    for role in ("operator", "auditor"):
        with pytest.raises(NotPermitted):
            harness.exchange.deliveries.delivery(harness.principals[role], did)
        with pytest.raises(NotPermitted):
            harness.exchange.deliveries.acknowledge(harness.principals[role], did, need_to_know=True)
    assert harness.written() == written
    assert [i["state"] for i in harness.deliveries("KOR")] == ["ready"]  # nobody else's fetch counted


def test_the_inbox_pages_in_commit_order_and_resumes_after_a_cursor(harness: Harness) -> None:
    reports = [harness.submit("JPN", recipients=["KOR"]).body["report"] for _ in range(5)]
    kor = harness.principals["KOR"]
    page, cursor = harness.exchange.deliveries.inbox(kor, after=0, limit=2)
    assert [i["report"] for i in page] == reports[:2]
    rest, end = harness.exchange.deliveries.inbox(kor, after=cursor, limit=100)
    assert [i["report"] for i in rest] == reports[2:]
    assert [i["seq"] for i in page + rest] == sorted(i["seq"] for i in page + rest)
    empty, same = harness.exchange.deliveries.inbox(kor, after=end, limit=10)
    assert (empty, same) == ([], end)
    streamed, _ = harness.exchange.deliveries.inbox(kor, after=0, limit=10, states=False)
    assert all("state" not in i for i in streamed)


def test_a_party_sees_only_its_own_inbox(harness: Harness) -> None:
    harness.submit("JPN", recipients=["KOR"])
    harness.submit("JPN", recipients=["USA"])
    assert [i["recipient"] for i in harness.deliveries("KOR")] == ["KOR"]
    assert [i["recipient"] for i in harness.deliveries("USA")] == ["USA"]
    assert harness.inbox("JPN") == []


@pytest.mark.parametrize(("after", "limit"), [(-1, 10), (0, 0), (0, 1001)])
def test_bad_inbox_cursors_and_limits_are_refused(harness: Harness, after: int, limit: int) -> None:
    with pytest.raises(InvalidInput, match="cursor"):
        harness.exchange.deliveries.inbox(harness.principals["KOR"], after=after, limit=limit)


@pytest.mark.parametrize("role", ["operator", "auditor"])
def test_only_parties_have_an_inbox(harness: Harness, role: str) -> None:
    with pytest.raises(NotPermitted):
        harness.exchange.deliveries.inbox(harness.principals[role])
    with pytest.raises(NotPermitted):
        harness.exchange.deliveries.stream_start(harness.principals[role], None)


def test_a_new_stream_starts_after_the_newest_item_unless_resumed(harness: Harness) -> None:
    harness.submit("JPN", recipients=["KOR"])
    (item,) = harness.deliveries("KOR")
    deliveries = harness.exchange.deliveries
    assert deliveries.stream_start(harness.principals["KOR"], None) == item["seq"]
    assert deliveries.stream_start(harness.principals["KOR"], 0) == 0
    (replayed,), _ = deliveries.inbox(harness.principals["KOR"], after=0, states=False)
    assert replayed["id"] == item["id"]


def test_auditors_and_operators_see_counts_and_parties_do_not(harness: Harness) -> None:
    harness.submit("JPN", recipients=["KOR", "USA"], payload=b"track")
    harness.submit("JPN", recipients=["KOR"], level="機密")
    for role in ("auditor", "operator"):
        stats = harness.exchange.deliveries.stats(harness.principals[role])
        assert stats["reports"] == 2
        assert stats["decisions"] == {"delivered": 2, "denied": 1}
        assert stats["deliveries"] == {"ready": 2}
        assert stats["consents"] == {} and stats["incidents"] == 0
        assert sorted((p["originator"], p["recipient"], p["deliveries"]) for p in stats["pairs"]) == [
            ("JPN", "KOR", 1),
            ("JPN", "USA", 1),
        ]
    for party in ("JPN", "KOR"):
        with pytest.raises(NotPermitted):
            harness.exchange.deliveries.stats(harness.principals[party])


def test_an_inbox_page_can_carry_its_deliveries_as_a_fetch_serves_them(harness: Harness) -> None:
    mine = [delivered(harness, payload=f"track {n}".encode()) for n in range(3)]
    delivered(harness, "USA")  # another party's: never in KOR's page
    harness.exchange.deliveries.acknowledge(harness.principals["KOR"], mine[1], need_to_know=True)
    kor = harness.principals["KOR"]
    written = harness.written()
    page, cursor = harness.exchange.deliveries.inbox(kor, after=0, limit=100, deliveries=True)
    assert [i["id"] for i in page] == mine
    for item in page:
        assert item["document"] == harness.exchange.deliveries.delivery(kor, item["id"])
        assert item["state"] == item["document"]["state"]
    assert [i["state"] for i in page] == ["ready", "acknowledged", "ready"]
    plain, same = harness.exchange.deliveries.inbox(kor, after=0, limit=100)
    assert same == cursor and all("document" not in i for i in plain)
    assert [{k: v for k, v in i.items() if k != "document"} for i in page] == plain
    assert harness.written() == written  # reading a page with its deliveries changes nothing
    assert harness.exchange.deliveries.inbox(harness.principals["JPN"], deliveries=True) == ([], 0)


def test_an_inbox_page_with_its_deliveries_holds_at_most_a_hundred(harness: Harness) -> None:
    kor = harness.principals["KOR"]
    assert harness.exchange.deliveries.inbox(kor, limit=100, deliveries=True) == ([], 0)
    with pytest.raises(InvalidInput, match="limit between 1 and 100 when the deliveries come with the page"):
        harness.exchange.deliveries.inbox(kor, limit=101, deliveries=True)
    for role in ("operator", "auditor"):
        with pytest.raises(NotPermitted):
            harness.exchange.deliveries.inbox(harness.principals[role], deliveries=True)
