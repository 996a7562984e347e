"""The SQLite file gsomia checks and creates is the one SQLite opens: a name starting with
``file:`` is a URI filename only when the URL says ``uri=true`` (sqlite.org/uri.html); otherwise
it is an ordinary file name. A command that reads refuses a missing file instead of making an
empty database, and a new database file is the owner's alone (0600), with no stray file beside."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sqlalchemy import URL, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from gsomia.errors import InvalidInput
from gsomia.storage import db


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative names resolve in the test's own folder."""
    monkeypatch.chdir(tmp_path)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _uri(database: str, **query: str) -> URL:
    return URL.create("sqlite", database=database, query={"uri": "true", **query})


@pytest.mark.parametrize("url", ["file:typo.db", "sqlite:///file:typo.db", "sqlite:///file:typo.db?uri=false"])
def test_a_plain_name_starting_with_file_is_that_file_and_reported_missing(tmp_path: Path, url: str) -> None:
    assert db.missing_sqlite_file(url) == Path("file:typo.db")
    assert _names(tmp_path) == []
    (tmp_path / "file:typo.db").touch()
    assert db.missing_sqlite_file(url) is None


@pytest.mark.parametrize("mode", ["ro", "rw", "rwc", None])
def test_a_uri_filename_names_its_path_and_a_missing_one_is_missing_in_any_mode(
    tmp_path: Path, mode: str | None
) -> None:
    url = "sqlite:///file:made.db?uri=true" + (f"&mode={mode}" if mode else "")
    assert db.missing_sqlite_file(url) == Path("made.db")
    assert _names(tmp_path) == []
    (tmp_path / "made.db").touch()
    assert db.missing_sqlite_file(url) is None


@pytest.mark.parametrize(
    ("database", "path"),
    [
        ("file:made.db", "made.db"),
        ("file:sub/made.db?mode=ro#part", "sub/made.db"),
        ("file:/srv/g/made.db", "/srv/g/made.db"),
        ("file:///srv/g/made.db", "/srv/g/made.db"),
        ("file://localhost/srv/g/made.db", "/srv/g/made.db"),
        ("file:my%20data%3F.db", "my data?.db"),
        ("plain.db", "plain.db"),
    ],
)
def test_the_path_of_a_uri_filename_is_the_decoded_uri_path(database: str, path: str) -> None:
    assert db.sqlite_path(_uri(database)) == Path(path)


@pytest.mark.parametrize(
    "parsed",
    [
        make_url("sqlite://"),
        make_url("sqlite:///:memory:"),
        _uri("file:shared.db", mode="memory", cache="shared"),
        _uri("file:shared.db?mode=memory&cache=shared"),
        _uri("file::memory:", cache="shared"),
        _uri("file:/shared", vfs="memdb"),
    ],
)
def test_an_in_memory_database_has_no_file(parsed: URL) -> None:
    assert db.sqlite_path(parsed) is None
    assert db.missing_sqlite_file(parsed.render_as_string()) is None


# SQLAlchemy 2.1 warns that it picks the pool for mode=memory from the URL: not what is tested here
@pytest.mark.filterwarnings("ignore:Selection of the SingletonThreadPool pool class")
def test_an_in_memory_uri_database_is_created_without_a_file(tmp_path: Path) -> None:
    engine = db.create("sqlite:///file:shared.db?mode=memory&cache=shared&uri=true")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
    assert _names(tmp_path) == []


def test_a_uri_filename_is_created_private_at_its_path_with_no_stray_file(tmp_path: Path) -> None:
    engine = db.create("sqlite:///file:sub/made.db?mode=rwc&uri=true")
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
    finally:
        engine.dispose()
    made = tmp_path / "sub" / "made.db"
    assert made.is_file() and made.stat().st_size > 0
    assert _mode(made) == 0o600
    assert _names(tmp_path) == ["sub"]
    assert not [name for name in _names(made.parent) if name.startswith("file:")]


def test_a_plain_name_starting_with_file_is_created_as_that_file(tmp_path: Path) -> None:
    engine = db.create("sqlite:///file:plain.db")
    engine.dispose()
    assert _names(tmp_path) == ["file:plain.db"]
    assert _mode(tmp_path / "file:plain.db") == 0o600


@pytest.mark.parametrize("mode", ["ro", "rw"])
def test_a_uri_filename_that_must_exist_is_not_created(tmp_path: Path, mode: str) -> None:
    engine = db.create(f"sqlite:///file:sub/made.db?mode={mode}&uri=true")
    try:
        with pytest.raises(OperationalError, match="unable to open database file"), engine.connect():
            pass
    finally:
        engine.dispose()
    assert _names(tmp_path) == []


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("sqlite:///file://elsewhere/made.db?uri=true", "names the host 'elsewhere'"),
        ("sqlite:///file:made.db?uri=perhaps", "uri='perhaps' is not true or false"),
    ],
)
def test_a_uri_sqlite_cannot_open_is_invalid_input(tmp_path: Path, url: str, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        db.missing_sqlite_file(url)
    with pytest.raises(InvalidInput, match=fragment):
        db.create(url)
    assert _names(tmp_path) == []
