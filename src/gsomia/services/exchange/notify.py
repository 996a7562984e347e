"""In-process wake-ups for inbox streams: "party P has something new", sent after a commit.

The writer thread calls :meth:`Notifier.publish` once a transaction is durable; each open
stream of that party wakes at once and reads its new items from the store. Streams also
re-read on a short timer; commits of other processes arrive through
:class:`~gsomia.storage.channel.Listener` (PostgreSQL) or
:class:`~gsomia.storage.channel.SqliteWatcher` (an SQLite file) as well.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping


class Subscription:
    """One open stream's wake-up signal. Create with :meth:`Notifier.subscribe`."""

    def __init__(self, notifier: Notifier, party: str, loop: asyncio.AbstractEventLoop) -> None:
        self._notifier = notifier
        self.party = party
        self._loop = loop
        self._event = asyncio.Event()
        self.seen = 0
        """The newest inbox seq this stream has read (set by the stream after each read)."""

    def _wake(self) -> None:
        self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float) -> bool:
        """Wait until woken or ``timeout`` seconds pass; True if woken."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True

    def close(self) -> None:
        """Stop receiving wake-ups."""
        self._notifier._remove(self)


class Notifier:
    """Wakes the open inbox streams of the parties a commit concerned."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, set[Subscription]] = {}

    def subscribe(self, party: str) -> Subscription:
        """Subscribe the calling event loop to ``party``'s wake-ups.

        Raises:
            RuntimeError: if called outside a running event loop.
        """
        sub = Subscription(self, party, asyncio.get_running_loop())
        with self._lock:
            self._subs.setdefault(party, set()).add(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.party)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.party]

    def publish(self, parties: Iterable[str] | Mapping[str, int] | None) -> None:
        """Wake every stream of ``parties`` (every stream if None), thread-safe; call after the
        commit. Given as a mapping party → the newest inbox seq committed for it, a stream
        that has read that far already is not woken (it would read nothing new)."""
        with self._lock:
            if parties is None:
                targets = [sub for subs in self._subs.values() for sub in subs]
            elif isinstance(parties, Mapping):
                targets = [sub for p, seq in parties.items() for sub in self._subs.get(p, ()) if sub.seen < seq]
            else:
                targets = [sub for p in set(parties) for sub in self._subs.get(p, ())]
        for sub in targets:
            try:
                sub._wake()
            except RuntimeError:  # the stream's loop has closed; it is going away
                sub.close()

    def subscribers(self) -> int:
        """How many streams are open (for /healthz and tests)."""
        with self._lock:
            return sum(len(s) for s in self._subs.values())
