"""The CoT bridge under hostile or failing peers: text inside an event never ends it, a TCP
listener bounds its connections and closes silent ones, the ingest's backlog is bounded while
the exchange cannot keep up, and one unreachable TAK endpoint holds back no other."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from gsomia.client.reports import ReportDraft
from gsomia.errors import ExchangeUnreachable, InvalidInput
from gsomia.interop.cot import CotEndpoint, CotRule, parse_cot
from gsomia.interop.stix import DeliveredMarking, NationalMarking
from gsomia.node.cot.bridge import (
    EVENT_SECONDS,
    IDLE_SECONDS,
    MAX_CONNECTIONS_PER_ADDRESS,
    CotIngest,
    CotListeners,
    CotOutput,
    Listen,
    describe,
    split_stream,
)
from gsomia.node.taxii.service import SendResult

RULES = [CotRule(type_prefix="a-h-A-M", topic="dprk.missile.launch", level="極秘")]
LADDER = {"군사I급비밀": 1, "군사II급비밀": 2, "군사III급비밀": 3}


NOW = datetime.now(UTC).replace(microsecond=0)
"""The events' time: they stay valid an hour from it (a stale one is not sent)."""


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def event(
    uid: str = "t-1", kind: str = "a-h-A-M-B", detail: str = "", how: str = "m-g", stale: datetime | None = None
) -> bytes:
    return (
        f'<event version="2.0" uid="{uid}" type="{kind}" how="{how}" time="{stamp(NOW)}" '
        f'start="{stamp(NOW)}" stale="{stamp(stale or NOW + timedelta(hours=1))}">'
        f'<point lat="39.0" lon="125.7" hae="950" ce="50" le="50"/><detail>{detail}</detail></event>'
    ).encode()


