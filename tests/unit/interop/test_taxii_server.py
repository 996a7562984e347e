"""The TAXII 2.1 server over its own tables, with a sender standing in for the exchange: the
filters of TAXII 2.1 §3.4, keyset pages, versions, statuses, users and roles."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import stix2
import stix2.utils
import uvicorn
from sqlalchemy import create_engine
from taxii2client import v21 as taxii21

from gsomia.client.reports import ReportDraft
from gsomia.errors import InvalidInput
from gsomia.interop.stix import (
    NATIONAL_MARKING_EXTENSION,
    DeliveredMarking,
    MarkingPolicy,
    NationalMarking,
    TopicMap,
    national_marking_definition,
    party_identity,
)
from gsomia.node.taxii.app import create_taxii_app
from gsomia.node.taxii.service import (
    Authenticator,
    Outbox,
    OutboxConfig,
    SendResult,
    TaxiiService,
    TaxiiSettings,
    UserRecord,
)
from gsomia.node.taxii.store import EngineTransactions, NewObject, Query, TaxiiStore, TaxiiWrite

TAXII = "application/taxii+json;version=2.1"
JPN, USA = NationalMarking(party="JPN", level="極秘"), NationalMarking(party="USA", level="SECRET")
SECRET = national_marking_definition(JPN)


class Users:
    """Plain-text stand-in for the node's argon2 users, counting verifications."""

    def __init__(self) -> None:
        self.records = {
            "analyst": UserRecord("analyst", "officer", "hash-1"),
            "chief": UserRecord("chief", "admin", "hash-2"),
        }
        self.passwords = {"analyst": "pw-analyst", "chief": "pw-chief"}
        self.verifications = 0
        self.absences = 0

    def lookup(self, username: str) -> UserRecord | None:
        return self.records.get(username)

    def check(self, username: str, password: str, *, client: str) -> UserRecord | None:
        record = self.records.get(username)
        if record is None or not record.active:
            self.absences += 1  # the node checks a dummy hash: the same work
            return None
        self.verifications += 1
        return record if self.passwords.get(username) == password else None

    def held(self, username: str, *, client: str) -> None:
        return None


