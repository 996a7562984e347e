"""STIX 2.1 over TAXII 2.1 and Cursor-on-Target between two live party nodes through a live
exchange, exercised with clients nobody here wrote: ``taxii2-client`` over real HTTP and
``stix2``'s ``TAXIICollectionSource``; every object served passes ``stix2-validator``; the same
protocol queries go to ``medallion`` (the OASIS reference server) and the differences are listed
as intended. CoT goes in at JPN's node over TCP (XML) and UDP (TAK protocol) and comes out at
KOR's node to local TAK listeners, only where the marking allows."""

from __future__ import annotations

import json
import queue
import socket
import socketserver
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import stix2
from stix2validator import ValidationOptions, validate_instance
from takproto.functions import xml2proto
from taxii2client.common import _HTTPConnection
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from gsomia.interop.stix import NATIONAL_MARKING_EXTENSION, NationalMarking, national_marking_definition
from gsomia.node.service import NodeService
from tests.integration.conftest import free_port
from tests.integration.exchange_support import start_exchange, wait_for
from tests.integration.medallion_support import PASSWORD as MED_PASSWORD
from tests.integration.medallion_support import USER as MED_USER
from tests.integration.medallion_support import serve_medallion
from tests.integration.node_support import PASSWORD, Node, start_node

pytestmark = pytest.mark.slow

TAXII = "application/taxii+json;version=2.1"
JPN_SECRET = national_marking_definition(NationalMarking(party="JPN", level="極秘"))
JPN_SECRET_REL_USA = national_marking_definition(NationalMarking(party="JPN", level="極秘", rel_to=("KOR", "USA")))
TLP_RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"


class Collector:
    """A local TAK listener (TCP): every event it receives, in order."""

    def __init__(self) -> None:
        self.events: queue.Queue[ET.Element] = queue.Queue()
        self.seen: list[ET.Element] = []
        collector = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                buffer = b""
                while data := self.request.recv(65536):
                    buffer += data
                    while b"</event>" in buffer:
                        chunk, _, buffer = buffer.partition(b"</event>")
                        start = chunk.find(b"<event")
                        collector.events.put(ET.fromstring(chunk[start:] + b"</event>"))

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self, n: int) -> list[ET.Element]:
        """Wait until ``n`` events have arrived in all; all of them."""
        while len(self.seen) < n:
            self.seen.append(self.events.get(timeout=30))
        return self.seen

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def indicator(
    name: str, marking: dict[str, Any], *, topic: str = "dprk.missile.launch", extra: Sequence[str] = ()
) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid4()}",
        "created": now,
        "modified": now,
        "name": name,
        "description": f"{name} (test)",
        "indicator_types": ["malicious-activity"],
        "pattern": "[network-traffic:dst_port = 4444]",
        "pattern_type": "stix",
        "valid_from": now,
        "object_marking_refs": [marking["id"], *extra],
        "x_gsomia_topic": topic,
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("interop")
    ex = start_exchange(tmp / "ex")
    ops, low, coalition = Collector(), Collector(), Collector()
    tcp_in, udp_in = free_port(), free_port()
    jpn_cfg = {
        "taxii": {"topic_collections": ["dprk.missile"]},
        "cot": {
            "listen": [
                {"proto": "tcp", "host": "127.0.0.1", "port": tcp_in},
                {"proto": "udp", "host": "127.0.0.1", "port": udp_in},
            ],
            "rules": [
                {"type_prefix": "a-h-A-M-B", "topic": "dprk.missile.launch", "level": "極秘", "recipients": ["KOR"]},
                {"type_prefix": "a-h-A-M-C", "topic": "dprk.missile.launch", "level": "秘", "recipients": ["KOR"]},
                {
                    "type_prefix": "a-h-A-M-F",
                    "topic": "dprk.missile.launch",
                    "level": "極秘",
                    "recipients": ["KOR"],
                    "rel_to": ["KOR", "USA"],
                },
            ],
        },
    }
    kor_cfg = {
        "taxii": {"topic_collections": ["dprk.missile", "dprk.nuclear"]},
        "cot": {
            "outputs": [
                {
                    "name": "ops",
                    "url": f"tcp://127.0.0.1:{ops.port}",
                    "cleared_to": "군사II급비밀",
                    "audience": ["KOR"],
                },
                {
                    "name": "low",
                    "url": f"tcp://127.0.0.1:{low.port}",
                    "cleared_to": "군사III급비밀",
                    "audience": ["KOR"],
                },
                {
                    "name": "coalition",
                    "url": f"tcp://127.0.0.1:{coalition.port}",
                    "cleared_to": "군사II급비밀",
                    "audience": ["KOR", "USA"],
                },
            ]
        },
    }
    nodes: list[Node] = []
    try:
        nodes.append(start_node(ex, "JPN", tmp, jpn_cfg))
        nodes.append(start_node(ex, "KOR", tmp, kor_cfg))
        yield {
            "ex": ex,
            "jpn": nodes[0],
            "kor": nodes[1],
            "tcp_in": tcp_in,
            "udp_in": udp_in,
            "ops": ops,
            "low": low,
            "coalition": coalition,
            "tmp": tmp,
        }
    finally:
        for n in nodes:
            n.stop()
        for c in (ops, low, coalition):
            c.close()
        ex.stop()


