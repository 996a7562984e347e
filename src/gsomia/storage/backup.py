"""Online copies of a SQLite database, consistent while the server writes to it.

Copying ``gsomia.db`` with ``cp`` is not a backup: in WAL mode the latest commits live in
``gsomia.db-wal`` until a checkpoint moves them into the main file, so the main file alone can
be a few kilobytes that hold none of the data, and a copy taken while the server writes can be
torn. SQLite's online backup API (sqlite.org/backup.html, Python's ``Connection.backup``)
copies the database page by page through SQLite itself, the WAL's content included.

The copy is read inside one read transaction of the source: in WAL mode that transaction is a
snapshot (sqlite.org/wal.html §Concurrency), so the copy is the database as of one commit even
though it is copied in steps (for a progress bar) while the server goes on committing; the
server's writers are never blocked. The copy is written to a new 0600 file beside its
destination, checked by the caller, made one self-contained file (rollback-journal mode,
synced), and only then put in place, so an interrupted or failed backup never leaves a partial
file under the name asked for.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import make_url

from gsomia.errors import Conflict, InvalidInput, StorageError
from gsomia.storage.db import normalise_url, sqlite_path

__all__ = [
    "SIDE_FILES",
    "SqliteCopy",
    "check_integrity",
    "copy_sqlite",
    "discard",
    "publish",
    "quiesce",
    "remove_side_files",
    "seal",
    "sqlite_file",
]

STEP_PAGES = 1024
"""Pages copied per step of the backup (4 MiB at the default page size): the progress bar's grain."""

Progress = Callable[[int, int], None]
"""Called with ``(pages copied, pages in all)`` after each step."""

SIDE_FILES = ("-wal", "-shm", "-journal")
"""The files SQLite keeps beside a database file, by the suffix added to its name."""


