"""TAXII bearer tokens expire: an expired token is refused as a revoked one is, and a token a node
issued before tokens expired keeps working, in the store that node made, until revoked."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import inspect

from gsomia.errors import InvalidInput
from gsomia.node.app import create_node_app
from gsomia.node.interop import build_interop
from gsomia.node.service import NodeService
from gsomia.node.store import NodeStore
from gsomia.node.taxii.service import TOKEN_DAYS, issue_token
from gsomia.node.taxii.store import TaxiiStore, tokens
from gsomia.node.users import Role, UserService
from tests.unit.node.test_app import kor_node

PASSWORD = "correct horse battery staple"
TAXII = "application/taxii+json;version=2.1"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def test_a_token_is_refused_from_its_expiry_on(store: NodeStore) -> None:
    taxii = TaxiiStore(store)
    token, expires = issue_token(taxii, username="feed", name="opencti", now=T0, days=30)
    assert expires == T0 + timedelta(days=30)
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert taxii.token_user(digest, now=expires - timedelta(microseconds=1)) == "feed"
    assert taxii.token_user(digest, now=expires) is None
    (row,) = taxii.list_tokens(now=expires)
    assert (row["expires"], row["expired"], row["revoked"]) == ("2026-03-31T08:00:00.000000Z", True, None)
    assert taxii.list_tokens(now=T0)[0]["expired"] is False


def test_a_token_expires_in_a_year_unless_told_and_never_past_ten_years(store: NodeStore) -> None:
    taxii = TaxiiStore(store)
    assert TOKEN_DAYS == 365
    assert issue_token(taxii, username="feed", name="a", now=T0)[1] == T0 + timedelta(days=365)
    for days in (0, -1, 3651):
        with pytest.raises(InvalidInput, match="1 to 3650 days"):
            issue_token(taxii, username="feed", name="b", now=T0, days=days)
    assert len(taxii.list_tokens()) == 1


def test_a_store_made_before_tokens_expired_opens_and_keeps_its_tokens(tmp_path: Path) -> None:
    # The node's tables are made by create_all, which adds no column to a table that exists.
    key = b"k" * 32
    old = NodeStore(tmp_path / "node.db", key)
    with old.write() as c:  # the token table as the previous version made it
        c.exec_driver_sql(
            "CREATE TABLE taxii_token (digest VARCHAR(64) NOT NULL, username VARCHAR(128) NOT NULL, "
            "name VARCHAR(128) NOT NULL, created_us BIGINT NOT NULL, revoked_us BIGINT, PRIMARY KEY (digest))"
        )
        c.exec_driver_sql("INSERT INTO taxii_token VALUES (?, 'feed', 'opencti', 1700000000000000, NULL)", ("a" * 64,))
        c.exec_driver_sql(
            "INSERT INTO taxii_token VALUES (?, 'feed', 'misp', 1700000000000000, 1700000001000000)", ("b" * 64,)
        )
    old.close()
    store = NodeStore(tmp_path / "node.db", key)
    try:
        taxii = TaxiiStore(store)
        with store.read() as c:
            assert "expires_us" in {col["name"] for col in inspect(c).get_columns(tokens.name)}
        assert taxii.token_user("a" * 64, now=T0 + timedelta(days=100 * 365)) == "feed"
        assert taxii.token_user("b" * 64) is None  # revoked stays revoked
        listed = {r["name"]: r for r in taxii.list_tokens()}
        assert listed["opencti"]["expires"] is None and listed["opencti"]["expired"] is False
        TaxiiStore(store)  # opened again: the column is there, nothing is added twice
        assert taxii.revoke_tokens(token_id="a" * 12, now=T0) == 1
        assert taxii.token_user("a" * 64) is None
    finally:
        store.close()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[NodeService]:
    node = kor_node(tmp_path)
    node.users = UserService(node.store, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    node.users.add("duty", PASSWORD, Role.OFFICER, by="test")
    yield node
    node.close()


def test_an_expired_token_is_answered_as_a_revoked_one(service: NodeService, tmp_path: Path) -> None:
    app: FastAPI = create_node_app(service, mounts=build_interop(service).mounts, web_dir=tmp_path / "none")
    taxii = TaxiiStore(service.store)
    now = datetime.now(UTC)
    live, _ = issue_token(taxii, username="duty", name="live", now=now, days=1)
    expired, _ = issue_token(taxii, username="duty", name="old", now=now - timedelta(days=2), days=1)
    revoked, _ = issue_token(taxii, username="duty", name="gone", now=now, days=1)
    taxii.revoke_tokens(token_id=hashlib.sha256(revoked.encode()).hexdigest()[:12], now=now)

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://node.test") as c:
            return [
                await c.get("/taxii2/", headers={"Authorization": f"Bearer {t}", "Accept": TAXII})
                for t in (live, expired, revoked)
            ]

    ok, late, gone = anyio.run(go)
    assert ok.status_code == 200, ok.text
    assert late.status_code == gone.status_code == 401
    assert late.json() == gone.json()
    assert late.headers.get("www-authenticate") == gone.headers.get("www-authenticate") is not None
