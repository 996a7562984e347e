"""The exchange's HTTP API, as a client: one method per endpoint, errors as gsomia's own.

Every error answer of the exchange is an RFC 9457 ``application/problem+json`` document whose
``type`` names its cause (``urn:gsomia:problem:not-found``…, docs/protocol.md §Errors). The
client maps that ``type`` — never the status code or the message text — to the matching class
of :mod:`gsomia.errors`, so a caller handles a refused signature or a conflict the same way
whether it happened in this process or on the server. A server that cannot be reached at
all (refused connection, DNS, TLS, timeout) is :class:`~gsomia.errors.ExchangeUnreachable`.

A submission is retried: the exchange is idempotent by report id (the same signed report
submitted again returns the stored result, docs/protocol.md), so when the answer is lost — a
timeout, a dropped connection, a 503 while the database is away — or the exchange answers 503
``busy``, :meth:`ExchangeClient.submit` sends the identical bytes again, a few times, with
exponential backoff (no shorter than the answer's Retry-After). Nothing else is
retried: other requests are not all idempotent, and their caller decides.

An exchange is not trusted to answer in measure. An answer is read as it arrives and refused
(:class:`~gsomia.errors.ExchangeError`) once it passes a limit, counted on the body as expanded
when it came gzip- or deflate-compressed (:data:`MAX_ANSWER`; pages of deliveries
:data:`MAX_DELIVERIES_ANSWER`); any other content coding, or two stacked, is refused unread. And
every request must be answered in full, headers and body, by a deadline (four times the timeout
by default), enforced on the socket: each read waits only for the time left, so a server that
sends a byte every few seconds cannot hold a request open forever, though no single read ever
times out. An event stream has no deadline: it is open for as long as it carries whole lines
(:data:`STREAM_SILENCE`).
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpcore
import httpx

from gsomia import jsontext
from gsomia.client.stream import LineTooLong, ServerSentEvent, StreamStalled, lines_of, read_events
from gsomia.errors import (
    BadSignature,
    Busy,
    Conflict,
    DecryptionFailed,
    ExchangeError,
    ExchangeUnreachable,
    GsomiaError,
    InvalidInput,
    LedgerInvalid,
    NotAuthenticated,
    NotPermitted,
    PayloadTooLarge,
    Problem,
    ReleaseDenied,
    StorageError,
    TooManyRequests,
    UnknownEntity,
    ValidationFailed,
)

__all__ = [
    "DEFAULT_URL",
    "MAX_ANSWER",
    "MAX_DELIVERIES_ANSWER",
    "PROBLEM_PREFIX",
    "SUBMIT_ATTEMPTS",
    "ExchangeClient",
    "error_for_problem",
]

DEFAULT_URL = "http://127.0.0.1:8000"
SUBMIT_ATTEMPTS = 4
"""How many times :meth:`ExchangeClient.submit` sends a submission whose answer was lost."""
_LONGEST_WAIT = 30
"""The longest a submission waits for a ``busy`` exchange's Retry-After before it is sent again."""
PROBLEM_PREFIX = "urn:gsomia:problem:"
MAX_RETRY_AFTER = 86400
"""The longest wait an answer's ``retry_after`` is taken at (seconds); a longer or malformed one
is read as 1."""
STREAM_SILENCE = 45.0
"""Seconds an event stream may stay silent, or send bytes without ending a line, before it is
taken as broken (the exchange sends a comment every 15 s)."""

MAX_ANSWER = 64 * 1024 * 1024
"""The most bytes of one answer read, as expanded, where the endpoint sets no other limit. Every
JSON answer but a page of deliveries is far below it: a page of 1,000 ledger entries of a few
KiB each, the 1,000 results of a batch, a delivery document (:data:`MAX_DELIVERY`)."""
MAX_DELIVERY = 2 * 1024 * 1024
"""What one delivery document is counted as. Its payload ciphertext is the payload, whose base64
text is held to ``GSOMIA_MAX_BODY_BYTES`` characters (1 MiB by default, docs/protocol.md §3.1),
and 28 bytes more, in base64; the signed origin (an ML-DSA-87 signature is 6,172 characters in
base64), the wrapped key (2,284 for ``cnsa2``) and the marking add a few KiB: about 1 MiB in
all, counted twice over for an exchange that allows larger bodies."""
MAX_DELIVERIES_ANSWER = 100 * MAX_DELIVERY
"""The most bytes of an answer that carries deliveries (``GET /api/v1/inbox?deliveries=true``,
``GET /api/v1/deliveries?id=…``): up to 100 of them (docs/protocol.md §7.1), 200 MiB."""
MAX_CHECKPOINT = 1024 * 1024
"""The most bytes of a checkpoint: a signed note of a few lines, with at most 100 signature lines
of some hundred characters (docs/protocol.md §5.7, §5.9)."""
MAX_PROBLEM = 1024 * 1024
"""The most bytes of an error answer read; a longer one is taken as no problem document."""
DEADLINE_TIMES = 4
"""A request must be answered in full within this many times the client's timeout, by default."""
DELIVERIES_DEADLINE_TIMES = 4
"""An answer that carries deliveries, up to :data:`MAX_DELIVERIES_ANSWER` bytes, is given this
many times the deadline."""

