"""Signatures: originators sign reports, the exchange signs ledger checkpoints.

Callers pass the exact bytes to sign, which are always RFC 8785 canonical JSON produced by the
one canonical encoder (STYLE: "Bytes that are hashed or signed come from one canonical
encoder"); this module never canonicalises. Ed25519 is pure Ed25519 (RFC 8032 §5.1) and
ML-DSA-87 is pure ML-DSA with an empty context string (FIPS 204 Algorithm 2), so signatures
verify with any standard implementation.

Failures are opaque: every reason a signature does not verify raises the same
:class:`~gsomia.errors.BadSignature`; the reason goes to the debug log only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from gsomia.crypto.keys import PartyKeys, PublicKeys
from gsomia.crypto.profiles import spec
from gsomia.errors import BadSignature, InvalidInput

__all__ = ["ExchangeSigner", "sign", "verify", "verify_exchange_signature"]

_log = logging.getLogger(__name__)

_ED25519_PUBLIC = 32
_ED25519_PRIVATE = 32
_ED25519_SIGNATURE = 64


def _require_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise InvalidInput(f"{what} must be bytes, not {type(value).__name__}")
    return value


def sign(private: PartyKeys, message: bytes) -> bytes:
    """Sign ``message`` with a party's signing key.

    Args:
        private: the signer's key set; its profile picks Ed25519 or ML-DSA-87.
        message: the canonical bytes to sign.

    Returns:
        The signature (64 bytes for ``classic``, 4,627 for ``cnsa2``).

    Raises:
        InvalidInput: ``private`` is not a key set or ``message`` is not bytes.
    """
    if not isinstance(private, PartyKeys):
        raise InvalidInput("sign() needs a PartyKeys")
    return private.signing_key.sign(_require_bytes(message, "message"))


def verify(public: PublicKeys, message: bytes, signature: bytes) -> None:
    """Check that ``signature`` is ``public``'s signature over ``message``.

    Args:
        public: the claimed signer's public keys.
        message: the canonical bytes that were signed.
        signature: the signature to check.

    Raises:
        BadSignature: the signature does not verify, for any reason (wrong length, other key,
            other message, not bytes). Deliberately carries no detail.
        InvalidInput: ``public`` is not a ``PublicKeys`` or ``message`` is not bytes (a
            programming error, not a forgery).
    """
    if not isinstance(public, PublicKeys):
        raise InvalidInput("verify() needs a PublicKeys")
    _require_bytes(message, "message")
    expected = spec(public.profile).signature_length
    if not isinstance(signature, bytes) or len(signature) != expected:
        size = len(signature) if isinstance(signature, bytes) else type(signature).__name__
        _log.debug("bad signature for %s (%s): length %s, expected %d", public.party, public.profile, size, expected)
        raise BadSignature()
    try:
        public._verifier.verify(signature, message)
    except (InvalidSignature, ValueError) as e:
        _log.debug("bad signature for %s (%s): %s", public.party, public.profile, type(e).__name__)
        raise BadSignature() from None


def verify_exchange_signature(public_key_raw: bytes, message: bytes, signature: bytes) -> bool:
    """Check an exchange checkpoint signature with only the exchange's public key.

    For auditors and clients that hold the exchange's published key but not its signer.

    Args:
        public_key_raw: the exchange's 32-byte Ed25519 public key.
        message: the signed bytes (a checkpoint body).
        signature: the 64-byte Ed25519 signature.

    Returns:
        True if the signature verifies; False for any failure (reason in the debug log).
    """
    if not isinstance(public_key_raw, bytes) or len(public_key_raw) != _ED25519_PUBLIC:
        _log.debug("exchange signature check: malformed public key")
        return False
    if not isinstance(message, bytes) or not isinstance(signature, bytes) or len(signature) != _ED25519_SIGNATURE:
        _log.debug("exchange signature check: malformed message or signature")
        return False
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public_key_raw).verify(signature, message)
    except (InvalidSignature, ValueError) as e:
        _log.debug("exchange signature check failed: %s", type(e).__name__)
        return False
    return True


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ExchangeSigner:
    """The exchange's own Ed25519 key, which signs ledger checkpoints (C2SP signed notes use
    Ed25519, RFC 8032).

    Build one with :meth:`generate` or :meth:`from_private_bytes`; equality is identity, and
    the key never appears in ``repr``.
    """

    key: ed25519.Ed25519PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, ed25519.Ed25519PrivateKey):
            raise InvalidInput("the exchange signer needs an Ed25519 private key")

    @classmethod
    def generate(cls) -> ExchangeSigner:
        """Generate a fresh exchange key.

        Returns:
            A signer with a new key from the operating system's CSPRNG.
        """
        return cls(key=ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> ExchangeSigner:
        """Load the exchange key from its 32 raw private bytes (RFC 8032 §5.1.5).

        Args:
            raw: the private key bytes.

        Returns:
            The signer.

        Raises:
            InvalidInput: ``raw`` is not 32 bytes.
        """
        if not isinstance(raw, bytes) or len(raw) != _ED25519_PRIVATE:
            raise InvalidInput(f"an Ed25519 private key is {_ED25519_PRIVATE} bytes")
        return cls(key=ed25519.Ed25519PrivateKey.from_private_bytes(raw))

    def private_bytes_raw(self) -> bytes:
        """The 32 raw private key bytes, for the caller to store with mode 0600.

        Returns:
            The private key.
        """
        return self.key.private_bytes_raw()

    def public_key_raw(self) -> bytes:
        """The 32 raw public key bytes, as published for checkpoint verifiers.

        Returns:
            The public key.
        """
        return self.key.public_key().public_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (a checkpoint body).

        Args:
            message: the bytes to sign.

        Returns:
            The 64-byte signature.

        Raises:
            InvalidInput: ``message`` is not bytes.
        """
        return self.key.sign(_require_bytes(message, "message"))

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Check a signature made by this key.

        Args:
            message: the signed bytes.
            signature: the signature.

        Returns:
            True if it verifies; False for any failure.
        """
        return verify_exchange_signature(self.public_key_raw(), message, signature)
