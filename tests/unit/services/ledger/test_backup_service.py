"""``backup_database``: the copy is checked against the live ledger before it is put in place."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from gsomia.bootstrap import Settings, build
from gsomia.errors import Conflict, InvalidInput, LedgerInvalid, UnknownEntity
from gsomia.ledger.checkpoint import b64
from gsomia.services.ledger.backup import BackupResult, backup_database
from tests.harness import Harness


def _backup(h: Harness, out: Path, *, force: bool = False) -> BackupResult:
    settings = h.app.settings
    return backup_database(
        h.app.store, h.app.ledger, out, key_file=settings.ledger_key_path(), clock=h.clock, force=force
    )


def test_the_backup_holds_the_exchange_and_its_ledger(harness: Harness, tmp_path: Path) -> None:
    harness.submit("JPN", id="before-1")
    harness.submit("JPN", id="before-2", recipients=["KOR", "USA"])
    size = harness.app.ledger.size()
    out = tmp_path / "backups" / "b.db"
    out.parent.mkdir()
    result = _backup(harness, out)
    harness.submit("JPN", id="after-1")  # the live exchange goes on; the backup does not change

    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert result.bytes == out.stat().st_size == result.pages * result.page_size
    assert sorted(p.name for p in out.parent.iterdir()) == ["b.db"]  # no temporary or WAL file left
    live = harness.app.ledger
    assert live.size() > result.ledger_size == size
    assert result.ledger_root == live.consistency(result.ledger_size)["old_root"]

    copy = build(Settings(db=f"sqlite:///{out}", data_dir=harness.app.settings.data_dir))
    try:
        assert copy.ledger.size() == result.ledger_size
        assert b64(copy.ledger.verify().enforce().checkpoint.root_hash) == result.ledger_root  # type: ignore[union-attr]
        auditor = copy.exchange.identity.authenticate(harness.tokens["auditor"])  # principals came along
        assert auditor.role.value == "auditor"
        jpn = harness.principals["JPN"]
        assert copy.exchange.submissions.result(jpn, "before-2") == harness.exchange.submissions.result(jpn, "before-2")
        with pytest.raises(UnknownEntity):
            copy.exchange.submissions.result(jpn, "after-1")
    finally:
        copy.close()


def test_an_existing_file_is_kept_unless_forced(harness: Harness, tmp_path: Path) -> None:
    out = tmp_path / "b.db"
    out.write_bytes(b"last week's backup")
    with pytest.raises(Conflict, match="--force"):
        _backup(harness, out)
    assert out.read_bytes() == b"last week's backup"
    assert _backup(harness, out, force=True).file == out
    assert out.read_bytes().startswith(b"SQLite format 3\x00")


def test_a_ledger_that_does_not_verify_gives_no_backup(harness: Harness, tmp_path: Path) -> None:
    harness.submit("JPN", id="r-1")
    conn = sqlite3.connect(harness.app.store.engine.url.database or "")
    conn.execute(
        "UPDATE ledger_entries SET body = CAST(replace(CAST(body AS TEXT), 'KOR', 'USA') AS BLOB) WHERE idx = 1"
    )
    conn.commit()
    conn.close()
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(LedgerInvalid, match="entry 1"):
        _backup(harness, folder / "b.db")
    assert list(folder.iterdir()) == []


def test_a_folder_is_not_a_file_name(harness: Harness, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="folder"):
        _backup(harness, tmp_path)
