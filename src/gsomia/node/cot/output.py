"""Received tracks out to the party's TAK endpoints, each endpoint sent to by a thread of its
own from a bounded queue: an endpoint that is slow, unreachable or silently dropping
connections holds back neither the others nor the node's delivery feed (and with it the TAXII
inbox). A track is perishable: when an endpoint's queue is full, new events for it are dropped,
counted and logged, never held for ever; and an event whose ``stale`` time has passed (by more
than the tolerance for clocks) when it is queued, or when its turn to be sent comes, is not
sent: counted and logged as stale. A report whose payload is no track the node would take in
itself (:func:`gsomia.interop.cot.mark_event`) is sent to no endpoint: counted and logged."""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from gsomia.errors import InvalidInput
from gsomia.interop.cot import STALE_TOLERANCE, CotEndpoint, event_stale, is_stale, mark_event, refusal
from gsomia.interop.stix import DeliveredMarking
from gsomia.node.cot.counting import Dropped

__all__ = ["CONNECT_TIMEOUT", "OUTPUT_QUEUE", "SEND_TIMEOUT", "CotOutput"]

log = logging.getLogger(__name__)
_TOLERANCE = f"{STALE_TOLERANCE.total_seconds():g} s"

OUTPUT_QUEUE = 1000
"""Events that may wait for one endpoint; past it, new ones for that endpoint are dropped."""
CONNECT_TIMEOUT = 5.0
SEND_TIMEOUT = 10.0
"""Seconds a TCP endpoint may take to accept an event before its connection is dropped."""
BACKOFF_FIRST = 0.5
BACKOFF_MOST = 30.0
"""After a failed send, the endpoint's thread waits this long (doubling from the first, up to
the most) before it connects again; a success resets it."""


class _Endpoint:
    """One endpoint's queue, thread and connection."""

    def __init__(self, endpoint: CotEndpoint, bound: int, clock: Callable[[], datetime]) -> None:
        self.endpoint = endpoint
        self.clock = clock
        self.queue: queue.Queue[tuple[bytes, datetime] | None] = queue.Queue(maxsize=bound)
        self.sent = 0
        self.failed = 0
        self.dropped = Dropped(log, f"CoT endpoint {endpoint.name}: events dropped, its queue of {bound} is full")
        self.stale = Dropped(
            log,
            f"CoT endpoint {endpoint.name}: events not sent, stale (past their stale time by more than {_TOLERANCE})",
        )
        self._sock: socket.socket | None = None
        self._delay = 0.0
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cot-out-{endpoint.name}", daemon=True)

    def start(self) -> None:
        if not self._thread.is_alive() and not self._closing.is_set():
            self._thread.start()

    def offer(self, event: bytes, stale: datetime) -> bool:
        """Queue an event valid until ``stale``; False (not sent, counted) if it is stale already
        or the queue is full."""
        if is_stale(stale, self.clock()):
            self.stale.add()
            return False
        try:
            self.queue.put_nowait((event, stale))
        except queue.Full:
            self.dropped.add()
            return False
        return True

    def _run(self) -> None:
        while not self._closing.is_set():
            item = self.queue.get()
            if item is None or self._closing.is_set():
                break
            event, stale = item
            if is_stale(stale, self.clock()):
                # It waited too long (the endpoint was down or slow): a TAK client would show
                # it as a current track.
                self.stale.add()
                continue
            if self._send(event):
                self.sent += 1
                self._delay = 0.0
            else:
                self.failed += 1
                self._delay = min(max(self._delay * 2, BACKOFF_FIRST), BACKOFF_MOST)
                self._pause(self._delay)
        self._disconnect()

    def _pause(self, seconds: float) -> None:
        """Wait before connecting again (cut short when the output closes); events that come
        meanwhile wait in the queue, up to its bound."""
        self._closing.wait(seconds)

    def _send(self, event: bytes) -> bool:
        scheme, host, port = self.endpoint.transport
        try:
            if scheme == "udp":
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.sendto(event, (host, port))
                return True
            if self._sock is None:
                self._sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
                # Each event is written whole and goes out at once: without it, an event written
                # while the one before is not yet acknowledged waits for that acknowledgement
                # (Nagle), which the receiver may delay by tens of milliseconds.
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._sock.settimeout(SEND_TIMEOUT)
            self._sock.sendall(event)
        except OSError as e:
            self._disconnect()
            log.warning("CoT endpoint %s unreachable (next attempt in %.1f s): %s", self.endpoint.name, self._next(), e)
            return False
        return True

    def _next(self) -> float:
        return min(max(self._delay * 2, BACKOFF_FIRST), BACKOFF_MOST)

    def _disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self, wait: float) -> None:
        self._closing.set()
        # Wakes a thread waiting for an event; with the queue full, the thread is not waiting
        # and sees ``_closing`` after the event it holds.
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(None)
        if self._thread.is_alive():
            self._thread.join(timeout=wait)


