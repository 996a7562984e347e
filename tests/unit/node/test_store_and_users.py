"""The node's encrypted store, its officers' accounts and sessions, and its audit log."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import shutil
import sqlite3
import threading
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from argon2 import PasswordHasher

from gsomia.errors import (
    Conflict,
    InvalidInput,
    LedgerInvalid,
    NotAuthenticated,
    NotPermitted,
    StorageError,
    UnknownEntity,
)
from gsomia.node.audit import AuditLog
from gsomia.node.config import KEY_ENV, NodeConfig, create_node_key, read_node_key
from gsomia.node.interop import NodeUsers
from gsomia.node.store import NodeStore, audit_log
from gsomia.node.taxii.service import Throttled
from gsomia.node.users import IDLE, MAX_FAILURES, LoginThrottled, Role, UserService

# Fast Argon2id parameters for tests only; the node uses argon2-cffi's defaults (RFC 9106).
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery staple"


@pytest.fixture
def people(store: NodeStore) -> UserService:
    users = UserService(store, hasher=FAST)
    users.add("chief", PASSWORD, Role.ADMIN, by="cli")
    users.add("duty", PASSWORD, Role.OFFICER, by="cli")
    return users


def test_a_copied_database_cannot_be_opened_without_the_key(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    store = NodeStore(tmp_path / "node.db", key)
    store.put("secret", "군사II급비밀 track 40.9N 133.25E")
    store.close()
    stolen = tmp_path / "stolen.db"
    shutil.copy(tmp_path / "node.db", stolen)
    raw = stolen.read_bytes()
    assert b"SQLite format 3" not in raw and b"133.25E" not in raw
    with pytest.raises(sqlite3.DatabaseError), sqlite3.connect(stolen) as plain:
        plain.execute("SELECT * FROM settings").fetchall()
    with pytest.raises(StorageError, match="does not open it"):
        NodeStore(stolen, secrets.token_bytes(32))
    reopened = NodeStore(stolen, key)  # with the key, the copy is whole
    assert reopened.get("secret") == "군사II급비밀 track 40.9N 133.25E"
    reopened.close()


def test_the_node_key_file_is_private_and_the_environment_may_hold_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    path = tmp_path / "node.key"
    key = create_node_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_node_key(path) == key
    with pytest.raises(InvalidInput, match="refusing to replace"):
        create_node_key(path)
    path.chmod(0o644)
    with pytest.raises(InvalidInput, match="chmod 600"):
        read_node_key(path)
    other = secrets.token_bytes(32)
    monkeypatch.setenv(KEY_ENV, base64.b64encode(other).decode())
    assert read_node_key(tmp_path / "absent.key") == other
    monkeypatch.setenv(KEY_ENV, "not a key")
    with pytest.raises(InvalidInput, match="32 bytes"):
        read_node_key(path)


def test_config_round_trips_and_refuses_bad_values(tmp_path: Path) -> None:
    config = NodeConfig(party="KOR", exchange="https://exchange.example", dir=tmp_path, port=8101, witness="kor.w")
    config.write()
    assert NodeConfig.read(tmp_path) == config
    with pytest.raises(InvalidInput, match="party"):
        NodeConfig(party="korea", exchange="https://x", dir=tmp_path)
    with pytest.raises(InvalidInput, match="http"):
        NodeConfig(party="KOR", exchange="ftp://x", dir=tmp_path)
    with pytest.raises(UnknownEntity, match="node init"):
        NodeConfig.read(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ('"exchange": 5', "exchange: expected text"),
        ('"port": "8100"', "give a port between 1 and 65535"),
        ('"port": 8100.5', "give a port between 1 and 65535"),
        ('"port": true', "give a port between 1 and 65535"),
        ('"port": 70000', "give a port between 1 and 65535"),
        ('"host": null', "host: expected text"),
    ],
)
def test_a_hand_edited_node_json_is_refused_naming_the_member(tmp_path: Path, edit: str, message: str) -> None:
    NodeConfig(party="KOR", exchange="https://exchange.example", dir=tmp_path).write()
    path = tmp_path / "node.json"
    doc = json.loads(path.read_text(encoding="utf-8")) | json.loads("{" + edit + "}")
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InvalidInput, match=message):
        NodeConfig.read(tmp_path)


def test_a_node_json_nested_too_deeply_is_refused(tmp_path: Path) -> None:
    (tmp_path / "node.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(InvalidInput, match="cannot read"):
        NodeConfig.read(tmp_path)


def test_a_noted_time_is_written_at_most_once_per_interval(store: NodeStore) -> None:
    # "When did the node last hear from the exchange": a busy stream must not pay a durable
    # commit per event, so the note is written at once, then at most once per interval.
    store.note("exchange.last_event_at", "first", every=3600)
    store.note("exchange.last_event_at", "second", every=3600)
    store.note("ledger.checked_at", "other", every=3600)  # another note has its own interval
    assert store.get("exchange.last_event_at") == "first"
    assert store.get("ledger.checked_at") == "other"
    store.note("exchange.last_event_at", "third", every=0)  # the interval has passed
    assert store.get("exchange.last_event_at") == "third"


def test_every_write_goes_through_one_connection_whatever_reads_and_threads_come_between(
    store: NodeStore,
) -> None:
    # SQLite in WAL mode drops a connection's whole page cache when another connection has
    # changed the file, and in the encrypted store every page read again is decrypted and its
    # HMAC checked: writes on whichever pooled connection came next began cold each time.
    used: list[int] = []

    def write(value: str) -> None:
        with store.write() as c:
            used.append(id(c.connection.driver_connection))
            store.put("k", value, c)

    with ExitStack() as readers:  # several reads open at once: the read pool holds several
        for _ in range(4):
            readers.enter_context(store.read()).exec_driver_sql("SELECT 1")
        write("0")
    for n in range(1, 4):
        with store.read() as c:
            c.exec_driver_sql("SELECT 1")
        t = threading.Thread(target=write, args=(f"{n}a",))
        t.start()
        t.join()
        write(f"{n}b")
    assert len(used) == 7
    assert len(set(used)) == 1
    assert store.get("k") == "3b"
    with store.read() as c:  # a read sees every committed write
        assert c.exec_driver_sql("SELECT value FROM settings WHERE name = 'k'").scalar() == "3b"


def test_passwords_are_hashed_with_argon2id_and_checked(store: NodeStore, people: UserService) -> None:
    with store.read() as c:
        hashed = c.exec_driver_sql("SELECT password_hash FROM users WHERE username = 'chief'").scalar_one()
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed
    token, session = people.login("chief", PASSWORD, client="10.0.0.1")
    assert session.role is Role.ADMIN and len(session.csrf) >= 43
    assert people.session(token).username == "chief"
    with pytest.raises(NotAuthenticated):
        people.login("chief", "wrong password!", client="10.0.0.1")
    with pytest.raises(NotAuthenticated):  # the same answer for a user who does not exist
        people.login("nobody", PASSWORD, client="10.0.0.1")
    with pytest.raises(InvalidInput, match="12 characters"):
        people.add("short", "tooshort", Role.OFFICER, by="cli")
    with pytest.raises(Conflict):
        people.add("duty", PASSWORD, Role.OFFICER, by="cli")


def test_roles_are_ordered(people: UserService) -> None:
    _, officer = people.login("duty", PASSWORD, client="10.0.0.2")
    officer.require(Role.OFFICER)
    with pytest.raises(NotPermitted, match="approver"):
        officer.require(Role.APPROVER)
    assert Role.parse("Admin") is Role.ADMIN
    with pytest.raises(InvalidInput):
        Role.parse("root")


def test_revoking_a_user_ends_their_sessions_at_once(people: UserService) -> None:
    token, _ = people.login("duty", PASSWORD, client="10.0.0.3")
    people.revoke("duty")
    with pytest.raises(NotAuthenticated):
        people.session(token)
    with pytest.raises(NotAuthenticated):
        people.login("duty", PASSWORD, client="10.0.0.3")


def test_sessions_expire_when_idle_and_end_at_logout(people: UserService) -> None:
    now = datetime.now(UTC)
    token, _ = people.login("duty", PASSWORD, client="10.0.0.4", now=now)
    assert people.session(token, now=now + IDLE - timedelta(seconds=1)).username == "duty"
    with pytest.raises(NotAuthenticated, match="expired"):
        people.session(token, now=now + 2 * IDLE + timedelta(seconds=2))
    token, _ = people.login("duty", PASSWORD, client="10.0.0.4", now=now)
    people.logout(token)
    with pytest.raises(NotAuthenticated):
        people.session(token)
    with pytest.raises(NotAuthenticated):
        people.session(None)


def test_logins_are_throttled_per_username_and_per_address(people: UserService) -> None:
    now = datetime.now(UTC)
    for i in range(MAX_FAILURES):
        with pytest.raises(NotAuthenticated):
            people.login("chief", f"wrong {i} password", client=f"10.1.0.{i}", now=now)
    with pytest.raises(LoginThrottled) as e:  # the right password, too late
        people.login("chief", PASSWORD, client="10.1.0.99", now=now)
    assert 0 < e.value.retry_after <= 15 * 60 + 1
    _, session = people.login("chief", PASSWORD, client="10.1.0.99", now=now + timedelta(minutes=16))
    assert session.username == "chief"
    for i in range(MAX_FAILURES):  # one address trying many names
        with pytest.raises(NotAuthenticated):
            people.login(f"guess{i}", "wrong password!", client="10.2.0.1", now=now)
    with pytest.raises(LoginThrottled):
        people.login("duty", PASSWORD, client="10.2.0.1", now=now)
    assert people.login("duty", PASSWORD, client="10.2.0.2", now=now)[1].username == "duty"


def test_the_audit_log_is_append_only_and_chained(store: NodeStore) -> None:
    log = AuditLog(store)
    log.record("duty", "submit", "KOR-20191122-1", {"topic": "dprk.missile.launch"})
    log.record("approver", "grant_consent", "c-1", {"reason": "TISA"})
    log.record("chief", "revoke_user", "duty")
    assert log.verify() == 3
    page = log.page(limit=2)
    assert [r["action"] for r in page["items"]] == ["revoke_user", "grant_consent"]
    assert log.page(limit=2, before=page["next"])["items"][0]["user"] == "duty"
    with store.write() as c:
        c.execute(audit_log.update().where(audit_log.c.id == 2).values(username="chief"))
    with pytest.raises(LedgerInvalid, match="row 2"):
        log.verify()


def test_taxii_refusals_all_cost_one_argon2_check(store: NodeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # An unknown user, a revoked one and a wrong password are answered after the same work, so
    # that the time of a 401 does not tell which usernames exist; a throttled name, known or
    # not, is refused before any check (the throttle counts names whether they exist or not).
    users = UserService(store, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    users.add("duty", "correct horse battery", Role.OFFICER, by="test")
    users.add("gone", "correct horse battery", Role.OFFICER, by="test")
    users.revoke("gone")
    taxii = NodeUsers(SimpleNamespace(store=store, users=users))  # type: ignore[arg-type]
    checks: list[str] = []
    real = PasswordHasher.verify

    def counted(self: PasswordHasher, hash: str, password: str | bytes) -> bool:
        checks.append(str(password))
        return bool(real(self, hash, password))

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    for name in ("duty", "nobody"):
        for n in range(MAX_FAILURES):
            checks.clear()
            assert taxii.check(name, "wrong", client=f"10.7.{n}.1") is None
            assert len(checks) == 1
        checks.clear()
        with pytest.raises(Throttled) as held:
            taxii.check(name, "correct horse battery", client="10.7.9.1")
        assert held.value.retry_after > 0 and checks == []
    checks.clear()
    assert taxii.check("gone", "correct horse battery", client="10.7.9.2") is None
    assert len(checks) == 1


def test_guesses_made_at_once_check_no_more_passwords_than_the_throttle_allows(
    people: UserService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each attempt takes its place in the window before its password is checked: a burst of
    # guesses sent together cannot all be checked before the first failure is written.
    checked: list[str] = []
    gate = threading.Barrier(3, timeout=2)
    real = PasswordHasher.verify

    def slow(self: PasswordHasher, hash: str, password: str | bytes) -> bool:
        checked.append(str(password))
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait()  # the guesses are all in flight together
        return bool(real(self, hash, password))

    monkeypatch.setattr(PasswordHasher, "verify", slow)
    outcomes: list[str] = []

    def guess(n: int) -> None:
        try:
            people.login("chief", f"guess number {n}", client=f"10.3.0.{n}")
        except LoginThrottled:
            outcomes.append("throttled")
        except NotAuthenticated:
            outcomes.append("wrong")

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(3 * MAX_FAILURES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(checked) <= MAX_FAILURES, f"{len(checked)} passwords checked"
    assert outcomes.count("wrong") == len(checked) and outcomes.count("throttled") == len(threads) - len(checked)
    monkeypatch.setattr(PasswordHasher, "verify", real)
    # A successful login frees the place its own attempt took (the address may log in again).
    assert people.login("duty", PASSWORD, client="10.4.0.1")[1].username == "duty"
    for _ in range(MAX_FAILURES):
        assert people.login("duty", PASSWORD, client="10.4.0.1")[1].username == "duty"


@pytest.mark.parametrize("name", ["chief\n", "duty\n", "new\n", " new", "new\t"])
def test_a_username_with_a_trailing_newline_or_space_is_refused(people: UserService, name: str) -> None:
    # "chief\n" would be another account that prints as chief in the audit log.
    with pytest.raises(InvalidInput):
        people.add(name, PASSWORD, Role.ADMIN, by="chief")


def test_two_admins_revoking_each_other_at_once_leave_one(people: UserService, monkeypatch: pytest.MonkeyPatch) -> None:
    # The last-admin rule is checked in the transaction that revokes: of two crossing
    # revocations, one is refused, whatever the timing.
    people.add("chief2", PASSWORD, Role.ADMIN, by="chief")
    outcomes: list[str] = []
    gate = threading.Barrier(2, timeout=10)

    def revoke(name: str) -> None:
        gate.wait()
        try:
            people.revoke(name)
            outcomes.append("revoked")
        except NotPermitted:
            outcomes.append("refused")

    threads = [threading.Thread(target=revoke, args=(n,)) for n in ("chief", "chief2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["refused", "revoked"]
    assert [u["username"] for u in people.all() if u["role"] == "admin" and u["active"]] in (["chief"], ["chief2"])


def test_a_store_that_cannot_be_written_is_not_called_a_wrong_key(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    NodeStore(tmp_path / "node.db", key).close()
    (tmp_path / "node.db-wal").mkdir()  # SQLite cannot open its journal: not a key matter
    with pytest.raises(StorageError) as raised:
        NodeStore(tmp_path / "node.db", key)
    assert "does not open it" not in str(raised.value) and "unable to open database file" in str(raised.value)


def test_a_full_disk_says_to_free_space_and_keeps_the_store_whole(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "node.db", secrets.token_bytes(32))
    try:
        store.put("before", "kept")
        with store.write() as c:  # the writers' one connection: as if the disk were this size
            pages = int(c.exec_driver_sql("PRAGMA page_count").scalar() or 0)
            c.exec_driver_sql(f"PRAGMA max_page_count={pages + 2}")

        def fill() -> None:
            with store.write() as c:
                for i in range(50):
                    store.put(f"big{i}", "x" * 4000, c)

        with pytest.raises(StorageError, match=r"is full: free space there \(nothing of this change was kept\)"):
            fill()
        with store.write() as c:  # space again
            c.exec_driver_sql("PRAGMA max_page_count=1073741823")
        store.put("after", "kept")
        assert (store.get("before"), store.get("big0"), store.get("after")) == ("kept", None, "kept")
        with store.read() as c:
            assert c.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    finally:
        store.close()


def test_a_session_from_before_the_clock_was_set_back_ends(people: UserService) -> None:
    # made while the clock was a day ahead: once it is put right, the session's age is not
    # known, and it must not live a day longer than IDLE and LIFETIME allow
    ahead = datetime.now(UTC) + timedelta(days=1)
    token, made = people.login("duty", PASSWORD, client="10.0.0.5", now=ahead)
    back = ahead - timedelta(days=1)
    assert not people.alive(made.token_sha256, now=back)
    with pytest.raises(NotAuthenticated, match="expired"):
        people.session(token, now=back)
    # a small step back (an NTP correction) ends nothing
    token, made = people.login("duty", PASSWORD, client="10.0.0.5", now=back)
    assert people.alive(made.token_sha256, now=back - timedelta(seconds=5))
    assert people.session(token, now=back - timedelta(seconds=5)).username == "duty"
