"""``gsomia node status`` shows the CoT bridge's counters as the serving node last noted them,
stale events (not sent, in and out) and the TCP connections refused or closed idle among them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from gsomia.cli import main
from gsomia.crypto import PartyKeys
from tests.unit.cli.cli_support import node_folder

COUNTS = {"received": 9, "sent": 5, "unmapped": 1, "malformed": 0, "refused": 0, "dropped": 0, "last_error": None}


def _node(directory: Path, cot: Mapping[str, object]) -> None:
    store = node_folder(directory, PartyKeys.generate("KOR"))
    store.put("interop.cot", json.dumps(cot))
    store.close()


def _cot_line(directory: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["node", "status", "--dir", str(directory)]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "CoT in:" in line]
    return line


def test_status_counts_stale_cot_events_in_and_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cot = {"listening": [], "in": COUNTS | {"stale": 3}, "out": {"sent": 4, "failed": 0, "dropped": 0, "stale": 2}}
    _node(tmp_path / "kor", cot)
    line = _cot_line(tmp_path / "kor", capsys)
    assert "0 dropped, 3 stale; CoT out:" in line and "0 dropped, 2 stale" in line


def test_counters_noted_by_an_older_node_show_no_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _node(tmp_path / "kor", {"listening": [], "in": COUNTS, "out": {"sent": 4, "failed": 0, "dropped": 0}})
    line = _cot_line(tmp_path / "kor", capsys)
    assert "0 dropped, 0 stale; CoT out:" in line


def test_status_counts_tracks_withheld_from_an_endpoint_and_reports_that_are_no_track(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = {"sent": 4, "failed": 0, "dropped": 0, "stale": 0, "withheld": 6, "refused": 2}
    _node(tmp_path / "kor", {"listening": [], "in": COUNTS | {"stale": 0}, "out": out})
    line = _cot_line(tmp_path / "kor", capsys)
    assert "0 stale, 6 withheld (the marking does not allow the endpoint), 2 refused (no track)" in line


def test_status_counts_cot_tcp_connections_refused_and_closed_idle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cin = COUNTS | {"stale": 0, "idle_closed": 7, "connections_refused": 3}
    _node(tmp_path / "kor", {"listening": [], "in": cin, "out": {"sent": 4, "failed": 0, "dropped": 0}})
    line = _cot_line(tmp_path / "kor", capsys)
    assert "CoT TCP connections: 3 refused (too many open), 7 closed idle" in line
    _node(tmp_path / "old", {"listening": [], "in": COUNTS, "out": {"sent": 4, "failed": 0, "dropped": 0}})
    assert "CoT TCP connections: 0 refused (too many open), 0 closed idle" in _cot_line(tmp_path / "old", capsys)