def root_of(node: Node, user: str = "analyst") -> ApiRoot:
    server = Server(node.taxii, user=user, password=PASSWORD)
    assert server.title.startswith("gsomia node")
    assert len(server.api_roots) == 1 and server.default.url == server.api_roots[0].url
    return server.api_roots[0]


def collection(root: ApiRoot, alias: str) -> Collection:
    return next(c for c in root.collections if c.alias == alias)


def valid(obj: dict[str, Any]) -> None:
    result = validate_instance(obj, ValidationOptions(version="2.1"))
    assert result.is_valid, [str(e) for e in result.errors]


def test_discovery_and_collections_as_taxii2_client_sees_them(world: dict[str, Any]) -> None:
    root = root_of(world["kor"])
    assert root.versions == [TAXII] and root.max_content_length > 0
    seen = {c.alias: (c.can_read, c.can_write) for c in root.collections}
    assert seen == {
        "inbox": (True, False),
        "outbox": (False, True),
        "inbox-dprk.missile": (True, False),
        "inbox-dprk.nuclear": (True, False),
    }
    for c in root.collections:
        uuid.UUID(c.id)  # collection ids are identifiers (TAXII 2.1 §2)
        assert c.media_types == ["application/stix+json;version=2.1"]


def test_jpn_sends_through_the_exchange_and_kor_reads_its_inbox(world: dict[str, Any]) -> None:
    jpn, kor = world["jpn"], world["kor"]
    outbox = collection(root_of(jpn), "outbox")
    launch = indicator("launch detected", JPN_SECRET)
    relayable = indicator("track shared with USA", JPN_SECRET_REL_USA, extra=[TLP_RED])
    unmarked = {**indicator("unmarked", JPN_SECRET), "object_marking_refs": []}
    status = outbox.add_objects({"objects": [JPN_SECRET, JPN_SECRET_REL_USA, launch, relayable, unmarked]})
    assert status.status == "complete" and status.total_count == 5
    assert status.success_count == 4 and status.failure_count == 1 and status.pending_count == 0
    (failure,) = status.failures
    assert failure["id"] == unmarked["id"] and "no national marking" in failure["message"]
    sent = {s["id"]: s["message"] for s in status.successes}
    assert "delivered: KOR" in sent[launch["id"]] and "report stix-" in sent[launch["id"]]
    # Two markings, one topic: two reports, each with its own id.
    assert sent[launch["id"]].split(":")[0] != sent[relayable["id"]].split(":")[0]

    # Sending the same again is no error (TAXII 2.1 §5.5) and sends nothing twice.
    again = outbox.add_objects({"objects": [launch]})
    assert again.status == "complete" and again.successes[0]["message"] == "already sent"

    inbox = collection(root_of(kor), "inbox")
    wanted = {launch["id"], relayable["id"]}

    def arrived() -> dict[str, Any] | None:
        env = inbox.get_objects()
        return env if wanted <= {o["id"] for o in env.get("objects", [])} else None

    env = wait_for(arrived, what="KOR's inbox")
    objs = {o["id"]: o for o in env["objects"]}
    for o in env["objects"]:
        valid(o)
    got = objs[launch["id"]]
    # The original object, as signed, plus the translated marking and the originator's identity.
    assert {k: v for k, v in got.items() if k not in ("object_marking_refs", "created_by_ref")} == {
        k: v for k, v in launch.items() if k != "object_marking_refs"
    }
    translated = next(objs[r] for r in got["object_marking_refs"] if r != JPN_SECRET["id"])
    ext = translated["extensions"][NATIONAL_MARKING_EXTENSION]
    assert ext["party"] == "KOR" and ext["level"] == "군사II급비밀"
    assert ext["originator_marking"] == {
        "party": "JPN",
        "level": "極秘",
        "caveats": {"noforn": False, "orcon": False},
    }
    assert ext["agreement"] == "JPN-KOR-GSOMIA" and ext["common_level"] == "SECRET"
    assert ext["delivery"]["delivery_id"].startswith("d-") and ext["delivery"]["ledger_index"] > 0
    assert translated["name"] == "군사II급비밀 (JPN 極秘)"
    identity = objs[got["created_by_ref"]]
    assert (
        identity["type"] == "identity" and identity["name"] == "JPN" and translated["created_by_ref"] == identity["id"]
    )
    # TLP:RED read as ORCON: the report went out ORCON, and the recipient's marking says so.
    rel = objs[relayable["id"]]
    rel_marking = next(objs[r] for r in rel["object_marking_refs"] if r not in (JPN_SECRET_REL_USA["id"], TLP_RED))
    assert rel_marking["extensions"][NATIONAL_MARKING_EXTENSION]["caveats"] == {
        "rel_to": ["KOR", "USA"],
        "noforn": False,
        "orcon": True,
    }
    assert unmarked["id"] not in objs
    # The topic collection holds the same.
    topic_view = collection(root_of(kor), "inbox-dprk.missile").get_objects(type="indicator")
    assert {o["id"] for o in topic_view["objects"]} >= {launch["id"], relayable["id"]}
    # No nuclear delivery: that view holds only what every view serves, the definitions and
    # identities objects of any topic reference (docs/interop.md §3.2).
    nuclear = collection(root_of(kor), "inbox-dprk.nuclear").get_objects().get("objects", [])
    assert {o["type"] for o in nuclear} <= {"marking-definition", "extension-definition", "identity"}, nuclear
    assert not [o for o in nuclear if o["type"] == "marking-definition" and "delivery_id" in json.dumps(o)]


