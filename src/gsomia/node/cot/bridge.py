"""Sockets and threads of the CoT bridge: listeners (TCP and UDP), the ingest worker that signs
and submits what they hear in batches, and the outputs that emit received tracks.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gsomia.client.reports import ReportDraft
from gsomia.errors import ExchangeUnreachable, InvalidInput
from gsomia.interop.cot import (
    COT_MEDIA_TYPE,
    MAX_EVENT_BYTES,
    CotEndpoint,
    CotEvent,
    CotRule,
    marked_event,
    read_event,
    refusal,
    rule_for,
)
from gsomia.interop.stix import DeliveredMarking
from gsomia.node.batches import BatchWorker
from gsomia.node.taxii.service import ReportSender, SendResult

log = logging.getLogger(__name__)

_TAK_MAGIC = 0xBF


@dataclass(slots=True)
class IngestStats:
    """What the ingest has done since it started."""

    received: int = 0
    unmapped: int = 0
    malformed: int = 0
    sent: int = 0
    refused: int = 0
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
        on_result: Callable[[str, SendResult], None] | None = None,
    ) -> None:
        self.sender = sender
        self.rules = tuple(rules)
        self.max_batch = max_batch
        self.on_result = on_result
        self.stats = IngestStats()
        self._worker: BatchWorker[tuple[CotEvent, CotRule]] = BatchWorker("cot-ingest", self._send, limit=max_batch)

    def offer(self, data: bytes, source: str = "") -> bool:
        """Take one event's bytes; False if it is malformed or no rule covers its type."""
        self.stats.received += 1
        try:
            event = read_event(data)
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
        self._worker.put((event, rule))
        return True

    def start(self) -> None:
        """Start the worker thread."""
        self._worker.start()

    def stop(self) -> None:
        """Stop after the events already queued."""
        self._worker.stop()

    def _send(self, batch: list[tuple[CotEvent, CotRule]]) -> None:
        drafts = []
        for event, rule in batch:
            try:
                created = event.instant()
            except InvalidInput as e:
                self.stats.malformed += 1
                log.info("CoT event %s refused: %s", event.uid, e)
                continue
            digest = hashlib.sha256(b"\0".join([event.uid.encode(), event.time.encode(), event.xml])).hexdigest()
            drafts.append(
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
                )
            )
        if not drafts:
            return
        delay = 0.5
        while True:
            try:
                results = self.sender.send(drafts)
                break
            except ExchangeUnreachable as e:
                self.stats.last_error = str(e)
                log.warning("exchange unreachable, retrying %d CoT reports in %.1f s", len(drafts), delay)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        for draft, result in zip(drafts, results, strict=True):
            if result.ok:
                self.stats.sent += 1
            else:
                self.stats.refused += 1
                log.warning("CoT report %s: %s", draft.id, result.detail)
            if self.on_result is not None:
                self.on_result(draft.id, result)


# --- listeners ---------------------------------------------------------------------------------------


def split_stream(buffer: bytearray) -> list[bytes]:
    """Take every complete event off the front of a TCP stream buffer: XML events end with
    ``</event>``; TAK protocol stream messages are 0xBF, a varint length, the message.

    Raises:
        InvalidInput: the buffer holds more than one event's worth of bytes without an end.
    """
    out: list[bytes] = []
    while buffer:
        if buffer[:1].isspace():
            del buffer[0]
            continue
        if buffer[0] == _TAK_MAGIC:
            length, shift, i = 0, 0, 1
            while i < len(buffer):
                if i > 10:  # a varint is at most 10 bytes; 0x80s would add nothing for ever
                    raise InvalidInput("a TAK protocol message length longer than a varint")
                b = buffer[i]
                length |= (b & 0x7F) << shift
                i += 1
                if length > MAX_EVENT_BYTES:
                    # Also what ends a length that never ends: its bytes only add to it.
                    raise InvalidInput("a TAK protocol message over the size limit")
                if not b & 0x80:
                    break
                shift += 7
            else:
                break  # the length is not all here yet
            if len(buffer) < i + length:
                break
            out.append(bytes(buffer[: i + length]))
            del buffer[: i + length]
            continue
        end = buffer.find(b"</event>")
        if end < 0:
            if len(buffer) > MAX_EVENT_BYTES:
                raise InvalidInput("a CoT event over the size limit")
            break
        chunk = bytes(buffer[: end + len(b"</event>")]).strip()
        del buffer[: end + len(b"</event>")]
        if chunk:
            out.append(chunk)
    return out


