"""What stands between a connection and the routes: the request guards, HEAD, the exercise stamp,
and the connection timeouts.

Plain ASGI middleware (not ``BaseHTTPMiddleware``), so streamed responses (server-sent events)
pass through untouched:

- :class:`HeadAsGet` answers HEAD on every GET resource (RFC 9110 §9.3.2);
- :class:`RequestText` refuses a path or query string holding U+0000 or text that is not UTF-8;
- :class:`BodyLimit` reads a request body within a size and a time limit and refuses a JSON body
  that is not I-JSON (RFC 7493), before any route parses it;
- :class:`ExerciseStamp` stamps every response in exercise mode.

:func:`guarded_http_protocol` is the server's side: the HTTP protocol with a deadline for a
request's headers and body, which uvicorn does not have (slow clients, "slowloris").
"""

from __future__ import annotations

import asyncio
import email.message
import json
import math
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gsomia.api.problems import problem
from gsomia.services.exchange.clock import ExerciseInfo

EXERCISE_HEADER = "Gsomia-Exercise"

MAX_JSON_DEPTH = 64
"""The deepest nesting of arrays and objects accepted in a request body (the API's own bodies
are at most four deep)."""

_SAFE_INTEGER = 2**53 - 1  # I-JSON §2.2: integers beyond ±(2**53 − 1) are not interoperable
_LONE_SURROGATE_OR_NUL = re.compile(r"[\x00\ud800-\udfff]")
_CONTENT_LENGTH = re.compile(rb"[0-9]{1,18}")


