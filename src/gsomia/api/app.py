"""The HTTP application: FastAPI over the services built by the composition root."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from gsomia import __version__
from gsomia.api import analysis, dashboard, exchange, ledger, problems
from gsomia.api.middleware import BodyLimit, ExerciseStamp
from gsomia.bootstrap import App
from gsomia.web import routes as web

DESCRIPTION = """The gsomia exchange and analysis API.

Errors are RFC 9457 `application/problem+json`. Instants are ISO 8601 with an offset (a bare
date is read in the agreement's, else the scenario's, zone). What-ifs are query parameters
(`drop`, `add`), so any analysis view can be shared as a URL."""


def create_app(app: App) -> FastAPI:
    """Build the FastAPI application around an already wired :class:`App`."""
    api = FastAPI(title="gsomia", version=__version__, description=DESCRIPTION, docs_url=None, redoc_url=None)
    api.state.gsomia = app
    problems.install(api)
    api.include_router(analysis.router)
    api.include_router(ledger.router)
    api.include_router(dashboard.router)
    api.include_router(exchange.router)
    api.add_middleware(BodyLimit, max_bytes=app.settings.max_body_bytes)
    api.add_middleware(ExerciseStamp, info=app.exchange.clock.info)
    web.install(api)  # dashboard at /, assets at /static, /docs from local files, security headers on everything

    @api.get("/healthz", tags=["meta"], summary="Liveness and database reachability")
    def healthz() -> dict[str, Any]:
        summary = app.store.summary()
        exercise = app.exchange.clock.info()
        return {
            "status": "ok",
            "scenario": summary.name if summary else "",
            "database": app.store.describe(),
            "exercise": exercise.as_dict() if exercise else None,
        }

    return api
