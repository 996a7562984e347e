"""Witnesses: each party's node cosigns the exchange's checkpoints, and the exchange serves them.

A party registers its witness key (a C2SP ``cosignature/v1`` verifier key, ``NAME+ID+KEY``);
the registration is a public ledger entry, so a verifier can learn every witness's key from
the log itself and see when it changed. The party's node then checks each new checkpoint for
consistency with the last one it cosigned and posts its cosignature of the tree size it saw.
The exchange accepts a cosignature only if it verifies, under the party's registered witness
key, over the very checkpoint this log signed at that size: a witness that was shown another
tree (a fork) cannot have its cosignature recorded here, and anyone holding the cosigned
checkpoint can check it against the witnesses' keys (``gsomia ledger verify --witness``).

A witness name stays with the party that registered it first, also after that party's witness
took another name: no other party can register it, and a cosignature kept under it is never
replaced by another party's key's. A cosignature is kept only while the database holds the tree
it was checked against (see :meth:`LedgerService.add_cosignature`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gsomia.crypto.ledger_key import CosignerPublicKey
from gsomia.domain.instants import utc_iso
from gsomia.errors import Conflict, GsomiaError, InvalidInput, LedgerInvalid, NotPermitted
from gsomia.ledger.checkpoint import parse_signed_note
from gsomia.ledger.cosignature import cosigned_message, split_line
from gsomia.services.exchange.access import Action, Principal, authorize
from gsomia.services.exchange.context import ExchangeContext
from gsomia.services.ledger.service import LedgerService
from gsomia.storage.exchange import ExchangeRepo, Tx, WitnessRow
from gsomia.storage.ledger import PUBLIC
from gsomia.storage.writer import Outcome

__all__ = ["MAX_FUTURE", "Witness", "WitnessService"]

log = logging.getLogger(__name__)

MAX_FUTURE = timedelta(minutes=5)
"""How far ahead of the exchange's clock a cosignature's timestamp may be (clock skew)."""

MAX_LINE = 1024
"""The longest cosignature line accepted (a 200-character name and its signature fit)."""


@dataclass(frozen=True, slots=True)
class Witness:
    """A party's registered witness."""

    party: str
    key: CosignerPublicKey
    registered_at: datetime
    leaf_index: int

    def to_dict(self) -> dict[str, object]:
        """``{"party", "name", "key_id", "vkey", "registered_at", "leaf_index"}``."""
        return {
            "party": self.party,
            "name": self.key.name,
            "key_id": self.key.key_id.hex(),
            "vkey": self.key.vkey(),
            "registered_at": utc_iso(self.registered_at),
            "leaf_index": self.leaf_index,
        }


def _witness(row: WitnessRow) -> Witness:
    return Witness(
        party=row.party,
        key=CosignerPublicKey.parse(row.public_key),
        registered_at=row.registered_at,
        leaf_index=row.leaf_index,
    )


