"""Wake-ups across processes on SQLite: a watcher notices another connection's commit
(``PRAGMA data_version``) and names the parties whose inboxes grew."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from gsomia.storage.channel import Listener, SqliteWatcher, commit_listener
from gsomia.storage.store import Store


class Woken:
    """What the watcher woke, in order (None: every stream)."""

    def __init__(self) -> None:
        self.calls: list[list[str] | None] = []
        self.newest: list[dict[str, int]] = []
        self.changed = threading.Condition()

    def __call__(self, parties: Iterable[str] | None) -> None:
        with self.changed:
            self.calls.append(None if parties is None else sorted(parties))
            if isinstance(parties, Mapping):
                self.newest.append(dict(parties))
            self.changed.notify_all()

    def wait_for(self, count: int) -> list[list[str] | None]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.calls) >= count, timeout=10), self.calls
            return list(self.calls)


def _inbox(path: Path, *parties: str) -> None:
    """Commit inbox items on a connection of another 'process'."""
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO inbox_events (party, kind, ref, body, created_at) VALUES (?, 'delivery', 'd', '{}', ?)",
            [(p, "2019-11-22 01:00:00.000000") for p in parties],
        )


def test_a_commit_by_another_connection_wakes_the_parties_whose_inboxes_grew(tmp_path: Path) -> None:
    path = tmp_path / "gsomia.db"
    Store(f"sqlite:///{path}").close()  # migrated
    _inbox(path, "USA")  # before the watcher starts: not news to it
    woken = Woken()
    watcher = SqliteWatcher(str(path), woken, interval=0.001)
    watcher.start()
    try:
        assert woken.wait_for(1) == [None]  # at start: every stream reads once
        assert watcher.listening.is_set()
        _inbox(path, "KOR", "JPN", "KOR")
        assert woken.wait_for(2)[1] == ["JPN", "KOR"]
        assert woken.newest[-1] == {"JPN": 3, "KOR": 4}  # each with its newest seq
        with sqlite3.connect(path) as conn:  # a commit that adds no inbox item wakes nobody
            conn.execute("UPDATE exchange_state SET last_commit_at = last_commit_at")
        _inbox(path, "AUS")
        assert woken.wait_for(3)[2] == ["AUS"]
    finally:
        watcher.stop()
    assert not watcher.listening.is_set()


def test_the_database_decides_which_listener_a_process_runs(tmp_path: Path, pg_url: str) -> None:
    wake = Woken()
    on_file = Store(f"sqlite:///{tmp_path / 'g.db'}")
    in_memory = Store("sqlite://")
    on_pg = Store(pg_url)
    try:
        assert isinstance(commit_listener(on_file.engine, wake), SqliteWatcher)
        assert commit_listener(in_memory.engine, wake) is None  # no other process can open it
        assert isinstance(commit_listener(on_pg.engine, wake), Listener)
    finally:
        for store in (on_file, in_memory, on_pg):
            store.close()


def test_a_watcher_never_creates_the_database_it_watches(tmp_path: Path) -> None:
    path = tmp_path / "gsomia.db"
    watcher = SqliteWatcher(str(path), Woken())
    with pytest.raises(sqlite3.OperationalError):
        watcher._session()  # what its thread retries, with a growing pause, until the file exists
    assert not path.exists()
    assert not watcher.listening.is_set()
