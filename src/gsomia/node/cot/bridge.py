"""Sockets and threads of the CoT bridge: listeners (TCP and UDP), the ingest worker that signs
and submits what they hear in batches, and the outputs that emit received tracks.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gsomia.client.reports import ReportDraft
from gsomia.errors import ExchangeUnreachable, InvalidInput
from gsomia.interop.cot import (
    COT_MEDIA_TYPE,
    STALE_TOLERANCE,
    CotEvent,
    CotRule,
    is_stale,
    read_event,
    rule_for,
)
from gsomia.node.batches import BatchWorker
from gsomia.node.cot.counting import Dropped
from gsomia.node.cot.framing import TAK_MAGIC, CotStream, split_stream
from gsomia.node.cot.output import CotOutput
from gsomia.node.taxii.service import ReportSender, SendResult

__all__ = [
    "EVENT_SECONDS",
    "IDLE_SECONDS",
    "MAX_BACKLOG",
    "MAX_BACKLOG_BYTES",
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_ADDRESS",
    "CotIngest",
    "CotListeners",
    "CotOutput",
    "IngestStats",
    "Listen",
    "describe",
    "split_stream",
]

log = logging.getLogger(__name__)
_TOLERANCE = f"{STALE_TOLERANCE.total_seconds():g} s"

MAX_BACKLOG = 10_000
"""CoT events that may wait for the exchange (queued, or in a batch being sent); past it, new
events are dropped."""
MAX_BACKLOG_BYTES = 64 << 20
"""The most the events waiting for the exchange may weigh (their XML); past it, new events are
dropped."""
IDLE_SECONDS = 900.0
"""A CoT TCP connection that completes no event for this long (from the last complete event, or
from its opening) is closed: bytes that complete none, whitespace between events, do not keep it
open. Fixed sites and slow sensors report every few minutes over one long-lived connection."""
EVENT_SECONDS = 60.0
"""An event under way on a CoT TCP connection must be complete this long after its first byte;
otherwise the connection is closed (a peer sending an event that grows but never ends cannot
hold it)."""
MAX_CONNECTIONS = 256
"""CoT TCP connections served at once per listener; more are closed as they are accepted."""
MAX_CONNECTIONS_PER_ADDRESS = 32
"""CoT TCP connections served at once per listener from one address: one peer cannot hold
every connection and shut the others out."""
LISTEN_BACKLOG = 128


@dataclass(slots=True)
class IngestStats:
    """What the ingest has done since it started."""

    received: int = 0
    unmapped: int = 0
    malformed: int = 0
    sent: int = 0
    refused: int = 0
    dropped: int = 0
    stale: int = 0
    idle_closed: int = 0
    connections_refused: int = 0
    last_error: str | None = None


class CotIngest:
    """CoT events in, reports out: each event under its rule, signed in the node and submitted
    with every other event waiting at that moment (one exchange round trip per batch)."""

    def __init__(
        self,
        *,
        sender: ReportSender,
        rules: Sequence[CotRule],
        max_batch: int = 1000,
        max_backlog: int = MAX_BACKLOG,
        max_backlog_bytes: int = MAX_BACKLOG_BYTES,
        on_result: Callable[[str, SendResult], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sender = sender
        self.clock = clock
        self.rules = tuple(rules)
        self.max_batch = max_batch
        self.on_result = on_result
        self.stats = IngestStats()
        self.max_backlog_bytes = max_backlog_bytes
        self._held_bytes = 0
        self._bytes_lock = threading.Lock()
        self._dropped = Dropped(
            log, f"CoT events dropped: {max_backlog} events or {max_backlog_bytes} bytes already wait for the exchange"
        )
        self._stale = Dropped(
            log, f"CoT events not sent: already stale on arrival (past their stale time by more than {_TOLERANCE})"
        )
        self._late = Dropped(
            log,
            f"CoT events not sent: went stale waiting for the exchange (past their stale time by more than {_TOLERANCE})",
        )
        self._stopping = threading.Event()
        self._worker: BatchWorker[tuple[CotEvent, CotRule]] = BatchWorker(
            "cot-ingest", self._send, limit=max_batch, backlog=max_backlog
        )

    def offer(self, data: bytes, source: str = "") -> bool:
        """Take one event's bytes; False if it is malformed, no rule covers its type, it is
        already stale, or the backlog is full."""
        self.stats.received += 1
        now = self.clock()
        try:
            event = read_event(data, now=now)
        except InvalidInput as e:
            self.stats.malformed += 1
            log.info("CoT from %s refused: %s", source or "?", e)
            return False
        rule = rule_for(self.rules, event.type)
        if rule is None:
            # Nothing is sent unmarked (docs/design.md §3 rule 7): an unmapped type stays here.
            self.stats.unmapped += 1
            log.info("CoT type %s from %s matches no rule; not sent", event.type, source or "?")
            return False
        if is_stale(event.expires(), now):
            # A track past its validity would reach the recipients' TAK clients as a current one.
            self.stats.stale += 1
            self._stale.add(f"the last: {event.uid!r} from {source or '?'}, stale {event.stale}")
            return False
        size = len(event.xml)
        with self._bytes_lock:
            room = self._held_bytes + size <= self.max_backlog_bytes
            if room:
                self._held_bytes += size
        if not room or not self._worker.put((event, rule)):
            # A track is perishable: while the exchange cannot keep up (or be reached), the
            # newest events past the backlog are dropped rather than memory filled.
            if room:
                self._release(size)
            self.stats.dropped += 1
            self._dropped.add(self.stats.last_error or "the exchange is slow")
            return False
        return True

    def _release(self, size: int) -> None:
        with self._bytes_lock:
            self._held_bytes -= size

    def start(self) -> None:
        """Start the worker thread."""
        self._stopping.clear()
        self._worker.start()

    def stop(self) -> None:
        """Stop after the events already queued (while the exchange cannot be reached, those
        are given up: the node is stopping)."""
        self._stopping.set()
        self._worker.stop()

    def _send(self, batch: list[tuple[CotEvent, CotRule]]) -> None:
        try:
            self._send_batch(batch)
        finally:
            self._release(sum(len(event.xml) for event, _ in batch))

    def _send_batch(self, batch: list[tuple[CotEvent, CotRule]]) -> None:
        drafts: list[tuple[ReportDraft, datetime]] = []
        for event, rule in batch:
            try:
                created, expires = event.instant(), event.expires()
            except InvalidInput as e:
                self.stats.malformed += 1
                log.info("CoT event %s refused: %s", event.uid, e)
                continue
            digest = hashlib.sha256(b"\0".join([event.uid.encode(), event.time.encode(), event.xml])).hexdigest()
            drafts.append(
                (
                    ReportDraft(
                        id=f"cot-{digest[:40]}",
                        topic=rule.topic,
                        level=rule.level,
                        payload=event.xml,
                        created=created,
                        recipients=rule.recipients,
                        rel_to=rule.rel_to,
                        noforn=rule.noforn,
                        orcon=rule.orcon,
                        content_type=COT_MEDIA_TYPE,
                    ),
                    expires,
                )
            )
        delay = 0.5
        while True:
            # An event waits here (behind a slow exchange, or one that cannot be reached) and may
            # go stale meanwhile: checked again before every attempt, as it was on arrival.
            drafts = self._fresh(drafts)
            if not drafts:
                return
            try:
                results = self.sender.send([draft for draft, _ in drafts])
                break
            except ExchangeUnreachable as e:
                self.stats.last_error = str(e)
                if self._stopping.is_set():
                    log.warning("exchange unreachable, %d CoT reports not sent: the node is stopping", len(drafts))
                    return
                log.warning("exchange unreachable, retrying %d CoT reports in %.1f s", len(drafts), delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 30.0)
        for (draft, _), result in zip(drafts, results, strict=True):
            if result.ok:
                self.stats.sent += 1
            else:
                self.stats.refused += 1
                log.warning("CoT report %s: %s", draft.id, result.detail)
            if self.on_result is not None:
                self.on_result(draft.id, result)

    def _fresh(self, drafts: list[tuple[ReportDraft, datetime]]) -> list[tuple[ReportDraft, datetime]]:
        """The drafts whose event is still valid now; the others are counted stale."""
        now = self.clock()
        fresh = [(draft, expires) for draft, expires in drafts if not is_stale(expires, now)]
        for draft, expires in drafts:
            if is_stale(expires, now):
                self.stats.stale += 1
                self._late.add(f"the last: {draft.id}, stale {expires.isoformat()}")
        return fresh


# --- listeners ---------------------------------------------------------------------------------------


class _TCPHandler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        stream = CotStream()
        peer = str(self.client_address[0])
        source = f"tcp:{peer}"
        server = self.server
        # Two limits: from the last complete event (bytes that complete none are no activity), and
        # from the first byte of an event under way (one that grows but never ends).
        last = time.monotonic()
        began: float | None = None
        while True:
            deadline = last + server.idle if began is None else began + server.event_seconds
            left = deadline - time.monotonic()
            if left <= 0:
                server.timed_out(peer, under_way=began is not None)
                return
            self.request.settimeout(left)
            try:
                data = self.request.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            try:
                events = stream.feed(data)
            except InvalidInput as e:
                self.server.ingest.stats.malformed += 1
                log.info("CoT stream from %s closed: %s", source, e)
                return
            now = time.monotonic()
            if events:
                last = now
            # What waits in the stream is an event begun (whitespace between events is dropped):
            # begun in this read if the reads before it completed an event or held none.
            began = (now if began is None or events else began) if stream.pending else None
            for event in events:
                self.server.ingest.offer(event, source)


class _TCPServer(socketserver.ThreadingTCPServer):
    """One thread per connection, at most ``most`` at once and ``per_address`` from one address
    (those past either are closed as they are accepted, and counted), each closed after ``idle``
    seconds without a complete event, or ``event_seconds`` after the first byte of an event that
    does not complete."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        ingest: CotIngest,
        *,
        idle: float,
        event_seconds: float,
        most: int,
        per_address: int,
    ) -> None:
        self.ingest = ingest
        self.idle = idle
        self.event_seconds = event_seconds
        self.most = most
        self.per_address = per_address
        self.connections = 0
        self._from: dict[str, int] = {}  # connections open, by the peer's address
        self._count = threading.Lock()
        self.refused = Dropped(log, f"CoT TCP connections refused: {most} already open")
        self.crowded = Dropped(log, f"CoT TCP connections refused: {per_address} already open from that address")
        self.quiet = Dropped(log, f"CoT TCP connections closed: no complete event for {idle:g} s")
        super().__init__(address, _TCPHandler)

    def timed_out(self, peer: str, *, under_way: bool) -> None:
        """Count and log a connection closed for its silence: no event for ``idle`` seconds, or
        one under way not complete ``event_seconds`` after its first byte (malformed: it is
        lost)."""
        if under_way:
            self.ingest.stats.malformed += 1
            log.info(
                "CoT stream from tcp:%s closed: an event not complete %g s after its first byte",
                peer,
                self.event_seconds,
            )
        else:
            self.ingest.stats.idle_closed += 1
            self.quiet.add(f"the last from {peer}")

    def process_request(self, request: Any, client_address: Any) -> None:
        peer = str(client_address[0])
        with self._count:
            past = self.refused if self.connections >= self.most else None
            if past is None and self._from.get(peer, 0) >= self.per_address:
                past = self.crowded
            if past is None:
                self.connections += 1
                self._from[peer] = self._from.get(peer, 0) + 1
        if past is not None:
            self.ingest.stats.connections_refused += 1
            past.add(f"the last from {peer}")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._closed(peer)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._closed(str(client_address[0]))

    def _closed(self, peer: str) -> None:
        with self._count:
            self.connections -= 1
            left = self._from.get(peer, 1) - 1
            if left > 0:
                self._from[peer] = left
            else:
                self._from.pop(peer, None)