class Sender:
    """Answers each report at once, or holds them until released."""

    def __init__(self) -> None:
        self.batches: list[list[ReportDraft]] = []
        self.gate = threading.Event()
        self.gate.set()

    def send(self, drafts: Sequence[ReportDraft]) -> list[SendResult]:
        self.gate.wait(30)
        self.batches.append(list(drafts))
        return [SendResult(True, "delivered: KOR") for _ in drafts]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[dict[str, Any]]:
    # A file, so that the server's threads and the outbox worker each use their own connection
    # (one SQLite connection shared by threads is not safe under load).
    engine = create_engine(f"sqlite:///{tmp_path / 'taxii.db'}", connect_args={"check_same_thread": False})
    store = TaxiiStore(EngineTransactions(engine))
    users, sender = Users(), Sender()
    outbox = Outbox(
        store=store,
        sender=sender,
        policy=MarkingPolicy(party="JPN", levels=("機密", "極秘", "秘")),
        topics=TopicMap(default="dprk.missile.launch"),
        config=OutboxConfig(recipients=("KOR",), wait_seconds=10),
        clock=lambda: datetime.now(UTC),
    )
    outbox.start()
    service = TaxiiService(
        settings=TaxiiSettings(party="KOR", topic_collections=("dprk.missile",), max_page=50),
        store=store,
        auth=Authenticator(users, store),
        outbox=outbox,
    )
    server = uvicorn.Server(uvicorn.Config(create_taxii_app(service), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:  # readiness poll, not a wait for a result
        thread.join(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    yield {"client": client, "service": service, "store": store, "users": users, "sender": sender}
    client.close()
    sender.gate.set()
    server.should_exit = True
    thread.join(10)
    outbox.stop()


def basic(user: str = "analyst", password: str = "pw-analyst") -> dict[str, str]:  # noqa: S107 - a test user
    return {"Accept": TAXII, "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def ind(n: int, modified: str = "2019-11-22T00:58:00.000Z", *, topic: str = "dprk.missile.launch") -> dict[str, Any]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--00000000-0000-4000-8000-{n:012d}",
        "created": "2019-11-22T00:58:00.000Z",
        "modified": modified,
        "name": f"i{n}",
        "pattern": "[ipv4-addr:value = '198.51.100.1']",
        "pattern_type": "stix",
        "valid_from": "2019-11-22T00:58:00Z",
        "x_gsomia_topic": topic,
    }


def receive(
    service: TaxiiService,
    objects: list[dict[str, Any]],
    *,
    topic: str = "dprk.missile.launch",
    n: int = 1,
    originator: NationalMarking = JPN,
) -> None:
    bundle = {"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000001", "objects": objects}
    delivered = DeliveredMarking(
        recipient="KOR",
        level="군사II급비밀",
        originator=originator,
        common_level="SECRET",
        banner=f"군사II급비밀 ({originator.label()})",
        agreement="JPN-KOR-GSOMIA",
        delivery=f"d-{n}",
        ledger_index=n,
    )
    service.receive(
        delivered=delivered,
        topic=topic,
        content_type="application/stix+json;version=2.1",
        payload=__import__("json").dumps(bundle).encode(),
        created=datetime(2019, 11, 22, 1, tzinfo=UTC),
    )


def inbox_url(node: dict[str, Any], alias: str = "inbox") -> str:
    return f"/api/collections/{node['service'].collection(alias).id}/objects/"


def test_keyset_pages_cover_every_object_once_in_order(node: dict[str, Any]) -> None:
    for n in range(1, 8):
        receive(node["service"], [ind(n)], n=n)
    c, seen, params = node["client"], [], {"limit": "4", "match[type]": "indicator"}
    while True:
        r = c.get(inbox_url(node), params=params, headers=basic())
        assert r.status_code == 200 and r.headers["content-type"] == TAXII
        body = r.json()
        seen += [o["id"] for o in body["objects"]]
        if not body["more"]:
            break
        params = {**params, "next": body["next"]}
    assert seen == [ind(n)["id"] for n in range(1, 8)]
    # next belongs to its filters: changing them is a 400, as is a forged one.
    first = c.get(inbox_url(node), params={"limit": "2"}, headers=basic()).json()
    assert (
        c.get(
            inbox_url(node), params={"limit": "2", "match[type]": "identity", "next": first["next"]}, headers=basic()
        ).status_code
        == 400
    )


@pytest.mark.parametrize("digit", ["²", "٣", "３"])  # str.isdigit() says yes; int() refuses some, reads others
def test_a_page_size_or_next_token_in_digits_outside_ascii_is_a_400(node: dict[str, Any], digit: str) -> None:
    for n in range(1, 4):
        receive(node["service"], [ind(n)], n=n)
    c = node["client"]
    first = c.get(inbox_url(node), params={"limit": "1"}, headers=basic()).json()
    _, _, digest = first["next"].partition("-")  # the filters' digest: the token is otherwise right
    for params in ({"limit": digit}, {"limit": "1", "next": f"{digit}-{digest}"}):
        answer = c.get(inbox_url(node), params=params, headers=basic())
        assert answer.status_code == 400, (params, answer.text)
        assert answer.headers["content-type"] == TAXII


@pytest.mark.parametrize("number", ["9223372036854775808", "9999999999999999999", "9" * 5000])
def test_a_next_token_beyond_a_64_bit_instant_is_a_400(node: dict[str, Any], number: str) -> None:
    for n in range(1, 4):
        receive(node["service"], [ind(n)], n=n)
    c = node["client"]
    first = c.get(inbox_url(node), params={"limit": "1"}, headers=basic()).json()
    _, _, digest = first["next"].partition("-")
    answer = c.get(inbox_url(node), params={"limit": "1", "next": f"{number}-{digest}"}, headers=basic())
    assert answer.status_code == 400, answer.text
    largest = c.get(inbox_url(node), params={"limit": "1", "next": f"{2**63 - 1}-{digest}"}, headers=basic())
    assert largest.status_code == 200 and largest.json() == {}  # past every object: an empty page


def test_versions_first_last_all_and_exact(node: dict[str, Any]) -> None:
    s = node["service"]
    receive(s, [ind(1, "2019-11-22T01:00:00.000Z")], n=1)
    receive(s, [ind(1, "2019-11-22T03:00:00.000Z")], n=2)
    receive(s, [ind(1, "2019-11-22T02:00:00.000Z")], n=3)
    receive(s, [ind(1, "2019-11-22T02:00:00.000Z")], n=4)  # the same version again: kept once
    c, url = node["client"], inbox_url(node)

    def versions(**params: str) -> list[str]:
        r = c.get(url, params={"match[id]": ind(1)["id"], **params}, headers=basic())
        return [o["modified"] for o in r.json().get("objects", [])]

    assert versions() == ["2019-11-22T03:00:00.000Z"]
    assert versions(**{"match[version]": "first"}) == ["2019-11-22T01:00:00.000Z"]
    assert versions(**{"match[version]": "first,last"}) == ["2019-11-22T01:00:00.000Z", "2019-11-22T03:00:00.000Z"]
    assert versions(**{"match[version]": "all"}) == [
        "2019-11-22T01:00:00.000Z",
        "2019-11-22T03:00:00.000Z",
        "2019-11-22T02:00:00.000Z",
    ]
    assert versions(**{"match[version]": "2019-11-22T02:00:00Z"}) == ["2019-11-22T02:00:00.000Z"]
    r = c.get(f"{url}{ind(1)['id']}/versions/", headers=basic())
    assert r.json() == {
        "more": False,
        "versions": ["2019-11-22T01:00:00.000Z", "2019-11-22T03:00:00.000Z", "2019-11-22T02:00:00.000Z"],
    }
    assert c.get(f"{url}{ind(9)['id']}/versions/", headers=basic()).status_code == 404
    for bad in ("all,last", "last,last", "sometime"):
        assert c.get(url, params={"match[version]": bad}, headers=basic()).status_code == 400


def test_added_after_is_exclusive_and_headers_name_the_page(node: dict[str, Any]) -> None:
    for n in range(1, 4):
        receive(node["service"], [ind(n)], n=n)
    c, url = node["client"], inbox_url(node)
    r = c.get(url, params={"match[type]": "indicator"}, headers=basic())
    first, last = r.headers["X-TAXII-Date-Added-First"], r.headers["X-TAXII-Date-Added-Last"]
    assert first < last
    after = c.get(url, params={"match[type]": "indicator", "added_after": first}, headers=basic()).json()
    assert [o["id"] for o in after["objects"]] == [ind(2)["id"], ind(3)["id"]]
    empty = c.get(url, params={"added_after": last, "match[type]": "indicator"}, headers=basic())
    assert empty.json() == {} and "X-TAXII-Date-Added-First" not in empty.headers
    assert c.get(url, params=[("added_after", first), ("added_after", first)], headers=basic()).status_code == 400


def test_topic_collections_are_views_of_the_inbox(node: dict[str, Any]) -> None:
    receive(node["service"], [ind(1)], topic="dprk.missile.launch", n=1)
    receive(node["service"], [ind(2, topic="dprk.nuclear.test")], topic="dprk.nuclear.test", n=2)
    c = node["client"]
    view = c.get(inbox_url(node, "inbox-dprk.missile"), params={"match[type]": "indicator"}, headers=basic()).json()
    assert [o["id"] for o in view["objects"]] == [ind(1)["id"]]
    one = f"{inbox_url(node, 'inbox-dprk.missile')}{ind(2)['id']}/"
    assert c.get(one, headers=basic()).status_code == 404


def test_a_topic_view_serves_every_definition_and_identity_its_objects_reference(node: dict[str, Any]) -> None:
    # The originator's marking definition, the extension definition and the identities are
    # stored once, by the first delivery (here of another topic): every view still serves them,
    # so that no reference in a view dangles; the other topic's delivery marking stays out.
    receive(node["service"], [SECRET, {**ind(2, topic="dprk.nuclear.test"), "object_marking_refs": [SECRET["id"]]}],
            topic="dprk.nuclear.test", n=1)  # fmt: skip
    receive(
        node["service"], [SECRET, {**ind(1), "object_marking_refs": [SECRET["id"]]}], topic="dprk.missile.launch", n=2
    )
    c = node["client"]
    view = c.get(inbox_url(node, "inbox-dprk.missile"), headers=basic()).json()["objects"]
    ids = {o["id"] for o in view}
    served = {o["id"]: o for o in view}
    indicator = served[ind(1)["id"]]
    dangling = {r for r in [*indicator["object_marking_refs"], indicator["created_by_ref"]] if r not in ids}
    extensions = {k for o in view for k in o.get("extensions", {}) if k.startswith("extension-definition--")}
    assert not dangling and extensions <= ids, (dangling, extensions - ids)
    assert ind(2)["id"] not in ids
    other = [o for o in view if o["type"] == "marking-definition" and o["id"] not in indicator["object_marking_refs"]]
    assert other == [], other  # delivery d-1's own marking is in its topic's view only
    for oid in (SECRET["id"], indicator["created_by_ref"]):
        assert c.get(f"{inbox_url(node, 'inbox-dprk.missile')}{oid}/", headers=basic()).status_code == 200


def test_post_waits_for_its_reports_or_answers_pending_when_asked(node: dict[str, Any]) -> None:
    c, sender = node["client"], node["sender"]
    post = {**basic(), "Content-Type": TAXII}
    url = f"/api/collections/{node['service'].collection('outbox').id}/objects/"
    marked = {**ind(1), "object_marking_refs": [SECRET["id"]]}
    done = c.post(url, headers=post, json={"objects": [SECRET, marked]})
    assert done.status_code == 202 and done.json()["status"] == "complete" and done.json()["success_count"] == 2
    assert [d.level for d in sender.batches[0]] == ["極秘"] and sender.batches[0][0].recipients == ("KOR",)

    sender.gate.clear()
    later = {**ind(2), "object_marking_refs": [SECRET["id"]]}  # the marking was sent before: known
    pending = c.post(url, headers={**post, "Prefer": "respond-async"}, json={"objects": [later]})
    body = pending.json()
    assert body["status"] == "pending" and body["pending_count"] == 1 and body["pendings"][0]["id"] == later["id"]
    status_url = f"/api/status/{body['id']}/"
    assert c.get(status_url, headers=basic()).json()["status"] == "pending"
    assert c.get(status_url, headers=basic("chief", "pw-chief")).status_code == 200  # an admin sees every status
    sender.gate.set()
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while c.get(status_url, headers=basic()).json()["status"] != "complete":
        assert datetime.now(UTC) < deadline
    final = c.get(status_url.rstrip("/"), headers=basic()).json()
    assert final["success_count"] == 1 and final["pending_count"] == 0 and final["pendings"] == [], final


def jpn_outbox(store: TaxiiStore, sender: Sender, config: OutboxConfig) -> Outbox:
    """JPN's outbox for 極秘 missile-launch reports, sent through ``sender``."""
    return Outbox(
        store=store,
        sender=sender,
        policy=MarkingPolicy(party="JPN", levels=("極秘",)),
        topics=TopicMap(default="dprk.missile.launch"),
        config=config,
        clock=lambda: datetime.now(UTC),
    )


def test_a_waiting_post_stores_its_status_with_the_results_or_pending_when_it_stops_waiting(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'taxii.db'}", connect_args={"check_same_thread": False})
    store, sender = TaxiiStore(EngineTransactions(engine)), Sender()
    outbox = jpn_outbox(store, sender, OutboxConfig(recipients=("KOR",), wait_seconds=0.2))
    outbox.start()
    try:
        done = outbox.accept([SECRET, {**ind(1), "object_marking_refs": [SECRET["id"]]}], owner="analyst", wait=True)
        assert done["status"] == "complete"
        assert store.status(done["id"]) == ("analyst", done)  # stored once, with the results

        sender.gate.clear()  # the exchange does not answer within the POST's wait
        held = outbox.accept([{**ind(2), "object_marking_refs": [SECRET["id"]]}], owner="analyst", wait=True)
        assert held["status"] == "pending" and held["pending_count"] == 1
        assert store.status(held["id"]) == ("analyst", held)  # the status the answer names exists
        sender.gate.set()
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while (found := store.status(held["id"])) is None or found[1]["status"] != "complete":
            assert datetime.now(UTC) < deadline
        assert found[1]["success_count"] == 1 and found[1]["pendings"] == []
        assert store.present("outbox", [(ind(2)["id"], ind(2)["modified"])])
    finally:
        sender.gate.set()
        outbox.stop()
        engine.dispose()


@pytest.mark.parametrize("senders", [1, 2])
def test_envelopes_sent_in_one_batch_each_get_their_own_complete_status(tmp_path: Path, senders: int) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'taxii.db'}", connect_args={"check_same_thread": False})
    store, sender = TaxiiStore(EngineTransactions(engine)), Sender()
    outbox = jpn_outbox(store, sender, OutboxConfig(recipients=("KOR",), senders=senders))
    outbox.start()
    try:
        outbox.accept([SECRET], owner="analyst", wait=True)
        sender.gate.clear()  # the workers hold the first envelopes; the others queue behind them
        envelopes = [[{**ind(10 * k + i), "object_marking_refs": [SECRET["id"]]} for i in range(3)] for k in range(5)]
        ids = [outbox.accept(objs, owner="analyst", wait=False)["id"] for objs in envelopes]
        unmarked = outbox.accept([ind(99)], owner="analyst", wait=False)
        assert unmarked["status"] == "complete" and unmarked["failure_count"] == 1  # refused, never queued
        sender.gate.set()
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        for sid, objs in zip(ids, envelopes, strict=True):
            while (found := store.status(sid)) is None or found[1]["status"] != "complete":
                assert datetime.now(UTC) < deadline
            status = found[1]
            assert status["success_count"] == 3 and status["pending_count"] == 0, status
            assert [s["id"] for s in status["successes"]] == [o["id"] for o in objs]
        # a batch carried the reports of several envelopes (one report each)
        assert len(sender.batches) < len(envelopes) and sum(len(b) for b in sender.batches) == len(envelopes)
        posted = [o["id"] for objs in envelopes for o in objs]
        assert len(store.present("outbox", [(o["id"], o["modified"]) for objs in envelopes for o in objs])) == 15
        # each object is stored as it was posted; an envelope's objects stay together and in order
        rows = [r for r in store.page("outbox", Query(limit=100)).rows if r.stix_id in posted]
        by_id = {o["id"]: o for objs in envelopes for o in objs}
        assert all(json.loads(r.body) == by_id[r.stix_id] for r in rows)
        order = [r.stix_id for r in rows]
        for objs in envelopes:
            at = order.index(objs[0]["id"])
            assert order[at : at + 3] == [o["id"] for o in objs]
    finally:
        sender.gate.set()
        outbox.stop()
        engine.dispose()


def test_basic_credentials_are_checked_once_then_follow_the_stored_hash(node: dict[str, Any]) -> None:
    c, users = node["client"], node["users"]
    for _ in range(3):
        assert c.get("/", headers=basic()).status_code == 200
    assert users.verifications == 1
    users.records["analyst"] = UserRecord("analyst", "officer", "hash-changed")  # a new password
    users.passwords["analyst"] = "pw-new"
    assert c.get("/", headers=basic()).status_code == 401
    assert c.get("/", headers=basic("analyst", "pw-new")).status_code == 200
    users.records["analyst"] = UserRecord("analyst", "officer", "hash-changed", active=False)  # revoked
    assert c.get("/", headers=basic("analyst", "pw-new")).status_code == 401
    assert c.get("/", headers={"Accept": TAXII, "Authorization": "Basic !!!"}).status_code == 401


@pytest.mark.parametrize(
    "authorization",
    [
        b"Basic \xe9\xe9\xe9\xe9",  # not base64's alphabet, nor ASCII
        b"Basic " + base64.b64encode(b"\xff\xfe:pw"),  # a user name that is not UTF-8
        b"Basic " + base64.b64encode(b"analyst"),  # no colon
        b"Basic",
        b"Bearer \xe9t\xe9",
        b"Digest username=analyst",
        b"\xe9",
    ],
)
def test_malformed_credentials_are_a_401_with_the_challenge_never_a_5xx(
    node: dict[str, Any], authorization: bytes
) -> None:
    answer = node["client"].get("/", headers={"Accept": TAXII, "Authorization": authorization})
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"] == TAXII
    assert answer.headers["www-authenticate"].startswith("Basic realm=")
    assert answer.json()["http_status"] == "401"


def test_an_envelope_with_a_lone_surrogate_is_a_422_and_nothing_is_sent(node: dict[str, Any]) -> None:
    url = f"/api/collections/{node['service'].collection('outbox').id}/objects/"
    marked = json.dumps({"objects": [SECRET, {**ind(1), "object_marking_refs": [SECRET["id"]]}]})
    body = marked.replace('"name": "i1"', '"name": "i1\\ud800"')
    assert "\\ud800" in body
    answer = node["client"].post(url, headers={**basic(), "Content-Type": TAXII}, content=body.encode())
    assert answer.status_code == 422, answer.text
    assert "surrogate" in answer.json()["description"]
    assert node["sender"].batches == []


def test_an_envelope_nested_deeper_than_the_stack_is_a_422(node: dict[str, Any]) -> None:
    url = f"/api/collections/{node['service'].collection('outbox').id}/objects/"
    body = b'{"objects": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    answer = node["client"].post(url, headers={**basic(), "Content-Type": TAXII}, content=body)
    assert answer.status_code == 422, answer.text
    assert "nested too deeply" in answer.json()["description"]
    assert node["sender"].batches == []


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("NaN", "NaN is not a JSON number"),
        ("-Infinity", "-Infinity is not a JSON number"),
        ("123456789012345678901234567890", "beyond 64 bits"),
    ],
)
def test_an_envelope_with_a_number_json_cannot_carry_is_refused_and_nothing_is_sent(
    node: dict[str, Any], number: str, reason: str
) -> None:
    # Python's parser accepts these; stored and sent on, they would reach the recipient as text
    # that is not JSON, or as another value.
    c, sender = node["client"], node["sender"]
    url = f"/api/collections/{node['service'].collection('outbox').id}/objects/"
    marked = json.dumps({"objects": [SECRET, {**ind(1), "object_marking_refs": [SECRET["id"]]}]})
    body = marked.replace('"name": "i1"', f'"name": "i1", "confidence": {number}')
    assert number in body
    answer = c.post(url, headers={**basic(), "Content-Type": TAXII}, content=body.encode())
    assert answer.status_code == 422, answer.text
    assert reason in answer.json()["description"]
    assert sender.batches == []
    assert not node["store"].present("outbox", [(ind(1)["id"], ind(1)["modified"])])