_BY_TYPE: dict[str, type[GsomiaError]] = {
    "invalid-document": ValidationFailed,
    "invalid-input": InvalidInput,
    "invalid-request": InvalidInput,
    "not-found": UnknownEntity,
    "conflict": Conflict,
    "not-authenticated": NotAuthenticated,
    "forbidden": NotPermitted,
    "bad-signature": BadSignature,
    "decryption-failed": DecryptionFailed,
    "payload-too-large": PayloadTooLarge,
    "release-denied": ReleaseDenied,
    "ledger-invalid": LedgerInvalid,
    "storage-unavailable": StorageError,
    "busy": Busy,
    "too-many-requests": TooManyRequests,
}
"""Our error class for each problem ``type`` the exchange answers (after the prefix)."""


_GATEWAY = frozenset({502, 503, 504})
"""Statuses a gateway in front of the exchange answers with when it could not get the exchange's
own answer; the exchange itself answers them with a problem document."""


def error_for_problem(status: int, body: object, *, what: str) -> GsomiaError:
    """The gsomia error that an error answer stands for.

    Args:
        status: the HTTP status (only shown in the message).
        body: the decoded problem document (anything else is an :class:`ExchangeError`).
        what: what was asked, for the message (``GET /api/v1/inbox``).

    Returns:
        The error to raise.
    """
    if not isinstance(body, Mapping):
        if status in _GATEWAY:
            # A proxy or load balancer in front answered for the exchange (RFC 9110 §15.6.3-5):
            # the exchange was not reached, or not heard back from; whether it acted is unknown,
            # so the caller tries again later (every write is idempotent by its id), never takes
            # this as the exchange's refusal.
            return ExchangeUnreachable(
                f"{what}: HTTP {status} from a gateway in front of the exchange, without a problem document "
                "(the exchange was not reached, or did not answer it)"
            )
        return ExchangeError(f"{what}: the exchange answered HTTP {status} without a problem document")
    kind = str(body.get("type", ""))
    detail = " ".join(str(body.get("detail") or body.get("title") or f"HTTP {status}").split())
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        shown = [_request_error(e) for e in errors[:5] if isinstance(e, Mapping)]
        detail += ": " + "; ".join(shown)
    cls = _BY_TYPE.get(kind.removeprefix(PROBLEM_PREFIX)) if kind.startswith(PROBLEM_PREFIX) else None
    if cls is BadSignature:
        return BadSignature()
    if cls is DecryptionFailed:
        return DecryptionFailed()
    if cls is ValidationFailed:
        problems = body.get("problems")
        items = [
            Problem(message=str(p.get("message", "")), path=str(p.get("path") or ""), line=_int_or_none(p.get("line")))
            for p in (problems if isinstance(problems, list) else [])
            if isinstance(p, Mapping)
        ]
        return ValidationFailed(items or [Problem(message=detail)])
    if cls is ReleaseDenied:
        reasons = body.get("reasons")
        shown = reasons if isinstance(reasons, list) else []
        return ReleaseDenied([str(r.get("message", r)) if isinstance(r, Mapping) else str(r) for r in shown])
    if cls is Busy or cls is TooManyRequests:
        wait = body.get("retry_after")
        seconds = wait if type(wait) is int and 0 <= wait <= MAX_RETRY_AFTER else 1
        return (Busy if cls is Busy else TooManyRequests)(f"{detail} (HTTP {status})", retry_after=seconds)
    if cls is None:
        return ExchangeError(f"{detail} (HTTP {status}, {kind or 'no problem type'})")
    error: GsomiaError = cls(f"{detail} (HTTP {status})")
    return error


def _request_error(e: Mapping[str, Any]) -> str:
    loc = e.get("loc")
    where = ".".join(str(x) for x in loc[1:]) if isinstance(loc, list) else ""
    return f"{where}: {e.get('message', '')}" if where else str(e.get("message", ""))


def _int_or_none(value: object) -> int | None:
    return value if type(value) is int else None


_TLS: ssl.SSLContext | None = None
_TLS_LOCK = threading.Lock()


