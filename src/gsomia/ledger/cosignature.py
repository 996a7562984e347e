"""Cosignatures of checkpoints (C2SP tlog-cosignature, Ed25519 ``cosignature/v1``).

A cosigner (each party's node, as a witness) states that, as of a time, the checkpoint it
cosigns is the largest consistent tree head it has seen of the log. A cosignature is a
signed-note signature line over the checkpoint body::

    — <cosigner name> base64(key ID || u64 timestamp || Ed25519 signature)

with key ID ``SHA-256(name || "\\n" || 0x04 || public key)[:4]``, and the signature over
``"cosignature/v1\\n" || "time " || decimal timestamp || "\\n" || checkpoint body``.
Clients that demand a quorum of cosignatures from witnesses they trust are protected from a
log that shows them a view (a fork, a rollback) nobody else sees.

Pure: formatting, parsing and checking, with the signature check a callable of the caller's.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Protocol

from gsomia.codec import b64decode_or_none, b64encode
from gsomia.errors import InvalidInput, LedgerInvalid
from gsomia.ledger.checkpoint import parse_signed_note

__all__ = [
    "COSIGNATURE_TYPE",
    "Cosignature",
    "CosignerKey",
    "cosignature_line",
    "cosigned_message",
    "cosigner_key_id",
    "parse_cosignature",
    "quorum",
    "split_line",
]

COSIGNATURE_TYPE = 0x04
"""signed-note §Signature types: Ed25519 ``cosignature/v1``."""

_KEY_ID = 4
_TIMESTAMP = 8
_SIGNATURE = 64
_MAX_TIMESTAMP = (1 << 63) - 1


class CosignerKey(Protocol):
    """A cosigner's public key, as a verifier knows it."""

    @property
    def name(self) -> str:
        """The cosigner's name (signed-note key name)."""
        ...

    @property
    def key_id(self) -> bytes:
        """``SHA-256(name || "\\n" || 0x04 || public key)[:4]``."""
        ...

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True only if ``signature`` is this key's Ed25519 signature of ``message``."""
        ...


@dataclass(frozen=True, slots=True)
class Cosignature:
    """One cosignature line, parsed: who, when (POSIX seconds) and the signature."""

    name: str
    key_id: bytes
    timestamp: int
    signature: bytes


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID of an Ed25519 cosigner key (tlog-cosignature §Format).

    Raises:
        InvalidInput: ``public_key`` is not 32 bytes.
    """
    if len(public_key) != 32:
        raise InvalidInput("a cosigner key is a 32-byte Ed25519 public key")
    return sha256(name.encode("utf-8") + b"\n" + bytes([COSIGNATURE_TYPE]) + public_key).digest()[:_KEY_ID]


def cosigned_message(body: str, timestamp: int) -> bytes:
    """What a cosigner signs: the ``cosignature/v1`` header line, the time line and the whole
    checkpoint body (its final newline included, no signature line).

    Raises:
        InvalidInput: the timestamp is negative or beyond 2**63 - 1.
    """
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise InvalidInput("a cosignature's timestamp is between 0 and 2**63 - 1")
    return b"cosignature/v1\ntime %d\n" % timestamp + body.encode("utf-8")


def cosignature_line(name: str, key_id: bytes, timestamp: int, signature: bytes) -> str:
    """The signed-note signature line of a cosignature (without its newline)."""
    blob = key_id + struct.pack(">Q", timestamp) + signature
    return f"\u2014 {name} {b64encode(blob)}"


def parse_cosignature(name: str, key_id: bytes, signature: bytes) -> Cosignature | None:
    """A signature of a note read as a cosignature, or None if it has another shape."""
    if len(signature) != _TIMESTAMP + _SIGNATURE:
        return None
    (timestamp,) = struct.unpack(">Q", signature[:_TIMESTAMP])
    if timestamp > _MAX_TIMESTAMP:
        return None
    return Cosignature(name=name, key_id=key_id, timestamp=timestamp, signature=signature[_TIMESTAMP:])


def quorum(note: str | bytes, witnesses: Sequence[CosignerKey]) -> tuple[str, list[str]]:
    """The checkpoint body of a signed note, and the names of the given witnesses whose
    cosignature on it verifies (each witness counted once).

    Signature lines of other keys are ignored, as signed-note requires; a line of a given
    witness's key (name and key ID) that does not verify rejects the note, as the reference
    verifier does (golang.org/x/mod/sumdb/note: "invalid signature for key").

    Raises:
        LedgerInvalid: the note is malformed, or a given witness's line does not verify.
    """
    body, signatures = parse_signed_note(note)
    verified: list[str] = []
    for witness in witnesses:
        if witness.name in verified:
            continue
        for sig in signatures:
            if sig.name != witness.name or sig.key_id != witness.key_id:
                continue
            cosig = parse_cosignature(sig.name, sig.key_id, sig.signature)
            if cosig is None or not witness.verify(cosigned_message(body, cosig.timestamp), cosig.signature):
                raise LedgerInvalid(f"the cosignature of witness {witness.name} does not verify: the note was altered")
            verified.append(witness.name)
            break
    return body, verified


def split_line(line: str) -> Cosignature:
    """Parse one cosignature line ``— <name> <base64>``.

    Raises:
        LedgerInvalid: it is not a well-formed cosignature line.
    """
    prefix = "\u2014 "
    fields = line.removeprefix(prefix).split(" ") if line.startswith(prefix) else []
    raw = b64decode_or_none(fields[1]) if len(fields) == 2 else None
    cosig = parse_cosignature(fields[0], raw[:_KEY_ID], raw[_KEY_ID:]) if raw and len(raw) > _KEY_ID else None
    if cosig is None:
        raise LedgerInvalid("not a cosignature line: expected '— <name> base64(key ID || timestamp || signature)'")
    return cosig