def test_an_object_already_sent_posted_again_with_a_version_that_is_no_timestamp_is_a_failure_not_a_500(
    node: dict[str, Any],
) -> None:
    c, sender = node["client"], node["sender"]
    post = {**basic(), "Content-Type": TAXII}
    url = f"/api/collections/{node['service'].collection('outbox').id}/objects/"
    assert c.post(url, headers=post, json={"objects": [SECRET, {**ind(1), "object_marking_refs": [SECRET["id"]]}]})
    for modified in ("2024-02-30T00:00:00.000Z", "0001-01-01T00:00:00+01:00", ""):
        again = {**ind(1), "modified": modified, "object_marking_refs": [SECRET["id"]]}
        answer = c.post(url, headers=post, json={"objects": [again]})
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body["status"] == "complete" and body["failure_count"] == 1, body
        assert body["failures"][0]["message"].startswith("modified: ")
    assert len(sender.batches) == 1


def test_a_marking_definition_posted_again_with_another_meaning_is_refused(node: dict[str, Any]) -> None:
    # An officer cannot lower a marking every later object refers to by id (STIX 2.1 §7.2.1).
    c, sender = node["client"], node["sender"]
    post = {**basic(), "Content-Type": TAXII}
    url = f"/api/collections/{node['service'].collection('outbox').id}/objects/"
    assert c.post(url, headers=post, json={"objects": [SECRET, {**ind(1), "object_marking_refs": [SECRET["id"]]}]})
    lowered = json.loads(json.dumps(SECRET).replace("極秘", "秘"))
    lowered["created"] = "2027-01-01T00:00:00.000Z"
    body = c.post(url, headers=post, json={"objects": [lowered]}).json()
    assert body["failure_count"] == 1 and "never versioned" in body["failures"][0]["message"], body
    later = {**ind(2), "object_marking_refs": [SECRET["id"]]}
    body = c.post(url, headers=basic("chief", "pw-chief") | {"Content-Type": TAXII}, json={"objects": [later]}).json()
    assert body["success_count"] == 1, body
    assert [d.level for d in sender.batches[-1]] == ["極秘"]