def test_status_polling_added_after_match_and_pages(world: dict[str, Any]) -> None:
    jpn, kor = world["jpn"], world["kor"]
    conn = _HTTPConnection(user="analyst", password=PASSWORD, version="2.1")
    conn.session.headers["Prefer"] = "respond-async"  # RFC 7240: answer at once, let the client poll
    outbox = Collection(collection(root_of(jpn), "outbox").url, conn=conn)
    batch = [indicator(f"track {i}", JPN_SECRET) for i in range(7)]
    status = outbox.add_objects(
        {"objects": [JPN_SECRET, *batch]}, wait_for_completion=True, poll_interval=1, timeout=60
    )
    assert status.status == "complete" and status.success_count == 8 and status.failure_count == 0
    ids = {o["id"] for o in batch}

    inbox = collection(root_of(kor), "inbox")
    wait_for(
        lambda: ids <= {o["id"] for o in inbox.get_objects(type="indicator").get("objects", [])},
        what="the batch in KOR's inbox",
    )
    first = inbox.get_objects(limit=1)
    mark = inbox._conn.session.get(inbox.objects_url, params={"limit": 1}, headers={"Accept": TAXII})
    added_first = mark.headers["X-TAXII-Date-Added-First"]
    assert mark.headers["X-TAXII-Date-Added-Last"] == added_first and first["more"] is True
    later = inbox.get_objects(added_after=added_first)
    assert first["objects"][0]["id"] not in {o["id"] for o in later["objects"]}

    by_id = inbox.get_objects(id=",".join(sorted(ids)[:3]))
    assert {o["id"] for o in by_id["objects"]} == set(sorted(ids)[:3])
    manifests = inbox.get_manifest(type="indicator")
    assert all(set(m) == {"id", "date_added", "version", "media_type"} for m in manifests["objects"])

    pages = list(as_pages(inbox.get_objects, per_request=2, type="indicator"))
    paged = [o["id"] for p in pages for o in p.get("objects", [])]
    assert len(pages) > 3 and all(len(p["objects"]) <= 2 for p in pages)
    assert len(paged) == len(set(paged)) and ids <= set(paged)

    one = sorted(ids)[0]
    assert inbox.get_object(one)["objects"][0]["id"] == one
    versions = inbox.object_versions(one)
    assert len(versions["versions"]) == 1 and versions["more"] is False


