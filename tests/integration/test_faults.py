"""Faults of a scaled-out exchange (two processes over one PostgreSQL): one process killed
under load, and the database itself stopped and restarted under load. Nothing acknowledged is
ever lost, the survivors keep serving, and the ledger verifies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PgCluster
from tests.integration.conftest import Server, start_server
from tests.integration.exchange_support import Exchange, start_exchange, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

THREADS = 6


class Load:
    """Clients submitting signed reports in turn to several processes, recording every
    acknowledged answer, and every 503 with its Retry-After."""

    def __init__(self, exchanges: list[Exchange], total: int) -> None:
        self.bodies = [
            exchanges[0].signed("JPN", report_id=f"load-{i:05d}", recipients=["USA"], payload=os.urandom(512))
            for i in range(total)
        ]
        self.exchanges = exchanges
        self.acknowledged: dict[str, dict[str, Any]] = {}
        self.unavailable: list[str | None] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(THREADS)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(120)

    def _run(self, start: int) -> None:
        clients = [ex.client("JPN") for ex in self.exchanges]
        try:
            for n, body in enumerate(self.bodies[start::THREADS]):
                while not self.stop.is_set():
                    c = clients[(start + n) % len(clients)]
                    try:
                        r = c.post("/api/v1/reports", json=body)
                    except httpx.TransportError:
                        clients = clients[1:] + clients[:1]  # this process is gone: the balancer tries another
                        continue
                    if r.status_code == 503:
                        with self.lock:
                            self.unavailable.append(r.headers.get("Retry-After"))
                        self.stop.wait(0.05)  # honouring Retry-After would only slow the test
                        continue
                    if r.is_success:
                        with self.lock:
                            self.acknowledged[body["report"]["id"]] = r.json()
                    break
        finally:
            for c in clients:
                c.close()


def check_nothing_lost(ex: Exchange, acknowledged: dict[str, dict[str, Any]]) -> None:
    for report_id, result in acknowledged.items():
        stored = ex.call("JPN", "GET", f"/api/v1/reports/{report_id}")
        assert stored.status_code == 200, f"{report_id} was acknowledged but is missing"
        assert stored.json()["commitment"] == result["commitment"]
    p = subprocess.run(
        [sys.executable, "-m", "gsomia", "ledger", "verify", "--json"],
        env={**os.environ, "GSOMIA_DB": ex.db, "GSOMIA_DATA_DIR": str(ex.data_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["rows"]["ok"] is True


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    c = PgCluster(durable=True)
    yield c
    c.destroy()


def second(ex: Exchange) -> tuple[Server, Exchange]:
    server = start_server(ex.db, ex.data_dir, ex.env)
    return server, Exchange(server, ex.db, ex.data_dir, ex.client_dir, ex.tokens, ex.keys, ex.env)


def test_one_of_two_processes_killed_under_load_the_other_serves_and_nothing_is_lost(
    cluster: PgCluster, tmp_path: Path
) -> None:
    a = start_exchange(tmp_path, db=cluster.url, extra_env={"GSOMIA_WORKERS": "1"})
    b_server, b = second(a)
    try:
        load = Load([a, b], total=600)
        load.start()
        wait_for(lambda: len(load.acknowledged) >= 150, timeout=120, what="150 acknowledged submissions")
        a.server.proc.send_signal(signal.SIGKILL)
        a.server.proc.wait(timeout=20)
        load.join()
        assert len(load.acknowledged) == 600, "the surviving process did not take the rest of the load"
        check_nothing_lost(b, load.acknowledged)
    finally:
        b_server.stop()
        a.stop()


def test_the_database_stopped_and_restarted_under_load(cluster: PgCluster, tmp_path: Path) -> None:
    a = start_exchange(tmp_path, db=cluster.url, extra_env={"GSOMIA_WORKERS": "1"})
    b_server, b = second(a)
    try:
        load = Load([a, b], total=500)
        load.start()
        wait_for(lambda: len(load.acknowledged) >= 100, timeout=120, what="100 acknowledged submissions")
        cluster.stop()  # pg_ctl stop -m immediate: a crash of the database
        wait_for(lambda: len(load.unavailable) >= 5, timeout=60, what="503s while the database is down")
        cluster.start()
        load.join()
        assert len(load.acknowledged) == 500, "the processes did not reconnect to the database by themselves"
        assert all(after == "2" for after in load.unavailable), set(load.unavailable)  # 503 with Retry-After
        check_nothing_lost(a, load.acknowledged)
        assert a.call(None, "GET", "/healthz").status_code == 200
        assert b.call(None, "GET", "/healthz").json()["listening"] is True  # listening again
    finally:
        b_server.stop()
        a.stop()


def test_a_worker_killed_while_the_database_is_down_is_replaced_once_it_is_back(
    cluster: PgCluster, tmp_path: Path
) -> None:
    """The replacement cannot start while PostgreSQL is down: the supervisor must keep trying
    (with a growing delay), not stop the whole server, and both workers serve again after."""
    from tests.integration.test_serve_workers import ESTABLISHED, children, socket_owners, sockets_on, workers

    a = start_exchange(tmp_path, db=cluster.url, extra_env={"GSOMIA_WORKERS": "2"})
    try:
        wait_for(lambda: len(workers(a.server)) == 2, timeout=60, what="two workers")
        cluster.stop()
        victim = workers(a.server)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: victim not in workers(a.server), timeout=30, what="the killed worker gone")
        wait_for(  # each try takes the storage layer's own reconnection attempts (a few seconds)
            lambda: b"failed to start (status 1); trying again in 2 s" in a.server.log.read_bytes(),
            timeout=120,
            what="a second try of the replacement, after a delay",
        )
        assert a.server.proc.poll() is None, "the server stopped because a replacement could not start"
        assert len(children(a.server.proc.pid)) < 10
        cluster.start()
        port = int(a.server.url.rsplit(":", 1)[1])

        def both_serve() -> bool:
            # two connections open at once go one to each serving worker
            with (
                socket.create_connection(("127.0.0.1", port)) as c1,
                socket.create_connection(("127.0.0.1", port)) as c2,
            ):
                for c in (c1, c2):
                    c.sendall(b"GET /healthz HTTP/1.1\r\nHost: gsomia\r\n\r\n")
                if not all(c.recv(65536).startswith(b"HTTP/1.1 200") for c in (c1, c2)):
                    return False
                owners = socket_owners(workers(a.server))
                return len({owners[i] for i in sockets_on(port, ESTABLISHED) if i in owners}) == 2

        wait_for(both_serve, timeout=120, what="the replacement worker serving")
    finally:
        a.stop()
