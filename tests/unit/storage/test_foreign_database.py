"""A ``--db`` that names another application's SQLite file is refused, never migrated: gsomia's
tables were added to it, even by a command that only reads (``gsomia status``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gsomia.errors import StorageError
from gsomia.storage import db


def _tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM sqlite_master ORDER BY name")]


def test_another_applications_database_is_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "places.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    engine = db.create(f"sqlite:///{path}")
    try:
        with pytest.raises(StorageError, match=r"not a gsomia database \(it holds the tables moz_places"):
            db.migrate(engine)
    finally:
        engine.dispose()
    assert _tables(path) == ["moz_places"]


def test_an_empty_file_and_a_gsomia_database_are_migrated(tmp_path: Path) -> None:
    path = tmp_path / "gsomia.db"
    for _ in range(2):  # new, then already at the latest revision
        engine = db.create(f"sqlite:///{path}")
        try:
            db.migrate(engine)
        finally:
            engine.dispose()
    assert "alembic_version" in _tables(path)
