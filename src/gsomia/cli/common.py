"""What every ``gsomia`` command shares: the consoles, the exit codes, JSON output, error
reporting and the application built from ``--db`` on first use.

Exit codes live here and only here (:data:`EXIT_CODES`); every error is one clear line on
stderr, except a validation failure, which lists every problem with its file and line.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import sys
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from gsomia.bootstrap import App, Settings, build
from gsomia.errors import (
    Busy,
    Conflict,
    ExchangeUnreachable,
    GsomiaError,
    InvalidInput,
    LedgerInvalid,
    NotAuthenticated,
    NotPermitted,
    StorageError,
    TooManyRequests,
    UnknownEntity,
    ValidationFailed,
)
from gsomia.storage.db import driver_error, missing_sqlite_file

__all__ = [
    "EXIT_CODES",
    "app",
    "close_app",
    "emit_json",
    "err",
    "errors",
    "exit_code",
    "fail",
    "one_line",
    "out",
    "settings",
    "state",
]

EXIT_CODES: dict[type[GsomiaError], int] = {
    ValidationFailed: 3,
    InvalidInput: 4,
    UnknownEntity: 5,
    Conflict: 6,
    StorageError: 7,
    LedgerInvalid: 8,
    NotAuthenticated: 9,
    NotPermitted: 9,
    ExchangeUnreachable: 10,
    Busy: 11,
    TooManyRequests: 11,
}
"""Exit codes by error class; any other gsomia error exits 1, a usage error 2."""

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)


def unwrapped_when_piped() -> None:
    """Print each message on one line when the output is no terminal (a pipe, a file, a log):
    a script that reads the output, or ``grep``, must find a line whole, whatever ``COLUMNS``
    says. In a terminal, long messages wrap between words at its width."""
    out.soft_wrap = not out.is_terminal
    err.soft_wrap = not err.is_terminal


class _State:
    """The ``--db`` the root command was given, and the application built from it."""

    db: str | None = None
    app: App | None = None


state = _State()


def app(*, creates: bool = False) -> App:
    """The application for this invocation, built from ``--db`` (or the environment) on first use.

    A SQLite file named with ``--db`` or ``GSOMIA_DB`` must exist unless the command ``creates``
    one (``scenario load``, ``serve``, ``demo``, ``principals add``): a mistyped path given to
    ``status`` or ``ledger verify`` is an error, not a new empty database that "verifies".

    Raises:
        UnknownEntity: a given SQLite file that does not exist, for a command that reads.
        InvalidInput: a bad setting.
        StorageError: the database cannot be opened or migrated.
    """
    if state.app is None:
        given = settings()
        missing = missing_sqlite_file(given.db) if given.db and not creates else None
        if missing is not None:
            raise UnknownEntity(
                f"no database at {missing}: check --db (or GSOMIA_DB); a new one is made by "
                "'gsomia scenario load', 'gsomia serve' or 'gsomia principals add'"
            )
        state.app = build(given)
    return state.app


def settings(**given: Any) -> Settings:
    """The settings for this invocation: ``--db`` if given, and ``given``, over the environment.

    Raises:
        InvalidInput: a bad setting, named by its environment variable.
    """
    if state.db:
        given.setdefault("db", state.db)
    try:
        return Settings(**given)
    except ValidationError as e:
        first = e.errors()[0]
        name = "GSOMIA_" + "_".join(str(part) for part in first["loc"]).upper()
        raise InvalidInput(f"{name}: {first['msg']} (got {first.get('input')!r})") from e


def close_app() -> None:
    """Finish queued writes and release the database, if the application was built."""
    if state.app is not None:
        state.app.close()
        state.app = None


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (the ``--json`` contract)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def exit_code(e: GsomiaError) -> int:
    """The exit code of an error (1 when its class has none of its own)."""
    return next((c for cls, c in EXIT_CODES.items() if isinstance(e, cls)), 1)


def fail(e: GsomiaError) -> NoReturn:
    """Report ``e`` on stderr and exit with its code."""
    # plain writes: an error line must never be wrapped or styled
    if isinstance(e, ValidationFailed):
        for p in e.problems:
            sys.stderr.write(f"{one_line(str(p))}\n")
        sys.stderr.write(f"error: {len(e.problems)} problem(s) found; nothing was loaded\n")
    else:
        sys.stderr.write(f"error: {one_line(str(e))}\n")
    raise typer.Exit(exit_code(e))


def one_line(text: str) -> str:
    """``text`` as one line the terminal shows as it is: runs of line breaks, tabs and ASCII
    spaces as one space, and every other control or format character as its escape
    (``\\x1b``). An error may quote what someone else chose (a file name, a row of an altered
    database, an exchange's answer); an escape sequence in it must not move the cursor, rewrite
    the line or hide the verdict. The spaces of other scripts (Japanese's ideographic space) and
    the zero-width joiner and non-joiner are left as they are: they move nothing, and names in
    Japanese, Persian, the Indian scripts and emoji sequences are spelt with them."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in ("Cc", "Cf") and ch not in _JOINERS
        else ch
        for ch in _BREAKS.sub(" ", text).strip(" ")
    )


_BREAKS = re.compile("[\t\n\v\f\r \x1c-\x1f\x85\u2028\u2029]+")
"""What :func:`one_line` folds into one space: the white space that breaks or separates lines,
tabs and ASCII spaces (what ``str.split`` splits on, less the spaces of other scripts)."""


_JOINERS = frozenset("\u200c\u200d")
"""ZERO WIDTH NON-JOINER and ZERO WIDTH JOINER: format characters that are part of the spelling
of words (``می‌خواهم``), not controls of the terminal or of the text's direction."""


@contextmanager
def errors() -> Iterator[None]:
    """Turn a gsomia error raised inside into its one-line report and exit code; so too an
    error of the database driver that nothing turned into one (a :class:`StorageError`: the
    database named with its secrets masked, never a traceback that could quote a password)."""
    try:
        yield
    except GsomiaError as e:
        fail(e)
    except Exception as e:
        problem = driver_error(e, _database_url())
        if problem is None:
            raise
        fail(problem)


def check_listen(host: str, port: int) -> None:
    """Refuse, in one line, an address a server cannot listen on (in use, or not this host's)
    before it starts anything: uvicorn would log its error over several lines and exit 3, the
    code of an invalid scenario file.

    Raises:
        InvalidInput: the address cannot be bound.
    """
    # As uvicorn binds: IPv6 when the host is an IPv6 address, IPv4 otherwise
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            raise cannot_listen(host, port, e) from e


def cannot_listen(host: str, port: int, e: OSError) -> InvalidInput:
    """The error for an address a server cannot listen on, with what to change."""
    return InvalidInput(
        f"cannot listen on {host}:{port}: {e.strerror or e}: give another --port, or a --host of this machine"
    )


@contextmanager
def server_exit(host: str, port: int) -> Iterator[None]:
    """Turn the exit of a server that could not start (uvicorn exits 3, after logging why) into
    one line and exit code 1.

    Raises:
        GsomiaError: the server exited with a failure.
    """
    try:
        yield
    except SystemExit as e:
        if e.code in (None, 0):
            raise
        raise GsomiaError(f"the server on {host}:{port} could not start (its error is above)") from e


def _database_url() -> str | None:
    """The database URL of this invocation, to name in an error (None if the settings are bad)."""
    if state.app is not None:
        return state.app.store.url
    try:
        return settings().database_url()
    except GsomiaError:
        return None


SECRET_FILE_LIMIT = 64 * 1024  # a token or a password is far shorter


def read_secret_text(path: Path, what: str, limit: int = SECRET_FILE_LIMIT) -> str:
    """A short UTF-8 secret (a token, a password) from a file the user named: a regular file or
    a pipe (``<(pass show …)``), at most ``limit`` bytes. A device (``/dev/zero``), a folder or a
    socket is refused, and a larger file is refused unread beyond the limit.

    Raises:
        InvalidInput: the file cannot be read, is not a regular file or a pipe, is too large, or
            is not UTF-8.
    """
    data = read_bytes(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"cannot read the {what} file {path}: not UTF-8 text") from e


def read_bytes(path: Path, what: str, limit: int) -> bytes:
    """The bytes of a file the user named: a regular file or a pipe, at most ``limit`` bytes. A
    device (``/dev/zero`` would be read until memory runs out), a folder or a socket is refused,
    and a larger file is refused unread beyond the limit.

    Raises:
        InvalidInput: the file cannot be read, is not a regular file or a pipe, or is too large.
    """
    try:
        # O_NONBLOCK: opening a FIFO no one writes to must not hang; reads then block again
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise InvalidInput(f"cannot read the {what} file {path}: {e.strerror}") from e
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise InvalidInput(f"the {what} file {path} is not a regular file: give the file that holds the {what}")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(limit + 1 - size, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise InvalidInput(f"cannot read the {what} file {path}: {e.strerror}") from e
    finally:
        os.close(fd)
    if size > limit:
        raise InvalidInput(f"the {what} file {path} is larger than {limit} bytes: give the file that holds the {what}")
    return b"".join(chunks)


TEXT_FILE_LIMIT = 16 * 1024 * 1024  # a checkpoint, a key or a proof is a few kilobytes


def read_text(path: Path, what: str) -> str:
    """A UTF-8 text file the user named (a checkpoint, a key, a proof), or a one-line error
    naming it: a regular file or a pipe of at most :data:`TEXT_FILE_LIMIT` bytes, never a device
    (``/dev/zero`` would be read until memory runs out) or a folder.

    Raises:
        InvalidInput: the file cannot be read, is not a regular file or a pipe, is too large, or
            is not UTF-8.
    """
    return read_secret_text(path, what, limit=TEXT_FILE_LIMIT)


def write_private_file(path: Path, data: bytes, what: str) -> None:
    """Write ``data`` (a decrypted payload: classified) to ``path`` as a file only its owner may
    read, mode 0600 from its first byte, whatever the umask: a new file written whole, then
    renamed into place, so a file already there is replaced whole or not at all. ``-`` is
    standard output. A pipe or a
    device (``/dev/stdout`` on a terminal or a pipe) is written as it is. A symbolic link to a
    file, or to nothing, is refused: written through, it would put the plaintext where someone
    else chose; replaced, it would no longer be the link the user meant (``/dev/stdout`` on a
    file).

    Raises:
        InvalidInput: ``path`` is a folder or such a link, or cannot be written (nothing is left
            of a new file).
    """
    if str(path) == "-":  # standard output, as 'ledger export --out -'
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    link, mode = False, None
    try:
        link = stat.S_ISLNK(path.lstat().st_mode)
        mode = path.stat().st_mode
    except OSError:
        mode = None  # not there, or a link to nothing: refused below, or the new file's own error
    if link and (mode is None or stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InvalidInput(
            f"cannot write the {what} to {path}: it is a symbolic link; give the path of the file itself"
        )
    if mode is not None and stat.S_ISDIR(mode):
        raise InvalidInput(f"cannot write the {what} to {path}: it is a folder; give a file name in it")
    if mode is not None and not stat.S_ISREG(mode):
        _write_to_stream(path, data, what)
        return
    # a name nobody can guess, created afresh: never a file or a link someone left there
    tmp = path.with_name(f".{path.name}.{os.urandom(8).hex()}.tmp")
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(tmp, flags, 0o600), "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)  # the umask can only clear bits; this is belt and braces
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise InvalidInput(f"cannot write the {what} to {path}: {e.strerror}") from e
        raise


def _write_to_stream(path: Path, data: bytes, what: str) -> None:
    """Write ``data`` into the pipe or the device at ``path`` (``/dev/stdout``, ``>(command)``).
    A named pipe of another user (made under the name given, in a folder anyone may write, such
    as /tmp) is refused before a byte is written: its owner would read the plaintext.

    Raises:
        InvalidInput: it is such a pipe, no longer a pipe or a device, or cannot be written.
    """
    try:
        # no O_CREAT: this opens what is there; for a pipe, it waits for its reader
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise InvalidInput(f"cannot write the {what} to {path}: {e.strerror}") from e
    with os.fdopen(fd, "wb") as fh:
        st = os.fstat(fd)
        if stat.S_ISFIFO(st.st_mode) and st.st_uid != os.getuid():
            raise InvalidInput(
                f"cannot write the {what} to {path}: it is a named pipe of another user, who would read it; "
                "give a file name of your own"
            )
        if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
            raise InvalidInput(f"cannot write the {what} to {path}: it changed while it was opened; run it again")
        try:
            fh.write(data)
            fh.flush()
        except OSError as e:
            raise InvalidInput(f"cannot write the {what} to {path}: {e.strerror}") from e
