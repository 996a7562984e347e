"""An exchange that answers too much, too slowly or not quite JSON costs a node bounded memory and
time: answers are read up to a limit (expanded, when compressed), every request is answered in
full by a deadline, an event stream that trickles bytes without completing a line is taken as
broken, one event is bounded as one line is, and a number beyond a double is not JSON."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gsomia import jsontext
from gsomia.client.http import PROBLEM_PREFIX, ExchangeClient
from gsomia.client.stream import MAX_LINE, LineTooLong, read_events
from gsomia.errors import ExchangeError, ExchangeUnreachable

URL = "http://exchange.test"


class Served(httpx.SyncByteStream):
    """An answer's body served a chunk at a time, counting the chunks the client pulled."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk


def serving(body: Served, *, status: int = 200, headers: dict[str, str] | None = None, **limits: Any) -> ExchangeClient:
    answer_headers = {"content-type": "application/json", **(headers or {})}

    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, stream=body, headers=answer_headers)

    return ExchangeClient(URL, token="gsm_t", transport=httpx.MockTransport(handler), **limits)


def padded(size: int, **members: Any) -> bytes:
    """A JSON object of about ``size`` bytes."""
    return json.dumps({**members, "pad": "x" * size}).encode()


# --- how much is read --------------------------------------------------------------------------------


def test_an_answer_over_the_limit_is_refused_before_it_is_read_whole() -> None:
    body = Served(b"x" * 65536 for _ in range(1000))  # 64 MiB if read whole
    with serving(body, max_answer=200_000) as c, pytest.raises(ExchangeError, match="larger than 200,000 bytes"):
        c.whoami()
    assert body.pulled <= 4


def test_a_compressed_answer_is_held_to_the_limit_once_expanded() -> None:
    bomb = gzip.compress(b" " * (16 * 1024 * 1024))  # 16 KiB that expand to 16 MiB
    body = Served(bomb[i : i + 1024] for i in range(0, len(bomb), 1024))
    with (
        serving(body, headers={"content-encoding": "gzip"}, max_answer=1024 * 1024) as c,
        pytest.raises(ExchangeError, match="larger than"),
    ):
        c.scenario()
    assert body.pulled < len(bomb) // 1024


def test_a_compressed_answer_within_the_limit_is_read() -> None:
    answer = padded(50_000, id="p-1")
    body = Served(iter([gzip.compress(answer)]))
    with serving(body, headers={"content-encoding": "gzip"}, max_answer=100_000) as c:
        assert c.whoami()["id"] == "p-1"


@pytest.mark.parametrize("coding", ["gzip, gzip", "gzip, deflate", "br", "zstd", "compress"])
def test_a_content_coding_other_than_one_gzip_or_deflate_is_refused(coding: str) -> None:
    once = gzip.compress(b'{"id": "p-1"}')
    with (
        serving(Served(iter([gzip.compress(once)])), headers={"content-encoding": coding}) as c,
        pytest.raises(ExchangeError, match="content coding"),
    ):
        c.whoami()


def test_pages_of_deliveries_may_be_larger_than_other_answers() -> None:
    page = padded(50_000, items=[])
    limits: dict[str, Any] = {"max_answer": 10_000, "max_deliveries_answer": 100_000}
    with serving(Served(iter([page])), **limits) as c:
        assert c.inbox(deliveries=True)["items"] == []
    with serving(Served(iter([page])), **limits) as c:
        assert c.deliveries(["d-1", "d-2"])["items"] == []
    with serving(Served(iter([page])), **limits) as c, pytest.raises(ExchangeError, match="larger than 10,000"):
        c.inbox()


def test_an_error_answer_over_the_limit_is_read_as_no_problem_document() -> None:
    problem = padded(50_000, type=PROBLEM_PREFIX + "not-found", detail="no such delivery")
    body = Served(problem[i : i + 1000] for i in range(0, len(problem), 1000))
    with (
        serving(body, status=404, headers={"content-type": "application/problem+json"}, max_answer=10_000) as c,
        pytest.raises(ExchangeError, match="HTTP 404 without a problem document"),
    ):
        c.delivery("d-1")
    assert body.pulled <= 12


