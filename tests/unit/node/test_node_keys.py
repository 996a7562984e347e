"""The party's key sets in a node against an exchange in process: a node whose init could not
register its keys gets them registered; an init the exchange refuses leaves nothing behind;
rotations never leave the node's current key set another than the exchange's, and the sync
repairs what a rotation cut short or a restored store left, or says what is missing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from gsomia.client.http import ExchangeClient
from gsomia.crypto import PartyKeys, write_private_keyfile
from gsomia.errors import ExchangeUnreachable, KeysRetired, StorageError
from gsomia.node import service as service_module
from gsomia.node.config import NodeConfig
from gsomia.node.service import NodeService, init_node
from tests.harness import Harness, InProcessTransport, start

URL = "http://exchange.test"


@pytest.fixture
def exchange(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    """An exchange in process, which the node's code reaches at :data:`URL`."""
    (tmp_path / "exchange").mkdir()
    harness = start(tmp_path / "exchange")

    def client(url: str, *, token: str | None = None, timeout: float = 30.0) -> ExchangeClient:
        return ExchangeClient(url, token=token, timeout=timeout, transport=InProcessTransport(harness.api))

    monkeypatch.setattr(service_module, "ExchangeClient", client)
    try:
        yield harness
    finally:
        harness.close()


def keys_file(tmp_path: Path, keys: PartyKeys) -> Path:
    path = tmp_path / f"{keys.fingerprint()[:8]}.keys"
    if not path.exists():
        write_private_keyfile(path, keys)
    return path


def init(exchange: Harness, tmp_path: Path, keys: PartyKeys, *, name: str = "kor") -> NodeConfig:
    config = NodeConfig(party="KOR", exchange=URL, dir=tmp_path / name)
    init_node(config, keys_file=keys_file(tmp_path, keys), token=exchange.tokens["KOR"])
    return config


def exchange_current(exchange: Harness) -> str:
    with exchange.client("KOR") as kor:
        (current,) = [k["fingerprint"] for k in kor.public_keys("KOR")["keys"] if k["retired_at"] is None]
    return str(current)


def node_current(service: NodeService) -> str | None:
    current = service.keys()["current"]
    return None if current is None else str(current["fingerprint"])


def register_at_exchange(exchange: Harness, keys: PartyKeys) -> None:
    with exchange.client("KOR") as kor:
        kor.register_keys("KOR", keys.public_keys().to_dict())


def init_unregistered(
    exchange: Harness, tmp_path: Path, keys: PartyKeys, monkeypatch: pytest.MonkeyPatch
) -> NodeService:
    """A node whose init reached the exchange for the token, not for the keys."""

    def away(self: ExchangeClient, *_: Any, **__: Any) -> dict[str, Any]:
        raise ExchangeUnreachable(f"cannot reach the exchange at {URL}")

    with monkeypatch.context() as patched:
        patched.setattr(ExchangeClient, "register_keys", away)
        init(exchange, tmp_path, keys)
    service = NodeService.open(tmp_path / "kor")
    assert node_current(service) is None
    return service


