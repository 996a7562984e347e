"""The exchange's ledger key: the Ed25519 key that signs ledger checkpoints, and its public half.

The key lives in one file (by default ``exchange-ledger.key`` in the data directory), created
with mode 0600 on first use and refused on read if group or others may access it, the same
rules as party key files (:mod:`gsomia.crypto.keyfile`). The file is JSON::

    {"format": "gsomia-exchange-ledger-key/v1", "algorithm": "ed25519",
     "created": "2026-11-27T09:00:00Z", "private_key": "<base64 of 32 bytes>",
     "public_key": "<base64 of 32 bytes>"}

The private key is RFC 8032 §5.1.5's 32-byte seed; the public key is stored beside it only
so that a corrupted file is detected (it must match the one derived from the seed).

:class:`LedgerKey` is the public half as it is published and as auditors pin it: a
signed-note key name (the log's origin) and the Ed25519 public key.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gsomia.codec import b64decode, b64decode_or_none
from gsomia.crypto.keyfile import check_private_dir, link_private_file, read_private_json
from gsomia.crypto.signing import ExchangeSigner, verify_exchange_signature
from gsomia.errors import InvalidInput
from gsomia.ledger.checkpoint import (
    ED25519_SIGNATURE_TYPE,
    Checkpoint,
    b64,
    ed25519_key_id,
    open_note,
    require_key_name,
)
from gsomia.ledger.cosignature import COSIGNATURE_TYPE, cosignature_line, cosigned_message, cosigner_key_id

__all__ = [
    "LEDGER_KEYFILE_FORMAT",
    "Cosigner",
    "CosignerPublicKey",
    "LedgerKey",
    "load_or_create_ledger_key",
    "read_ledger_keyfile",
    "write_ledger_keyfile",
]

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
    try:
        link_private_file(target, data)
    except FileExistsError:
        raise InvalidInput(f"ledger key file {target} already exists; refusing to overwrite it") from None
    except OSError as e:
        raise InvalidInput(f"cannot write ledger key file {target}: {e.strerror}") from e
    return target


def read_ledger_keyfile(path: str | os.PathLike[str]) -> ExchangeSigner:
    """Read the exchange's checkpoint key written by :func:`write_ledger_keyfile`.

    Args:
        path: the key file.

    Returns:
        The signer.

    Raises:
        InvalidInput: the file is missing, not a regular file, accessible by group or others
            (the message says to ``chmod 600`` it), owned by another user, or not a valid ledger
            key file.
    """
    target = Path(path)
    document = read_private_json(
        target,
        what="ledger key file",
        holds="the exchange's private key",
        limit=_MAX_BYTES,
        kind="a ledger key file",
        owned=True,
    )
    if not isinstance(document, dict) or set(document) != _MEMBERS:
        raise InvalidInput(f"ledger key file {target}: expected exactly the members {sorted(_MEMBERS)}")
    if document["format"] != LEDGER_KEYFILE_FORMAT or document["algorithm"] != "ed25519":
        raise InvalidInput(
            f"ledger key file {target}: unsupported format {document['format']!r}; expected {LEDGER_KEYFILE_FORMAT!r}"
        )
    private = b64decode(document["private_key"], f"ledger key file {target}: private_key")
    try:
        signer = ExchangeSigner.from_private_bytes(private)
    except InvalidInput as e:
        raise InvalidInput(f"ledger key file {target}: {e}") from e
    if b64decode(document["public_key"], f"ledger key file {target}: public_key") != signer.public_key_raw():
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
        InvalidInput: the file exists but is unsafe or invalid, or cannot be created; its folder
            may be changed by another user.
    """
    target = Path(path)
    # sticky will do (a mounted secret volume): the file itself must be ours (read_ledger_keyfile)
    check_private_dir(target.parent, what="folder of the ledger key", sticky_ok=True)
    if not target.exists():
        try:
            write_ledger_keyfile(target, ExchangeSigner.generate(), created=created)
        except InvalidInput:
            if not target.exists():
                raise
            # Another worker created it between our check and our link: use theirs.
    return read_ledger_keyfile(target)


