"""The node's web application: the officers' JSON API under ``/api/``, their console at ``/``,
and whatever else the node serves (``routers`` and ``mounts``, e.g. TAXII 2.1 at ``/taxii2/``).

Every error is an RFC 9457 problem (``application/problem+json``). Sessions ride in the
``gsomia_node_session`` cookie (HttpOnly, SameSite=Strict, Secure over https); every request
under ``/api/`` that changes something must carry ``X-CSRF-Token`` equal to its session's
token (403 otherwise), except the login itself. Every response carries a strict Content
Security Policy and the usual hardening headers (OWASP Secure Headers).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
    ReleaseDenied,
    StorageError,
    TooManyRequests,
    UnknownEntity,
    ValidationFailed,
)
from gsomia.node.service import SESSION_ENDED, NodeService
from gsomia.node.users import LoginThrottled, Role, Session
from gsomia.problems import document_problems

__all__ = ["COOKIE", "CSP", "WEB_DIR", "create_node_app", "require"]

log = logging.getLogger(__name__)

COOKIE = "gsomia_node_session"
CSRF_HEADER = "X-CSRF-Token"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
WEB_DIR = Path(__file__).resolve().parent / "web"
PROBLEM = "application/problem+json"
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
STREAM_CHECK = 5.0  # seconds between checks of an open event stream's session in the store
MAX_BODY = 1024 * 1024  # the exchange's own limit (GSOMIA_MAX_BODY_BYTES): a larger report could not go on
# The console's cache policy (console/build.mjs): every built asset has a content hash in its
# name and is cached for a year as immutable; index.html, which names them, is revalidated, so
# a new build reaches every browser at its next load. The dashboard's (gsomia.web.routes), which
# the node may not import.
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
_HASHED = re.compile(r"-[A-Z0-9]{8}\.[a-z0-9]+$")  # esbuild's [name]-[hash] names

_STATUS: list[tuple[type[GsomiaError], int, str]] = [
    (LoginThrottled, 429, "too-many-requests"),
    (TooManyRequests, 429, "too-many-requests"),
    (Busy, 503, "busy"),
    (ValidationFailed, 422, "invalid-document"),
    (InvalidInput, 422, "invalid-input"),
    (UnknownEntity, 404, "not-found"),
    (Conflict, 409, "conflict"),
    (NotAuthenticated, 401, "not-authenticated"),
    (NotPermitted, 403, "forbidden"),
    (ReleaseDenied, 403, "release-denied"),
    (BadSignature, 400, "bad-signature"),
    (DecryptionFailed, 400, "decryption-failed"),
    (LedgerInvalid, 409, "ledger-invalid"),
    (PayloadTooLarge, 413, "payload-too-large"),
    (ExchangeUnreachable, 503, "exchange-unreachable"),
    (ExchangeError, 502, "exchange-error"),
    (StorageError, 503, "storage-unavailable"),
]
_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    422: "Unprocessable content",
    429: "Too many requests",
    502: "Bad gateway",
    503: "Service unavailable",
}


_PROBLEM_TEXT = {
    400: "A signature or ciphertext that does not verify (bad-signature, decryption-failed).",
    401: "No valid session: log in with POST /api/session (not-authenticated).",
    403: (
        "The user's role may not do this, the X-CSRF-Token header is missing or wrong, or the "
        "exchange refused the release (forbidden, release-denied)."
    ),
    404: "No such object on this node or at the exchange, or another party's (not-found).",
    409: "A conflict with what is stored, or a ledger that does not verify (conflict, ledger-invalid).",
    413: "The request body is larger than 1 MiB (payload-too-large).",
    422: "The request is malformed (invalid-request, invalid-input, invalid-document).",
    429: (
        "Too many failed logins, or the exchange refused a key set registered too soon after others; "
        "Retry-After says when to try again (too-many-requests)."
    ),
    502: "The exchange answered something the node cannot use (exchange-error).",
    503: (
        "The exchange cannot be reached or is busy, or the node's store is unavailable; nothing was changed; "
        "Retry-After says when to try again (exchange-unreachable, busy, storage-unavailable)."
    ),
}
EXCHANGE = (409, 502)
"""What a route that asks the exchange may answer besides what every route may (503 is implied)."""


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the problem answers a route gives besides the implied ones."""
    return {s: {"description": _PROBLEM_TEXT[s]} for s in statuses}


