"""The supervisor of ``gsomia serve --workers N`` (gsomia.api.workers), with stand-in workers."""

from __future__ import annotations

import socket
import sys
import threading
import time

import pytest

from gsomia.api.workers import STARTUP_FAILURE, Listen, Supervisor, bind, reserve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fails_to_start(listen: Listen) -> None:
    sys.exit(STARTUP_FAILURE)


def serves_until_stopped(listen: Listen) -> None:
    sock = bind(listen)
    sock.listen(8)
    time.sleep(600)


def test_a_worker_that_cannot_start_stops_the_supervisor_instead_of_being_replaced_forever() -> None:
    supervisor = Supervisor(Listen("127.0.0.1", free_port()), 2, target=fails_to_start)
    assert supervisor.run() == 1
    assert supervisor.failed


def test_an_address_another_server_holds_is_refused_before_any_worker_starts() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        supervisor = Supervisor(Listen("127.0.0.1", port), 2, target=serves_until_stopped)
        with pytest.raises(OSError, match="in use"):
            supervisor.run()
        assert supervisor.pids() == []


def test_another_server_sharing_the_port_is_refused_even_if_it_asks_for_so_reuseport() -> None:
    """A second server started on the same port must fail, not silently take half of the first
    one's connections: the reservation has SO_REUSEPORT without SO_REUSEADDR, so the second
    server's check (SO_REUSEADDR alone) fails, as it does while the workers listen."""
    listen = Listen("127.0.0.1", free_port())
    held = reserve(listen)
    try:
        with pytest.raises(OSError, match="in use"):
            reserve(listen)
        worker = bind(listen)  # the workers join the reservation
        worker.listen(1)
        with socket.create_connection(("127.0.0.1", listen.port), timeout=5):
            accepted, _ = worker.accept()  # the reservation itself takes no connection
            accepted.close()
        worker.close()
    finally:
        held.close()


def test_stop_ends_the_workers_and_run_returns_0() -> None:
    supervisor = Supervisor(Listen("127.0.0.1", free_port(), graceful_seconds=1), 2, target=serves_until_stopped)
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(supervisor.run()))
    runner.start()
    deadline = time.monotonic() + 60
    while len(supervisor.pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # readiness poll, not a wait for a result
    assert len(supervisor.pids()) == 2
    supervisor.stop()
    runner.join(60)
    assert result == [0]
