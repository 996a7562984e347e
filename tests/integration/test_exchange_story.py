"""The 2019 story, end to end over a real socket, with the exchange in exercise mode.

On 2019-11-22 at 10:00 KST (the morning Korea suspended its notice) a Japanese missile track
at 極秘 goes to Korea directly under the GSOMIA, marked 군사II급비밀 (JPN origin). Had the
termination taken effect (a what-if dropping the suspension), the same track on 2019-12-01
goes to the United States, and reaches Korea only through the US under TISA, after Japan
consents.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gsomia.client.opening import open_delivery
from gsomia.crypto import delivery_info, unwrap_key
from gsomia.errors import DecryptionFailed
from tests.integration.exchange_support import Exchange, sse, start_exchange, wait_for

pytestmark = pytest.mark.slow

TRACK = b'{"launch": "2019-11-28T16:59+09:00", "track": [[39.7, 127.1, 0], [40.9, 131.8, 380]]}'


@pytest.fixture(scope="module")
def nov22(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    ex = start_exchange(tmp_path_factory.mktemp("nov22"), exercise_clock="2019-11-22T10:00+09:00")
    yield ex
    ex.stop()


@pytest.fixture(scope="module")
def terminated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    ex = start_exchange(
        tmp_path_factory.mktemp("terminated"),
        exercise_clock="2019-12-01T10:00+09:00",
        whatif="name: termination-took-effect\ndrop: [jpn-kor-2019-suspension]\n",
    )
    yield ex
    ex.stop()


def by_recipient(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["recipient"]: r for r in body["recipients"]}


def deliveries_of(ex: Exchange, who: str, report: str) -> list[dict[str, Any]]:
    return [i for i in ex.inbox(who) if i["type"] == "delivery" and i["report"] == report]


def test_exercise_mode_is_never_hidden(nov22: Exchange) -> None:
    r = nov22.call(None, "GET", "/healthz")
    assert r.json()["exercise"]["clock"].startswith("2019-11-22T01:00")
    assert r.headers["Gsomia-Exercise"].startswith("clock=2019-11-22T01:00")
    assert "whatif=none" in r.headers["Gsomia-Exercise"]
    # error responses too
    assert "Gsomia-Exercise" in nov22.call(None, "GET", "/api/v1/inbox").headers


def test_nov22_track_goes_to_korea_directly_marked_class_ii(nov22: Exchange) -> None:
    r = nov22.submit("JPN", report_id="track-1122", recipients=["KOR", "USA"], payload=TRACK)
    assert r.status_code == 201, r.text
    kor = by_recipient(r.json())["KOR"]
    assert (kor["decision"], kor["outcome"], kor["agreements"]) == ("direct", "delivered", ["JPN-KOR-GSOMIA"])
    (item,) = deliveries_of(nov22, "KOR", "track-1122")
    assert item["marking"] == {
        "originator": "JPN",
        "originator_level": "極秘",
        "recipient": "KOR",
        "recipient_level": "군사II급비밀",
        "common_level": "SECRET",
        "banner": "EXERCISE 군사II급비밀 (JPN 極秘)",  # the exchange runs an exercise
        "exercise": True,
    }
    view = nov22.call("KOR", "GET", f"/api/v1/deliveries/{item['id']}").json()
    assert view["via"] is None
    assert view["leaf_index"] == kor["deliveries"][0]["leaf_index"]
    assert open_delivery(view, nov22.keys["KOR"]) == TRACK
    # the ledger holds the delivery at the leaf index it carries
    entry = nov22.call("auditor", "GET", f"/api/v1/ledger/entries/{view['leaf_index']}").json()["entry"]
    assert (entry["type"], entry["delivery"], entry["recipient"]) == ("delivery", item["id"], "KOR")
    assert entry["marking"]["recipient_level"] == "군사II급비밀"


def test_kimitsu_goes_to_the_us_and_never_to_korea(nov22: Exchange) -> None:
    r = nov22.submit("JPN", report_id="kimitsu-1", level="機密", recipients=["KOR", "USA"], payload=TRACK)
    assert r.status_code == 201, r.text
    got = by_recipient(r.json())
    assert got["USA"]["outcome"] == "delivered"
    assert got["USA"]["deliveries"][0]["marking"]["recipient_level"] == "TOP SECRET"
    assert got["KOR"]["decision"] == "deny"
    assert got["KOR"]["consent"] is None  # not even offered as a relay
    assert any(x["rule"] == "level" for x in got["KOR"]["reasons"])
    assert deliveries_of(nov22, "KOR", "kimitsu-1") == []
    assert nov22.call("JPN", "GET", "/api/v1/consents").json()["consents"] == []


def test_terminated_track_is_relayed_through_the_us_only_after_consent(terminated: Exchange) -> None:
    assert "whatif=exercise-whatif.yaml" in terminated.call(None, "GET", "/healthz").headers["Gsomia-Exercise"]
    r = terminated.submit(
        "JPN", report_id="track-1201", recipients=["KOR", "USA"], payload=TRACK, created="2019-12-01T09:58:00+09:00"
    )
    assert r.status_code == 201, r.text
    got = by_recipient(r.json())
    assert got["USA"]["outcome"] == "delivered"
    kor = got["KOR"]
    assert (kor["decision"], kor["outcome"], kor["via"]) == ("relay", "pending_consent", "USA")
    assert kor["consent"]["state"] == "pending"
    assert deliveries_of(terminated, "KOR", "track-1201") == []  # nothing before the grant

    (request,) = [i for i in terminated.inbox("JPN") if i["type"] == "consent_request"]
    assert (request["recipient"], request["hub"], request["arrangement"]) == ("KOR", "USA", "TISA")
    answer = terminated.call("JPN", "POST", f"/api/v1/consents/{request['id']}", json={"decision": "grant"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"]["relayed"] is True

    (item,) = deliveries_of(terminated, "KOR", "track-1201")
    assert item["via"] == "USA"
    assert item["marking"]["banner"] == "EXERCISE 군사II급비밀 (JPN 極秘)"  # made under an exercise
    assert item["exercise"] is True and item["marking"]["exercise"] is True
    view = terminated.call("KOR", "GET", f"/api/v1/deliveries/{item['id']}").json()
    assert open_delivery(view, terminated.keys["KOR"]) == TRACK
    # the hub received its own delivery, marked in its own ladder
    hub = [i for i in deliveries_of(terminated, "USA", "track-1201") if i["purpose"] == "relay_hub"]
    assert hub[0]["marking"]["recipient_level"] == "SECRET"
    result = terminated.call("JPN", "GET", "/api/v1/reports/track-1201").json()
    assert by_recipient(result)["KOR"]["outcome"] == "relayed"


def test_refused_consent_releases_nothing_and_is_ledgered(terminated: Exchange) -> None:
    r = terminated.submit("JPN", report_id="track-refused", recipients=["KOR"])
    consent = by_recipient(r.json())["KOR"]["consent"]
    answer = terminated.call(
        "JPN", "POST", f"/api/v1/consents/{consent['id']}", json={"decision": "refuse", "reason": "source protection"}
    )
    assert answer.json()["state"] == "refused"
    assert deliveries_of(terminated, "KOR", "track-refused") == []
    assert deliveries_of(terminated, "USA", "track-refused") == []
    entry = terminated.call("auditor", "GET", f"/api/v1/ledger/entries/{answer.json()['resolution_leaf_index']}")
    ledgered = entry.json()["entry"]
    assert ledgered["action"] == "refused" and "reason" not in ledgered  # the text stays the originator's
    assert len(ledgered["reason_commitment"]) == 64
    again = terminated.call("JPN", "POST", f"/api/v1/consents/{consent['id']}", json={"decision": "grant"})
    assert again.status_code == 409


def test_standing_consent_relays_at_once_but_not_orcon(terminated: Exchange) -> None:
    sc = terminated.call(
        "JPN",
        "POST",
        "/api/v1/standing-consents",
        json={"topic_prefix": "dprk.missile", "recipient": "KOR", "valid_until": "2020-12-31T00:00+09:00"},
    )
    assert sc.status_code == 201, sc.text
    try:
        r = terminated.submit("JPN", report_id="track-standing", recipients=["KOR"])
        kor = by_recipient(r.json())["KOR"]
        assert kor["outcome"] == "relayed"
        assert kor["consent"]["standing_consent"] == sc.json()["id"]
        assert len(deliveries_of(terminated, "KOR", "track-standing")) == 1
        orcon = terminated.submit("JPN", report_id="track-orcon", recipients=["KOR"], orcon=True)
        assert by_recipient(orcon.json())["KOR"]["outcome"] == "pending_consent"
        assert deliveries_of(terminated, "KOR", "track-orcon") == []
    finally:
        terminated.call("JPN", "DELETE", f"/api/v1/standing-consents/{sc.json()['id']}")
    after = terminated.submit("JPN", report_id="track-after-revoke", recipients=["KOR"])
    assert by_recipient(after.json())["KOR"]["outcome"] == "pending_consent"


def test_consent_expires_when_the_exercise_clock_passes_its_deadline(tmp_path: Path) -> None:
    ex = start_exchange(
        tmp_path,
        exercise_clock="2019-12-01T10:00+09:00",
        whatif="drop: [jpn-kor-2019-suspension]\n",
        extra_env={"GSOMIA_CONSENT_TTL_HOURS": "72"},
    )
    try:
        r = ex.submit("JPN", report_id="track-expiring", recipients=["KOR"])
        consent = by_recipient(r.json())["KOR"]["consent"]
        assert (
            ex.call("JPN", "POST", "/api/v1/exercise/clock", json={"at": "2019-12-05T00:00+09:00"}).status_code == 403
        )
        assert (
            ex.call("operator", "POST", "/api/v1/exercise/clock", json={"at": "2019-11-01T00:00+09:00"}).status_code
            == 409
        )
        moved = ex.call("operator", "POST", "/api/v1/exercise/clock", json={"at": "2019-12-04T10:01+09:00"})
        assert moved.status_code == 200, moved.text

        def expired() -> dict[str, Any] | None:
            rows = ex.call("JPN", "GET", "/api/v1/consents", params={"state": "expired"}).json()["consents"]
            return rows[0] if rows else None

        row = wait_for(expired, what="the consent to expire")
        assert row["id"] == consent["id"]
        assert "no answer within P3D" in row["reason"]
        late = ex.call("JPN", "POST", f"/api/v1/consents/{consent['id']}", json={"decision": "grant"})
        assert late.status_code == 409
        assert deliveries_of(ex, "KOR", "track-expiring") == []
        entry = ex.call("auditor", "GET", f"/api/v1/ledger/entries/{row['resolution_leaf_index']}").json()["entry"]
        assert (entry["type"], entry["action"]) == ("consent", "expired")
    finally:
        ex.stop()


def test_operator_event_changes_future_decisions_and_past_deliveries_keep_their_markings(tmp_path: Path) -> None:
    ex = start_exchange(tmp_path, exercise_clock="2019-11-22T10:00+09:00")
    try:
        before = ex.submit("JPN", report_id="before-termination", recipients=["KOR"])
        (item,) = deliveries_of(ex, "KOR", "before-termination")
        # an amendment lowering the maximum level to CONFIDENTIAL: 極秘 (SECRET) no longer fits
        event = {"kind": "amendment", "at": "2019-11-22T10:30+09:00", "changes": {"max_level": "CONFIDENTIAL"}}
        assert ex.call("JPN", "POST", "/api/v1/agreements/JPN-KOR-GSOMIA/events", json=event).status_code == 403
        assert ex.call("operator", "POST", "/api/v1/agreements/NOPE/events", json=event).status_code == 404
        bad = ex.call(
            "operator",
            "POST",
            "/api/v1/agreements/JPN-KOR-GSOMIA/events",
            json={**event, "kind": "notice", "by": "USA"},
        )
        assert bad.status_code == 422
        recorded = ex.call("operator", "POST", "/api/v1/agreements/JPN-KOR-GSOMIA/events", json=event)
        assert recorded.status_code == 201, recorded.text
        assert ex.call("operator", "POST", "/api/v1/exercise/clock", json={"at": "2019-11-22T11:00+09:00"}).is_success
        after = ex.submit("JPN", report_id="after-termination", recipients=["KOR"])
        assert by_recipient(before.json())["KOR"]["outcome"] == "delivered"
        assert by_recipient(after.json())["KOR"]["decision"] == "relay"  # TISA, via USA
        # Art. 21.4: what was provided stays protected, with its marking, and still opens
        view = ex.call("KOR", "GET", f"/api/v1/deliveries/{item['id']}").json()
        assert view["marking"]["banner"] == "EXERCISE 군사II급비밀 (JPN 極秘)"
        assert open_delivery(view, ex.keys["KOR"])
        entry = ex.call("auditor", "GET", f"/api/v1/ledger/entries/{recorded.json()['leaf_index']}").json()["entry"]
        assert (entry["type"], entry["kind"], entry["agreement"]) == ("agreement_event", "amendment", "JPN-KOR-GSOMIA")
    finally:
        ex.stop()


def test_stream_pushes_a_delivery_when_it_commits_and_resumes_after_last_event_id(nov22: Exchange) -> None:
    received: list[dict[str, Any]] = []
    opened = threading.Event()

    def listen() -> None:
        with sse(nov22, "KOR") as events:
            opened.set()
            for ev in events:
                received.append(ev)
                return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert opened.wait(20)
    r = nov22.submit("JPN", report_id="track-pushed", recipients=["KOR"])
    assert r.status_code == 201
    t.join(20)
    assert received, "no event arrived"
    ev = received[0]
    assert (ev["event"], ev["data"]["report"], ev["data"]["marking"]["recipient_level"]) == (
        "delivery",
        "track-pushed",
        "군사II급비밀",
    )
    # resuming before that event replays it
    with sse(nov22, "KOR", headers={"Last-Event-ID": str(int(ev["id"]) - 1)}) as events:
        replay = next(events)
    assert replay["id"] == ev["id"]


def test_a_stream_can_carry_each_delivery_as_its_fetch_serves_it(nov22: Exchange) -> None:
    nov22.submit("JPN", report_id="track-carried", recipients=["KOR"])
    (item,) = deliveries_of(nov22, "KOR", "track-carried")
    fetched = nov22.call("KOR", "GET", f"/api/v1/deliveries/{item['id']}").json()
    resume = {"Last-Event-ID": str(item["seq"] - 1)}
    with sse(nov22, "KOR", headers=resume, params={"deliveries": "true"}) as events:
        carried = next(events)
    assert (carried["id"], carried["data"]["id"]) == (str(item["seq"]), item["id"])
    assert carried["data"]["document"] == fetched
    assert open_delivery(carried["data"]["document"], nov22.keys["KOR"])
    with sse(nov22, "KOR", headers=resume) as events:
        assert "document" not in next(events)["data"]  # only when asked


def test_the_items_of_one_read_are_separate_events_in_inbox_order(nov22: Exchange) -> None:
    # what one read of the inbox finds goes out in one write: each item still its own event
    for n in range(3):
        nov22.submit("JPN", report_id=f"track-burst-{n}", recipients=["KOR"])
    items = [i for n in range(3) for i in deliveries_of(nov22, "KOR", f"track-burst-{n}")]
    resume = {"Last-Event-ID": str(items[0]["seq"] - 1)}
    with sse(nov22, "KOR", headers=resume) as events:
        got = [next(events) for _ in items]
    assert [(e["event"], e["id"], e["data"]["id"]) for e in got] == [
        ("delivery", str(i["seq"]), i["id"]) for i in items
    ]


def test_incident_reaches_the_originator_and_updates_reach_the_reporter(nov22: Exchange) -> None:
    nov22.submit("JPN", report_id="track-lost", recipients=["KOR"])
    (item,) = deliveries_of(nov22, "KOR", "track-lost")
    r = nov22.call(
        "KOR",
        "POST",
        f"/api/v1/deliveries/{item['id']}/incidents",
        json={"kind": "possible_compromise", "description": "terminal left unlocked in the ops room"},
    )
    assert r.status_code == 201, r.text
    incident = r.json()
    notices = [i for i in nov22.inbox("JPN") if i["type"] == "incident" and i["id"] == incident["id"]]
    assert notices and notices[0]["kind"] == "possible_compromise"
    upd = nov22.call(
        "JPN",
        "POST",
        f"/api/v1/incidents/{incident['id']}/updates",
        json={"result": "no evidence of access", "measures": "re-keyed terminal"},
    )
    assert upd.status_code == 201, upd.text
    assert [i for i in nov22.inbox("KOR") if i["type"] == "incident_update"][-1]["measures"] == "re-keyed terminal"
    full = nov22.call("KOR", "GET", f"/api/v1/incidents/{incident['id']}").json()
    assert [u["result"] for u in full["updates"]] == ["no evidence of access"]
    assert nov22.call("USA", "GET", f"/api/v1/incidents/{incident['id']}").status_code == 404
    entry = nov22.call("auditor", "GET", f"/api/v1/ledger/entries/{incident['leaf_index']}").json()["entry"]
    assert entry["type"] == "incident"
    assert "terminal" not in str(entry)  # digests of the text, not the text


def test_acknowledgement_is_ledgered_once(nov22: Exchange) -> None:
    nov22.submit("JPN", report_id="track-acked", recipients=["KOR"])
    (item,) = deliveries_of(nov22, "KOR", "track-acked")
    assert (
        nov22.call("KOR", "POST", f"/api/v1/deliveries/{item['id']}/ack", json={"need_to_know": False}).status_code
        == 422
    )
    first = nov22.call("KOR", "POST", f"/api/v1/deliveries/{item['id']}/ack", json={"need_to_know": True}).json()
    second = nov22.call("KOR", "POST", f"/api/v1/deliveries/{item['id']}/ack", json={"need_to_know": True}).json()
    assert first == second
    assert first["state"] == "acknowledged"
    entry = nov22.call("auditor", "GET", f"/api/v1/ledger/entries/{first['leaf_index']}").json()["entry"]
    assert (entry["type"], entry["delivery"], entry["need_to_know"]) == ("ack", item["id"], True)


def test_a_recipient_key_cannot_open_another_recipients_delivery(nov22: Exchange) -> None:
    nov22.submit("JPN", report_id="track-two", recipients=["KOR", "USA"])
    (kor_item,) = deliveries_of(nov22, "KOR", "track-two")
    view = nov22.call("KOR", "GET", f"/api/v1/deliveries/{kor_item['id']}").json()
    with pytest.raises(DecryptionFailed):
        open_delivery(view, nov22.keys["USA"])
    wrapped = base64.b64decode(view["wrapped_key"])
    with pytest.raises(DecryptionFailed):  # nor by claiming to be KOR with USA's key
        unwrap_key(nov22.keys["USA"], wrapped, delivery_info(view["id"], "KOR"))
