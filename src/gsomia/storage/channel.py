"""Wake-ups across processes: which parties' inboxes a commit changed, told to every process.

On PostgreSQL a writer calls :func:`announce` inside its transaction (``pg_notify``, which the
server delivers at commit and never for a rolled-back transaction), and every process runs a
:class:`Listener` on its own connection (``LISTEN``), so an event stream served by process B
wakes as soon as process A commits an item for its party.

SQLite has no such channel. There each process runs a :class:`SqliteWatcher` instead: on a
connection of its own it asks ``PRAGMA data_version`` every few milliseconds, which changes
whenever another connection has committed (sqlite.org/pragma.html#pragma_data_version), and
then reads which parties' inboxes grew since it last looked. A stream served by one ``gsomia
serve`` process thus wakes within that interval of a commit by another process on the same
database file, not at its once-a-second re-read.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gsomia.storage.db import postgresql_conninfo

__all__ = ["CHANNEL", "CommitListener", "Listener", "SqliteWatcher", "announce", "commit_listener"]

log = logging.getLogger(__name__)

CHANNEL = "gsomia_inbox"
"""The PostgreSQL notification channel; the payload is the parties, comma-separated."""

_MAX_PAYLOAD = 7900  # PostgreSQL refuses payloads of 8,000 bytes or more


def announce(s: Session, parties: Iterable[str]) -> None:
    """Tell every process, when this transaction commits, that these parties' inboxes changed."""
    if s.get_bind().dialect.name != "postgresql":
        return
    payload = ",".join(sorted(set(parties)))
    while payload:
        head, payload = (payload, "") if len(payload) <= _MAX_PAYLOAD else _split(payload)
        s.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": head})


def _split(payload: str) -> tuple[str, str]:
    cut = payload.rfind(",", 0, _MAX_PAYLOAD)
    return payload[:cut], payload[cut + 1 :]


class _CommitThread:
    """A daemon thread that holds a connection of its own to hear other processes' commits, and
    opens it again by itself after a database error, after a pause growing from 0.1 to 5 s."""

    _thread_name = "gsomia-commits"
    _errors: tuple[type[Exception], ...] = ()

    def __init__(self, wake: Callable[[Iterable[str] | None], None]) -> None:
        self._wake = wake
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = 0.1
        self.listening = threading.Event()
        """Set while the thread holds its connection (for health and tests)."""

    def start(self) -> None:
        """Start in a daemon thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop (within about a second)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _connected(self) -> None:
        """Called by :meth:`_session` once its connection is ready."""
        self.listening.set()
        self._backoff = 0.1
        self._wake(None)  # anything committed while nobody was listening

    def _session(self) -> None:
        """Connect, then hear commits until stopped; raises one of ``_errors`` on a failure."""
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._session()
            except self._errors as e:
                self.listening.clear()
                log.warning(
                    "inbox wake-ups: %s; connecting again in %.1f s", str(e).strip() or type(e).__name__, self._backoff
                )
                self._stop.wait(self._backoff)
                self._backoff = min(self._backoff * 2, 5.0)
        self.listening.clear()


class Listener(_CommitThread):
    """A thread that listens on :data:`CHANNEL` and calls ``wake(parties)`` for each
    notification; it reconnects by itself after the database went away (and then wakes every
    stream once, since notifications sent meanwhile were lost)."""

    _thread_name = "gsomia-listener"

    def __init__(self, engine: Engine, wake: Callable[[Iterable[str] | None], None]) -> None:
        """Prepare (nothing connects until :meth:`start`)."""
        super().__init__(wake)
        import psycopg  # noqa: PLC0415 - only PostgreSQL deployments listen

        self._psycopg = psycopg
        self._errors = (psycopg.Error,)
        # the engine's parameters and timeouts: a listening connection is idle, so only
        # keepalives notice a server host that is gone (it would otherwise go on "listening" to
        # nothing)
        self._dsn = postgresql_conninfo(engine)

    def _session(self) -> None:
        with self._psycopg.connect(self._dsn, autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self._connected()
            while not self._stop.is_set():
                for note in conn.notifies(timeout=1.0):
                    self._wake(p for p in note.payload.split(",") if p)


class CommitListener(Protocol):
    """What a process runs to hear other processes' commits (:class:`Listener` on PostgreSQL,
    :class:`SqliteWatcher` on SQLite)."""

    listening: threading.Event

    def start(self) -> None:
        """Start in a daemon thread."""

    def stop(self) -> None:
        """Stop (within about a second)."""


WATCH_INTERVAL = 0.005
"""Seconds between two looks at an SQLite database's ``data_version``: a wake-up's delay at most."""


class SqliteWatcher(_CommitThread):
    """A thread that notices commits by other connections to an SQLite database file (``PRAGMA
    data_version``) and calls ``wake(grown)`` with the parties whose inboxes grew, each with its
    newest inbox seq (this process's own commits count too: a stream that has read that far is
    not woken again); it reopens its connection by itself after an error (and then wakes every
    stream once)."""

    _thread_name = "gsomia-sqlite-watcher"
    _errors = (sqlite3.Error,)

    def __init__(
        self, path: str, wake: Callable[[Iterable[str] | None], None], *, interval: float = WATCH_INTERVAL
    ) -> None:
        """Prepare (nothing is opened until :meth:`start`)."""
        super().__init__(wake)
        self._path = path
        self._interval = interval

    def _session(self) -> None:
        # mode=rw: never create an empty database where the exchange's file should be; autocommit:
        # every statement reads the database as last committed
        uri = Path(self._path).resolve().as_uri() + "?mode=rw"
        conn = sqlite3.connect(uri, uri=True, timeout=5, isolation_level=None, check_same_thread=False)
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            seq = int(conn.execute("SELECT coalesce(max(seq), 0) FROM inbox_events").fetchone()[0])
            self._connected()
            while not self._stop.wait(self._interval):
                now = conn.execute("PRAGMA data_version").fetchone()[0]
                if now == version:
                    continue
                version = now
                grown = conn.execute(
                    "SELECT party, max(seq) FROM inbox_events WHERE seq > ? GROUP BY party", (seq,)
                ).fetchall()
                if grown:
                    seq = max(int(top) for _, top in grown)
                    self._wake({str(party): int(top) for party, top in grown})
        finally:
            conn.close()


def commit_listener(engine: Engine, wake: Callable[[Iterable[str] | None], None]) -> CommitListener | None:
    """What this database needs to hear other processes' commits: a :class:`Listener` on
    PostgreSQL, a :class:`SqliteWatcher` on an SQLite file, nothing for an in-memory database
    (no other process can open it)."""
    if engine.dialect.name == "postgresql":
        return Listener(engine, wake)
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or "mode=memory" in database:
        return None
    return SqliteWatcher(database, wake)
