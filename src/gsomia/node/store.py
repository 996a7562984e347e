"""The node's store: one SQLite database encrypted with SQLCipher, keyed by the node key.

Every page of the file is encrypted (AES-256 in SQLCipher's default profile, with an HMAC per
page) under the 256-bit node key given as a raw key (``PRAGMA key = "x'…'"``, no passphrase
derivation), so a copied ``node.db`` — a backup tape, a stolen disk — is unreadable without
``node.key``. It does not protect a running node: whoever controls the process or reads its
memory, or holds both files, reads everything (docs/node.md, "What is encrypted").

Tables are created on first open (``create_all``); the schema carries a version in
``settings`` so a later version can migrate it, and a store a newer version wrote is refused
rather than used. The file (and SQLite's journal files, which take its mode) is created
readable by its owner only; one an older version left readable by others is tightened at open
(docs/node.md, "What is encrypted").
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import DatabaseError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import QueuePool

from gsomia.errors import StorageError

__all__ = ["SCHEMA_VERSION", "NodeStore", "iso_now", "metadata", "utc_text"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"

metadata = MetaData()

settings = Table(
    "settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# Built once: a setting is read or written several times per inbox page, and building the
# statement (not running it) was most of the cost.
_GET_SETTING = select(settings.c.value).where(settings.c.name == bindparam("name"))
_SET_SETTING = update(settings).where(settings.c.name == bindparam("b_name"))

party_keys = Table(
    "party_keys",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("party", String(16), nullable=False),
    Column("profile", String(16), nullable=False),
    Column("private", Text, nullable=False),  # gsomia-private-keys/v1 document (docs/protocol.md §2.4)
    Column("state", String(16), nullable=False),  # pending | current | retired
    Column("created_at", String(40), nullable=False),
    Column("registered_at", String(40)),
    Column("retired_at", String(40)),
)

witness_keys = Table(
    "witness_keys",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("seed", LargeBinary, nullable=False),  # RFC 8032 §5.1.5 32-byte seed
    Column("created_at", String(40), nullable=False),
    Column("registered_at", String(40)),
)

users = Table(
    "users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("revoked_at", String(40)),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("username", String(64), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("last_seen", String(40), nullable=False),
    Column("client", String(64), nullable=False),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subject", String(200), nullable=False, index=True),  # "user:NAME" or "addr:IP"
    Column("at", String(40), nullable=False),
)

login_known = Table(  # where each user last logged in from: the throttle on the username spares these
    "login_known",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("client", String(64), primary_key=True),
    Column("at", String(40), nullable=False),
)

login_refusals = Table(  # throttled refusals in the current window of what held them, summarised in the audit log
    "login_refusals",
    metadata,
    Column("subject", String(200), primary_key=True),  # what held them: "user:NAME" or "addr:IP"
    Column("first_at", String(40), nullable=False),
    Column("last_at", String(40), nullable=False),
    Column("count", Integer, nullable=False),
    Column(
        "tried", Text, nullable=False
    ),  # JSON: the usernames (held address) or addresses (held user) refused, at most 10
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("n", Integer, primary_key=True, autoincrement=True),  # local order, the inbox cursor
    Column("delivery_id", String(48), nullable=False, unique=True),
    Column("seq", Integer, nullable=False),  # the exchange's inbox sequence number
    Column("report_id", String(96), nullable=False),
    Column("originator", String(16), nullable=False, index=True),
    Column("topic", String(128), nullable=False),
    Column("level", String(64), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("via", String(16)),
    Column("marking", Text, nullable=False),
    Column("caveats", Text, nullable=False),
    Column("exercise", Boolean, nullable=False),
    Column("state", String(16), nullable=False, index=True),  # verified | quarantined | pending
    Column("reason", String(40)),
    Column("detail", Text),
    Column("created", String(64), nullable=False),  # the originator's creation instant
    Column("received_at", String(40), nullable=False),  # when the exchange made the delivery
    Column("processed_at", String(40), nullable=False),
    Column("content_type", String(128), nullable=False),
    Column("payload", LargeBinary),
    Column("verification", Text, nullable=False),
    Column("search", Text, nullable=False),
    Column("acknowledged_at", String(40)),
)

acknowledgements = Table(
    "acknowledgements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(48), nullable=False, index=True),
    Column("username", String(64), nullable=False),
    Column("at", String(40), nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("size", Integer, primary_key=True),
    Column("root", String(44), nullable=False),
    Column("note", Text, nullable=False),
    Column("accepted_at", String(40), nullable=False),
    Column("cosigned_at", String(40)),
)

alarms = Table(
    "alarms",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # fork | rollback | key
    Column("detail", Text, nullable=False),
    Column("first", Text, nullable=False),
    Column("second", Text, nullable=False),
    Column("at", String(40), nullable=False),
    Column("cleared_at", String(40)),
    Column("cleared_by", String(64)),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", String(48), primary_key=True),
    Column("delivery_id", String(48), nullable=False),
    Column("document", Text, nullable=False),  # the exchange's incident (docs/protocol.md §6.4)
    Column("updated_at", String(40), nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", String(40), nullable=False),
    Column("username", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(200), nullable=False),
    Column("detail", Text, nullable=False),
    Column("chain", String(64), nullable=False),  # SHA-256 over the previous chain and this row
)


def utc_text(text: str) -> str:
    """An instant as the store keeps it, so that text order is time order: UTC with
    microseconds. Text that is not an instant with an offset is kept as it is."""
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if at.tzinfo is None:
        return text
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def iso_now() -> str:
    """The wall clock in UTC, ISO 8601 with microseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class NodeStore:
    """The encrypted database of one node.

    Thread-safe: each thread gets its own connection (SQLCipher connections are not shared),
    and writes are serialised by one lock so the background sync and the API never contend
    for SQLite's write lock.

    Writes go through one connection of their own, kept open. SQLite keeps a cache of pages per
    connection and, in WAL mode, drops the whole of it when another connection has changed the
    file; a page read again is decrypted and its HMAC checked. With the writes on rotating
    pooled connections, each write began with a cold cache and read every index page it touched
    through the cipher; on the one connection that alone writes, the cache stays valid from one
    write to the next. Reads take the most recently returned connection of their pool (LIFO),
    whose cache is the likeliest to be current.
    """

    def __init__(self, path: Path, key: bytes) -> None:
        """Open (creating if missing) the store at ``path`` under ``key``.

        Raises:
            StorageError: the key does not open the file (a wrong key, or not a node store),
                or the file cannot be opened.
        """
        if len(key) != 32:
            raise StorageError("the node key is 32 bytes")
        self.path = path
        url = URL.create("sqlite+pysqlcipher", password=f"x'{key.hex()}'", database=str(path))
        # A queue of connections shared by the API's and the sync's threads (the dialect's
        # default, one connection per thread kept in a small ring, may close a connection
        # another thread is using once more threads than the ring holds ask for one).
        self._engine: Engine = _pooled_engine(url, pool_size=8, max_overflow=24)
        # The writers' connection (more only if a write is opened inside another on one thread).
        self._writer: Engine = _pooled_engine(url, pool_size=1, max_overflow=4)
        self._write_lock = threading.RLock()
        self._noted: dict[str, float] = {}  # setting -> when note() last wrote it (monotonic)
        try:
            _create_private(path)
            _tighten(path)
            with self._writer.begin() as c:
                c.exec_driver_sql("PRAGMA journal_mode=WAL")
                _check_schema(c, path)
                metadata.create_all(c)
                if c.execute(select(settings.c.value).where(settings.c.name == "schema")).scalar() is None:
                    c.execute(insert(settings).values(name="schema", value=SCHEMA_VERSION))
        except StorageError:
            self.close()
            raise
        except OperationalError as e:  # before DatabaseError, of which it is a kind
            self.close()
            raise StorageError(f"cannot open the node store {path}: {_unwritable(path, e)}") from e
        except DatabaseError as e:
            self.close()
            raise StorageError(
                f"cannot open the node store {path}: the node key does not open it (a wrong key, or not a node store)"
            ) from e
        except SQLAlchemyError as e:
            self.close()
            raise StorageError(f"cannot open the node store {path}: {e.__class__.__name__}") from e

    def close(self) -> None:
        """Close every connection."""
        self._engine.dispose()
        self._writer.dispose()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (committed on exit, rolled back on an error).

        Raises:
            StorageError: the database failed.
        """
        with self._write_lock:
            try:
                with self._writer.begin() as c:
                    yield c
            except OperationalError as e:
                raise StorageError(f"node store {self.path}: {_unwritable(self.path, e)}") from e
            except SQLAlchemyError as e:
                raise StorageError(f"node store: {e.__class__.__name__}: {e}") from e

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection (a consistent snapshot for its duration).

        Raises:
            StorageError: the database failed.
        """
        try:
            with self._engine.connect() as c:
                yield c
        except SQLAlchemyError as e:
            raise StorageError(f"node store: {e.__class__.__name__}: {e}") from e

    # --- settings --------------------------------------------------------------------------------

    def get(self, name: str) -> str | None:
        """A setting's value, or None."""
        with self.read() as c:
            value = c.execute(_GET_SETTING, {"name": name}).scalar()
        return None if value is None else str(value)

    def get_json(self, name: str) -> Any:
        """A JSON setting, or None."""
        value = self.get(name)
        return None if value is None else json.loads(value)

    def put(self, name: str, value: str, c: Connection | None = None) -> None:
        """Set a setting (inside ``c`` if given, else in its own transaction)."""
        if c is None:
            with self.write() as own:
                self.put(name, value, own)
            return
        if c.execute(_SET_SETTING, {"b_name": name, "value": value}).rowcount == 0:
            c.execute(insert(settings), {"name": name, "value": value})

    def note(self, name: str, value: str, *, every: float = 1.0) -> None:
        """Set a setting that only tells when something last happened (for the status view), at
        most once every ``every`` seconds: a busy event stream then costs no durable commit
        per event. The first call always writes; the value shown may lag the latest event by up
        to ``every`` seconds.

        Raises:
            StorageError: the database failed.
        """
        now = time.monotonic()
        with self._write_lock:
            last = self._noted.get(name)
            if last is not None and now - last < every:
                return
            self._noted[name] = now
        self.put(name, value)

    def put_json(self, name: str, value: object, c: Connection | None = None) -> None:
        """Set a JSON setting."""
        self.put(name, json.dumps(value, ensure_ascii=False, sort_keys=True), c)

    def delete_setting(self, name: str) -> None:
        """Remove a setting."""
        with self.write() as c:
            c.execute(delete(settings).where(settings.c.name == name))


