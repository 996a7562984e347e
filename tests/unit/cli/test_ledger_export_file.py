"""``gsomia ledger export --out FILE`` writes a new file of its own: never through a file or a
link left beside FILE, and readable by its owner only (it holds every party's metadata)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from tests.unit.cli.cli_support import Gsomia


def test_the_export_goes_to_a_new_private_file_never_through_a_planted_link(gsomia: Gsomia, tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("the operator's own file\n")
    (folder / ".ledger.jsonl.tmp").symlink_to(victim)  # left where an old release wrote its temporary file
    out = folder / "ledger.jsonl"
    run = gsomia("ledger", "export", "--out", str(out))
    assert run.code == 0, run.err
    assert victim.read_text() == "the operator's own file\n"
    assert out.read_text().startswith('{"format":"gsomia-ledger-export/v1"')
    assert (out.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in folder.iterdir()) == [".ledger.jsonl.tmp", "ledger.jsonl"]


def _own_db(gsomia: Gsomia, tmp_path: Path) -> str:
    """A database of this test's own (the module's shared one has its ledger key elsewhere)."""
    db = f"sqlite:///{tmp_path / 'own.db'}"
    assert gsomia("--db", db, "scenario", "load", "japan-korea-2019").code == 0
    return db


def test_the_export_to_a_pipe_is_written_into_it_never_replaced_by_a_file(gsomia: Gsomia, tmp_path: Path) -> None:
    # '-o /dev/stdout' (a link to a pipe or a terminal) renamed a file over the link, as root
    fifo = tmp_path / "export.pipe"
    os.mkfifo(fifo)
    read: list[bytes] = []

    def reader() -> None:
        with fifo.open("rb") as fh:
            read.append(fh.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    link = tmp_path / "stdout"
    link.symlink_to(fifo)
    run = gsomia("--db", _own_db(gsomia, tmp_path), "ledger", "export", "--out", str(link))
    assert run.code == 0, run.err
    thread.join(timeout=30)
    assert read and read[0].startswith(b'{"format":"gsomia-ledger-export/v1"'), read
    assert link.is_symlink() and stat.S_ISFIFO(fifo.stat().st_mode)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_the_export_to_dash_goes_to_standard_output(gsomia: Gsomia, tmp_path: Path) -> None:
    run = gsomia("--db", _own_db(gsomia, tmp_path), "ledger", "export", "--out", "-")
    assert run.code == 0, run.err
    assert run.out.startswith('{"format":"gsomia-ledger-export/v1"'), run.out[:200]
    assert not Path("-").exists()


def test_the_export_is_never_written_into_another_users_named_pipe(
    gsomia: Gsomia, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # made under the name given in a folder anyone may write: its owner would read every
    # party's metadata
    db = _own_db(gsomia, tmp_path)
    fifo = tmp_path / "export.pipe"
    os.mkfifo(fifo)
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_bytes()), daemon=True)
    reader.start()
    monkeypatch.setattr(os, "getuid", lambda: os.stat(fifo).st_uid + 1)
    run = gsomia("--db", db, "ledger", "export", "--out", str(fifo))
    reader.join(timeout=30)
    assert run.code == 4 and "a named pipe of another user" in run.err, run.err
    assert read == [b""]
