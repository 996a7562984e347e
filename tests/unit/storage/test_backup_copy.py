"""The online copy reads one snapshot: commits that land while it copies are not in it, and
what is in it is whole."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from gsomia.errors import Conflict, InvalidInput
from gsomia.storage import backup


def _database(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE state (id INTEGER PRIMARY KEY, v BLOB)")
    conn.execute("CREATE TABLE entries (id INTEGER PRIMARY KEY, v BLOB)")
    for i in range(rows):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO state (v) VALUES (?)", (bytes(600),))
        conn.execute("INSERT INTO entries (v) VALUES (?)", (str(i).encode() * 100,))
        conn.execute("COMMIT")
    conn.close()  # the last connection checkpoints the WAL into the file


def _counts(path: Path) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        state = conn.execute("SELECT count(*) FROM state").fetchone()[0]
        entries = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    return int(state), int(entries)


def test_commits_made_during_the_copy_are_not_in_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = tmp_path / "live.db"
    _database(live, 400)
    # A writer that holds the WAL open, as a running server does: its commits stay in the WAL.
    writer = sqlite3.connect(live, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    for _ in range(50):
        writer.execute("BEGIN")
        writer.execute("INSERT INTO state (v) VALUES (?)", (bytes(600),))
        writer.execute("INSERT INTO entries (v) VALUES (?)", (b"in the WAL",))
        writer.execute("COMMIT")
    steps: list[tuple[int, int]] = []

    def commit_between_steps(done: int, total: int) -> None:
        steps.append((done, total))
        writer.execute("BEGIN")
        writer.execute("INSERT INTO state (v) VALUES (?)", (bytes(600),))
        writer.execute("INSERT INTO entries (v) VALUES (?)", (b"late",))
        writer.execute("COMMIT")

    monkeypatch.setattr(backup, "STEP_PAGES", 8)
    copy = backup.copy_sqlite(live, tmp_path, progress=commit_between_steps)
    writer.close()

    assert len(steps) > 10, "the copy was not made in steps"
    assert steps[-1][0] == steps[-1][1] == copy.pages
    assert _counts(copy.path) == (450, 450)  # the WAL's commits are in; none made while copying
    assert _counts(live) == (450 + len(steps), 450 + len(steps))
    assert stat.S_IMODE(copy.path.stat().st_mode) == 0o600


def test_sealed_copy_is_one_file_and_publishing_never_overwrites_by_default(tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    _database(live, 10)
    copy = backup.copy_sqlite(live, tmp_path)
    size = backup.seal(copy.path)
    assert size == copy.path.stat().st_size == copy.pages * copy.page_size
    conn = sqlite3.connect(copy.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()

    out = tmp_path / "kept.db"
    out.write_bytes(b"an earlier backup")
    with pytest.raises(Conflict, match="--force"):
        backup.publish(copy.path, out, force=False)
    assert out.read_bytes() == b"an earlier backup"
    backup.publish(copy.path, out, force=True)
    assert _counts(out) == (10, 10)
    assert not copy.path.exists()


def test_a_missing_source_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no database"):
        backup.copy_sqlite(tmp_path / "absent.db", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_only_sqlite_files_are_copied(tmp_path: Path) -> None:
    assert backup.sqlite_file(f"sqlite:///{tmp_path / 'g.db'}") == tmp_path / "g.db"
    assert backup.sqlite_file("postgresql://gsomia@db.example/gsomia") is None
    with pytest.raises(InvalidInput, match="in-memory"):
        backup.sqlite_file("sqlite://")


def test_the_file_copied_is_the_one_sqlite_opens(tmp_path: Path) -> None:
    # a URI filename only with uri=true (as gsomia.storage.db.sqlite_path reads it)
    assert backup.sqlite_file(f"sqlite:///file:{tmp_path / 'g.db'}?mode=rw&uri=true") == tmp_path / "g.db"
    assert backup.sqlite_file("sqlite:///file:sub/g%20x.db?uri=true") == Path("sub/g x.db")
    assert backup.sqlite_file("sqlite:///file:g.db") == Path("file:g.db")
    assert backup.sqlite_file(f"sqlite:///{tmp_path / 'file:g.db'}") == tmp_path / "file:g.db"
    with pytest.raises(InvalidInput, match="in-memory"):
        backup.sqlite_file("sqlite:///file:shared?mode=memory&cache=shared&uri=true")