def until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or the deadline passes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class Recorder:
    """A report sender that records what it is given (and may hold it at a gate)."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.drafts: list[ReportDraft] = []
        self.gate = gate
        self.holding = threading.Event()

    def send(self, drafts: Sequence[ReportDraft]) -> list[SendResult]:
        if self.gate is not None:
            self.holding.set()
            assert self.gate.wait(10)
        self.drafts += drafts
        return [SendResult(True, "delivered: KOR") for _ in drafts]


# --- framing: text inside an event is text --------------------------------------------------------------

INJECTED = event(uid="INJECTED", kind="a-h-A-M-B").decode()
SMUGGLED = [
    event(uid="real", kind="a-f-G", detail=f"<remarks><![CDATA[chat: </event>{INJECTED}]]></remarks>"),
    event(uid="real", kind="a-f-G", detail=f"<!-- </event>{INJECTED} -->"),
    event(uid="real", kind="a-f-G", detail=f"<?note </event>{INJECTED}?>"),
    event(uid="real", kind="a-f-G", how="m-g", detail="").replace(b'how="m-g"', b'how="&lt;/event&gt;x"'),
]


@pytest.mark.parametrize("outer", SMUGGLED)
def test_an_event_written_as_text_inside_another_is_not_split_off(outer: bytes) -> None:
    assert parse_cot(outer).uid == "real"  # one well-formed event
    buffer = bytearray(outer + b"\n" + event(uid="next"))
    assert split_stream(buffer) == [outer, event(uid="next")] and not buffer


@pytest.mark.parametrize("outer", SMUGGLED[:3])
def test_a_smuggled_event_arriving_byte_by_byte_stays_inside_its_event(outer: bytes) -> None:
    from gsomia.node.cot.framing import CotStream

    stream = CotStream()
    got = [e for i in range(len(outer)) for e in stream.feed(outer[i : i + 1])]
    assert got == [outer] and not stream.pending


def test_a_smuggled_event_over_a_tcp_listener_is_no_report() -> None:
    sender = Recorder()
    ingest = CotIngest(sender=sender, rules=RULES)
    ingest.start()
    listeners = CotListeners([Listen("tcp", "127.0.0.1", 0)], ingest)
    ((_, host, port),) = listeners.start()
    try:
        with socket.create_connection((host, port)) as s:
            s.sendall(SMUGGLED[0])
        assert until(lambda: ingest.stats.unmapped == 1)
    finally:
        listeners.stop()
        ingest.stop()
    assert sender.drafts == [] and ingest.stats.received == 1  # the outer event's type has no rule


@pytest.mark.parametrize(
    "stream",
    [
        b"</event>" + event(),
        b"<event><a></event>",
        b'<?xml version="1.0"?><!DOCTYPE event [<!ENTITY x "y">]><event/>',
        b"garbage " + event(),
    ],
)
def test_a_stream_that_is_not_well_formed_is_refused(stream: bytes) -> None:
    with pytest.raises(InvalidInput):
        split_stream(bytearray(stream))


def test_a_prolog_and_a_self_closing_event_are_whole_events() -> None:
    prolog = b'<?xml version="1.0" encoding="UTF-8"?>\n<!-- from the sensor -->' + event()
    closed = b'<event uid="x" how="a>b"/>'
    buffer = bytearray(prolog + closed + b"  " + prolog[:30])
    assert split_stream(buffer) == [prolog, closed] and buffer == prolog[:30]


# --- the TCP listener: idle connections closed, connections capped ----------------------------------------


def _closed_by_peer(s: socket.socket) -> bool:
    s.settimeout(10)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_silent_tcp_connection_is_closed_after_the_idle_timeout_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ingest = CotIngest(sender=Recorder(), rules=RULES)
    listeners = CotListeners([Listen("tcp", "127.0.0.1", 0)], ingest, idle_seconds=0.2, event_seconds=30)
    ((_, host, port),) = listeners.start()
    try:
        for _ in range(2):
            with socket.create_connection((host, port)) as s:
                s.sendall(event())  # one event, then silence
                assert _closed_by_peer(s)
        assert until(lambda: ingest.stats.idle_closed == 2)
    finally:
        listeners.stop()
    assert ingest.stats.received == 2 and ingest.stats.malformed == 0
    assert describe(ingest.stats)["idle_closed"] == 2
    # a warning, at most once a minute: the second close is counted, not logged
    warnings = [r for r in caplog.records if "no complete event for 0.2 s" in r.getMessage()]
    assert [r.levelno for r in warnings] == [logging.WARNING]


def test_an_event_not_complete_in_time_closes_its_connection_long_before_the_idle_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    ingest = CotIngest(sender=Recorder(), rules=RULES)
    listeners = CotListeners([Listen("tcp", "127.0.0.1", 0)], ingest, idle_seconds=600, event_seconds=0.2)
    ((_, host, port),) = listeners.start()
    try:
        with socket.create_connection((host, port)) as s:
            s.sendall(event(uid="whole") + b"\n<event uid='x' " + b"a" * 1000)  # a partial event, then silence
            assert _closed_by_peer(s)
        assert until(lambda: ingest.stats.malformed == 1)
    finally:
        listeners.stop()
    assert ingest.stats.received == 1 and ingest.stats.idle_closed == 0
    assert "an event not complete 0.2 s after its first byte" in caplog.text


def test_a_feed_quiet_between_events_for_minutes_keeps_its_connection() -> None:
    # A fixed site reports every few minutes over one connection: a quiet spell between events
    # longer than an event may take to arrive closes nothing, and no event is lost.
    ingest = CotIngest(sender=Recorder(), rules=RULES)
    listeners = CotListeners([Listen("tcp", "127.0.0.1", 0)], ingest, idle_seconds=600, event_seconds=0.1)
    ((_, host, port),) = listeners.start()
    try:
        with socket.create_connection((host, port)) as s:
            for i in range(3):
                s.sendall(event(uid=f"t-{i}") + b"\n")

                def arrived(n: int = i + 1) -> bool:
                    return ingest.stats.received == n

                assert until(arrived)
                time.sleep(0.4)  # four times the time an event may take
            s.setblocking(False)
            with pytest.raises(BlockingIOError):  # still open, nothing to read
                s.recv(1)
    finally:
        listeners.stop()
    assert ingest.stats.idle_closed == 0 and ingest.stats.malformed == 0


def test_the_default_limits_keep_a_slow_sensors_connection_and_bound_an_event() -> None:
    assert IDLE_SECONDS == 900.0 and EVENT_SECONDS == 60.0


def _closed_within(s: socket.socket, seconds: float, trickle: bytes) -> float | None:
    """Send ``trickle`` every 50 ms until the peer closes; how long that took, or None."""
    s.settimeout(0.05)
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        try:
            s.sendall(trickle)
            if s.recv(1) == b"":
                return time.monotonic() - began
        except TimeoutError:
            continue
        except OSError:  # reset, or a broken pipe: closed
            return time.monotonic() - began
    return None


@pytest.mark.parametrize("trickle", [b" ", b"\n"])
def test_bytes_that_complete_no_event_do_not_keep_a_connection_open(trickle: bytes) -> None:
    ingest = CotIngest(sender=Recorder(), rules=RULES)
    listeners = CotListeners([Listen("tcp", "127.0.0.1", 0)], ingest, idle_seconds=0.3, event_seconds=0.3)
    ((_, host, port),) = listeners.start()
    try:
        with socket.create_connection((host, port)) as s:
            took = _closed_within(s, 5.0, trickle)
        with socket.create_connection((host, port)) as s:
            s.sendall(b"<event uid='x' ")
            partial = _closed_within(s, 5.0, b"a")  # an event that grows but never ends
    finally:
        listeners.stop()
    assert took is not None and took < 2.0
    assert partial is not None and partial < 2.0
    assert until(lambda: ingest.stats.idle_closed == 1 and ingest.stats.malformed == 1)


def test_whitespace_after_an_event_does_not_put_off_the_idle_timeout() -> None:
    ingest = CotIngest(sender=Recorder(), rules=RULES)
    listeners = CotListeners([Listen("tcp", "127.0.0.1", 0)], ingest, idle_seconds=0.5, event_seconds=30)
    ((_, host, port),) = listeners.start()
    try:
        with socket.create_connection((host, port)) as s:
            s.sendall(event())
            assert _closed_within(s, 10.0, b" ") is not None
        assert until(lambda: ingest.stats.idle_closed == 1)
    finally:
        listeners.stop()
    assert ingest.stats.received == 1 and ingest.stats.malformed == 0


def test_a_connection_that_keeps_sending_events_stays_open_past_the_idle_time() -> None:
    ingest = CotIngest(sender=Recorder(), rules=RULES)
    listeners = CotListeners([Listen("tcp", "127.0.0.1", 0)], ingest, idle_seconds=0.3)
    ((_, host, port),) = listeners.start()
    try:
        with socket.create_connection((host, port)) as s:
            for i in range(8):  # 1.2 s in all, an event every 0.15 s
                s.sendall(b" " + event(uid=f"t-{i}"))
                time.sleep(0.15)
        assert until(lambda: ingest.stats.received == 8)
    finally:
        listeners.stop()


def test_one_address_holds_at_most_its_share_of_the_connections(caplog: pytest.LogCaptureFixture) -> None:
    ingest = CotIngest(sender=Recorder(), rules=RULES)
    listeners = CotListeners([Listen("tcp", "127.0.0.1", 0)], ingest, max_connections=10, max_per_address=2)
    ((_, host, port),) = listeners.start()
    server = listeners.servers[0]
    try:
        with contextlib.ExitStack() as held:
            kept = [held.enter_context(socket.create_connection((host, port))) for _ in range(2)]
            assert until(lambda: getattr(server, "connections", 0) == 2)
            third = held.enter_context(socket.create_connection((host, port)))
            assert _closed_by_peer(third)
            assert ingest.stats.connections_refused == 1
            # another address (all of 127.0.0.0/8 is this host) still gets a connection
            other = held.enter_context(socket.create_connection((host, port), source_address=("127.0.0.2", 0)))
            other.sendall(event(uid="other"))
            assert until(lambda: ingest.stats.received == 1)
            for s in kept:
                s.setblocking(False)
                with pytest.raises(BlockingIOError):  # still open, nothing to read
                    s.recv(1)
        assert until(lambda: getattr(server, "connections", -1) == 0)
        with socket.create_connection((host, port)) as again:  # room again once they closed
            again.sendall(event())
        assert until(lambda: ingest.stats.received == 2)
    finally:
        listeners.stop()
    assert "CoT TCP connections refused: 2 already open from that address" in caplog.text
    assert MAX_CONNECTIONS_PER_ADDRESS == 32


def test_connections_past_the_cap_are_closed_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    ingest = CotIngest(sender=Recorder(), rules=RULES)
    listeners = CotListeners([Listen("tcp", "127.0.0.1", 0)], ingest, max_connections=2)
    ((_, host, port),) = listeners.start()
    server = listeners.servers[0]
    try:
        with contextlib.ExitStack() as held:
            kept = [held.enter_context(socket.create_connection((host, port))) for _ in range(2)]
            assert until(lambda: getattr(server, "connections", 0) == 2)
            third = held.enter_context(socket.create_connection((host, port)))
            assert _closed_by_peer(third)
            assert ingest.stats.connections_refused == 1
            assert describe(ingest.stats)["connections_refused"] == 1
            for s in kept:
                s.setblocking(False)
                with pytest.raises(BlockingIOError):  # still open, nothing to read
                    s.recv(1)
        assert until(lambda: getattr(server, "connections", -1) == 0)
        with socket.create_connection((host, port)) as again:  # room again once they closed
            again.sendall(event())
        assert until(lambda: ingest.stats.received == 1)
    finally:
        listeners.stop()
    assert "CoT TCP connections refused: 2 already open" in caplog.text


# --- the ingest's backlog ---------------------------------------------------------------------------------


def test_while_the_exchange_is_slow_events_past_the_backlog_are_dropped_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = threading.Event()
    sender = Recorder(gate)
    ingest = CotIngest(sender=sender, rules=RULES, max_backlog=3)
    ingest.start()
    try:
        with caplog.at_level(logging.WARNING):
            taken = [ingest.offer(event(uid=f"t-{i}")) for i in range(10)]
        assert taken == [True] * 3 + [False] * 7  # the batch being sent counts toward the backlog
        assert ingest.stats.dropped == 7 and describe(ingest.stats)["dropped"] == 7
        assert caplog.text.count("CoT events dropped") == 1
    finally:
        gate.set()
        ingest.stop()
    assert len(sender.drafts) == 3


def test_the_backlog_is_bounded_in_bytes_too() -> None:
    gate = threading.Event()
    sender = Recorder(gate)
    size = len(event(uid="t-0", detail="x" * 1000))
    ingest = CotIngest(sender=sender, rules=RULES, max_backlog_bytes=3 * size)
    ingest.start()
    try:
        taken = [ingest.offer(event(uid=f"t-{i}", detail="x" * 1000)) for i in range(6)]
        assert taken == [True] * 3 + [False] * 3 and ingest.stats.dropped == 3
    finally:
        gate.set()
        ingest.stop()
    assert ingest.offer(event(uid="later", detail="x" * 1000))  # the bytes sent are released


def test_the_backlog_holds_while_the_exchange_is_unreachable_and_stop_gives_up() -> None:
    tries = threading.Event()

    class Down:
        def send(self, drafts: Sequence[ReportDraft]) -> list[SendResult]:
            tries.set()
            raise ExchangeUnreachable("connection refused")

    ingest = CotIngest(sender=Down(), rules=RULES, max_backlog=5)
    ingest.start()
    assert ingest.offer(event(uid="first"))
    assert tries.wait(10)
    offered = [ingest.offer(event(uid=f"t-{i}")) for i in range(100)]
    assert offered.count(True) == 4 and ingest.stats.dropped == 96
    ingest.stop()  # does not wait for an exchange that does not answer


def test_an_event_already_stale_on_arrival_is_no_report_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sender = Recorder()
    now = NOW + timedelta(hours=2)
    ingest = CotIngest(sender=sender, rules=RULES, clock=lambda: now)
    ingest.start()
    try:
        with caplog.at_level(logging.WARNING):
            late = [ingest.offer(event(uid=f"late-{i}", stale=now - timedelta(seconds=6))) for i in range(5)]
        # within the tolerance for clocks apart: sent
        assert ingest.offer(event(uid="skewed", stale=now - timedelta(seconds=4)))
        assert ingest.offer(event(uid="fresh", stale=now + timedelta(minutes=1)))
    finally:
        ingest.stop()
    assert late == [False] * 5
    assert ingest.stats.stale == 5 and describe(ingest.stats)["stale"] == 5
    assert ingest.stats.received == 7 and ingest.stats.sent == 2 and ingest.stats.dropped == 0
    assert len(sender.drafts) == 2
    assert caplog.text.count("CoT events not sent: already stale") == 1


def test_an_event_that_goes_stale_while_the_exchange_is_unreachable_is_given_up_not_sent_late(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [NOW]
    attempts: list[list[str]] = []
    up = threading.Event()

    class ComesBack:
        """Unreachable for two attempts, during which the clock passes the first event's stale."""

        def send(self, drafts: Sequence[ReportDraft]) -> list[SendResult]:
            attempts.append([d.id for d in drafts])
            if len(attempts) < 3:
                now[0] = NOW + timedelta(minutes=2)
                raise ExchangeUnreachable("connection refused")
            up.set()
            return [SendResult(True, "delivered: KOR") for _ in drafts]

    ingest = CotIngest(sender=ComesBack(), rules=RULES, clock=lambda: now[0])
    ingest.start()
    try:
        with caplog.at_level(logging.WARNING):
            assert ingest.offer(event(uid="short", stale=NOW + timedelta(minutes=1)))
            assert ingest.offer(event(uid="long", stale=NOW + timedelta(hours=1)))
            assert up.wait(20)
    finally:
        ingest.stop()
    short = attempts[0][0]  # offered first: tried while still valid, in its batch
    assert len(attempts[-1]) == 1 and attempts[-1][0] != short  # sent: the one still valid
    assert ingest.stats.stale == 1 and ingest.stats.sent == 1 and describe(ingest.stats)["stale"] == 1
    assert caplog.text.count("went stale waiting for the exchange") == 1