def _tls_context() -> ssl.SSLContext:
    """The TLS settings every client of this process shares: httpx's defaults (the system's or
    ``SSL_CERT_FILE``'s trust anchors, certificates verified), built once. Loading the trust
    anchors takes tens of milliseconds of CPU, and a party node opens a client every few seconds."""
    global _TLS  # noqa: PLW0603 - one immutable-once-built context per process
    with _TLS_LOCK:
        if _TLS is None:
            _TLS = httpx.create_ssl_context()
        return _TLS


# --- the deadline, on the socket --------------------------------------------------------------------

_DEADLINE: ContextVar[float | None] = ContextVar("gsomia_exchange_deadline", default=None)
"""The monotonic instant by which the request this thread is making must be answered in full;
None while it makes none (between requests, and while an event stream is read)."""


@contextlib.contextmanager
def _answered_within(seconds: float) -> Iterator[float]:
    """Every read and write of the sockets of this thread's requests, for the ``with`` block,
    waits at most until ``seconds`` from now; the instant is given."""
    deadline = time.monotonic() + seconds
    token = _DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)


def _time_left(timeout: float | None, late: type[httpcore.TimeoutException]) -> float | None:
    """The shorter of ``timeout`` and the time left before the deadline, if there is one.

    Raises:
        httpcore.TimeoutException: ``late``, the deadline has passed.
    """
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise late("the deadline of the request passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits no longer than the deadline allows: a
    server that sends a byte every few seconds satisfies each read's timeout, not the deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        wait = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, wait))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sockets, as :class:`_DeadlineStream`."""

    def __init__(self) -> None:
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        wait = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._sockets.connect_tcp(host, port, wait, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        wait = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._sockets.connect_unix_socket(path, wait, socket_options))

    def sleep(self, seconds: float) -> None:
        self._sockets.sleep(seconds)


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport, with httpx's default pool limits, over :class:`_DeadlineBackend`.

    httpx takes no network backend, so the pool it made is replaced (it has opened nothing
    yet); httpx is pinned, and the tests of the deadline fail should that stop working.
    """

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_DeadlineBackend(),
        )


def _through_proxy(url: str) -> bool:
    """Whether the environment sends requests to ``url`` through a proxy (as httpx reads it:
    ``<scheme>_proxy`` or ``all_proxy``, unless ``no_proxy`` names the host)."""
    proxies = urllib.request.getproxies()
    target = httpx.URL(url)
    if not (proxies.get(target.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(target.host)


class ExchangeClient:
    """A client of one exchange, as one principal (its bearer token).

    Use it as a context manager, or call :meth:`close`. ``transport`` lets tests drive an
    in-process application (``httpx.ASGITransport`` is async; use a WSGI-style or a mock
    transport) or a real socket alike; over another transport the deadline is checked as each
    piece of the body arrives, not on the socket.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        attempts: int = SUBMIT_ATTEMPTS,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        deadline: float | None = None,
        max_answer: int = MAX_ANSWER,
        max_deliveries_answer: int = MAX_DELIVERIES_ANSWER,
    ) -> None:
        """Prepare a client (no connection is made until the first call).

        Args:
            url: The exchange's address.
            token: The principal's bearer token.
            timeout: Seconds to wait to connect, and for each read or write.
            transport: Another httpx transport (tests).
            attempts: How many times a submission is sent when its answer is lost (at least 1).
            backoff: Seconds before the second attempt; doubled before each later one.
            sleep: Waits between attempts.
            deadline: Seconds within which a request must be answered in full (an event
                stream: its headers); default :data:`DEADLINE_TIMES` times ``timeout``.
            max_answer: The most bytes of an answer read, as expanded.
            max_deliveries_answer: The same, for an answer that carries deliveries.

        Raises:
            InvalidInput: ``url`` is not an http(s) URL, or ``attempts`` is below 1.
        """
        if attempts < 1:
            raise InvalidInput("a submission needs at least one attempt")
        self._attempts = attempts
        self._backoff = backoff
        self._sleep = sleep
        self._deadline = DEADLINE_TIMES * timeout if deadline is None else deadline
        self._max_answer = max_answer
        self._max_deliveries_answer = max_deliveries_answer
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            # an '@' may end a password (HTTPS://desk:pw@host, ftp://…): never shown
            shown = "(not shown here: it holds '@')" if "@" in url else repr(url)
            raise InvalidInput(f"exchange URL {shown}: give an http:// or https:// address")
        _check_credentials(self.url, token)
        # Only the codings whose expansion is bounded per read (deflate: some 1,000-fold).
        headers = {"Accept-Encoding": "gzip, deflate"} | ({"Authorization": f"Bearer {token}"} if token else {})
        tls = _tls_context()
        if transport is None and not _through_proxy(self.url):
            # A proxy named in the environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, minus
            # NO_PROXY) is used as httpx uses it; there the deadline is checked as the body
            # arrives, not on the socket.
            transport = _DeadlineTransport(tls)
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport, verify=tls)

    def __enter__(self) -> ExchangeClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    # --- plumbing -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        limit: int | None = None,
        deadline: float | None = None,
    ) -> httpx.Response:
        """Send a request (a JSON body, or ``content`` as it is); return the response, read
        whole and expanded, if it succeeded.

        Args:
            limit: The most bytes of the answer read (default: the client's ``max_answer``).
            deadline: Seconds within which it must be answered in full (default: the client's).

        Raises:
            ExchangeUnreachable: the exchange could not be reached, or did not answer in time.
            ExchangeError: the answer is longer than ``limit``, or in a content coding not read.
            GsomiaError: the subclass named by the answer's problem ``type``.
        """
        what = f"{method} {path}"
        if json is not None:
            content = jsontext.compact_bytes(json)
            headers = {"Content-Type": "application/json", **(headers or {})}
        request = self._http.build_request(method, path, content=content, params=params, headers=headers)
        limit = self._max_answer if limit is None else limit
        response, body = self._read(request, limit, self._deadline if deadline is None else deadline, what)
        if response.status_code >= 400:
            raise error_for_problem(response.status_code, _json_or_none(body), what=what)
        if body is None:
            raise ExchangeError(
                f"{what}: the exchange's answer is larger than {limit:,} bytes; it was not read further"
            )
        return _whole(response, body)

    def _read(
        self, request: httpx.Request, limit: int, seconds: float, what: str
    ) -> tuple[httpx.Response, bytes | None]:
        """Send ``request`` and read its answer, all within ``seconds``: the answer (closed) and
        its body as expanded, or None, read no further, once it is longer than ``limit`` bytes
        (an error answer's: than :data:`MAX_PROBLEM`).

        Raises:
            ExchangeUnreachable: the exchange could not be reached, or did not answer in time.
            ExchangeError: the answer is in a content coding not read, or does not expand.
        """
        with _answered_within(seconds) as deadline:
            try:
                response = self._http.send(request, stream=True)
                with contextlib.closing(response):
                    cap = limit if response.status_code < 400 else min(limit, MAX_PROBLEM)
                    return response, _body(response, cap, deadline, what)
            except httpx.TransportError as e:
                raise self._unreachable(e, what, deadline, seconds) from e
            except httpx.DecodingError as e:
                raise ExchangeError(f"{what}: the exchange's answer does not expand ({e})") from e

    def _unreachable(self, e: httpx.TransportError, what: str, deadline: float, seconds: float) -> ExchangeUnreachable:
        if _late(e, deadline):
            return ExchangeUnreachable(f"the exchange at {self.url} did not answer {what} within {seconds:g} s")
        return ExchangeUnreachable(f"cannot reach the exchange at {self.url} ({what}: {e})")

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The answer's JSON object (every endpoint answers one); ``kwargs`` as :meth:`request` takes them.

        Raises:
            ExchangeError: the answer is not JSON (or is nested too deeply to read), or is
                JSON but not an object.
        """
        response = self.request(method, path, **kwargs)
        try:
            # A member name twice in one object is refused (RFC 7493 §2.3), as the exchange
            # refuses it in a request: answers carry signed objects (a delivery's report as
            # signed, key documents), and parsers disagree on which of two members wins.
            value = jsontext.parse(response.content, unique=True)
        except ValueError as e:
            raise ExchangeError(f"{method} {path}: the exchange did not answer JSON ({e})") from e
        if not isinstance(value, dict):
            raise ExchangeError(f"{method} {path}: the exchange answered JSON that is not an object")
        return value

    # --- identity and keys ----------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        """Who the token belongs to: ``{"id", "name", "role", "party"}``."""
        result: dict[str, Any] = self._json("GET", "/api/v1/whoami")
        return result

    def register_keys(self, party: str, public: Mapping[str, Any]) -> dict[str, Any]:
        """Register a party's public keys (``PublicKeys.to_dict()``)."""
        result: dict[str, Any] = self._json("PUT", f"/api/v1/parties/{_segment(party)}/keys", json=dict(public))
        return result

    def public_keys(self, party: str) -> dict[str, Any]:
        """A party's registered public keys: ``{"party", "keys": [...]}``."""
        result: dict[str, Any] = self._json("GET", f"/api/v1/parties/{_segment(party)}/keys")
        return result

    def parties(self) -> list[str]:
        """The ids of the parties of the exchange's scenario."""
        parties = self.scenario().get("parties")
        if not isinstance(parties, list) or not all(
            isinstance(p, dict) and isinstance(p.get("id"), str) for p in parties
        ):
            raise ExchangeError("GET /api/v1/scenario: the exchange answered parties without their ids")
        return [p["id"] for p in parties]

    def scenario(self) -> dict[str, Any]:
        """The exchange's scenario: parties (with aliases and ladders), agreements, topics."""
        scenario: dict[str, Any] = self._json("GET", "/api/v1/scenario")
        return scenario

    def route(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """How a report would be routed to one recipient (``GET /api/v1/route``): the
        decision, the relay, the marking it would carry and the reasons."""
        return self._json("GET", "/api/v1/route", params=params)

    # --- reports ----------------------------------------------------------------------------------

    def submit(self, submission: Mapping[str, Any] | bytes) -> dict[str, Any]:
        """Submit a signed report ``{"report", "signature", "key"}`` (or its JSON bytes, sent
        as they are); the result per recipient.

        When the answer is lost (the exchange cannot be reached, the request timed out, the
        connection dropped, or the database was unavailable: 503) or the exchange was too busy
        to decide it (503 ``busy``: what it was decided on kept changing), the identical bytes
        are sent again, up to ``attempts`` times in all, waiting ``backoff`` seconds and twice as
        long before each later attempt (at least the ``Retry-After`` of a busy answer). The
        exchange is idempotent by report id: a report it stored on an attempt whose answer was
        lost is answered again with its stored result (200).

        Raises:
            ExchangeUnreachable: no attempt got an answer.
            StorageError: the exchange's database stayed unavailable.
            Busy: the exchange stayed too busy to decide it.
            GsomiaError: the subclass named by the answer's problem ``type`` (not retried).
        """
        body = submission if isinstance(submission, bytes) else jsonlib.dumps(dict(submission)).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        wait = self._backoff
        for _ in range(self._attempts - 1):
            try:
                return self._submit_once(body, headers)
            except (ExchangeUnreachable, StorageError, Busy) as e:
                self._sleep(max(wait, min(e.retry_after, _LONGEST_WAIT)) if isinstance(e, Busy) else wait)
                wait *= 2
        try:
            return self._submit_once(body, headers)
        except (ExchangeUnreachable, StorageError) as e:
            raise type(e)(f"{e} (sent {self._attempts} times)") from e
        except Busy as e:
            raise Busy(f"{e} (sent {self._attempts} times)", retry_after=e.retry_after) from e

    def _submit_once(self, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", "/api/v1/reports", content=body, headers=headers)
        return result

    def submit_batch(self, submissions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Submit up to 1,000 signed reports in one request: ``{"results": [...], "counts"}``,
        one result per report (``status`` 201, 200 or the error status, with ``result`` or
        ``problem``)."""
        body = {"reports": [dict(sub) for sub in submissions]}
        result: dict[str, Any] = self._json("POST", "/api/v1/report-batches", json=body)
        return result

    def report(self, report_id: str) -> dict[str, Any]:
        """The current result of one of the caller's reports."""
        result: dict[str, Any] = self._json("GET", f"/api/v1/reports/{_segment(report_id)}")
        return result

    # --- inbox and deliveries -----------------------------------------------------------------------

    def inbox(self, *, cursor: str | None = None, limit: int = 100, deliveries: bool = False) -> dict[str, Any]:
        """A page of the caller's inbox: ``{"items", "next_cursor", "cursor"}``; with
        ``deliveries`` (``limit`` at most 100), each delivery item carries the delivery as
        :meth:`delivery` returns it, under ``"document"``."""
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if not deliveries:
            result: dict[str, Any] = self._json("GET", "/api/v1/inbox", params=params)
            return result
        params["deliveries"] = "true"
        return self._json("GET", "/api/v1/inbox", params=params, **self._deliveries_measure())

    def delivery(self, delivery_id: str) -> dict[str, Any]:
        """A delivery as its recipient fetches it (ciphertext, wrapped key, signed origin)."""
        result: dict[str, Any] = self._json("GET", f"/api/v1/deliveries/{_segment(delivery_id)}")
        return result

    def deliveries(self, delivery_ids: Sequence[str]) -> dict[str, Any]:
        """Several deliveries at once (at most 100): ``{"items": [...]}`` in the order asked,
        each as :meth:`delivery` returns it, or ``{"id", "error"}`` where that would be not found."""
        params = [("id", d) for d in delivery_ids]
        result: dict[str, Any] = self._json("GET", "/api/v1/deliveries", params=params, **self._deliveries_measure())
        return result

    def _deliveries_measure(self) -> dict[str, Any]:
        """The limit and deadline of an answer that carries deliveries."""
        return {"limit": self._max_deliveries_answer, "deadline": DELIVERIES_DEADLINE_TIMES * self._deadline}

    def acknowledge(self, delivery_id: str) -> dict[str, Any]:
        """Acknowledge a delivery, attesting need-to-know (rule 5)."""
        result: dict[str, Any] = self._json(
            "POST", f"/api/v1/deliveries/{_segment(delivery_id)}/ack", json={"need_to_know": True}
        )
        return result

    def events(self, *, last_event_id: str | None = None, deliveries: bool = False) -> Iterator[ServerSentEvent]:
        """The caller's inbox as server-sent events, from after ``last_event_id`` (or from new
        items on); with ``deliveries``, each delivery event carries the delivery as
        :meth:`delivery` returns it, under ``"document"``. The iterator ends when the server
        closes the stream.

        The stream's headers must come by the client's deadline; the stream itself has none,
        and is taken as broken once it has sent no whole line (an event, a keep-alive comment)
        for :data:`STREAM_SILENCE` seconds, silent or trickling bytes. A line, and the data of
        one event, is held to :data:`~gsomia.client.stream.MAX_LINE` characters.

        Raises:
            ExchangeUnreachable: the exchange could not be reached, or the stream broke.
            ExchangeError: a line or an event is too long, or the stream does not expand.
            GsomiaError: the subclass named by the answer's problem ``type``.
        """
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        what = "GET /api/v1/inbox/stream"
        params = {"deliveries": "true"} if deliveries else {}
        # The exchange sends a comment every 15 s (docs/protocol.md §7.2): a stream silent
        # for three of them is dead, however open its connection looks.
        silence = httpx.Timeout(30.0, read=STREAM_SILENCE)
        request = self._http.build_request(
            "GET", "/api/v1/inbox/stream", headers=headers, params=params, timeout=silence
        )
        try:
            with contextlib.closing(self._open_stream(request, what)) as response:
                yield from read_events(lines_of(response.iter_text(), stall=STREAM_SILENCE))
        except (httpx.TransportError, StreamStalled) as e:
            raise ExchangeUnreachable(f"the event stream of {self.url} broke ({e})") from e
        except LineTooLong as e:
            raise ExchangeError(f"{what}: {e}; the stream was closed") from e
        except httpx.DecodingError as e:
            raise ExchangeError(f"{what}: the stream does not expand ({e}); it was closed") from e

    def _open_stream(self, request: httpx.Request, what: str) -> httpx.Response:
        """Send an event stream's request; its response, open, once its headers came within the
        deadline.

        Raises:
            ExchangeUnreachable: the exchange could not be reached, or did not answer in time.
            ExchangeError: the stream is in a content coding not read.
            GsomiaError: the subclass named by the answer's problem ``type``.
        """
        with _answered_within(self._deadline) as deadline:
            try:
                response = self._http.send(request, stream=True)
                if response.status_code >= 400:
                    with contextlib.closing(response):
                        body = _body(response, MAX_PROBLEM, deadline, what)
                    raise error_for_problem(response.status_code, _json_or_none(body), what=what)
            except httpx.TransportError as e:
                if not _late(e, deadline):
                    raise  # the stream broke before it began: as when it breaks later
                raise self._unreachable(e, what, deadline, self._deadline) from e
        try:
            _check_coding(response, what)
        except ExchangeError:
            response.close()
            raise
        return response

    # --- consents ---------------------------------------------------------------------------------

    def consents(self, *, state: str = "pending") -> dict[str, Any]:
        """Consent requests for relays of the caller's reports: ``{"consents": [...]}``."""
        result: dict[str, Any] = self._json("GET", "/api/v1/consents", params={"state": state})
        return result

    def answer_consent(self, consent_id: str, *, grant: bool, reason: str = "") -> dict[str, Any]:
        """Grant or refuse a relay of one of the caller's reports."""
        body = {"decision": "grant" if grant else "refuse", "reason": reason}
        result: dict[str, Any] = self._json("POST", f"/api/v1/consents/{_segment(consent_id)}", json=body)
        return result

    def add_standing_consent(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Give a standing consent (topic prefix, recipient, optional hub, validity)."""
        result: dict[str, Any] = self._json("POST", "/api/v1/standing-consents", json=dict(spec))
        return result

    def standing_consents(self) -> dict[str, Any]:
        """The caller's standing consents: ``{"standing_consents": [...]}``."""
        result: dict[str, Any] = self._json("GET", "/api/v1/standing-consents")
        return result

    def revoke_standing_consent(self, standing_id: str) -> dict[str, Any]:
        """Revoke one of the caller's standing consents."""
        result: dict[str, Any] = self._json("DELETE", f"/api/v1/standing-consents/{_segment(standing_id)}")
        return result

    # --- incidents --------------------------------------------------------------------------------

    def file_incident(self, delivery_id: str, *, kind: str, description: str) -> dict[str, Any]:
        """Report the loss or compromise of a delivery (Art. 17)."""
        body = {"kind": kind, "description": description}
        result: dict[str, Any] = self._json("POST", f"/api/v1/deliveries/{_segment(delivery_id)}/incidents", json=body)
        return result

    def incident(self, incident_id: str) -> dict[str, Any]:
        """An incident and its updates."""
        result: dict[str, Any] = self._json("GET", f"/api/v1/incidents/{_segment(incident_id)}")
        return result

    def update_incident(self, incident_id: str, *, result: str = "", measures: str = "") -> dict[str, Any]:
        """Append an investigation result and measures to an incident."""
        body = {"result": result, "measures": measures}
        answer: dict[str, Any] = self._json("POST", f"/api/v1/incidents/{_segment(incident_id)}/updates", json=body)
        return answer

    # --- operator and auditor -----------------------------------------------------------------------

    def record_event(self, agreement: str, event: Mapping[str, Any]) -> dict[str, Any]:
        """Record an agreement event (operator)."""
        result: dict[str, Any] = self._json(
            "POST", f"/api/v1/agreements/{_segment(agreement)}/events", json=dict(event)
        )
        return result

    def exchange_stats(self) -> dict[str, Any]:
        """Exchange counts (auditor, operator)."""
        result: dict[str, Any] = self._json("GET", "/api/v1/exchange/stats")
        return result

    def exercise(self) -> dict[str, Any]:
        """Whether exercise mode is on, and the exchange clock."""
        result: dict[str, Any] = self._json("GET", "/api/v1/exercise")
        return result

    def set_exercise_clock(self, at: str) -> dict[str, Any]:
        """Move the exercise clock forward (operator)."""
        result: dict[str, Any] = self._json("POST", "/api/v1/exercise/clock", json={"at": at})
        return result

    # --- ledger -----------------------------------------------------------------------------------

    def ledger_checkpoint(self) -> str:
        """The latest signed checkpoint (a C2SP signed note)."""
        return self.request("GET", "/api/v1/ledger/checkpoint", limit=min(MAX_CHECKPOINT, self._max_answer)).text

    def ledger_key(self) -> dict[str, Any]:
        """The exchange's checkpoint verification key, as published."""
        result: dict[str, Any] = self._json("GET", "/api/v1/ledger/key")
        return result

    def ledger_entries(self, *, start: int, limit: int) -> dict[str, Any]:
        """A page of ledger entries: ``{"start", "limit", "entries", "next"}``."""
        result: dict[str, Any] = self._json("GET", "/api/v1/ledger/entries", params={"start": start, "limit": limit})
        return result

    def ledger_entry(self, index: int) -> dict[str, Any]:
        """One ledger entry: ``{"index", "entry", "body", "leaf_hash", "recorded_at"}``."""
        result: dict[str, Any] = self._json("GET", f"/api/v1/ledger/entries/{_segment(index)}")
        return result

    def ledger_inclusion(self, index: int, size: int | None = None) -> dict[str, Any]:
        """The inclusion proof of entry ``index`` (RFC 9162 §2.1.3)."""
        params: dict[str, int] = {"index": index} | ({"size": size} if size is not None else {})
        result: dict[str, Any] = self._json("GET", "/api/v1/ledger/proof/inclusion", params=params)
        return result

    def ledger_inclusions(
        self, indexes: Sequence[int], size: int | None = None, *, old: int | None = None
    ) -> dict[str, Any]:
        """Several entries with their inclusion proofs in the tree of ``size``:
        ``{"size", "items": [{"index", "entry", "proof"} | {"index", "error"}]}``. With no
        ``size``, in the current tree, with its signed ``"checkpoint"``; ``old`` adds the
        ``"consistency"`` proof from that size to it."""
        params = [("index", str(i)) for i in indexes]
        if size is not None:
            params.append(("size", str(size)))
        if old is not None:
            params.append(("old", str(old)))
        result: dict[str, Any] = self._json("GET", "/api/v1/ledger/proof/inclusions", params=params)
        return result

    def ledger_consistency(self, old: int, new: int | None = None) -> dict[str, Any]:
        """The consistency proof between two tree sizes (RFC 9162 §2.1.4)."""
        params: dict[str, int] = {"old": old} | ({"new": new} if new is not None else {})
        result: dict[str, Any] = self._json("GET", "/api/v1/ledger/proof/consistency", params=params)
        return result

    # --- witnesses --------------------------------------------------------------------------------

    def register_witness(self, party: str, vkey: str) -> dict[str, Any]:
        """Register ``party``'s witness key (a ``cosignature/v1`` vkey)."""
        result: dict[str, Any] = self._json("PUT", f"/api/v1/parties/{_segment(party)}/witness", json={"vkey": vkey})
        return result

    def witnesses(self) -> list[dict[str, Any]]:
        """Every party's current witness: ``[{"party", "name", "key_id", "vkey", ...}]``."""
        found = self._json("GET", "/api/v1/witnesses").get("witnesses")
        if not isinstance(found, list) or not all(isinstance(w, dict) for w in found):
            raise ExchangeError("GET /api/v1/witnesses: the exchange answered no list of witnesses")
        return found

    def cosign(self, size: int, cosignature: str) -> dict[str, Any]:
        """Post this party's witness cosignature line of the checkpoint of ``size``."""
        body = {"size": size, "cosignature": cosignature}
        result: dict[str, Any] = self._json("POST", "/api/v1/ledger/cosignatures", json=body)
        return result

    def ledger_cosigned_checkpoint(self, size: int | None = None) -> str:
        """The checkpoint of ``size`` (default: the largest cosigned) with its cosignature lines."""
        params = {"size": size} if size is not None else None
        limit = min(MAX_CHECKPOINT, self._max_answer)
        return self.request("GET", "/api/v1/ledger/checkpoint/cosigned", params=params, limit=limit).text


def _check_credentials(url: str, token: str | None) -> None:
    """Refuse, without quoting either, a token that cannot be a bearer token and an address that
    carries a user name or password: httpx would put the token, in the error that such a header
    raises, on the screen and in logs; and a password in the address would replace the bearer
    token with Basic authentication (401) and be shown wherever the address is.

    Raises:
        InvalidInput: either is so.
    """
    if token and not all("!" <= ch <= "~" for ch in token):
        # RFC 6750 §2.1: a bearer token is visible ASCII; a line break or a carriage return
        # comes from a file written on another system, a space from a copy and paste
        raise InvalidInput(
            "the API token holds a space, a line break, a control or a non-ASCII character "
            "(not shown here): give the token alone, exactly as 'gsomia principals add' printed it"
        )
    try:
        userinfo = httpx.URL(url).userinfo
    except httpx.InvalidURL as e:
        raise InvalidInput(f"exchange URL is not a valid address ({e}): give an http:// or https:// address") from e
    if userinfo:
        raise InvalidInput(
            "the exchange URL holds a user name or password (before '@', not shown here): give the address "
            "alone, and the token with --token or GSOMIA_TOKEN"
        )


def _json_or_none(body: bytes | None) -> object:
    try:
        return None if body is None else jsontext.parse(body)
    except ValueError:
        return None


def _late(e: httpx.TransportError, deadline: float) -> bool:
    """Whether ``e`` is the deadline passing (rather than one read or connection timing out)."""
    return isinstance(e, httpx.TimeoutException) and time.monotonic() >= deadline


def _check_coding(response: httpx.Response, what: str) -> None:
    """Refuse an answer in a content coding other than one gzip or deflate: httpx would expand
    any it knows, two stacked (``gzip, gzip``) a million-fold and more per read.

    Raises:
        ExchangeError: another content coding.
    """
    codings = [c.strip().lower() for c in response.headers.get_list("content-encoding", split_commas=True)]
    applied = [c for c in codings if c not in ("", "identity")]
    if len(applied) > 1 or (applied and applied[0] not in ("gzip", "deflate")):
        raise ExchangeError(f"{what}: the exchange answered in the content coding {', '.join(applied)!r}, not read")


def _body(response: httpx.Response, limit: int, deadline: float, what: str) -> bytes | None:
    """The body of a streamed ``response`` as expanded, or None as soon as it is longer than
    ``limit`` bytes. A read expands at most some 1,000-fold (deflate), so what is held never
    passes ``limit`` by more than one read's worth.

    Raises:
        ExchangeError: the answer is in a content coding not read.
        httpx.ReadTimeout: a piece arrived after the deadline (the socket waits no longer; this
            checks a transport that has no socket).
    """
    _check_coding(response, what)
    chunks: list[bytes] = []
    held = 0
    for chunk in response.iter_bytes():
        held += len(chunk)
        if held > limit:
            return None
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the deadline of the request passed", request=response.request)
    return b"".join(chunks)


def _whole(response: httpx.Response, body: bytes) -> httpx.Response:
    """``response`` again, holding ``body``, its body as read and expanded."""
    headers = [(k, v) for k, v in response.headers.multi_items() if k not in ("content-encoding", "content-length")]
    kept = {k: v for k, v in response.extensions.items() if k in ("http_version", "reason_phrase")}
    return httpx.Response(
        response.status_code, headers=headers, content=body, request=response.request, extensions=kept
    )


def _segment(value: object) -> str:
    """``value`` as one path segment: every character but the unreserved ones percent-encoded
    (RFC 3986 §2.3), so that an id can neither leave its segment (``/``, ``?``, ``#``) nor name
    another resource (``.`` and ``..`` are dot-segments, §5.2.4), nor make an invalid URL."""
    text = quote(str(value), safe="")
    return text.replace(".", "%2E") if text in (".", "..") else text
