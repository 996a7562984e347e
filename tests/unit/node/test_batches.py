"""The batching worker: every item handled once, batches up to the limit in queue order, and
with several threads a batch taken while another is still being handled."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from gsomia.errors import InvalidInput
from gsomia.node.batches import BatchWorker, read_ahead


def test_one_thread_hands_over_everything_queued_in_order_up_to_the_limit() -> None:
    batches: list[list[int]] = []
    gate = threading.Event()

    def handle(batch: list[int]) -> None:
        gate.wait(10)
        batches.append(batch)

    worker: BatchWorker[int] = BatchWorker("t", handle, limit=3)
    worker.start()
    worker.put(0)  # taken at once; the thread then waits at the gate
    for n in range(1, 8):
        worker.put(n)
    gate.set()
    worker.stop()  # the items already queued go through first
    assert [n for b in batches for n in b] == list(range(8))
    assert all(len(b) <= 3 for b in batches)


def test_with_two_threads_a_batch_is_taken_while_another_is_handled() -> None:
    first_in, release, last_done = threading.Event(), threading.Event(), threading.Event()
    handled: list[list[str]] = []
    lock = threading.Lock()

    def handle(batch: list[str]) -> None:
        if batch == ["slow"]:
            first_in.set()
            assert release.wait(10)
        with lock:
            handled.append(batch)
        if "b" in batch:
            last_done.set()

    worker: BatchWorker[str] = BatchWorker("t", handle, limit=10, workers=2)
    worker.start()
    worker.put("slow")
    assert first_in.wait(10)
    worker.put("a")
    worker.put("b")
    # the other thread takes them while the first batch is still held
    assert last_done.wait(10)
    with lock:
        assert [n for b in handled for n in b] == ["a", "b"]
    release.set()
    worker.stop()
    assert [n for b in handled for n in b] == ["a", "b", "slow"]


def test_a_worker_needs_a_thread() -> None:
    with pytest.raises(InvalidInput):
        BatchWorker("t", lambda batch: None, limit=1, workers=0)


def _source(
    gates: dict[int, threading.Event], n: int, error: Exception | None = None, reached: threading.Event | None = None
) -> Iterator[int]:
    """Yield 0 … n-1, waiting before item i for ``gates[i]`` if there is one (the last gate
    sets ``reached`` first); then raise ``error``."""
    for i in range(n):
        gate = gates.get(i)
        if gate is not None:
            if reached is not None and i == max(gates):
                reached.set()
            assert gate.wait(10)
        yield i
    if error is not None:
        raise error


def test_read_ahead_hands_over_what_arrived_while_the_last_batch_was_handled() -> None:
    gates, waiting = {1: threading.Event(), 5: threading.Event()}, threading.Event()
    batches = read_ahead(_source(gates, 8, reached=waiting), most=3)
    assert next(batches) == [0]  # the first item alone: nothing else had arrived
    gates[1].set()
    assert waiting.wait(10)  # items 1 to 4 arrived while the caller handled [0]
    assert next(batches) == [1, 2, 3]  # at most three
    assert next(batches) == [4]
    gates[5].set()
    rest = list(batches)
    assert [i for batch in rest for i in batch] == [5, 6, 7] and all(rest)


def test_read_ahead_raises_the_sources_error_after_its_items() -> None:
    got: list[int] = []

    def take() -> None:
        for batch in read_ahead(_source({}, 4, ConnectionError("the stream broke")), most=100):
            got.extend(batch)

    with pytest.raises(ConnectionError, match="broke"):
        take()
    assert got == [0, 1, 2, 3]
    assert list(read_ahead(iter([]), most=5)) == []


def test_a_batch_that_fails_is_logged_and_the_worker_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    handled: list[list[int]] = []

    def handle(batch: list[int]) -> None:
        if 1 in batch:
            raise OverflowError("a bug in one batch")
        handled.append(batch)

    worker: BatchWorker[int] = BatchWorker("t", handle, limit=1)
    worker.start()
    for n in range(3):
        worker.put(n)
    worker.stop()
    assert handled == [[0], [2]]
    assert "t: a batch of 1 failed" in caplog.text


def test_a_backlog_bounds_what_is_queued_or_being_handled() -> None:
    inside, release = threading.Event(), threading.Event()
    handled: list[list[int]] = []

    def handle(batch: list[int]) -> None:
        inside.set()
        assert release.wait(10)
        handled.append(batch)

    worker: BatchWorker[int] = BatchWorker("t", handle, limit=2, backlog=3)
    worker.start()
    assert worker.put(0)
    assert inside.wait(10)  # the batch [0] is being handled: it still counts
    assert [worker.put(n) for n in range(1, 6)] == [True, True, False, False, False]
    release.set()
    worker.stop()
    assert [n for b in handled for n in b] == [0, 1, 2] and worker.held == 0
    assert worker.put(9)  # room again once the batches were handled
    with pytest.raises(InvalidInput):
        BatchWorker("t", handle, limit=1, backlog=0)
