"""Parties' public keys over time: registration, rotation and the history a verifier needs.

A party registers its own public keys (an operator may register any party's); the keys it
had until then retire at that instant. Every registration is a ledger entry readable by all
(public keys are public), so a report stays verifiable with the key that was valid when the
exchange received it — a party cannot disown what it signed by rotating its keys, and a key
swapped in the database shows in ``gsomia ledger verify``. When an operator changes a party's
keys, the party is told (an inbox item). A party registers at most a few key sets an hour
(``ExchangeConfig.key_registrations``): beyond, it is told when it may again.
"""

from __future__ import annotations

import logging
import math
import secrets
from datetime import datetime, timedelta

from gsomia.crypto import PublicKeys, wrap_key
from gsomia.domain.instants import utc_iso
from gsomia.errors import InvalidInput, KeysRetired, TooManyRequests, UnknownEntity
from gsomia.services.exchange.access import Action, Principal, Role, authorize
from gsomia.services.exchange.context import ExchangeContext, Pending
from gsomia.services.exchange.identity import RegisteredKeys, registered_keys
from gsomia.storage.exchange import ExchangeRepo, NewPartyKey, Tx
from gsomia.storage.ledger import PUBLIC
from gsomia.storage.writer import Outcome

__all__ = ["KeyService"]

log = logging.getLogger(__name__)


