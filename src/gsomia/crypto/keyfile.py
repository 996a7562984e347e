"""Private key files: written with mode 0600 and published in one step, refused on read if group
or others may access them (the same rule OpenSSH applies to identity files).

A party's key set (:class:`~gsomia.crypto.keys.PartyKeys`) is stored as
:data:`~gsomia.crypto.keys.KEYFILE_FORMAT` JSON by :func:`write_private_keyfile` and read back
by :func:`read_private_keyfile`. The exchange's own secrets, its ledger key
(:mod:`gsomia.crypto.ledger_key`) and its key-encryption key (:mod:`gsomia.crypto.kek`), are
created and read with the same primitives.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from gsomia.crypto.keys import PartyKeys
from gsomia.errors import InvalidInput

__all__ = [
    "check_private_dir",
    "check_private_owner",
    "create_private_file",
    "fsync_directory",
    "link_private_file",
    "read_private_json",
    "read_private_keyfile",
    "replace_private_file",
    "write_private_keyfile",
]

_log = logging.getLogger(__name__)

# A key file is a few kilobytes; anything far larger is not one (and is not read into memory).
_MAX_KEYFILE_BYTES = 64 * 1024


def fsync_directory(directory: Path) -> None:
    """Make a new entry of ``directory`` durable (a rename is only persistent once its directory is).

    Raises:
        OSError: the directory cannot be opened or synced.
    """
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _trusted_owner(uid: int) -> bool:
    """Whether a file or folder owned by ``uid`` may hold this process's secrets: owned by the
    user this process runs as, or by root (who may change anything anyway)."""
    return not hasattr(os, "geteuid") or uid in (os.geteuid(), 0)


def check_private_dir(directory: Path, *, what: str, sticky_ok: bool = False) -> None:
    """Refuse a folder that holds secrets if another user could change what is in it: one owned
    by another user (root excepted), or one group or others may write to. Whoever may write to
    the folder may put a key of their own, a database of their own or a link in place of the
    files there, and the process would use them (the rule OpenSSH's ``StrictModes`` applies).
    A folder that does not exist yet is left to its creator (mode 0700). With ``sticky_ok``, a
    folder others may write to is accepted if it is sticky (``/tmp``, a mounted secret volume):
    nobody else may replace a file in it, and the caller refuses a file another user made there.

    Raises:
        InvalidInput: the folder is owned by another user or may be written by
            group or others; the message gives the command that fixes it.
    """
    try:
        st = directory.stat()
    except FileNotFoundError:
        return
    except OSError as e:
        raise InvalidInput(f"cannot use the {what} {directory}: {e.strerror}") from e
    if not stat.S_ISDIR(st.st_mode):
        return  # nothing can be read from it or made in it: the caller's own error says so
    if not _trusted_owner(st.st_uid):
        raise InvalidInput(
            f"the {what} {directory} is owned by another user (uid {st.st_uid}), who could replace the files in "
            "it: run gsomia as that user, or use a folder of yours"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        mode = stat.S_IMODE(st.st_mode)
        raise InvalidInput(
            f"the {what} {directory} may be written by group or others (mode {mode:04o}), who could replace the "
            f"files in it: run 'chmod 700 {directory}', check the files in it, and try again"
        )


def check_private_owner(path: Path, st: os.stat_result, *, what: str) -> None:
    """Refuse a secret file owned by another user (root excepted): a process that can read it
    anyway (root) would otherwise take a key another user chose.

    Raises:
        InvalidInput: the file is owned by another user.
    """
    if not _trusted_owner(st.st_uid):
        raise InvalidInput(
            f"{what} {path} is owned by another user (uid {st.st_uid}), who could have chosen the key in it: "
            f"put back the exchange's own file, owned by the user gsomia runs as (chown), and try again"
        )


def create_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600, write ``data`` and flush it to disk.

    Raises:
        OSError: the file exists (it is never reused, nor a symlink followed) or cannot be written.
    """
    # O_EXCL: never reuse (or follow a symlink to) an existing file; 0600 from the first byte,
    # so the secret is never readable by others, not even between create and chmod.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)  # umask can only clear bits; this is belt and braces
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def link_private_file(target: Path, data: bytes) -> None:
    """Publish ``data`` as a new private file at ``target`` in one step, never replacing a file.

    The data is written under a temporary name beside ``target`` (created exclusively, mode
    0600, flushed), hard-linked into place and the directory synced, so a reader never sees a
    partial file; the temporary name is always removed.

    Raises:
        FileExistsError: ``target`` already exists (it is left as it was).
        OSError: the file cannot be written.
    """
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    try:
        create_private_file(tmp, data)
        os.link(tmp, target)
        fsync_directory(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def replace_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the first byte, replacing any file there in
    one step (a reader sees the old file or the new one, never part of either).

    Raises:
        InvalidInput: if the file cannot be written.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        create_private_file(tmp, data)
        tmp.replace(path)
        fsync_directory(path.parent)
    except OSError as e:
        raise InvalidInput(f"cannot write {path}: {e.strerror}") from e
    finally:
        with contextlib.suppress(OSError):  # nothing to remove when the directory is unusable
            tmp.unlink(missing_ok=True)


def read_private_json(path: Path, *, what: str, holds: str, limit: int, kind: str, owned: bool = False) -> Any:
    """Read a JSON file that holds secrets, refusing it unless only its owner may access it.

    The file is checked through the open descriptor, not the path, so the file checked is the
    file read.

    Args:
        path: the file.
        what: how messages name the file, e.g. ``key file``.
        holds: what the file holds, for the advice to ``chmod`` it, e.g. ``private keys``.
        limit: the size in bytes above which the file is refused unread.
        kind: what a genuine file is, for the message on an oversized one.
        owned: also refuse a file owned by another user than this process's (root excepted).

    Returns:
        The parsed JSON document.

    Raises:
        InvalidInput: the file is missing, not a regular file, accessible by group or others
            (the message says to ``chmod 600`` it), owned by another user when ``owned``,
            larger than ``limit`` or not JSON.
    """
    try:
        # O_NONBLOCK: opening a FIFO planted at the path must not hang; it is rejected below.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InvalidInput(f"{what} {path} does not exist") from None
    except OSError as e:
        raise InvalidInput(f"cannot open {what} {path}: {e.strerror}") from e
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a directory cannot even be wrapped as a file
        os.close(fd)
        raise InvalidInput(f"{what} {path} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_mode & 0o077:
            mode = stat.S_IMODE(st.st_mode)
            raise InvalidInput(
                f"{what} {path} is accessible by group or others (mode {mode:04o}); "
                f"it holds {holds}: run `chmod 600 {path}` and try again"
            )
        if owned:
            check_private_owner(path, st, what=what)
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise InvalidInput(f"{what} {path} is larger than {limit} bytes; it is not {kind}")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # RecursionError: nested too deeply
        raise InvalidInput(f"{what} {path} is not valid JSON") from e


def write_private_keyfile(path: str | os.PathLike[str], keys: PartyKeys, *, overwrite: bool = False) -> Path:
    """Write ``keys`` to a new private key file with mode 0600.

    The file is written to a temporary name in the same directory (created exclusively, mode
    0600), flushed to disk, then published in one step: hard-linked into place when
    ``overwrite`` is false (fails if the name exists, with no race) or renamed over the old
    file when it is true. A reader never sees a partly written key file.

    Args:
        path: where to write the key file.
        keys: the key set to store.
        overwrite: replace an existing file instead of refusing.

    Returns:
        The path written.

    Raises:
        InvalidInput: the file exists and ``overwrite`` is false, or it cannot be written.
    """
    target = Path(path)
    data = (json.dumps(keys.to_private_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    try:
        create_private_file(tmp, data)
    except OSError as e:
        raise InvalidInput(f"cannot create key file {target}: {e.strerror}") from e
    try:
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise InvalidInput(
                    f"key file {target} already exists (its keys may be registered): give another --out, or --force to replace it"
                ) from None
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                # The filesystem has no hard links: create the target itself, still exclusively.
                _log.debug("hard links unsupported in %s (%s); writing key file in place", target.parent, e)
                try:
                    create_private_file(target, data)
                except FileExistsError:
                    raise InvalidInput(
                        f"key file {target} already exists (its keys may be registered): give another --out, or --force to replace it"
                    ) from None
        fsync_directory(target.parent)
    except OSError as e:
        raise InvalidInput(f"cannot write key file {target}: {e.strerror}") from e
    finally:
        tmp.unlink(missing_ok=True)
    return target


def read_private_keyfile(path: str | os.PathLike[str]) -> PartyKeys:
    """Read a key file written by :func:`write_private_keyfile`.

    Args:
        path: the key file.

    Returns:
        The key set.

    Raises:
        InvalidInput: the file is missing, not a regular file, accessible by group or others
            (the message says to ``chmod 600`` it), too large, or not a valid key file.
    """
    target = Path(path)
    document = read_private_json(
        target, what="key file", holds="private keys", limit=_MAX_KEYFILE_BYTES, kind="a gsomia key file"
    )
    try:
        return PartyKeys.from_private_dict(document)
    except InvalidInput as e:
        raise InvalidInput(f"key file {target}: {e}") from e
