"""``gsomia node status`` as text into a pipe or a file: one line per fact, never wrapped."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsomia.cli import main
from gsomia.crypto import PartyKeys
from tests.unit.cli.cli_support import node_folder

ERROR = "exchange unreachable: connection refused by 10.20.30.40:8443 after 3 attempts (TLS handshake never began)"


def test_status_lines_are_not_wrapped_at_the_width_of_an_output_that_is_not_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A script greps a line for what it wants (the exchange's last error, the missing key set):
    # a fact cut over two lines is not found.
    directory = tmp_path / "kor"
    store = node_folder(directory, PartyKeys.generate("KOR"))
    lost = PartyKeys.generate("KOR").fingerprint()
    store.put_json("keys.missing", {"fingerprint": lost, "registered_at": None, "node_current": None})
    store.put("exchange.reachable", "false")
    store.put("exchange.error", ERROR)
    store.close()
    monkeypatch.setenv("COLUMNS", "40")  # a narrow output that is not a terminal (captured)
    capsys.readouterr()
    assert main(["node", "status", "--dir", str(directory)]) == 0
    out = capsys.readouterr().out
    assert f"  last error: {ERROR}\n" in out
    (missing,) = [line for line in out.splitlines() if "KEYS MISSING" in line]
    assert lost in missing and missing.endswith("or run 'gsomia node keys rotate'")
    assert max(len(line) for line in out.splitlines()) > 40