def test_the_sync_registers_the_keys_an_init_could_not(
    exchange: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = PartyKeys.generate("KOR")
    service = init_unregistered(exchange, tmp_path, fresh, monkeypatch)
    try:
        service.syncer.once()
        assert node_current(service) == fresh.fingerprint() == exchange_current(exchange)
        assert service.status()["keys"]["registered"] is True
        assert "register_keys" in {r["action"] for r in service.audit.page(limit=50)["items"]}
        # what is sealed to it now opens and verifies
        exchange.submit("JPN", recipients=("KOR",))
        assert service.syncer.once().verified == 1
    finally:
        service.close()


def test_rotate_works_on_a_node_without_a_current_key_set(
    exchange: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = PartyKeys.generate("KOR")
    service = init_unregistered(exchange, tmp_path, fresh, monkeypatch)
    try:
        current = service.rotate_keys("chief")
        # the pending set is the one registered: no second set made
        assert current["fingerprint"] == fresh.fingerprint() == exchange_current(exchange)
        assert [k["state"] for k in service.keys()["history"]] == ["current"]
    finally:
        service.close()


def test_a_pending_set_the_exchange_retired_is_kept_retired_and_rotate_makes_a_new_one(
    exchange: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = exchange.keys["KOR"]  # registered at the exchange: the node's init could not say so
    service = init_unregistered(exchange, tmp_path, original, monkeypatch)
    try:
        elsewhere = PartyKeys.generate("KOR")
        register_at_exchange(exchange, elsewhere)  # the original set is retired there
        service.syncer.once()
        keys = service.status()["keys"]
        assert keys["registered"] is False and keys["pending"] is None
        assert "retired" in keys["error"] and "gsomia node keys rotate" in keys["error"]
        assert keys["missing"]["fingerprint"] == elsewhere.fingerprint()
        current = service.rotate_keys("chief")
        assert current["fingerprint"] not in {original.fingerprint(), elsewhere.fingerprint()}
        assert current["fingerprint"] == exchange_current(exchange)
        states = {k["fingerprint"]: k["state"] for k in service.keys()["history"]}
        assert states == {original.fingerprint(): "retired", current["fingerprint"]: "current"}
        assert service.status()["keys"] | {"current": None} == {
            "current": None,
            "registered": True,
            "pending": None,
            "missing": None,
            "error": None,
        }
    finally:
        service.close()


def test_an_init_the_exchange_refuses_leaves_nothing_behind_and_can_be_run_again(
    exchange: Harness, tmp_path: Path
) -> None:
    original = exchange.keys["KOR"]
    register_at_exchange(exchange, PartyKeys.generate("KOR"))  # the key file's keys are retired since
    with pytest.raises(KeysRetired):
        init(exchange, tmp_path, original)
    assert not (tmp_path / "kor").exists()
    with pytest.raises(KeysRetired):  # not "already holds a node"
        init(exchange, tmp_path, original)
    # into a folder that was there: only what init made is removed
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "README").write_text("the operator's")
    with pytest.raises(KeysRetired):
        init(exchange, tmp_path, original, name="kept")
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["README"]
    config = init(exchange, tmp_path, PartyKeys.generate("KOR"))
    service = NodeService.open(config.dir)
    try:
        assert node_current(service) == exchange_current(exchange)
    finally:
        service.close()


class _Announcing:
    """The rotation lock, telling when the second rotation waits for it."""

    def __init__(self, second: dict[str, threading.Thread], waiting: threading.Event) -> None:
        self._lock = threading.Lock()
        self._second = second
        self._waiting = waiting
        self.blocked = False

    def __enter__(self) -> None:
        if threading.current_thread() is self._second.get("b"):
            self.blocked = True
            self._waiting.set()
        self._lock.acquire()

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._lock.release()


def test_two_rotations_at_once_leave_the_node_current_where_the_exchange_is(
    exchange: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second rotation looks for a pending set while the first holds none yet, and registers
    its own after the first registered: the first must not then make its set current."""
    service = NodeService.open(init(exchange, tmp_path, exchange.keys["KOR"]).dir)
    ring = service.keyring
    threads: dict[str, threading.Thread] = {}
    second_ready, first_registered = threading.Event(), threading.Event()
    lock = _Announcing(threads, second_ready)
    failures: list[BaseException] = []
    real_pending, real_make_current = ring.pending, ring.make_current

    def second() -> None:
        try:
            service.rotate_keys("duty")
        except BaseException as e:  # noqa: BLE001 - asserted below
            failures.append(e)

    def pending() -> PartyKeys | None:
        found = real_pending()
        if threading.current_thread() is threads.get("b"):
            second_ready.set()
            first_registered.wait()
        elif "b" not in threads:
            threads["b"] = threading.Thread(target=second)
            threads["b"].start()
            second_ready.wait()  # the second looked for a pending set, or waits for the lock
        return found

    def make_current(fingerprint: str, *, registered_at: str) -> None:
        if threading.current_thread() is not threads.get("b"):
            first_registered.set()
            if not lock.blocked:
                threads["b"].join()  # the second rotation ran through meanwhile
        real_make_current(fingerprint, registered_at=registered_at)

    monkeypatch.setattr(ring, "changing", lock, raising=False)
    monkeypatch.setattr(ring, "pending", pending)
    monkeypatch.setattr(ring, "make_current", make_current)
    try:
        service.rotate_keys("chief")
        threads["b"].join()
        assert failures == []
        assert node_current(service) == exchange_current(exchange)
    finally:
        service.close()


def test_the_sync_finishes_a_rotation_cut_short_after_the_exchange_registered_it(
    exchange: Harness, tmp_path: Path
) -> None:
    service = NodeService.open(init(exchange, tmp_path, exchange.keys["KOR"]).dir)
    try:
        fresh = PartyKeys.generate("KOR")
        service.keyring.add(fresh, state="pending")
        register_at_exchange(exchange, fresh)  # the rotation's process ends here
        exchange.submit("JPN", recipients=("KOR",))  # sealed to the new set
        assert service.syncer.once().verified == 1
        assert node_current(service) == fresh.fingerprint() == exchange_current(exchange)
        audited = [r for r in service.audit.page(limit=50)["items"] if r["action"] == "reconcile_keys"]
        assert [r["target"] for r in audited] == [fresh.fingerprint()]
    finally:
        service.close()


def test_a_set_retired_here_is_never_made_current_again_on_the_exchange_s_word(
    exchange: Harness, tmp_path: Path
) -> None:
    # a set is retired when it is replaced, perhaps because it was compromised: an exchange (or
    # anything between) saying it is current must not bring it back; the admin is told to rotate
    service = NodeService.open(init(exchange, tmp_path, exchange.keys["KOR"]).dir)
    try:
        first = PartyKeys.generate("KOR")
        service.keyring.add(first, state="current", registered_at="2019-11-22T00:00:00+00:00")
        register_at_exchange(exchange, first)
        moved_on = PartyKeys.generate("KOR")
        service.keyring.add(moved_on, state="current")  # the node moved on alone
        service.syncer.once()
        assert node_current(service) == moved_on.fingerprint()
        assert first.fingerprint() in service.status()["keys"]["error"]
        current = service.rotate_keys("chief")
        assert current["fingerprint"] == exchange_current(exchange) == node_current(service)
        assert service.status()["keys"]["error"] is None
    finally:
        service.close()


def test_a_store_restored_from_before_a_rotation_says_which_key_set_is_missing(
    exchange: Harness, tmp_path: Path
) -> None:
    service = NodeService.open(init(exchange, tmp_path, exchange.keys["KOR"]).dir)
    try:
        lost = PartyKeys.generate("KOR")
        register_at_exchange(exchange, lost)  # rotated by the node before its store was restored
        service.syncer.once()
        keys = service.status()["keys"]
        assert keys["missing"]["fingerprint"] == lost.fingerprint()
        assert keys["current"] == exchange.keys["KOR"].fingerprint()
        current = service.rotate_keys("chief")
        assert current["fingerprint"] == exchange_current(exchange)
        assert service.status()["keys"]["missing"] is None
    finally:
        service.close()


def test_an_exchange_holding_no_current_key_set_for_the_party_is_said_so(exchange: Harness, tmp_path: Path) -> None:
    # it was taken as being in line (and an earlier warning was cleared): nothing sealed to the
    # node can be made there, nothing the node signs is taken
    service = NodeService.open(init(exchange, tmp_path, exchange.keys["KOR"]).dir)
    try:
        mine = node_current(service)

        class NoCurrent:
            def public_keys(self, party: str) -> dict[str, Any]:
                return {"keys": [{"fingerprint": mine, "retired_at": "2019-11-22T00:00:00Z"}]}

        service.syncer._follow_exchange_keys(NoCurrent())  # type: ignore[arg-type]
        keys = service.status()["keys"]
        assert "no current key set for KOR" in keys["error"] and keys["current"] == mine
    finally:
        service.close()


def test_a_rotation_the_store_cuts_short_says_how_the_node_gets_in_line(
    exchange: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the exchange took the new set, the node could not record it current (a full disk): the
    # error said only "node store: OperationalError", not that the exchange may hold it already
    config = init(exchange, tmp_path, PartyKeys.generate("KOR"))
    service = NodeService.open(config.dir)
    try:
        before = node_current(service)

        def full(*_: Any, **__: Any) -> None:
            raise StorageError("node store: OperationalError: database or disk is full")

        with monkeypatch.context() as patched:
            patched.setattr(service.keyring, "make_current", full)
            with pytest.raises(StorageError, match=r"run 'gsomia node sync --once'") as cut:
                service.rotate_keys("chief")
        fresh = service.keyring.pending()
        assert fresh is not None and fresh.fingerprint() in str(cut.value)
        assert exchange_current(exchange) == fresh.fingerprint() and node_current(service) == before
        service.syncer.once()  # as the message says
        assert node_current(service) == fresh.fingerprint() == exchange_current(exchange)
    finally:
        service.close()
