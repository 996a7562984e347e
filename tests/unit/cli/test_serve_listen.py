"""``gsomia serve`` on an address it cannot listen on: one error line saying what to change, and
exit 4 however many workers (never uvicorn's own exit code 3, which the table gives to an
invalid scenario file). A key-encryption key it cannot use is named before it serves."""

from __future__ import annotations

import base64
import secrets
import socket
from pathlib import Path

import pytest

from gsomia.cli import common
from tests.unit.cli.cli_support import Gsomia


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_error_line_and_exit_4(gsomia: Gsomia, tmp_path: Path, workers: str) -> None:
    db = f"sqlite:///{tmp_path / 'gsomia.db'}"  # its own: serving records the data directory's ledger key
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = gsomia("--db", db, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", workers)
    assert run.code == 4, run.err
    errors = [line for line in run.err.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use: give another --port, "
        "or a --host of this machine"
    ]


def test_serve_names_the_key_encryption_key_before_it_serves(
    gsomia: Gsomia, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the early check of the address is left out, so that the listening socket is what stops
    # a serve that did not check the KEK first
    monkeypatch.setattr(common, "check_listen", lambda host, port: None)
    data = tmp_path / "data"  # the fixture's data directory
    data.mkdir(mode=0o700)
    kek = data / "exchange.kek"
    kek.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    kek.chmod(0o644)  # put back with the wrong mode
    with socket.socket() as taken:  # were the KEK not checked first, serve would stop here instead
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = gsomia("--db", f"sqlite:///{tmp_path / 'gsomia.db'}", "serve", "--port", str(port))
    assert run.code == 4, run.err
    assert f"error: key-encryption key {kek} is accessible by group or others (mode 0644)" in run.err
    assert f"chmod 600 {kek}" in run.err