def test_two_envelopes_defining_one_marking_at_once_cannot_both_be_taken(
    node: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both read the stored definitions before either stored its own: both were taken, and a
    # later object referencing the id went out under whichever was stored last (REL TO lost).
    store, c, sender = node["store"], node["client"], node["sender"]
    both_read = threading.Barrier(2)
    real_bodies = store.bodies

    def bodies(*args: Any, **kwargs: Any) -> Any:
        found = real_bodies(*args, **kwargs)
        with contextlib.suppress(threading.BrokenBarrierError):
            both_read.wait(timeout=2)  # the other envelope, if it may plan meanwhile
        return found

    monkeypatch.setattr(store, "bodies", bodies)
    rel = national_marking_definition(NationalMarking(party="JPN", level="極秘", rel_to=("KOR",)))
    wide = {**json.loads(json.dumps(rel)), "created": "2027-01-01T00:00:00.000Z"}
    del wide["extensions"][NATIONAL_MARKING_EXTENSION]["caveats"]
    url = f"/api/collections/{node['service'].collection('outbox').id}/objects/"
    answers: dict[str, dict[str, Any]] = {}

    def post(user: str, password: str, definition: dict[str, Any]) -> None:
        headers = basic(user, password) | {"Content-Type": TAXII}
        answers[user] = c.post(url, headers=headers, json={"objects": [definition]}).json()

    threads = [
        threading.Thread(target=post, args=("analyst", "pw-analyst", rel)),
        threading.Thread(target=post, args=("chief", "pw-chief", wide)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(a["failure_count"] for a in answers.values()) == [0, 1], answers
    taken = rel if answers["analyst"]["failure_count"] == 0 else wide
    stored = store.present("outbox", [(rel["id"], rel["created"]), (wide["id"], wide["created"])])
    assert stored == {(taken["id"], taken["created"])}
    later = {**ind(2), "object_marking_refs": [rel["id"]]}
    body = c.post(url, headers=basic() | {"Content-Type": TAXII}, json={"objects": [later]}).json()
    assert body["success_count"] == 1, body
    assert sender.batches[-1][0].rel_to == (("KOR",) if taken is rel else None)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "9" * 5000},
        {"added_after": "9999-12-31T23:59:59.000-01:00"},
        {"added_after": "0001-01-01T00:00:00.000+01:00"},
        {"match[version]": "0001-01-01T00:30:00+01:00"},
    ],
)
def test_query_values_beyond_what_python_converts_are_a_400_or_clamped_never_a_500(
    node: dict[str, Any], params: dict[str, str]
) -> None:
    receive(node["service"], [ind(1)])
    c = node["client"]
    manifest = inbox_url(node).replace("/objects/", "/manifest/")
    for url in (inbox_url(node), manifest):
        answer = c.get(url, params=params, headers=basic())
        assert answer.headers["content-type"] == TAXII, answer.text
        if "limit" in params:  # any page size above the server's is the server's
            everything = c.get(url, headers=basic()).json()["objects"]
            assert answer.status_code == 200 and answer.json()["objects"] == everything
        else:
            assert answer.status_code == 400, answer.text


