"""A node's configuration (``node.json``) and its store key (``node.key``), in the node's folder.

``node.json`` holds nothing secret: the party, the exchange's address, where the node
listens, its witness name. The secrets — the party's private keys, the witness key, the
exchange token, received plaintext — are in the encrypted store (:mod:`gsomia.node.store`),
whose 256-bit key is the file ``node.key`` (mode 0600, base64) or the environment variable
``GSOMIA_NODE_KEY`` for operators who keep it elsewhere (a secrets manager, a hardware token
that unlocks it at boot).
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import re
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from gsomia.crypto.keyfile import link_private_file, replace_private_file
from gsomia.errors import Conflict, InvalidInput, UnknownEntity

__all__ = [
    "CONFIG_FILE",
    "DB_FILE",
    "KEY_ENV",
    "KEY_FILE",
    "LOCK_FILE",
    "NodeConfig",
    "check_node_dir",
    "create_node_key",
    "following",
    "read_node_key",
]

CONFIG_FILE = "node.json"
KEY_FILE = "node.key"
DB_FILE = "node.db"
KEY_ENV = "GSOMIA_NODE_KEY"
LOCK_FILE = "node.lock"
_PARTY = re.compile(r"^[A-Z][A-Z0-9_-]{1,15}$")  # docs/protocol.md §1.4
_KEY_BYTES = 32
_MAX_KEY_FILE = 1024  # base64 of 32 bytes is 45; anything far larger is not a node key


def check_node_dir(directory: Path) -> None:
    """Refuse a node folder another user could change: one another user owns, or one group or
    others may write to. Whoever may write to the folder may replace ``node.key`` or ``node.json``
    or plant a link in their place (the node would then write its files where they chose).

    Raises:
        InvalidInput: the folder is not a folder, is owned by another user or may be written by
            group or others; the message gives the command that fixes it.
    """
    try:
        st = directory.stat()
    except FileNotFoundError:
        return  # nothing there yet: the caller creates it (0700) or says no node is there
    except OSError as e:
        raise InvalidInput(f"cannot use the node folder {directory}: {e.strerror}") from e
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidInput(f"the node folder {directory} is not a folder: give --dir of a folder")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise InvalidInput(
            f"the node folder {directory} is owned by another user (uid {st.st_uid}): run gsomia as that user, "
            "or give --dir of a folder of yours"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(st.st_mode)
        raise InvalidInput(
            f"the node folder {directory} may be written by group or others (mode {mode:04o}); they could replace "
            f"the node's files: run 'chmod 700 {directory}' and check the files in it, then try again"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    """Where a node lives and whom it serves.

    Attributes:
        party: the party the node acts for (``KOR``).
        exchange: the exchange's base URL.
        dir: the node's folder (``node.json``, ``node.key``, ``node.db``).
        host: the address ``gsomia node serve`` listens on.
        port: the port it listens on.
        witness: the node's witness name (C2SP signed-note key name).
        ledger_origin: the exchange ledger's origin, pinned at init with its key.
    """

    party: str
    exchange: str
    dir: Path
    host: str = "127.0.0.1"
    port: int = 8100
    witness: str = ""
    ledger_origin: str = ""

    def __post_init__(self) -> None:
        for name in ("party", "exchange", "host", "witness", "ledger_origin"):
            if not isinstance(getattr(self, name), str):
                raise InvalidInput(f"{name}: expected text, got {getattr(self, name)!r}")
        if type(self.port) is not int:
            raise InvalidInput(f"port {self.port!r}: give a port between 1 and 65535")
        if not _PARTY.match(self.party):
            raise InvalidInput(f"party {self.party!r}: give a party id such as KOR")
        if not self.exchange.startswith(("http://", "https://")):
            raise InvalidInput(f"exchange URL {self.exchange!r}: give an http:// or https:// address")
        if not 0 < self.port < 65536:
            raise InvalidInput(f"port {self.port}: give a port between 1 and 65535")
        if self.witness and (any(c.isspace() for c in self.witness) or "+" in self.witness):
            raise InvalidInput(f"witness name {self.witness!r}: no spaces and no '+'")

    @property
    def db_path(self) -> Path:
        """The encrypted store."""
        return self.dir / DB_FILE

    @property
    def key_path(self) -> Path:
        """The store key file (unless ``GSOMIA_NODE_KEY`` is set)."""
        return self.dir / KEY_FILE

    def write(self) -> Path:
        """Write ``node.json`` (mode 0600; it names the exchange and the party).

        Raises:
            InvalidInput: the folder cannot be written.
        """
        data = asdict(self) | {"dir": None}
        data.pop("dir")
        path = self.dir / CONFIG_FILE
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise InvalidInput(f"cannot write {path}: {e.strerror}") from e
        check_node_dir(self.dir)
        # a new 0600 file renamed into place: a link planted at node.json is replaced, never followed
        replace_private_file(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
        return path

    @classmethod
    def read(cls, directory: Path) -> NodeConfig:
        """Read ``node.json`` from a node folder.

        Raises:
            UnknownEntity: no node there (run ``gsomia node init``).
            InvalidInput: a malformed file.
        """
        path = directory / CONFIG_FILE
        check_node_dir(directory)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            # not found, exit 5, as a database file that does not exist is (docs/node.md)
            raise UnknownEntity(f"no node in {directory}: run 'gsomia node init' first (or give --dir)") from None
        except (OSError, ValueError, RecursionError) as e:  # RecursionError: nested deeper than the stack
            raise InvalidInput(f"cannot read {path}: {e}") from e
        if not isinstance(data, dict):
            raise InvalidInput(f"{path}: expected a JSON object")
        known = {"party", "exchange", "host", "port", "witness", "ledger_origin"}
        unknown = set(data) - known
        if unknown:
            raise InvalidInput(f"{path}: unknown member(s) {sorted(unknown)}")
        try:
            return cls(dir=directory, **data)
        except TypeError as e:
            raise InvalidInput(f"{path}: {e}") from e


def create_node_key(path: Path) -> bytes:
    """Create a random 256-bit store key in a new 0600 file (never replacing one).

    Raises:
        InvalidInput: the file exists or cannot be written.
    """
    key = secrets.token_bytes(_KEY_BYTES)
    try:
        link_private_file(path, base64.b64encode(key) + b"\n")
    except FileExistsError:
        raise InvalidInput(f"{path} already exists; refusing to replace a node key") from None
    except OSError as e:
        raise InvalidInput(f"cannot write {path}: {e.strerror}") from e
    return key


def read_node_key(path: Path) -> bytes:
    """The store key: ``GSOMIA_NODE_KEY`` (base64 of 32 bytes) if set, else the 0600 file.

    Raises:
        InvalidInput: neither is there, the file may be read by group or others, or the key is
            not base64 of 32 bytes.
    """
    text = os.environ.get(KEY_ENV)
    where = KEY_ENV
    if not text:
        where = str(path)
        text = _read_key_file(path)
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != _KEY_BYTES:
        raise InvalidInput(f"node key from {where}: expected base64 of 32 bytes")
    return key


def _read_key_file(path: Path) -> str:
    """The text of the key file, checked through the open descriptor (the file checked is the
    file read): a regular file only its owner may access, of a key's size.

    Raises:
        InvalidInput: missing, not a regular file, accessible by group or others, or too large.
    """
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang the open; it is refused below
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InvalidInput(
            f"no node key: {path} is missing and {KEY_ENV} is not set (restore the key from its backup)"
        ) from None
    except OSError as e:
        raise InvalidInput(f"cannot open the node key {path}: {e.strerror}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInput(f"the node key {path} is not a regular file: restore node.key from its backup")
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InvalidInput(f"{path} may be read by others: run 'chmod 600 {path}'")
        raw = os.read(fd, _MAX_KEY_FILE + 1)
    finally:
        os.close(fd)
    if len(raw) > _MAX_KEY_FILE:
        raise InvalidInput(f"node key from {path}: expected base64 of 32 bytes")
    return raw.decode("ascii", errors="replace")


@contextmanager
def following(directory: Path, what: str) -> Iterator[None]:
    """Held while this process follows the exchange for the node in ``directory`` (``node serve``,
    ``node sync --once``): one process at a time, since two would fetch, verify and cosign the
    same checkpoints and deliveries at once. The lock is the operating system's on ``node.lock``
    (created 0600, never through a link): it ends with the process, however that ends.

    Raises:
        Conflict: another process follows the exchange for this node.
        InvalidInput: the lock file cannot be opened.
    """
    path = directory / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as e:
        raise InvalidInput(f"cannot open {path}: {e.strerror}") from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(
                f"another 'gsomia node serve' or 'gsomia node sync' runs for the node in {directory}: "
                f"{what} while it runs would do the same work twice; stop it first, or let it follow the exchange"
            ) from None
        yield
    finally:
        os.close(fd)
