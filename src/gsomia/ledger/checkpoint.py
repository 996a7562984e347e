"""Checkpoints (C2SP tlog-checkpoint) carried in signed notes (C2SP signed-note).

A checkpoint commits a log to its Merkle tree head at one size. Its text is the origin
line, the tree size in decimal, the base64 root hash and optional extension lines, each
ending in a newline; as a signed note it is followed by a blank line and one or more
signature lines ``— <key name> <base64(key ID || signature)>``::

    example.com/behind-the-sofa
    20852163
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

    — example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URY...

This module is pure: it formats and parses text, and leaves signing and verifying to
callables the caller passes in (the ``crypto`` adapter holds the keys). Parsing is strict
and fails closed: anything the specifications forbid, or that has a second spelling
(leading zeros, non-canonical base64), raises :class:`LedgerInvalid`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from typing import NamedTuple, Protocol

from gsomia.codec import b64decode_or_none, b64encode
from gsomia.errors import InvalidInput, LedgerInvalid

__all__ = [
    "ED25519_SIGNATURE_TYPE",
    "MAX_SIGNATURES",
    "Checkpoint",
    "NoteSignature",
    "NoteVerifier",
    "b64",
    "ed25519_key_id",
    "open_note",
    "open_signed_note",
    "open_with",
    "parse_note",
    "parse_signed_note",
    "require_key_name",
    "sign_note",
    "sign_signed_note",
]

ED25519_SIGNATURE_TYPE = 0x01
"""signed-note §Signature types: the identifier byte of Ed25519 signatures."""

MAX_SIGNATURES = 100
"""signed-note §Format: verifiers SHOULD cap the signatures per note and MUST accept 16.
100 is the cap of the Go reference implementation (golang.org/x/mod/sumdb/note)."""

_KEY_ID_SIZE = 4  # signed-note §Format: a big-endian uint32 key ID
_ROOT_SIZE = 32  # tlog-checkpoint §Note text: an RFC 6962 SHA-256 root
_MAX_TREE_SIZE = (1 << 64) - 1
_SIG_PREFIX = "\u2014 "  # em dash, space
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
# signed-note §Format: no ASCII control characters other than newline.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class NoteVerifier(Protocol):
    """A signed-note verifier key, as the pure ledger code needs it: the ``crypto`` adapter's
    keys implement it, so checkpoint and proof checking never touch a key themselves."""

    @property
    def name(self) -> str:
        """The key name (signed-note §Format); for a log's own key, its origin."""
        ...

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID (signed-note §Format)."""
        ...

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True only if ``signature`` is this key's signature of ``message``."""
        ...

    def to_dict(self) -> dict[str, str]:
        """The key as published (for reports)."""
        ...


class NoteSignature(NamedTuple):
    """One signature line of a signed note, decoded (signed-note §Signatures)."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """A log's tree head at one size (C2SP tlog-checkpoint §Note text).

    Attributes:
        origin: The log's identity, e.g. ``gsomia.example/ledger``.
        size: Number of leaves in the tree.
        root_hash: RFC 9162 §2.1.1 root of the tree at ``size`` (32 bytes).
        extensions: Optional extension lines, opaque here.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Validate every field against tlog-checkpoint §Note text.

        Raises:
            InvalidInput: A field could not appear in a well-formed checkpoint.
        """
        _require_line(self.origin, "checkpoint origin")
        if type(self.size) is not int or not 0 <= self.size <= _MAX_TREE_SIZE:
            raise InvalidInput("checkpoint size must be an integer between 0 and 2**64 - 1")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != _ROOT_SIZE:
            raise InvalidInput("checkpoint root hash must be 32 bytes")
        if isinstance(self.extensions, str):
            raise InvalidInput("checkpoint extensions must be a sequence of lines, not one string")
        extensions = tuple(self.extensions)
        for line in extensions:
            _require_line(line, "checkpoint extension line")
        object.__setattr__(self, "extensions", extensions)

    def body(self) -> bytes:
        """The note text: the bytes that signatures cover.

        Returns:
            UTF-8 text, one line per field, each ending in a newline.
        """
        root_b64 = b64(self.root_hash)
        lines = (self.origin, str(self.size), root_b64, *self.extensions)
        return "".join(line + "\n" for line in lines).encode("utf-8")


def ed25519_key_id(name: str, public_key_raw: bytes) -> bytes:
    """The signed-note key ID of an Ed25519 key.

    signed-note §Ed25519 signatures: ``SHA-256(key name || 0x0A || 0x01 || public key)[:4]``.

    Args:
        name: The key name, e.g. ``gsomia.example/ledger``.
        public_key_raw: The 32-byte RFC 8032 encoding of the public key.

    Returns:
        The 4-byte key ID.

    Raises:
        InvalidInput: ``name`` is not a valid key name or the key is not 32 bytes.
    """
    _require_key_name(name)
    if not isinstance(public_key_raw, bytes) or len(public_key_raw) != 32:
        raise InvalidInput("an Ed25519 public key is 32 bytes")
    data = name.encode("utf-8") + b"\n" + bytes([ED25519_SIGNATURE_TYPE]) + public_key_raw
    return sha256(data).digest()[:_KEY_ID_SIZE]


def sign_signed_note(text: str, name: str, key_id: bytes, sign: Callable[[bytes], bytes]) -> str:
    """Sign a note text with one key (signed-note §Format).

    Args:
        text: The note text, ending in a newline, without control characters.
        name: The signing key's name.
        key_id: The signing key's 4-byte key ID.
        sign: Returns the signature of the given note text bytes.

    Returns:
        The signed note: the text, a blank line and one signature line.

    Raises:
        InvalidInput: The text, key name, key ID or produced signature is malformed.
    """
    _require_text(text)
    _require_key_name(name)
    if not isinstance(key_id, bytes) or len(key_id) != _KEY_ID_SIZE:
        raise InvalidInput("a signed-note key ID is 4 bytes")
    signature = sign(text.encode("utf-8"))
    if not isinstance(signature, bytes) or not signature:
        raise InvalidInput("the signer returned no signature")
    blob = b64(key_id + signature)
    return f"{text}\n{_SIG_PREFIX}{name} {blob}\n"


def parse_signed_note(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and signatures, verifying nothing.

    The text ends at the last blank line (signed-note §Format). The signatures are
    decoded but not checked; use :func:`open_signed_note` for that.

    Args:
        note: The signed note, as text or as UTF-8 bytes.

    Returns:
        The note text (with its final newline) and the signatures in order.

    Raises:
        LedgerInvalid: The note is malformed.
    """
    message = _decode_note(note)
    if _CONTROL.search(message):
        raise LedgerInvalid("signed note contains a control character")
    if not message.endswith("\n"):
        raise LedgerInvalid("signed note does not end in a newline")
    split = message.rfind("\n\n")
    if split < 0:
        raise LedgerInvalid("signed note has no signatures")
    text = message[: split + 1]
    lines = message[split + 2 :].split("\n")[:-1]  # the block ends in "\n"
    if not lines:
        raise LedgerInvalid("signed note has no signatures")
    if len(lines) > MAX_SIGNATURES:
        raise LedgerInvalid("signed note has too many signatures")
    return text, [_parse_signature_line(line) for line in lines]


