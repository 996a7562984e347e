"""Database URLs whose password an operator typed as it is: ``@``, ``/``, ``#``, ``%`` or a
space in it. Whatever the parser makes of such a URL, no piece of the password reaches an error
message, and a password holding ``@`` is refused with the way to write it (``%40``); the
``postgres://`` scheme many tools print is accepted as ``postgresql://``."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from gsomia.errors import InvalidInput
from gsomia.storage.db import normalise_url
from gsomia.storage.urls import masked_url

PIECES = ("ss:w", "w/o", "o#rd", "rd%", "% 9x", "9x@", "ssPW", "pw@")
"""Pieces of the passwords below that must never be shown."""


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # does not parse (SQLAlchemy reads "w" as the port)
        (
            "postgresql://weird:p@ss:w/o#rd% 9x@127.0.0.1:55432/urltest",
            "postgresql://weird:***@127.0.0.1:55432/urltest",
        ),
        # parses, with "ssPW@127.0.0.1" as the host
        ("postgresql://weird:p@ssPW@127.0.0.1:55432/urltest", "postgresql://weird:***@127.0.0.1:55432/urltest"),
    ],
)
def test_a_password_holding_an_unencoded_at_is_masked_whole(url: str, shown: str) -> None:
    assert masked_url(url) == shown


def test_a_parsed_url_with_an_at_in_its_host_is_masked_whole() -> None:
    assert (
        masked_url(make_url("postgresql://weird:p@ssPW@127.0.0.1/urltest"))
        == "postgresql://weird:***@127.0.0.1/urltest"
    )


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://weird:p@ss:w/o#rd% 9x@127.0.0.1:55432/urltest",
        "postgresql://weird:p@ssPW@127.0.0.1:55432/urltest",
        "postgresql://ops@example:pw@db.example/gsomia",
    ],
)
def test_an_unencoded_at_in_the_user_or_password_is_refused_with_the_way_to_write_it(url: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalise_url(url)
    message = str(caught.value)
    assert "percent-encode @ in the user name or password as %40" in message, message
    assert not [piece for piece in PIECES if piece in message], message
    assert "db.example" in message or "127.0.0.1:55432" in message, message


def test_an_encoded_password_and_an_at_in_a_query_value_are_accepted() -> None:
    url = "postgresql://weird:p%40ss%3Aw%2Fo%23rd%25%209x@127.0.0.1:55432/urltest?application_name=ops@host"
    parsed = make_url(normalise_url(url))
    assert parsed.password == "p@ss:w/o#rd% 9x" and parsed.host == "127.0.0.1"
    assert parsed.query["application_name"] == "ops@host"


def test_a_sqlite_path_may_hold_several_at(tmp_path: Path) -> None:
    path = tmp_path / "ops@example@host.db"
    assert make_url(normalise_url(f"sqlite:///{path}")).database == str(path)
    assert make_url(normalise_url(str(path))).database == str(path)


def test_a_port_that_is_no_number_is_named_without_quoting_it() -> None:
    """The parser's message quotes the "port": in ``user:secret/x:y@host`` it is a password's piece."""
    with pytest.raises(InvalidInput) as caught:
        normalise_url("postgresql://weird:pw@127.0.0.1:notaport/urltest")
    assert "its port is not a number" in str(caught.value) and "%40" in str(caught.value)
    assert "int()" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgres://gsomia:s3cret@db.example:5433/gsomia?sslmode=require", "postgresql+psycopg"),
        ("postgres+psycopg://gsomia@db.example/gsomia", "postgresql+psycopg"),
    ],
)
def test_the_postgres_scheme_means_postgresql(url: str, driver: str) -> None:
    parsed = make_url(normalise_url(url))
    assert parsed.drivername == driver
    assert (parsed.host, parsed.database) == ("db.example", "gsomia")
