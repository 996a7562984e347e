"""Crypto adapter: keys, signatures and envelopes, all from ``cryptography`` (docs/design.md §4).

With ``storage``, the only package allowed to import ``cryptography``; everything above it
uses the names re-exported here. Failures are opaque (:class:`~gsomia.errors.BadSignature`,
:class:`~gsomia.errors.DecryptionFailed`); malformed keys and inputs raise
:class:`~gsomia.errors.InvalidInput`.
"""

from gsomia.crypto.envelope import (
    KEY_LENGTH,
    NONCE_LENGTH,
    content_key_aad,
    decrypt_payload,
    delivery_info,
    encrypt_payload,
    new_content_key,
    open_at_rest,
    payload_aad,
    seal_at_rest,
    unwrap_key,
    wrap_key,
)
from gsomia.crypto.keyfile import read_private_keyfile, write_private_keyfile
from gsomia.crypto.keys import KEYFILE_FORMAT, HybridKemPrivateKey, PartyKeys, PublicKeys
from gsomia.crypto.profiles import DEFAULT_PROFILE, Profile, ProfileSpec, hpke_suite, spec
from gsomia.crypto.signing import ExchangeSigner, sign, verify, verify_exchange_signature

__all__ = [
    "DEFAULT_PROFILE",
    "KEYFILE_FORMAT",
    "KEY_LENGTH",
    "NONCE_LENGTH",
    "ExchangeSigner",
    "HybridKemPrivateKey",
    "PartyKeys",
    "Profile",
    "ProfileSpec",
    "PublicKeys",
    "content_key_aad",
    "decrypt_payload",
    "delivery_info",
    "encrypt_payload",
    "hpke_suite",
    "new_content_key",
    "open_at_rest",
    "payload_aad",
    "read_private_keyfile",
    "seal_at_rest",
    "sign",
    "spec",
    "unwrap_key",
    "verify",
    "verify_exchange_signature",
    "wrap_key",
    "write_private_keyfile",
]
