"""The batching worker: every item handled once, batches up to the limit in queue order, and
with several threads a batch taken while another is still being handled."""

from __future__ import annotations

import threading

import pytest

from gsomia.errors import InvalidInput
from gsomia.node.batches import BatchWorker


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
