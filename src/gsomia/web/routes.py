"""The dashboard: the page at ``/``, its assets at ``/static``, the API reference at ``/docs``,
and the security headers on every response.

The page is static (built from ``web/`` at the repository root by ``make web`` into
``static/``) and reads everything through the JSON API, so there is no server-side
templating here. Asset names carry a content hash (``app-3FJ2KQ7A.js``): those are cached
for a year as immutable, and the two HTML pages that name them are ``no-cache``, so a new
build is picked up on the next load and an unchanged one costs nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"

# The page loads only its own scripts, styles, images and API; nothing inline, nothing from
# elsewhere, and it cannot be framed. Chart libraries set styles through the CSSOM, which
# style-src does not govern; img-src allows data: for the SVG icons in Swagger UI's CSS.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
_HASHED = re.compile(r"-[A-Z0-9]{8}\.[a-z0-9]+$")  # esbuild's [name]-[hash] entry names


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response (API included).

    Plain ASGI rather than ``BaseHTTPMiddleware`` so streamed responses (server-sent events)
    pass through untouched; it only edits the response start message.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Assets(StaticFiles):
    """Static files with the cache policy above (hashed names immutable, the rest revalidated)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = IMMUTABLE if _HASHED.search(path) else NO_CACHE
        return response


router = APIRouter(include_in_schema=False)


def _page(name: str) -> Response:
    page = STATIC / name
    if not page.is_file():
        # a source checkout whose assets were deleted: say how to rebuild rather than 404
        return Response(
            f"The dashboard's assets are missing ({page}); run 'make web' to build them.\n",
            status_code=503,
            media_type="text/plain",
        )
    return FileResponse(page, media_type="text/html", headers={"Cache-Control": NO_CACHE})


@router.get("/")
def dashboard() -> Response:
    """The dashboard page."""
    return _page("index.html")


@router.get("/docs")
def docs() -> Response:
    """The OpenAPI reference (Swagger UI served from ``/static``, initialised by a static script)."""
    return _page("docs.html")


def install(api: FastAPI) -> None:
    """Serve the dashboard and the API reference from ``api``, and add the security headers.

    The application must be created with ``docs_url=None``: ``/docs`` is served here, from
    local files, because FastAPI's own page loads Swagger UI from a CDN with an inline script.
    """
    # Wrap the whole stack, outside Starlette's ServerErrorMiddleware, so that even a 500
    # carries the headers (``add_middleware`` would sit inside it).
    build_stack = api.build_middleware_stack
    api.build_middleware_stack = lambda: SecurityHeaders(build_stack())  # type: ignore[method-assign]
    api.include_router(router)
    api.mount("/static", Assets(directory=STATIC, check_dir=False), name="static")
