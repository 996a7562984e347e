"""Payload encryption at rest and per-recipient key wrapping (docs/design.md §4).

A report's payload is encrypted once under a fresh 32-byte content key
(:func:`encrypt_payload`). The exchange keeps the content key sealed under its key-encryption
key (:func:`seal_at_rest`) and, for each delivery, wraps it to the recipient's public key with
HPKE (RFC 9180) in base mode (:func:`wrap_key`). The HPKE ``info`` names the delivery and the
recipient (:func:`delivery_info`), so a wrapped key lifted from one delivery does not open as
another.

Symmetric blobs are ``nonce (12 bytes) || AES-256-GCM ciphertext || tag (16 bytes)`` with a
random 96-bit nonce (NIST SP 800-38D §8.2.2). Random nonces are safe for up to 2^32 messages
under one key (SP 800-38D §8.3); content keys encrypt one payload each, and a KEK should be
rotated long before that bound.

Failures are opaque: every reason a blob or wrapped key does not open raises the same
:class:`~gsomia.errors.DecryptionFailed`; the reason goes to the debug log only. A key of the
wrong size is a configuration error and raises :class:`~gsomia.errors.InvalidInput`.
"""

from __future__ import annotations

import logging
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gsomia.crypto.keys import HybridKemPrivateKey, PartyKeys, PublicKeys
from gsomia.crypto.profiles import hpke_suite, spec
from gsomia.domain.parties import PARTY_ID
from gsomia.errors import DecryptionFailed, InvalidInput

__all__ = [
    "KEY_LENGTH",
    "NONCE_LENGTH",
    "content_key_aad",
    "decrypt_payload",
    "delivery_info",
    "encrypt_payload",
    "new_content_key",
    "open_at_rest",
    "payload_aad",
    "seal_at_rest",
    "unwrap_key",
    "wrap_key",
]

_log = logging.getLogger(__name__)

KEY_LENGTH = 32  # AES-256
NONCE_LENGTH = 12  # 96-bit GCM nonce, SP 800-38D §8.2
_TAG_LENGTH = 16
_DELIVERY_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _require_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise InvalidInput(f"{what} must be bytes, not {type(value).__name__}")
    return value


def _require_key(key: object, what: str) -> bytes:
    if not isinstance(key, bytes) or len(key) != KEY_LENGTH:
        # Says nothing about the value: it is a secret.
        raise InvalidInput(f"{what} must be {KEY_LENGTH} bytes")
    return key


def _seal(key: bytes, plaintext: bytes, aad: bytes, what: str) -> bytes:
    _require_key(key, what)
    _require_bytes(plaintext, "plaintext")
    _require_bytes(aad, "associated data")
    nonce = os.urandom(NONCE_LENGTH)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, blob: bytes, aad: bytes, what: str) -> bytes:
    _require_key(key, what)
    _require_bytes(aad, "associated data")
    if not isinstance(blob, bytes) or len(blob) < NONCE_LENGTH + _TAG_LENGTH:
        _log.debug("%s: blob is not bytes or shorter than nonce and tag", what)
        raise DecryptionFailed()
    try:
        return AESGCM(key).decrypt(blob[:NONCE_LENGTH], blob[NONCE_LENGTH:], aad)
    except InvalidTag:
        _log.debug("%s: authentication tag does not verify (wrong key, tampered blob or other AAD)", what)
        raise DecryptionFailed() from None