class _UDPHandler(socketserver.BaseRequestHandler):
    server: _UDPServer

    def handle(self) -> None:
        data = self.request[0]
        raw = bytes(data)
        # Whitespace around an XML event is dropped; a TAK protocol message is binary, and a
        # last byte of 0x0a or 0x20 is part of it.
        event = raw if raw[:1] == bytes([TAK_MAGIC]) else raw.strip()
        self.server.ingest.offer(event, f"udp:{self.client_address[0]}")


class _UDPServer(socketserver.UDPServer):
    """Datagrams to ``address``; where its host is a multicast group (TAK's SA group,
    239.2.3.1), bound to the group and a member of it, on the interface whose address
    ``interface`` gives or, without one, on the interface the system routes the group through."""

    allow_reuse_address = True  # a TAK client on the same host may listen to the group too
    max_packet_size = 65535

    def __init__(self, address: tuple[str, int], ingest: CotIngest, *, interface: str | None = None) -> None:
        self.ingest = ingest
        self.interface = interface
        super().__init__(address, _UDPHandler)

    def server_bind(self) -> None:
        super().server_bind()
        group = _multicast_group(str(self.server_address[0]))
        if group is not None:
            membership = group.packed + socket.inet_aton(self.interface or "0.0.0.0")  # noqa: S104 - the routed one
            self.socket.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)


