"""The supervisor of ``gsomia serve --workers N`` (gsomia.api.workers), with stand-in workers."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from gsomia.api.workers import STARTUP_FAILURE, Link, Listen, Supervisor, listen_on


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fails_to_start(listen: Listen, link: Link) -> None:
    sys.exit(STARTUP_FAILURE)


def serves_until_stopped(listen: Listen, link: Link) -> None:
    while True:
        link.beat.value = time.monotonic()
        time.sleep(0.1)


def stalls(listen: Listen, link: Link) -> None:
    """Serves, then its event loop stops running: it beats once, and never again."""
    link.beat.value = time.monotonic()
    time.sleep(600)


def answers_with_its_pid(listen: Listen, link: Link) -> None:
    """Takes the connections handed over, writes its process id on each and keeps it open."""
    held = []
    link.channel.settimeout(0.1)
    while True:
        link.beat.value = time.monotonic()
        try:
            _, fds, _, _ = socket.recv_fds(link.channel, 1, 16)
        except TimeoutError:
            continue
        for fd in fds:
            conn = socket.socket(fileno=fd)
            conn.sendall(str(os.getpid()).encode())
            held.append(conn)


def serves_once(listen: Listen, link: Link) -> None:
    """The first worker serves on; the second serves a moment and exits; every later one fails
    before serving (as a replacement does while the database is down)."""
    with open(os.environ["GSOMIA_TEST_MARK"], "ab") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        attempt = f.tell()
        f.write(b"x")
    if attempt >= 2:
        os._exit(STARTUP_FAILURE)  # at once: no interpreter shutdown (coverage's, say) to wait for
    while True:
        link.beat.value = time.monotonic()
        time.sleep(0.1)
        if attempt == 1:
            os._exit(0)


def hangs_before_serving(listen: Listen, link: Link) -> None:
    """Its start-up never ends (a database that accepts the connection and never answers)."""
    time.sleep(600)


def serves_then_hangs(listen: Listen, link: Link) -> None:
    """The first two workers serve on; every later one hangs before serving."""
    with open(os.environ["GSOMIA_TEST_MARK"], "ab") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        attempt = f.tell()
        f.write(b"x")
    if attempt >= 2:
        time.sleep(600)
    while True:
        link.beat.value = time.monotonic()
        time.sleep(0.1)


def gone(pid: int) -> bool:
    """Whether a process has exited and been reaped (no /proc entry, not even a zombie's)."""
    return not os.path.exists(f"/proc/{pid}")


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


def test_another_server_is_refused_the_port_even_if_it_asks_for_so_reuseport() -> None:
    """A second server started on the same port must fail, not silently take part of the first
    one's connections."""
    listen = Listen("127.0.0.1", free_port())
    with listen_on(listen), socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with pytest.raises(OSError, match="in use"):
            other.bind(("127.0.0.1", listen.port))
        with pytest.raises(OSError, match="in use"):
            listen_on(listen)


def running(supervisor: Supervisor) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    # a daemon: a supervisor that a failing test leaves running must not keep pytest from ending
    runner = threading.Thread(target=lambda: result.append(supervisor.run()), daemon=True)
    runner.start()
    assert wait_until(lambda: len(supervisor.pids()) == supervisor.workers)
    return runner, result


def test_stop_ends_the_workers_and_run_returns_0() -> None:
    supervisor = Supervisor(Listen("127.0.0.1", free_port(), graceful_seconds=1), 2, target=serves_until_stopped)
    runner, result = running(supervisor)
    supervisor.stop()
    runner.join(60)
    assert result == [0]


def test_a_worker_that_never_begins_to_serve_is_killed_and_stops_the_supervisor() -> None:
    """Without a deadline the supervisor would wait for it forever, serving nothing."""
    supervisor = Supervisor(Listen("127.0.0.1", free_port(), start_seconds=1), 1, target=hangs_before_serving)
    runner, result = running(supervisor)
    pid = supervisor.pids()[0]
    runner.join(60)
    assert result == [1] and supervisor.failed
    assert gone(pid), "the worker that hung is still running"


START = 8.0
"""The start-up deadline of the tests whose first workers must serve: a spawned worker on a
loaded machine (the suite runs one process per core) can take more than a second to start."""


def test_once_a_worker_has_served_a_replacement_that_hangs_is_killed_and_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mark = tmp_path / "mark"
    monkeypatch.setenv("GSOMIA_TEST_MARK", str(mark))
    supervisor = Supervisor(
        Listen("127.0.0.1", free_port(), graceful_seconds=1, start_seconds=START), 2, target=serves_then_hangs
    )
    runner, result = running(supervisor)
    try:
        assert wait_until(lambda: supervisor.serving() == 2)
        first, second = supervisor.pids()
        os.kill(second, signal.SIGKILL)
        # try 2 hangs and is killed after START s; try 3 comes 1 s later
        assert wait_until(lambda: mark.stat().st_size >= 4, 120), f"{mark.stat().st_size} tries"
        assert runner.is_alive() and not supervisor.failed
        assert first in supervisor.pids(), "the worker that serves was touched"
        assert len(multiprocessing.active_children()) <= 2, "a hung worker was left running"
    finally:
        supervisor.stop()
        runner.join(60)
    assert result == [0]


def test_a_restart_whose_replacement_hangs_keeps_the_workers_that_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GSOMIA_TEST_MARK", str(tmp_path / "mark"))
    supervisor = Supervisor(
        Listen("127.0.0.1", free_port(), graceful_seconds=1, start_seconds=START), 2, target=serves_then_hangs
    )
    runner, result = running(supervisor)
    try:
        assert wait_until(lambda: supervisor.serving() == 2)
        before = supervisor.pids()
        supervisor.restart()
        assert wait_until(lambda: (tmp_path / "mark").stat().st_size >= 3), "no replacement was started"
        hung_gone = wait_until(lambda: len(multiprocessing.active_children()) == 2, START + 20)
        assert hung_gone, "the hung replacement runs on"
        assert supervisor.pids() == before and supervisor.serving() == 2
    finally:
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


def test_a_replacement_that_cannot_start_is_retried_with_a_growing_delay_once_a_worker_has_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed while the database is down cannot start again until it is back: that
    must not stop the whole server, nor spawn replacements in a tight loop."""
    mark = tmp_path / "mark"
    monkeypatch.setenv("GSOMIA_TEST_MARK", str(mark))
    supervisor = Supervisor(Listen("127.0.0.1", free_port(), graceful_seconds=1), 2, target=serves_once)
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(supervisor.run()))
    runner.start()
    try:
        # attempts 0 and 1 serve, 1 exits; 2 fails at once, then 3 after 1 s, 4 after 2 s more
        assert wait_until(lambda: mark.exists() and mark.stat().st_size >= 4, 120), (
            f"no replacement was tried: {mark.stat().st_size if mark.exists() else 0} tries, pids {supervisor.pids()}"
        )
        time.sleep(2.5)  # the delay grows 1, 2, 4 s, while the other worker serves on
        assert runner.is_alive() and not supervisor.failed
        assert mark.stat().st_size <= 6, f"{mark.stat().st_size} attempts: replaced in a tight loop"
    finally:
        supervisor.stop()
        runner.join(60)
    assert result == [0]


def test_restart_replaces_every_worker_once_its_replacement_serves() -> None:
    supervisor = Supervisor(Listen("127.0.0.1", free_port(), graceful_seconds=1), 2, target=serves_until_stopped)
    runner, result = running(supervisor)
    try:
        before = set(supervisor.pids())
        supervisor.restart()
        assert wait_until(lambda: len(supervisor.pids()) == 2 and not before & set(supervisor.pids()))
        # each old worker is stopped once its replacement serves (and reaped: no /proc entry)
        assert wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in before)), (
            "a replaced worker runs on"
        )
    finally:
        supervisor.stop()
        runner.join(60)
    assert result == [0]


class _Exited:
    """A stand-in for a worker process that exited before serving."""

    pid = 4242
    exitcode = 1


class _Value:
    value = 0.0


def _link() -> Link:
    return Link(None, _Value(), _Value())  # type: ignore[arg-type] # no channel: the worker never ran


def test_the_delay_before_each_try_doubles_up_to_30_s_and_a_served_replacement_is_started_at_once() -> None:
    from gsomia.api import workers

    supervisor = Supervisor(Listen("127.0.0.1", 1), 1, target=serves_until_stopped)
    supervisor._served = True  # a worker has served: failures before serving are retried
    worker = workers._Worker(None, _link())
    delays = []
    for _ in range(7):
        pending = supervisor._after_exit(worker, _Exited(), now=100.0)  # type: ignore[arg-type]
        assert pending.process is None and not supervisor.failed
        delays.append(pending.due - 100.0)
        worker = workers._Worker(None, _link(), retry=pending.retry)  # the next try, as _watch spawns it
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_failure_before_any_worker_served_stops_the_supervisor() -> None:
    from gsomia.api import workers

    supervisor = Supervisor(Listen("127.0.0.1", 1), 1, target=serves_until_stopped)
    supervisor._after_exit(workers._Worker(None, _link()), _Exited(), now=100.0)  # type: ignore[arg-type]
    assert supervisor.failed


def test_connections_opened_at_once_go_to_the_worker_with_the_fewest_open() -> None:
    """Ten connections opened together on two workers: five each, whoever wakes first."""
    supervisor = Supervisor(Listen("127.0.0.1", free_port(), graceful_seconds=1), 2, target=answers_with_its_pid)
    runner, result = running(supervisor)
    conns = []
    try:
        assert wait_until(lambda: supervisor.serving() == 2)
        conns = [socket.create_connection(("127.0.0.1", supervisor.listen.port), timeout=10) for _ in range(10)]
        served_by = Counter(int(c.recv(32)) for c in conns)
        assert sorted(served_by.values()) == [5, 5], served_by
        assert set(served_by) == set(supervisor.pids())
        assert supervisor.handed == 10
    finally:
        for c in conns:
            c.close()
        supervisor.stop()
        runner.join(60)
    assert result == [0]


def test_a_failure_handing_one_connection_over_costs_that_connection_only() -> None:
    supervisor = Supervisor(Listen("127.0.0.1", free_port(), graceful_seconds=1), 1, target=answers_with_its_pid)
    hand = supervisor._hand
    calls: list[int] = []

    def fails_once(conn: socket.socket) -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return hand(conn)

    supervisor._hand = fails_once  # type: ignore[method-assign]
    runner, result = running(supervisor)
    try:
        assert wait_until(lambda: supervisor.serving() == 1)
        with socket.create_connection(("127.0.0.1", supervisor.listen.port), timeout=10) as lost:
            assert lost.recv(32) == b"", "the connection whose hand-over failed is closed"
        with socket.create_connection(("127.0.0.1", supervisor.listen.port), timeout=10) as served:
            assert int(served.recv(32)) == supervisor.pids()[0], "the acceptor goes on"
    finally:
        supervisor.stop()
        runner.join(60)
    assert result == [0]


def test_serve_gives_the_workers_the_start_up_deadline_of_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from gsomia import cli
    from gsomia.api import workers
    from gsomia.bootstrap import Settings

    seen: list[Listen] = []

    class Recording(Supervisor):
        def run(self) -> int:
            seen.append(self.listen)
            return 0

    settings = Settings(worker_start_seconds=7.5)
    for name, value in settings.as_environment().items():
        monkeypatch.setenv(name, value)  # what serve exports for its workers is undone after the test
    monkeypatch.setattr(workers, "Supervisor", Recording)
    cli._serve_workers(settings, "127.0.0.1", 8000, "info", 2)
    assert seen == [Listen("127.0.0.1", 8000, "info", start_seconds=7.5)]
    assert os.environ["GSOMIA_WORKER_START_SECONDS"] == "7.5"
