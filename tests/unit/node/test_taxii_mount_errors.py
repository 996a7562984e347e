"""Every error under the node's TAXII mount is a TAXII error message (TAXII 2.1 §3.6.1) in the
TAXII media type, never the console's problem document: unrouted paths, and paths whose
percent-encoded CR or LF a route's pattern would not otherwise reach; and the raw CR or LF is
echoed neither in a header nor in the body."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import anyio
import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from gsomia.node.app import create_node_app
from gsomia.node.interop import build_interop
from gsomia.node.users import Role, UserService
from tests.unit.node.test_app import kor_node

PASSWORD = "correct horse battery staple"
TAXII = "application/taxii+json;version=2.1"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"duty:{PASSWORD}".encode()).decode(), "Accept": TAXII}


@pytest.fixture(scope="module", params=["console", "no-console"])
def node(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[FastAPI]:
    tmp_path = tmp_path_factory.mktemp("node")
    service = kor_node(tmp_path)
    service.users = UserService(service.store, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    service.users.add("duty", PASSWORD, Role.OFFICER, by="test")
    web = tmp_path / request.param
    if request.param == "console":
        web.mkdir()
        (web / "index.html").write_text("<!doctype html><title>console</title>")
    yield create_node_app(service, mounts=build_interop(service).mounts, web_dir=web)
    service.close()


def get(app: FastAPI, path: str, method: str = "GET") -> httpx.Response:
    answers: list[httpx.Response] = []

    async def go() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://node.test") as c:
            answers.append(await c.request(method, path, headers=BASIC))

    anyio.run(go)
    return answers[0]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/taxii2/%0d%0a", 404),
        ("/taxii2/%0a", 404),
        ("/taxii2/nothing/here/", 404),
        ("/taxii2/api1/collections/%0d%0a/objects/", 404),
        ("/taxii2/api/collections/%0d%0a/objects/", 404),
        ("/taxii2/api/collections/%0d%0a/objects", 404),
        ("/taxii2/api/collections/%0aSet-Cookie:%20x=1%0d%0a/manifest/", 404),
        ("/taxii2/api/status/%0d%0aX-Injected:%201/", 404),
        ("/taxii2/api/%0d%0a/", 404),
    ],
)
def test_every_error_under_the_taxii_mount_is_a_taxii_error_without_raw_cr_or_lf(
    node: FastAPI, path: str, status: int
) -> None:
    r = get(node, path)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == TAXII, (r.headers["content-type"], r.text)
    body = json.loads(r.content)
    assert set(body) == {"title", "description", "http_status"} and body["http_status"] == str(status)
    assert b"\r" not in r.content and b"\n" not in r.content
    for name, value in r.headers.raw:
        assert b"\r" not in name + value and b"\n" not in name + value
        assert not name.lower().startswith((b"x-injected", b"set-cookie"))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD"])
def test_other_methods_on_such_paths_are_taxii_errors_too(node: FastAPI, method: str) -> None:
    r = get(node, "/taxii2/api1/collections/%0d%0a/objects/", method=method)
    assert r.status_code == 404 and r.headers["content-type"] == TAXII
    if method != "HEAD":
        assert json.loads(r.content)["http_status"] == "404"


@pytest.mark.parametrize(
    ("path", "status"),
    [("/taxii2/", 200), ("/taxii2/api/collections/", 200), ("/taxii2/api/collections/inbox/objects/", 200),
     ("/taxii2/api/collections/nothing/objects/", 404), ("/taxii2/%0d%0a", 404)],
)  # fmt: skip
def test_no_answer_under_the_taxii_mount_is_kept_by_a_cache(node: FastAPI, path: str, status: int) -> None:
    # The inbox's answers are decrypted deliveries, as the console API's are.
    r = get(node, path)
    assert r.status_code == status, r.text
    assert r.headers.get_list("cache-control") == ["no-store"], r.headers