class _TCPHandler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        buffer = bytearray()
        source = f"tcp:{self.client_address[0]}"
        while True:
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            try:
                events = split_stream(buffer)
            except InvalidInput as e:
                log.info("CoT stream from %s closed: %s", source, e)
                return
            for event in events:
                self.server.ingest.offer(event, source)


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], ingest: CotIngest) -> None:
        self.ingest = ingest
        super().__init__(address, _TCPHandler)


class _UDPHandler(socketserver.BaseRequestHandler):
    server: _UDPServer

    def handle(self) -> None:
        data = self.request[0]
        raw = bytes(data)
        # Whitespace around an XML event is dropped; a TAK protocol message is binary, and a
        # last byte of 0x0a or 0x20 is part of it.
        event = raw if raw[:1] == bytes([_TAK_MAGIC]) else raw.strip()
        self.server.ingest.offer(event, f"udp:{self.client_address[0]}")


class _UDPServer(socketserver.UDPServer):
    allow_reuse_address = True
    max_packet_size = 65535

    def __init__(self, address: tuple[str, int], ingest: CotIngest) -> None:
        self.ingest = ingest
        super().__init__(address, _UDPHandler)


@dataclass(frozen=True, slots=True)
class Listen:
    """Where to listen for CoT: ``tcp`` or ``udp``, host and port."""

    proto: str
    host: str
    port: int

    def __post_init__(self) -> None:
        if self.proto not in ("tcp", "udp"):
            raise InvalidInput(f"CoT listener: proto is tcp or udp, not {self.proto!r}")
        if not 0 <= self.port < 65536:
            raise InvalidInput(f"CoT listener: port {self.port} is out of range")


class CotListeners:
    """The TCP and UDP servers, each in a daemon thread."""

    def __init__(self, listens: Sequence[Listen], ingest: CotIngest) -> None:
        self.listens = tuple(listens)
        self.ingest = ingest
        self.servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> list[tuple[str, str, int]]:
        """Bind and serve; the bound ``(proto, host, port)`` of each (port 0 picks one)."""
        bound = []
        for listen in self.listens:
            server: socketserver.BaseServer
            if listen.proto == "tcp":
                server = _TCPServer((listen.host, listen.port), self.ingest)
            else:
                server = _UDPServer((listen.host, listen.port), self.ingest)
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


# --- outputs -----------------------------------------------------------------------------------------


class CotOutput:
    """Received tracks out to the party's TAK endpoints, only where the marking allows."""

    def __init__(self, endpoints: Sequence[CotEndpoint], ladder: Callable[[], dict[str, int]]) -> None:
        self.endpoints = tuple(endpoints)
        self.ladder = ladder
        self._sockets: dict[str, socket.socket] = {}
        self._lock = threading.Lock()
        self.sent = 0
        self.withheld: list[tuple[str, str, str]] = []

    def emit(self, *, delivered: DeliveredMarking, payload: bytes, content_type: str, report_id: str) -> list[str]:
        """Send the marked event to every endpoint the marking allows; the names of those it
        went to. A refusal is logged with its reason and never sent."""
        event = marked_event(payload, content_type, delivered, report_id=report_id)
        if event is None:
            return []
        ladder = self.ladder()
        went = []
        for endpoint in self.endpoints:
            why = refusal(endpoint, delivered, ladder)
            if why is not None:
                log.info("CoT of delivery %s withheld from %s: %s", delivered.delivery, endpoint.name, why)
                with self._lock:
                    self.withheld.append((delivered.delivery, endpoint.name, why))
                    del self.withheld[:-1000]
                continue
            if self._send(endpoint, event):
                went.append(endpoint.name)
        return went

    def _send(self, endpoint: CotEndpoint, event: bytes) -> bool:
        scheme, host, port = endpoint.transport
        with self._lock:
            try:
                if scheme == "udp":
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                        s.sendto(event, (host, port))
                else:
                    sock = self._sockets.get(endpoint.name)
                    for attempt in range(2):
                        if sock is None:
                            sock = socket.create_connection((host, port), timeout=5)
                            self._sockets[endpoint.name] = sock
                        try:
                            sock.sendall(event)
                            break
                        except OSError:
                            sock.close()
                            self._sockets.pop(endpoint.name, None)
                            sock = None
                            if attempt:
                                raise
            except OSError as e:
                log.warning("CoT endpoint %s unreachable: %s", endpoint.name, e)
                return False
            self.sent += 1
            return True

    def close(self) -> None:
        """Close the TCP connections."""
        with self._lock:
            for sock in self._sockets.values():
                sock.close()
            self._sockets.clear()


def describe(stats: IngestStats) -> dict[str, Any]:
    """The ingest's counters, for the node's status."""
    return {
        "received": stats.received,
        "unmapped": stats.unmapped,
        "malformed": stats.malformed,
        "sent": stats.sent,
        "refused": stats.refused,
        "last_error": stats.last_error,
    }