def test_an_unknown_user_costs_the_same_password_check_as_a_known_one(node: dict[str, Any]) -> None:
    # Answering an unknown user at once and a wrong password after argon2 would tell an
    # attacker which usernames exist.
    c, users = node["client"], node["users"]
    assert c.get("/", headers=basic("nobody", "pw")).status_code == 401
    users.records["gone"] = UserRecord("gone", "officer", "hash-3", active=False)
    assert c.get("/", headers=basic("gone", "pw")).status_code == 401
    assert users.absences == 2 and users.verifications == 0


def test_a_batch_whose_objects_the_store_refuses_still_stores_the_other_envelopes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the checks before it should have caught, failing in the store: that envelope's
    # objects stay out (its status still says what the exchange decided); the others' go in.
    original = TaxiiWrite.add
    poison = ind(66)["id"]

    def add(self: TaxiiWrite, collection: str, new: Sequence[NewObject], *, now: datetime) -> Any:
        if any(o.stix_id == poison for o in new):
            raise InvalidInput("refused by the store")
        return original(self, collection, new, now=now)

    monkeypatch.setattr(TaxiiWrite, "add", add)
    engine = create_engine(f"sqlite:///{tmp_path / 'taxii.db'}", connect_args={"check_same_thread": False})
    store, sender = TaxiiStore(EngineTransactions(engine)), Sender()
    outbox = jpn_outbox(store, sender, OutboxConfig(recipients=("KOR",), senders=1))
    outbox.start()
    try:
        sender.gate.clear()  # the worker holds a first envelope; the next two make one batch
        outbox.accept([SECRET, {**ind(65), "object_marking_refs": [SECRET["id"]]}], owner="analyst", wait=False)
        ids = [
            outbox.accept([SECRET, {**ind(n), "object_marking_refs": [SECRET["id"]]}], owner="analyst", wait=False)[
                "id"
            ]
            for n in (66, 67)
        ]
        sender.gate.set()
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        for sid in ids:
            while (found := store.status(sid)) is None or found[1]["status"] != "complete":
                assert datetime.now(UTC) < deadline
            assert found[1]["success_count"] == 2, found  # the exchange took both reports
        assert [len(b) for b in sender.batches] == [1, 2]
        assert store.present("outbox", [(ind(67)["id"], ind(67)["modified"])])
        assert not store.present("outbox", [(poison, ind(66)["modified"])])
    finally:
        sender.gate.set()
        outbox.stop()
        engine.dispose()


