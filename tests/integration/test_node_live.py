"""Three party nodes (JPN, KOR, USA) and one exchange, over real sockets, on the bundled 2019
scenario in exercise mode under the what-if "the termination took effect".

On 2019-11-22 at 10:00 KST a Japanese officer sends a missile track at 極秘 to Korea through
JPN's node; KOR's node shows it verified as 군사II급비밀 (JPN 極秘), marked EXERCISE. On
2019-12-01 (GSOMIA ended under the what-if) the same goes to Korea only through the US after
JPN's approver consents at JPN's node. A delivery altered in the exchange's database is
quarantined by USA's node; an exchange restarted on a diverged copy of its database is
detected as a fork by every node (``gsomia node status`` exits 8, naming both checkpoints).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from gsomia.node.service import NodeService
from gsomia.node.users import Role, Session
from tests.integration.conftest import TLS, Server, free_port, start_server
from tests.integration.exchange_support import Exchange, start_exchange, wait_for

pytestmark = pytest.mark.slow

TRACK = {"launch": "2019-11-22T09:51+09:00", "track": [[39.7, 127.1, 0], [40.9, 133.25, 380]]}
WHATIF = "name: termination-took-effect\ndrop: [jpn-kor-2019-suspension]\n"
PASSWORD = "correct horse battery staple"


def gsomia(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gsomia", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=120,
        check=False,
    )


@dataclass
class Node:
    party: str
    dir: Path
    url: str = ""
    proc: subprocess.Popen[bytes] | None = None
    sessions: dict[str, httpx.Client] = field(default_factory=dict)

    def cli(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        p = gsomia("node", *args, "--dir", str(self.dir))
        assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
        return p

    def serve(self, port: int | None = None) -> None:
        port = port or free_port()
        log = (self.dir.parent / f"{self.party}-node.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gsomia",
                "node",
                "serve",
                "--dir",
                str(self.dir),
                "--port",
                str(port),
                "--witness-interval",
                "1",
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return httpx.get(self.url + "/api/status", timeout=1, verify=TLS).status_code == 401
            except httpx.TransportError:
                return False

        wait_for(ready, timeout=60, what=f"{self.party}'s node to listen")

    def login(self, user: str, password: str = PASSWORD) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=30, verify=TLS)
        r = client.post("/api/session", json={"username": user, "password": password})
        assert r.status_code == 200, r.text
        client.headers["X-CSRF-Token"] = r.json()["csrf"]
        self.sessions[user] = client
        return client

    def stop(self) -> None:
        for client in self.sessions.values():
            client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)


@dataclass
class World:
    ex: Exchange
    nodes: dict[str, Node]
    snapshot: Path


def _snapshot(ex: Exchange, into: Path) -> Path:
    """A consistent copy of the exchange's database and secrets (SQLite online backup)."""
    into.mkdir()
    source = sqlite3.connect(ex.db.removeprefix("sqlite:///"))
    with sqlite3.connect(into / "gsomia.db") as target:
        source.backup(target)
    source.close()
    for name in ("exchange.kek", "exchange-ledger.key"):
        if (ex.data_dir / name).exists():
            shutil.copy2(ex.data_dir / name, into / name)
    return into


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("nodes")
    ex = start_exchange(base / "exchange", exercise_clock="2019-11-22T10:00+09:00", whatif=WHATIF)
    snapshot = _snapshot(ex, base / "snapshot")
    nodes: dict[str, Node] = {}
    try:
        for party in ("JPN", "KOR", "USA"):
            token = base / f"{party}.token"
            token.write_text(ex.tokens[party] + "\n")
            node = Node(party, base / party.lower())
            p = gsomia(
                "node", "init", "--party", party, "--exchange", ex.url, "--key", str(ex.client_dir / f"{party}.keys"),
                "--token-file", str(token), "--dir", str(node.dir), "--json",
            )  # fmt: skip
            assert p.returncode == 0, p.stderr
            assert json.loads(p.stdout)["registered"] is True
            assert (node.dir / "node.key").stat().st_mode & 0o777 == 0o600
            nodes[party] = node
        for party, user, role in (("JPN", "duty", "officer"), ("JPN", "approver", "approver"), ("JPN", "chief", "admin"), ("KOR", "chief", "admin")):  # fmt: skip
            service = NodeService.open(nodes[party].dir)  # as 'gsomia node users add' does
            try:
                service.add_user(user, PASSWORD, role, "cli")
            finally:
                service.close()
        for party in ("JPN", "KOR"):
            nodes[party].serve()
        yield World(ex, nodes, snapshot)
    finally:
        for node in nodes.values():
            node.stop()
        ex.stop()