@dataclass(frozen=True, slots=True)
class SqliteCopy:
    """A finished copy, not yet in place."""

    path: Path
    pages: int
    page_size: int


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL, or None for another backend: the file SQLite opens
    (:func:`~gsomia.storage.db.sqlite_path`), so ``sqlite:///file:g.db?mode=rw&uri=true`` is
    ``g.db`` and ``sqlite:///file:g.db`` is the file named ``file:g.db``.

    Raises:
        InvalidInput: a bad URL, or an in-memory SQLite database (there is nothing to copy).
    """
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite":
        return None
    path = sqlite_path(parsed)  # the file SQLite opens: a "file:" name is a URI only with uri=true
    if path is None:
        raise InvalidInput("an in-memory database cannot be backed up")
    return path


def copy_sqlite(source: Path, folder: Path, *, progress: Progress | None = None, read_only: bool = False) -> SqliteCopy:
    """Copy the database ``source`` into a new 0600 file in ``folder``, as of one commit
    (``read_only``: open ``source`` read-only, e.g. a backup being restored).

    Raises:
        InvalidInput: ``source`` does not exist, or ``folder`` cannot hold the copy.
        StorageError: SQLite failed to read the source or write the copy (nothing is left behind).
    """
    if not source.is_file():
        raise InvalidInput(f"there is no database at {source}")
    target = folder / f".gsomia-backup-{secrets.token_hex(6)}.db"
    try:
        # A new file only: never write into a file that was there (or a link planted there).
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise InvalidInput(f"cannot create a file in {folder}: {e.strerror}") from e
    os.close(fd)
    try:
        return _copy(source, target, progress, "ro" if read_only else "rw")
    except sqlite3.Error as e:
        discard(target)
        raise StorageError(f"copying {source} failed: {e}") from e
    except BaseException:
        discard(target)
        raise


def _copy(source: Path, target: Path, progress: Progress | None, mode: str) -> SqliteCopy:
    # mode=rw (or ro): never create the source; SQLite's journal files of the copy take the
    # copy's mode, 0600 (sqlite.org/tempfiles.html).
    src = sqlite3.connect(f"file:{quote(str(source))}?mode={mode}", uri=True, isolation_level=None)
    try:
        src.execute("PRAGMA busy_timeout=30000")
        # Open the snapshot before the first step: backup_step uses the read transaction it
        # finds open (sqlite.org/c3ref/backup_finish.html), so every step reads the same commit.
        # Without it a step-wise backup starts again whenever another connection commits, and
        # under a steady load it never finishes.
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        dst = sqlite3.connect(target, isolation_level=None)
        try:

            def step(_status: int, remaining: int, total: int) -> None:
                if progress is not None:
                    progress(total - remaining, total)

            src.backup(dst, pages=STEP_PAGES, progress=step)
            pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
            page_size = int(dst.execute("PRAGMA page_size").fetchone()[0])
        finally:
            dst.close()
        src.execute("COMMIT")
    finally:
        src.close()
    return SqliteCopy(path=target, pages=pages, page_size=page_size)


def seal(path: Path) -> int:
    """Make the copy at ``path`` one self-contained file, synced to disk; return its size.

    Rollback-journal mode: the copy needs no ``-wal`` or ``-shm`` file beside it, even on
    read-only media (the server turns WAL back on when it opens a restored copy).

    Raises:
        StorageError: SQLite or the file system failed.
    """
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=DELETE").fetchone()
        finally:
            conn.close()
        _fsync(path)
        return path.stat().st_size
    except (sqlite3.Error, OSError) as e:
        raise StorageError(f"finishing the copy {path} failed: {e}") from e


def publish(path: Path, out: Path, *, force: bool) -> None:
    """Put the copy at ``path`` in place as ``out`` (replacing ``out`` only if ``force``).

    Raises:
        Conflict: ``out`` exists and ``force`` is false.
        InvalidInput: ``out`` cannot be written.
    """
    try:
        if force:
            path.replace(out)
        else:
            try:
                # A hard link fails if ``out`` exists: no window in which a file that appeared
                # meanwhile is overwritten.
                os.link(path, out)
            except FileExistsError:
                raise Conflict(f"{out} exists: give --force to replace it") from None
            except OSError:
                # No hard links on this file system: check, then rename.
                if out.exists():
                    raise Conflict(f"{out} exists: give --force to replace it") from None
                path.replace(out)
            else:
                path.unlink()
        _fsync(out.parent)
    except OSError as e:
        raise InvalidInput(f"cannot write {out}: {e.strerror}") from e


def check_integrity(path: Path) -> None:
    """Check that the database file at ``path`` is whole (``PRAGMA integrity_check``).

    Raises:
        InvalidInput: it is not a SQLite database, or SQLite finds it damaged.
    """
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, isolation_level=None)
        try:
            found = [str(row[0]) for row in conn.execute("PRAGMA integrity_check(5)")]
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise InvalidInput(f"{path} is not a whole SQLite database: {e}") from e
    if found != ["ok"]:
        raise InvalidInput(f"{path} is a damaged SQLite database: {'; '.join(found)}")


def quiesce(path: Path) -> None:
    """Make sure no process uses the database at ``path``, and move what its write-ahead log
    holds into the file, so the file can be replaced (nothing to do if there is none).

    Raises:
        InvalidInput: a process has the database open (a server, or a command).
        StorageError: SQLite failed otherwise.
    """
    if not path.exists():
        return
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, isolation_level=None, timeout=0)
        try:
            # Every connection to a WAL database holds a shared lock on its file while it is
            # open, so the exclusive lock is refused while any other connection is open.
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            raise InvalidInput(
                f"a process is using the database {path} (a server, or a command): stop it first; nothing was restored"
            ) from e
        raise StorageError(f"cannot take the database {path} to replace it: {e}") from e
    except sqlite3.Error as e:
        raise StorageError(f"cannot take the database {path} to replace it: {e}") from e


def remove_side_files(path: Path) -> None:
    """Remove the ``-wal``, ``-shm`` and ``-journal`` files of the database ``path`` (a WAL left
    beside a file is replayed into whatever file is put there).

    Raises:
        StorageError: one cannot be removed.
    """
    for suffix in SIDE_FILES:
        try:
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        except OSError as e:
            raise StorageError(f"cannot remove {path.name + suffix}: {e.strerror}") from e


def discard(path: Path) -> None:
    """Remove an unfinished copy and SQLite's files beside it (missing ones are fine)."""
    for name in (path, *(path.with_name(path.name + suffix) for suffix in SIDE_FILES)):
        with contextlib.suppress(OSError):
            name.unlink()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
