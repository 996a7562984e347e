"""Opening a database: one that this code cannot migrate is refused in one line saying why and what
to do; a new one is created readable by its owner only."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from gsomia.errors import StorageError
from gsomia.storage.store import Store


def test_a_database_migrated_by_a_newer_release_is_refused_with_what_to_do(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    Store(url).close()
    with sqlite3.connect(tmp_path / "g.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(
        StorageError, match=r"'9999'; it was migrated by a newer gsomia \(this one knows revisions up to 0"
    ):
        Store(url)


def test_a_new_database_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    # it holds sealed content keys, ciphertext and token hashes, as its backups do (mode 0600)
    Store(f"sqlite:///{tmp_path / 'g.db'}").close()
    assert stat.S_IMODE((tmp_path / "g.db").stat().st_mode) == 0o600
    wal = tmp_path / "g.db-wal"
    assert not wal.exists() or stat.S_IMODE(wal.stat().st_mode) == 0o600
