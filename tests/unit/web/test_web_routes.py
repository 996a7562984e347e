"""The dashboard's routes and security headers, in process."""

from __future__ import annotations

import anyio
import httpx
from fastapi import FastAPI

from gsomia.web import routes


def make_app() -> FastAPI:
    api = FastAPI(docs_url=None, redoc_url=None)

    @api.get("/boom")
    def boom() -> None:
        raise RuntimeError("unexpected")

    routes.install(api)
    return api


def get(app: FastAPI, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path)

    return anyio.run(go)


def test_security_headers_even_on_an_unhandled_error() -> None:
    r = get(make_app(), "/boom")
    assert r.status_code == 500
    assert r.headers["content-security-policy"] == routes.CONTENT_SECURITY_POLICY
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


def test_built_pages_name_assets_that_ship_with_the_package() -> None:
    index = (routes.STATIC / "index.html").read_text(encoding="utf-8")
    docs = (routes.STATIC / "docs.html").read_text(encoding="utf-8")
    assert "%" not in index + docs  # every placeholder was replaced by a built asset
    app = make_app()
    page = get(app, "/")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
    for name in ("index.html", "docs.html"):
        assert get(app, f"/static/{name}").headers["cache-control"] == "no-cache"
    hashed = sorted(p.name for p in routes.STATIC.iterdir() if p.suffix in (".js", ".css", ".svg"))
    assert hashed and all(routes._HASHED.search(n) for n in hashed), hashed
    r = get(app, f"/static/{hashed[0]}")
    assert r.status_code == 200 and r.headers["cache-control"] == routes.IMMUTABLE
    assert get(app, "/static/missing-ABCDEFGH.js").status_code == 404
