"""``restore_database``: a backup is checked beside the database, then put in its place, all or
nothing; a database in use, a damaged or altered backup, or a WAL left beside the database
never yield a mixed database."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from gsomia.bootstrap import Settings, build
from gsomia.errors import Conflict, InvalidInput, LedgerInvalid
from gsomia.services.ledger.backup import RestoreResult, backup_database, restore_database
from gsomia.storage import backup as sqlite_backup
from gsomia.storage.backup import sqlite_file
from tests.harness import Harness


def _made(harness: Harness, tmp_path: Path) -> tuple[Path, Path, int]:
    """A backup of ``harness`` after two reports, one more report after it, and the harness
    closed: (the database, the backup, the ledger size in the backup)."""
    harness.submit("JPN", id="before-1")
    harness.submit("JPN", id="before-2", recipients=["KOR", "USA"])
    out = tmp_path / "b.db"
    settings = harness.app.settings
    made = backup_database(
        harness.app.store, harness.app.ledger, out, key_file=settings.ledger_key_path(), clock=harness.clock
    )
    harness.submit("JPN", id="after-1")
    harness.close()
    database = sqlite_file(harness.app.settings.database_url())
    assert database is not None
    return database, out, made.ledger_size


def _restore(harness: Harness, backup: Path, *, force: bool = True) -> RestoreResult:
    settings = harness.app.settings
    return restore_database(
        settings.database_url(),
        backup,
        key_file=settings.ledger_key_path(),
        origin=settings.ledger_origin,
        clock=harness.clock,
        force=force,
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ledger_size(harness: Harness) -> int:
    app = build(Settings(db=harness.app.settings.database_url(), data_dir=harness.app.settings.data_dir))
    try:
        return app.ledger.verify().enforce().entries
    finally:
        app.close()


def test_a_backup_is_restored_in_place_of_the_database(harness: Harness, tmp_path: Path) -> None:
    database, backup, size = _made(harness, tmp_path)
    with pytest.raises(Conflict, match="--force"):
        _restore(harness, backup, force=False)
    result = _restore(harness, backup)
    assert (result.replaced, result.ledger_size, result.database) == (True, size, database)
    assert _ledger_size(harness) == size
    assert not list(database.parent.glob(".gsomia-backup-*"))


def test_an_altered_or_damaged_backup_is_refused_and_the_database_kept(harness: Harness, tmp_path: Path) -> None:
    database, backup, _ = _made(harness, tmp_path)
    before = _digest(database)
    altered = tmp_path / "altered.db"
    altered.write_bytes(backup.read_bytes())
    with sqlite3.connect(altered) as db:
        db.execute("UPDATE ledger_entries SET body = CAST(replace(body, 'JPN', 'JPX') AS BLOB) WHERE idx = 4")
    with pytest.raises(LedgerInvalid, match="nothing was restored"):
        _restore(harness, altered)
    cut = tmp_path / "cut.db"
    cut.write_bytes(backup.read_bytes()[: backup.stat().st_size // 2])
    with pytest.raises(InvalidInput, match=r"not a whole SQLite database|damaged"):
        _restore(harness, cut)
    assert _digest(database) == before
    assert not list(database.parent.glob(".gsomia-backup-*"))


def test_a_database_in_use_is_not_replaced(harness: Harness, tmp_path: Path) -> None:
    database, backup, _ = _made(harness, tmp_path)
    before = _digest(database)
    server = sqlite3.connect(database)  # a server still running on it
    try:
        server.execute("SELECT count(*) FROM ledger_entries").fetchone()
        with pytest.raises(InvalidInput, match="a process is using the database"):
            _restore(harness, backup)
    finally:
        server.close()
    assert _digest(database) == before


def test_a_wal_left_beside_the_database_is_not_replayed_into_the_restored_one(harness: Harness, tmp_path: Path) -> None:
    database, backup, size = _made(harness, tmp_path)
    pid = os.fork()
    if pid == 0:  # a server that dies with a commit still in the WAL
        db = sqlite3.connect(database, isolation_level=None)
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute("CREATE TABLE after_the_backup(x)")
        os._exit(0)
    os.waitpid(pid, 0)
    assert database.with_name(database.name + "-wal").exists()
    _restore(harness, backup)
    assert not database.with_name(database.name + "-wal").exists()
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'after_the_backup'").fetchone() == (0,)
    assert _ledger_size(harness) == size


def test_a_restore_cut_short_leaves_the_database_as_it_was(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database, backup, _ = _made(harness, tmp_path)
    before = _digest(database)

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sqlite_backup, "publish", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _restore(harness, backup)
    assert _digest(database) == before
    assert not list(database.parent.glob(".gsomia-backup-*"))