def _unwritable(path: Path, e: OperationalError) -> str:
    """What to fix when SQLite cannot open or write the store: a read-only folder or file
    system, a full disk, or what SQLite said (nothing of the failed change was kept)."""
    said = str(e.orig) if e.orig is not None else e.__class__.__name__
    folder = path.parent
    if "full" in said:
        return f"the disk holding {folder} is full: free space there (nothing of this change was kept)"
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)) or "readonly" in said:
        return (
            f"{folder} or the store in it cannot be written ({said}): the file system is read-only, or "
            "the node's user may not write there; make it writable by the user the node runs as"
        )
    return f"OperationalError: {said}"


def _create_private(path: Path) -> None:
    """Create the store's file readable by its owner only (it holds everything the node keeps,
    encrypted); SQLite gives its journal files the same mode. An existing file is left as it is.

    Raises:
        StorageError: the file cannot be created.
    """
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        pass
    except OSError as e:
        raise StorageError(f"cannot create the node store {path}: {e.strerror}") from e


def _tighten(path: Path) -> None:
    """Make the store and SQLite's ``-wal`` and ``-shm`` files beside it readable by their owner
    only (0600), if an older version left group or other permission bits on them; one warning
    names the files tightened.

    Raises:
        StorageError: a file cannot be tightened (the node does not own it): the store is not
            opened, and the message gives the command that fixes it.
    """
    tightened = []
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = stat.S_IMODE(os.stat(p).st_mode)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise StorageError(f"cannot open the node store {path}: {p}: {e.strerror}") from e
        if not mode & 0o077:
            continue
        try:
            os.chmod(p, 0o600)
        except OSError as e:
            raise StorageError(
                f"the node store file {p} is readable or writable by others (mode {mode:04o}) and cannot be made "
                f"private ({e.strerror}): run 'chmod 600 {p}' as its owner, then start again"
            ) from e
        tightened.append(f"{p} (was {mode:04o})")
    if tightened:
        log.warning("node store files were readable by others; made 0600 (owner only): %s", ", ".join(tightened))