class KeyService:
    """Register public keys (ledgered) and read a party's key history."""

    def __init__(self, ctx: ExchangeContext) -> None:
        self.ctx = ctx

    def register(self, principal: Principal, party: str, keys: PublicKeys) -> tuple[RegisteredKeys, bool]:
        """Register ``keys`` as ``party``'s current public keys; earlier ones retire now.

        Registering the current keys again changes nothing. Returns the registration and
        whether it is new.

        Raises:
            NotPermitted: a party registering another party's keys, or an auditor.
            InvalidInput: the keys name another party than the one asked for, or no content
                key can be wrapped to the encryption key (a low-order X25519 point).
            KeysRetired: the keys were registered before and retired.
            TooManyRequests: the party registered as many key sets as it may within the
                configured window (an operator is never refused).
            UnknownEntity: for a party the loaded scenario does not know.
            StorageError: on a database failure.
        """
        authorize(principal, Action.REGISTER_KEYS, acting_for=party)
        if keys.party != party:
            raise InvalidInput(f"these keys are {keys.party}'s, not {party}'s")
        self.ctx.identity.check_party(party)
        _require_wrappable(keys)
        result: tuple[RegisteredKeys, bool] = self.ctx.committer.run(lambda s: self._register(s, principal, keys))
        if result[1]:
            self.ctx.identity.forget_keys()
            log.info("registered %s keys %s for %s", keys.profile, keys.fingerprint()[:16], party)
        return result

    def _register(self, s: Tx, principal: Principal, keys: PublicKeys) -> Outcome[tuple[RegisteredKeys, bool]]:
        ctx = self.ctx
        ctx.require_principal(s, principal)
        fp = keys.fingerprint()
        existing = ExchangeRepo.key(s, fp)
        if existing is not None and existing.retired_at is None:
            return Outcome((registered_keys(existing), False))
        if existing is not None:
            raise KeysRetired("these keys were registered before and retired; generate new keys")
        at = ctx.instant(s)
        party = keys.party
        if principal.role is not Role.OPERATOR:
            self._hold_to_rate(s, party, at)
        retired = [old.fingerprint for old in ExchangeRepo.current_keys(s, party)]
        for old in retired:
            ExchangeRepo.update(s, "party_keys", {"fingerprint": old}, {"retired_at": at})
        d = keys.to_dict()
        leaf = ctx.append(
            s,
            "key",
            at,
            {
                "action": "registered",
                "party": party,
                "fingerprint": fp,
                "profile": d["profile"],
                "retired": retired,
                "by": principal.id,
            },
            parties=[PUBLIC],
        )
        row = NewPartyKey(
            fingerprint=fp,
            party=party,
            profile=d["profile"],
            signing_key=d["signing_key"],
            encryption_key=d["encryption_key"],
            registered_at=at,
            registered_by=principal.id,
        )
        rows = Pending()
        rows.add(row)
        if principal.role is Role.OPERATOR:
            body = {
                "type": "keys",
                "party": party,
                "fingerprint": fp,
                "retired": retired,
                "by": "operator",
                "registered_at": utc_iso(at),
                "leaf_index": leaf,
            }
            rows.inbox(party, "keys", fp, body, at)
        ctx.bump(s, "keys")
        rows.flush(s)
        registered = RegisteredKeys(keys=keys, registered_at=at, registered_by=principal.id)
        return rows.outcome(ctx, (registered, True))

    def _hold_to_rate(self, s: Tx, party: str, at: datetime) -> None:
        """Refuse a party's own registration beyond ``key_registrations`` new key sets within
        ``key_window`` up to ``at`` (counted on the stored registrations, so across every
        process). Each registration retires the party's keys and makes the reports being
        decided for it at that moment be wrapped again: rotations are rare, and a party
        registering keys in a loop would only keep others' reports to it waiting.

        Raises:
            TooManyRequests: the limit is reached; says when the next one may be registered.
        """
        config = self.ctx.config
        recent = ExchangeRepo.registered_since(s, party, at - config.key_window)
        if len(recent) < config.key_registrations:
            return
        free_at = recent[-config.key_registrations] + config.key_window
        wait = max(1, math.ceil((free_at - at).total_seconds()))
        raise TooManyRequests(
            f"{party} registered {len(recent)} key sets in the last {_minutes(config.key_window)} "
            f"(at most {config.key_registrations}): register the next one at {utc_iso(free_at)}, "
            f"in {wait} s",
            retry_after=wait,
        )

    def ledger_seeded(self) -> int:
        """In an exercise database seeded from the live one, whose ledger is still empty: a
        ledger entry registering each key set the seed copied (the live ledger's entries are not
        copied), so that ``gsomia ledger verify`` finds every stored key set registered, as in
        any database. Returns how many were ledgered.

        Raises:
            StorageError: on a database failure.
        """
        ctx = self.ctx

        def job(s: Tx) -> Outcome[int]:
            rows = ExchangeRepo.all_keys(s)
            at = ctx.instant(s)
            for k in rows:
                fields = {
                    "action": "registered",
                    "party": k.party,
                    "fingerprint": k.fingerprint,
                    "profile": k.profile,
                    "retired": [],
                    "by": k.registered_by,
                }
                ctx.append(s, "key", at, fields, parties=[PUBLIC])
            return Outcome(len(rows))

        count: int = ctx.committer.run(job)
        return count

    def history(self, principal: Principal, party: str) -> list[RegisteredKeys]:
        """``party``'s registered public keys, current first, then retired ones newest first,
        each with its validity (never a private key).

        Raises:
            NotPermitted: if the principal may not read keys.
            UnknownEntity: if the party has registered no keys.
            StorageError: on a database failure.
        """
        authorize(principal, Action.READ_KEYS)
        with self.ctx.store.reading() as s:
            rows = ExchangeRepo.keys_of(s, party)
        if not rows:
            raise UnknownEntity(f"{party} has registered no public keys")
        found = [registered_keys(r) for r in rows]
        return sorted(found, key=lambda k: (k.retired_at is not None, -_stamp(k.registered_at)))


def _require_wrappable(keys: PublicKeys) -> None:
    """Refuse keys no content key can be wrapped to (a low-order X25519 point decodes, but
    HPKE cannot encapsulate to it): registered, they would make every report naming the
    party a recipient, or relayed through it, fail for its originator.

    Raises:
        InvalidInput: a trial wrap to the encryption key fails.
    """
    try:
        wrap_key(keys, secrets.token_bytes(32), b"gsomia/v1 key registration check")
    except InvalidInput:
        raise InvalidInput(
            f"encryption_key of {keys.party}: no content key can be wrapped to it (a low-order point?); "
            "generate new keys with 'gsomia keys generate'"
        ) from None


def _stamp(at: datetime) -> float:
    return at.timestamp()


def _minutes(window: timedelta) -> str:
    """A window of time as a reader says it: ``60 minutes``."""
    minutes = window.total_seconds() / 60
    return f"{minutes:g} minute{'' if minutes == 1 else 's'}"
