"""The HTTP application: FastAPI over the services built by the composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from gsomia import __version__, collector
from gsomia.api import analysis, dashboard, exchange, ledger, problems
from gsomia.api.middleware import BodyLimit, ExerciseStamp, HeadAsGet, RequestText
from gsomia.api.schemas import HealthOut, problem_openapi
from gsomia.api.schemas import problems as problem_responses
from gsomia.bootstrap import App, build
from gsomia.services.exchange.clock import ExerciseInfo
from gsomia.web import routes as web

DESCRIPTION = """The gsomia exchange and analysis API.

Errors are RFC 9457 `application/problem+json`. Instants are ISO 8601 with an offset (a bare
date is read in the agreement's, else the scenario's, zone), in the years 1900 to 2999.
What-ifs are query parameters (`drop`, `add`), so any analysis view can be shared as a URL.
Request bodies are I-JSON (RFC 7493): a member name twice in one object, a lone surrogate or
U+0000 is refused (422), as is U+0000 in a query parameter."""


@asynccontextmanager
async def _lifespan(api: FastAPI) -> AsyncIterator[None]:
    """The one start-up and shut-down of a server, before the first and after the last request."""
    app: App = api.state.gsomia
    # Load (or create) the checkpoint key and rebuild the Merkle tree from the stored leaf hashes,
    # compile the record and read the parties' keys: no request pays for them.
    await run_in_threadpool(app.ledger.open)
    app.exchange.start()  # the consent-expiry sweep
    await run_in_threadpool(app.exchange.warm)
    # Everything built at start-up (the compiled record, the Merkle tree, routes, modules) lives
    # as long as the server: keep it out of the collector's passes, which would otherwise pause
    # requests. A request allocates thousands of short-lived objects that reference counting
    # frees; with the default thresholds (700, 10, 10) the collector ran every few requests and
    # took about 7% of the CPU under load, so young objects are collected less often.
    try:
        with collector.serving():
            yield
    finally:
        app.exchange.stop()
        if getattr(api.state, "owns_app", False):
            app.close()


def factory() -> FastAPI:
    """The application built from the environment (``GSOMIA_*``), for each worker process of
    ``gsomia serve --workers N`` (or ``uvicorn --factory gsomia.api.app:factory``); it is closed
    when the worker shuts down."""
    api = create_app(build())
    api.state.owns_app = True
    return api


def _document_problems(api: FastAPI) -> None:
    """Generate the OpenAPI document once, with every error answer as problem+json."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = problem_openapi(FastAPI.openapi(api))
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


def create_app(app: App) -> FastAPI:
    """Build the FastAPI application around an already wired :class:`App`."""
    api = FastAPI(
        title="gsomia",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan,
    )
    api.state.gsomia = app
    problems.install(api)
    api.include_router(analysis.router)
    api.include_router(ledger.router)
    api.include_router(dashboard.router)
    api.include_router(exchange.router)
    # Outermost last: HEAD becomes GET before anything else sees it; the path and query string
    # are checked before the body is read, and the body before any route parses it.
    api.add_middleware(
        BodyLimit,
        max_bytes=app.settings.max_body_bytes,
        timeout=app.settings.body_timeout_seconds,
        larger={"/api/v1/report-batches": app.settings.max_batch_bytes},
    )
    api.add_middleware(RequestText)
    # the exercise clock as stored (another process may have moved it), not this process's own
    api.add_middleware(ExerciseStamp, info=lambda: _stamp(app))
    api.add_middleware(HeadAsGet)
    _document_problems(api)
    web.install(api)  # dashboard at /, assets at /static, /docs from local files, security headers on everything

    @api.get(
        "/healthz",
        tags=["meta"],
        summary="Liveness and database reachability",
        response_model=HealthOut,
        responses=problem_responses(503),
    )
    def healthz() -> dict[str, Any]:
        summary = app.store.summary()
        exercise = app.exchange.context.shared_clock().info()
        return {
            "status": "ok",
            "scenario": summary.name if summary else "",
            "database": app.store.describe(),
            "exercise": exercise.as_dict() if exercise else None,
            "listening": app.exchange.listener.listening.is_set() if app.exchange.listener else None,
            "streams": app.exchange.notifier.subscribers(),
        }

    return api


def _stamp(app: App) -> ExerciseInfo | None:
    """What every response is stamped with: in exercise mode, the exercise clock as stored (one
    read); otherwise this process's own mode, without a read (a database an exercise took since
    is refused by every read that shows the clock, and by every write)."""
    clock = app.exchange.clock
    return app.exchange.context.shared_clock().info() if clock.offset_us() is not None else clock.info()
