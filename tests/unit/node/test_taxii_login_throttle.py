"""TAXII's HTTP Basic logins on the node go through the console's login throttle: each guess
takes its place among the 5 of the window before its password is checked, per username and per
address, and a throttled guess is a TAXII error 429 with Retry-After."""

from __future__ import annotations

import base64
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from gsomia.node.app import create_node_app
from gsomia.node.interop import build_interop
from gsomia.node.users import MAX_FAILURES, Role, UserService
from tests.unit.node.test_app import kor_node

PASSWORD = "correct horse battery staple"
TAXII = "application/taxii+json;version=2.1"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[FastAPI]:
    service = kor_node(tmp_path)
    service.users = UserService(service.store, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    service.users.add("chief", PASSWORD, Role.ADMIN, by="test")
    service.users.add("duty", PASSWORD, Role.OFFICER, by="test")
    yield create_node_app(service, mounts=build_interop(service).mounts, web_dir=tmp_path / "no-console")
    service.close()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Accept": TAXII}


def discover(app: FastAPI, guesses: list[tuple[str, str, str]]) -> list[httpx.Response]:
    """GET /taxii2/ once per (user, password, client address), all at once."""
    answers: list[httpx.Response] = []

    async def one(user: str, password: str, client: str) -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(client, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://node.test") as c:
            answers.append(await c.get("/taxii2/", headers=basic(user, password)))

    async def go() -> None:
        async with anyio.create_task_group() as tg:
            for guess in guesses:
                tg.start_soon(one, *guess)

    anyio.run(go)
    return answers


def test_taxii_guesses_made_at_once_check_no_more_passwords_than_the_throttle_allows(
    node: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Guesses sent together are all in flight while their passwords are checked: a count read
    # before the check and a failure written after it let every one of them through.
    checked: list[str] = []
    gate = threading.Barrier(3, timeout=2)
    real = PasswordHasher.verify

    def slow(self: PasswordHasher, hash: str, password: str | bytes) -> bool:
        checked.append(str(password))
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait()  # the guesses are all in flight together
        return bool(real(self, hash, password))

    monkeypatch.setattr(PasswordHasher, "verify", slow)
    guesses = [("chief", f"guess number {n}", f"10.4.0.{n}") for n in range(3 * MAX_FAILURES)]
    answers = discover(node, guesses)
    codes = [a.status_code for a in answers]
    assert len(checked) <= MAX_FAILURES, f"{len(checked)} passwords checked: {codes}"
    assert codes.count(401) == len(checked) and codes.count(429) == len(guesses) - len(checked), codes
    # and the right password, now, is held too: the window is full
    (late,) = discover(node, [("chief", PASSWORD, "10.4.1.1")])
    assert late.status_code == 429
    throttled = next(a for a in answers if a.status_code == 429)
    assert throttled.headers["content-type"] == TAXII
    assert int(throttled.headers["retry-after"]) > 0
    assert throttled.json() | {"description": ""} == {
        "title": "Too Many Requests",
        "description": "",
        "http_status": "429",
    }


def test_one_address_cannot_spray_a_password_across_usernames(node: FastAPI) -> None:
    sprayed = [(name, "summer2019!summer2019!", "10.5.0.1") for name in ("chief", "duty", "ops", "root", "admin")]
    for guess in sprayed:  # one at a time: five failures from one address
        assert discover(node, [guess])[0].status_code == 401
    (held,) = discover(node, [("duty", PASSWORD, "10.5.0.1")])
    assert held.status_code == 429, "the address is held, even with a right password"
    (elsewhere,) = discover(node, [("duty", PASSWORD, "10.5.0.2")])
    assert elsewhere.status_code == 200, "another address, and the user, are not held"


def test_a_remembered_password_does_not_pass_a_throttled_user(node: FastAPI) -> None:
    # A password that verified is remembered for a while (no argon2 on every request); a
    # throttled username must not get past the throttle with it, or guesses against the
    # remembered password would be unlimited. Only the address the user logged in from is
    # spared the username's throttle (each address is still held by its own failures).
    assert discover(node, [("duty", PASSWORD, "10.6.0.1")])[0].status_code == 200
    for n in range(MAX_FAILURES):
        assert discover(node, [("duty", f"wrong guess {n}", f"10.6.1.{n}")])[0].status_code == 401
    assert discover(node, [("duty", PASSWORD, "10.6.0.2")])[0].status_code == 429
    assert discover(node, [("duty", PASSWORD, "10.6.0.1")])[0].status_code == 200


def test_a_client_opening_connections_at_once_with_its_right_password_is_not_throttled(
    node: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each check takes a place in the window while it runs: eight requests with the right
    # password checked together filled the five places and two or three were refused, with
    # Retry-After: 900, although no login had failed.
    checked: list[str] = []
    gate = threading.Barrier(2 * MAX_FAILURES, timeout=1)
    real = PasswordHasher.verify

    def slow(self: PasswordHasher, hash: str, password: str | bytes) -> bool:
        checked.append(str(password))
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait()  # every request in flight at once, were they all checked
        return bool(real(self, hash, password))

    monkeypatch.setattr(PasswordHasher, "verify", slow)
    answers = discover(node, [("chief", PASSWORD, "10.6.0.1")] * (2 * MAX_FAILURES))
    assert [a.status_code for a in answers] == [200] * (2 * MAX_FAILURES)
    assert len(checked) == 1  # checked once; the others took its result


def test_failures_from_elsewhere_do_not_keep_a_user_out_of_taxii_at_their_own_address(node: FastAPI) -> None:
    # Five wrong passwords a quarter of an hour, from any address, held the username and so
    # kept its TAXII client out for good; its own address is now spared the username's hold.
    assert discover(node, [("duty", PASSWORD, "10.8.0.1")])[0].status_code == 200
    for n in range(MAX_FAILURES):
        assert discover(node, [("duty", f"wrong guess {n}", "10.8.9.9")])[0].status_code == 401
    (held,) = discover(node, [("duty", "yet another guess", "10.8.9.9")])
    assert held.status_code == 429, "the guessing address stays held"
    (fresh,) = discover(node, [("duty", "a guess from elsewhere", "10.8.7.7")])
    assert fresh.status_code == 429, "the username stays held for an address it never logged in from"
    (own,) = discover(node, [("duty", "not the password", "10.8.0.1")])
    assert own.status_code == 401, "its own address is not held: the wrong password is checked"
