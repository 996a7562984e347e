"""Group commit: many actions, one transaction; a refused action writes nothing and does not
fail the others; callers hear back only after the commit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from gsomia.errors import Conflict, StorageError
from gsomia.storage.exchange import ExchangeRepo, NewPrincipal, Tx
from gsomia.storage.store import Store
from gsomia.storage.writer import GroupCommitter, Outcome

NOW = datetime(2026, 11, 27, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'g.db'}")
    yield s
    s.close()


def principal_row(i: int) -> NewPrincipal:
    return NewPrincipal(id=f"p-{i}", name=f"n{i}", role="auditor", party=None, token_hash=f"{i:064d}", created_at=NOW)


def queued_behind_a_commit(
    committer: GroupCommitter, handler: Callable[[Tx, list[int]], list[Outcome[int] | Exception]], items: Iterable[int]
) -> list[Future[int]]:
    """Submit ``items`` to ``handler`` while the writer is held in another commit, so they are
    taken as one batch; the futures, once that commit is over."""
    running, release = threading.Event(), threading.Event()

    def hold(_s: Tx) -> Outcome[None]:
        running.set()
        release.wait(timeout=30)
        return Outcome(None)

    held = committer.submit(hold)
    assert running.wait(timeout=30)
    futures = [committer.submit_batched(handler, i) for i in items]
    release.set()
    held.result(timeout=30)
    return futures


def test_a_batch_keeps_the_good_items_and_refuses_the_bad_one_whole(store: Store) -> None:
    committed: list[int] = []

    def handler(s: Tx, items: list[int]) -> list[Outcome[int] | Exception]:
        out: list[Outcome[int] | Exception] = []
        for i in items:
            if i == 3:
                out.append(Conflict("three is refused"))
                continue
            ExchangeRepo.add(s, [principal_row(i)])
            out.append(Outcome(i, (partial(committed.append, i),)))
        return out

    committer = GroupCommitter(store)
    futures = [committer.submit_batched(handler, i) for i in range(6)]
    results = []
    for f in futures:
        try:
            results.append(f.result(timeout=30))
        except Conflict as e:
            results.append(str(e))
    committer.close()
    assert results == [0, 1, 2, "three is refused", 4, 5]
    assert sorted(committed) == [0, 1, 2, 4, 5]
    with store.reading() as s:
        assert sorted(p.id for p in ExchangeRepo.principals(s)) == ["p-0", "p-1", "p-2", "p-4", "p-5"]


def test_a_handler_that_raises_is_retried_item_by_item(store: Store) -> None:
    def handler(s: Tx, items: list[int]) -> list[Outcome[int] | Exception]:
        for i in items:
            ExchangeRepo.add(s, [principal_row(i if i != 2 else 1)])  # 2 clashes with 1
        return [Outcome(i) for i in items]

    committer = GroupCommitter(store)
    futures = [committer.submit_batched(handler, i) for i in (1, 2, 3)]
    outcomes = []
    for f in futures:
        try:
            outcomes.append(f.result(timeout=30))
        except Exception as e:  # noqa: BLE001 - the clash's error, whatever the driver calls it
            outcomes.append(type(e).__name__)
    committer.close()
    assert outcomes[0] == 1
    assert outcomes[2] == 3
    assert isinstance(outcomes[1], str)
    with store.reading() as s:
        assert sorted(p.id for p in ExchangeRepo.principals(s)) == ["p-1", "p-3"]


def test_plain_actions_raise_their_own_errors(store: Store) -> None:
    def bad(_s: Tx) -> Outcome[None]:
        raise Conflict("no")

    committer = GroupCommitter(store)
    with pytest.raises(Conflict):
        committer.run(bad)
    assert committer.run(lambda s: Outcome(ExchangeRepo.last_inbox_seq(s))) == 0
    committer.close()


def test_a_service_method_gets_every_item_queued_together_in_one_call(store: Store) -> None:
    # Services queue with a bound method (self._commit_many), a new object at every access:
    # the items must still reach one call, so a burst costs one query and one insert per table.
    class Service:
        def __init__(self) -> None:
            self.calls: list[list[int]] = []

        def commit_many(self, s: Tx, items: list[int]) -> list[Outcome[int] | Exception]:
            ExchangeRepo.add(s, [principal_row(i) for i in items])
            self.calls.append(list(items))
            return [Outcome(i) for i in items]

    service = Service()
    committer = GroupCommitter(store)
    futures = queued_behind_a_commit(committer, service.commit_many, range(5))
    assert [f.result(timeout=30) for f in futures] == [0, 1, 2, 3, 4]
    committer.close()
    assert service.calls == [[0, 1, 2, 3, 4]]


def test_coroutines_hear_back_after_the_commit_each_with_its_own_outcome(store: Store) -> None:
    def handler(s: Tx, items: list[int]) -> list[Outcome[int] | Exception]:
        out: list[Outcome[int] | Exception] = []
        for i in items:
            if i == 2:
                out.append(Conflict("two is refused"))
                continue
            ExchangeRepo.add(s, [principal_row(i)])
            out.append(Outcome(i))
        return out

    committer = GroupCommitter(store)

    async def submit_all() -> list[object]:
        # run_batched_async answers Any (whatever the handler's outcome holds)
        results: list[object] = await asyncio.gather(
            *(committer.run_batched_async(handler, i) for i in range(4)), return_exceptions=True
        )
        return results

    answers = asyncio.run(submit_all())
    committer.close()
    assert answers[:2] == [0, 1]
    assert isinstance(answers[2], Conflict)
    assert answers[3] == 3
    with store.reading() as s:  # every answered success is durable; the refusal wrote nothing
        assert sorted(p.id for p in ExchangeRepo.principals(s)) == ["p-0", "p-1", "p-3"]


def test_a_batch_that_raises_without_a_savepoint_is_run_again_whole_with_them(db_url: str) -> None:
    # A batch of one handler's items runs without a savepoint; when the handler raises after
    # writing, the whole transaction is rolled back and run again with savepoints, item by
    # item: nothing of the first attempt survives, and the good items still commit, once.
    store = Store(db_url)
    calls: list[list[int]] = []
    hooks: list[int] = []

    def handler(s: Tx, items: list[int]) -> list[Outcome[int] | Exception]:
        calls.append(list(items))
        for i in items:
            ExchangeRepo.add(s, [principal_row(i)])
            if i == 2 and len(items) > 1:
                raise RuntimeError("a fault after some rows were written")
        return [Outcome(i, (partial(hooks.append, i),)) for i in items]

    committer = GroupCommitter(store)
    futures = queued_behind_a_commit(committer, handler, (1, 2, 3))  # one batch
    assert [f.result(timeout=30) for f in futures] == [1, 2, 3]
    committer.close()
    # without savepoints, with them (the whole group), then item by item
    assert calls == [[1, 2, 3], [1, 2, 3], [1], [2], [3]]
    assert sorted(hooks) == [1, 2, 3]
    with store.reading() as s:
        assert sorted(p.id for p in ExchangeRepo.principals(s)) == ["p-1", "p-2", "p-3"]
    store.close()


def test_a_database_failure_under_one_item_is_a_storage_error_without_its_parameters(store: Store) -> None:
    # PostgreSQL out of disk space under an item's savepoint: the item's caller is told the
    # store failed (503, try again), not handed the driver's error (a 500 whose log held the
    # statement's parameters: ciphertext and sealed keys)
    class DiskFull(Exception):
        pass

    def handler(s: Tx, items: list[int]) -> list[Outcome[int] | Exception]:
        if 2 in items:
            raise OperationalError(
                "INSERT INTO submitted_reports … (%(ciphertext)s)",
                {"ciphertext": b"SECRET"},
                DiskFull('could not extend file "base/16384/16400": No space left on device'),
            )
        return [Outcome(i) for i in items]

    committer = GroupCommitter(store)
    futures = queued_behind_a_commit(committer, handler, (1, 2, 3))
    outcomes: list[object] = []
    for f in futures:
        try:
            outcomes.append(f.result(timeout=30))
        except StorageError as e:
            outcomes.append(str(e))
    plain = committer.submit(lambda _s: handler(_s, [2])[0])  # type: ignore[arg-type,return-value]
    with pytest.raises(StorageError, match="No space left on device") as raised:
        plain.result(timeout=30)
    committer.close()
    assert outcomes[0] == 1 and outcomes[2] == 3
    assert isinstance(outcomes[1], str) and "No space left on device" in outcomes[1]
    assert "SECRET" not in outcomes[1] and "INSERT" not in outcomes[1] and "SECRET" not in str(raised.value)
