"""RFC 9457 problem details: every error the API returns is ``application/problem+json``.

HTTP status codes for gsomia's errors live in ``STATUS`` and nowhere else.
"""

from __future__ import annotations

import logging
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


def problem(status: int, kind: str, detail: str, **extra: Any) -> JSONResponse:
    """A problem+json response."""
    body = {
        "type": f"urn:gsomia:problem:{kind}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    headers = {"WWW-Authenticate": 'Bearer realm="gsomia"'} if status == 401 else None
    if status == 503:  # the database is away: nothing was changed, the same request may be retried
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


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
    return body


def for_error(e: GsomiaError) -> JSONResponse:
    """The problem response for a gsomia error."""
    body = describe(e)
    return problem(
        body.pop("status"),
        body.pop("type").removeprefix("urn:gsomia:problem:"),
        body.pop("detail"),
        **{k: v for k, v in body.items() if k != "title"},
    )


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