def test_a_checkpoint_is_held_to_the_limit() -> None:
    body = Served(b"x" * 65536 for _ in range(100))
    with serving(body, max_answer=100_000) as c, pytest.raises(ExchangeError, match="larger than 100,000 bytes"):
        c.ledger_checkpoint()
    assert body.pulled <= 3


def test_a_number_beyond_a_double_is_not_json() -> None:
    for text in ("1e400", '{"at": -1E999}', "[0.5, 2e308]"):
        with pytest.raises(ValueError, match="beyond"):
            jsontext.parse(text)
    assert jsontext.parse("[1e308, 1e-400, -0.0]") == [1e308, 0.0, -0.0]
    with serving(Served(iter([b'{"at": 1e400}']))) as c, pytest.raises(ExchangeError, match="did not answer JSON"):
        c.exercise()


def test_an_answer_naming_a_member_twice_is_not_taken() -> None:
    # RFC 7493 §2.3: parsers disagree on which "level" wins, so the report a recipient verifies
    # and the one another reader of the same answer shows could differ.
    report = '{"id": "R-1", "level": "\u79d8", "level": "\u6975\u79d8"}'
    answer = ('{"id": "d-1", "origin": {"report": ' + report + "}}").encode()
    with serving(Served(iter([answer]))) as c, pytest.raises(ExchangeError, match="given twice"):
        c.delivery("d-1")


# --- one event ---------------------------------------------------------------------------------------


