"""Group commit: one writer thread runs concurrent write actions in shared transactions.

Each action is a function of the transaction. The writer takes every action queued at that
moment (up to ``max_batch``), runs each inside its own savepoint, and commits them together:
one durable commit for many submissions. An action that raises is rolled back to its
savepoint and gets its own error; the others still commit. Callers learn the outcome only
after the commit (or its failure), so an answer never reports a change that is not durable.

Work that needs no transaction (signature checks, encryption, HPKE wraps) is done by the
caller before queueing, so the writer spends its time on the database only.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from gsomia.errors import StorageError
from gsomia.storage.db import storage_error
from gsomia.storage.exchange import ExchangeRepo, Tx
from gsomia.storage.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What an action returns: its value, and what to do once it is durable."""

    value: T
    after_commit: tuple[Callable[[], None], ...] = ()


BatchHandler = Callable[[Tx, list[Any]], list["Outcome[Any] | Exception"]]
"""Runs many queued items of one kind together: one result (or error) per item, in order.

A handler checks every item before writing anything, so an item it refuses (returns an
exception for) has written nothing; if the handler itself raises, its items are retried one
by one, so one bad item cannot fail the others."""


@dataclass(slots=True)
class _Job:
    """A queued action, and whom to answer: a thread waiting on ``future``, or a coroutine
    awaiting ``waiter`` on the event loop ``loop``."""

    action: Callable[[Tx], Outcome[Any]] | None
    handler: BatchHandler | None = None
    item: Any = None
    future: Future[Any] | None = None
    waiter: asyncio.Future[Any] | None = None
    loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> bool:
        """False if the caller gave up before the writer got to the job (it is then skipped)."""
        if self.waiter is not None:
            return not self.waiter.cancelled()  # a read of a flag the loop only ever sets
        assert self.future is not None  # noqa: S101 - a job has one kind of caller
        return self.future.set_running_or_notify_cancel()