def _implied(path: str, method: str, operation: dict[str, Any]) -> tuple[int, ...]:
    """What any route of the API may answer before it runs: a malformed parameter or body
    (422), a store or exchange that is unavailable (503), no session (401, except logging in),
    a missing CSRF token on a method that changes something (403), a body too large (413)."""
    login = path == "/api/session" and method == "post"
    statuses = [422, 503]
    if not login:
        statuses.append(401)
        if method not in ("get", "head"):
            statuses.append(403)
    if "requestBody" in operation:
        statuses.append(413)
    return tuple(statuses)


def problem(
    status: int, kind: str, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """An RFC 9457 problem response."""
    body = {
        "type": f"urn:gsomia:problem:{kind}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    return JSONResponse(body | extra, status_code=status, media_type=PROBLEM, headers=dict(headers or {}) or None)


def _for_error(e: GsomiaError) -> JSONResponse:
    for cls, status, kind in _STATUS:
        if isinstance(e, cls):
            headers = None
            if isinstance(e, LoginThrottled | TooManyRequests | Busy):
                headers = {"Retry-After": str(e.retry_after)}
            if status == 503 and headers is None:
                headers = {"Retry-After": "5"}
            extra: dict[str, Any] = {}
            if isinstance(e, ReleaseDenied):
                extra["reasons"] = [str(r) for r in e.reasons]
            return problem(status, kind, " ".join(str(e).split()), headers, **extra)
    log.exception("unexpected error", exc_info=e)
    return problem(500, "internal", "internal error: nothing was changed")


# --- sessions and roles ---------------------------------------------------------------------------------


def service_of(request: Request) -> NodeService:
    """The node service of this application."""
    service: NodeService = request.app.state.node
    return service


def current_session(request: Request) -> Session:
    """The request's session; a request that changes something must echo its CSRF token.

    Raises:
        NotAuthenticated: no valid session (401).
        NotPermitted: a missing or wrong CSRF token (403).
    """
    session = service_of(request).users.session(request.cookies.get(COOKIE))
    if request.method not in SAFE:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise NotPermitted(f"missing or wrong {CSRF_HEADER} header (send the csrf of GET /api/session)")
    return session


def require(role: Role) -> Callable[[Request], Session]:
    """A dependency: the request's session, whose role is at least ``role``."""

    def dependency(request: Request) -> Session:
        session = current_session(request)
        session.require(role)
        return session

    return dependency


Officer = Annotated[Session, Depends(require(Role.OFFICER))]
Approver = Annotated[Session, Depends(require(Role.APPROVER))]
Admin = Annotated[Session, Depends(require(Role.ADMIN))]


# --- request bodies -------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LoginIn(_Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class CaveatsIn(_Body):
    rel_to: list[str] | None = None
    orcon: bool = False
    noforn: bool = False


class PreviewIn(_Body):
    topic: str = Field(min_length=1, max_length=128)
    level: str = Field(min_length=1, max_length=64)
    recipients: list[str] = Field(min_length=1, max_length=64)
    caveats: CaveatsIn = Field(default_factory=CaveatsIn)


class SubmitIn(PreviewIn):
    content_type: str = Field(default="text/plain; charset=utf-8", min_length=1, max_length=128)
    payload: str | dict[str, Any] | list[Any]


class AckIn(_Body):
    pass


class IncidentIn(_Body):
    kind: str = Field(pattern="^(loss|compromise|possible_compromise)$")
    description: str = Field(min_length=1, max_length=8000)


class FollowUpIn(_Body):
    result: str = Field(default="", max_length=8000)
    measures: str = Field(default="", max_length=8000)


class ConsentIn(_Body):
    grant: bool
    reason: str = Field(default="", max_length=2000)


class StandingIn(_Body):
    topic_prefix: str = Field(min_length=1, max_length=128)
    recipient: str = Field(min_length=2, max_length=16)
    hub: str | None = None
    valid_from: str | None = None
    valid_until: str = Field(min_length=4, max_length=64)
    note: str = Field(default="", max_length=2000)


class UserIn(_Body):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    role: str = Field(pattern="^(officer|approver|admin)$")


# --- routes ---------------------------------------------------------------------------------------------

api = APIRouter(prefix="/api")


@api.post("/session", responses=_problems(401, 429))
def login(request: Request, body: LoginIn, response: Response) -> dict[str, Any]:
    """Log in; the cookie carries the session, the answer its CSRF token. A session the
    browser still carried ends: its cookie is replaced, and a copy of it must not outlive it."""
    service = service_of(request)
    client = request.client.host if request.client else "unknown"
    token, session = service.users.login(body.username, body.password, client=client)
    if earlier := request.cookies.get(COOKIE):
        service.bus.publish(SESSION_ENDED, {"session": service.users.logout(earlier)})
    service.audit.record(session.username, "login", client, {})
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/", secure=request.url.scheme == "https")
    return _session_json(service, session)


@api.get("/session")
def whoami(request: Request, session: Officer) -> dict[str, Any]:
    """The current session."""
    return _session_json(service_of(request), session)


@api.delete("/session", status_code=204)
def logout(request: Request, session: Officer) -> Response:
    """Log out."""
    service = service_of(request)
    service.users.logout(request.cookies.get(COOKIE, ""))
    service.audit.record(session.username, "logout", "", {})
    service.bus.publish(SESSION_ENDED, {"session": session.token_sha256})
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


def _session_json(service: NodeService, session: Session) -> dict[str, Any]:
    return {"user": session.username, "role": session.role.label, "party": service.config.party, "csrf": session.csrf}


@api.get("/status")
def status(request: Request, _: Officer) -> dict[str, Any]:
    """The node's view of the exchange, its deliveries, the ledger, its witness and any alarm."""
    return service_of(request).status()


@api.get("/meta", responses=_problems(*EXCHANGE))
def meta(request: Request, _: Officer) -> dict[str, Any]:
    """The party's ladder, the scenario's topics and parties, the caveats."""
    return service_of(request).meta()


@api.get("/inbox")
def inbox(
    request: Request,
    _: Officer,
    topic: str | None = None,
    originator: str | None = None,
    level: str | None = None,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    state: str = "all",
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """What the party received, newest first; ``q`` searches decrypted content and metadata."""
    return service_of(request).inbox(
        topic=topic,
        originator=originator,
        level=level,
        start=start,
        end=end,
        q=q,
        state=state,
        cursor=cursor,
        limit=limit,
    )


@api.get("/deliveries/{delivery_id}", responses=_problems(403, 404))
def delivery(request: Request, delivery_id: str, session: Officer, show: str | None = None) -> dict[str, Any]:
    """One delivery with its payload and verification (quarantined: no payload unless an
    approver asks with ``?show=quarantined``)."""
    return service_of(request).delivery(delivery_id, session, show_quarantined=show == "quarantined")


@api.post("/deliveries/{delivery_id}/ack", responses=_problems(404, *EXCHANGE))
def acknowledge(request: Request, delivery_id: str, _body: AckIn, session: Officer) -> dict[str, Any]:
    """Acknowledge (need-to-know), forwarded to the exchange, attributed to the officer here."""
    return service_of(request).acknowledge(delivery_id, session)


@api.post("/deliveries/{delivery_id}/incidents", status_code=201, responses=_problems(404, *EXCHANGE))
def file_incident(request: Request, delivery_id: str, body: IncidentIn, session: Officer) -> dict[str, Any]:
    """Report a loss or compromise (Art. 17)."""
    return service_of(request).file_incident(delivery_id, body.kind, body.description, session)


@api.get("/incidents")
def incidents(request: Request, _: Officer) -> dict[str, Any]:
    """Incidents filed by this party or told to it."""
    return service_of(request).incidents()


@api.post("/incidents/{incident_id}", responses=_problems(404, *EXCHANGE))
def follow_up(request: Request, incident_id: str, body: FollowUpIn, session: Officer) -> dict[str, Any]:
    """Append a result and measures to an incident."""
    return service_of(request).follow_up_incident(incident_id, body.result, body.measures, session)


@api.post("/preview", responses=_problems(*EXCHANGE))
def preview(request: Request, body: PreviewIn, _: Officer) -> dict[str, Any]:
    """What the exchange would decide for each recipient, before signing."""
    return service_of(request).preview(body.model_dump())


@api.post("/submit", status_code=201, responses=_problems(400, *EXCHANGE))
def submit(request: Request, body: SubmitIn, session: Officer) -> dict[str, Any]:
    """Sign in the node and submit; the exchange's result per recipient."""
    return service_of(request).submit(body.model_dump(), session)


@api.get("/consents", responses=_problems(*EXCHANGE))
def consents(request: Request, _: Officer, state: str = "pending") -> dict[str, Any]:
    """Consent requests for relays of the party's reports."""
    return service_of(request).consents(state)


@api.post("/consents/{consent_id}", responses=_problems(404, *EXCHANGE))
def answer_consent(request: Request, consent_id: str, body: ConsentIn, session: Approver) -> dict[str, Any]:
    """Grant or refuse a relay, with the reason (approver)."""
    return service_of(request).answer_consent(consent_id, grant=body.grant, reason=body.reason, session=session)


@api.get("/standing-consents", responses=_problems(*EXCHANGE))
def standing_consents(request: Request, _: Officer) -> dict[str, Any]:
    """The party's standing consents."""
    return service_of(request).standing_consents()


@api.post("/standing-consents", status_code=201, responses=_problems(*EXCHANGE))
def add_standing(request: Request, body: StandingIn, session: Approver) -> dict[str, Any]:
    """Give a standing consent (approver)."""
    return service_of(request).add_standing_consent(body.model_dump(), session)


@api.delete("/standing-consents/{standing_id}", responses=_problems(404, *EXCHANGE))
def revoke_standing(request: Request, standing_id: str, session: Approver) -> dict[str, Any]:
    """Revoke a standing consent (approver)."""
    return service_of(request).revoke_standing_consent(standing_id, session)


@api.get("/keys")
def keys(request: Request, _: Officer) -> dict[str, Any]:
    """The party's key sets (public halves)."""
    return service_of(request).keys()


@api.post("/keys/rotate", responses=_problems(*EXCHANGE, 429))
def rotate(request: Request, session: Admin) -> dict[str, Any]:
    """New keys, registered with the exchange; the old kept to open older deliveries (admin)."""
    return service_of(request).rotate_keys(session.username)


@api.get("/users", responses=_problems(403))
def users(request: Request, _: Admin) -> dict[str, Any]:
    """Every account (admin)."""
    return {"items": service_of(request).users.all()}


@api.post("/users", status_code=201, responses=_problems(409))
def add_user(request: Request, body: UserIn, session: Admin) -> dict[str, Any]:
    """Create an account (admin)."""
    return service_of(request).add_user(body.username, body.password, body.role, session.username)


@api.delete("/users/{username}", responses=_problems(404, 409))
def revoke_user(request: Request, username: str, session: Admin) -> dict[str, Any]:
    """Revoke an account; its sessions end at once (admin)."""
    return service_of(request).revoke_user(username, session.username)


@api.get("/audit", responses=_problems(403))
def audit(
    request: Request,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,  # a stored id is a 64-bit integer
) -> dict[str, Any]:
    """The node's audit log, newest first (admin): with the summary of every window of
    throttled logins that has ended."""
    service = service_of(request)
    if before is None:
        service.users.settle()
    return service.audit.page(limit=limit, before=before)


@api.get("/events")
async def events(request: Request, session: Officer) -> EventSourceResponse:
    """Live updates for the console: ``delivery``, ``consent``, ``alarm``, ``status``, ``incident``.

    The stream ends as soon as its session does (signed out, or the user revoked), so a revoked
    officer's open console stops receiving at once; the browser's reconnection then gets a 401.
    What this process is not told of (a revocation by ``gsomia node users revoke``, the session
    idle or past its lifetime) ends it at the next check of the session in the store: before
    each event, and every :data:`STREAM_CHECK` seconds.
    """
    service = service_of(request)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=1000)

    def push(kind: str, data: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (kind, data))

    async def stream() -> AsyncIterator[dict[str, str]]:
        service.bus.subscribe(push)
        try:
            yield {"event": "status", "data": json.dumps(service.status(), ensure_ascii=False)}
            while True:
                try:
                    kind, data = await asyncio.wait_for(queue.get(), timeout=STREAM_CHECK)
                except TimeoutError:
                    kind, data = "", {}
                if kind == SESSION_ENDED:
                    if data.get("session") == session.token_sha256 or data.get("user") == session.username:
                        return
                    continue
                if not await anyio.to_thread.run_sync(service.users.alive, session.token_sha256):
                    return
                if kind:
                    yield {"event": kind, "data": json.dumps(data, ensure_ascii=False)}
        finally:
            service.bus.unsubscribe(push)

    return EventSourceResponse(stream(), ping=15)


# --- the envelope of every answer ----------------------------------------------------------------------


_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class _Envelope:
    """What every answer of the node shares, as plain ASGI (not ``BaseHTTPMiddleware``: the
    console's event stream and TAXII's answers pass through untouched, at no cost per request):

    - the security headers, and ``Cache-Control: no-store`` under ``/api/`` and under the
      mounts of ``own_limits`` (TAXII, whose answers carry decrypted deliveries);
    - bodies over :data:`MAX_BODY` refused with 413, judged from ``Content-Length`` and by
      counting while they are read (chunked uploads); the applications mounted under
      ``own_limits`` (TAXII, which publishes its ``max_content_length``) judge their own;
    - an unexpected error answered as a 500 problem, if the answer has not started.
    """

    def __init__(self, app: ASGIApp, *, own_limits: tuple[str, ...] = ()) -> None:
        self.app = app
        self.own_limits = tuple(prefix.rstrip("/") + "/" for prefix in own_limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        mounted = (path + "/").startswith(self.own_limits)
        extra = [(b"cache-control", b"no-store")] if path.startswith("/api/") or mounted else []
        started = False

        async def send_enveloped(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                ours = [*_HEADERS, *extra]  # they replace any the application set
                names = {name for name, _ in ours}
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in names]
                message = {**message, "headers": [*kept, *ours]}
            await send(message)

        if scope["method"] not in SAFE and not mounted:
            body = await _read_within_limit(scope, receive)
            if body is None:
                # Connection: close, for the unread rest of the body would be read as the next request.
                detail = f"request bodies are at most {MAX_BODY} bytes"
                await problem(413, "payload-too-large", detail, {"Connection": "close"})(scope, receive, send_enveloped)
                return
            receive = _replay(body, receive)
        try:
            await self.app(scope, receive, send_enveloped)
        except Exception:  # a bug: answered as a problem, with the same headers as any answer
            log.exception("unexpected error on %s %s", scope.get("method"), path)
            if started:
                raise
            await problem(500, "internal", "internal error: nothing was changed")(scope, receive, send_enveloped)


async def _read_within_limit(scope: Scope, receive: Receive) -> bytes | None:
    """The whole body, or None once it is over :data:`MAX_BODY` (by its ``Content-Length`` or
    counted as it arrives: chunked uploads)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY:  # bytes: ASCII digits
            return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the application sees the disconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class _Console(StaticFiles):
    """The console's files, with its cache policy (hashed names immutable, the rest revalidated)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = IMMUTABLE if _HASHED.search(path) else NO_CACHE
        return response


class _Mount(Mount):
    """A mount that takes every path under its prefix. Starlette's own matches the rest of the
    path with ``.*``, which stops at a line feed: ``/taxii2/%0d%0a`` and the like would fall
    through to the node's routes and be answered in the console's format (a problem document)
    instead of the mounted application's (TAXII's error message)."""

    def __init__(self, path: str, app: ASGIApp) -> None:
        super().__init__(path, app=app)
        self.path_regex = re.compile(self.path_regex.pattern, re.DOTALL)


# --- the application ------------------------------------------------------------------------------------


def create_node_app(
    service: NodeService,
    *,
    routers: Sequence[APIRouter] = (),
    mounts: Mapping[str, ASGIApp] | None = None,
    web_dir: Path | None = None,
) -> FastAPI:
    """The node's application: the JSON API, then ``routers`` and ``mounts`` (e.g.
    ``{"/taxii2": app}``), then the console's static files at ``/``.

    Args:
        service: the node.
        routers: more API routers (they may use :func:`require` for sessions and roles).
        mounts: more applications, by path prefix.
        web_dir: the console's files (default: the package's ``web/``).
    """
    app = FastAPI(
        title=f"gsomia node ({service.config.party})", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json"
    )
    app.state.node = service

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(FastAPI.openapi(app), _PROBLEM_TEXT, _implied)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(GsomiaError)
    async def _gsomia(_request: Request, e: GsomiaError) -> JSONResponse:
        return _for_error(e)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, e: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(x) for x in err.get("loc", ())], "message": err.get("msg", ""), "type": err.get("type", "")}
            for err in e.errors()
        ]
        first = errors[0] if errors else {"loc": [], "message": "invalid request"}
        return problem(422, "invalid-request", f"{'.'.join(first['loc'][1:])}: {first['message']}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, e: StarletteHTTPException) -> JSONResponse:
        if e.status_code == 400 and isinstance(e.__cause__, ValueError):
            # JSON the parser refuses past its syntax (an integer of more than 4,300 digits):
            # the framework says 400 "error parsing the body"; it is a body like any malformed one
            reason = str(e.__cause__).split(";")[0]
            return problem(422, "invalid-request", f"the request body is not JSON the console reads: {reason}")
        kind = {404: "not-found", 405: "method-not-allowed"}.get(e.status_code, "http")
        return problem(e.status_code, kind, str(e.detail), dict(e.headers or {}))

    app.include_router(api)
    for router in routers:
        app.include_router(router)
    for prefix, sub in (mounts or {}).items():
        app.router.routes.append(_Mount(prefix, sub))

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
    async def _unknown(rest: str) -> JSONResponse:
        return problem(404, "not-found", f"no such API resource: /api/{rest}")

    directory = web_dir or WEB_DIR
    if directory.is_dir():
        app.mount("/", _Console(directory=directory, html=True), name="console")
    app.add_middleware(_Envelope, own_limits=tuple(mounts or {}))
    return app
