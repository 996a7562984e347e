"""Live party nodes for the interop tests: ``gsomia node init`` and ``gsomia node serve`` as
subprocesses against a live exchange, each with an ``interop.json``, over real sockets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import TLS, free_port
from tests.integration.exchange_support import Exchange

PASSWORD = "correct horse battery staple"


@dataclass
class Node:
    """A running node and how to reach it."""

    party: str
    url: str
    dir: Path
    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]

    @property
    def taxii(self) -> str:
        return self.url + "/taxii2/"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gsomia", "node", *args, "--dir", str(self.dir)],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)


def start_node(ex: Exchange, party: str, workdir: Path, interop: dict[str, Any] | None = None) -> Node:
    """Initialise a node for ``party`` (its key file and token from the exchange fixture), add an
    officer ``analyst`` and an admin ``chief``, write ``interop.json``, serve it, and wait until
    its TAXII discovery answers (polling readiness, not sleeping for a result)."""
    directory = workdir / f"node-{party.lower()}"
    token_file = workdir / f"{party}.token"
    token_file.write_text(ex.tokens[party], encoding="utf-8")
    env = {**os.environ, "GSOMIA_NODE_PASSWORD": PASSWORD, "PYTHONFAULTHANDLER": "1"}
    env.pop("GSOMIA_NODE_KEY", None)
    port = free_port()

    def run(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "gsomia", "node", *args, "--dir", str(directory)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr + done.stdout

    run(
        "init",
        "--party",
        party,
        "--exchange",
        ex.url,
        "--key",
        str(ex.client_dir / f"{party}.keys"),
        "--token-file",
        str(token_file),
        "--port",
        str(port),
    )
    run("users", "add", "analyst", "--role", "officer")
    run("users", "add", "chief", "--role", "admin")
    if interop is not None:
        (directory / "interop.json").write_text(json.dumps(interop, ensure_ascii=False), encoding="utf-8")
    log = workdir / f"node-{party.lower()}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gsomia",
                "node",
                "serve",
                "--dir",
                str(directory),
                "--witness-interval",
                "1",
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    node = Node(party, url, directory, proc, log, env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"node exited early:\n{log.read_text(errors='replace')}")
        try:
            r = httpx.get(node.taxii, auth=("analyst", PASSWORD), timeout=2, verify=TLS)
            if r.status_code == 200:
                return node
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # readiness poll interval, not a wait for a result
    node.stop()
    raise RuntimeError(f"node did not become ready:\n{log.read_text(errors='replace')}")