def _check_schema(c: Connection, path: Path) -> None:
    """Refuse a store whose schema a newer version wrote (before anything is written to it).

    Raises:
        StorageError: the store's schema version is newer than :data:`SCHEMA_VERSION`, or not one.
    """
    made = c.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'settings'").first()
    if made is None:
        return
    found = c.execute(select(settings.c.value).where(settings.c.name == "schema")).scalar()
    if found is None:
        return
    version = str(found)
    if not (version.isascii() and version.isdigit()) or int(version) > int(SCHEMA_VERSION):
        raise StorageError(
            f"the node store {path} has schema version {version[:20]!r}, newer than this gsomia reads "
            f"({SCHEMA_VERSION}): run the gsomia version that wrote it, or a newer one"
        )


def _pooled_engine(url: URL, *, pool_size: int, max_overflow: int) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        poolclass=QueuePool,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=60,
        pool_use_lifo=True,
        # an error's text names its statement, never the values bound to it: those are the
        # token, private keys, password hashes and plaintext the store keeps, and the text goes
        # to logs and to the operator's terminal
        hide_parameters=True,
    )
    event.listen(engine, "connect", _on_connect)
    return engine


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA secure_delete=ON")  # freed pages are zeroed, not left readable in the file
    cursor.close()


def row_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A result row as a plain dict."""
    return dict(row)
