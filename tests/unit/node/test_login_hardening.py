"""Logins on the node: the username's throttle cannot keep a user out of the address they log in
from, and passwords are compared as Unicode NFKC."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import threading
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from gsomia.errors import InvalidInput, NotAuthenticated
from gsomia.node.app import COOKIE, create_node_app
from gsomia.node.interop import build_interop
from gsomia.node.service import SESSION_ENDED
from gsomia.node.store import NodeStore, users
from gsomia.node.users import (
    HASHING_AT_ONCE,
    KNOWN,
    MAX_FAILURES,
    MAX_PASSWORD,
    WINDOW,
    LoginThrottled,
    Role,
    UserService,
)
from tests.unit.node.test_app import kor_node

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery staple"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def people(store: NodeStore) -> UserService:
    service = UserService(store, hasher=FAST)
    service.add("chief", PASSWORD, Role.ADMIN, by="cli")
    return service


def guess(people: UserService, client: str, at: datetime, n: int = MAX_FAILURES) -> None:
    for i in range(n):
        with pytest.raises(NotAuthenticated):
            people.login("chief", f"wrong password {i}", client=client, now=at)


def test_failures_from_another_address_do_not_keep_a_user_out_of_their_own(people: UserService) -> None:
    # Five wrong passwords from anywhere held the username for everyone: a hostile host sending
    # five every quarter of an hour kept an officer out for good.
    people.login("chief", PASSWORD, client="10.0.0.5", now=T0)
    for round_ in range(4):
        at = T0 + round_ * (WINDOW + timedelta(minutes=1)) + timedelta(minutes=1)
        guess(people, f"10.9.{round_}.9", at)
        with pytest.raises(LoginThrottled):  # the guessing address is held
            people.login("chief", PASSWORD, client=f"10.9.{round_}.9", now=at)
        with pytest.raises(LoginThrottled):  # and so is the username, from an address it never used
            people.login("chief", PASSWORD, client="10.7.7.7", now=at)
        _, session = people.login("chief", PASSWORD, client="10.0.0.5", now=at + timedelta(seconds=1))
        assert session.username == "chief"


def test_the_users_own_address_is_still_held_by_its_own_failures(people: UserService) -> None:
    people.login("chief", PASSWORD, client="10.0.0.5", now=T0)
    guess(people, "10.0.0.5", T0 + timedelta(minutes=1))
    with pytest.raises(LoginThrottled):
        people.login("chief", PASSWORD, client="10.0.0.5", now=T0 + timedelta(minutes=2))
    assert people.held("chief", client="10.0.0.5", now=T0 + timedelta(minutes=2)) > 0


def test_an_address_is_spared_only_for_a_while_after_its_last_login(people: UserService) -> None:
    people.login("chief", PASSWORD, client="10.0.0.5", now=T0)
    later = T0 + KNOWN + timedelta(minutes=1)
    guess(people, "10.9.0.9", later)
    with pytest.raises(LoginThrottled):
        people.login("chief", PASSWORD, client="10.0.0.5", now=later)
    assert people.held("chief", client="10.0.0.5", now=later) > 0


def test_a_password_is_the_same_composed_or_decomposed(people: UserService) -> None:
    password = "Pässwörter für Ölfässer ＡＢ"  # fullwidth letters: NFKC makes them ASCII
    people.add("anna", password, Role.OFFICER, by="cli")
    for form in ("NFC", "NFD", "NFKD"):
        _, session = people.login("anna", unicodedata.normalize(form, password), client="10.0.1.1")
        assert session.username == "anna"
    with pytest.raises(NotAuthenticated):
        people.login("anna", password.upper(), client="10.0.1.1")


def test_a_hash_of_a_password_as_typed_still_opens_and_is_made_again_normalised(
    people: UserService, store: NodeStore
) -> None:
    typed = unicodedata.normalize("NFD", "Ålesund-kontoret 2026")
    people.add("olav", "placeholder password", Role.OFFICER, by="cli")
    with store.write() as c:  # as a node before normalisation stored it
        c.execute(update(users).where(users.c.username == "olav").values(password_hash=FAST.hash(typed)))
    assert people.login("olav", typed, client="10.0.2.1")[1].username == "olav"
    with store.read() as c:
        stored = str(c.execute(select(users.c.password_hash).where(users.c.username == "olav")).scalar_one())
    assert FAST.verify(stored, unicodedata.normalize("NFKC", typed))
    assert people.login("olav", unicodedata.normalize("NFC", typed), client="10.0.2.1")[1].username == "olav"


def test_an_unknown_user_costs_as_many_checks_as_a_known_one(
    people: UserService, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[str] = []
    real = PasswordHasher.verify

    def counted(self: PasswordHasher, hash: str, password: str | bytes) -> bool:
        checks.append(str(password))
        return bool(real(self, hash, password))

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    counts: list[int] = []
    for name in ("chief", "nobody"):
        for password in ("wrong password", unicodedata.normalize("NFD", "wröng password")):
            checks.clear()
            with pytest.raises(NotAuthenticated):
                people.login(name, password, client=f"10.0.3.{len(counts)}")
            counts.append(len(checks))
    assert counts == [1, 2, 1, 2]


@pytest.mark.parametrize("password", [" " * 12, "\u3000" * 12, "\t" * 12, "twelve chars\x00", "with a\nnewline!"])
def test_a_password_of_spaces_or_with_control_characters_is_refused(people: UserService, password: str) -> None:
    with pytest.raises(InvalidInput, match="control characters"):
        people.add("blank", password, Role.OFFICER, by="cli")


def test_logging_in_ends_the_session_the_browser_still_carried(tmp_path: Path) -> None:
    # The new session replaced the cookie, but the one it replaced stayed live server-side for
    # up to 12 hours: a copy of it (a shared workstation, a stolen cookie) still worked.
    service = kor_node(tmp_path)
    service.users = UserService(service.store, hasher=FAST)
    service.users.add("chief", PASSWORD, Role.ADMIN, by="test")
    service.users.add("duty", PASSWORD, Role.OFFICER, by="test")
    app = create_node_app(service, web_dir=tmp_path / "no-console")
    ended: list[dict[str, Any]] = []
    replaced: list[str] = []

    def told(kind: str, data: dict[str, Any]) -> None:
        if kind == SESSION_ENDED:
            ended.append(data)

    service.bus.subscribe(told)

    async def go() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://node.test") as browser:
            first = await browser.post("/api/session", json={"username": "chief", "password": PASSWORD})
            earlier = first.cookies[COOKIE]
            replaced.append(earlier)
            second = await browser.post("/api/session", json={"username": "duty", "password": PASSWORD})
            assert second.status_code == 200 and second.cookies[COOKIE] != earlier
            latest = second.cookies[COOKIE]
            browser.cookies.clear()
            browser.cookies.set(COOKIE, earlier)  # a copy of the replaced cookie
            copy = await browser.get("/api/session")
            assert copy.status_code == 401, copy.text
            browser.cookies.clear()
            browser.cookies.set(COOKIE, latest)
            assert (await browser.get("/api/session")).json()["user"] == "duty"

    try:
        anyio.run(go)
    finally:
        service.close()
    digest = hashlib.sha256(replaced[0].encode()).hexdigest()
    assert ended == [{"session": digest}], "the replaced session's open event stream ends"


def test_no_more_than_a_few_argon2_checks_run_at_once(people: UserService, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each check holds Argon2's memory (64 MiB) while it runs: logins sent at once from many
    # addresses each took a server thread's check, some 40 at once, gigabytes together.
    running = [0]
    most = [0]
    lock = threading.Lock()
    overlap = threading.Barrier(2 * HASHING_AT_ONCE, timeout=0.5)
    real = PasswordHasher.verify

    def watched(self: PasswordHasher, hash: str, password: str | bytes) -> bool:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            with contextlib.suppress(threading.BrokenBarrierError):
                overlap.wait()  # were they all let in, they would all be here together
            return bool(real(self, hash, password))
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(PasswordHasher, "verify", watched)

    def attempt(n: int) -> None:
        with contextlib.suppress(NotAuthenticated):
            people.login(f"someone{n}", "wrong password", client=f"10.5.{n}.1")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(2 * HASHING_AT_ONCE)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert 1 <= most[0] <= HASHING_AT_ONCE


def test_a_huge_password_is_refused_before_any_work_and_counts_as_a_failure(
    people: UserService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A megabyte of U+FDFA is 18 million characters once normalised, then hashed by Argon2.
    checks: list[int] = []
    real = PasswordHasher.verify

    def counted(self: PasswordHasher, hash: str, password: str | bytes) -> bool:
        checks.append(len(password))
        return bool(real(self, hash, password))

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    for name in ("chief", "nobody"):
        with pytest.raises(NotAuthenticated):
            people.login(name, "\ufdfa" * 1_000_000, client="10.0.4.1", now=T0)
    assert checks == []
    guess(people, "10.0.4.2", T0, MAX_FAILURES - 2)  # the megabyte was the first for the name
    with pytest.raises(NotAuthenticated):
        people.login("chief", "x" * (MAX_PASSWORD + 1), client="10.0.4.3", now=T0)
    with pytest.raises(LoginThrottled):  # it was the fifth failure for the name
        people.login("chief", PASSWORD, client="10.0.4.4", now=T0)
    with pytest.raises(InvalidInput, match="at most 1024"):
        people.add("long", "x" * (MAX_PASSWORD + 1), Role.OFFICER, by="cli")
    with pytest.raises(InvalidInput, match="at most 1024"):  # 57 characters, 1026 once normalised
        people.add("long", "\ufdfa" * 57, Role.OFFICER, by="cli")


def test_a_huge_taxii_authorization_header_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = kor_node(tmp_path)
    service.users = UserService(service.store, hasher=FAST)
    service.users.add("duty", PASSWORD, Role.OFFICER, by="test")
    app = create_node_app(service, mounts=build_interop(service).mounts, web_dir=tmp_path / "no-console")
    checks: list[int] = []
    real = PasswordHasher.verify

    def counted(self: PasswordHasher, hash: str, password: str | bytes) -> bool:
        checks.append(len(password))
        return bool(real(self, hash, password))

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    huge = base64.b64encode(("duty:" + "\ufdfa" * 300_000).encode()).decode()

    async def go() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://node.test") as c:
            r = await c.get("/taxii2/", headers={"Authorization": f"Basic {huge}"})
            assert r.status_code == 401 and "WWW-Authenticate" in r.headers
            ok = await c.get("/taxii2/", auth=("duty", PASSWORD))
            assert ok.status_code == 200

    try:
        anyio.run(go)
    finally:
        service.close()
    assert len(checks) == 1 and checks[0] == len(PASSWORD)


def test_a_login_from_a_known_address_does_not_give_guessers_elsewhere_their_places_back(
    people: UserService,
) -> None:
    # The known address is not held by the username's failures; its logins forgave all of them,
    # so each routine login gave a guesser (one wrong password from each of many addresses)
    # five more guesses, however held the username was.
    people.login("chief", PASSWORD, client="10.0.0.5", now=T0)
    at = T0 + timedelta(minutes=1)
    for i in range(MAX_FAILURES):
        guess(people, f"10.9.0.{i}", at, n=1)
    people.login("chief", PASSWORD, client="10.0.0.5", now=at + timedelta(seconds=1))
    with pytest.raises(LoginThrottled):
        people.login("chief", "wrong password again", client="10.9.1.1", now=at + timedelta(seconds=2))


def test_a_login_still_forgives_the_users_own_failures_from_that_address(people: UserService) -> None:
    guess(people, "10.0.0.5", T0, n=MAX_FAILURES - 1)  # typos, from an address not yet known
    people.login("chief", PASSWORD, client="10.0.0.5", now=T0 + timedelta(seconds=1))
    guess(people, "10.9.0.9", T0 + timedelta(seconds=2), n=MAX_FAILURES - 1)
    people.login("chief", PASSWORD, client="10.7.7.7", now=T0 + timedelta(seconds=3))  # a new address


def test_an_address_longer_than_64_characters_is_known_only_as_itself(people: UserService) -> None:
    # as the proxy or the socket names it: the first 64 characters were kept, so another
    # address sharing them was spared the username's throttle too
    known = "unix:/run/gsomia/" + "n" * 60
    people.login("chief", PASSWORD, client=known, now=T0)
    guess(people, "10.9.0.9", T0 + timedelta(minutes=1))
    with pytest.raises(LoginThrottled):
        people.login("chief", PASSWORD, client=known[:64] + "-other", now=T0 + timedelta(minutes=2))
    people.login("chief", PASSWORD, client=known, now=T0 + timedelta(minutes=2))
