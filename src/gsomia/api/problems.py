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
from starlette.exceptions import HTTPException as StarletteHTTPException

from gsomia.errors import (
    BadSignature,
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
    UnknownEntity,
    ValidationFailed,
)

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"

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
}
"""HTTP status and problem type by error class (first match in method resolution order)."""

TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    422: "Unprocessable content",
    500: "Internal error",
    503: "Service unavailable",
}


def problem(
    status: int, kind: str, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """A problem+json response; a 401 carries the bearer challenge."""
    body = {
        "type": f"urn:gsomia:problem:{kind}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    sent = dict(headers or {})
    if status == 401:
        sent.setdefault("WWW-Authenticate", 'Bearer realm="gsomia"')
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=sent or None)


def for_error(e: GsomiaError) -> JSONResponse:
    """The problem response for a gsomia error."""
    for cls in type(e).__mro__:
        if cls in STATUS:
            status, kind = STATUS[cls]
            break
    else:
        status, kind = 500, "internal"
    extra: dict[str, Any] = {}
    if isinstance(e, ValidationFailed):
        extra["problems"] = [{"message": p.message, "path": p.path, "line": p.line} for p in e.problems]
    if isinstance(e, ReleaseDenied):
        extra["reasons"] = [getattr(r, "as_dict", lambda r=r: {"message": str(r)})() for r in e.reasons]
    return problem(status, kind, str(e), **extra)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    @app.exception_handler(GsomiaError)
    async def _gsomia(_request: Request, exc: GsomiaError) -> JSONResponse:
        if isinstance(exc, StorageError):
            log.warning("storage error: %s", exc)
        return for_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(x) for x in err.get("loc", ())], "message": err.get("msg", ""), "type": err.get("type", "")}
            for err in exc.errors()
        ]
        return problem(422, "invalid-request", "the request does not match the API schema", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}.get(exc.status_code, "http")
        return problem(exc.status_code, kind, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return problem(500, "internal", "an internal error occurred; nothing was changed")