def test_head_answers_as_get_without_a_body(node: dict[str, Any]) -> None:
    receive(node["service"], [ind(1)])
    c = node["client"]
    for url in ("/", "/api/", "/api/collections/", inbox_url(node), f"{inbox_url(node)}{ind(1)['id']}/"):
        got, head = c.get(url, headers=basic()), c.head(url, headers=basic())
        assert head.status_code == got.status_code == 200, url
        assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"] == TAXII
        assert head.headers.get("x-taxii-date-added-first") == got.headers.get("x-taxii-date-added-first")
    assert c.head(inbox_url(node)).status_code == 401  # the same checks as GET


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ('application/taxii+json;version="2.1"', 200),  # a quoted value is the same value (RFC 9110 §5.6.6)
        ("application/taxii+json; Version=2.1", 200),  # parameter names in any case
        ('application/taxii+json;version="2.0"', 406),
        ("application/taxii+json;version=2.1;q=0.0000, text/html", 406),  # weight 0: not acceptable
        ("application/taxii+json;version=2.1;q=0.5", 200),
    ],
)
def test_media_type_parameters_are_read_as_http_defines_them(node: dict[str, Any], accept: str, status: int) -> None:
    headers = basic() | {"Accept": accept}
    assert node["client"].get("/", headers=headers).status_code == status
    url = f"/api/collections/{node['service'].collection('outbox').id}/objects/"
    content = accept.split(",", maxsplit=1)[0].replace("q=0.0000", "q=1").replace(";q=0.5", "")
    posted = node["client"].post(url, headers=basic() | {"Content-Type": content}, json={"objects": [SECRET]})
    assert posted.status_code == (202 if "2.1" in content else 415), (content, posted.text)