def open_signed_note(note: str | bytes, name: str, key_id: bytes, verify: Callable[[bytes, bytes], bool]) -> str:
    """Verify a signed note against one trusted key and return its text.

    signed-note §Signatures: signatures from other keys (another name or key ID) are
    ignored; every signature from the trusted key must verify, and at least one must be
    present.

    Args:
        note: The signed note, as text or as UTF-8 bytes.
        name: The trusted key's name.
        key_id: The trusted key's 4-byte key ID.
        verify: ``verify(message, signature)`` returns True only for a valid signature
            by the trusted key; anything else, including a falsy or non-bool result,
            counts as a failure.

    Returns:
        The verified note text.

    Raises:
        InvalidInput: ``name`` or ``key_id`` is not a valid key name or ID.
        LedgerInvalid: The note is malformed or not validly signed by the trusted key.
    """
    _require_key_name(name)
    if not isinstance(key_id, bytes) or len(key_id) != _KEY_ID_SIZE:
        raise InvalidInput("a signed-note key ID is 4 bytes")
    text, signatures = parse_signed_note(note)
    ours = [s for s in signatures if s.name == name and s.key_id == key_id]
    if not ours:
        raise LedgerInvalid("signed note carries no signature from the trusted key")
    message = text.encode("utf-8")
    for s in ours:
        if verify(message, s.signature) is not True:
            raise LedgerInvalid("signed note signature does not verify")
    return text


def sign_note(checkpoint: Checkpoint, name: str, key_id: bytes, sign: Callable[[bytes], bytes]) -> str:
    """Sign a checkpoint, giving a C2SP signed note.

    Args:
        checkpoint: The tree head to commit to.
        name: The log's key name; tlog-checkpoint §Signatures says it SHOULD equal the
            origin.
        key_id: The log key's 4-byte key ID (e.g. from :func:`ed25519_key_id`).
        sign: Returns the signature of the given checkpoint body bytes.

    Returns:
        The signed checkpoint note.

    Raises:
        InvalidInput: The key name, key ID or produced signature is malformed.
    """
    return sign_signed_note(checkpoint.body().decode("utf-8"), name, key_id, sign)


def parse_note(text: str | bytes) -> tuple[Checkpoint, list[NoteSignature]]:
    """Parse a signed checkpoint without verifying any signature.

    Args:
        text: The signed note, as text or as UTF-8 bytes.

    Returns:
        The checkpoint and the note's signatures, in order.

    Raises:
        LedgerInvalid: The note or the checkpoint body is malformed.
    """
    body, signatures = parse_signed_note(text)
    return _parse_checkpoint(body), signatures


