"""The connection string of a connection gsomia opens beside its engine (the PostgreSQL
listener): built from the engine's parameters as keywords, so a password holding a space, a
quote, a backslash, ``@`` or ``#`` reaches libpq as it is, with the engine's timeouts."""

from __future__ import annotations

from urllib.parse import quote

import psycopg
import pytest

from gsomia.errors import InvalidInput, StorageError
from gsomia.storage import db
from gsomia.storage.channel import Listener
from gsomia.storage.urls import masked_text


def _conninfo(url: str) -> dict[str, str]:
    engine = db.create(url)
    try:
        params = psycopg.conninfo.conninfo_to_dict(Listener(engine, lambda _parties: None)._dsn)
        return {name: str(value) for name, value in params.items()}
    finally:
        engine.dispose()


@pytest.mark.parametrize("password", ["open sesame", "p@ss:w/o#rd% 9x", "it's \\ fine", " lead and trail "])
def test_a_password_with_any_character_reaches_the_listening_connection_whole(password: str) -> None:
    params = _conninfo(f"postgresql://spacey:{quote(password, safe='')}@127.0.0.1:55432/spacedb?sslmode=disable")
    assert params["password"] == password
    assert (params["user"], params["host"], params["port"], params["dbname"]) == (
        "spacey",
        "127.0.0.1",
        "55432",
        "spacedb",
    )
    assert params["sslmode"] == "disable" and params["keepalives_idle"] == "30"


def test_a_socket_folder_and_several_hosts_reach_the_listening_connection_too() -> None:
    socket = _conninfo("postgresql://gsomia@/gsomia?host=/run/postgresql&port=5433")
    assert (socket["host"], socket["port"], socket["dbname"]) == ("/run/postgresql", "5433", "gsomia")
    several = _conninfo("postgres://gsomia:pw@/gsomia?host=db1:5432&host=db2:5433&target_session_attrs=read-write")
    assert (several["host"], several["port"], several["target_session_attrs"]) == ("db1,db2", "5432,5433", "read-write")


def test_a_driver_error_is_one_line_naming_the_database_without_its_password() -> None:
    url = "postgresql+psycopg://spacey:open%20sesame@127.0.0.1:55432/spacedb"
    error = psycopg.ProgrammingError('unexpected spaces found in "open sesame", use percent-encoded spaces\nmore')
    problem = db.driver_error(error, url)
    assert isinstance(problem, StorageError)
    assert str(problem) == (
        "database error on postgresql+psycopg://spacey:***@127.0.0.1:55432/spacedb: ProgrammingError: "
        'unexpected spaces found in "***", use percent-encoded spaces'
    )
    assert db.driver_error(RuntimeError("open sesame"), url) is None


def test_a_driver_message_loses_every_secret_of_the_url() -> None:
    url = "postgresql+psycopg://spacey:open%20sesame@127.0.0.1:55432/spacedb?sslpassword=k3y%21"
    message = 'unexpected spaces found in "open sesame", use percent-encoded spaces (%20) instead; k3y! k3y%21'
    shown = masked_text(message, url)
    assert "sesame" not in shown and "k3y" not in shown, shown
    assert shown.startswith('unexpected spaces found in "***"'), shown
    assert masked_text("bad conninfo: host=h password=pw port=1", "") == "bad conninfo: host=h password=*** port=1"


@pytest.mark.parametrize(
    ("url", "hosts", "ports"),
    [
        ("postgresql://u:pw@h1:5432,h2:5433/db", "h1,h2", "5432,5433"),
        ("postgres://u:pw@h1,h2/db?sslmode=require", "h1,h2", ","),
        ("postgresql://u:p%40w@[::1]:5432,h2/db?application_name=a", "::1,h2", "5432,"),
    ],
)
def test_several_hosts_in_the_authority_reach_libpq_in_order(url: str, hosts: str, ports: str) -> None:
    # libpq's own multi-host URI form (fail-over to the next host), which SQLAlchemy reads only
    # from the query: a port after each host made the URL "not a number"
    params = _conninfo(url)
    assert params["host"] == hosts and params["port"] == ports  # an empty port: libpq's default
    assert params["dbname"] == "db" and params["user"] == "u"


@pytest.mark.parametrize(
    "url", ["postgresql://u:secretpw@h1:5432,h2:x/db", "postgresql://u:secretpw@/db?host=a,b&port=5432,y"]
)
def test_a_port_in_a_host_list_that_is_no_number_is_named(url: str) -> None:
    with pytest.raises(InvalidInput, match="one of its ports is not a number") as caught:
        db.normalise_url(url)
    assert "secretpw" not in str(caught.value)


def test_a_host_list_connects_to_the_host_that_takes_writes_unless_the_url_says_otherwise() -> None:
    # a standby listed first accepts connections and refuses every write
    assert _conninfo("postgresql://u:pw@db1:5432,db2:5432/db")["target_session_attrs"] == "read-write"
    assert _conninfo("postgresql://u:pw@/db?host=db1&host=db2")["target_session_attrs"] == "read-write"
    chosen = _conninfo("postgresql://u:pw@db1,db2/db?target_session_attrs=primary")
    assert chosen["target_session_attrs"] == "primary"
    assert "target_session_attrs" not in _conninfo("postgresql://u:pw@db1:5432/db")