# --- outputs: one endpoint's trouble is its own -----------------------------------------------------------


def _delivered() -> DeliveredMarking:
    return DeliveredMarking(
        recipient="KOR",
        level="군사II급비밀",
        originator=NationalMarking(party="JPN", level="極秘"),
        common_level="SECRET",
        banner="군사II급비밀 (JPN 極秘)",
        agreement="JPN-KOR-GSOMIA",
        delivery="d-1",
        ledger_index=5,
    )


def _endpoint(name: str, port: int) -> CotEndpoint:
    return CotEndpoint(name=name, url=f"tcp://127.0.0.1:{port}", cleared_to="군사II급비밀", audience=("KOR",))


class Collector:
    """A TAK endpoint: a TCP server that keeps what it receives."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.data = bytearray()
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self.server.accept()
            with conn:
                while chunk := conn.recv(65536):
                    with self.lock:
                        self.data += chunk

    def events(self) -> int:
        with self.lock:
            return self.data.count(b"</event>")

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def hung(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, threading.Event, threading.Event]]:
    """A port whose connects hang (as to a host that drops SYNs) until the test ends."""
    placeholder = socket.create_server(("127.0.0.1", 0))
    port = int(placeholder.getsockname()[1])
    reached, release = threading.Event(), threading.Event()
    real = socket.create_connection

    def connect(address: tuple[str, int], timeout: float | None = None, *a: object, **k: object) -> socket.socket:
        if address[1] == port:
            reached.set()
            release.wait(30)
            raise TimeoutError("timed out")
        return real(address, timeout)

    monkeypatch.setattr(socket, "create_connection", connect)
    try:
        yield port, reached, release
    finally:
        release.set()
        placeholder.close()


def test_an_unresponsive_endpoint_holds_back_neither_the_caller_nor_the_other_endpoints(
    hung: tuple[int, threading.Event, threading.Event],
) -> None:
    port, reached, release = hung
    ops = Collector()
    output = CotOutput([_endpoint("hung", port), _endpoint("ops", ops.port)], LADDER.copy)
    emitted = threading.Event()

    def emit_all() -> None:
        for i in range(5):
            output.emit(
                delivered=_delivered(),
                payload=event(uid=f"t-{i}"),
                content_type="application/cot+xml",
                report_id=f"R-{i}",
            )
        emitted.set()

    threading.Thread(target=emit_all, daemon=True).start()
    try:
        assert reached.wait(10)
        # The feed was not held while the hung endpoint's connect waits, and ops got every track.
        assert emitted.wait(10) and until(lambda: ops.events() == 5)
        assert not release.is_set()
    finally:
        release.set()
        output.close()
        ops.close()
    assert output.sent == 5


def test_events_past_an_endpoints_queue_are_dropped_counted_and_logged_once(
    hung: tuple[int, threading.Event, threading.Event], caplog: pytest.LogCaptureFixture
) -> None:
    port, reached, release = hung
    output = CotOutput([_endpoint("hung", port)], LADDER.copy, queue_size=3)
    output.start()

    def emit(i: int) -> list[str]:
        return output.emit(
            delivered=_delivered(), payload=event(uid=f"t-{i}"), content_type="application/cot+xml", report_id=f"R-{i}"
        )

    try:
        assert emit(0) == ["hung"]
        assert reached.wait(10)  # the endpoint's thread holds event 0, its queue is empty
        with caplog.at_level(logging.WARNING):
            went = [emit(i) for i in range(1, 9)]
        assert went == [["hung"]] * 3 + [[]] * 5
        assert output.dropped == 5
        assert caplog.text.count("CoT endpoint hung: events dropped, its queue of 3 is full") == 1
    finally:
        release.set()
        output.close()


def test_after_a_failed_send_the_endpoint_waits_longer_each_time_before_connecting_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused = socket.create_server(("127.0.0.1", 0))
    port = int(refused.getsockname()[1])
    refused.close()  # nothing listens there: every connect is refused
    pauses: list[float] = []
    from gsomia.node.cot import output as output_module

    monkeypatch.setattr(output_module._Endpoint, "_pause", lambda self, seconds: pauses.append(seconds))
    output = CotOutput([_endpoint("down", port)], LADDER.copy)
    output.start()
    try:
        for i in range(4):
            output.emit(
                delivered=_delivered(),
                payload=event(uid=f"t-{i}"),
                content_type="application/cot+xml",
                report_id=f"R-{i}",
            )
        assert until(lambda: output.failed == 4)
    finally:
        output.close()
    assert pauses == [0.5, 1.0, 2.0, 4.0]


def test_a_track_stale_when_delivered_is_not_sent_and_counted_stale() -> None:
    ops = Collector()
    now = NOW + timedelta(minutes=15)
    output = CotOutput([_endpoint("ops", ops.port)], LADDER.copy, clock=lambda: now)
    try:
        went = output.emit(
            delivered=_delivered(),
            payload=event(uid="old", stale=NOW + timedelta(minutes=5)),  # delivered after an outage
            content_type="application/cot+xml",
            report_id="R-old",
        )
        assert went == []
        # a JSON track carries no stale time: it is valid for two minutes from its report's creation
        assert (
            output.emit(
                delivered=_delivered(),
                payload=b'{"track": [[39.0, 125.7, 950]]}',
                content_type="application/json",
                report_id="R-json",
                created=now - timedelta(minutes=3),
            )
            == []
        )
        fresh = output.emit(
            delivered=_delivered(), payload=event(uid="new"), content_type="application/cot+xml", report_id="R-new"
        )
        assert fresh == ["ops"] and until(lambda: ops.events() == 1)
    finally:
        output.close()
        ops.close()
    assert output.counters() == {"sent": 1, "failed": 0, "dropped": 0, "stale": 2, "withheld": 0, "refused": 0}
    assert b'uid="new"' in ops.data and b'uid="old"' not in ops.data


def test_a_track_that_goes_stale_while_its_endpoint_is_down_is_not_sent_late(
    hung: tuple[int, threading.Event, threading.Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, reached, release = hung
    from gsomia.node.cot import output as output_module

    monkeypatch.setattr(output_module._Endpoint, "_pause", lambda self, seconds: None)
    now = [NOW]
    output = CotOutput([_endpoint("hung", port)], LADDER.copy, clock=lambda: now[0])

    def emit(uid: str) -> list[str]:
        payload = event(uid=uid, stale=NOW + timedelta(minutes=1))
        return output.emit(delivered=_delivered(), payload=payload, content_type="application/cot+xml", report_id=uid)

    try:
        assert emit("first") == ["hung"]
        assert reached.wait(10)  # the endpoint's thread holds the first, connecting
        assert emit("queued") == ["hung"]  # valid when it was queued
        now[0] = NOW + timedelta(minutes=2)  # the endpoint comes back only after it went stale
        release.set()
        assert until(lambda: output.stale == 1)
    finally:
        release.set()
        output.close()
    assert output.failed == 1 and output.sent == 0


# --- what comes in, and what goes out, is checked against the node's clock ---------------------------------


def test_an_event_from_the_future_is_malformed_at_the_ingest() -> None:
    sender = Recorder()
    ingest = CotIngest(sender=sender, rules=RULES, clock=lambda: NOW)
    ingest.start()
    try:
        future = event(uid="future").replace(f'time="{stamp(NOW)}"'.encode(), b'time="2999-01-01T00:00:00Z"')
        assert not ingest.offer(future)
        assert ingest.stats.malformed == 1
        assert ingest.offer(event(uid="now"))
        assert until(lambda: len(sender.drafts) == 1)
    finally:
        ingest.stop()


def test_a_report_that_is_no_track_to_send_on_is_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    ops = Collector()
    output = CotOutput([_endpoint("ops", ops.port)], LADDER.copy, clock=lambda: NOW)
    payloads = [
        (event(uid="delete", kind="t-x-d-d"), "application/cot+xml"),
        (event(uid="ahead").replace(f'time="{stamp(NOW)}"'.encode(), b'time="2999-01-01T00:00:00Z"'), "text/xml"),
        (b'{"track": [[39.0, "1e999", 950]]}', "application/json"),
    ]
    try:
        with caplog.at_level(logging.WARNING):
            went = [
                output.emit(delivered=_delivered(), payload=p, content_type=c, report_id=f"R-{i}")
                for i, (p, c) in enumerate(payloads)
            ]
        assert went == [[], [], []]
        assert output.emit(
            delivered=_delivered(), payload=event(uid="fine"), content_type="application/cot+xml", report_id="R-ok"
        ) == ["ops"]
        assert until(lambda: ops.events() == 1)
    finally:
        output.close()
        ops.close()
    assert output.refused == 3
    assert caplog.text.count("CoT of received reports not sent on") == 1
    assert b'uid="fine"' in ops.data and b"t-x-d-d" not in ops.data


def test_the_status_counts_tracks_withheld_by_their_marking_and_reports_that_are_no_track() -> None:
    ops = Collector()
    low = CotEndpoint(name="low", url="tcp://127.0.0.1:9", cleared_to="군사III급비밀", audience=("KOR",))
    output = CotOutput([_endpoint("ops", ops.port), low], LADDER.copy, clock=lambda: NOW)
    try:
        for i in range(2):  # II급 to an endpoint cleared to III급: withheld from it, sent to ops
            went = output.emit(
                delivered=_delivered(),
                payload=event(uid=f"t-{i}"),
                content_type="application/cot+xml",
                report_id=f"R-{i}",
            )
            assert went == ["ops"]
        output.emit(delivered=_delivered(), payload=b"<nothing/>", content_type="application/cot+xml", report_id="R-x")
        assert until(lambda: ops.events() == 2)
        counters = output.counters()
    finally:
        output.close()
        ops.close()
    assert counters["withheld"] == 2 and counters["refused"] == 1 and counters["sent"] == 2


def test_a_tcp_endpoint_is_written_to_without_waiting_to_coalesce_small_events() -> None:
    # Nagle: an event written while the one before is unacknowledged would wait for the
    # receiver's (possibly delayed) acknowledgement, tens of milliseconds
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        output = CotOutput([_endpoint("ops", port)], LADDER.copy)
        sender = output._senders[0]
        try:
            assert sender._send(b"<event/>")
            assert sender._sock is not None
            assert sender._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            peer, _ = server.accept()
            with peer:
                assert peer.recv(64) == b"<event/>"
        finally:
            output.close()