def _multicast_group(host: str) -> ipaddress.IPv4Address | None:
    """``host`` as an IPv4 multicast group, or None when it is none (a name, or a unicast
    address)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return address if isinstance(address, ipaddress.IPv4Address) and address.is_multicast else None


@dataclass(frozen=True, slots=True)
class Listen:
    """Where to listen for CoT: ``tcp`` or ``udp``, host and port. A UDP listener whose host is
    an IPv4 multicast group joins it, on the interface whose address ``interface`` gives (or,
    without one, on the one the system routes the group through)."""

    proto: str
    host: str
    port: int
    interface: str | None = None

    def __post_init__(self) -> None:
        if self.proto not in ("tcp", "udp"):
            raise InvalidInput(f"CoT listener: proto is tcp or udp, not {self.proto!r}")
        if not 0 <= self.port < 65536:
            raise InvalidInput(f"CoT listener: port {self.port} is out of range")
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(self.host)
        except ValueError:
            address = None  # a name
        if isinstance(address, ipaddress.IPv6Address) and address.is_multicast:
            raise InvalidInput(f"CoT listener: {self.host} is an IPv6 multicast group; only IPv4 groups are joined")
        group = address is not None and address.is_multicast
        if group and self.proto != "udp":
            raise InvalidInput(f"CoT listener: {self.host} is a multicast group: listen to it over udp, not tcp")
        if self.interface is not None:
            _check_interface(self.host, self.interface, group=group)


def _check_interface(host: str, interface: str, *, group: bool) -> None:
    """Refuse an ``interface`` that cannot name the interface a listener on ``host`` joins its
    group on: one is given only for a multicast group, as an IPv4 unicast address.

    Raises:
        InvalidInput: ``interface`` for a host that is no group, or not such an address.
    """
    if not group:
        raise InvalidInput(f"CoT listener: interface is for a multicast group, and {host} is none")
    try:
        address = ipaddress.ip_address(interface)
    except ValueError:
        address = None
    if not isinstance(address, ipaddress.IPv4Address) or address.is_multicast or address.is_unspecified:
        raise InvalidInput(
            f"CoT listener: interface is the IPv4 address of one of this host's interfaces, not {interface!r}"
        )


class CotListeners:
    """The TCP and UDP servers, each in a daemon thread; a TCP connection that completes no
    event for ``idle_seconds`` is closed, as is one whose event under way is not complete
    ``event_seconds`` after its first byte, and at most ``max_connections`` are served at once,
    at most ``max_per_address`` of them from one address."""

    def __init__(
        self,
        listens: Sequence[Listen],
        ingest: CotIngest,
        *,
        idle_seconds: float = IDLE_SECONDS,
        event_seconds: float = EVENT_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
        max_per_address: int = MAX_CONNECTIONS_PER_ADDRESS,
    ) -> None:
        self.listens = tuple(listens)
        self.ingest = ingest
        self.idle_seconds = idle_seconds
        self.event_seconds = event_seconds
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> list[tuple[str, str, int]]:
        """Bind and serve; the bound ``(proto, host, port)`` of each (port 0 picks one)."""
        bound = []
        for listen in self.listens:
            server: socketserver.BaseServer
            if listen.proto == "tcp":
                server = _TCPServer(
                    (listen.host, listen.port),
                    self.ingest,
                    idle=self.idle_seconds,
                    event_seconds=self.event_seconds,
                    most=self.max_connections,
                    per_address=self.max_per_address,
                )
            else:
                server = _UDPServer((listen.host, listen.port), self.ingest, interface=listen.interface)
            host, port = server.server_address[:2]
            bound.append((listen.proto, str(host), int(port)))
            thread = threading.Thread(target=server.serve_forever, name=f"cot-{listen.proto}", daemon=True)
            thread.start()
            self.servers.append(server)
            self._threads.append(thread)
        return bound

    def stop(self) -> None:
        """Stop every server."""
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers.clear()
        self._threads.clear()


def describe(stats: IngestStats) -> dict[str, Any]:
    """The ingest's counters, for the node's status."""
    return {
        "received": stats.received,
        "unmapped": stats.unmapped,
        "malformed": stats.malformed,
        "sent": stats.sent,
        "refused": stats.refused,
        "dropped": stats.dropped,
        "stale": stats.stale,
        "idle_closed": stats.idle_closed,
        "connections_refused": stats.connections_refused,
        "last_error": stats.last_error,
    }
