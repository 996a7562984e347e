"""The exchange's ledger key file: the Ed25519 key that signs ledger checkpoints.

The key lives in one file (by default ``exchange-ledger.key`` in the data directory), created
with mode 0600 on first use and refused on read if group or others may access it, the same
rules as party key files (:mod:`gsomia.crypto.keys`). The file is JSON::

    {"format": "gsomia-exchange-ledger-key/v1", "algorithm": "ed25519",
     "created": "2026-11-27T09:00:00Z", "private_key": "<base64 of 32 bytes>",
     "public_key": "<base64 of 32 bytes>"}

The private key is RFC 8032 §5.1.5's 32-byte seed; the public key is stored beside it only
so that a corrupted file is detected (it must match the one derived from the seed).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import stat
from datetime import UTC, datetime
from pathlib import Path

from gsomia.crypto.keys import _create_0600, _fsync_directory
from gsomia.crypto.signing import ExchangeSigner
from gsomia.errors import InvalidInput

__all__ = ["LEDGER_KEYFILE_FORMAT", "load_or_create_ledger_key", "read_ledger_keyfile", "write_ledger_keyfile"]

LEDGER_KEYFILE_FORMAT = "gsomia-exchange-ledger-key/v1"
_MAX_BYTES = 4096  # a ledger key file is about 200 bytes
_MEMBERS = frozenset({"format", "algorithm", "created", "private_key", "public_key"})


def write_ledger_keyfile(path: str | os.PathLike[str], signer: ExchangeSigner, *, created: datetime) -> Path:
    """Write the exchange's checkpoint key to a new file with mode 0600.

    The file is written under a temporary name (created exclusively, mode 0600, flushed)
    and hard-linked into place, so a reader never sees a partial file and an existing key is
    never replaced.

    Args:
        path: where to write the key file; its folder is created (mode 0700) if missing.
        signer: the key to store.
        created: the creation time to record (timezone-aware).

    Returns:
        The path written.

    Raises:
        InvalidInput: the file already exists or cannot be written.
    """
    target = Path(path)
    if created.tzinfo is None or created.utcoffset() is None:
        raise InvalidInput("the ledger key's creation time must be timezone-aware")
    document = {
        "format": LEDGER_KEYFILE_FORMAT,
        "algorithm": "ed25519",
        "created": created.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "private_key": base64.b64encode(signer.private_bytes_raw()).decode("ascii"),
        "public_key": base64.b64encode(signer.public_key_raw()).decode("ascii"),
    }
    data = (json.dumps(document, indent=2) + "\n").encode("ascii")
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise InvalidInput(f"cannot create the folder of the ledger key {target}: {e.strerror}") from e
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    try:
        _create_0600(tmp, data)
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise InvalidInput(f"ledger key file {target} already exists; refusing to overwrite it") from None
        _fsync_directory(target.parent)
    except OSError as e:
        raise InvalidInput(f"cannot write ledger key file {target}: {e.strerror}") from e
    finally:
        tmp.unlink(missing_ok=True)
    return target


def read_ledger_keyfile(path: str | os.PathLike[str]) -> ExchangeSigner:
    """Read the exchange's checkpoint key written by :func:`write_ledger_keyfile`.

    Args:
        path: the key file.

    Returns:
        The signer.

    Raises:
        InvalidInput: the file is missing, not a regular file, accessible by group or others
            (the message says to ``chmod 600`` it), or not a valid ledger key file.
    """
    target = Path(path)
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang the server; it is rejected below.
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InvalidInput(f"ledger key file {target} does not exist") from None
    except OSError as e:
        raise InvalidInput(f"cannot open ledger key file {target}: {e.strerror}") from e
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInput(f"ledger key file {target} is not a regular file")
        if st.st_mode & 0o077:
            mode = stat.S_IMODE(st.st_mode)
            raise InvalidInput(
                f"ledger key file {target} is accessible by group or others (mode {mode:04o}); "
                f"it holds the exchange's private key: run `chmod 600 {target}` and try again"
            )
        raw = f.read(_MAX_BYTES + 1)
    if len(raw) > _MAX_BYTES:
        raise InvalidInput(f"ledger key file {target} is larger than {_MAX_BYTES} bytes; it is not a ledger key file")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidInput(f"ledger key file {target} is not valid JSON") from e
    if not isinstance(document, dict) or set(document) != _MEMBERS:
        raise InvalidInput(f"ledger key file {target}: expected exactly the members {sorted(_MEMBERS)}")
    if document["format"] != LEDGER_KEYFILE_FORMAT or document["algorithm"] != "ed25519":
        raise InvalidInput(
            f"ledger key file {target}: unsupported format {document['format']!r}; expected {LEDGER_KEYFILE_FORMAT!r}"
        )
    private = _unb64(document["private_key"], target, "private_key")
    try:
        signer = ExchangeSigner.from_private_bytes(private)
    except InvalidInput as e:
        raise InvalidInput(f"ledger key file {target}: {e}") from e
    if _unb64(document["public_key"], target, "public_key") != signer.public_key_raw():
        raise InvalidInput(
            f"ledger key file {target}: the public key does not match the private key; the file is corrupt"
        )
    return signer


def load_or_create_ledger_key(path: str | os.PathLike[str], *, created: datetime) -> ExchangeSigner:
    """Read the exchange's checkpoint key, creating it first if the file does not exist.

    Safe when several workers start at once: exactly one creates the file, the others read it.

    Args:
        path: the key file.
        created: the creation time to record if a key is generated.

    Returns:
        The signer.

    Raises:
        InvalidInput: the file exists but is unsafe or invalid, or cannot be created.
    """
    target = Path(path)
    if not target.exists():
        try:
            write_ledger_keyfile(target, ExchangeSigner.generate(), created=created)
        except InvalidInput:
            if not target.exists():
                raise
            # Another worker created it between our check and our link: use theirs.
    return read_ledger_keyfile(target)


def _unb64(value: object, target: Path, member: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"ledger key file {target}: {member} must be a base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        # Name the member only: the value may be secret.
        raise InvalidInput(f"ledger key file {target}: {member} is not valid base64") from e
