"""Worker threads that take what was queued for them in batches: everything waiting at that
moment, up to a limit, handed over in one call (one exchange round trip for many items); and
the same for what a blocking iterator yields (:func:`read_ahead`)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Generator, Iterable
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


AHEAD = 2
"""How many batches' worth of items :func:`read_ahead` reads before the caller takes them."""

POLL = 0.25
"""How often (seconds) a read-ahead waiting for room, or for items, looks whether to stop."""


def read_ahead(
    source: Iterable[T], most: int, name: str = "read-ahead", *, stop: threading.Event | None = None
) -> Generator[list[T], None, None]:
    """What ``source`` yields, read by a daemon thread of its own as it comes, in batches:
    each batch is everything that arrived while the one before was being handled (at least
    one item, at most ``most``), in order. When ``source`` ends, the batches end after what it
    yielded; when it raises, the error is raised here after the items it yielded before.

    At most :data:`AHEAD` batches' worth of items wait to be taken: then the thread waits before
    it reads on, so a stream faster than its handling is slowed by the connection's own flow
    control instead of piling up here. The batches end when ``stop`` is set (looked at every
    :data:`POLL` seconds while nothing arrives), without what was read ahead. Once they end or
    the caller closes them, the thread reads no more, even while it waits for room, and closes
    ``source``'s iterator if it can be closed.

    The thread blocks on ``source`` until it yields, ends or fails; it is meant for a source
    that the caller ends by closing what it reads from (a stream).
    """
    reader = _Reader(source, most * AHEAD, stop)
    threading.Thread(target=reader.read, name=name, daemon=True).start()
    try:
        while True:
            taken = reader.take()
            if taken is None:
                return
            item, error, last = taken
            batch: list[T] = []
            while not last:
                batch.append(item)  # type: ignore[arg-type]  # only the last entry carries no item
                if len(batch) >= most:
                    break
                try:
                    item, error, last = reader.handed.get_nowait()
                except queue.Empty:
                    break
            if batch:
                yield batch
            if last:
                if error is not None:
                    raise error
                return
    finally:
        reader.done.set()


class _Reader(Generic[T]):
    """The thread's side of :func:`read_ahead`: what it read, handed over through a queue of
    ``room`` entries, the last one marked (with the source's error, if it failed)."""

    def __init__(self, source: Iterable[T], room: int, stop: threading.Event | None) -> None:
        self.source = source
        self.handed: queue.Queue[tuple[T | None, BaseException | None, bool]] = queue.Queue(maxsize=max(room, 1))
        self.done = threading.Event()  # the caller takes no more
        self.stop = stop

    def over(self) -> bool:
        """Whether the batches ended (or are to end) before the source did."""
        return self.done.is_set() or (self.stop is not None and self.stop.is_set())

    def read(self) -> None:
        """Hand over what the source yields, then its end or its error; if the batches end
        first, stop reading and close the source's iterator."""
        try:
            items = iter(self.source)
            for item in items:
                if not self._hand((item, None, False)):
                    break
            else:
                self._hand((None, None, True))
                return
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            self._hand((None, e, True))
            return
        close = getattr(items, "close", None)
        if callable(close):  # the caller stopped: the stream is let go here, not left open
            try:
                close()
            except Exception:  # a source that fails to close is let go all the same
                log.debug("a read-ahead source failed to close", exc_info=True)

    def _hand(self, entry: tuple[T | None, BaseException | None, bool]) -> bool:
        """Queue ``entry`` once there is room; False if the batches ended meanwhile."""
        while not self.over():
            try:
                self.handed.put(entry, timeout=POLL)
            except queue.Full:
                continue
            return True
        return False

    def take(self) -> tuple[T | None, BaseException | None, bool] | None:
        """The next entry, waiting for one; None once ``stop`` is set."""
        if self.stop is None:
            return self.handed.get()
        while not self.stop.is_set():
            try:
                return self.handed.get(timeout=POLL)
            except queue.Empty:
                continue
        return None
