"""SQLite commits are synced before they are answered (``synchronous=FULL``) unless an
operator chooses otherwise: a commit the exchange acknowledged must survive a power loss."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gsomia.bootstrap import Settings, build
from gsomia.cli import main
from gsomia.storage.store import Store

# PRAGMA synchronous answers a number (sqlite.org/pragma.html#pragma_synchronous)
_MODES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def _modes(store: Store) -> tuple[str, str]:
    with store.engine.connect() as conn:
        journal = str(conn.exec_driver_sql("PRAGMA journal_mode").scalar())
        sync = _MODES[int(conn.exec_driver_sql("PRAGMA synchronous").scalar() or 0)]
    return journal, sync


def test_the_default_is_wal_with_a_sync_at_every_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GSOMIA_SQLITE_SYNCHRONOUS", raising=False)
    app = build(Settings(db=f"sqlite:///{tmp_path / 'g.db'}", data_dir=tmp_path))
    try:
        assert _modes(app.store) == ("wal", "FULL")
    finally:
        app.close()


def test_a_store_opened_without_settings_is_durable_too(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'g.db'}")
    try:
        assert _modes(store) == ("wal", "FULL")
    finally:
        store.close()


def test_normal_stays_selectable_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GSOMIA_SQLITE_SYNCHRONOUS", "NORMAL")
    app = build(Settings(db=f"sqlite:///{tmp_path / 'g.db'}", data_dir=tmp_path))
    try:
        assert _modes(app.store) == ("wal", "NORMAL")
    finally:
        app.close()


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValidationError, match="sqlite_synchronous"):
        Settings(sqlite_synchronous="SOMETIMES")


def test_the_mode_is_read_in_any_case() -> None:
    assert Settings(sqlite_synchronous="normal").sqlite_synchronous == "NORMAL"


def test_a_bad_mode_is_one_line_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GSOMIA_SQLITE_SYNCHRONOUS", "sometimes")
    monkeypatch.setenv("GSOMIA_DATA_DIR", str(tmp_path))
    assert main(["status"]) == 4
    err = capsys.readouterr().err
    assert err == (
        "error: GSOMIA_SQLITE_SYNCHRONOUS: Input should be 'OFF', 'NORMAL', 'FULL' or 'EXTRA' (got 'SOMETIMES')\n"
    )
    assert not (tmp_path / "gsomia.db").exists()
