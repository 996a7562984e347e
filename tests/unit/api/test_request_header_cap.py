"""The guarded HTTP protocol (the exchange's and the party node's server) refuses request
headers over 64 KiB with 431 and closes the connection; httptools alone takes any size."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from gsomia.api.middleware import MAX_HEADER_BYTES, guarded_http_protocol


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        size, more = size + len(message.get("body", b"")), message.get("more_body", False)
    body = f"{len(dict(scope['headers']))} {size}".encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]}
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def port() -> Iterator[int]:
    config = uvicorn.Config(
        echo,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        http=guarded_http_protocol(header_timeout=10.0, body_timeout=30.0),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:  # readiness poll, not a wait for a result
        thread.join(0.01)
    yield int(server.servers[0].sockets[0].getsockname()[1])
    server.should_exit = True
    thread.join(10)


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(OSError):  # closed while sending: what was answered is still to be read
            sock.sendall(data)
        chunks = []
        with contextlib.suppress(ConnectionResetError):  # closed with the rest of the request unread
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def request(header_bytes: int, *, body: bytes = b"", close: bool = True) -> bytes:
    head = f"POST / HTTP/1.1\r\nHost: x\r\nX-Pad: {'a' * header_bytes}\r\ncontent-length: {len(body)}\r\n"
    return (head + ("connection: close\r\n" if close else "") + "\r\n").encode() + body


def test_headers_over_the_limit_are_refused_with_431(port: int) -> None:
    answer = exchange(port, request(4 * 1024 * 1024))
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert b"larger than 64 KiB" in answer


def test_headers_under_the_limit_and_large_bodies_pass(port: int) -> None:
    answer = exchange(port, request(MAX_HEADER_BYTES // 2, body=b"b" * (2 * 1024 * 1024)))
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b" 2097152"), answer[:100]


def test_the_limit_is_per_request_on_a_kept_alive_connection(port: int) -> None:
    each = MAX_HEADER_BYTES * 2 // 3
    answer = exchange(port, request(each, close=False) + request(each, close=False) + request(each))
    assert answer.count(b"HTTP/1.1 200 ") == 3, answer[:300]


def chunked(chunks: list[bytes], trailers: bytes = b"") -> bytes:
    head = b"POST / HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)
    return head + body + b"0\r\n" + trailers + b"\r\n"


def test_trailers_over_the_limit_are_refused(port: int) -> None:
    """Trailers (fields after a chunked body) are headers too: they were read whole, a header
    each, into the request's headers."""
    many = b"".join(b"x-t%d: %s\r\n" % (i, b"t" * 1000) for i in range(200))
    assert not exchange(port, chunked([b"hello"], many)).startswith(b"HTTP/1.1 200 ")
    one = b"x-big: " + b"t" * (4 * 1024 * 1024) + b"\r\n"
    assert not exchange(port, chunked([b"hello"], one)).startswith(b"HTTP/1.1 200 ")


def test_headers_after_a_request_in_the_same_write_are_counted(port: int) -> None:
    """A request and the next one's oversized headers sent at once: the read that ends the
    first request is not the end of the count."""
    first = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = exchange(port, first + request(3 * MAX_HEADER_BYTES))
    assert answer.count(b"HTTP/1.1 200 ") <= 1, answer[:300]


def test_chunked_bodies_trailers_and_pipelines_within_the_limit_pass(port: int) -> None:
    tiny = [b"b"] * 30_000  # 30,000 one-byte chunks: 180 KB of chunk framing
    assert exchange(port, chunked(tiny, b"x-sum: 1\r\n")).endswith(b" 30000")
    pipelined = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 5000 + request(MAX_HEADER_BYTES - 200)
    answer = exchange(port, pipelined)
    assert answer.count(b"HTTP/1.1 200 ") == 5001, answer[-300:]


def test_headers_sent_a_byte_at_a_time_pass(port: int) -> None:
    data = request(3000, body=b"abc")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            sock.sendall(data[i : i + 1])
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b" 3"), answer