def test_an_event_of_many_data_lines_is_held_to_the_limit_of_one_line() -> None:
    line = "data: " + "x" * (1024 * 1024)  # the same string: a test that holds little
    with pytest.raises(LineTooLong, match="event"):
        list(read_events(line for _ in range(1 + MAX_LINE // (1024 * 1024))))
    with pytest.raises(LineTooLong):
        list(read_events(["data: 12345"] * 20 + [""], limit=100))
    assert [e.data for e in read_events(["data: [1,", "data: 2]", ""], limit=100)] == [[1, 2]]


def test_an_event_stream_of_many_data_lines_is_closed() -> None:
    line = b"data: " + b"x" * (1024 * 1024) + b"\n"
    body = Served(line for _ in range(2 + MAX_LINE // (1024 * 1024)))
    headers = {"content-type": "text/event-stream"}
    with serving(body, headers=headers) as c, pytest.raises(ExchangeError, match="event"):
        list(c.events())


# --- how long it takes, over a socket ----------------------------------------------------------------


def _server(script: Callable[[socket.socket], None]) -> tuple[str, threading.Event, threading.Thread]:
    """A one-connection HTTP server that reads a request and then runs ``script``; the event
    set tells the script to stop."""
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, listener, contextlib.suppress(OSError):  # the client went away, as it should
            conn.settimeout(10)
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            script(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return url, stop, thread


def _trickle(conn: socket.socket, data: bytes, stop: threading.Event, every: float = 0.1) -> None:
    for i in range(len(data)):
        if stop.wait(every):
            return
        conn.sendall(data[i : i + 1])


def _timed(call: Callable[[], object]) -> float:
    started = time.monotonic()
    with pytest.raises(ExchangeUnreachable, match=r"within|broke"):
        call()
    return time.monotonic() - started


def test_headers_sent_a_byte_at_a_time_end_at_the_deadline() -> None:
    body = b'{"id": "p-1"}'
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-slow: " + b"y" * 60 + b"\r\n"
    head += f"content-length: {len(body)}\r\n\r\n".encode()  # some 9 s, a byte each 0.1 s

    def script(conn: socket.socket) -> None:
        _trickle(conn, head, stop)
        conn.sendall(body)

    url, stop, thread = _server(script)
    with ExchangeClient(url, token="gsm_t", timeout=0.5) as c:
        took = _timed(c.whoami)  # the deadline: four times the timeout
    stop.set()
    thread.join(5)
    assert 1.5 < took < 4


def test_a_body_sent_a_byte_at_a_time_ends_at_the_deadline() -> None:
    body = padded(60, id="p-1")  # some 8 s, a byte each 0.1 s

    def script(conn: socket.socket) -> None:
        conn.sendall(
            f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        )
        _trickle(conn, body, stop)

    url, stop, thread = _server(script)
    with ExchangeClient(url, token="gsm_t", timeout=0.5, deadline=1.0) as c:
        took = _timed(c.whoami)
    stop.set()
    thread.join(5)
    assert 0.8 < took < 3


STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_an_event_stream_trickling_a_line_it_never_ends_is_taken_as_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gsomia.client.http.STREAM_SILENCE", 0.5)

    def script(conn: socket.socket) -> None:
        conn.sendall(STREAM_HEAD + _chunk(b": gsomia inbox stream\r\n\r\ndata: "))
        for _ in range(80):  # some 8 s of one byte each 0.1 s, never a line end
            if stop.wait(0.1):
                return
            conn.sendall(_chunk(b"x"))
        conn.sendall(_chunk(b"\r\n\r\n") + b"0\r\n\r\n")

    url, stop, thread = _server(script)
    with ExchangeClient(url, token="gsm_t") as c:
        took = _timed(lambda: list(c.events()))
    stop.set()
    thread.join(5)
    assert took < 3


def test_an_event_stream_whose_headers_trickle_ends_at_the_deadline() -> None:
    head = STREAM_HEAD[:-2] + b"x-slow: " + b"y" * 70 + b"\r\n\r\n"  # some 9 s, a byte each 0.1 s

    def script(conn: socket.socket) -> None:
        _trickle(conn, head, stop)
        conn.sendall(b"0\r\n\r\n")

    url, stop, thread = _server(script)
    with ExchangeClient(url, token="gsm_t", timeout=0.5) as c:
        took = _timed(lambda: list(c.events()))
    stop.set()
    thread.join(5)
    assert took < 4


def test_an_event_stream_kept_alive_outlives_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gsomia.client.http.STREAM_SILENCE", 0.5)

    def script(conn: socket.socket) -> None:
        conn.sendall(STREAM_HEAD)
        for _ in range(8):  # 1.6 s of keep-alives: past the deadline, never silent for long
            conn.sendall(_chunk(b": ping\r\n\r\n"))
            time.sleep(0.2)
        conn.sendall(_chunk(b'id: 3\r\nevent: delivery\r\ndata: {"n": 3}\r\n\r\n') + b"0\r\n\r\n")

    url, _stop, thread = _server(script)
    with ExchangeClient(url, token="gsm_t", timeout=0.25, deadline=0.5) as c:
        events = list(c.events())
    thread.join(5)
    assert [(e.id, e.data) for e in events] == [("3", {"n": 3})]


# --- a proxy named in the environment -------------------------------------------------------------


def test_a_proxy_named_in_the_environment_is_used_and_no_proxy_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []
    body = b'{"id": "p-1", "name": "via the proxy", "role": "party", "party": "KOR"}'

    def answer(conn: socket.socket) -> None:
        seen.append(b"asked")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n")
        conn.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    proxy, _stop, thread = _server(answer)
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    # the exchange's name resolves nowhere: only a request through the proxy can be answered
    with ExchangeClient("http://exchange.invalid", token="t", timeout=5) as client:
        assert client.whoami()["name"] == "via the proxy"
    thread.join(5)
    assert seen == [b"asked"]
    monkeypatch.setenv("NO_PROXY", "exchange.invalid")
    with ExchangeClient("http://exchange.invalid", token="t", timeout=5) as client, pytest.raises(ExchangeUnreachable):
        client.whoami()