def test_an_envelope_with_a_member_name_twice_is_refused(node: dict[str, Any]) -> None:
    # parsers disagree on which one wins (RFC 7493 §2.3): MISP reading the first and this node
    # the last would not agree on an object's markings; the exchange refuses them as well
    url = f"/api/collections/{node['service'].collection('outbox').id}/objects/"
    obj = json.dumps({**ind(1), "object_marking_refs": [SECRET["id"]]})
    twice = obj[:-1] + ', "object_marking_refs": []}'
    body = '{"objects": [' + json.dumps(SECRET) + ", " + twice + "]}"
    answer = node["client"].post(url, headers=basic() | {"Content-Type": TAXII}, content=body)
    assert answer.status_code == 422 and "given twice" in answer.json()["description"], answer.text
    assert node["sender"].batches == []


@pytest.mark.parametrize(
    "unnamed",
    [
        {"type": "indicator", "name": "no id"},
        {"id": "indicator--00000000-0000-4000-8000-000000000009"},
        {**ind(9), "id": "nope"},
        {**ind(9), "id": "malware--00000000-0000-4000-8000-000000000009"},
        "not an object",
    ],
    ids=["no-id", "no-type", "not-an-identifier", "another-type", "not-an-object"],
)
def test_an_envelope_with_an_object_no_status_could_name_is_refused_whole(node: dict[str, Any], unnamed: Any) -> None:
    # TAXII 2.1 §4.3.1: each status-details names its object by its identifier (required). An
    # object with none could be reported on by no conforming status ("(no id)" is no id).
    url = f"/api/collections/{node['service'].collection('outbox').id}/objects/"
    env = {"objects": [SECRET, {**ind(1), "object_marking_refs": [SECRET["id"]]}, unnamed]}
    answer = node["client"].post(url, headers=basic() | {"Content-Type": TAXII}, content=json.dumps(env))
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == TAXII and answer.json()["http_status"] == "422"
    assert answer.json()["description"].startswith("object 2 of the envelope "), answer.text
    assert node["sender"].batches == []


def _one(node: dict[str, Any], oid: str, alias: str = "inbox", **params: str) -> httpx.Response:
    client: httpx.Client = node["client"]
    return client.get(f"{inbox_url(node, alias)}{oid}/", params=params, headers=basic())


def test_another_originator_can_neither_version_nor_hide_an_object(node: dict[str, Any]) -> None:
    # USA sends the id of JPN's indicator again, later modified, on another topic: KOR still
    # serves JPN's, in the inbox and in the view of its topic, and knows one version of it.
    s = node["service"]
    receive(s, [SECRET, {**ind(1), "object_marking_refs": [SECRET["id"]]}], n=1)
    shadow = {**ind(1, "2026-06-01T00:00:00.000Z", topic="dprk.nuclear.test"), "name": "a decoy: disregard"}
    receive(s, [shadow], topic="dprk.nuclear.test", n=2, originator=USA)
    for alias in ("inbox", "inbox-dprk.missile"):
        served = _one(node, ind(1)["id"], alias)
        assert served.status_code == 200, (alias, served.text)
        (obj,) = served.json()["objects"]
        assert obj["name"] == "i1" and obj["created_by_ref"] == party_identity("JPN")["id"], alias
    listed = node["client"].get(inbox_url(node, "inbox-dprk.missile"), headers=basic()).json()["objects"]
    assert ind(1)["id"] in {o["id"] for o in listed}
    versions = node["client"].get(f"{inbox_url(node)}{ind(1)['id']}/versions/", headers=basic()).json()
    assert versions["versions"] == [ind(1)["modified"]]


@pytest.mark.parametrize("party", ["JPN", "USA"])
@pytest.mark.parametrize("usa_first", [True, False])
def test_a_national_marking_is_served_as_its_party_made_it(node: dict[str, Any], usa_first: bool, party: str) -> None:
    # The id of JPN's marking is fixed by its content: USA computes it and sends another
    # meaning under it (JPN's or its own), before JPN's first delivery or after it with a
    # later created.
    widened = {
        **SECRET,
        "created": "2027-01-01T00:00:00.000Z",
        "name": "JPN 秘 REL TO GBR, KOR, USA",
        "extensions": {
            NATIONAL_MARKING_EXTENSION: {
                "extension_type": "property-extension",
                "party": party,
                "level": "秘",
                "caveats": {"rel_to": ["GBR", "KOR", "USA"], "noforn": False, "orcon": False},
            }
        },
    }
    usa = ([widened, {**ind(2), "object_marking_refs": [SECRET["id"]]}], 2, USA)
    jpn = ([SECRET, {**ind(1), "object_marking_refs": [SECRET["id"]]}], 1, JPN)
    for objects, n, originator in [usa, jpn] if usa_first else [jpn, usa]:
        receive(node["service"], objects, n=n, originator=originator)
    for alias in ("inbox", "inbox-dprk.missile"):
        assert _one(node, SECRET["id"], alias).json()["objects"] == [SECRET], alias
        assert _one(node, SECRET["id"], alias, **{"match[version]": "all"}).json()["objects"] == [SECRET], alias
    served = _one(node, ind(2)["id"]).json()["objects"][0]
    assert SECRET["id"] not in served["object_marking_refs"]


def test_an_object_by_id_is_a_404_never_an_empty_200(node: dict[str, Any]) -> None:
    # Its last version went to a topic outside the view; or no version matches the filter.
    s = node["service"]
    receive(s, [ind(1)], n=1)
    receive(s, [ind(1, "2019-11-22T02:00:00.000Z", topic="dprk.nuclear.test")], topic="dprk.nuclear.test", n=2)
    outside = _one(node, ind(1)["id"], "inbox-dprk.missile")
    assert outside.status_code == 404 and outside.headers["content-type"] == TAXII, outside.text
    first = _one(node, ind(1)["id"], "inbox-dprk.missile", **{"match[version]": "first"})
    assert first.status_code == 200 and first.json()["objects"][0]["modified"] == ind(1)["modified"]
    assert _one(node, ind(1)["id"], **{"match[version]": "2001-01-01T00:00:00Z"}).status_code == 404


