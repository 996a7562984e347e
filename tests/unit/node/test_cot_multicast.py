"""A CoT UDP listener on a multicast group (TAK's SA group, 239.2.3.1) joins it: datagrams sent
to the group from a real socket, looped back on this host, reach the ingest."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from gsomia.errors import InvalidInput
from gsomia.node.cot.bridge import CotIngest, CotListeners, Listen
from gsomia.node.interop import InteropConfig
from gsomia.node.taxii.service import SendResult

GROUP = "239.2.3.1"


def _event(uid: str) -> bytes:
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    stale = (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f'<event version="2.0" uid="{uid}" type="a-h-A-M-B" how="m-g" time="{stamp}" start="{stamp}" '
        f'stale="{stale}"><point lat="39.0" lon="125.7" hae="950" ce="50" le="50"/><detail/></event>'
    ).encode()


class _Nothing:
    """A report sender for an ingest with no rules: never called."""

    def send(self, drafts: object) -> list[SendResult]:
        raise AssertionError("no rule covers any event: nothing is sent")


def _until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def _send_to_group(port: int, data: bytes, *, via: str | None) -> None:
    """Send ``data`` to the group, looped back to this host's members; out of the interface
    whose address ``via`` gives, or the one the system routes the group through."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)  # none of it leaves this host
        if via is not None:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(via))
        s.sendto(data, (GROUP, port))


@pytest.mark.parametrize("interface", ["127.0.0.1"])  # loopback: no route needed (a host may have none)
def test_a_udp_listener_on_a_multicast_group_hears_what_is_sent_to_the_group(interface: str | None) -> None:
    ingest = CotIngest(sender=_Nothing(), rules=())
    listen = Listen("udp", GROUP, 0) if interface is None else Listen("udp", GROUP, 0, interface)
    listeners = CotListeners([listen], ingest)
    ((proto, host, port),) = listeners.start()
    try:
        assert (proto, host) == ("udp", GROUP)
        # sent until one arrives: a datagram may be sent before the membership is in effect
        deadline = time.monotonic() + 10
        while ingest.stats.received == 0 and time.monotonic() < deadline:
            _send_to_group(port, _event("sa-1"), via=interface)
            _until(lambda: ingest.stats.received > 0, 0.2)
    finally:
        listeners.stop()
    assert ingest.stats.received >= 1
    assert ingest.stats.unmapped == ingest.stats.received  # read as events (no rule covers them)


@pytest.mark.parametrize(
    ("listen", "why"),
    [
        ({"proto": "udp", "host": "ff02::1", "port": 6969}, "IPv6 multicast group; only IPv4 groups"),
        ({"proto": "tcp", "host": GROUP, "port": 6969}, "listen to it over udp, not tcp"),
        ({"proto": "udp", "host": "127.0.0.1", "port": 6969, "interface": "127.0.0.1"}, "127.0.0.1 is none"),
        ({"proto": "udp", "host": GROUP, "port": 6969, "interface": "eth0"}, "not 'eth0'"),
        ({"proto": "udp", "host": GROUP, "port": 6969, "interface": "0.0.0.0"}, "not '0.0.0.0'"),  # noqa: S104
        ({"proto": "udp", "host": GROUP, "port": 6969, "interface": 7}, "cot.listen\\[\\].interface"),
    ],
)
def test_a_multicast_listener_that_cannot_be_joined_is_refused_as_configured(listen: object, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        InteropConfig.from_doc({"cot": {"listen": [listen]}})


def test_a_multicast_listener_reads_from_interop_json() -> None:
    config = InteropConfig.from_doc(
        {"cot": {"listen": [{"proto": "udp", "host": GROUP, "port": 6969, "interface": "10.0.0.2"}]}}
    )
    assert config.listen == (Listen("udp", GROUP, 6969, "10.0.0.2"),)
