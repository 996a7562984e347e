"""Wake-ups across processes: which parties' inboxes a commit changed, told to every process.

On PostgreSQL a writer calls :func:`announce` inside its transaction (``pg_notify``, which the
server delivers at commit and never for a rolled-back transaction), and every process runs a
:class:`Listener` on its own connection (``LISTEN``), so an event stream served by process B
wakes as soon as process A commits an item for its party. On SQLite there is no such channel:
streams re-read the store every second (one process per database is the usual SQLite
deployment; several workers work, with that latency for items committed by another).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

__all__ = ["CHANNEL", "Listener", "announce"]

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


class Listener:
    """A thread that listens on :data:`CHANNEL` and calls ``wake(parties)`` for each
    notification; it reconnects by itself after the database went away (and then wakes every
    stream once, since notifications sent meanwhile were lost)."""

    def __init__(self, engine: Engine, wake: Callable[[Iterable[str] | None], None]) -> None:
        """Prepare (nothing connects until :meth:`start`)."""
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._wake = wake
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()
        """Set while the listener holds a connection with LISTEN issued (for health and tests)."""

    def start(self) -> None:
        """Start listening in a daemon thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="gsomia-listener", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop listening (within about a second)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        import psycopg  # noqa: PLC0415 - only PostgreSQL deployments listen

        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    self._wake(None)  # anything committed while we were not listening
                    backoff = 0.1
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._wake(p for p in note.payload.split(",") if p)
            except psycopg.Error as e:
                self.listening.clear()
                log.warning(
                    "inbox notifications: %s; reconnecting in %.1f s", str(e).strip() or type(e).__name__, backoff
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self.listening.clear()
