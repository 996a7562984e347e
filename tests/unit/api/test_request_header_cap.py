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