class HeadAsGet:
    """Answer HEAD on every GET resource with the GET answer's status and headers and no body
    (RFC 9110 §9.3.2).

    The request reaches the routes as a GET; the first body message of the answer ends it with
    an empty body, and later ones are dropped. An endless answer (an event stream) then sees
    the request as finished (the server reports a disconnect), so it stops.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        finished = False

        async def headless(message: Message) -> None:
            nonlocal finished
            if finished:
                return
            if message["type"] == "http.response.body":
                finished = True
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headless)


class RequestText:
    """Refuse with 422 a request whose path or query string holds U+0000, or percent-encoded bytes
    that are not UTF-8.

    PostgreSQL text cannot store U+0000 (the database would fail on it), and bytes that are not
    UTF-8 would reach the routes as replacement characters, silently changing the value asked for.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = _text_refusal(scope)
            if refusal is not None:
                loc, message = refusal
                errors = [{"loc": loc, "message": message, "type": "invalid_text"}]
                await problem(422, "invalid-request", message, errors=errors)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _text_refusal(scope: Scope) -> tuple[list[str], str] | None:
    """Where and why the path or query string of ``scope`` is refused, or None."""
    if "\x00" in scope.get("path", ""):
        return ["path"], "the path contains U+0000 (NUL), which is not allowed"
    query = scope.get("query_string", b"")
    if not query:
        return None
    try:
        # The same split and decoding as Starlette's QueryParams, but strict about UTF-8.
        pairs = urllib.parse.parse_qsl(query.decode("latin-1"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        return ["query"], "the query string is not UTF-8 once percent-decoded"
    for name, value in pairs:
        if "\x00" in name or "\x00" in value:
            shown = name.replace("\x00", "\\u0000")
            return ["query", shown], f"query parameter {shown!r} contains U+0000 (NUL), which is not allowed"
    return None


class BodyLimit:
    """Read a request body within limits, then hand it on; refuse it otherwise, before any route
    parses it, and store nothing from it:

    - over ``max_bytes``: 413, judged from ``Content-Length`` before reading and by counting while
      reading (chunked uploads);
    - not complete within ``timeout`` seconds: 408, and the connection is closed (its unread
      rest cannot be told from the next request);
    - a JSON body (``application/json``, ``application/*+json`` or no media type) that is not
      I-JSON (RFC 7493): not UTF-8, not JSON, a member name twice in one object (§2.3: parsers
      disagree on which one wins, so a signed report could be read one way by the exchange and
      another by a recipient), a lone surrogate (§2.1) or U+0000 in a string or member name
      (PostgreSQL text cannot store it), a number beyond IEEE 754 double range or an integer
      beyond ±(2**53 − 1) (§2.2), or nesting deeper than :data:`MAX_JSON_DEPTH`: 422
      ``invalid-request``, naming the member.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, timeout: float, larger: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.larger = dict(larger or {})
        """Paths that take larger bodies (a batch of signed reports), with their limits."""

    async def _refuse_size(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413,
            "payload-too-large",
            f"the request body is larger than the limit of {self._limit(scope)} bytes",
            headers={"Connection": "close"},  # the unread rest of the body would be read as the next request
        )
        await response(scope, receive, send)

    def _limit(self, scope: Scope) -> int:
        return self.larger.get(scope.get("path", ""), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                declared = int(value) if _CONTENT_LENGTH.fullmatch(value) else -1
                if declared > self._limit(scope):
                    await self._refuse_size(scope, receive, send)
                    return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout):  # only the reading is timed, never the answer
                while size <= self._limit(scope):
                    message = await receive()
                    if message["type"] != "http.request":
                        break  # the client went away; the app will see the disconnect
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            response = problem(
                408,
                "request-timeout",
                f"the request body was not received within {self.timeout:g} seconds",
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        if size > self._limit(scope):
            await self._refuse_size(scope, receive, send)
            return
        body = b"".join(chunks)
        if body and _is_json(scope):
            refusal = _json_refusal(body)
            if refusal is not None:
                loc, reason, kind = refusal
                errors = [{"loc": ["body", *loc], "message": reason, "type": kind}]
                await problem(422, "invalid-request", reason, errors=errors)(scope, receive, send)
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _is_json(scope: Scope) -> bool:
    """True if the routes would read the body as JSON: no or an empty ``Content-Type``, or a
    JSON media type as FastAPI reads the header (the first one, decoded as Latin-1, parsed by
    :mod:`email`, which strips Unicode whitespace such as U+00A0 and U+0085 too), so that no
    spelling of the header reaches the routes as JSON without being checked here."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return _json_media_type(value.decode("latin-1"))
    return True


def _json_media_type(value: str) -> bool:
    """Whether FastAPI parses a body sent with ``Content-Type: value`` as JSON (an empty value:
    it may, so the body is checked)."""
    if not value.strip():
        return True
    message = email.message.Message()
    message["content-type"] = value
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


class _Refused(Exception):
    """A request body that is not I-JSON: where (member names and indexes), why, and a type."""

    def __init__(self, loc: list[str], message: str, kind: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message
        self.kind = kind


class _Members(list[tuple[str, Any]]):
    """An object's members as parsed, in order, duplicates kept (so the walk can name them)."""


def _json_refusal(body: bytes) -> tuple[list[str], str, str] | None:
    """Why ``body`` is not an I-JSON text (RFC 7493), with where, or None if it is one."""
    try:
        text = body.decode("utf-8")  # strict: a surrogate encoded in the bytes is not UTF-8 either
    except UnicodeDecodeError as e:
        return (
            [],
            f"the request body is not UTF-8 (byte {e.start}); I-JSON texts are UTF-8 (RFC 7493 §2.1)",
            "json_invalid",
        )
    try:
        doc = json.loads(
            text, object_pairs_hook=_Members, parse_constant=_no_constant, parse_float=_double, parse_int=_integer
        )
        # A lone surrogate or U+0000 can only be written as a \u escape: the text is strict
        # UTF-8, and JSON allows no raw control character in a string. Without one, no string
        # needs its characters looked at.
        _walk(doc, texts=b"\\u" in body)
    except _Refused as e:
        return e.loc, e.message, e.kind
    except json.JSONDecodeError as e:
        return [], f"the request body is not JSON: {e.msg} at character {e.pos}", "json_invalid"
    except RecursionError:
        return [], _TOO_DEEP, "json_too_deep"
    return None


_TOO_DEEP = f"the request body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"


def _no_constant(name: str) -> Any:
    raise _Refused([], f"{name} is not a JSON number (RFC 8259 §6)", "json_number")


def _double(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused([], f"the number {text[:40]} is beyond IEEE 754 double range (RFC 7493 §2.2)", "json_number")
    return value


def _integer(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > 16 or int(digits) > _SAFE_INTEGER:  # the length first: int() of 5,000 digits raises
        raise _Refused([], f"the integer {text[:40]} is beyond ±(2**53 − 1) (RFC 7493 §2.2)", "json_number")
    return int(text)


def _walk(doc: Any, *, texts: bool = True) -> None:
    """Walk ``doc`` without recursion: no member name twice in one object, no lone surrogate or
    U+0000 in any string or member name (when ``texts``), no nesting deeper than
    :data:`MAX_JSON_DEPTH`.

    Raises:
        _Refused: at the first such member or string, with where it is.
    """
    stack: list[tuple[Any, list[str]]] = [(doc, [])]
    while stack:
        value, loc = stack.pop()
        if isinstance(value, str):
            if texts:
                _check_text(value, loc)
            continue
        if not isinstance(value, list):
            continue
        if len(loc) >= MAX_JSON_DEPTH:
            raise _Refused(loc[:MAX_JSON_DEPTH], _TOO_DEEP, "json_too_deep")
        if isinstance(value, _Members):
            seen: set[str] = set()
            for name, item in value:
                if texts:
                    _check_text(name, [*loc, name])
                if name in seen:
                    where = ".".join([*loc, name])
                    raise _Refused(
                        [*loc, name],
                        f"{where}: member {name!r} appears twice in one object (RFC 7493 §2.3)",
                        "duplicate_member",
                    )
                seen.add(name)
                stack.append((item, [*loc, name]))
        else:
            stack.extend((item, [*loc, str(i)]) for i, item in enumerate(value))


def _check_text(text: str, loc: list[str]) -> None:
    found = _LONE_SURROGATE_OR_NUL.search(text)
    if found is None:
        return
    where = ".".join(loc) or "the body"
    if found.group() == "\x00":
        raise _Refused(loc, f"{where}: U+0000 (NUL) is not allowed in a string", "invalid_text")
    raise _Refused(loc, f"{where}: a lone surrogate is not allowed in a string (RFC 7493 §2.1)", "invalid_text")


class ExerciseStamp:
    """Stamp every response with ``Gsomia-Exercise: clock=…; whatif=…`` in exercise mode."""

    def __init__(self, app: ASGIApp, *, info: Callable[[], ExerciseInfo | None]) -> None:
        self.app = app
        self.info = info

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                info = self.info()
                if info is not None:
                    MutableHeaders(scope=message)[EXERCISE_HEADER] = info.header()
            await send(message)

        await self.app(scope, receive, stamped)


BODY_GRACE_SECONDS = 2.0
"""How much longer than the body timeout the connection waits before closing on an unfinished
body: time for :class:`BodyLimit` to answer 408 itself first."""


MAX_HEADER_BYTES = 64 * 1024
"""The most a request's line and headers may take together (nginx's default buffers hold 32 KiB)."""
_SLICE = 8 * 1024
_TOO_LARGE_TEXT = f"request headers are larger than {MAX_HEADER_BYTES // 1024} KiB\n".encode()
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: " + str(len(_TOO_LARGE_TEXT)).encode() + b"\r\n\r\n" + _TOO_LARGE_TEXT
)


class _GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, with deadlines for receiving a request.

    uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits for ever for
    the rest of a request that has begun, or for the first byte of a new connection: a client
    sending its headers a byte at a time holds a connection (and its memory) for as long as it
    likes. Here, from the moment a connection opens or a request's first byte arrives, its
    headers must be complete within ``header_timeout`` seconds, else the connection is closed;
    once they are, its body must be complete within ``body_timeout`` seconds (plus
    :data:`BODY_GRACE_SECONDS`; :class:`BodyLimit` answers 408 at ``body_timeout`` for a body a
    route reads), else the connection is closed. Responses are never timed: an event stream
    stays open as long as its client listens.

    A request's line and headers together are at most :data:`MAX_HEADER_BYTES`, and so are the
    trailers of a chunked body: httptools takes any size (a 40 MB header was read whole and
    handed on; trailers are added to the request's headers), so the bytes received while they
    are incomplete are counted, and past the limit the answer is 431 and the connection closed.
    """

    header_timeout: float = 10.0
    body_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # bytes of the fields under way: a request's line and headers, or its trailers
        self._marks = 0  # ends of a request's headers, of a chunk, of a request: each starts a new count
        self._body_bytes = 0  # of the slice being parsed

    def data_received(self, data: bytes) -> None:
        # Parsed in slices of at most _SLICE bytes: a slice in which the headers end (or a
        # request ends and the next one begins) is not counted, so the count falls short by
        # at most one slice, not by a whole read (up to 256 KiB).
        for start in range(0, len(data), _SLICE):
            if self.transport.is_closing():
                return
            if self.transport.get_protocol() is not self:  # upgraded: uvicorn drops the rest of a read
                return
            self._parse(data[start : start + _SLICE])

    def _parse(self, data: bytes) -> None:
        """Parse one slice, counting its bytes that are neither body nor after a mark: a
        request's line and headers, a chunk's size line, the trailers after the last chunk
        (each a header field httptools keeps whole in memory)."""
        marks, self._body_bytes = self._marks, 0
        super().data_received(data)
        if marks != self._marks or self.transport.is_closing():
            return
        self._head_bytes += len(data) - self._body_bytes
        if self._head_bytes > MAX_HEADER_BYTES:
            self.logger.info("closing a connection whose request headers are over %d bytes", MAX_HEADER_BYTES)
            if self.cycle is None or self.cycle.response_complete:  # no answer of an earlier request under way
                self.transport.write(_TOO_LARGE)
            self.transport.close()

    def _mark(self) -> None:
        self._marks += 1
        self._head_bytes = 0

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.logger.info("closing a connection whose request did not arrive in time")
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)  # the first request's headers

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a later request on a kept-alive connection
            self._arm(self.header_timeout)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._mark()
        self._arm(self.body_timeout + BODY_GRACE_SECONDS)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._mark()
        self._disarm()

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._body_bytes += len(body)

    def on_chunk_complete(self) -> None:  # httptools calls it when the protocol has it
        self._mark()


def guarded_http_protocol(*, header_timeout: float, body_timeout: float) -> type[asyncio.Protocol]:
    """The HTTP protocol class to give uvicorn (``http=``): httptools, with deadlines for a
    request's headers and body (see :class:`_GuardedHttpTools`)."""
    return type(
        "GuardedHttpToolsProtocol",
        (_GuardedHttpTools,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )


class EnvironmentGuardedHttpTools(_GuardedHttpTools):
    """The guarded protocol with its deadlines from the environment (``GSOMIA_HEADER_TIMEOUT_SECONDS``,
    ``GSOMIA_BODY_TIMEOUT_SECONDS``): a module-level class, so that the worker processes of
    ``gsomia serve --workers N`` can import it by name."""

    header_timeout = float(os.environ.get("GSOMIA_HEADER_TIMEOUT_SECONDS", "10"))
    body_timeout = float(os.environ.get("GSOMIA_BODY_TIMEOUT_SECONDS", "30"))
