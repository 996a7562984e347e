"""Failed logins in the node's audit log: who tried to log in as whom, from where, when and why
(console and TAXII Basic), the throttle's refusals summarised, never the password, and a
username that can neither forge a line nor fill the disk."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from gsomia.errors import NotAuthenticated
from gsomia.node.app import create_node_app
from gsomia.node.audit import AuditLog, shown
from gsomia.node.interop import build_interop
from gsomia.node.store import NodeStore
from gsomia.node.users import MAX_FAILURES, WINDOW, LoginThrottled, Role, UserService
from tests.unit.node.test_app import kor_node

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery staple"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def people(store: NodeStore) -> UserService:
    service = UserService(store, hasher=FAST)
    service.add("chief", PASSWORD, Role.ADMIN, by="cli")
    service.add("gone", PASSWORD, Role.OFFICER, by="cli")
    service.add("other", PASSWORD, Role.ADMIN, by="cli")
    service.revoke("gone")
    return service


def rows(store: NodeStore, *actions: str) -> list[dict[str, Any]]:
    items = AuditLog(store).page(limit=500)["items"]
    return [r for r in reversed(items) if r["action"] in actions]


def test_every_failed_login_is_audited_with_whom_from_where_and_why(people: UserService, store: NodeStore) -> None:
    attempts = [
        ("chief", "wrong password one", "10.1.0.1", "login", "wrong password"),
        ("nobody", PASSWORD, "10.1.0.2", "login", "unknown user"),
        ("gone", PASSWORD, "10.1.0.3", "check", "revoked user"),
        ("chief", "x" * 2000, "10.1.0.4", "check", "password over 1024 characters"),
    ]
    for user, password, client, how, _ in attempts:
        with pytest.raises(NotAuthenticated):
            getattr(people, how)(user, password, client=client, now=T0)
    people.login("chief", PASSWORD, client="10.1.0.9", now=T0)
    failed = rows(store, "login_failed")
    assert [(r["user"], r["target"], r["detail"]) for r in failed] == [
        (user, client, {"via": "console" if how == "login" else "taxii", "reason": why})
        for user, _, client, how, why in attempts
    ]
    text = json.dumps(AuditLog(store).page(limit=500))
    assert "wrong password one" not in text and PASSWORD not in text and "x" * 100 not in text
    assert AuditLog(store).verify() == len(AuditLog(store).page(limit=500)["items"])


def test_throttled_logins_are_one_row_at_once_and_a_summary_when_the_window_ends(
    people: UserService, store: NodeStore
) -> None:
    # An address guessing past the throttle adds two rows a quarter of an hour, however often
    # it is refused and whichever names it tries; the admin still sees how many and which.
    for i in range(MAX_FAILURES):
        with pytest.raises(NotAuthenticated):
            people.login("chief", f"guess {i}", client="10.2.0.1", now=T0)
    for i in range(300):
        with pytest.raises(LoginThrottled):
            people.login(f"user{i % 12}", "guess", client="10.2.0.1", now=T0 + timedelta(seconds=i))
    assert len(rows(store, "login_failed")) == MAX_FAILURES
    (first,) = rows(store, "login_throttled")
    assert (first["user"], first["target"]) == ("user0", "10.2.0.1")
    assert first["detail"]["held"] == "address" and first["detail"]["via"] == "console"
    assert first["detail"]["retry_after"] > 0
    assert rows(store, "login_throttled_summary") == []
    people.settle(now=T0 + WINDOW - timedelta(seconds=1))  # the window has not ended
    assert rows(store, "login_throttled_summary") == []
    people.settle(now=T0 + WINDOW + timedelta(seconds=1))
    (summary,) = rows(store, "login_throttled_summary")
    assert summary["target"] == "10.2.0.1" and summary["detail"]["refused"] == 300
    assert summary["detail"]["held"] == "address"
    assert summary["detail"]["usernames"] == [f"user{i}" for i in range(10)]
    assert summary["detail"]["first"] == T0.isoformat()
    assert summary["detail"]["last"] == (T0 + timedelta(seconds=299)).isoformat()
    people.settle(now=T0 + 3 * WINDOW)  # written once
    assert len(rows(store, "login_throttled_summary")) == 1


def test_a_throttled_username_is_summarised_by_username_and_a_remembered_password_counts(
    people: UserService, store: NodeStore
) -> None:
    for i in range(MAX_FAILURES):
        with pytest.raises(NotAuthenticated):
            people.check("chief", f"guess {i}", client=f"10.3.0.{i}", now=T0)
    with pytest.raises(LoginThrottled):
        people.check("chief", PASSWORD, client="10.3.1.1", now=T0 + timedelta(minutes=1))
    assert people.held("chief", client="10.3.1.2", now=T0 + timedelta(minutes=2)) > 0
    (first,) = rows(store, "login_throttled")
    assert (first["user"], first["target"], first["detail"]["held"]) == ("chief", "10.3.1.1", "username")
    # the next attempt, by anyone, after the window writes the summary
    people.login("other", PASSWORD, client="10.3.9.9", now=T0 + WINDOW + timedelta(minutes=2))
    (summary,) = rows(store, "login_throttled_summary")
    assert summary["user"] == "node" and summary["target"] == "chief"
    assert summary["detail"]["refused"] == 2 and summary["detail"]["addresses"] == ["10.3.1.1", "10.3.1.2"]


def test_a_username_cannot_forge_a_line_or_pass_for_another(people: UserService, store: NodeStore) -> None:
    forged = "x  login_failed 10.0.0.1\n2026-03-01T08:00:00+00:00  chief  taxii_token_add  chief"
    for user in (forged, "chief\u202e", "a" * 100_000, "back\\x0aslash"):
        with pytest.raises(NotAuthenticated):
            people.login(user, "some wrong password", client="10.4.0.1", now=T0)
    names = [r["user"] for r in rows(store, "login_failed")]
    assert all(len(n) <= 64 and n.isprintable() for n in names), names
    assert names[0].startswith("x  login_failed 10.0.0.1\\x0a2026") and names[0].endswith("…")
    assert names[1:] == ["chief\\u202e", "a" * 63 + "…", "back\\\\x0aslash"]


def test_shown_escapes_what_would_break_or_hide_a_line_and_cuts_long_text() -> None:
    assert shown("alice") == "alice"
    assert shown("a b") == "a b"
    assert shown("a\tb\x1b[2J\u200b\u2028") == "a\\x09b\\x1b[2J\\u200b\\u2028"
    assert shown("é" * 64) == "é" * 64 and shown("é" * 65) == "é" * 63 + "…"
    assert shown("ab" + "\n" * 40, 10) == "ab\\x0a…"  # never inside an escape


@pytest.fixture
def node(tmp_path: Path) -> Iterator[FastAPI]:
    service = kor_node(tmp_path)
    service.users = UserService(service.store, hasher=FAST)
    service.users.add("chief", PASSWORD, Role.ADMIN, by="test")
    yield create_node_app(service, mounts=build_interop(service).mounts, web_dir=tmp_path / "no-console")
    service.close()


def test_console_and_taxii_failures_reach_the_audit_view(node: FastAPI) -> None:
    async def go() -> list[dict[str, Any]]:
        transport = httpx.ASGITransport(app=node, raise_app_exceptions=False, client=("10.5.0.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://node.test") as c:
            bad = await c.post("/api/session", json={"username": "chief", "password": "not the password"})
            assert bad.status_code == 401
            token = base64.b64encode(b"ghost:some password").decode()
            taxii = await c.get("/taxii2/", headers={"Authorization": f"Basic {token}"})
            assert taxii.status_code == 401
            ok = await c.post("/api/session", json={"username": "chief", "password": PASSWORD})
            assert ok.status_code == 200
            page = await c.get("/api/audit")
            assert page.status_code == 200
            return list(page.json()["items"])

    items = anyio.run(go)
    failed = [(r["user"], r["target"], r["detail"]) for r in items if r["action"] == "login_failed"]
    assert failed == [
        ("ghost", "10.5.0.7", {"via": "taxii", "reason": "unknown user"}),
        ("chief", "10.5.0.7", {"via": "console", "reason": "wrong password"}),
    ]
