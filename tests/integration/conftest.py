"""A live ``gsomia serve`` on 127.0.0.1, over a real socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

TLS = httpx.create_ssl_context()
"""One TLS context for every test client: httpx builds one for each client otherwise, loading
the trust anchors (tens of milliseconds of CPU), and the tests open thousands of clients."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running server process and how to reach it."""

    url: str
    db: str
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)


def start_server(
    db: str | None, workdir: Path, extra_env: dict[str, str] | None = None, *, port: int | None = None
) -> Server:
    """Start ``gsomia serve`` and wait until /healthz answers (polling readiness, not sleeping).
    With ``db`` None the server picks its database from the data directory; ``port`` serves
    again at an address clients already know (default: a free port)."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if k != "GSOMIA_DB"}
    env |= {"GSOMIA_DATA_DIR": str(workdir), **({"GSOMIA_DB": db} if db is not None else {}), **(extra_env or {})}
    log = workdir / f"server-{port}.log"
    with log.open("ab") as fh:  # a server started again on the same port keeps the earlier log
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gsomia",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(url + "/healthz", timeout=1, verify=TLS).status_code == 200:
                return Server(url, db or "", proc, env, log)
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # readiness poll interval, not a wait for a result
    proc.kill()
    raise RuntimeError(f"server did not become ready:\n{log.read_text(errors='replace')}")


def run_cli(workdir: Path, *args: str, db: str | None = None, code: int = 0) -> subprocess.CompletedProcess[str]:
    """Run ``gsomia *args`` on ``db`` (default: ``g.db`` in ``workdir``, which is also the data
    directory), 200 columns wide, and check its exit code."""
    env = {
        **os.environ,
        "GSOMIA_DB": db or f"sqlite:///{workdir / 'g.db'}",
        "GSOMIA_DATA_DIR": str(workdir),
        "COLUMNS": "200",
    }
    p = subprocess.run(
        [sys.executable, "-m", "gsomia", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    return p


@pytest.fixture(scope="module")
def scenario_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite database with the bundled scenario loaded."""
    path = tmp_path_factory.mktemp("served") / "g.db"
    url = f"sqlite:///{path}"
    subprocess.run(
        [sys.executable, "-m", "gsomia", "scenario", "load", "japan-korea-2019"],
        env={**os.environ, "GSOMIA_DB": url},
        check=True,
        capture_output=True,
    )
    return url


@pytest.fixture(scope="module")
def server(scenario_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(scenario_db, tmp_path_factory.mktemp("srv"))
    yield s
    s.stop()