# --- the public half ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerKey:
    """The exchange's checkpoint verification key: a signed-note key name and an Ed25519 key.

    Attributes:
        name: The signed-note key name; tlog-checkpoint §Signatures says it SHOULD be the
            log's origin, and gsomia always makes it so.
        public_key: The 32-byte RFC 8032 public key.
    """

    name: str
    public_key: bytes
    key_id: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise InvalidInput("a ledger public key is 32 bytes (Ed25519)")
        # ed25519_key_id checks the name (signed-note §Format) and derives the 4-byte key ID.
        object.__setattr__(self, "key_id", ed25519_key_id(self.name, self.public_key))

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True only if ``signature`` is this key's Ed25519 signature of ``message``."""
        return verify_exchange_signature(self.public_key, message, signature)

    def open(self, note: str | bytes) -> Checkpoint:
        """Verify a signed checkpoint of this key's log (its origin is the key name) and return it.

        Raises:
            LedgerInvalid: the note is malformed, not validly signed by this key, or names
                another origin (a checkpoint of another log signed with the same key).
        """
        return open_note(note, self.name, self.key_id, self.verify, origin=self.name)

    def vkey(self) -> str:
        """The Go ``note`` verifier key: ``<name>+<key ID hex>+<base64(0x01 || key)>``."""
        return f"{self.name}+{self.key_id.hex()}+{b64(bytes([ED25519_SIGNATURE_TYPE]) + self.public_key)}"

    def to_dict(self) -> dict[str, str]:
        """The key as ``GET /api/v1/ledger/key`` and ``gsomia ledger key --json`` publish it."""
        return {
            "name": self.name,
            "key_id": self.key_id.hex(),
            "public_key": b64(self.public_key),
            "algorithm": "ed25519",
            "vkey": self.vkey(),
        }

    @classmethod
    def parse(cls, text: str, *, name: str | None = None) -> LedgerKey:
        """Read a key as published: the JSON of :meth:`to_dict`, a vkey line, or bare base64.

        Args:
            text: The key text (surrounding whitespace is ignored).
            name: The key name for bare base64 (the log's origin); ignored otherwise.

        Returns:
            The key.

        Raises:
            InvalidInput: the text is none of those forms, or a key ID does not match.
        """
        text = text.strip()
        if text.startswith("{"):
            try:
                doc = json.loads(text)
            except ValueError as e:
                raise InvalidInput("ledger key: not valid JSON") from e
            if not isinstance(doc, dict):
                raise InvalidInput("ledger key: expected a JSON object with name and public_key")
            raw = b64decode_or_none(doc.get("public_key"))
            key_name = doc.get("name")
            if raw is None or not isinstance(key_name, str):
                raise InvalidInput("ledger key: expected a JSON object with name and base64 public_key")
            if doc.get("algorithm", "ed25519") != "ed25519":
                raise InvalidInput(f"ledger key: unsupported algorithm {doc.get('algorithm')!r}; expected ed25519")
            key = cls(name=key_name, public_key=raw)
            claimed = doc.get("key_id")
            if claimed is not None and claimed != key.key_id.hex():
                raise InvalidInput("ledger key: key_id does not match the name and public key")
            return key
        bare = b64decode_or_none(text)
        if "+" in text and (bare is None or len(bare) != 32):  # base64 has "+" too: a bare key wins
            parts = text.split("+", 2)  # the base64 key may itself contain "+"
            raw = b64decode_or_none(parts[2]) if len(parts) == 3 else None
            if raw is None or len(raw) != 33 or raw[0] != ED25519_SIGNATURE_TYPE:
                raise InvalidInput("ledger key: a vkey is NAME+KEYID+base64(0x01 || 32-byte Ed25519 key)")
            key = cls(name=parts[0], public_key=raw[1:])
            if parts[1] != key.key_id.hex():
                raise InvalidInput("ledger key: the vkey's key ID does not match its name and key")
            return key
        raw = bare
        if raw is None or len(raw) != 32:
            raise InvalidInput(
                "ledger key: give the JSON from 'gsomia ledger key --json', a vkey, or base64 of 32 bytes"
            )
        if name is None:
            raise InvalidInput("ledger key: a bare base64 key needs the log's origin as its name")
        return cls(name=name, public_key=raw)


# --- cosigners (witnesses) ---------------------------------------------------------------------------

MAX_COSIGNER_NAME = 200
"""The longest witness name the exchange keeps."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CosignerPublicKey:
    """A witness's cosigning key, as verifiers pin it: a name and an Ed25519 public key
    (C2SP tlog-cosignature, ``cosignature/v1``)."""

    name: str
    public_key: bytes
    key_id: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # signed-note §Format: a name with a control character would make every note that
        # carries its cosignature unreadable to every verifier.
        if len(self.name) > MAX_COSIGNER_NAME:
            raise InvalidInput(f"a cosigner name is at most {MAX_COSIGNER_NAME} characters")
        try:
            require_key_name(self.name)
        except InvalidInput:
            raise InvalidInput(
                f"cosigner name {self.name!r}: use a name without spaces, '+' or control characters"
            ) from None
        object.__setattr__(self, "key_id", cosigner_key_id(self.name, self.public_key))

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True only if ``signature`` is this key's Ed25519 signature of ``message``."""
        return verify_exchange_signature(self.public_key, message, signature)

    def vkey(self) -> str:
        """The verifier key: ``<name>+<key ID hex>+<base64(0x04 || key)>``."""
        return f"{self.name}+{self.key_id.hex()}+{b64(bytes([COSIGNATURE_TYPE]) + self.public_key)}"

    @classmethod
    def parse(cls, text: str) -> CosignerPublicKey:
        """Read a cosigner vkey.

        Raises:
            InvalidInput: it is not ``NAME+KEYID+base64(0x04 || 32-byte key)`` with a matching ID.
        """
        parts = text.strip().split("+", 2)
        raw = b64decode_or_none(parts[2]) if len(parts) == 3 else None
        if raw is None or len(raw) != 33 or raw[0] != COSIGNATURE_TYPE:
            raise InvalidInput("witness key: a vkey is NAME+KEYID+base64(0x04 || 32-byte Ed25519 key)")
        key = cls(name=parts[0], public_key=raw[1:])
        if parts[1] != key.key_id.hex():
            raise InvalidInput("witness key: the vkey's key ID does not match its name and key")
        return key


@dataclass(frozen=True, slots=True)
class Cosigner:
    """A witness that cosigns checkpoints: its name and Ed25519 signing key."""

    name: str
    signer: ExchangeSigner

    @property
    def public(self) -> CosignerPublicKey:
        """The public half, as verifiers pin it."""
        return CosignerPublicKey(name=self.name, public_key=self.signer.public_key_raw())

    def cosign(self, body: str, timestamp: int) -> str:
        """The ``cosignature/v1`` line for a checkpoint body, as of ``timestamp``.

        Raises:
            InvalidInput: the timestamp is out of range.
        """
        signature = self.signer.sign(cosigned_message(body, timestamp))
        return cosignature_line(self.name, self.public.key_id, timestamp, signature)
