"""The exchange's HTTP API, as a client: one method per endpoint, errors as gsomia's own.

Every error answer of the exchange is an RFC 9457 ``application/problem+json`` document whose
``type`` names its cause (``urn:gsomia:problem:not-found``…, docs/protocol.md §Errors). The
client maps that ``type`` — never the status code or the message text — to the matching class
of :mod:`gsomia.errors`, so a caller handles a refused signature or a conflict the same way
whether it happened in this process or on the server. A server that cannot be reached at
all (refused connection, DNS, TLS, timeout) is :class:`~gsomia.errors.ExchangeUnreachable`.

A submission is retried: the exchange is idempotent by report id (the same signed report
submitted again returns the stored result, docs/protocol.md), so when the answer is lost — a
timeout, a dropped connection, a 503 while the database is busy — :meth:`ExchangeClient.submit`
sends the identical bytes again, a few times, with exponential backoff. Nothing else is
retried: other requests are not all idempotent, and their caller decides.
"""

from __future__ import annotations

import json as jsonlib
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from gsomia import jsontext
from gsomia.client.stream import LineTooLong, ServerSentEvent, lines_of, read_events
from gsomia.errors import (
    BadSignature,
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
    UnknownEntity,
    ValidationFailed,
)

__all__ = ["DEFAULT_URL", "PROBLEM_PREFIX", "SUBMIT_ATTEMPTS", "ExchangeClient", "error_for_problem"]

DEFAULT_URL = "http://127.0.0.1:8000"
SUBMIT_ATTEMPTS = 4
"""How many times :meth:`ExchangeClient.submit` sends a submission whose answer was lost."""
PROBLEM_PREFIX = "urn:gsomia:problem:"
STREAM_SILENCE = 45.0
"""Seconds an event stream may stay silent before it is taken as broken (the exchange sends a
comment every 15 s)."""

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
}
"""Our error class for each problem ``type`` the exchange answers (after the prefix)."""


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


class ExchangeClient:
    """A client of one exchange, as one principal (its bearer token).

    Use it as a context manager, or call :meth:`close`. ``transport`` lets tests drive an
    in-process application (``httpx.ASGITransport`` is async; use a WSGI-style or a mock
    transport) or a real socket alike.
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
    ) -> None:
        """Prepare a client (no connection is made until the first call).

        Args:
            url: The exchange's address.
            token: The principal's bearer token.
            timeout: Seconds to wait for each request.
            transport: Another httpx transport (tests).
            attempts: How many times a submission is sent when its answer is lost (at least 1).
            backoff: Seconds before the second attempt; doubled before each later one.
            sleep: Waits between attempts.

        Raises:
            InvalidInput: ``url`` is not an http(s) URL, or ``attempts`` is below 1.
        """
        if attempts < 1:
            raise InvalidInput("a submission needs at least one attempt")
        self._attempts = attempts
        self._backoff = backoff
        self._sleep = sleep
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise InvalidInput(f"exchange URL {url!r}: give an http:// or https:// address")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport, verify=_tls_context()
        )

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
    ) -> httpx.Response:
        """Send a request (a JSON body, or ``content`` as it is); return the response if it succeeded.

        Raises:
            ExchangeUnreachable: the exchange could not be reached.
            GsomiaError: the subclass named by the answer's problem ``type``.
        """
        what = f"{method} {path}"
        if json is not None:
            content = jsontext.compact_bytes(json)
            headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            response = self._http.request(method, path, content=content, params=params, headers=headers)
        except httpx.TransportError as e:
            raise ExchangeUnreachable(f"cannot reach the exchange at {self.url} ({what}: {e})") from e
        if response.status_code >= 400:
            raise error_for_problem(response.status_code, _json_or_none(response), what=what)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The answer's JSON object (every endpoint answers one).

        Raises:
            ExchangeError: the answer is not JSON (or is nested too deeply to read), or is
                JSON but not an object.
        """
        response = self.request(method, path, **kwargs)
        try:
            value = jsontext.parse(response.content)
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
        connection dropped, or the database was busy: 503) the identical bytes are sent again,
        up to ``attempts`` times in all, waiting ``backoff`` seconds and twice as long before
        each later attempt. The exchange is idempotent by report id: a report it stored on an
        attempt whose answer was lost is answered again with its stored result (200).

        Raises:
            ExchangeUnreachable: no attempt got an answer.
            StorageError: the exchange's database stayed unavailable.
            GsomiaError: the subclass named by the answer's problem ``type`` (not retried).
        """
        body = submission if isinstance(submission, bytes) else jsonlib.dumps(dict(submission)).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        wait = self._backoff
        for _ in range(self._attempts - 1):
            try:
                return self._submit_once(body, headers)
            except (ExchangeUnreachable, StorageError):
                self._sleep(wait)
                wait *= 2
        try:
            return self._submit_once(body, headers)
        except (ExchangeUnreachable, StorageError) as e:
            raise type(e)(f"{e} (sent {self._attempts} times)") from e

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
        if deliveries:
            params["deliveries"] = "true"
        result: dict[str, Any] = self._json("GET", "/api/v1/inbox", params=params)
        return result

    def delivery(self, delivery_id: str) -> dict[str, Any]:
        """A delivery as its recipient fetches it (ciphertext, wrapped key, signed origin)."""
        result: dict[str, Any] = self._json("GET", f"/api/v1/deliveries/{_segment(delivery_id)}")
        return result

    def deliveries(self, delivery_ids: Sequence[str]) -> dict[str, Any]:
        """Several deliveries at once (at most 100): ``{"items": [...]}`` in the order asked,
        each as :meth:`delivery` returns it, or ``{"id", "error"}`` where that would be not found."""
        params = [("id", d) for d in delivery_ids]
        result: dict[str, Any] = self._json("GET", "/api/v1/deliveries", params=params)
        return result

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

        Raises:
            ExchangeUnreachable: the exchange could not be reached, or the stream broke.
            GsomiaError: the subclass named by the answer's problem ``type``.
        """
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        what = "GET /api/v1/inbox/stream"
        try:
            params = {"deliveries": "true"} if deliveries else {}
            # The exchange sends a comment every 15 s (docs/protocol.md §7.2): a stream silent
            # for three of them is dead, however open its connection looks.
            silence = httpx.Timeout(30.0, read=STREAM_SILENCE)
            with self._http.stream(
                "GET", "/api/v1/inbox/stream", headers=headers, params=params, timeout=silence
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_for_problem(response.status_code, _json_or_none(response), what=what)
                yield from read_events(lines_of(response.iter_text()))
        except httpx.TransportError as e:
            raise ExchangeUnreachable(f"the event stream of {self.url} broke ({e})") from e
        except LineTooLong as e:
            raise ExchangeError(f"{what}: {e}; the stream was closed") from e

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
        return self.request("GET", "/api/v1/ledger/checkpoint").text

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
        return self.request("GET", "/api/v1/ledger/checkpoint/cosigned", params=params).text


def _json_or_none(response: httpx.Response) -> object:
    try:
        return jsontext.parse(response.content)
    except ValueError:
        return None


def _segment(value: object) -> str:
    """``value`` as one path segment: every character but the unreserved ones percent-encoded
    (RFC 3986 §2.3), so that an id can neither leave its segment (``/``, ``?``, ``#``) nor name
    another resource (``.`` and ``..`` are dot-segments, §5.2.4), nor make an invalid URL."""
    text = quote(str(value), safe="")
    return text.replace(".", "%2E") if text in (".", "..") else text