def test_no_taxii_answer_is_kept_by_a_cache(node: dict[str, Any]) -> None:
    receive(node["service"], [ind(1)], n=1)
    c = node["client"]
    answers = [
        c.get(inbox_url(node), headers=basic()),
        c.get(f"{inbox_url(node)}{ind(1)['id']}/", headers=basic()),
        c.get("/", headers=basic()),
        c.get(inbox_url(node), headers={"Accept": TAXII}),
        c.get(f"{inbox_url(node)}{ind(9)['id']}/", headers=basic()),
        c.head(inbox_url(node), headers=basic()),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 401, 404, 200]
    assert all(a.headers.get("cache-control") == "no-store" for a in answers), [a.headers for a in answers]


class StoppedSender(Sender):
    """An exchange that takes the reports, but the process sending them stops before the
    answer arrives: it never returns (until released at the end of the test)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate.clear()
        self.seen: list[ReportDraft] = []

    def send(self, drafts: Sequence[ReportDraft]) -> list[SendResult]:
        self.seen += drafts
        return super().send(drafts)


@pytest.mark.parametrize("wait", [False, True], ids=["respond-async", "stopped-waiting"])
def test_a_pending_status_left_by_a_stopped_process_is_sent_and_completed_on_start(tmp_path: Path, wait: bool) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'taxii.db'}", connect_args={"check_same_thread": False})
    store, stopped = TaxiiStore(EngineTransactions(engine)), StoppedSender()
    first = jpn_outbox(store, stopped, OutboxConfig(recipients=("KOR",), wait_seconds=0.2))
    first.start()
    again, sender = None, Sender()
    try:
        objs = [
            SECRET,
            {**ind(1), "object_marking_refs": [SECRET["id"]]},
            {**ind(2), "object_marking_refs": [SECRET["id"]]},
        ]
        held = first.accept(objs, owner="analyst", wait=wait)
        assert held["status"] == "pending" and store.status(held["id"]) == ("analyst", held)
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while not stopped.seen:  # the report left; the process is killed before the answer
            assert datetime.now(UTC) < deadline
        again = jpn_outbox(store, sender, OutboxConfig(recipients=("KOR",)))  # the node started again
        again.start()
        while (found := store.status(held["id"])) is None or found[1]["status"] != "complete":
            assert datetime.now(UTC) < deadline
        status = found[1]
        assert status["success_count"] == 3 and status["pending_count"] == 0 and status["failure_count"] == 0
        assert store.present("outbox", [(ind(1)["id"], ind(1)["modified"]), (ind(2)["id"], ind(2)["modified"])])
        # the same report as the one that left before: its id and the signed time of the POST
        [resent] = [d for b in sender.batches for d in b]
        assert (resent.id, resent.created, resent.payload) == (
            stopped.seen[0].id,
            stopped.seen[0].created,
            stopped.seen[0].payload,
        )
        assert store.unfinished() == []
    finally:
        stopped.gate.set()
        first.stop()
        if again is not None:
            again.stop()
        engine.dispose()


def test_taxii2_client_pages_and_polls_while_deliveries_arrive_and_misses_nothing(node: dict[str, Any]) -> None:
    """taxii2-client's ``as_pages`` over HTTP, deliveries stored between its pages (a new object,
    a new version of one not yet read), then a poll from the last page's
    X-TAXII-Date-Added-Last: every object's last version is seen, none twice."""
    service = node["service"]
    for n in range(1, 6):
        receive(service, [ind(n)], n=n)
    base = str(node["client"].base_url) + inbox_url(node).removesuffix("objects/")
    collection = taxii21.Collection(base, user="analyst", password="pw-analyst")
    headers: list[Any] = []  # each answer's headers, as a connector reads them
    collection._conn.session.hooks["response"].append(lambda r, *_, **__: headers.append(r.headers))
    seen: list[tuple[str, str]] = []
    inserted = iter([[ind(6)], [ind(1, "2019-11-23T00:58:00.000Z")]])
    for envelope in taxii21.as_pages(collection.get_objects, per_request=3, type="indicator"):
        seen += [(o["id"], o["modified"]) for o in envelope.get("objects", [])]
        batch = next(inserted, None)
        if batch is not None:
            receive(service, batch, n=100 + len(seen))
    last_added = headers[-1]["X-TAXII-Date-Added-Last"]
    receive(service, [ind(7)], n=200)
    later = collection.get_objects(type="indicator", added_after=last_added)
    seen += [(o["id"], o["modified"]) for o in later.get("objects", [])]
    assert len(seen) == len(set(seen))
    latest = {ind(n)["id"]: ind(n)["modified"] for n in range(2, 8)} | {ind(1)["id"]: "2019-11-23T00:58:00.000Z"}
    assert {oid for oid, _ in seen} == set(latest)
    assert set(latest.items()) <= set(seen)
    # stix2's data source over the same collection: every indicator once, at its last version
    got = stix2.TAXIICollectionSource(collection).query([stix2.Filter("type", "=", "indicator")])
    assert sorted((o.id, stix2.utils.format_datetime(o.modified)) for o in got) == sorted(latest.items())
