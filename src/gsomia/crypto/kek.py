"""The exchange's key-encryption key (KEK): it seals every report's content key at rest.

The KEK comes from the setting ``GSOMIA_KEK`` (base64 of 32 bytes), or from a file in the data
directory (``exchange.kek``) created with mode 0600 on first use and refused on read if group
or others may access it, if another user owns it, or if another user may change its folder.
Without the KEK the stored payloads cannot be read, so an operator must back the file up (or
provide the setting from a secret store).
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from gsomia.codec import b64decode
from gsomia.crypto.envelope import KEY_LENGTH
from gsomia.crypto.keyfile import check_private_dir, check_private_owner, link_private_file
from gsomia.errors import InvalidInput, StorageError

__all__ = ["load_or_create_kek", "parse_kek"]

log = logging.getLogger(__name__)

_MAX_BYTES = 256


def parse_kek(text: str, what: str = "GSOMIA_KEK") -> bytes:
    """Decode a base64 KEK.

    Raises:
        InvalidInput: it is not base64 of exactly 32 bytes (the message never shows the value).
    """
    raw = b64decode(text.strip(), what)
    if len(raw) != KEY_LENGTH:
        raise InvalidInput(f"{what}: a key-encryption key is {KEY_LENGTH} bytes, got {len(raw)}")
    return raw


def _read(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise InvalidInput(f"cannot open the key-encryption key {path}: {e.strerror}") from e
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        # checked on the descriptor before it is wrapped: a directory cannot be opened as a file
        os.close(fd)
        raise InvalidInput(f"key-encryption key {path} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        if st.st_mode & 0o077:
            raise InvalidInput(
                f"key-encryption key {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}): run `chmod 600 {path}` and try again"
            )
        check_private_owner(path, st, what="key-encryption key")
        raw = f.read(_MAX_BYTES + 1)
    try:
        return parse_kek(raw.decode("ascii"), str(path))
    except UnicodeDecodeError as e:
        raise InvalidInput(f"key-encryption key {path}: not base64 text") from e


def load_or_create_kek(path: Path, *, may_create: Callable[[], bool] = lambda: True) -> bytes:
    """Read the KEK file, creating it (mode 0600, fresh random key) if it does not exist and
    ``may_create()`` (a database that holds nothing sealed yet).

    Safe when several workers start at once: exactly one creates the file.

    Raises:
        InvalidInput: the file exists but is unsafe or invalid, or cannot be created; its folder
            may be changed by another user.
        StorageError: the file is missing and may not be created (sealed reports exist).
    """
    check_private_dir(path.parent, what="folder of the key-encryption key")
    if not path.exists() and not may_create():
        raise StorageError(
            f"the key-encryption key {path} is missing, and the database holds reports sealed under it: put it "
            "back from the backup made with this database (or set GSOMIA_KEK to it). Nothing was written."
        )
    if not path.exists():
        data = (base64.b64encode(secrets.token_bytes(KEY_LENGTH)).decode("ascii") + "\n").encode("ascii")
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                link_private_file(path, data)
            except FileExistsError:
                pass  # another worker created it first: use theirs
            else:
                log.warning(
                    "generated a key-encryption key in %s (mode 0600); back it up: without it the stored "
                    "payloads cannot be read. Set GSOMIA_KEK to supply one instead.",
                    path,
                )
        except OSError as e:
            raise InvalidInput(f"cannot create the key-encryption key {path}: {e.strerror}") from e
    return _read(path)
