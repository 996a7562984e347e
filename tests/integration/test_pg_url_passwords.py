"""A PostgreSQL role whose password holds a space or other URL characters, on a throwaway
cluster: with the password percent-encoded, every command runs (the migration, the ledger, the
connection that listens for other processes' commits) and the listener connects with the
password itself; with ``@`` typed as it is, the command names the way to write it and shows no
piece of the password; ``postgres://`` works as ``postgresql://``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gsomia.storage import db
from gsomia.storage.channel import CHANNEL, Listener

pytestmark = pytest.mark.postgres

PASSWORD = "open sesame@#/%'"


@pytest.fixture
def spacey(pg_url: str) -> Iterator[str]:
    """A database owned by a role whose password is :data:`PASSWORD`; its URL, the password
    percent-encoded (``postgresql://``)."""
    admin = pg_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"spacey_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD {psycopg.sql.quote(PASSWORD)}")
        conn.execute(f"CREATE DATABASE {name} OWNER {name}")
    cluster = make_url(pg_url)
    yield f"postgresql://{name}:{quote(PASSWORD, safe='')}@{cluster.host}:{cluster.port}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"DROP ROLE IF EXISTS {name}")


def _gsomia(url: str, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GSOMIA_DB": url, "GSOMIA_DATA_DIR": str(data), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "gsomia", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_an_exchange_command_runs_with_a_percent_encoded_password(spacey: str, tmp_path: Path) -> None:
    for url in (spacey, spacey.replace("postgresql://", "postgres://", 1)):
        run = _gsomia(url, tmp_path / "data", "ledger", "checkpoint")
        assert run.returncode == 0, run.stderr
        assert "open sesame" not in run.stderr + run.stdout


def test_the_listener_connects_with_the_password_and_hears_a_commit(spacey: str) -> None:
    engine = db.create(spacey)
    heard: list[list[str]] = []
    woken = threading.Event()

    def wake(parties: Iterable[str] | None) -> None:
        if parties is not None:
            heard.append(list(parties))
            woken.set()

    listener = Listener(engine, wake)
    try:
        with psycopg.connect(listener._dsn) as direct:
            assert direct.info.password == PASSWORD
        listener.start()
        assert listener.listening.wait(30), "the listener did not connect"
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_notify(:c, 'KOR')"), {"c": CHANNEL})
        assert woken.wait(10) and heard == [["KOR"]]
    finally:
        listener.stop()
        engine.dispose()


def test_an_unencoded_at_is_refused_without_a_piece_of_the_password(spacey: str, tmp_path: Path) -> None:
    raw = spacey.replace(quote(PASSWORD, safe=""), "open sesame@#x", 1)
    run = _gsomia(raw, tmp_path / "data", "ledger", "checkpoint")
    assert run.returncode == 4, run.stderr
    assert run.stderr.count("\n") == 1 and "percent-encode @ in the user name or password as %40" in run.stderr
    assert "sesame" not in run.stderr and "#x" not in run.stderr, run.stderr


def test_libpq_fails_over_to_the_next_host_of_a_list(spacey: str, tmp_path: Path) -> None:
    # libpq's multi-host URI: the first host refuses (nothing listens on port 1), the second is
    # the cluster; the command runs there, through the engine and through the listener
    cluster = make_url(spacey)
    listed = spacey.replace(f"@{cluster.host}:{cluster.port}/", f"@127.0.0.1:1,{cluster.host}:{cluster.port}/", 1)
    run = _gsomia(listed, tmp_path / "data", "ledger", "checkpoint")
    assert run.returncode == 0, run.stderr
    engine = db.create(listed)
    listener = Listener(engine, lambda _parties: None)
    try:
        listener.start()
        assert listener.listening.wait(30), "the listener did not connect"
    finally:
        listener.stop()
        engine.dispose()
