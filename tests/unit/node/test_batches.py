"""The batching worker: every item handled once, batches up to the limit in queue order, and
with several threads a batch taken while another is still being handled."""

from __future__ import annotations

import threading
import time
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


def _endless(made: list[int], closed: threading.Event) -> Iterator[int]:
    """Yield 0, 1, 2 … as fast as asked (an exchange streaming events faster than they are
    handled), up to a million; ``closed`` is set if the reader closes it before then."""
    try:
        for i in range(1_000_000):
            made.append(i)
            yield i
    except GeneratorExit:
        closed.set()
        raise


def test_read_ahead_reads_only_a_few_batches_ahead_of_the_caller() -> None:
    # an unbounded read-ahead held 1.5 million events in memory while 6,000 were handled
    made: list[int] = []
    batches = read_ahead(_endless(made, threading.Event()), most=10)
    first = next(batches)
    assert first[0] == 0 and len(first) <= 10
    time.sleep(0.3)  # the reader runs on while the caller handles its batch
    assert len(made) <= 10 + 2 * 10 + 2, len(made)  # the batch taken, the room ahead, one in hand
    batches.close()


def test_read_ahead_stops_a_blocked_reader_when_the_caller_stops_taking_batches() -> None:
    made: list[int] = []
    closed = threading.Event()
    batches = read_ahead(_endless(made, closed), most=10, name="blocked-reader")
    assert next(batches)[0] == 0
    time.sleep(0.1)  # the reader fills the room ahead, then waits for more of it
    batches.close()  # the caller is done (its stream is closed)
    assert closed.wait(5)  # the reader noticed while it waited, and closed the source
    assert len(made) < 100
    deadline = time.monotonic() + 5
    while any(t.name == "blocked-reader" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.name == "blocked-reader" for t in threading.enumerate())


def test_read_ahead_ends_when_asked_to_stop_even_while_nothing_arrives() -> None:
    stop, release = threading.Event(), threading.Event()

    def silent() -> Iterator[int]:
        yield 0
        release.wait(10)  # a quiet stream: nothing arrives
        yield 1

    batches = read_ahead(silent(), most=10, stop=stop)
    try:
        assert next(batches) == [0]
        threading.Timer(0.05, stop.set).start()
        started = time.monotonic()
        assert list(batches) == []  # no batch after the stop, and no wait for the stream
        assert time.monotonic() - started < 5
    finally:
        release.set()


def test_read_ahead_ends_on_stop_while_its_reader_waits_for_room() -> None:
    made: list[int] = []
    closed, stop = threading.Event(), threading.Event()
    batches = read_ahead(_endless(made, closed), most=10, stop=stop)
    assert len(next(batches)) >= 1
    time.sleep(0.1)
    stop.set()
    assert list(batches) == []  # what was read ahead is not handed over any more
    assert closed.wait(5) and len(made) < 100