def open_note(
    text: str | bytes,
    name: str,
    key_id: bytes,
    verify: Callable[[bytes, bytes], bool],
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Verify a signed checkpoint against the log's key and return it.

    Args:
        text: The signed note, as text or as UTF-8 bytes.
        name: The log key's name.
        key_id: The log key's 4-byte key ID.
        verify: ``verify(message, signature)`` returns True only for a valid signature
            by the log key.
        origin: If given, the origin the checkpoint must name.

    Returns:
        The verified checkpoint.

    Raises:
        InvalidInput: ``name`` or ``key_id`` is not a valid key name or ID.
        LedgerInvalid: The note is malformed, not validly signed by the key, or names
            another origin.
    """
    body = open_signed_note(text, name, key_id, verify)
    checkpoint = _parse_checkpoint(body)
    if origin is not None and checkpoint.origin != origin:
        raise LedgerInvalid("checkpoint is for another log")
    return checkpoint


def open_with(key: NoteVerifier, text: str | bytes) -> Checkpoint:
    """Verify a signed checkpoint of ``key``'s log with ``key`` and return it (:func:`open_note`
    with the key's name, ID and signature check; a gsomia log's origin is its key's name).

    Raises:
        InvalidInput: the key's name or ID is invalid.
        LedgerInvalid: the note is malformed, not validly signed by ``key``, or a checkpoint of
            another origin (another log signed with the same key).
    """
    return open_note(text, key.name, key.key_id, key.verify, origin=key.name)


def _parse_checkpoint(body: str) -> Checkpoint:
    """tlog-checkpoint §Note text: origin, size and root lines, then extension lines."""
    lines = body.split("\n")[:-1]  # the text ends in "\n"
    if len(lines) < 3:
        raise LedgerInvalid("checkpoint needs an origin, a size and a root hash line")
    origin, size_line, root_line, *extensions = lines
    if not origin:
        raise LedgerInvalid("checkpoint origin is empty")
    if not _DECIMAL.fullmatch(size_line):
        raise LedgerInvalid("checkpoint size is not a canonical decimal number")
    size = int(size_line)
    if size > _MAX_TREE_SIZE:
        raise LedgerInvalid("checkpoint size does not fit in 64 bits")
    root_hash = b64decode_or_none(root_line)
    if root_hash is None or len(root_hash) != _ROOT_SIZE:
        raise LedgerInvalid("checkpoint root hash is not base64 of 32 bytes")
    if any(not line for line in extensions):
        raise LedgerInvalid("checkpoint extension lines must be non-empty")
    return Checkpoint(origin=origin, size=size, root_hash=root_hash, extensions=tuple(extensions))


def _parse_signature_line(line: str) -> NoteSignature:
    """signed-note §Signatures: ``— <key name> base64(32-bit key ID || signature)``."""
    if not line.startswith(_SIG_PREFIX):
        raise LedgerInvalid("signed note has a malformed signature line")
    fields = line[len(_SIG_PREFIX) :].split(" ")
    if len(fields) != 2 or not _is_key_name(fields[0]):
        raise LedgerInvalid("signed note has a malformed signature line")
    name, blob = fields
    raw = b64decode_or_none(blob)
    if raw is None or len(raw) <= _KEY_ID_SIZE:
        raise LedgerInvalid("signed note has a malformed signature")
    return NoteSignature(name=name, key_id=raw[:_KEY_ID_SIZE], signature=raw[_KEY_ID_SIZE:])


def b64(data: bytes) -> str:
    """Standard base64 (RFC 4648 §4), as checkpoints, signed notes and proofs carry hashes."""
    return b64encode(data)


def _decode_note(note: str | bytes) -> str:
    if isinstance(note, bytes):
        try:
            return note.decode("utf-8")
        except UnicodeDecodeError as e:
            raise LedgerInvalid("signed note is not valid UTF-8") from e
    if isinstance(note, str):
        try:
            note.encode("utf-8")
        except UnicodeEncodeError as e:
            raise LedgerInvalid("signed note is not valid UTF-8") from e
        return note
    raise InvalidInput("a signed note must be str or bytes")


def _is_key_name(name: str) -> bool:
    # signed-note §Format: non-empty, no Unicode spaces, no plus (it separates the fields
    # of the Go vkey encoding).
    return bool(name) and "+" not in name and not any(c.isspace() for c in name) and not _CONTROL.search(name)


def require_key_name(name: str) -> None:
    """Check a signed-note key name: non-empty, no Unicode spaces, no '+', no control characters.

    Raises:
        InvalidInput: it is not a valid key name.
    """
    if not isinstance(name, str) or not _is_key_name(name):
        raise InvalidInput("a key name must be non-empty, without spaces, '+' or control characters")
    _require_utf8(name, "key name")


_require_key_name = require_key_name


def _require_line(value: str, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} must be a non-empty string")
    if "\n" in value or _CONTROL.search(value):
        raise InvalidInput(f"{what} must be one line without control characters")
    _require_utf8(value, what)


def _require_text(text: str) -> None:
    # signed-note §Format: the text ends in a newline and may contain empty lines (the
    # separator is the *last* empty line, which sign_signed_note adds after the text).
    if not isinstance(text, str) or not text.endswith("\n"):
        raise InvalidInput("a note text must be a string ending in a newline")
    if _CONTROL.search(text):
        raise InvalidInput("a note text must not contain control characters")
    _require_utf8(text, "note text")


def _require_utf8(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInput(f"{what} is not valid Unicode") from e