def _answer(replies: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """On the event loop: resolve the awaiting coroutines of one batch."""
    for waiter, value, error in replies:
        if waiter.done():  # cancelled meanwhile; the commit stands
            continue
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(value)


_STOP = object()
_BUSY = 0.02  # a commit this recent means work is arriving steadily: worth waiting to batch


class GroupCommitter:
    """A single writer that batches write actions into shared transactions."""

    def __init__(
        self, store: Store, *, max_batch: int = 256, linger: float = 0.002, name: str = "gsomia-writer"
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        self._linger = linger
        self._name = name
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.batches = 0
        self.actions = 0
        self.on_begin: Callable[[Tx], None] | None = None
        """Called at the start of every transaction, before any action (outside their savepoints)."""

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._closed:
                raise StorageError("the exchange is shutting down")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def submit(self, action: Callable[[Tx], Outcome[T]]) -> Future[T]:
        """Queue ``action``; the future resolves after its transaction commits.

        Raises:
            StorageError: if the committer is closed.
        """
        self._ensure_started()
        future: Future[T] = Future()
        self._queue.put(_Job(action, future=future))
        return future

    def submit_batched(self, handler: BatchHandler, item: Any) -> Future[Any]:
        """Queue ``item`` for ``handler``, which runs all items queued together in one call.

        Raises:
            StorageError: if the committer is closed.
        """
        self._ensure_started()
        future: Future[Any] = Future()
        self._queue.put(_Job(None, handler, item, future=future))
        return future

    def _submit_async(self, job: _Job) -> asyncio.Future[Any]:
        # An asyncio future answered on its own loop, once per batch (see _reply): cheaper
        # than a thread-safe future chained to the loop for every request.
        self._ensure_started()
        job.loop = asyncio.get_running_loop()
        job.waiter = job.loop.create_future()
        self._queue.put(job)
        return job.waiter

    def run(self, action: Callable[[Tx], Outcome[T]]) -> T:
        """Run ``action`` and wait for its commit.

        Raises:
            GsomiaError: whatever the action raised, or StorageError if the commit failed.
        """
        return self.submit(action).result()

    async def run_async(self, action: Callable[[Tx], Outcome[T]]) -> T:
        """Run ``action`` and await its commit without blocking the event loop.

        Raises:
            GsomiaError: whatever the action raised, or StorageError if the commit failed.
        """
        result: T = await self._submit_async(_Job(action))
        return result

    async def run_batched_async(self, handler: BatchHandler, item: Any) -> Any:
        """Queue ``item`` for ``handler`` and await its commit without blocking the event loop.

        Raises:
            GsomiaError: whatever the handler returned for the item, or StorageError if the
                commit failed.
        """
        return await self._submit_async(_Job(None, handler, item))

    def close(self) -> None:
        """Finish the queued actions, then stop the writer."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout=30)

    def _drain(self, batch: list[_Job]) -> bool:
        """Move queued jobs into ``batch`` (up to the limit); False once asked to stop."""
        while len(batch) < self._max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                return True
            if nxt is _STOP:
                return False
            batch.append(nxt)  # type: ignore[arg-type]
        return True

    def _run(self) -> None:
        running = True
        last_commit = 0.0
        while running:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[_Job] = [first]  # type: ignore[list-item]
            running = self._drain(batch)
            if running and len(batch) < self._max_batch and time.monotonic() - last_commit < _BUSY:
                # Under load, wait a moment for more work: each commit has a fixed cost, so
                # fewer, larger batches leave more of the CPU to the requests themselves.
                time.sleep(self._linger)
                running = self._drain(batch)
            self._commit(batch)
            last_commit = time.monotonic()

    def _commit(self, batch: list[_Job]) -> None:
        live = [j for j in batch if j.start()]
        groups = _groups(live)
        try:
            # A batch of one handler's items (the usual case: submissions) runs without a
            # savepoint, two round trips fewer inside the writers' lock; should the handler
            # raise, the transaction is rolled back whole and run again with savepoints.
            alone = len(groups) == 1 and groups[0][0] is not None
            try:
                results = self._transaction(groups, guarded=not alone)
            except _Unguarded:
                results = self._transaction(groups, guarded=True)
        except Exception as e:  # noqa: BLE001 - a failed commit fails every job in the batch
            log.warning("a group commit of %d action(s) failed: %s", len(batch), e)
            failure = e if isinstance(e, StorageError) else StorageError(f"the commit failed: {e}")
            _reply([(job, None, failure) for job in live])
            return
        self.batches += 1
        self.actions += len(results)
        replies: list[tuple[_Job, Any, BaseException | None]] = []
        for job, outcome, error in results:
            if error is not None:
                replies.append((job, None, error))
                continue
            assert outcome is not None  # noqa: S101 - set together with error above
            for hook in outcome.after_commit:
                try:
                    hook()
                except Exception:  # a notification must never undo a commit
                    log.exception("an after-commit hook failed")
            replies.append((job, outcome.value, None))
        _reply(replies)

    def _transaction(
        self, groups: list[tuple[BatchHandler | None, list[_Job]]], *, guarded: bool
    ) -> list[tuple[_Job, Outcome[Any] | None, BaseException | None]]:
        """Run ``groups`` in one transaction and commit it; each job's outcome or error.

        Raises:
            _Unguarded: not ``guarded`` and the handler raised (the transaction rolled back).
            StorageError: the transaction or its commit failed.
        """
        results: list[tuple[_Job, Outcome[Any] | None, BaseException | None]] = []
        with self._store.writing("committing exchange actions") as s:
            ExchangeRepo.serialize_writers(s)
            if self.on_begin is not None:
                self.on_begin(s)
            for handler, jobs in groups:
                if handler is None:
                    results.extend(_run_one(s, job) for job in jobs)
                elif guarded:
                    results.extend(_run_group(s, handler, jobs))
                else:
                    results.extend(_run_unguarded(s, handler, jobs))
        return results


class _Unguarded(Exception):
    """A handler run without a savepoint raised: its transaction must be run again with them."""


def _run_unguarded(
    s: Tx, handler: BatchHandler, jobs: list[_Job]
) -> list[tuple[_Job, Outcome[Any] | None, BaseException | None]]:
    try:
        outs = handler(s, [job.item for job in jobs])
    except Exception as e:
        log.debug("a batch of %d failed without a savepoint; running it again with them", len(jobs), exc_info=True)
        raise _Unguarded from e
    return [
        (job, None, storage_error("writing", out) if isinstance(out, SQLAlchemyError) else out)
        if isinstance(out, Exception)
        else (job, out, None)
        for job, out in zip(jobs, outs, strict=True)
    ]


def _reply(replies: list[tuple[_Job, Any, BaseException | None]]) -> None:
    """Answer every caller of a batch: threads at once, each event loop with one callback."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
    for job, value, error in replies:
        if job.waiter is not None and job.loop is not None:
            by_loop.setdefault(job.loop, []).append((job.waiter, value, error))
        elif job.future is not None:
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(value)
    for loop, answers in by_loop.items():
        try:
            loop.call_soon_threadsafe(_answer, answers)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            log.debug("%d answer(s) for a closed event loop dropped", len(answers))


def _groups(jobs: list[_Job]) -> list[tuple[BatchHandler | None, list[_Job]]]:
    """Consecutive jobs of the same batch handler form one group; plain actions stand alone.

    Handlers are compared by equality, not identity: a service passes a bound method
    (``self._commit_many``), and every attribute access makes a new bound-method object.
    """
    groups: list[tuple[BatchHandler | None, list[_Job]]] = []
    for job in jobs:
        if job.handler is not None and groups and groups[-1][0] == job.handler:
            groups[-1][1].append(job)
        else:
            groups.append((job.handler, [job]))
    return groups


def _run_one(s: Tx, job: _Job) -> tuple[_Job, Outcome[Any] | None, BaseException | None]:
    try:
        with s.begin_nested():
            out = job.action(s) if job.action is not None else _single(job)(s)
    except SQLAlchemyError as e:
        # the database failed under this action (a full disk, a timeout, a read-only server):
        # its caller gets a storage error (503, try again), never the driver's own error (500)
        return job, None, storage_error("writing", e)
    except Exception as e:  # noqa: BLE001 - the error belongs to this job's caller
        return job, None, e
    return job, out, None


def _single(job: _Job) -> Callable[[Tx], Outcome[Any]]:
    """A batch handler's job as a plain action (its refusal raised, to roll back its savepoint)."""
    handler = job.handler
    assert handler is not None  # noqa: S101 - a job has an action or a handler

    def action(s: Tx) -> Outcome[Any]:
        out = handler(s, [job.item])[0]
        if isinstance(out, Exception):
            raise out
        return out

    return action


def _run_group(
    s: Tx, handler: BatchHandler, jobs: list[_Job]
) -> list[tuple[_Job, Outcome[Any] | None, BaseException | None]]:
    try:
        with s.begin_nested():
            outs = handler(s, [job.item for job in jobs])
    except Exception:  # isolate the item that failed: retry one by one
        log.debug("a batch of %d failed; retrying its items one by one", len(jobs), exc_info=True)
        return [_run_one(s, job) for job in jobs]
    return [
        (job, None, out) if isinstance(out, Exception) else (job, out, None)
        for job, out in zip(jobs, outs, strict=True)
    ]
