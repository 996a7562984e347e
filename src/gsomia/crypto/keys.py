"""A party's key pairs and its public keys as the exchange stores them.

Each party holds one signing key (originator signatures) and one encryption key (content keys
are wrapped to it by HPKE), both of one :class:`~gsomia.crypto.profiles.Profile`. The exchange
stores only :class:`PublicKeys`; :class:`PartyKeys` lives in a private key file on the
party's side (:mod:`gsomia.crypto.keyfile`).

Encodings (all base64, RFC 4648 §4, in JSON):

- ``classic``: Ed25519 and X25519 keys as their 32 raw bytes (RFC 8032 §5.1.5, RFC 7748 §5).
- ``cnsa2``: ML-DSA-87 private key as its 32-byte seed and public key as 2,592 raw bytes
  (FIPS 204); the hybrid KEM key as the ML-KEM-1024 64-byte seed (FIPS 203) plus the P-384 key
  as PKCS #8 DER; its public key is the ML-KEM-1024 encapsulation key followed by the
  uncompressed P-384 point (SEC 1 §2.3.3), the order the HPKE hybrid KEM uses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import rfc8785
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, x25519

from gsomia.codec import b64decode, b64encode
from gsomia.crypto.profiles import Profile, spec
from gsomia.domain.parties import PARTY_ID
from gsomia.errors import InvalidInput

__all__ = [
    "KEYFILE_FORMAT",
    "EncryptionPrivateKey",
    "HybridKemPrivateKey",
    "PartyKeys",
    "PublicKeys",
    "SigningPrivateKey",
]

KEYFILE_FORMAT = "gsomia-private-keys/v1"
_MLKEM1024_PUBLIC = 1568  # FIPS 203 Table 3
_MLKEM_SEED = 64  # FIPS 203 §7.1: d || z
_P384_POINT = 97  # 0x04 || X || Y, 48 bytes each
_ED25519_PRIVATE = 32
_X25519_PRIVATE = 32
_MLDSA_SEED = 32  # FIPS 204 §5.1: ξ


@dataclass(frozen=True, slots=True, kw_only=True)
class HybridKemPrivateKey:
    """The ``cnsa2`` encryption key: ML-KEM-1024 and P-384 halves of one hybrid KEM key.

    ``cryptography`` exposes the hybrid key only as a pair of component keys, so both are
    kept to serialise them; ``hpke_key`` is the combined key HPKE decrypts with.
    """

    mlkem: mlkem.MLKEM1024PrivateKey = field(repr=False, compare=False)
    p384: ec.EllipticCurvePrivateKey = field(repr=False, compare=False)
    hpke_key: hpke.MLKEM1024P384PrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.mlkem, mlkem.MLKEM1024PrivateKey):
            raise InvalidInput("the hybrid KEM key needs an ML-KEM-1024 private key")
        if not isinstance(self.p384, ec.EllipticCurvePrivateKey) or not isinstance(self.p384.curve, ec.SECP384R1):
            raise InvalidInput("the hybrid KEM key needs a P-384 private key")
        object.__setattr__(self, "hpke_key", hpke.MLKEM1024P384PrivateKey(self.mlkem, self.p384))

    @classmethod
    def generate(cls) -> HybridKemPrivateKey:
        """Generate a fresh hybrid key.

        Returns:
            A new key from the operating system's CSPRNG.
        """
        return cls(mlkem=mlkem.MLKEM1024PrivateKey.generate(), p384=ec.generate_private_key(ec.SECP384R1()))

    def public_bytes_raw(self) -> bytes:
        """The public key: ML-KEM-1024 encapsulation key || uncompressed P-384 point.

        Returns:
            1,665 bytes.
        """
        point = self.p384.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return self.mlkem.public_key().public_bytes_raw() + point


SigningPrivateKey = ed25519.Ed25519PrivateKey | mldsa.MLDSA87PrivateKey
EncryptionPrivateKey = x25519.X25519PrivateKey | HybridKemPrivateKey
_Verifier = ed25519.Ed25519PublicKey | mldsa.MLDSA87PublicKey
_KemPublic = x25519.X25519PublicKey | hpke.MLKEM1024P384PublicKey


def _check_party(party: object) -> str:
    # fullmatch: PARTY_ID ends in ``$``, which would also accept a trailing newline.
    if not isinstance(party, str) or not PARTY_ID.fullmatch(party):
        raise InvalidInput(f"party id {party!r}: use an ISO 3166 alpha-3 code or a short upper-case org code")
    return party


def _check_created(created: object) -> datetime:
    if not isinstance(created, datetime) or created.tzinfo is None or created.utcoffset() is None:
        raise InvalidInput("a key set's creation time must be a timezone-aware datetime")
    return created.astimezone(UTC)


def _require_length(data: bytes, length: int, what: str) -> None:
    if len(data) != length:
        raise InvalidInput(f"{what}: expected {length} bytes, got {len(data)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PublicKeys:
    """The public half of a party's key set: what the exchange stores and shares.

    Construction checks that both keys decode for the profile, so a ``PublicKeys`` in hand can
    always be used to verify and to wrap.

    Attributes:
        party: the owning party's id.
        profile: the algorithms the keys belong to.
        signing_key: the raw signature verification key.
        encryption_key: the raw HPKE recipient key.
    """

    party: str
    profile: Profile
    signing_key: bytes
    encryption_key: bytes
    _verifier: _Verifier = field(init=False, repr=False, compare=False)
    _kem_public: _KemPublic = field(init=False, repr=False, compare=False)
    _fingerprint: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_party(self.party)
        profile = Profile.parse(self.profile)
        object.__setattr__(self, "profile", profile)
        if not isinstance(self.signing_key, bytes) or not isinstance(self.encryption_key, bytes):
            raise InvalidInput("public keys must be bytes")
        sp = spec(profile)
        _require_length(self.signing_key, sp.signing_public_length, f"{sp.signature_algorithm} public key")
        _require_length(self.encryption_key, sp.encryption_public_length, f"{sp.kem_name} public key")
        verifier: _Verifier
        kem_public: _KemPublic
        try:
            if profile is Profile.CLASSIC:
                verifier = ed25519.Ed25519PublicKey.from_public_bytes(self.signing_key)
                kem_public = x25519.X25519PublicKey.from_public_bytes(self.encryption_key)
            else:
                verifier = mldsa.MLDSA87PublicKey.from_public_bytes(self.signing_key)
                kem_public = hpke.MLKEM1024P384PublicKey(
                    mlkem.MLKEM1024PublicKey.from_public_bytes(self.encryption_key[:_MLKEM1024_PUBLIC]),
                    ec.EllipticCurvePublicKey.from_encoded_point(
                        ec.SECP384R1(), self.encryption_key[_MLKEM1024_PUBLIC:]
                    ),
                )
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            raise InvalidInput(f"party {self.party}: a {profile.value} public key does not decode") from e
        object.__setattr__(self, "_verifier", verifier)
        object.__setattr__(self, "_kem_public", kem_public)
        # RFC 8785 canonical form, so the fingerprint never depends on JSON formatting.
        digest = hashlib.sha256(bytes(rfc8785.dumps(self.to_dict()))).hexdigest()
        object.__setattr__(self, "_fingerprint", digest)

    def __repr__(self) -> str:
        return f"PublicKeys(party={self.party!r}, profile={self.profile.value!r}, fingerprint={self._fingerprint!r})"

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the RFC 8785 canonical form of :meth:`to_dict`.

        Stable across processes and releases: it covers the party, the profile and both keys,
        so two parties that register the same key bytes still get different fingerprints.

        Returns:
            64 lower-case hex digits.
        """
        return self._fingerprint

    def to_dict(self) -> dict[str, str]:
        """The public keys as JSON-ready values (keys in base64).

        Returns:
            ``{"party", "profile", "signing_key", "encryption_key"}``.
        """
        return {
            "party": self.party,
            "profile": self.profile.value,
            "signing_key": b64encode(self.signing_key),
            "encryption_key": b64encode(self.encryption_key),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> PublicKeys:
        """Rebuild public keys from :meth:`to_dict` output.

        An optional ``fingerprint`` member is checked against the keys, so a published
        fingerprint pins what was imported.

        Args:
            data: the mapping to read.

        Returns:
            The public keys.

        Raises:
            InvalidInput: a member is missing, unknown or malformed, a key does not decode, or
                the fingerprint does not match.
        """
        if not isinstance(data, Mapping):
            raise InvalidInput("public keys must be a JSON object")
        required = {"party", "profile", "signing_key", "encryption_key"}
        missing = sorted(required - data.keys())
        unknown = sorted(set(data.keys()) - required - {"fingerprint"})
        if missing or unknown:
            raise InvalidInput(f"public keys: missing {missing or 'nothing'}, unknown {unknown or 'nothing'}")
        party = data["party"]
        if not isinstance(party, str):
            raise InvalidInput("public keys: party must be a string")
        keys = cls(
            party=party,
            profile=Profile.parse(data["profile"]),
            signing_key=b64decode(data["signing_key"], "signing_key"),
            encryption_key=b64decode(data["encryption_key"], "encryption_key"),
        )
        claimed = data.get("fingerprint")
        if claimed is not None and (not isinstance(claimed, str) or claimed.lower() != keys.fingerprint()):
            raise InvalidInput(f"public keys of {party}: fingerprint does not match the keys")
        return keys


@dataclass(frozen=True, slots=True, kw_only=True)
class PartyKeys:
    """One party's private signing and encryption keys, for one profile.

    Private key fields are excluded from ``repr`` and from equality; two key sets are equal
    when their party, profile, creation time and public keys are.

    Attributes:
        party: the owning party's id.
        profile: the algorithms the keys belong to.
        created: when the keys were generated (UTC).
        signing_key: Ed25519 (``classic``) or ML-DSA-87 (``cnsa2``) private key.
        encryption_key: X25519 (``classic``) or hybrid ML-KEM-1024 + P-384 (``cnsa2``) private key.
    """

    party: str
    profile: Profile
    created: datetime
    signing_key: SigningPrivateKey = field(repr=False, compare=False)
    encryption_key: EncryptionPrivateKey = field(repr=False, compare=False)
    _public: PublicKeys = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_party(self.party)
        profile = Profile.parse(self.profile)
        object.__setattr__(self, "profile", profile)
        object.__setattr__(self, "created", _check_created(self.created))
        if profile is Profile.CLASSIC:
            ok = isinstance(self.signing_key, ed25519.Ed25519PrivateKey) and isinstance(
                self.encryption_key, x25519.X25519PrivateKey
            )
        else:
            ok = isinstance(self.signing_key, mldsa.MLDSA87PrivateKey) and isinstance(
                self.encryption_key, HybridKemPrivateKey
            )
        if not ok:
            sp = spec(profile)
            raise InvalidInput(f"a {profile.value} key set needs {sp.signature_algorithm} and {sp.kem_name} keys")
        object.__setattr__(self, "_public", self._derive_public())

    def _derive_public(self) -> PublicKeys:
        enc = self.encryption_key
        enc_public = (
            enc.public_key().public_bytes_raw() if isinstance(enc, x25519.X25519PrivateKey) else enc.public_bytes_raw()
        )
        return PublicKeys(
            party=self.party,
            profile=self.profile,
            signing_key=self.signing_key.public_key().public_bytes_raw(),
            encryption_key=enc_public,
        )

    @classmethod
    def generate(
        cls, party: str, profile: Profile | str = Profile.CLASSIC, *, created: datetime | None = None
    ) -> PartyKeys:
        """Generate a fresh key set for ``party``.

        Args:
            party: the owning party's id.
            profile: which algorithms to use.
            created: the creation time to record; now (UTC) if omitted.

        Returns:
            New keys from the operating system's CSPRNG.

        Raises:
            InvalidInput: bad party id, unknown profile or naive ``created``.
        """
        prof = Profile.parse(profile)
        signing: SigningPrivateKey
        encryption: EncryptionPrivateKey
        if prof is Profile.CLASSIC:
            signing = ed25519.Ed25519PrivateKey.generate()
            encryption = x25519.X25519PrivateKey.generate()
        else:
            signing = mldsa.MLDSA87PrivateKey.generate()
            encryption = HybridKemPrivateKey.generate()
        return cls(
            party=party,
            profile=prof,
            created=datetime.now(UTC) if created is None else created,
            signing_key=signing,
            encryption_key=encryption,
        )

    def public_keys(self) -> PublicKeys:
        """The public half, for registration with the exchange.

        Returns:
            The party's public keys.
        """
        return self._public

    def fingerprint(self) -> str:
        """The fingerprint of :meth:`public_keys`.

        Returns:
            64 lower-case hex digits.
        """
        return self._public.fingerprint()

    def to_private_dict(self) -> dict[str, object]:
        """The full key set, private keys included, as the key file stores it.

        Returns:
            A JSON-ready mapping. It holds secrets: write it only with
            :func:`~gsomia.crypto.keyfile.write_private_keyfile`.
        """
        signing: dict[str, str]
        encryption: dict[str, str]
        sk, ek = self.signing_key, self.encryption_key
        if isinstance(sk, ed25519.Ed25519PrivateKey):
            signing = {"ed25519": b64encode(sk.private_bytes_raw())}
        else:
            signing = {"mldsa87_seed": b64encode(sk.private_bytes_raw())}
        if isinstance(ek, x25519.X25519PrivateKey):
            encryption = {"x25519": b64encode(ek.private_bytes_raw())}
        else:
            der = ek.p384.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            encryption = {"mlkem1024_seed": b64encode(ek.mlkem.private_bytes_raw()), "p384_pkcs8": b64encode(der)}
        return {
            "format": KEYFILE_FORMAT,
            "party": self.party,
            "profile": self.profile.value,
            "created": self.created.isoformat().replace("+00:00", "Z"),
            "signing": signing,
            "encryption": encryption,
            "public_fingerprint": self.fingerprint(),
        }

    @classmethod
    def from_private_dict(cls, data: Mapping[str, object]) -> PartyKeys:
        """Rebuild a key set from :meth:`to_private_dict` output.

        Args:
            data: the mapping to read.

        Returns:
            The key set.

        Raises:
            InvalidInput: a member is missing, unknown or malformed, a key does not decode, or
                the keys do not match the recorded public fingerprint.
        """
        if not isinstance(data, Mapping):
            raise InvalidInput("a key file must hold a JSON object")
        members = {"format", "party", "profile", "created", "signing", "encryption", "public_fingerprint"}
        missing = sorted(members - data.keys())
        unknown = sorted(set(data.keys()) - members)
        if missing or unknown:
            raise InvalidInput(f"missing {missing or 'nothing'}, unknown {unknown or 'nothing'}")
        if data["format"] != KEYFILE_FORMAT:
            raise InvalidInput(f"unsupported key file format {data['format']!r}; expected {KEYFILE_FORMAT!r}")
        party = _check_party(data["party"])
        profile = Profile.parse(data["profile"])
        created_text = data["created"]
        try:
            created = datetime.fromisoformat(created_text) if isinstance(created_text, str) else None
        except ValueError:
            created = None
        if created is None or created.tzinfo is None:
            raise InvalidInput("created: expected an ISO 8601 instant with a UTC offset")
        signing = _load_signing(profile, data["signing"])
        encryption = _load_encryption(profile, data["encryption"])
        keys = cls(party=party, profile=profile, created=created, signing_key=signing, encryption_key=encryption)
        if data["public_fingerprint"] != keys.fingerprint():
            raise InvalidInput(
                "the keys do not match the recorded public fingerprint; the key file is corrupt or was edited"
            )
        return keys


def _members(value: object, names: set[str], what: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping) or set(value.keys()) != names:
        raise InvalidInput(f"{what}: expected exactly the members {sorted(names)}")
    return value


def _load_signing(profile: Profile, value: object) -> SigningPrivateKey:
    try:
        if profile is Profile.CLASSIC:
            raw = b64decode(_members(value, {"ed25519"}, "signing")["ed25519"], "signing.ed25519")
            _require_length(raw, _ED25519_PRIVATE, "signing.ed25519")
            return ed25519.Ed25519PrivateKey.from_private_bytes(raw)
        seed = b64decode(_members(value, {"mldsa87_seed"}, "signing")["mldsa87_seed"], "signing.mldsa87_seed")
        _require_length(seed, _MLDSA_SEED, "signing.mldsa87_seed")
        return mldsa.MLDSA87PrivateKey.from_seed_bytes(seed)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise InvalidInput(f"the {profile.value} signing key does not decode") from e


def _load_encryption(profile: Profile, value: object) -> EncryptionPrivateKey:
    try:
        if profile is Profile.CLASSIC:
            raw = b64decode(_members(value, {"x25519"}, "encryption")["x25519"], "encryption.x25519")
            _require_length(raw, _X25519_PRIVATE, "encryption.x25519")
            return x25519.X25519PrivateKey.from_private_bytes(raw)
        parts = _members(value, {"mlkem1024_seed", "p384_pkcs8"}, "encryption")
        seed = b64decode(parts["mlkem1024_seed"], "encryption.mlkem1024_seed")
        _require_length(seed, _MLKEM_SEED, "encryption.mlkem1024_seed")
        p384 = serialization.load_der_private_key(
            b64decode(parts["p384_pkcs8"], "encryption.p384_pkcs8"), password=None
        )
        if not isinstance(p384, ec.EllipticCurvePrivateKey):
            raise InvalidInput("encryption.p384_pkcs8: not an elliptic-curve key")
        return HybridKemPrivateKey(mlkem=mlkem.MLKEM1024PrivateKey.from_seed_bytes(seed), p384=p384)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise InvalidInput(f"the {profile.value} encryption key does not decode") from e
