"""RFC 9457 problem details: every error the API returns is ``application/problem+json``.

HTTP status codes for gsomia's errors live in ``STATUS`` and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security.utils import get_authorization_scheme_param
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from gsomia.errors import (
    BadSignature,
    Busy,
    Conflict,
    DecryptionFailed,
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

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"

RETRY_AFTER_SECONDS = 2
"""What a 503 asks a client to wait before retrying (RFC 9110 §10.2.3): the server reconnects
to its database by itself."""

STATUS: dict[type[GsomiaError], tuple[int, str]] = {
    ValidationFailed: (422, "invalid-document"),
    InvalidInput: (422, "invalid-input"),
    UnknownEntity: (404, "not-found"),
    Conflict: (409, "conflict"),
    NotAuthenticated: (401, "not-authenticated"),
    NotPermitted: (403, "forbidden"),
    BadSignature: (400, "bad-signature"),
    DecryptionFailed: (400, "decryption-failed"),
    PayloadTooLarge: (413, "payload-too-large"),
    ReleaseDenied: (403, "release-denied"),
    LedgerInvalid: (409, "ledger-invalid"),
    StorageError: (503, "storage-unavailable"),
    Busy: (503, "busy"),
    TooManyRequests: (429, "too-many-requests"),
}
"""HTTP status and problem type by error class (first match in method resolution order)."""

TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    413: "Payload too large",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


CHALLENGE = 'Bearer realm="gsomia"'
"""The ``WWW-Authenticate`` challenge of every 401 (RFC 6750 §3)."""

INVALID_TOKEN = f'{CHALLENGE}, error="invalid_token"'
"""The challenge when a bearer token was presented but is unknown or revoked (RFC 6750 §3.1).
Unknown and revoked tokens get the same answer, so it does not tell which tokens exist."""


def problem(
    status: int, kind: str, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """A problem+json response; a 401 carries the bearer challenge unless ``headers`` has one."""
    body = {
        "type": f"urn:gsomia:problem:{kind}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    sent = dict(headers or {})
    if status == 401:
        sent.setdefault("WWW-Authenticate", CHALLENGE)
    if status == 503:  # nothing was changed: the same request may be sent again in a moment
        sent.setdefault("Retry-After", str(RETRY_AFTER_SECONDS))
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=sent or None)


def describe(e: GsomiaError) -> dict[str, Any]:
    """The problem document of a gsomia error (its ``status`` member is the HTTP status)."""
    for cls in type(e).__mro__:
        if cls in STATUS:
            status, kind = STATUS[cls]
            break
    else:
        status, kind = 500, "internal"
    body: dict[str, Any] = {
        "type": f"urn:gsomia:problem:{kind}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": str(e),
    }
    if isinstance(e, ValidationFailed):
        body["problems"] = [{"message": p.message, "path": p.path, "line": p.line} for p in e.problems]
    if isinstance(e, ReleaseDenied):
        body["reasons"] = [getattr(r, "as_dict", lambda r=r: {"message": str(r)})() for r in e.reasons]
    if isinstance(e, Busy | TooManyRequests):
        body["retry_after"] = e.retry_after  # seconds, as the Retry-After header of the answer says
    return body


def for_error(e: GsomiaError, *, token_presented: bool = False) -> JSONResponse:
    """The problem response for a gsomia error.

    ``token_presented`` says whether the request carried a bearer token: a 401 then says the
    token is invalid (RFC 6750 §3.1); without one, the challenge carries no error code.
    """
    body = describe(e)
    status = body.pop("status")
    headers = {"WWW-Authenticate": INVALID_TOKEN} if status == 401 and token_presented else None
    if isinstance(e, Busy | TooManyRequests):
        headers = {"Retry-After": str(e.retry_after)}
    return problem(
        status,
        body.pop("type").removeprefix("urn:gsomia:problem:"),
        body.pop("detail"),
        headers=headers,
        **{k: v for k, v in body.items() if k != "title"},
    )


def bearer_presented(request: Request) -> bool:
    """True if the request carries ``Authorization: Bearer <token>`` with a non-empty token
    (parsed as the bearer scheme of :mod:`gsomia.api.deps` parses it)."""
    scheme, credentials = get_authorization_scheme_param(request.headers.get("Authorization"))
    return scheme.lower() == "bearer" and bool(credentials.strip())


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")
"""The methods a route of the API may declare (HEAD follows GET; OPTIONS and TRACE are not served)."""


def allowed_methods(request: Request) -> str:
    """The ``Allow`` header value for the resource of ``request``: every method some route of the
    application accepts on its path (RFC 9110 §10.2.1), and HEAD with GET (answered by
    :class:`gsomia.api.middleware.HeadAsGet`).

    Routes are asked through their public ``matches``, one method at a time, because included
    routers hold their routes in their own structures."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Mount):
            if route.matches(dict(request.scope))[0] is not Match.NONE:
                methods |= {"GET", "HEAD"}  # the only mount serves static files, which answer GET and HEAD
            continue
        methods.update(m for m in _METHODS if route.matches({**request.scope, "method": m})[0] is Match.FULL)
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    @app.exception_handler(GsomiaError)
    async def _gsomia(request: Request, exc: GsomiaError) -> JSONResponse:
        if isinstance(exc, StorageError):
            log.warning("storage error: %s", exc)
        return for_error(exc, token_presented=isinstance(exc, NotAuthenticated) and bearer_presented(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(x) for x in err.get("loc", ())], "message": err.get("msg", ""), "type": err.get("type", "")}
            for err in exc.errors()
        ]
        return problem(422, "invalid-request", "the request does not match the API schema", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}.get(exc.status_code, "http")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # RFC 9110 §15.5.6: a 405 names the methods the resource allows, all of them (the
            # framework names only those of the first route that matched the path).
            headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
        return problem(exc.status_code, kind, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return problem(500, "internal", "an internal error occurred; nothing was changed")
