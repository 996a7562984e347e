"""A database error's text never quotes the values bound to its statement: they are token
hashes, sealed content keys, incident texts and other parties' report metadata, and the text
reaches logs (a failed group commit logs its statement, with every party's rows) and terminals."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from gsomia.storage import db


def test_a_failed_statement_names_no_bound_value(tmp_path: Path) -> None:
    engine = db.create(f"sqlite:///{tmp_path / 'gsomia.db'}")
    try:
        with pytest.raises(SQLAlchemyError) as failed, engine.connect() as conn:
            conn.execute(text("INSERT INTO no_such_table (secret) VALUES (:secret)"), {"secret": "incident text"})
    finally:
        engine.dispose()
    assert "no_such_table" in str(failed.value)  # the statement is still named
    assert "incident text" not in str(failed.value)
