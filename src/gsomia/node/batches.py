"""Worker threads that take what was queued for them in batches: everything waiting at that
moment, up to a limit, handed over in one call (one exchange round trip for many items); and
the same for what a blocking iterator yields (:func:`read_ahead`)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from gsomia.errors import InvalidInput

log = logging.getLogger(__name__)

__all__ = ["BatchWorker", "read_ahead"]

T = TypeVar("T")


class BatchWorker(Generic[T]):
    """Queue items; ``workers`` daemon threads hand each batch of them to ``handle``.

    A batch holds every item queued when a thread comes to it, until their ``weight`` reaches
    ``limit`` (an item is never split). With more than one thread, a batch is taken while
    others are still being handled (one waits for the exchange while another is prepared or
    recorded), so ``handle`` must be safe to call from several threads at once. :meth:`stop`
    lets the items already queued through. With a ``backlog``, at most that many items are
    queued or being handled at once: :meth:`put` refuses more (memory stays bounded while
    ``handle`` is slow or retrying).
    """

    def __init__(
        self,
        name: str,
        handle: Callable[[list[T]], None],
        *,
        limit: int,
        weight: Callable[[T], int] | None = None,
        workers: int = 1,
        backlog: int | None = None,
    ) -> None:
        """Prepare the worker (no thread runs before :meth:`start`).

        Raises:
            InvalidInput: ``workers`` is below 1, or ``backlog`` below 1.
        """
        if workers < 1:
            raise InvalidInput(f"{name}: a batch worker needs at least one thread")
        if backlog is not None and backlog < 1:
            raise InvalidInput(f"{name}: a backlog holds at least one item")
        self.name = name
        self.handle = handle
        self.limit = limit
        self.weight = weight
        self.workers = workers
        self.backlog = backlog
        self._queue: queue.Queue[T | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._held = 0  # items queued or being handled
        self._held_lock = threading.Lock()

    @property
    def held(self) -> int:
        """Items queued or being handled."""
        return self._held

    def put(self, item: T) -> bool:
        """Queue ``item`` for the next batch; False (not queued) if the backlog is full."""
        with self._held_lock:
            if self.backlog is not None and self._held >= self.backlog:
                return False
            self._held += 1
        self._queue.put(item)
        return True

    def start(self) -> None:
        """Start the worker threads."""
        if not self._threads:
            for n in range(self.workers):
                thread = threading.Thread(target=self._run, name=f"{self.name}-{n}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self) -> None:
        """Stop after the items already queued."""
        for _ in self._threads:
            self._queue.put(None)  # one end mark per thread, after everything queued
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []

    def _size(self, item: T) -> int:
        return 1 if self.weight is None else self.weight(item)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            size = self._size(first)
            while size < self.limit:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # stop once this batch is handled
                    break
                batch.append(nxt)
                size += self._size(nxt)
            try:
                self.handle(batch)
            except Exception:  # a bug in one batch must not stop the worker for every later one
                log.exception("%s: a batch of %d failed", self.name, len(batch))
            finally:
                with self._held_lock:
                    self._held -= len(batch)


def read_ahead(source: Iterable[T], most: int, name: str = "read-ahead") -> Iterator[list[T]]:
    """What ``source`` yields, read by a daemon thread of its own as it comes, in batches:
    each batch is everything that arrived while the one before was being handled (at least
    one item, at most ``most``), in order. When ``source`` ends, the batches end after what it
    yielded; when it raises, the error is raised here after the items it yielded before.

    The thread blocks on ``source`` until it ends or fails; it is meant for a source that the
    caller ends by closing what it reads from (a stream).
    """
    handed: queue.Queue[tuple[T | None, BaseException | None, bool]] = queue.Queue()

    def read() -> None:
        try:
            for item in source:
                handed.put((item, None, False))
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            handed.put((None, e, True))
        else:
            handed.put((None, None, True))

    threading.Thread(target=read, name=name, daemon=True).start()
    while True:
        batch: list[T] = []
        item, error, last = handed.get()
        while not last:
            batch.append(item)  # type: ignore[arg-type]  # only the last put carries no item
            if len(batch) >= most:
                break
            try:
                item, error, last = handed.get_nowait()
            except queue.Empty:
                break
        if batch:
            yield batch
        if last:
            if error is not None:
                raise error
            return