class WitnessService:
    """Register witness keys (ledgered) and record cosignatures that verify."""

    def __init__(self, ctx: ExchangeContext, ledger: LedgerService, *, clock: Callable[[], datetime]) -> None:
        self.ctx = ctx
        self.ledger = ledger
        self._clock = clock

    def register(self, principal: Principal, party: str, vkey: str) -> tuple[Witness, bool]:
        """Make the witness key ``vkey`` ``party``'s; the one it had is replaced now.

        Registering the current key again changes nothing. Returns the witness and whether
        the registration is new.

        Raises:
            NotPermitted: a party registering another party's witness, or an auditor.
            InvalidInput: ``vkey`` is not a cosigner verifier key.
            Conflict: another party's witness has that name, or had it (a witness name stays
                with the party that registered it first).
            UnknownEntity: a party the loaded scenario does not know.
            StorageError: on a database failure.
        """
        authorize(principal, Action.REGISTER_WITNESS, acting_for=party)
        key = CosignerPublicKey.parse(vkey)
        self.ctx.identity.check_party(party)
        result: tuple[Witness, bool] = self.ctx.committer.run(lambda s: self._register(s, principal, party, key))
        if result[1]:
            log.info("registered witness %s (%s) for %s", key.name, key.key_id.hex(), party)
        return result

    def _register(
        self, s: Tx, principal: Principal, party: str, key: CosignerPublicKey
    ) -> Outcome[tuple[Witness, bool]]:
        ctx = self.ctx
        ctx.require_principal(s, principal)
        current = ExchangeRepo.witness(s, party)
        if current is not None and current.public_key == key.vkey():
            return Outcome((_witness(current), False))
        named = ExchangeRepo.witness_named(s, key.name)
        if named is not None and named.party != party:
            raise Conflict(f"another party's witness is named {key.name!r}; choose another name")
        if named is None:
            _refuse_a_name_of_another(s, party, key.name)
        at = ctx.instant(s)
        fields = {
            "action": "witness_registered",
            "party": party,
            "witness": key.name,
            "vkey": key.vkey(),
            "replaced": current.public_key if current is not None else None,
            "by": principal.id,
        }
        leaf = ctx.append(s, "key", at, fields, parties=[PUBLIC])
        ExchangeRepo.put_witness(
            s, party=party, name=key.name, key_id=key.key_id.hex(), public_key=key.vkey(), at=at, leaf_index=leaf
        )
        return Outcome((Witness(party=party, key=key, registered_at=at, leaf_index=leaf), True))

    def witnesses(self, principal: Principal) -> list[Witness]:
        """Every party's current witness (public keys: anyone who reads the ledger may see them).

        Raises:
            NotPermitted: the principal may not read the ledger.
            StorageError: on a database failure.
        """
        authorize(principal, Action.READ_LEDGER)
        with self.ctx.store.reading() as s:
            return [_witness(r) for r in ExchangeRepo.witnesses(s)]

    def cosign(self, principal: Principal, size: int, line: str) -> dict[str, object]:
        """Record the principal's party's witness cosignature of the checkpoint of ``size``.

        Returns ``{"size", "witness", "timestamp", "kept", "checkpoint"}``: ``kept`` is false
        when a cosignature of that witness and size with a timestamp as new or newer was kept
        already; ``checkpoint`` is the cosigned checkpoint with every cosignature kept for it.

        Raises:
            NotPermitted: not a party, or a party with no registered witness.
            InvalidInput: a malformed line, a line by another key than the party's witness,
                a timestamp too far ahead, or a signature that does not verify over this log's
                checkpoint of that size.
            NotAuthenticated: the token was revoked, through any process, before the commit.
            Conflict: the party's witness key was replaced meanwhile, or the cosignature kept for
                that size under the witness's name is by another party's key (it stays).
            UnknownEntity: the ledger is not that large.
            StorageError: the database no longer holds the tree the line was checked against (it
                went back under this process: ask again), or on a database failure.
        """
        authorize(principal, Action.COSIGN)
        if len(line) > MAX_LINE:
            raise InvalidInput(f"a cosignature line is at most {MAX_LINE} characters")
        try:
            cosig = split_line(line.strip())
        except LedgerInvalid as e:
            raise InvalidInput(str(e)) from None
        party = principal.party or ""
        with self.ctx.store.reading() as s:
            row = ExchangeRepo.witness(s, party)
        if row is None:
            raise NotPermitted(f"{party} has no registered witness: PUT /api/v1/parties/{party}/witness first")
        key = CosignerPublicKey.parse(row.public_key)
        if cosig.name != key.name or cosig.key_id != key.key_id:
            raise InvalidInput(f"the cosignature is not by {party}'s witness {key.name} (key ID {key.key_id.hex()})")
        now = self._clock()
        if cosig.timestamp > (now + MAX_FUTURE).timestamp():
            raise InvalidInput("the cosignature's timestamp is ahead of the exchange's clock: check the node's clock")
        note = self.ledger.checkpoint_at(size)
        body, _ = parse_signed_note(note)
        try:
            message = cosigned_message(body, cosig.timestamp)
        except GsomiaError as e:
            raise InvalidInput(str(e)) from None
        if not key.verify(message, cosig.signature):
            raise InvalidInput(
                f"the cosignature does not verify over this ledger's checkpoint of size {size}: "
                "the witness cosigned another tree, or the line was altered"
            )

        def keep(s: Tx) -> Outcome[bool]:
            # As every write: a token revoked, or a witness key replaced, through any process
            # before this transaction is honoured here, not after a cache expires.
            self.ctx.require_principal(s, principal)
            current = ExchangeRepo.witness(s, party)
            if current is None or current.public_key != row.public_key:
                raise Conflict(f"{party}'s witness key changed while the cosignature was checked; cosign again")
            return Outcome(
                self.ledger.add_cosignature(
                    s,
                    size=size,
                    witness=key.name,
                    timestamp=cosig.timestamp,
                    line=line.strip(),
                    note=note,
                    at=now,
                    same_party=lambda kept: _registered_by(s, party, key.name, kept),
                )
            )

        kept: bool = self.ctx.committer.run(keep)
        return {
            "size": size,
            "witness": key.name,
            "timestamp": cosig.timestamp,
            "kept": kept,
            "checkpoint": self.ledger.cosigned_checkpoint(size),
        }


def _refuse_a_name_of_another(s: Tx, party: str, name: str) -> None:
    """A witness name stays with the party that registered it, also once that party's witness
    has another name: given to another party, its cosignatures under that name would be
    replaced by the newcomer's, and a verifier that knows the name would take one party's
    witness for another's.

    Raises:
        Conflict: another party registered a witness of that name before.
    """
    others = [p for p in ExchangeRepo.witness_name_parties(s, name) if p != party]
    if others:
        raise Conflict(
            f"the witness name {name!r} was {others[0]}'s: a witness name stays with the party that registered it, "
            "also after its witness changed; choose another name"
        )


def _registered_by(s: Tx, party: str, name: str, line: str) -> bool:
    """Whether the key of the cosignature ``line`` (under ``name``) was registered by ``party``."""
    try:
        key_id = split_line(line).key_id.hex()
    except LedgerInvalid:
        return False  # not a line any append wrote: it stays for 'gsomia ledger verify' to name
    return ExchangeRepo.witness_key_party(s, name, key_id) == party