def seal_at_rest(kek: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt ``plaintext`` under the exchange's key-encryption key for storage.

    Args:
        kek: the 32-byte key-encryption key.
        plaintext: what to protect (typically a content key).
        aad: bytes bound to the blob without being stored in it, e.g. the record id, so a
            blob copied to another record does not open.

    Returns:
        ``nonce || ciphertext || tag``.

    Raises:
        InvalidInput: ``kek`` is not 32 bytes, or an argument is not bytes.
    """
    return _seal(kek, plaintext, aad, "key-encryption key")


def open_at_rest(kek: bytes, blob: bytes, aad: bytes) -> bytes:
    """Decrypt a blob made by :func:`seal_at_rest`.

    Args:
        kek: the 32-byte key-encryption key.
        blob: the stored ``nonce || ciphertext || tag``.
        aad: the same associated data given to :func:`seal_at_rest`.

    Returns:
        The plaintext.

    Raises:
        DecryptionFailed: the blob does not open (wrong key, tampered, truncated, other AAD).
        InvalidInput: ``kek`` is not 32 bytes.
    """
    return _open(kek, blob, aad, "key-encryption key")


def new_content_key() -> bytes:
    """A fresh AES-256 content key for one payload.

    Returns:
        32 bytes from the operating system's CSPRNG.
    """
    return AESGCM.generate_key(bit_length=256)


def encrypt_payload(content_key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt a report payload under its content key.

    Args:
        content_key: the payload's 32-byte key from :func:`new_content_key`.
        plaintext: the payload.
        aad: bytes bound to the ciphertext, e.g. the report id and its canonical marking.

    Returns:
        ``nonce || ciphertext || tag``.

    Raises:
        InvalidInput: ``content_key`` is not 32 bytes, or an argument is not bytes.
    """
    return _seal(content_key, plaintext, aad, "content key")


def decrypt_payload(content_key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Decrypt a payload made by :func:`encrypt_payload`.

    Args:
        content_key: the payload's 32-byte key.
        blob: ``nonce || ciphertext || tag``.
        aad: the same associated data given to :func:`encrypt_payload`.

    Returns:
        The payload.

    Raises:
        DecryptionFailed: the blob does not open (wrong key, tampered, truncated, other AAD).
        InvalidInput: ``content_key`` is not 32 bytes.
    """
    return _open(content_key, blob, aad, "content key")


def payload_aad(originator: str, report_id: str, *, version: int = 2) -> bytes:
    """Associated data binding a payload ciphertext to its report: the originator and the
    originator's own id (``gsomia/payload/v2 NUL originator NUL id``); recipients use it too.
    Version 1 (reports stored before ids were the originator's) bound the id alone."""
    if version == 1:
        return b"gsomia/payload/v1\x00" + report_id.encode("utf-8")
    return b"gsomia/payload/v2\x00" + originator.encode("utf-8") + b"\x00" + report_id.encode("utf-8")


def content_key_aad(originator: str, report_id: str, *, version: int = 2) -> bytes:
    """Associated data binding a content key sealed at rest to its report (as
    :func:`payload_aad`)."""
    if version == 1:
        return b"gsomia/content-key/v1\x00" + report_id.encode("utf-8")
    return b"gsomia/content-key/v2\x00" + originator.encode("utf-8") + b"\x00" + report_id.encode("utf-8")


def delivery_info(delivery_id: str, recipient: str) -> bytes:
    """The HPKE ``info`` that binds a wrapped key to one delivery to one recipient.

    Args:
        delivery_id: the delivery's id (letters, digits, ``.``, ``_``, ``:``, ``-``).
        recipient: the recipient party's id.

    Returns:
        ``b"gsomia/v1 delivery <id> to <party>"``; neither part can contain a space, so the
        string parses one way only.

    Raises:
        InvalidInput: an id is empty or has characters outside those allowed.
    """
    if not isinstance(delivery_id, str) or not _DELIVERY_ID.fullmatch(delivery_id):
        raise InvalidInput(f"delivery id {delivery_id!r}: use 1-128 letters, digits, '.', '_', ':' or '-'")
    if not isinstance(recipient, str) or not PARTY_ID.fullmatch(recipient):
        raise InvalidInput(f"recipient {recipient!r} is not a party id")
    return f"gsomia/v1 delivery {delivery_id} to {recipient}".encode("ascii")


def _require_info(info: object) -> bytes:
    if not isinstance(info, bytes) or not info:
        # An empty info would let a wrap open in any context: refuse it.
        raise InvalidInput("info must be non-empty bytes naming the delivery (see delivery_info)")
    return info


def wrap_key(recipient: PublicKeys, content_key: bytes, info: bytes) -> bytes:
    """Wrap a content key to ``recipient`` with HPKE base mode (RFC 9180 §6.1, single-shot).

    Uses the recipient's profile: DHKEM(X25519)/HKDF-SHA256/AES-256-GCM for ``classic``,
    ML-KEM-1024+P-384/HKDF-SHA384/AES-256-GCM for ``cnsa2``.

    Args:
        recipient: the recipient's public keys.
        content_key: the 32-byte content key.
        info: the delivery binding, normally :func:`delivery_info`.

    Returns:
        ``enc || sealed key`` (80 bytes for ``classic``, 1,713 for ``cnsa2``).

    Raises:
        InvalidInput: ``content_key`` is not 32 bytes, ``info`` is empty, or the recipient's
            key cannot be encapsulated to (e.g. a low-order X25519 point).
    """
    if not isinstance(recipient, PublicKeys):
        raise InvalidInput("wrap_key() needs the recipient's PublicKeys")
    _require_key(content_key, "content key")
    _require_info(info)
    try:
        return hpke_suite(recipient.profile).encrypt(content_key, recipient._kem_public, info=info)
    except ValueError as e:
        raise InvalidInput(f"cannot wrap a key to {recipient.party}: its encryption key is unusable") from e


def unwrap_key(private: PartyKeys, wrapped: bytes, info: bytes) -> bytes:
    """Recover a content key wrapped to ``private``'s party by :func:`wrap_key`.

    Args:
        private: the recipient's key set.
        wrapped: ``enc || sealed key``.
        info: the same delivery binding given to :func:`wrap_key`.

    Returns:
        The 32-byte content key.

    Raises:
        DecryptionFailed: it does not open (another recipient's wrap, other info, tampered,
            truncated, other profile).
        InvalidInput: ``private`` is not a key set or ``info`` is empty.
    """
    if not isinstance(private, PartyKeys):
        raise InvalidInput("unwrap_key() needs the recipient's PartyKeys")
    _require_info(info)
    expected = spec(private.profile).wrapped_key_length
    if not isinstance(wrapped, bytes) or len(wrapped) != expected:
        _log.debug("unwrap for %s (%s): wrapped key is not %d bytes", private.party, private.profile, expected)
        raise DecryptionFailed()
    enc = private.encryption_key
    hpke_key = enc.hpke_key if isinstance(enc, HybridKemPrivateKey) else enc
    try:
        key = hpke_suite(private.profile).decrypt(wrapped, hpke_key, info=info)
    except (InvalidTag, ValueError) as e:
        _log.debug("unwrap for %s (%s) failed: %s", private.party, private.profile, type(e).__name__)
        raise DecryptionFailed() from None
    if len(key) != KEY_LENGTH:
        _log.debug("unwrap for %s: opened to %d bytes, not a content key", private.party, len(key))
        raise DecryptionFailed()
    return key
