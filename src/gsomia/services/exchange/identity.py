"""Principals, API tokens and parties' public keys; demo credentials.

Tokens are 256-bit random strings (``secrets.token_urlsafe(32)``) shown once; the store keeps
only their SHA-256. The exchange stores only public keys: private keys are generated and kept
on the party's side (``gsomia keys generate``), so the server never holds one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from gsomia.crypto import PartyKeys, Profile, PublicKeys, read_private_keyfile, write_private_keyfile
from gsomia.crypto.keyfile import replace_private_file
from gsomia.domain.instants import utc_iso
from gsomia.errors import InvalidInput, KeysRetired, NotAuthenticated, UnknownEntity
from gsomia.services.exchange.access import Principal, Role
from gsomia.storage.exchange import ExchangeRepo, NewPrincipal, PartyKeyRow, PrincipalRow
from gsomia.storage.store import Store

log = logging.getLogger(__name__)

TOKEN_PREFIX = "gsm_"  # noqa: S105 - a marker that lets secret scanners find leaked tokens, not a secret
_NAME_MAX = 128


def token_hash(token: str) -> str:
    """SHA-256 (hex) of a token: what the store keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedToken:
    """A new principal and its token, which is shown this once and never stored."""

    principal: Principal
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class PrincipalInfo:
    """A principal as an administrator lists it (never the token)."""

    principal: Principal
    created_at: datetime
    revoked_at: datetime | None
    revoked_before: bool = False
    """Whether a revocation found the token revoked already (at ``revoked_at``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisteredKeys:
    """A party's registered public keys."""

    keys: PublicKeys
    registered_at: datetime
    registered_by: str
    retired_at: datetime | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON shape: the public keys, their fingerprint and validity. A report is verified
        with the key that was valid when the exchange received it:
        ``registered_at <= received_at < retired_at`` (no ``retired_at``: still current)."""
        return {
            **self.keys.to_dict(),
            "fingerprint": self.keys.fingerprint(),
            "registered_at": utc_iso(self.registered_at),
            "retired_at": utc_iso(self.retired_at) if self.retired_at else None,
            "current": self.retired_at is None,
        }


def _principal(row: PrincipalRow, version: int = -1) -> Principal:
    return Principal(id=row.id, name=row.name, role=Role(row.role), party=row.party, version=version)


def registered_keys(row: PartyKeyRow) -> RegisteredKeys:
    """A stored key registration as a value."""
    keys = PublicKeys.from_dict(
        {
            "party": row.party,
            "profile": row.profile,
            "signing_key": row.signing_key,
            "encryption_key": row.encryption_key,
        }
    )
    return RegisteredKeys(
        keys=keys, registered_at=row.registered_at, registered_by=row.registered_by, retired_at=row.retired_at
    )


class KeyRegistry(Protocol):
    """What demo credentials need to register a party's public keys."""

    def register(self, principal: Principal, party: str, keys: PublicKeys) -> tuple[RegisteredKeys, bool]:
        """Register ``keys`` for ``party``."""
        ...


