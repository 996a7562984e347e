"""The exchange's HTTP client over a mock transport: every problem ``type`` the exchange answers
becomes the matching gsomia error (never by status code or message), anything else is an
ExchangeError, an unreachable exchange is ExchangeUnreachable, and each call asks for the
endpoint it names with the caller's token."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gsomia.api.problems import STATUS, for_error
from gsomia.client.http import PROBLEM_PREFIX, ExchangeClient, error_for_problem
from gsomia.client.stream import MAX_LINE
from gsomia.errors import (
    BadSignature,
    Busy,
    DecryptionFailed,
    ExchangeError,
    ExchangeUnreachable,
    GsomiaError,
    InvalidInput,
    NotAuthenticated,
    Problem,
    ReleaseDenied,
    TooManyRequests,
    UnknownEntity,
    ValidationFailed,
)

URL = "http://exchange.test"


def client(handler: Callable[[httpx.Request], httpx.Response], token: str | None = "gsm_t") -> ExchangeClient:  # noqa: S107 - a test token
    return ExchangeClient(URL, token=token, transport=httpx.MockTransport(handler))


def answering(status: int, body: Any, *, content_type: str = "application/problem+json") -> ExchangeClient:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client(lambda _r: httpx.Response(status, content=content, headers={"content-type": content_type}))


def example(cls: type[GsomiaError]) -> GsomiaError:
    """An instance of each error class, as a service would raise it."""
    if cls is ValidationFailed:
        return ValidationFailed([Problem(message="kind: not a kind", path="events.0.kind", line=3)])
    if cls is ReleaseDenied:
        return ReleaseDenied(["JPN-KOR-GSOMIA is terminated"])
    if cls in (BadSignature, DecryptionFailed):
        return cls()
    if cls is TooManyRequests or cls is Busy:
        return cls("something precise went wrong", retry_after=7)
    return cls("something precise went wrong")


# --- problem types ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "status_kind"), STATUS.items(), ids=[c.__name__ for c in STATUS])
def test_every_problem_the_exchange_answers_becomes_its_own_error(
    cls: type[GsomiaError], status_kind: tuple[int, str]
) -> None:
    response = for_error(example(cls))  # exactly what the API sends for this error
    status, kind = status_kind
    body = json.loads(bytes(response.body))
    assert (response.status_code, body["type"]) == (status, PROBLEM_PREFIX + kind)
    with answering(status, body) as c, pytest.raises(GsomiaError) as caught:
        c.inbox()
    assert type(caught.value) is cls
    if cls not in (BadSignature, DecryptionFailed, ValidationFailed, ReleaseDenied):
        assert str(caught.value) == f"something precise went wrong (HTTP {status})"
    if isinstance(caught.value, TooManyRequests | Busy):  # and when to try again
        assert caught.value.retry_after == 7 and response.headers["Retry-After"] == "7"


def test_the_problem_type_decides_not_the_status_code() -> None:
    body = {"type": PROBLEM_PREFIX + "not-found", "detail": "no delivery 'd-1'"}
    err = error_for_problem(400, body, what="GET /x")
    assert isinstance(err, UnknownEntity) and str(err) == "no delivery 'd-1' (HTTP 400)"


def test_crypto_failures_stay_opaque() -> None:
    for kind, cls in (("bad-signature", BadSignature), ("decryption-failed", DecryptionFailed)):
        err = error_for_problem(400, {"type": PROBLEM_PREFIX + kind, "detail": "key 3f9c… mismatched"}, what="x")
        assert type(err) is cls and "3f9c" not in str(err)


def test_a_validation_failure_keeps_every_problem() -> None:
    body = {
        "type": PROBLEM_PREFIX + "invalid-document",
        "detail": "2 problems",
        "problems": [
            {"message": "unknown party 'XYZ'", "path": "events.0.by", "line": 12},
            {"message": "no such kind", "path": None, "line": "7"},
            "not a problem",
        ],
    }
    err = error_for_problem(422, body, what="POST /api/v1/agreements/TISA/events")
    assert isinstance(err, ValidationFailed)
    assert err.problems == (
        Problem(message="unknown party 'XYZ'", path="events.0.by", line=12),
        Problem(message="no such kind", path="", line=None),
    )
    bare = error_for_problem(422, {"type": PROBLEM_PREFIX + "invalid-document", "detail": "bad"}, what="x")
    assert isinstance(bare, ValidationFailed) and bare.problems == (Problem(message="bad"),)


def test_a_release_denial_keeps_its_reasons() -> None:
    body = {
        "type": PROBLEM_PREFIX + "release-denied",
        "reasons": [{"rule": "level", "message": "機密 is not releasable under JPN-KOR-GSOMIA"}, "in_force"],
    }
    err = error_for_problem(403, body, what="x")
    assert isinstance(err, ReleaseDenied)
    assert err.reasons == ("機密 is not releasable under JPN-KOR-GSOMIA", "in_force")
    assert error_for_problem(403, {"type": PROBLEM_PREFIX + "release-denied"}, what="x").reasons == ()  # type: ignore[attr-defined]


def test_request_schema_errors_name_each_field() -> None:
    body = {
        "type": PROBLEM_PREFIX + "invalid-request",
        "detail": "the request does not match the API schema",
        "errors": [
            {"loc": ["body", "report", "level"], "message": "Field required"},
            {"loc": "body", "message": "Extra inputs are not permitted"},
        ],
    }
    err = error_for_problem(422, body, what="POST /api/v1/reports")
    assert isinstance(err, InvalidInput)
    assert str(err) == (
        "the request does not match the API schema: report.level: Field required; "
        "Extra inputs are not permitted (HTTP 422)"
    )


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            500,
            {"type": PROBLEM_PREFIX + "internal", "detail": "an internal error occurred"},
            "urn:gsomia:problem:internal",
        ),
        (405, {"type": PROBLEM_PREFIX + "method-not-allowed", "title": "Method not allowed"}, "HTTP 405"),
        (400, {"type": "about:blank", "title": "Bad request"}, "about:blank"),
        (418, {"detail": "no type at all"}, "no problem type"),
        (500, b"<html>Internal Server Error</html>", "without a problem document"),
        (400, [1, 2, 3], "without a problem document"),
    ],
)
def test_anything_else_is_an_exchange_error(status: int, body: Any, message: str) -> None:
    with answering(status, body) as c, pytest.raises(ExchangeError, match=message) as caught:
        c.whoami()
    assert type(caught.value) is ExchangeError


@pytest.mark.parametrize(
    ("status", "body"),
    [(502, b"<html>Bad Gateway</html>"), (503, [1, 2, 3]), (504, b"upstream timed out")],
)
def test_a_gateway_error_without_a_problem_document_is_the_exchange_unreachable(status: int, body: Any) -> None:
    # a proxy in front answered: the exchange may never have seen the request, so the caller
    # tries again (idempotent by id) rather than taking it as the exchange's refusal
    with answering(status, body) as c, pytest.raises(ExchangeUnreachable, match=f"HTTP {status} from a gateway"):
        c.whoami()


def test_a_successful_answer_that_is_not_json_is_an_exchange_error() -> None:
    with answering(200, b"<html>captive portal</html>", content_type="text/html") as c:
        with pytest.raises(ExchangeError, match="did not answer JSON"):
            c.whoami()
        assert c.ledger_checkpoint() == "<html>captive portal</html>"  # text endpoints take text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, 2]", "not an object"),
        (b'"text"', "not an object"),
        (b"null", "not an object"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
    ids=["array", "string", "null", "nested"],
)
def test_a_successful_answer_that_is_not_a_json_object_is_an_exchange_error(body: bytes, message: str) -> None:
    # a hostile exchange (or a man in the middle) must not make a caller index a list, or
    # crash a node's background thread with a RecursionError
    with answering(200, body, content_type="application/json") as c:
        for call in (c.exercise, c.inbox, lambda: c.ledger_consistency(1), lambda: c.ledger_entry(0)):
            with pytest.raises(ExchangeError, match=message):
                call()


@pytest.mark.parametrize(
    "body",
    [b'{"parties": "JPN", "witnesses": {}}', b'{"parties": [{"name": "Japan"}], "witnesses": [1]}', b"{}"],
)
def test_lists_of_parties_or_witnesses_of_another_shape_are_an_exchange_error(body: bytes) -> None:
    with answering(200, body, content_type="application/json") as c:
        with pytest.raises(ExchangeError, match="parties without their ids"):
            c.parties()
        with pytest.raises(ExchangeError, match="no list of witnesses"):
            c.witnesses()


def test_an_unreachable_exchange_is_exchange_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with (
        client(refuse) as c,
        pytest.raises(ExchangeUnreachable, match=r"cannot reach the exchange at http://exchange\.test"),
    ):
        c.inbox()


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(InvalidInput, match="http:// or https://"):
        ExchangeClient("ftp://exchange.test")
    assert ExchangeClient("https://exchange.test/").url == "https://exchange.test"


@pytest.mark.parametrize("token", ["gsm_secret\r", "gsm_secret\n", "gsm secret", "gsm_sécret"])
def test_a_token_that_cannot_be_a_bearer_token_is_refused_without_showing_it(token: str) -> None:
    # a carriage return copied from a file made on another system was sent, and httpx's error
    # ("Illegal header value b'Bearer gsm_secret\r'") put the token on the screen and in logs
    with pytest.raises(InvalidInput, match="the API token holds a space, a line break") as raised:
        ExchangeClient("http://127.0.0.1:9", token=token)
    assert "secret" not in str(raised.value)


def test_an_address_with_a_password_is_refused_without_showing_it() -> None:
    # the password replaced the bearer token (Basic authentication: 401 "needs a bearer token"),
    # and every error naming the exchange's address showed it
    with pytest.raises(InvalidInput, match="holds a user name or password") as raised:
        ExchangeClient("https://desk:hunter2@exchange.test", token="gsm_x")
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize("url", ["HTTPS://desk:hunter2@exchange.test", "ftp://desk:hunter2@exchange.test"])
def test_an_address_with_a_password_and_another_scheme_is_refused_without_showing_it(url: str) -> None:
    # the scheme was checked first, and its error quoted the whole address, password and all
    with pytest.raises(InvalidInput, match="give an http:// or https:// address") as raised:
        ExchangeClient(url, token="gsm_x")
    assert "hunter2" not in str(raised.value)


# --- one call, one endpoint -------------------------------------------------------------------------

CALLS: list[tuple[str, Callable[[ExchangeClient], Any], str, str, Any]] = [
    ("whoami", lambda c: c.whoami(), "GET", "/api/v1/whoami", None),
    (
        "register",
        lambda c: c.register_keys("JPN", {"party": "JPN"}),
        "PUT",
        "/api/v1/parties/JPN/keys",
        {"party": "JPN"},
    ),
    ("keys", lambda c: c.public_keys("KOR"), "GET", "/api/v1/parties/KOR/keys", None),
    (
        "submit",
        lambda c: c.submit({"report": {}, "signature": "s", "key": "k"}),
        "POST",
        "/api/v1/reports",
        {"report": {}, "signature": "s", "key": "k"},
    ),
    ("result", lambda c: c.report("r-1"), "GET", "/api/v1/reports/r-1", None),
    ("inbox", lambda c: c.inbox(), "GET", "/api/v1/inbox?limit=100", None),
    ("inbox page", lambda c: c.inbox(cursor="17", limit=5), "GET", "/api/v1/inbox?limit=5&cursor=17", None),
    ("delivery", lambda c: c.delivery("d-1"), "GET", "/api/v1/deliveries/d-1", None),
    ("deliveries", lambda c: c.deliveries(["d-1", "d-2"]), "GET", "/api/v1/deliveries?id=d-1&id=d-2", None),
    ("ack", lambda c: c.acknowledge("d-1"), "POST", "/api/v1/deliveries/d-1/ack", {"need_to_know": True}),
    ("consents", lambda c: c.consents(state="all"), "GET", "/api/v1/consents?state=all", None),
    (
        "grant",
        lambda c: c.answer_consent("c-1", grant=True),
        "POST",
        "/api/v1/consents/c-1",
        {"decision": "grant", "reason": ""},
    ),
    (
        "refuse",
        lambda c: c.answer_consent("c-1", grant=False, reason="no"),
        "POST",
        "/api/v1/consents/c-1",
        {"decision": "refuse", "reason": "no"},
    ),
    (
        "standing add",
        lambda c: c.add_standing_consent({"recipient": "KOR"}),
        "POST",
        "/api/v1/standing-consents",
        {"recipient": "KOR"},
    ),
    ("standing list", lambda c: c.standing_consents(), "GET", "/api/v1/standing-consents", None),
    ("standing revoke", lambda c: c.revoke_standing_consent("sc-1"), "DELETE", "/api/v1/standing-consents/sc-1", None),
    (
        "file incident",
        lambda c: c.file_incident("d-1", kind="loss", description="x"),
        "POST",
        "/api/v1/deliveries/d-1/incidents",
        {"kind": "loss", "description": "x"},
    ),
    ("incident", lambda c: c.incident("i-1"), "GET", "/api/v1/incidents/i-1", None),
    (
        "update incident",
        lambda c: c.update_incident("i-1", measures="m"),
        "POST",
        "/api/v1/incidents/i-1/updates",
        {"result": "", "measures": "m"},
    ),
    (
        "event",
        lambda c: c.record_event("TISA", {"kind": "termination"}),
        "POST",
        "/api/v1/agreements/TISA/events",
        {"kind": "termination"},
    ),
    ("stats", lambda c: c.exchange_stats(), "GET", "/api/v1/exchange/stats", None),
    ("exercise", lambda c: c.exercise(), "GET", "/api/v1/exercise", None),
    (
        "clock",
        lambda c: c.set_exercise_clock("2019-11-23T00:00+09:00"),
        "POST",
        "/api/v1/exercise/clock",
        {"at": "2019-11-23T00:00+09:00"},
    ),
    ("ledger key", lambda c: c.ledger_key(), "GET", "/api/v1/ledger/key", None),
    (
        "ledger entries",
        lambda c: c.ledger_entries(start=3, limit=2),
        "GET",
        "/api/v1/ledger/entries?start=3&limit=2",
        None,
    ),
    ("inclusion", lambda c: c.ledger_inclusion(4), "GET", "/api/v1/ledger/proof/inclusion?index=4", None),
    ("inclusion at", lambda c: c.ledger_inclusion(4, 9), "GET", "/api/v1/ledger/proof/inclusion?index=4&size=9", None),
    (
        "inclusions",
        lambda c: c.ledger_inclusions([4, 2], 9),
        "GET",
        "/api/v1/ledger/proof/inclusions?index=4&index=2&size=9",
        None,
    ),
    ("consistency", lambda c: c.ledger_consistency(2), "GET", "/api/v1/ledger/proof/consistency?old=2", None),
    (
        "consistency to",
        lambda c: c.ledger_consistency(2, 8),
        "GET",
        "/api/v1/ledger/proof/consistency?old=2&new=8",
        None,
    ),
]


@pytest.mark.parametrize(
    ("call", "method", "target", "body"), [pytest.param(c, m, t, b, id=n) for n, c, m, t, b in CALLS]
)
def test_each_call_asks_for_its_endpoint_with_the_token(
    call: Callable[[ExchangeClient], Any], method: str, target: str, body: Any
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"answered": target})

    with client(handler, token="gsm_secret") as c:
        assert call(c) == {"answered": target}
    (request,) = seen
    assert (request.method, request.url.raw_path.decode()) == (method, target)
    assert request.headers["authorization"] == "Bearer gsm_secret"
    assert (json.loads(request.content) if request.content else None) == body


def test_a_client_without_a_token_sends_none() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, json={"type": PROBLEM_PREFIX + "not-authenticated", "detail": "needs a token"})

    with client(handler, token=None) as c, pytest.raises(NotAuthenticated, match="needs a token"):
        c.whoami()
    assert "authorization" not in seen[0].headers


# --- the event stream -------------------------------------------------------------------------------


def test_events_stream_the_inbox_and_resume_after_the_last_event_id() -> None:
    seen: list[httpx.Request] = []
    text = 'event: delivery\nid: 7\ndata: {"report": "r-1"}\n\n: keep-alive\n\nevent: incident\nid: 8\ndata: {"id": "i-1"}\n\n'

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=text.encode(), headers={"content-type": "text/event-stream"})

    with client(handler) as c:
        events = list(c.events(last_event_id="6"))
    assert [(e.event, e.id, e.data) for e in events] == [
        ("delivery", "7", {"report": "r-1"}),
        ("incident", "8", {"id": "i-1"}),
    ]
    (request,) = seen
    assert (request.url.path, request.headers["last-event-id"], request.headers["accept"]) == (
        "/api/v1/inbox/stream",
        "6",
        "text/event-stream",
    )
    with client(handler) as c:
        list(c.events())
    assert "last-event-id" not in seen[1].headers


def test_a_refused_stream_raises_its_problem() -> None:
    refused = answering(403, {"type": PROBLEM_PREFIX + "forbidden", "detail": "operator may not read an inbox"})
    with refused as c, pytest.raises(GsomiaError, match="may not read an inbox") as caught:
        next(c.events())
    assert type(caught.value).__name__ == "NotPermitted"


def test_a_stream_that_breaks_is_exchange_unreachable() -> None:
    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b'event: delivery\nid: 1\ndata: {"n": 1}\n\n'
            raise httpx.ReadError("connection reset")

    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Broken(), headers={"content-type": "text/event-stream"})

    with client(handler) as c:
        events = c.events()
        assert next(events).data == {"n": 1}
        with pytest.raises(ExchangeUnreachable, match=r"event stream of http://exchange\.test broke"):
            next(events)


# --- ids in paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "segment"),
    [
        ("?", "%3F"),  # would end the path: DELETE /api/v1/standing-consents/? (the collection)
        ("..", "%2E%2E"),  # a dot-segment: the URL would name the parent resource
        (".", "%2E"),
        ("../../parties/KOR/keys", "..%2F..%2Fparties%2FKOR%2Fkeys"),
        ("i#0", "i%230"),  # would cut the path at the fragment
        ("\x10x", "%10x"),  # a control character: not a valid URL at all
        ("%2F", "%252F"),
        ("sc-1.a_b~c", "sc-1.a_b~c"),  # unreserved characters stay as they are
    ],
)
def test_an_id_stays_one_path_segment_whatever_it_holds(given: str, segment: str) -> None:
    asked: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.raw_path)
        return httpx.Response(200, json={"id": given})

    c = client(handler)
    c.revoke_standing_consent(given)
    c.update_incident(given, measures="m")
    c.public_keys(given)
    assert asked == [
        f"/api/v1/standing-consents/{segment}".encode(),
        f"/api/v1/incidents/{segment}/updates".encode(),
        f"/api/v1/parties/{segment}/keys".encode(),
    ]


# --- the event stream over a socket -------------------------------------------------------------


def _stream_server(body: Callable[[socket.socket], None]) -> tuple[str, threading.Thread]:
    """A one-connection HTTP server answering 200 ``text/event-stream`` and then ``body``."""
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            with contextlib.suppress(OSError):  # the client went away, as it should
                body(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return url, thread


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_an_event_stream_that_falls_silent_is_taken_as_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gsomia.client.http.STREAM_SILENCE", 0.5)
    done = threading.Event()

    def silent(conn: socket.socket) -> None:
        conn.sendall(_chunk(b": gsomia inbox stream\r\n\r\n"))
        done.wait(10)  # then nothing, not even a keep-alive

    url, thread = _stream_server(silent)
    with ExchangeClient(url, token="gsm_t") as c, pytest.raises(ExchangeUnreachable, match="broke"):
        list(c.events())
    done.set()
    thread.join(5)


def test_an_event_stream_line_that_never_ends_closes_the_stream() -> None:
    def endless(conn: socket.socket) -> None:
        conn.sendall(_chunk(b"data: "))
        for _ in range(1 + MAX_LINE // 65536):
            conn.sendall(_chunk(b"x" * 65536))

    url, thread = _stream_server(endless)
    with ExchangeClient(url, token="gsm_t") as c, pytest.raises(ExchangeError, match="longer than"):
        list(c.events())
    thread.join(5)
