"""The timeouts every PostgreSQL connection carries: a server that accepts the connection and
never answers, or a server host that is gone, fails the connection instead of holding a request
(or the start of ``gsomia serve``) for as long as the kernel's own limits."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gsomia.bootstrap import Settings, build
from gsomia.errors import StorageError
from gsomia.storage import db
from gsomia.storage.channel import Listener


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts every connection and never sends a byte: a port that is not
    PostgreSQL's, or a server wedged before it answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def test_a_server_that_never_answers_fails_the_start_with_a_message_instead_of_hanging(
    silent_server: int, tmp_path: Path
) -> None:
    outcome: list[BaseException] = []

    def start() -> None:
        try:
            build(Settings(db=f"postgresql://gsomia@127.0.0.1:{silent_server}/gsomia", data_dir=tmp_path)).close()
        except BaseException as e:  # noqa: BLE001 - what the start raised is the result
            outcome.append(e)

    starter = threading.Thread(target=start, daemon=True)
    starter.start()
    starter.join(120)  # the default connection timeout is 10 s; without one it waits forever
    assert not starter.is_alive(), "the start is still waiting for a server that never answers"
    assert len(outcome) == 1 and isinstance(outcome[0], StorageError), outcome
    assert "connection timeout expired" in str(outcome[0])
    assert "connect_timeout" in str(outcome[0]), "the message says which setting governs the wait"


def test_the_engine_connects_with_the_timeouts_and_the_url_may_set_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    def connect(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        raise psycopg.OperationalError("recorded")

    monkeypatch.setattr(psycopg, "connect", connect)
    for url in (
        "postgresql://gsomia@db.invalid/gsomia",
        "postgresql://gsomia@db.invalid/gsomia?connect_timeout=3&keepalives_idle=5",
    ):
        engine = db.create(url)
        with pytest.raises(Exception, match="recorded"):
            engine.connect()
        engine.dispose()
    default, custom = seen
    assert {k: default[k] for k in db.POSTGRESQL_CONNECTION} == db.POSTGRESQL_CONNECTION
    assert default["connect_timeout"] == 10 and default["tcp_user_timeout"] == 60_000
    # the URL's own values win (as strings: the URL's query is text), the others stay
    assert str(custom["connect_timeout"]) == "3" and str(custom["keepalives_idle"]) == "5"
    assert custom["keepalives_count"] == 3 and custom["tcp_user_timeout"] == 60_000


def test_the_listening_connection_has_the_same_timeouts() -> None:
    """It is idle between notifications: without keepalives it would go on "listening" to a
    server host that is gone, and no other process's commit would wake a stream again."""
    engine = db.create("postgresql://gsomia:secret@db.invalid:5433/gsomia?connect_timeout=3")
    try:
        params = psycopg.conninfo.conninfo_to_dict(Listener(engine, lambda _parties: None)._dsn)
    finally:
        engine.dispose()
    assert params["connect_timeout"] == "3"
    assert {k: params[k] for k in ("keepalives", "keepalives_idle", "keepalives_count", "tcp_user_timeout")} == {
        "keepalives": "1",
        "keepalives_idle": "30",
        "keepalives_count": "3",
        "tcp_user_timeout": "60000",
    }
    assert (params["host"], params["port"], params["dbname"], params["user"]) == (
        "db.invalid",
        "5433",
        "gsomia",
        "gsomia",
    )