class IdentityService:
    """Principals, authentication and the registry of parties' public keys."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime],
        known_parties: Callable[[], frozenset[str] | None] = lambda: None,
        cache_seconds: float = 1.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._known_parties = known_parties
        self._ttl = cache_seconds
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[float, Principal | None]] = {}
        self._current: dict[str, RegisteredKeys] = {}
        self._keys_loaded = -math.inf  # due at once, however long the machine has been up
        self.keys_version = -1
        """The stored keys version of the keys last read (a write compares it with the stored one)."""

    # --- principals ----------------------------------------------------------------------

    def check_party(self, party: str) -> None:
        """Refuse a party the loaded scenario does not know.

        Raises:
            UnknownEntity: for an unknown party.
        """
        known = self._known_parties()
        if known is not None and party not in known:
            raise UnknownEntity(f"unknown party {party!r} (known: {', '.join(sorted(known))})")

    def add_principal(self, *, role: Role | str, name: str, party: str | None = None) -> IssuedToken:
        """Create a principal and its token (shown once).

        Raises:
            InvalidInput: for a bad role, name or party id.
            UnknownEntity: for a party the loaded scenario does not know.
            StorageError: on a database failure.
        """
        role = Role.parse(str(role))
        name = name.strip()
        if not name or len(name) > _NAME_MAX:
            raise InvalidInput(f"a principal needs a name of 1 to {_NAME_MAX} characters")
        if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
            # a terminal escape or a line break would be printed raw by every listing, a format
            # character (a right-to-left override) turn the words around it
            raise InvalidInput("a principal's name is one line of printable text: no control or format characters")
        principal = Principal(id=f"p-{secrets.token_hex(8)}", name=name, role=role, party=party)
        if party is not None:
            self.check_party(party)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = NewPrincipal(
            id=principal.id,
            name=name,
            role=role.value,
            party=party,
            token_hash=token_hash(token),
            created_at=self._clock(),
        )
        with self._store.writing("adding a principal") as s:
            ExchangeRepo.add(s, [row])
        return IssuedToken(principal=principal, token=token)

    def principals(self) -> list[PrincipalInfo]:
        """Every principal (never a token).

        Raises:
            StorageError: on a database failure.
        """
        with self._store.reading() as s:
            return [
                PrincipalInfo(principal=_principal(r), created_at=r.created_at, revoked_at=r.revoked_at)
                for r in ExchangeRepo.principals(s)
            ]

    def revoke(self, principal_id: str) -> PrincipalInfo:
        """Revoke a principal's token (idempotent).

        Raises:
            UnknownEntity: for an unknown principal id.
            StorageError: on a database failure.
        """
        now = self._clock()
        with self._store.writing("revoking a principal") as s:
            row = ExchangeRepo.principal(s, principal_id)
            if row is None:
                raise UnknownEntity(f"no principal {principal_id!r}")
            before = row.revoked_at is not None
            if not before:
                ExchangeRepo.update(s, "principals", {"id": principal_id}, {"revoked_at": now})
                Store.bump(s, "principals")
                row.revoked_at = now
            info = PrincipalInfo(
                principal=_principal(row), created_at=row.created_at, revoked_at=row.revoked_at, revoked_before=before
            )
        with self._lock:
            self._tokens.clear()
        return info

    def authenticate(self, token: str | None) -> Principal:
        """The principal holding ``token``.

        Answers are cached for about a second, so a revocation made by another process
        takes effect within that time (at once in this process).

        Raises:
            NotAuthenticated: no token, an unknown token or a revoked one (one message for all).
            StorageError: on a database failure.
        """
        if not token:
            raise NotAuthenticated("this endpoint needs a bearer token (Authorization: Bearer …)")
        digest = token_hash(token)
        now = time.monotonic()
        cached = self._tokens.get(digest)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            with self._store.reading() as s:
                row = ExchangeRepo.principal_by_token_hash(s, digest)
                version = Store.versions(s).principals
                principal = _principal(row, version) if row is not None and row.revoked_at is None else None
            with self._lock:
                if len(self._tokens) > 10_000:
                    self._tokens.clear()
                self._tokens[digest] = (now + self._ttl, principal)
        if principal is None:
            raise NotAuthenticated("the token is unknown or revoked")
        return principal

    def forget_tokens(self) -> None:
        """Authenticate every token against the store again (a revocation was seen)."""
        with self._lock:
            self._tokens.clear()

    def is_active(self, principal: Principal, *, fresh: bool = False) -> bool:
        """Whether ``principal``'s token still holds: from the store when ``fresh``, else
        answered from a cache for about a second (at once after a revocation in this process).

        Raises:
            StorageError: on a database failure.
        """
        now = time.monotonic()
        key = "id:" + principal.id
        cached = self._tokens.get(key)
        if not fresh and cached is not None and cached[0] > now:
            return cached[1] is not None
        with self._store.reading() as s:
            active = ExchangeRepo.principal_active(s, principal.id)
        with self._lock:
            self._tokens[key] = (now + self._ttl, principal if active else None)
        return active

    # --- keys ----------------------------------------------------------------------------

    def _refresh_keys(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._keys_loaded < self._ttl:
            return
        with self._store.reading() as s:
            current = [registered_keys(r) for r in ExchangeRepo.current_keys(s)]
            version = Store.versions(s).keys
        with self._lock:
            if version >= self.keys_version:  # never back to what another thread read earlier
                self._current = {reg.keys.party: reg for reg in current}
                self.keys_version = version
            self._keys_loaded = now

    def held_keys_version(self) -> int:
        """The stored version of the keys this process holds, read again first if they are due.
        Take it before using the keys: whatever is read after it is as new or newer, so a change
        between the two shows as a version that moved.

        Raises:
            StorageError: on a database failure.
        """
        self._refresh_keys()
        return self.keys_version

    def forget_keys(self) -> None:
        """Read the registered keys again on next use (a write found them changed)."""
        with self._lock:
            self._keys_loaded = -math.inf  # due at once, however long the machine has been up

    def current_keys(self, party: str) -> PublicKeys | None:
        """``party``'s current public keys (what content keys are wrapped to), or None.

        Raises:
            StorageError: on a database failure.
        """
        self._refresh_keys()
        reg = self._current.get(party)
        return reg.keys if reg is not None else None

    def signing_key(self, fingerprint: str, party: str) -> PublicKeys | None:
        """The current public keys of ``party`` with this fingerprint, or None (unknown,
        retired, or another party's): a report is signed with the key valid when it is
        submitted.

        Raises:
            StorageError: on a database failure.
        """
        wanted = fingerprint.lower()
        for force in (False, True):
            # A miss is read again from the store before it refuses: a key registered through
            # another process is not in this one's cache until it expires.
            self._refresh_keys(force=force)
            reg = self._current.get(party)
            if reg is not None and reg.keys.fingerprint() == wanted:
                return reg.keys
        return None


# --- demo credentials ----------------------------------------------------------------------

DEMO_PARTIES = ("JPN", "KOR", "USA")


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoCredentials:
    """Where the demo's key files and tokens are, and how to use them."""

    directory: Path
    tokens_file: Path
    key_files: dict[str, Path]
    tokens: dict[str, str] = field(repr=False)
    url: str
    kept: dict[str, str] = field(default_factory=dict)
    """Parties that registered keys of their own since (a party node, say): the fingerprint of
    their current set, left current; the demo has no key file for them."""

    def instructions(self) -> list[str]:
        """Lines to print: what was issued and example ``gsomia client`` commands."""
        jpn = self.key_files.get("JPN", "JPN.keys (JPN's own key file)")
        kor = self.key_files.get("KOR", "KOR.keys (KOR's own key file)")
        lines = [
            f"Demo credentials in {self.directory} (tokens in {self.tokens_file.name}, mode 0600):",
        ]
        for who, token in self.tokens.items():
            key = f"  key file {self.key_files[who]}" if who in self.key_files else ""
            if who in self.kept:
                key = f"  keeps the keys it registered since ({self.kept[who]}): no demo key file"
            lines.append(f"  {who:<9} token {token}{key}")
        lines += [
            "",
            "Try, in another shell:",
            f"  export GSOMIA_URL={self.url}",
            '  echo \'{"track": "example"}\' > track.json',
            f"  GSOMIA_TOKEN={self.tokens['JPN']} gsomia client submit --key {jpn} "
            "--topic dprk.missile.launch --level 極秘 --payload track.json --recipient KOR",
            f"  GSOMIA_TOKEN={self.tokens['KOR']} gsomia client inbox",
            f"  GSOMIA_TOKEN={self.tokens['KOR']} gsomia client fetch DELIVERY_ID --key {kor}",
            f"  GSOMIA_TOKEN={self.tokens['KOR']} gsomia client watch",
        ]
        return lines


def _demo_principal(identity: IdentityService, token: str | None) -> Principal | None:
    try:
        return identity.authenticate(token)
    except NotAuthenticated:
        return None


def _register_demo_keys(keys_service: KeyRegistry, principal: Principal, party: str, path: Path) -> bool:
    """Register the keys of ``path`` as ``party``'s; False if they were retired since.

    Raises:
        InvalidInput: if the key file is unreadable or names another party.
        StorageError: on a database failure.
    """
    try:
        keys_service.register(principal, party, read_private_keyfile(path).public_keys())
    except KeysRetired:
        return False
    return True


def issue_demo_credentials(
    identity: IdentityService, keys_service: KeyRegistry, data_dir: Path, *, url: str = "http://127.0.0.1:8000"
) -> DemoCredentials:
    """Issue demo principals and keys (idempotent): parties JPN, KOR and USA, an operator and an
    auditor; key files for the three parties under ``data_dir/demo/`` (0600) with their public
    keys registered; tokens in ``data_dir/demo/tokens.json`` (0600).

    Run again, it keeps key files and tokens that still work and replaces the tokens that do not.
    A party that registered keys of its own since the demo's (a party node, say) retired them:
    its keys stay current, and the demo has no key file for it (:attr:`DemoCredentials.kept`).

    Raises:
        InvalidInput: if a file cannot be written or an existing key file is unreadable.
        StorageError: on a database failure.
    """
    directory = data_dir / "demo"
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise InvalidInput(f"cannot create the demo directory {directory}: {e.strerror}") from e
    tokens_file = directory / "tokens.json"
    tokens: dict[str, str] = {}
    if tokens_file.exists():
        try:
            loaded = json.loads(tokens_file.read_text(encoding="utf-8"))
            tokens = {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            tokens = {}
    wanted: list[tuple[str, Role, str | None]] = [(p, Role.PARTY, p) for p in DEMO_PARTIES]
    wanted += [("operator", Role.OPERATOR, None), ("auditor", Role.AUDITOR, None)]
    changed = False
    principals: dict[str, Principal] = {}
    for who, role, party in wanted:
        principal = _demo_principal(identity, tokens.get(who))
        if principal is None or principal.role is not role or principal.party != party:
            issued = identity.add_principal(role=role, name=f"demo {who}", party=party)
            tokens[who] = issued.token
            principal = issued.principal
            changed = True
        principals[who] = principal
    if changed or not tokens_file.exists():
        replace_private_file(tokens_file, (json.dumps(tokens, indent=2) + "\n").encode("utf-8"))
    key_files: dict[str, Path] = {}
    kept: dict[str, str] = {}
    for party in DEMO_PARTIES:
        path = directory / f"{party}.keys"
        if path.exists():
            if _register_demo_keys(keys_service, principals[party], party, path):
                key_files[party] = path
                continue
            own = identity.current_keys(party)
            if own is not None:
                # the party registered keys of its own since the demo's (which retired them):
                # replacing them would leave whoever holds them (a party node) unable to open
                # what it receives
                kept[party] = own.fingerprint()
                continue
        write_private_keyfile(path, PartyKeys.generate(party, Profile.CLASSIC), overwrite=True)
        _register_demo_keys(keys_service, principals[party], party, path)
        key_files[party] = path
    return DemoCredentials(
        directory=directory, tokens_file=tokens_file, key_files=key_files, tokens=tokens, url=url, kept=kept
    )