class CotOutput:
    """Received tracks out to the party's TAK endpoints, only where the marking allows.

    :meth:`emit` only queues: each endpoint is sent to by its own thread, with a queue of at
    most ``queue_size`` events (past it, new events for that endpoint are dropped, counted and
    logged) and a growing pause before connecting again after a failure.
    """

    def __init__(
        self,
        endpoints: Sequence[CotEndpoint],
        ladder: Callable[[], dict[str, int]],
        *,
        queue_size: int = OUTPUT_QUEUE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.endpoints = tuple(endpoints)
        self.ladder = ladder
        self.clock = clock
        self._not_tracks = Dropped(log, "CoT of received reports not sent on: not a track the node would take in")
        self._senders = [_Endpoint(e, queue_size, clock) for e in self.endpoints]
        self._lock = threading.Lock()
        self.withheld: list[tuple[str, str, str]] = []
        self._withheld_total = 0

    @property
    def sent(self) -> int:
        """Events sent, over every endpoint."""
        return sum(s.sent for s in self._senders)

    @property
    def dropped(self) -> int:
        """Events dropped because an endpoint's queue was full."""
        return sum(s.dropped.total for s in self._senders)

    @property
    def failed(self) -> int:
        """Events whose send failed (the endpoint unreachable or too slow)."""
        return sum(s.failed for s in self._senders)

    @property
    def stale(self) -> int:
        """Events not sent because they were stale when queued or when their turn came."""
        return sum(s.stale.total for s in self._senders)

    @property
    def refused(self) -> int:
        """Received reports sent to no endpoint: their payload is no track the node would take
        in (malformed, out of range, from the future, or of a type that is no track)."""
        return self._not_tracks.total

    @property
    def withheld_total(self) -> int:
        """Events not sent to an endpoint because the marking does not allow it (one per
        endpoint refused: the release rules at work, not a fault)."""
        with self._lock:
            return self._withheld_total

    def counters(self) -> dict[str, Any]:
        """The output's counters, for the node's status."""
        return {
            "sent": self.sent,
            "failed": self.failed,
            "dropped": self.dropped,
            "stale": self.stale,
            "withheld": self.withheld_total,
            "refused": self.refused,
        }

    def start(self) -> None:
        """Start the endpoints' threads (done by the first :meth:`emit` if not before)."""
        for sender in self._senders:
            sender.start()

    def emit(
        self,
        *,
        delivered: DeliveredMarking,
        payload: bytes,
        content_type: str,
        report_id: str,
        created: datetime | None = None,
    ) -> list[str]:
        """Queue the marked event for every endpoint the marking allows; the names of those
        that took it. A refusal is logged with its reason and never sent. The event is valid
        until its originator's ``stale`` (a JSON track: until two minutes after ``created``, its
        report's creation); a stale one is not sent (counted). A payload that is no track the
        node would take in itself is sent nowhere (counted, logged at most once a minute)."""
        try:
            event = mark_event(payload, content_type, delivered, report_id=report_id, created=created, now=self.clock())
        except InvalidInput as e:
            self._not_tracks.add(f"the last: delivery {delivered.delivery}, report {report_id}: {e}")
            return []
        try:
            stale = event_stale(event)
        except InvalidInput:  # marked_event gives an event with instants: not expected
            return []
        self.start()
        ladder = self.ladder()
        went = []
        for sender in self._senders:
            endpoint = sender.endpoint
            why = refusal(endpoint, delivered, ladder)
            if why is not None:
                log.info("CoT of delivery %s withheld from %s: %s", delivered.delivery, endpoint.name, why)
                with self._lock:
                    self._withheld_total += 1
                    self.withheld.append((delivered.delivery, endpoint.name, why))
                    del self.withheld[:-1000]
                continue
            if sender.offer(event, stale):
                went.append(endpoint.name)
        return went

    def close(self, wait: float = 2.0) -> None:
        """Stop the threads and close their connections (events still queued are dropped: by
        the next start they would be stale)."""
        for sender in self._senders:
            sender.close(wait)
