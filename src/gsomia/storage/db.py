"""Engines and migrations for SQLite (the embedded default) and PostgreSQL.

SQLite runs in WAL mode with a busy timeout; write transactions start with
``BEGIN IMMEDIATE`` so two writers never deadlock on a lock upgrade. ``synchronous=FULL`` is the
default: in WAL mode it syncs the WAL at every commit, so a transaction whose commit returned
survives a power loss or an operating-system crash. ``NORMAL`` syncs only at checkpoints and
may lose the latest commits on power loss (sqlite.org/pragma.html#pragma_synchronous); an
operator may choose it (``GSOMIA_SQLITE_SYNCHRONOUS``) for speed. PostgreSQL runs the
migrations under an advisory lock, so several API workers can start at once.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.util import asbool

from gsomia import jsontext
from gsomia.errors import InvalidInput, StorageError
from gsomia.storage.urls import hosts_in_query, masked_text, masked_url, unencoded_at

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x6750_6D69  # arbitrary constant: "gPmi"


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` (both use psycopg 3) and plain SQLite paths.

    A user name or password must have ``@`` percent-encoded (``%40``): with several ``@`` in
    its authority a URL is refused, since a parser would read part of the password as the host.
    Several hosts in the authority (libpq's ``postgresql://u:p@h1:5432,h2:5433/db``) are taken
    as the same hosts in the query (``?host=h1:5432&host=h2:5433``), as SQLAlchemy reads them.

    Raises:
        InvalidInput: for a URL SQLAlchemy cannot parse, one with ``@`` unencoded in its user
            name or password, or a backend gsomia does not support.
    """
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser()}"
    if unencoded_at(url):
        raise InvalidInput(
            f"invalid database URL {masked_url(url)!r}: its user name or password holds '@': "
            "percent-encode @ in the user name or password as %40 (and : / ? # % and spaces as "
            "%3A %2F %3F %23 %25 %20)"
        )
    try:
        parsed = make_url(hosts_in_query(url))
    except (ArgumentError, ValueError) as e:  # ValueError: a port that is not a number
        # never the parser's own words: they quote the "port", which may be part of a password
        problem = "its port is not a number" if isinstance(e, ValueError) else "it does not parse"
        raise InvalidInput(
            f"invalid database URL {masked_url(url)!r}: {problem} (characters such as @ : / ? # % and "
            "spaces in the user name or password must be percent-encoded: %40 for @)"
        ) from e
    if not _numeric_ports(parsed):
        raise InvalidInput(f"invalid database URL {masked_url(url)!r}: one of its ports is not a number")
    backend = parsed.get_backend_name()
    if backend == "postgres":  # libpq's other scheme
        backend = "postgresql"
        parsed = parsed.set(drivername="postgresql" + parsed.drivername.removeprefix("postgres"))
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql"):
        raise InvalidInput(f"unsupported database {backend!r}: use sqlite:///PATH or postgresql://…")
    return parsed.render_as_string(hide_password=False)


def _numeric_ports(parsed: URL) -> bool:
    """Whether every port the query of ``parsed`` names (``port=5432,5433``) is a number or empty."""
    value = parsed.query.get("port", ())
    ports = [value] if isinstance(value, str) else list(value)
    return all(port.isdigit() for entry in ports for port in entry.split(",") if port)


def missing_sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (or plain path) when it does not exist; None when it does, for
    an in-memory database and for another backend. The file is the one SQLite opens
    (:func:`sqlite_path`): a name such as ``file:typo.db`` is that very file unless the URL says
    ``uri=true``. A URI filename's ``mode`` does not matter: a missing file is missing whether
    SQLite would refuse it (``ro``, ``rw``) or create it empty (``rwc``).

    Raises:
        InvalidInput: for a URL SQLAlchemy cannot parse or a backend gsomia does not support.
    """
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite":
        return None
    path = sqlite_path(parsed)
    return None if path is None or path.exists() else path


_PYSQLITE_ARGS = frozenset(
    {"uri", "timeout", "isolation_level", "detect_types", "check_same_thread", "cached_statements"}
)
"""The query parameters SQLAlchemy hands to Python's sqlite3 itself; with ``uri=true``, the
others go to SQLite in the URI filename's query."""


def sqlite_path(parsed: URL) -> Path | None:
    """The file SQLite opens for the SQLite URL ``parsed``; None for an in-memory (or temporary)
    database.

    SQLite reads the name as a URI filename (sqlite.org/uri.html) only when the URL's query says
    ``uri=true`` and the name starts with ``file:``: the file is then the URI's path,
    percent-decoded, without ``file:``, its empty or ``localhost`` authority, its query and its
    fragment; ``mode=memory`` (or the ``memdb`` VFS, or the path ``:memory:``) is in memory.
    Any other name is the file's path as it is, ``file:`` included.

    Raises:
        InvalidInput: a ``uri`` value that is not a boolean, or a URI authority other than
            ``localhost``.
    """
    database = parsed.database or ""
    uri = _sqlite_uri(parsed)
    if uri is None:
        return None if database in ("", ":memory:") else Path(database)
    path, params = uri
    if path in ("", ":memory:") or params.get("mode") == "memory" or params.get("vfs") == "memdb":
        return None
    return Path(path)


