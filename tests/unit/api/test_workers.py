"""The supervisor of ``gsomia serve --workers N`` (gsomia.api.workers), with stand-in workers."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable

import pytest

from gsomia.api.workers import STARTUP_FAILURE, Beat, Listen, Supervisor, bind, reserve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fails_to_start(listen: Listen, beat: Beat) -> None:
    sys.exit(STARTUP_FAILURE)


def serves_until_stopped(listen: Listen, beat: Beat) -> None:
    sock = bind(listen)
    sock.listen(8)
    while True:
        beat.value = time.monotonic()
        time.sleep(0.1)


def stalls(listen: Listen, beat: Beat) -> None:
    """Serves, then its event loop stops running: it beats once, and never again."""
    sock = bind(listen)
    sock.listen(8)
    beat.value = time.monotonic()
    time.sleep(600)


def wait_until(check: Callable[[], bool], seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)  # readiness poll, not a wait for a result
    return check()


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


def running(supervisor: Supervisor) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(supervisor.run()))
    runner.start()
    assert wait_until(lambda: len(supervisor.pids()) == supervisor.workers)
    return runner, result


def test_stop_ends_the_workers_and_run_returns_0() -> None:
    supervisor = Supervisor(Listen("127.0.0.1", free_port(), graceful_seconds=1), 2, target=serves_until_stopped)
    runner, result = running(supervisor)
    supervisor.stop()
    runner.join(60)
    assert result == [0]


def test_a_worker_whose_event_loop_stalls_is_killed_and_replaced() -> None:
    """Its socket would keep taking its share of new connections that nobody serves."""
    supervisor = Supervisor(Listen("127.0.0.1", free_port(), graceful_seconds=1, stall_seconds=1), 1, target=stalls)
    runner, result = running(supervisor)
    try:
        first = supervisor.pids()[0]
        assert wait_until(lambda: supervisor.pids() != [first]), "the stalled worker was not replaced"
        assert not os.path.exists(f"/proc/{first}"), "the stalled worker is still running"
    finally:
        supervisor.stop()
        runner.join(60)
    assert result == [0]


def test_a_worker_that_beats_is_left_alone() -> None:
    supervisor = Supervisor(
        Listen("127.0.0.1", free_port(), graceful_seconds=1, stall_seconds=1), 1, target=serves_until_stopped
    )
    runner, _ = running(supervisor)
    try:
        first = supervisor.pids()
        time.sleep(2.5)  # longer than stall_seconds: a beating worker must outlive it
        assert supervisor.pids() == first
    finally:
        supervisor.stop()
        runner.join(60)
