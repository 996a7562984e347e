"""An error of the database driver that nothing turned into a gsomia error still ends a
command in one line on stderr, with the database errors' exit code and the database named with
its secrets masked: never a traceback, which would quote the password."""

from __future__ import annotations

from typing import NoReturn

import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from gsomia.cli import common
from gsomia.errors import StorageError
from tests.unit.cli.cli_support import Gsomia

URL = "postgresql://spacey:open%20sesame@127.0.0.1:9/spacedb"


@pytest.mark.parametrize(
    "error",
    [
        psycopg.ProgrammingError('unexpected spaces found in "open sesame", use percent-encoded spaces (%20) instead'),
        OperationalError("SELECT 1", {}, psycopg.OperationalError('password "open sesame" refused\nDETAIL: more')),
    ],
)
def test_a_driver_error_is_one_line_with_the_database_errors_exit_code(
    gsomia: Gsomia, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def build(*_args: object, **_kwargs: object) -> NoReturn:
        raise error

    monkeypatch.setattr(common, "build", build)
    run = gsomia("--db", URL, "ledger", "checkpoint")
    assert run.code == common.EXIT_CODES[StorageError], run.err
    assert run.err.count("\n") == 1 and "Traceback" not in run.err, run.err
    assert run.err.startswith("error: database error on postgresql://spacey:***@127.0.0.1:9/spacedb: "), run.err
    assert "sesame" not in run.err + run.out, run.err


def test_any_other_unexpected_error_is_not_taken_for_a_database_one(
    gsomia: Gsomia, monkeypatch: pytest.MonkeyPatch
) -> None:
    def build(*_args: object, **_kwargs: object) -> NoReturn:
        raise RuntimeError("a bug")

    monkeypatch.setattr(common, "build", build)
    with pytest.raises(RuntimeError, match="a bug"):
        gsomia("--db", URL, "ledger", "checkpoint")
