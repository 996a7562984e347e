"""Crypto profiles: which signature scheme and which HPKE suite a party's keys use.

Two profiles (docs/design.md §4):

- ``classic``: Ed25519 signatures (RFC 8032); HPKE (RFC 9180) with DHKEM(X25519, HKDF-SHA256),
  HKDF-SHA256 and AES-256-GCM.
- ``cnsa2``: ML-DSA-87 signatures (FIPS 204); HPKE with the hybrid ML-KEM-1024 + P-384 KEM
  (FIPS 203 with ECDH P-384), HKDF-SHA384 and AES-256-GCM, the CNSA 2.0 parameter sets.

A profile is a property of a party's key set: the sender wraps for the recipient's profile and
verifies with the signer's profile. Every length below is fixed by the algorithm, so inputs of
the wrong length are rejected before any key is touched.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives import hpke

from gsomia.errors import InvalidInput

__all__ = ["DEFAULT_PROFILE", "Profile", "ProfileSpec", "hpke_suite", "spec"]

# AES-256-GCM tag length (NIST SP 800-38D); HPKE's AEAD appends one tag to the sealed key.
_GCM_TAG = 16
# Content keys are AES-256 keys.
_CONTENT_KEY = 32


class Profile(StrEnum):
    """A named set of algorithms for one party's keys."""

    CLASSIC = "classic"
    CNSA2 = "cnsa2"

    @classmethod
    def parse(cls, value: object) -> Profile:
        """Return the profile named ``value``.

        Args:
            value: a profile name (``"classic"`` or ``"cnsa2"``) or a :class:`Profile`.

        Returns:
            The matching profile.

        Raises:
            InvalidInput: ``value`` names no profile.
        """
        if isinstance(value, Profile):
            return value
        if isinstance(value, str):
            try:
                return cls(value)
            except ValueError:
                pass
        names = ", ".join(p.value for p in cls)
        raise InvalidInput(f"unknown crypto profile {value!r}; expected one of: {names}")


DEFAULT_PROFILE = Profile.CLASSIC


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileSpec:
    """The algorithms and fixed sizes of one profile, for display and input checks."""

    profile: Profile
    signature_algorithm: str
    kem_name: str
    kdf_name: str
    aead_name: str
    signature_length: int
    signing_public_length: int
    encryption_public_length: int
    kem_enc_length: int

    @property
    def wrapped_key_length(self) -> int:
        """Length of a wrapped content key: HPKE ``enc`` || sealed 32-byte key || GCM tag."""
        return self.kem_enc_length + _CONTENT_KEY + _GCM_TAG

    @property
    def hpke_name(self) -> str:
        """A human-readable name of the HPKE suite, e.g. for ``gsomia keys show``."""
        return f"HPKE {self.kem_name}, {self.kdf_name}, {self.aead_name}"


_SPECS: dict[Profile, ProfileSpec] = {
    Profile.CLASSIC: ProfileSpec(
        profile=Profile.CLASSIC,
        signature_algorithm="Ed25519",
        kem_name="DHKEM(X25519, HKDF-SHA256)",
        kdf_name="HKDF-SHA256",
        aead_name="AES-256-GCM",
        signature_length=64,  # RFC 8032 §5.1.6
        signing_public_length=32,  # RFC 8032 §5.1.5
        encryption_public_length=32,  # RFC 7748 §5
        kem_enc_length=32,  # RFC 9180 §7.1 (Nenc for X25519)
    ),
    Profile.CNSA2: ProfileSpec(
        profile=Profile.CNSA2,
        signature_algorithm="ML-DSA-87",
        kem_name="ML-KEM-1024 + P-384",
        kdf_name="HKDF-SHA384",
        aead_name="AES-256-GCM",
        signature_length=4627,  # FIPS 204 Table 2
        signing_public_length=2592,  # FIPS 204 Table 2
        # ML-KEM-1024 encapsulation key (FIPS 203 Table 3) || uncompressed P-384 point (SEC 1 §2.3.3).
        encryption_public_length=1568 + 97,
        kem_enc_length=1568 + 97,  # ML-KEM-1024 ciphertext || ephemeral P-384 point
    ),
}

# The HPKE (KEM, KDF, AEAD) triple of each profile (RFC 9180 §7).
_SUITE_IDS: dict[Profile, tuple[hpke.KEM, hpke.KDF, hpke.AEAD]] = {
    Profile.CLASSIC: (hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
    Profile.CNSA2: (hpke.KEM.MLKEM1024_P384, hpke.KDF.HKDF_SHA384, hpke.AEAD.AES_256_GCM),
}


def spec(profile: Profile | str) -> ProfileSpec:
    """Return the algorithms and sizes of ``profile``.

    Args:
        profile: a profile or its name.

    Returns:
        The profile's specification.

    Raises:
        InvalidInput: ``profile`` names no profile.
    """
    return _SPECS[Profile.parse(profile)]


@functools.cache
def _suite(profile: Profile) -> hpke.Suite:
    kem, kdf, aead = _SUITE_IDS[profile]
    return hpke.Suite(kem, kdf, aead)


def hpke_suite(profile: Profile | str) -> hpke.Suite:
    """Return the HPKE suite of ``profile`` (built once, on first use).

    Args:
        profile: a profile or its name.

    Returns:
        The ``cryptography`` HPKE suite for the profile.

    Raises:
        InvalidInput: ``profile`` names no profile.
    """
    return _suite(Profile.parse(profile))