def _sqlite_uri(parsed: URL) -> tuple[str, dict[str, str]] | None:
    """The decoded path and the query parameters of the URI filename SQLite is given for the
    SQLite URL ``parsed`` (its name's own query, then the URL's other parameters, as SQLAlchemy
    appends them); None when SQLite reads the name as an ordinary file name.

    Raises:
        InvalidInput: a ``uri`` value that is not a boolean, or a URI authority other than
            ``localhost``.
    """
    database = parsed.database or ""
    try:
        uri = asbool(parsed.query.get("uri", False))
    except ValueError:
        raise InvalidInput(f"invalid database URL: uri={parsed.query['uri']!r} is not true or false") from None
    if not uri or not database.startswith("file:"):
        return None
    rest = database.removeprefix("file:").split("#", 1)[0]
    path, _, query = rest.partition("?")
    if path.startswith("//"):
        authority, slash, after = path[2:].partition("/")
        if authority not in ("", "localhost"):
            raise InvalidInput(f"invalid database URL: the SQLite URI {database!r} names the host {authority!r}")
        path = slash + after
    params: dict[str, str] = {}
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        params[key] = value
    for name, given in parsed.query.items():
        if name not in _PYSQLITE_ARGS:
            params[name] = given if isinstance(given, str) else given[-1]
    return unquote(path), {key: unquote(value) for key, value in params.items()}


def _sqlite_may_create(parsed: URL) -> bool:
    """Whether SQLite creates a missing file for ``parsed``: unless a URI filename's ``mode`` is
    ``ro`` or ``rw`` (or another it refuses)."""
    uri = _sqlite_uri(parsed)
    return uri is None or uri[1].get("mode", "rwc") == "rwc"


POSTGRESQL_CONNECTION: dict[str, int] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}
"""libpq's connection parameters gsomia sets unless the database URL sets them (its query,
``?connect_timeout=5``): a server that accepts the connection and never answers fails the
attempt after 10 s, and a server host that is gone (a fail-over, a network cut) fails the
connections to it within about a minute, whether they are idle (TCP keepalives: 30 s, then 3
probes 10 s apart) or waiting for an answer to data sent (``tcp_user_timeout``, in
milliseconds). Without them, a request or a pooled connection's ping would wait for the
kernel's own retransmission limit, about 15 minutes."""


def postgresql_connection(url: str | URL) -> dict[str, int | str]:
    """The parameters of :data:`POSTGRESQL_CONNECTION` that ``url`` does not set itself; for a
    URL that lists several hosts, also ``target_session_attrs=read-write`` unless it sets that:
    libpq then connects to the host that takes writes (the primary), not to a standby listed
    before it, which accepts connections and refuses every write."""
    given = make_url(url).query
    params: dict[str, int | str] = {name: value for name, value in POSTGRESQL_CONNECTION.items() if name not in given}
    hosts = given.get("host", "")
    several = len(hosts) > 1 if isinstance(hosts, tuple) else "," in hosts
    if several and "target_session_attrs" not in given:
        params["target_session_attrs"] = "read-write"
    return params


def postgresql_conninfo(engine: Engine) -> str:
    """The libpq connection string for a connection of its own to the PostgreSQL database of
    ``engine`` (``psycopg.connect(...)``): the parameters the engine's connections are made
    with (user, password, host and port, or several of them, database, the URL's query), and
    the timeouts of :data:`POSTGRESQL_CONNECTION` the URL does not set.

    It is built from keywords, each quoted by psycopg, never by rebuilding a URI from the URL:
    a decoded password may hold a space, ``@``, ``#`` or a quote, which a URI would need
    percent-encoded again.
    """
    import psycopg  # noqa: PLC0415 - only PostgreSQL deployments need it

    _, params = engine.dialect.create_connect_args(engine.url)
    # what SQLAlchemy hands psycopg besides libpq's parameters (its adapters) is left out
    libpq = {option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults()}
    given = {name: value for name, value in params.items() if name in libpq and value is not None}
    return psycopg.conninfo.make_conninfo("", **{**postgresql_connection(engine.url), **given})