def test_stix2_taxii_collection_source(world: dict[str, Any]) -> None:
    inbox = collection(root_of(world["kor"]), "inbox")
    source = stix2.TAXIICollectionSource(inbox, allow_custom=True)
    indicators = source.query([stix2.Filter("type", "=", "indicator")])
    assert indicators and all(i.type == "indicator" for i in indicators)
    one = source.get(indicators[0].id)
    assert one.id == indicators[0].id
    markings = source.query([stix2.Filter("type", "=", "marking-definition")])
    assert any(NATIONAL_MARKING_EXTENSION in (m.get("extensions") or {}) for m in markings)


def test_bearer_tokens_roles_and_errors(world: dict[str, Any]) -> None:
    kor = world["kor"]
    made = kor.cli("taxii-tokens", "add", "analyst", "--name", "opencti")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    inbox_url = collection(root_of(kor), "inbox").url
    outbox_url = collection(root_of(kor), "outbox").url
    with httpx.Client(timeout=30) as h:
        ok = h.get(inbox_url + "objects/", headers={"Accept": TAXII, "Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.headers["content-type"] == TAXII

        def err(r: httpx.Response, status: int) -> dict[str, Any]:
            assert r.status_code == status, r.text
            assert r.headers["content-type"] == TAXII
            body: dict[str, Any] = r.json()
            assert body["http_status"] == str(status) and body["title"]
            return body

        none = h.get(kor.taxii, headers={"Accept": TAXII})
        err(none, 401)
        assert "Basic" in none.headers["www-authenticate"] and "Bearer" in none.headers["www-authenticate"]
        err(h.get(kor.taxii, headers={"Accept": TAXII}, auth=("analyst", "wrong password!")), 401)
        err(h.get(kor.taxii, headers={"Accept": TAXII, "Authorization": "Bearer gtx_nope"}), 401)
        auth = ("analyst", PASSWORD)
        err(h.get(outbox_url + "objects/", headers={"Accept": TAXII}, auth=auth), 403)
        post = {"Accept": TAXII, "Content-Type": TAXII}
        err(h.post(inbox_url + "objects/", headers=post, auth=auth, content=b'{"objects": []}'), 403)
        err(h.get(kor.taxii + "api/collections/nope/objects/", headers={"Accept": TAXII}, auth=auth), 404)
        err(h.get(kor.taxii, headers={"Accept": "application/taxii+json;version=2.0"}, auth=auth), 406)
        err(h.get(kor.taxii, headers={"Accept": "text/html"}, auth=auth), 406)
        err(
            h.post(
                outbox_url + "objects/", headers={**post, "Content-Type": "application/json"}, auth=auth, content=b"{}"
            ),
            415,
        )
        err(h.post(outbox_url + "objects/", headers=post, auth=auth, content=b"not json"), 422)
        err(h.post(outbox_url + "objects/", headers=post, auth=auth, content=b'{"objects": []}'), 422)
        err(h.get(inbox_url + "objects/", params={"limit": "0"}, headers={"Accept": TAXII}, auth=auth), 400)
        err(h.get(inbox_url + "objects/", params={"next": "12-bogus"}, headers={"Accept": TAXII}, auth=auth), 400)
        err(
            h.get(inbox_url + "objects/", params={"added_after": "yesterday"}, headers={"Accept": TAXII}, auth=auth),
            400,
        )
        err(h.delete(inbox_url + f"objects/{JPN_SECRET['id']}/", headers={"Accept": TAXII}, auth=auth), 403)
        err(h.get(kor.taxii + "api/status/nope/", headers={"Accept": TAXII}, auth=auth), 404)
        revoked = kor.cli("taxii-tokens", "list", "--json")
        token_id = __import__("json").loads(revoked.stdout)["tokens"][0]["id"]
        assert kor.cli("taxii-tokens", "revoke", token_id).returncode == 0
        err(h.get(inbox_url + "objects/", headers={"Accept": TAXII, "Authorization": f"Bearer {token}"}), 401)


def test_the_same_queries_against_medallion(world: dict[str, Any]) -> None:
    """The protocol shapes agree with the reference server. Intended differences:
    - medallion answers 406 to ``Accept: */*``; the node serves it (RFC 9110 §12.5.1);
    - medallion's collections can be read and written by anyone with a login; the node's inbox is
      read-only, its outbox write-only, per role;
    - medallion stores any object; the node refuses an object without a national marking
      (a failure in the status resource) and sends the rest as signed reports;
    - a POST to medallion completes in the request; the node's completes when the exchange has
      decided, or answers ``pending`` at once under ``Prefer: respond-async``;
    - objects in the node's inbox carry the delivery's translated marking;
    - DELETE is 403 on the node (no collection is both readable and writable).
    """
    kor, jpn = world["kor"], world["jpn"]
    with serve_medallion(world["tmp"]) as med:
        ref = Server(med.taxii, user=MED_USER, password=MED_PASSWORD)
        ref_coll = ref.api_roots[0].collections[0]
        sample = [JPN_SECRET, *[indicator(f"ref {i}", JPN_SECRET) for i in range(5)]]
        ref_status = ref_coll.add_objects({"objects": sample})
        ours_status = collection(root_of(jpn), "outbox").add_objects({"objects": sample})
        for st in (ref_status, ours_status):
            assert st.status == "complete" and st.total_count == 6 and st.success_count == 6
        assert set(ref_status._raw) <= set(ours_status._raw) | {"pendings", "failures"}

        ours_inbox = collection(root_of(kor), "inbox")
        ids = {o["id"] for o in sample[1:]}
        wait_for(
            lambda: ids <= {o["id"] for o in ours_inbox.get_objects(type="indicator").get("objects", [])},
            what="KOR's inbox",
        )
        auth_ref, auth_ours = (MED_USER, MED_PASSWORD), ("analyst", PASSWORD)
        ref_url, ours_url = ref_coll.url + "objects/", ours_inbox.url + "objects/"
        with httpx.Client(timeout=30) as h:
            for params in ({"limit": "2"}, {"match[type]": "indicator"}, {"match[version]": "all", "limit": "3"}):
                a = h.get(ref_url, params=params, headers={"Accept": TAXII}, auth=auth_ref)
                b = h.get(ours_url, params=params, headers={"Accept": TAXII}, auth=auth_ours)
                assert a.status_code == b.status_code == 200
                assert a.headers["content-type"] == b.headers["content-type"] == TAXII
                for r in (a, b):
                    assert {"x-taxii-date-added-first", "x-taxii-date-added-last"} <= set(r.headers)
                    assert set(r.json()) <= {"more", "next", "objects"}
                assert a.json().get("more") == b.json().get("more")
                if a.json().get("more"):
                    assert isinstance(a.json()["next"], str) and isinstance(b.json()["next"], str)
            for path, headers, status in (
                ("", {"Accept": "application/taxii+json;version=2.0"}, 406),
                ("nope/", {"Accept": TAXII}, 404),
            ):
                a = h.get(
                    ref.url if not path else ref_url.replace(med.collection, "nope"), headers=headers, auth=auth_ref
                )
                b = h.get(
                    kor.taxii if not path else ours_url.replace(ours_inbox.id, "nope"), headers=headers, auth=auth_ours
                )
                assert a.status_code == b.status_code == status
                assert {"title", "http_status"} <= set(a.json()) and {"title", "http_status"} <= set(b.json())
            assert (
                h.get(ref.url, headers={"Accept": TAXII}).status_code
                == h.get(kor.taxii, headers={"Accept": TAXII}).status_code
                == 401
            )
            bad_ct = {"Accept": TAXII, "Content-Type": "application/json"}
            assert h.post(ref_url, headers=bad_ct, auth=auth_ref, content=b"{}").status_code == 415
            outbox_url = collection(root_of(jpn), "outbox").url + "objects/"
            assert h.post(outbox_url, headers=bad_ct, auth=("analyst", PASSWORD), content=b"{}").status_code == 415
            assert h.get(ref_url, params={"limit": "-1"}, headers={"Accept": TAXII}, auth=auth_ref).status_code == 400
            assert h.get(ours_url, params={"limit": "-1"}, headers={"Accept": TAXII}, auth=auth_ours).status_code == 400
            # Intended: */* is served by the node, refused by medallion.
            assert h.get(ref.url, headers={"Accept": "*/*"}, auth=auth_ref).status_code == 406
            assert h.get(kor.taxii, headers={"Accept": "*/*"}, auth=auth_ours).status_code == 200


def _cot(kind: str, uid: str) -> bytes:
    now = datetime.now(UTC)
    t = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    stale = (now + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><event version="2.0" uid="{uid}" type="{kind}" how="m-r" '
        f'time="{t}" start="{t}" stale="{stale}" access="極秘"><point lat="39.04" lon="125.76" hae="950.0" '
        f'ce="50.0" le="50.0"/><detail><track course="95.0" speed="1800.0"/></detail></event>'
    ).encode()


def test_cot_in_at_jpn_out_at_kor_only_where_the_marking_allows(world: dict[str, Any]) -> None:
    ops, low, coalition = world["ops"], world["low"], world["coalition"]

    def tcp(data: bytes) -> None:
        with socket.create_connection(("127.0.0.1", world["tcp_in"]), timeout=5) as s:
            s.sendall(data)

    def udp_tak(data: bytes) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(bytes(xml2proto(data.decode())), ("127.0.0.1", world["udp_in"]))

    # The five tracks enter by different sockets, which nothing orders among themselves: each is
    # sent once the one before it has come out at "ops", so every endpoint's order is known.
    sends: list[Callable[[], None]] = [
        lambda: tcp(_cot("a-h-A-M-B", "track-1")),  # 極秘 → 군사II급비밀: ops only
        lambda: udp_tak(_cot("a-h-A-M-C", "track-2")),  # 秘 → 군사III급비밀: ops and low
        lambda: tcp(_cot("a-h-A-M-F", "track-3") + _cot("a-f-G", "unmapped")),  # REL TO KOR, USA
        lambda: tcp(_cot("a-h-A-M-C", "track-4")),  # ops and low
        lambda: tcp(_cot("a-h-A-M-F", "track-5")),  # ops and coalition
    ]
    for n, send in enumerate(sends, start=1):
        send()
        got = ops.take(n)
    assert [e.get("uid") for e in got] == ["track-1", "track-2", "track-3", "track-4", "track-5"]
    first = got[0]
    assert first.get("access") == "군사II급비밀" and first.get("caveat") == "ORIGINATOR JPN 極秘"
    assert first.get("releasableto") == "JPN KOR" and first.get("type") == "a-h-A-M-B"
    assert first.find("point").get("lat") == "39.04"
    assert got[1].get("access") == "군사III급비밀" and got[1].get("caveat") == "ORIGINATOR JPN 秘"
    assert got[2].get("releasableto") == "JPN KOR USA"
    # TCP keeps each endpoint's order: had track-1 or track-3 gone to "low", they would precede
    # track-4 there; had track-1, -2 or -4 gone to "coalition", they would precede track-5.
    assert [e.get("uid") for e in low.take(2)] == ["track-2", "track-4"]
    assert [e.get("uid") for e in coalition.take(2)] == ["track-3", "track-5"]
    assert all(e.get("access") == "군사III급비밀" for e in low.seen)

    # the bridges' counters, as 'gsomia node status' (another process) reads them: noted by the
    # serving node at most every 5 s, so polled for a while
    def counters(node: Node) -> Any:
        service = NodeService.open(node.dir)  # what 'gsomia node status' reads, in this process
        try:
            return service.status()["cot"]
        finally:
            service.close()

    deadline = time.monotonic() + 30
    while True:
        jpn_cot, kor_cot = counters(world["jpn"]), counters(world["kor"])
        counted = jpn_cot and kor_cot and jpn_cot["in"]["sent"] >= 5 and kor_cot["out"]["sent"] >= 9
        if counted or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert jpn_cot["in"]["unmapped"] >= 1 and jpn_cot["in"]["sent"] >= 5, jpn_cot
    assert kor_cot["out"]["sent"] >= 9 and kor_cot["out"]["dropped"] == 0, kor_cot
    text = world["jpn"].cli("status").stdout
    assert "CoT in:" in text and "unmapped" in text


def test_schema_published_and_markings_valid(world: dict[str, Any]) -> None:
    import json

    import jsonschema

    schema = json.loads((Path(__file__).parents[2] / "docs/interop/gsomia-national-marking.schema.json").read_text())
    inbox = collection(root_of(world["kor"]), "inbox")
    markings = inbox.get_objects(type="marking-definition")["objects"]
    ours = [
        m["extensions"][NATIONAL_MARKING_EXTENSION]
        for m in markings
        if NATIONAL_MARKING_EXTENSION in m.get("extensions", {})
    ]
    assert any("originator_marking" in e for e in ours) and any("originator_marking" not in e for e in ours)
    for ext in ours:
        jsonschema.validate(ext, schema)


def test_every_object_served_passes_the_stix2_validator(world: dict[str, Any]) -> None:
    # Last in the module: by now both nodes hold what every test above sent and received.
    served: dict[str, dict[str, Any]] = {}
    for node in (world["jpn"], world["kor"]):
        for c in root_of(node, "chief").collections:
            if not c.can_read:
                continue
            for page in as_pages(c.get_objects, per_request=50):
                for o in page.get("objects", []):
                    valid(o)
                    served[o["id"]] = o
            for page in as_pages(c.get_objects, per_request=50, version="all"):
                for o in page.get("objects", []):
                    valid(o)
    kinds = {o["type"] for o in served.values()}
    assert {"indicator", "marking-definition", "identity", "extension-definition"} <= kinds
    # The extension's own definition is served, as STIX 2.1 §7.3 expects of a producer.
    assert served[NATIONAL_MARKING_EXTENSION]["extension_types"] == ["property-extension"]
