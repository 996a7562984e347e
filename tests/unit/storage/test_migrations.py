"""Opening a database this code cannot migrate: one line saying why and what to do, no traceback."""

from __future__ import annotations

import sqlite3
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