def create(url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 5) -> Engine:
    """Create an engine for ``url``; for SQLite, create the file's folder and the file, 0600,
    unless the database is in memory or a URI filename's ``mode`` forbids creating it.

    Raises:
        InvalidInput: for a bad URL.
        StorageError: if the SQLite folder cannot be created.
    """
    url = normalise_url(url)
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(parsed)
        if path is not None and _sqlite_may_create(parsed):
            try:
                # 0700: the folder holds the database and, by default, the exchange's keys
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as e:
                raise StorageError(f"cannot create the database folder {path.parent}: {e.strerror}") from e
            _create_private(path)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_size"] = pool_size
        kwargs["pool_pre_ping"] = True
        kwargs["connect_args"] = postgresql_connection(url)
    # JSON columns hold values, not signed text (a ledger entry's hash is of its RFC 8785
    # bytes, computed from the value): written by orjson, read by the standard library.
    # An error's text names its statement, never the values bound to it: those are token
    # hashes, sealed content keys, incident texts and other parties' report metadata, and the
    # text goes to logs (a failed group commit's statement carries every party's rows).
    engine = create_engine(url, json_serializer=jsontext.compact, hide_parameters=True, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        _sqlite_setup(engine, sqlite_synchronous)
    return engine


def _sqlite_setup(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("gsomia_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only, as backups are (it holds sealed
    content keys, ciphertext and token hashes); SQLite gives its journal files the same mode.
    An existing file is left as it is.

    Raises:
        StorageError: the file cannot be created.
    """
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        pass
    except OSError as e:
        raise StorageError(f"cannot create the database {path}: {e.strerror}") from e


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest revision (idempotent).

    Raises:
        StorageError: if the database cannot be reached or a migration fails.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            try:
                if conn.dialect.name == "sqlite":
                    _refuse_foreign(conn)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
            finally:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                    conn.commit()
    except CommandError as e:
        # the database names a revision this code does not know: a newer release migrated it
        raise StorageError(
            f"cannot open the database: {e}; it was migrated by a newer gsomia (this one knows revisions up to "
            f"{_head(cfg)}): run that release, or restore a backup made by this one"
        ) from None
    except UnicodeDecodeError as e:
        # SQLite's message for a malformed schema quotes the damaged bytes
        raise StorageError(
            f"cannot open the database: it is damaged (database disk image is malformed: {e.reason}); restore a backup"
        ) from None
    except SQLAlchemyError as e:
        message = _short(e)
        if "timeout expired" in message:
            message += (
                f" (no answer within the connection timeout, {POSTGRESQL_CONNECTION['connect_timeout']} s unless "
                "the URL sets connect_timeout: is it the address of a PostgreSQL server, and does it answer?)"
            )
        raise StorageError(f"cannot open or migrate the database: {message}") from e


def _refuse_foreign(conn: Connection) -> None:
    """Refuse a SQLite database that holds tables and none of gsomia's (no Alembic revision): a
    ``--db`` that names another application's file. Migrating would add gsomia's tables to it,
    even for a command that only reads.

    Raises:
        StorageError: the database holds another application's tables; nothing was written.
    """
    tables = [
        str(name)
        for (name,) in conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
            "ORDER BY name"
        )
    ]
    if tables and "alembic_version" not in tables:
        shown = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
        raise StorageError(
            f"cannot open the database: it is not a gsomia database (it holds the tables {shown} and none of "
            "gsomia's): check --db (or GSOMIA_DB). Nothing was written."
        )


def _head(cfg: Config) -> str:
    """The latest revision this code's migrations reach."""
    return str(ScriptDirectory.from_config(cfg).get_current_head())


def _short(e: SQLAlchemyError) -> str:
    """The first line of a driver error, without SQL or parameters."""
    orig = getattr(e, "orig", None)
    msg = str(orig if orig is not None else e).strip().splitlines()
    return msg[0] if msg else type(e).__name__


def storage_error(what: str, e: SQLAlchemyError) -> StorageError:
    """The :class:`StorageError` for a database error ``e`` during ``what`` (its first line,
    never the SQL or its parameters)."""
    log.debug("storage error during %s", what, exc_info=e)
    return StorageError(f"{what} failed: {_short(e)}")


def driver_error(e: BaseException, url: str | None) -> StorageError | None:
    """The :class:`StorageError` for an error the database driver or SQLAlchemy raised where
    none was expected (None for any other error): one line naming the database ``url``, masked,
    with every secret of the URL masked in the driver's words too (psycopg quotes a password it
    cannot read, for one).
    """
    if not isinstance(e, _driver_errors()):
        return None
    cause = getattr(e, "orig", None) or e
    lines = str(cause).strip().splitlines()
    message = f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
    if url is None:
        return StorageError(f"database error: {masked_text(message, '')}")
    return StorageError(f"database error on {masked_url(url)}: {masked_text(message, url)}")


def _driver_errors() -> tuple[type[BaseException], ...]:
    """SQLAlchemy's and the drivers' error classes; psycopg's only once it was imported (no
    psycopg error can have been raised before)."""
    psycopg = sys.modules.get("psycopg")
    found: tuple[type[BaseException], ...] = (SQLAlchemyError, sqlite3.Error)
    return found if psycopg is None else (*found, psycopg.Error)


@contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Turn SQLAlchemy errors into :class:`StorageError` naming ``what`` failed.

    Raises:
        StorageError: on any database error.
    """
    try:
        yield
    except SQLAlchemyError as e:
        log.debug("storage error during %s", what, exc_info=True)
        raise StorageError(f"{what} failed: {_short(e)}") from e
