"""``gsomia serve --workers 2``: each worker listens on a socket of its own, so the kernel spreads
connections opened at once over the workers (a shared socket let whichever woke first take them
all); a worker killed is replaced; a second server on the same port is refused, not joined."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Server, start_server
from tests.integration.exchange_support import wait_for

pytestmark = pytest.mark.slow

LISTEN, ESTABLISHED = "0A", "01"


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux /proc)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def socket_owners(pids: list[int]) -> dict[int, int]:
    """socket inode → the process among ``pids`` holding it."""
    owners: dict[int, int] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:["):
                owners[int(target[8:-1])] = pid
    return owners


def sockets_on(port: int, state: str) -> list[int]:
    """The inodes of the TCP sockets whose local port is ``port``, in ``state``."""
    inodes: list[int] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == state:
                inodes.append(int(f[9]))
    return inodes


def listeners(server: Server, port: int) -> dict[int, int]:
    """listening socket inode → worker pid."""
    owners = socket_owners(children(server.proc.pid))
    return {i: owners[i] for i in sockets_on(port, LISTEN) if i in owners}


def ended(pid: int) -> bool:
    """The process has exited (gone, or a zombie its new parent has not reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
def served(scenario_db: str, tmp_path: Path) -> Iterator[tuple[Server, int]]:
    server = start_server(scenario_db, tmp_path, {"GSOMIA_WORKERS": "2"})
    try:
        yield server, int(server.url.rsplit(":", 1)[1])
    finally:
        server.stop()


def test_each_worker_listens_on_its_own_socket_and_connections_opened_at_once_reach_both(
    served: tuple[Server, int],
) -> None:
    server, port = served
    wait_for(lambda: len(listeners(server, port)) == 2, timeout=60, what="two workers listening")
    assert len(set(listeners(server, port).values())) == 2, "two sockets, one per worker"
    conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(32)]
    try:
        for c in conns:
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: gsomia\r\n\r\n")
        for c in conns:
            assert c.recv(65536).startswith(b"HTTP/1.1 200"), "each connection is served"
        owners = socket_owners(children(server.proc.pid))
        held = Counter(owners[i] for i in sockets_on(port, ESTABLISHED) if i in owners)
        assert sum(held.values()) == 32
        # a hash of each connection's ports: 32 connections all on one worker has odds 2**-31
        assert len(held) == 2, f"the connections all landed on one worker: {held}"
    finally:
        for c in conns:
            c.close()


def test_a_worker_killed_is_replaced_and_the_server_keeps_answering(served: tuple[Server, int]) -> None:
    server, port = served
    wait_for(lambda: len(listeners(server, port)) == 2, timeout=60, what="two workers listening")
    victim = next(iter(listeners(server, port).values()))
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: len(listeners(server, port)) == 2 and victim not in listeners(server, port).values(),
        timeout=60,
        what="a replacement worker listening",
    )
    assert server.proc.poll() is None
    for _ in range(10):
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200


def test_a_second_server_on_the_same_port_is_refused_and_the_first_keeps_serving(
    served: tuple[Server, int], scenario_db: str
) -> None:
    server, port = served
    wait_for(lambda: len(listeners(server, port)) == 2, timeout=60, what="two workers listening")
    second = subprocess.run(
        [sys.executable, "-m", "gsomia", "serve", "--workers", "2", "--host", "127.0.0.1", "--port", str(port)],
        env={**server.env, "GSOMIA_DB": scenario_db},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert second.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in second.stderr
    assert len(listeners(server, port)) == 2, "the second server joined the first one's port"
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200


def test_sigterm_stops_every_worker_and_the_supervisor_exits_0(served: tuple[Server, int]) -> None:
    server, port = served
    wait_for(lambda: len(listeners(server, port)) == 2, timeout=60, what="two workers listening")
    workers = list(listeners(server, port).values())
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)  # readiness poll: a reaped worker's /proc entry goes at once
    assert not any(Path(f"/proc/{w}").exists() for w in workers)
    assert sockets_on(port, LISTEN) == []


def test_workers_whose_supervisor_is_killed_stop_and_free_the_port(served: tuple[Server, int]) -> None:
    """Unsupervised workers would serve on, holding the port against the server started again."""
    server, port = served
    wait_for(lambda: len(listeners(server, port)) == 2, timeout=60, what="two workers listening")
    workers = list(listeners(server, port).values())
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=20)
    wait_for(lambda: sockets_on(port, LISTEN) == [], timeout=60, what="the orphaned workers to stop listening")
    wait_for(lambda: all(ended(w) for w in workers), timeout=60, what="the orphaned workers to exit")


def test_sighup_replaces_every_worker_and_the_server_keeps_answering(served: tuple[Server, int]) -> None:
    server, port = served
    wait_for(lambda: len(listeners(server, port)) == 2, timeout=60, what="two workers listening")
    before = set(listeners(server, port).values())
    server.proc.send_signal(signal.SIGHUP)
    wait_for(
        lambda: len(listeners(server, port)) == 2 and not before & set(listeners(server, port).values()),
        timeout=120,
        what="two new workers listening",
    )
    assert server.proc.poll() is None
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
