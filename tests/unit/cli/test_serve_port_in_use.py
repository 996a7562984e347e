"""``gsomia serve``, ``gsomia node serve`` and ``gsomia demo`` on an address another process
listens on: one line naming it and what to do, exit 4 (uvicorn logged its error over several
lines and exited 3, the code of an invalid scenario file), before anything starts."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import uvicorn

from gsomia.crypto import PartyKeys
from gsomia.node.config import NodeConfig
from tests.unit.cli.cli_support import Gsomia, node_folder


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another server listens on, for the test's duration."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The applications uvicorn was asked to serve (none is)."""
    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_options: served.append(app))
    return served


def test_serve_on_a_port_in_use_says_so_in_one_line(gsomia: Gsomia, busy_port: int, started: list[object]) -> None:
    run = gsomia("serve", "--port", str(busy_port))
    assert run.code == 4, run.err
    assert f"error: cannot listen on 127.0.0.1:{busy_port}: Address already in use" in run.err
    assert "give another --port" in run.err and len(run.err.splitlines()) == 1, run.err
    assert started == []


def test_node_serve_on_a_port_in_use_says_so_before_it_follows_the_exchange(
    gsomia: Gsomia, tmp_path: Path, busy_port: int, started: list[object]
) -> None:
    node_folder(tmp_path / "kor", PartyKeys.generate("KOR"), state="current").close()
    run = gsomia("node", "serve", "--dir", str(tmp_path / "kor"), "--port", str(busy_port))
    assert run.code == 4, run.err
    assert f"error: cannot listen on 127.0.0.1:{busy_port}: Address already in use" in run.err, run.err
    assert started == []
    # the port node.json names is checked the same way
    replace(NodeConfig.read(tmp_path / "kor"), port=busy_port).write()
    again = gsomia("node", "serve", "--dir", str(tmp_path / "kor"))
    assert again.code == 4 and f"127.0.0.1:{busy_port}" in again.err, again.err


def test_a_server_that_cannot_start_exits_1_in_one_line(
    gsomia: Gsomia, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("gsomia.cli.common.check_listen", lambda _host, _port: None)

    def fails(_app: object, **_options: object) -> None:
        raise SystemExit(3)  # as uvicorn does when its start-up fails, after logging why

    monkeypatch.setattr(uvicorn, "run", fails)  # how the node serves
    monkeypatch.setattr(uvicorn.Server, "run", lambda _server, **_options: fails(None))  # how the exchange serves
    node_folder(tmp_path / "kor", PartyKeys.generate("KOR"), state="current").close()
    for args in (("serve", "--port", "1"), ("node", "serve", "--dir", str(tmp_path / "kor"))):
        run = gsomia(*args, "--log-level", "warning")
        assert run.code == 1, (args, run.err)
        last = run.err.splitlines()[-1]
        assert last.startswith("error: the server on 127.0.0.1:") and "could not start" in last, run.err
