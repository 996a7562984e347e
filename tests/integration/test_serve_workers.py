"""``gsomia serve --workers 2``: the supervisor alone listens and hands each connection to the
worker with the fewest open connections, so connections opened at once are split evenly (a
shared socket let whichever worker woke first take them all; sockets of their own left it to a
hash); a worker killed or a database down is survived; a second server on the port is refused;
signals stop or replace the workers; workers whose supervisor dies stop."""

from __future__ import annotations

import os
import shutil
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

from tests.integration.conftest import Server, free_port
from tests.integration.exchange_support import wait_for

pytestmark = pytest.mark.slow

LISTEN, ESTABLISHED = "0A", "01"
STARTED = b"Application startup complete."


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux /proc)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def workers(server: Server) -> list[int]:
    """The worker processes of a ``gsomia serve --workers N`` (not multiprocessing's tracker)."""
    out = []
    for pid in children(server.proc.pid):
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes() and not ended(pid):
                out.append(pid)
        except OSError:
            continue  # gone meanwhile
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


def ended(pid: int) -> bool:
    """The process has exited (gone, or a zombie its new parent has not reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def serve(db: str, workdir: Path, port: int, extra_env: dict[str, str] | None = None) -> Server:
    """``gsomia serve --workers 2`` logging at info, so that each worker's start can be seen."""
    env = {k: v for k, v in os.environ.items() if k != "GSOMIA_DB"}
    env |= {"GSOMIA_DATA_DIR": str(workdir), "GSOMIA_DB": db, "GSOMIA_WORKERS": "2", **(extra_env or {})}
    log = workdir / f"server-{port}.log"
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gsomia", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    return Server(f"http://127.0.0.1:{port}", db, proc, env, log)


def started(server: Server) -> int:
    """How many workers have finished their start so far (each logs it once)."""
    return server.log.read_bytes().count(STARTED)


@pytest.fixture
def served(scenario_db: str, tmp_path: Path) -> Iterator[tuple[Server, int]]:
    # A database of its own: a log keeps the ledger key of its first start, and each test's
    # server has a data directory (and a key file) of its own.
    source = Path(scenario_db.removeprefix("sqlite:///"))
    db = tmp_path / source.name
    shutil.copy2(source, db)
    port = free_port()
    server = serve(f"sqlite:///{db}", tmp_path, port)
    try:
        wait_for(lambda: started(server) >= 2 or server.proc.poll() is not None, timeout=90, what="two workers")
        assert server.proc.poll() is None, server.log.read_text(errors="replace")
        yield server, port
    finally:
        server.stop()


def test_the_supervisor_alone_listens_and_splits_connections_opened_at_once_evenly(
    served: tuple[Server, int],
) -> None:
    server, port = served
    owners = socket_owners([server.proc.pid])
    assert [owners.get(i) for i in sockets_on(port, LISTEN)] == [server.proc.pid], "one socket, the supervisor's"
    conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(32)]
    try:
        for c in conns:
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: gsomia\r\n\r\n")
        for c in conns:
            assert c.recv(65536).startswith(b"HTTP/1.1 200"), "each connection is served"
        owners = socket_owners(workers(server))
        held = Counter(owners[i] for i in sockets_on(port, ESTABLISHED) if i in owners)
        assert sorted(held.values()) == [16, 16], f"not split evenly: {held}"
        assert not set(sockets_on(port, ESTABLISHED)) & set(socket_owners([server.proc.pid])), "kept by the supervisor"
    finally:
        for c in conns:
            c.close()


def test_a_worker_killed_is_replaced_and_the_server_keeps_answering(served: tuple[Server, int]) -> None:
    server, _ = served
    before = workers(server)
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    wait_for(lambda: started(server) >= 3, timeout=90, what="a replacement worker started")
    assert len(workers(server)) == 2 and before[0] not in workers(server)
    assert server.proc.poll() is None
    for _ in range(10):
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200


def test_a_second_server_on_the_same_port_is_refused_and_the_first_keeps_serving(
    served: tuple[Server, int],
) -> None:
    server, port = served
    second = subprocess.run(
        [sys.executable, "-m", "gsomia", "serve", "--workers", "2", "--host", "127.0.0.1", "--port", str(port)],
        env={**server.env, "GSOMIA_DB": server.db},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert second.returncode == 4
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in second.stderr
    assert len(sockets_on(port, LISTEN)) == 1
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200


def test_sigterm_stops_every_worker_and_the_supervisor_exits_0(served: tuple[Server, int]) -> None:
    server, port = served
    pids = workers(server)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{w}").exists() for w in pids) and time.monotonic() < deadline:
        time.sleep(0.05)  # readiness poll: a reaped worker's /proc entry goes at once
    assert not any(Path(f"/proc/{w}").exists() for w in pids)
    assert sockets_on(port, LISTEN) == []


def test_workers_whose_supervisor_is_killed_stop(served: tuple[Server, int]) -> None:
    """Unsupervised workers would serve on, unreplaced and never stopped."""
    server, _ = served
    pids = workers(server)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=20)
    wait_for(lambda: all(ended(w) for w in pids), timeout=60, what="the orphaned workers to exit")


def test_sighup_replaces_every_worker_and_the_server_keeps_answering(served: tuple[Server, int]) -> None:
    server, _ = served
    before = set(workers(server))
    server.proc.send_signal(signal.SIGHUP)
    wait_for(
        lambda: started(server) >= 4 and len(workers(server)) == 2 and not before & set(workers(server)),
        timeout=120,
        what="two new workers",
    )
    assert server.proc.poll() is None
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
