"""A worker thread that takes what was queued for it in batches: everything waiting at that
moment, up to a limit, handed over in one call (one exchange round trip for many items)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["BatchWorker"]

T = TypeVar("T")


class BatchWorker(Generic[T]):
    """Queue items; a daemon thread hands each batch of them to ``handle``.

    A batch holds every item queued when the thread comes to it, until their ``weight`` reaches
    ``limit`` (an item is never split). :meth:`stop` lets the items already queued through.
    """

    def __init__(
        self, name: str, handle: Callable[[list[T]], None], *, limit: int, weight: Callable[[T], int] | None = None
    ) -> None:
        self.name = name
        self.handle = handle
        self.limit = limit
        self.weight = weight
        self._queue: queue.Queue[T | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def put(self, item: T) -> None:
        """Queue ``item`` for the next batch."""
        self._queue.put(item)

    def start(self) -> None:
        """Start the worker thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop after the items already queued."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

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
            self.handle(batch)