def inbox(node: Node, user: str, **params: Any) -> list[dict[str, Any]]:
    r = node.sessions[user].get("/api/inbox", params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def arrived(node: Node, user: str, report: str) -> dict[str, Any] | None:
    items = [i for i in inbox(node, user) if i["report_id"] == report and i["state"] != "pending"]
    return items[0] if items else None


def test_direct_story_jpn_sends_kyokuhi_and_kor_sees_class_ii_verified(world: World) -> None:
    jpn, kor = world.nodes["JPN"], world.nodes["KOR"]
    duty = jpn.login("duty")
    spec = {"topic": "dprk.missile.launch", "level": "極秘", "recipients": ["KOR"], "caveats": {"rel_to": None}}
    preview = duty.post("/api/preview", json=spec)
    assert preview.status_code == 200, preview.text
    (kor_preview,) = preview.json()["recipients"]
    assert (kor_preview["decision"], kor_preview["via"], kor_preview["translated_level"]) == (
        "direct",
        None,
        "군사II급비밀",
    )
    assert preview.json()["at"].startswith("2019-11-22T01:")  # the exchange's exercise clock

    sent = duty.post("/api/submit", json=spec | {"content_type": "application/json", "payload": TRACK})
    assert sent.status_code == 201, sent.text
    report = sent.json()["report"]
    assert sent.json()["recipients"][0]["outcome"] == "delivered"

    kor.login("chief")
    item = wait_for(lambda: arrived(kor, "chief", report), what="KOR's node to verify the track")
    assert item["state"] == "verified" and item["reason"] is None
    assert item["banner"] == "EXERCISE 군사II급비밀 (JPN 極秘)"
    assert (item["level"], item["originator_marking"]["level"], item["exercise"]) == ("군사II급비밀", "極秘", True)
    detail = kor.sessions["chief"].get(f"/api/deliveries/{item['delivery_id']}").json()
    assert detail["payload"]["json"] == TRACK
    v = detail["verification"]
    assert v["signature"] == "ok" and v["inclusion"]["ok"] and v["submission_inclusion"]["ok"]
    assert v["inclusion"]["size"] > v["inclusion"]["index"]
    # search in decrypted content, and filters
    assert [i["report_id"] for i in inbox(kor, "chief", q="133.25")] == [report]
    assert inbox(kor, "chief", q="no such words") == []
    assert [i["report_id"] for i in inbox(kor, "chief", originator="JPN", level="군사II급비밀", state="verified")] == [
        report
    ]

    ack = kor.sessions["chief"].post(f"/api/deliveries/{item['delivery_id']}/ack", json={})
    assert ack.status_code == 200 and ack.json()["acknowledged"] is True
    # officers' actions are attributed in each node's own audit log
    audit = kor.sessions["chief"].get("/api/audit").json()["items"]
    assert any(a["action"] == "acknowledge" and a["user"] == "chief" for a in audit)
    chief = jpn.login("chief")
    assert any(
        a["action"] == "submit" and a["user"] == "duty" and a["target"] == report
        for a in chief.get("/api/audit").json()["items"]
    )
    assert duty.get("/api/audit").status_code == 403  # an officer reads no audit log


def test_relay_story_consent_at_jpn_node_then_kor_receives_via_usa(world: World) -> None:
    jpn, kor = world.nodes["JPN"], world.nodes["KOR"]
    moved = world.ex.call("operator", "POST", "/api/v1/exercise/clock", json={"at": "2019-12-01T10:00+09:00"})
    assert moved.status_code == 200, moved.text
    duty = jpn.sessions["duty"]
    spec = {"topic": "dprk.missile.launch", "level": "極秘", "recipients": ["KOR"], "caveats": {}}
    (kor_preview,) = duty.post("/api/preview", json=spec).json()["recipients"]
    assert (kor_preview["decision"], kor_preview["via"], kor_preview["needs_consent"]) == ("relay", "USA", True)
    sent = duty.post("/api/submit", json=spec | {"payload": "track 2019-12-01: see attached"})
    assert sent.status_code == 201, sent.text
    report = sent.json()["report"]
    assert sent.json()["recipients"][0]["outcome"] == "pending_consent"

    pending = [c for c in duty.get("/api/consents").json()["items"] if c["report"] == report]
    assert [(c["recipient"], c["hub"], c["exercise"]) for c in pending] == [("KOR", "USA", True)]
    consent = pending[0]["id"]
    refused = duty.post(f"/api/consents/{consent}", json={"grant": True, "reason": "urgent"})
    assert refused.status_code == 403  # an officer may not consent
    approver = jpn.login("approver")
    answer = approver.post(f"/api/consents/{consent}", json={"grant": True, "reason": "TISA relay, launch warning"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "granted" and answer.json()["outcome"]["relayed"] is True

    item = wait_for(lambda: arrived(kor, "chief", report), what="KOR's node to verify the relayed track")
    assert (item["state"], item["via"], item["purpose"]) == ("verified", "USA", "relay_onward")
    assert item["banner"] == "EXERCISE 군사II급비밀 (JPN 極秘)"
    audit = jpn.sessions["chief"].get("/api/audit").json()["items"]
    assert any(a["action"] == "grant_consent" and a["user"] == "approver" and a["target"] == consent for a in audit)


def test_a_restarted_node_resumes_from_its_cursor_without_duplicates(world: World) -> None:
    kor, ex = world.nodes["KOR"], world.ex
    before = inbox(kor, "chief")
    kor.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    kor.proc.wait(timeout=20)  # type: ignore[union-attr]
    sent = []
    for i in range(2):  # made while KOR's node is down
        r = ex.submit("USA", report_id=f"while-down-{i}", level="SECRET", recipients=["KOR"])
        assert r.status_code == 201 and r.json()["recipients"][0]["outcome"] == "delivered", r.text
        sent.append(f"while-down-{i}")
    kor.serve(int(kor.url.rsplit(":", 1)[1]))
    # the officer's session survives the restart (it is in the store)
    after = wait_for(
        lambda: (
            (items := inbox(kor, "chief"))
            and len([i for i in items if i["state"] == "verified"]) == len(before) + 2
            and items
        ),
        what="KOR's node to catch up after its restart",
    )
    assert sorted(i["report_id"] for i in after if i["report_id"] not in {b["report_id"] for b in before}) == sent
    assert len({i["delivery_id"] for i in after}) == len(after) == len(before) + 2
    assert all(i["banner"] == "EXERCISE 군사II급비밀 (USA SECRET)" for i in after if i["report_id"] in sent)


def test_altered_deliveries_are_quarantined_with_their_reason(world: World) -> None:
    usa, ex = world.nodes["USA"], world.ex
    password = usa.dir.parent / "usa-password"
    password.write_text(PASSWORD + "\n")
    usa.cli("users", "add", "duty", "--role", "officer", "--password-file", str(password))
    listed = json.loads(usa.cli("users", "list", "--json").stdout)["items"]
    assert [(u["username"], u["role"], u["active"]) for u in listed] == [("duty", "officer", True)]
    usa.cli("sync", "--once")  # what reached USA so far (the relay's hub delivery) verifies
    reports = []
    for rid in ("altered-payload", "altered-signature", "altered-marking"):
        r = ex.submit("JPN", report_id=rid, recipients=["USA"])
        assert r.status_code == 201, r.text
        reports.append(rid)
    with sqlite3.connect(ex.db.removeprefix("sqlite:///")) as db:
        (blob,) = db.execute("SELECT payload FROM exchange_reports WHERE id = 'JPN/altered-payload'").fetchone()
        db.execute(
            "UPDATE exchange_reports SET payload = ? WHERE id = 'JPN/altered-payload'",
            (blob[:-1] + bytes([blob[-1] ^ 1]),),
        )
        db.execute(
            "UPDATE exchange_reports SET signature = ? WHERE id = 'JPN/altered-signature'",
            ("A" * 86 + "==",),
        )
        # served with another marking than the one the ledger recorded for the delivery
        db.execute(
            "UPDATE deliveries SET marking = json_set(marking, '$.recipient_level', 'TOP SECRET') "
            "WHERE report_id = 'JPN/altered-marking'"
        )
    result = json.loads(usa.cli("sync", "--once", "--json").stdout)
    assert (result["verified"], result["quarantined"]) == (0, 3)
    service = NodeService.open(usa.dir)
    try:
        quarantined = {i["report_id"]: i for i in service.inbox(state="quarantined")["items"]}
        assert quarantined["altered-payload"]["reason"] == "decryption_failed"
        assert quarantined["altered-signature"]["reason"] == "signature"
        assert quarantined["altered-marking"]["reason"] == "not_in_ledger"
        officer = Session(username="duty", role=Role.OFFICER, csrf="-", token_sha256="-")
        shown = service.delivery(quarantined["altered-signature"]["delivery_id"], officer)
        assert shown["payload"] is None and shown["state"] == "quarantined"
        assert "does not verify" in shown["verification"]["detail"]
        assert service.inbox(state="verified")["items"][0]["purpose"] == "relay_hub"
    finally:
        service.close()
    status = json.loads(usa.cli("status", "--json").stdout)
    assert status["deliveries"]["quarantined"] == 3


def test_keys_rotate_and_the_retired_key_still_opens_older_deliveries(world: World) -> None:
    usa, ex = world.nodes["USA"], world.ex
    before = ex.submit("JPN", report_id="before-rotation", recipients=["USA"])
    assert before.status_code == 201, before.text
    old = json.loads(usa.cli("keys", "list", "--json").stdout)["current"]["fingerprint"]
    rotated = json.loads(usa.cli("keys", "rotate", "--json").stdout)
    assert rotated["fingerprint"] != old and rotated["state"] == "current"
    registered = ex.call("USA", "GET", "/api/v1/parties/USA/keys").json()["keys"]
    assert any(k["fingerprint"] == rotated["fingerprint"] and k["current"] for k in registered)
    after = ex.submit("JPN", report_id="after-rotation", recipients=["USA"])
    assert after.status_code == 201, after.text
    result = json.loads(usa.cli("sync", "--once", "--json").stdout)
    assert (result["verified"], result["quarantined"]) == (2, 0)  # one opened with the retired key
    history = json.loads(usa.cli("keys", "list", "--json").stdout)["history"]
    assert {(k["fingerprint"], k["state"]) for k in history} == {(old, "retired"), (rotated["fingerprint"], "current")}


def test_incidents_standing_consents_and_live_events(world: World) -> None:
    jpn, kor = world.nodes["JPN"], world.nodes["KOR"]
    chief = kor.sessions["chief"]
    with chief.stream("GET", "/api/events", headers={"Accept": "text/event-stream"}) as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        lines = events.iter_lines()
        assert next(lines) == "event: status"
        assert json.loads(next(lines).removeprefix("data: "))["party"] == "KOR"
    item = next(i for i in inbox(kor, "chief", state="verified") if i["originator"] == "JPN")
    filed = chief.post(
        f"/api/deliveries/{item['delivery_id']}/incidents",
        json={"kind": "loss", "description": "a printed copy is missing"},
    )
    assert filed.status_code == 201, filed.text
    incident = filed.json()["id"]
    # the originator's node is told, and follows up; the reporter's node sees the follow-up
    duty = jpn.sessions["duty"]
    wait_for(
        lambda: any(i["id"] == incident for i in duty.get("/api/incidents").json()["items"]),
        what="JPN's node to learn of the incident",
    )
    answer = duty.post(f"/api/incidents/{incident}", json={"result": "reissued", "measures": "destroy the copy"})
    assert answer.status_code == 200, answer.text
    wait_for(
        lambda: any(i["id"] == incident and i["updates"] for i in chief.get("/api/incidents").json()["items"]),
        what="KOR's node to see the follow-up",
    )
    assert chief.get(f"/api/deliveries/{item['delivery_id']}").json()["incidents"][0]["kind"] == "loss"

    standing = {"topic_prefix": "dprk.missile", "recipient": "KOR", "hub": "USA", "valid_until": "2020-01-31"}
    assert duty.post("/api/standing-consents", json=standing).status_code == 403
    approver = jpn.sessions["approver"]
    made = approver.post("/api/standing-consents", json=standing)
    assert made.status_code == 201, made.text
    listed = duty.get("/api/standing-consents").json()["items"]
    assert [sc["recipient"] for sc in listed if sc["id"] == made.json()["id"]] == ["KOR"]
    revoked = approver.delete(f"/api/standing-consents/{made.json()['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    actions = {a["action"] for a in jpn.sessions["chief"].get("/api/audit", params={"limit": 500}).json()["items"]}
    assert {"follow_up_incident", "standing_consent", "revoke_standing_consent"} <= actions


def test_a_revoked_officer_session_ends_at_once(world: World) -> None:
    kor = world.nodes["KOR"]
    chief = kor.sessions["chief"]
    made = chief.post("/api/users", json={"username": "watch", "password": PASSWORD, "role": "officer"})
    assert made.status_code == 201, made.text
    watch = kor.login("watch")
    assert watch.get("/api/inbox").status_code == 200
    assert watch.get("/api/users").status_code == 403  # an officer administers nobody
    with watch.stream("GET", "/api/events", headers={"Accept": "text/event-stream"}) as events:
        lines = events.iter_lines()
        assert next(lines) == "event: status"
        assert chief.delete("/api/users/watch").status_code == 200
        # the open console's stream ends at once: no keep-alive ping (a comment line) comes first
        after: list[str] = []
        for line in lines:
            assert not line.startswith(":"), f"the revoked officer's event stream is still open: {after}"
            after.append(line)
    assert watch.get("/api/events").status_code == 401
    ended = watch.get("/api/inbox")
    assert ended.status_code == 401
    assert ended.headers["content-type"].startswith("application/problem+json")


def test_a_change_without_the_csrf_token_is_refused(world: World) -> None:
    kor = world.nodes["KOR"]
    chief = kor.sessions["chief"]
    item = inbox(kor, "chief", state="verified")[0]
    bare = httpx.Client(base_url=kor.url, cookies=chief.cookies, timeout=30)
    with bare:
        missing = bare.post(f"/api/deliveries/{item['delivery_id']}/ack", json={})
        wrong = bare.post(f"/api/deliveries/{item['delivery_id']}/ack", json={}, headers={"X-CSRF-Token": "x"})
        read = bare.get("/api/inbox")
    assert (missing.status_code, wrong.status_code, read.status_code) == (403, 403, 200)
    assert missing.json()["type"] == "urn:gsomia:problem:forbidden"
    page = httpx.get(kor.url + "/")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_login_attempts_are_rate_limited(world: World) -> None:
    kor = world.nodes["KOR"]
    with httpx.Client(base_url=kor.url, timeout=30) as c:
        # each claiming another address: without a trusted proxy the header names nobody
        codes = [
            c.post(
                "/api/session",
                json={"username": "chief", "password": f"wrong-{i}"},
                headers={"X-Forwarded-For": f"10.9.8.{i}"},
            ).status_code
            for i in range(5)
        ]
        assert codes == [401] * 5
        throttled = c.post(
            "/api/session", json={"username": "chief", "password": PASSWORD}, headers={"X-Forwarded-For": "10.9.8.99"}
        )
        assert throttled.status_code == 429
        assert 0 < int(throttled.headers["retry-after"]) <= 15 * 60
        # the same address is throttled for any username
        assert c.post("/api/session", json={"username": "someone", "password": PASSWORD}).status_code == 429
    assert kor.sessions["chief"].get("/api/status").status_code == 200  # open sessions go on


def _serve_exchange(ex: Exchange, data_dir: Path, port: int) -> Server:
    return start_server(f"sqlite:///{data_dir / 'gsomia.db'}", data_dir, ex.env, port=port)


def test_an_exchange_restarted_on_a_diverged_copy_is_a_fork_for_every_node(world: World) -> None:
    ex, nodes = world.ex, world.nodes
    seen = max(int(local_status(n)["ledger"]["size"]) for n in nodes.values())
    port = int(ex.url.rsplit(":", 1)[1])
    ex.stop()

    def unreachable(party: str) -> bool:
        return nodes[party].sessions["chief"].get("/api/status").json()["exchange"]["reachable"] is False

    for party in ("JPN", "KOR"):  # an exchange that is down is shown as such
        wait_for(
            partial(unreachable, party),
            what=f"{party}'s node to see the exchange unreachable",
        )
    # The copy taken before the nodes started grows its own history past what they saw, on
    # another port, so that the nodes first meet it larger than their checkpoint (a fork, not
    # a rollback)...
    other = _serve_exchange(ex, world.snapshot, free_port())
    copy = Exchange(other, other.db, world.snapshot, ex.client_dir, ex.tokens, ex.keys, ex.env)
    i = 0
    while copy.counts()[1] <= seen + 2:
        assert copy.submit("JPN", report_id=f"diverged-{i}", recipients=["USA"]).status_code == 201
        i += 1
    other.stop()
    # ...then it comes back where the exchange was.
    diverged = _serve_exchange(ex, world.snapshot, port)
    try:
        nodes["USA"].cli("sync", "--once", code=8)

        def alarmed(node: Node) -> bool:
            status = node.sessions["chief"].get("/api/status").json()
            return status["alarm"] is not None

        for party in ("JPN", "KOR"):
            wait_for(partial(alarmed, nodes[party]), timeout=60, what=f"{party}'s node to raise the alarm")
        outputs = []
        for party, node in nodes.items():
            p = node.cli("status", code=8)
            assert "LEDGER ALARM (fork)" in p.stderr, p.stderr
            assert p.stderr.count(ex_origin(node)) == 2  # both checkpoints are named
            outputs.append(f"$ gsomia node status --dir {party.lower()}  (exit {p.returncode})\n{p.stdout}{p.stderr}")
            alarm = local_status(node)["alarm"]
            assert alarm["kind"] == "fork" and alarm["first"] != alarm["second"]
        print("\n".join(outputs))
    finally:
        diverged.stop()


def local_status(node: Node) -> dict[str, Any]:
    service = NodeService.open(node.dir)
    try:
        return service.status()
    finally:
        service.close()


def ex_origin(node: Node) -> str:
    return str(json.loads((node.dir / "node.json").read_text())["ledger_origin"])
