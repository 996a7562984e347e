"""The node's application in process: problem documents, headers, sessions and roles."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import update
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from gsomia.client.http import ExchangeClient
from gsomia.crypto import PartyKeys
from gsomia.crypto.ledger_key import LedgerKey
from gsomia.crypto.signing import ExchangeSigner
from gsomia.errors import ExchangeUnreachable
from gsomia.node import app as node_app
from gsomia.node.app import CSP, create_node_app
from gsomia.node.config import NodeConfig
from gsomia.node.service import NodeService
from gsomia.node.store import NodeStore, sessions
from gsomia.node.users import Role, UserService
from tests.unit.node.support import store_verified

PASSWORD = "correct horse battery staple"


Client = httpx.AsyncClient


def run(app: FastAPI, test: Callable[[Client], Awaitable[None]]) -> None:
    """Run ``test`` with a client of ``app`` in process (cookies kept between its requests)."""

    async def go() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://node.test") as c:
            await test(c)

    anyio.run(go)


def kor_node(tmp_path: Path) -> NodeService:
    """KOR's node over a fresh store, its exchange unreachable."""
    store = NodeStore(tmp_path / "node.db", secrets.token_bytes(32))
    key = LedgerKey(name="gsomia.test/ledger", public_key=ExchangeSigner.generate().public_key_raw())
    store.put("ledger.key", key.vkey())
    return NodeService(NodeConfig(party="KOR", exchange="http://127.0.0.1:9", dir=tmp_path), store)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    service = kor_node(tmp_path)
    service.users = UserService(service.store, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    service.users.add("chief", PASSWORD, Role.ADMIN, by="test")
    service.users.add("duty", PASSWORD, Role.OFFICER, by="test")
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html><title>console</title>")
    yield create_node_app(service, web_dir=web)
    service.close()


async def login(client: Client, user: str) -> str:
    r = await client.post("/api/session", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
    return str(r.json()["csrf"])


def test_errors_are_problem_documents_and_every_answer_has_the_csp(app: FastAPI) -> None:
    async def test(client: Client) -> None:
        r = await client.get("/api/inbox")
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] == "urn:gsomia:problem:not-authenticated"
        assert r.headers["content-security-policy"] == CSP and r.headers["x-frame-options"] == "DENY"
        assert (await client.get("/api/nothing")).json()["type"] == "urn:gsomia:problem:not-found"
        bad = await client.post("/api/session", json={"username": "chief"})
        assert bad.status_code == 422 and bad.json()["type"] == "urn:gsomia:problem:invalid-request"
        body = b"{" + b" " * (2 * 1024 * 1024) + b"}"
        huge = await client.post("/api/session", content=body, headers={"content-type": "application/json"})
        assert huge.status_code == 413 and huge.headers["content-security-policy"] == CSP
        page = await client.get("/")
        assert page.status_code == 200 and "console" in page.text and page.headers["content-security-policy"] == CSP

    run(app, test)


def test_a_mounted_application_judges_its_own_bodies_and_every_answer_has_the_headers(tmp_path: Path) -> None:
    # TAXII publishes a max_content_length of its own (10 MiB): the node's 1 MiB limit on its API
    # must not cut an envelope short of it, and a chunked upload to the API is counted.
    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"].endswith("/boom"):
            raise RuntimeError("a bug")
        size, more = 0, True
        while more:
            message = await receive()
            size, more = size + len(message.get("body", b"")), message.get("more_body", False)
        await PlainTextResponse(str(size))(scope, receive, send)

    service = kor_node(tmp_path)
    node = create_node_app(service, mounts={"/taxii2": mounted}, web_dir=tmp_path)

    async def chunks(n: int) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield b" " * 65536

    async def test(client: Client) -> None:
        big = await client.post("/taxii2/api/", content=b"x" * (3 * 1024 * 1024))
        assert (big.status_code, big.text) == (200, str(3 * 1024 * 1024))
        assert big.headers["content-security-policy"] == CSP and big.headers["x-frame-options"] == "DENY"
        boom = await client.get("/taxii2/boom")
        assert boom.status_code == 500 and boom.json()["type"] == "urn:gsomia:problem:internal"
        assert boom.headers["content-security-policy"] == CSP
        chunked = await client.post("/api/session", content=chunks(20), headers={"content-type": "application/json"})
        assert chunked.status_code == 413 and chunked.headers["connection"] == "close"
        assert chunked.headers["cache-control"] == "no-store"

    run(node, test)
    service.close()


def test_sessions_roles_and_csrf(app: FastAPI) -> None:
    async def test(client: Client) -> None:
        csrf = await login(client, "duty")
        me = (await client.get("/api/session")).json()
        assert me == {"user": "duty", "role": "officer", "party": "KOR", "csrf": csrf}
        assert (await client.get("/api/users")).status_code == 403
        assert (await client.get("/api/inbox", params={"state": "odd"})).status_code == 422
        assert (await client.get("/api/inbox")).json() == {"items": [], "next": None}
        assert (await client.delete("/api/session")).status_code == 403  # no CSRF token
        assert (await client.delete("/api/session", headers={"X-CSRF-Token": csrf})).status_code == 204
        assert (await client.get("/api/session")).status_code == 401
        csrf = await login(client, "chief")
        made = await client.post(
            "/api/users",
            json={"username": "clerk", "password": PASSWORD, "role": "officer"},
            headers={"X-CSRF-Token": csrf},
        )
        assert made.status_code == 201 and made.json()["active"] is True
        users = (await client.get("/api/users")).json()["items"]
        assert [u["username"] for u in users] == ["chief", "clerk", "duty"]
        last_admin = await client.delete("/api/users/chief", headers={"X-CSRF-Token": csrf})
        assert last_admin.status_code == 403
        actions = [a["action"] for a in (await client.get("/api/audit")).json()["items"]]
        assert actions[:2] == ["add_user", "login"]

    run(app, test)


def test_the_exchange_being_away_is_a_503_not_a_crash(app: FastAPI) -> None:
    async def test(client: Client) -> None:
        csrf = await login(client, "duty")
        spec = {"topic": "dprk.missile.launch", "level": "극비", "recipients": ["JPN"], "caveats": {}}
        r = await client.post("/api/preview", json=spec, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 503 and r.json()["type"] == "urn:gsomia:problem:exchange-unreachable"
        assert "Retry-After" in r.headers
        status = (await client.get("/api/status")).json()
        assert status["party"] == "KOR" and status["alarm"] is None and status["deliveries"]["verified"] == 0

    run(app, test)


def _exchange(answers: dict[str, bytes]) -> Callable[[], ExchangeClient]:
    """Clients of an exchange that answers each path with the given bytes (200, JSON)."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = answers.get(request.url.path, b"{}")
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    return lambda: ExchangeClient("http://exchange.test", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("answers", "meta_status", "preview_status"),
    [
        ({"/api/v1/scenario": b"[1]", "/api/v1/route": b'"allow"'}, 502, 502),
        ({"/api/v1/scenario": b'{"parties": [7, {"ladder": 3}, {"id": "KOR", "ladder": [5]}], "topics": 9}'}, 200, 200),
        ({"/api/v1/route": b'{"marking": "x", "reasons": [1, {"rule": "r"}]}'}, 200, 200),
        ({"/api/v1/exercise": b'{"exercise": true, "clock": "tomorrow"}'}, 200, 502),
    ],
    ids=["not-objects", "scenario-shapes", "route-shapes", "clock"],
)
def test_what_a_hostile_exchange_answers_is_never_a_500(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch, answers: dict[str, bytes], meta_status: int, preview_status: int
) -> None:
    monkeypatch.setattr(app.state.node, "connect", _exchange(answers))

    async def test(client: Client) -> None:
        csrf = await login(client, "duty")
        assert (await client.get("/api/meta")).status_code == meta_status
        spec = {"topic": "dprk.missile.launch", "level": "극비", "recipients": ["JPN"], "caveats": {}}
        r = await client.post("/api/preview", json=spec, headers={"X-CSRF-Token": csrf})
        assert r.status_code == preview_status, r.text

    run(app, test)


def test_a_body_with_an_integer_the_parser_refuses_is_a_422_like_any_malformed_body(app: FastAPI) -> None:
    async def test(client: Client) -> None:
        csrf = await login(client, "chief")
        headers = {"X-CSRF-Token": csrf, "content-type": "application/json"}
        details = []
        for body in [b'{"grant": ' + b"9" * 5000 + b"}", b"{"]:
            r = await client.post("/api/consents/x", content=body, headers=headers)
            assert r.status_code == 422, r.text
            assert r.json()["type"] == "urn:gsomia:problem:invalid-request"
            details.append(r.json()["detail"])
        assert "4300 digits" in details[0] and "sys." not in details[0], details

    run(app, test)


@pytest.mark.parametrize("cursor", ["²", "٣", "12a", "-1", "9" * 19])
def test_an_inbox_cursor_that_is_not_ascii_digits_is_a_422_never_a_5xx(app: FastAPI, cursor: str) -> None:
    async def test(client: Client) -> None:
        await login(client, "duty")
        r = await client.get("/api/inbox", params={"cursor": cursor})
        assert r.status_code == 422, r.text
        assert r.json()["type"] == "urn:gsomia:problem:invalid-input"

    run(app, test)


@pytest.mark.parametrize("params", [{"from": "0001-01-01T00:00:00+01:00"}, {"to": "9999-12-31T23:59:59-01:00"}])
def test_an_inbox_filter_instant_outside_the_calendar_in_utc_is_a_422_never_a_5xx(
    app: FastAPI, params: dict[str, str]
) -> None:
    async def test(client: Client) -> None:
        await login(client, "duty")
        r = await client.get("/api/inbox", params=params)
        assert r.status_code == 422, r.text
        assert r.json()["type"] == "urn:gsomia:problem:invalid-input"

    run(app, test)


@pytest.mark.parametrize("before", [str(2**63), "9" * 30, "0", "x"])
def test_an_audit_page_before_an_id_no_store_holds_is_a_422_never_a_5xx(app: FastAPI, before: str) -> None:
    async def test(client: Client) -> None:
        await login(client, "chief")
        r = await client.get("/api/audit", params={"before": before})
        assert r.status_code == 422, r.text
        assert r.json()["type"] == "urn:gsomia:problem:invalid-request"
        largest = await client.get("/api/audit", params={"before": str(2**63 - 1)})
        assert largest.status_code == 200 and largest.json()["items"][0]["action"] == "login"

    run(app, test)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"track": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # deeper than the stack
        b'{"lat": NaN, "lon": Infinity}',  # no JSON spelling in an answer
        b'{"n": ' + b"9" * 5000 + b"}",  # beyond the interpreter's digit limit
    ],
)
def test_a_received_json_payload_no_answer_can_carry_is_shown_as_text(app: FastAPI, payload: bytes) -> None:
    service: NodeService = app.state.node
    store_verified(service.store, range(1, 2), payload=payload, content_type="application/json")

    async def test(client: Client) -> None:
        await login(client, "duty")
        r = await client.get("/api/deliveries/d-1")
        assert r.status_code == 200, r.text[:300]
        shown = r.json()["payload"]
        assert shown["json"] is None and shown["text"] == payload.decode() and shown["size"] == len(payload)

    run(app, test)


def test_a_rotation_the_exchange_does_not_answer_is_audited_and_keeps_one_pending_set(tmp_path: Path) -> None:
    service = kor_node(tmp_path)
    try:
        service.keyring.add(PartyKeys.generate("KOR"), state="current", registered_at="2019-11-22T00:00:00+00:00")
        for _ in range(2):
            with pytest.raises(ExchangeUnreachable):
                service.rotate_keys("chief")
        states = [k["state"] for k in service.keyring.history()]
        assert sorted(states) == ["current", "pending"], states  # the second attempt reuses the first's set
        pending = service.keyring.pending()
        assert pending is not None
        actions = [(r["action"], r["target"]) for r in service.audit.page(limit=10)["items"]]
        assert actions == [("rotate_keys_pending", pending.fingerprint())] * 2
    finally:
        service.close()


def _stream_ends_when(app: FastAPI, monkeypatch: pytest.MonkeyPatch, end: Callable[[NodeService], object]) -> None:
    """Open the officer's event stream; once it has started, ``end`` its session behind the
    serving process's back (another process, or time): the stream must end by itself."""
    service: NodeService = app.state.node
    status = service.status
    monkeypatch.setattr(node_app, "STREAM_CHECK", 0.05, raising=False)

    def started() -> dict[str, object]:
        end(service)  # the stream's session was valid when it started, and is not now
        return status()

    monkeypatch.setattr(service, "status", started)

    async def test(client: Client) -> None:
        await login(client, "duty")
        with anyio.fail_after(30):  # the stream is read to its end: it must have one
            r = await client.get("/api/events")
        assert r.status_code == 200
        assert [line for line in r.text.splitlines() if line.startswith("event:")] == ["event: status"]
        assert (await client.get("/api/inbox")).status_code == 401

    run(app, test)


def test_an_event_stream_ends_when_another_process_revokes_its_user(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 'gsomia node users revoke' works on the store; this process's event bus is never told
    _stream_ends_when(app, monkeypatch, lambda service: UserService(service.store).revoke("duty"))


@pytest.mark.parametrize("column", ["created_at", "last_seen"])
def test_an_event_stream_ends_when_its_session_expires(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch, column: str
) -> None:
    def expire(service: NodeService) -> None:
        with service.store.write() as c:
            c.execute(update(sessions).values({column: "2000-01-01T00:00:00+00:00"}))

    _stream_ends_when(app, monkeypatch, expire)


def test_the_console_s_hashed_assets_are_immutable_and_its_page_is_revalidated(tmp_path: Path) -> None:
    # A new build must reach every browser at its next load (the page names the new hashed
    # files), and an unchanged one must cost nothing: console/build.mjs names them so.
    service = kor_node(tmp_path)
    web = tmp_path / "web"
    (web / "assets").mkdir(parents=True)
    (web / "index.html").write_text('<!doctype html><title>console</title><script src="assets/console-AB2CD3EF.js">')
    (web / "assets" / "console-AB2CD3EF.js").write_text("export {};")
    (web / "assets" / "notes.txt").write_text("not built by esbuild")

    async def test(client: Client) -> None:
        for path in ("/", "/index.html"):
            page = await client.get(path)
            assert page.status_code == 200 and page.headers["cache-control"] == "no-cache", path
        asset = await client.get("/assets/console-AB2CD3EF.js")
        assert asset.status_code == 200
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        other = await client.get("/assets/notes.txt")
        assert other.headers["cache-control"] == "no-cache"

    try:
        run(create_node_app(service, web_dir=web), test)
    finally:
        service.close()
