"""Standing consents: an originator's prior approval of relays of a topic prefix to a
recipient (optionally through one hub) for a period (docs/design.md §2 "Consent"; rule 6).

A relay decision that a standing consent covers is released at once, never for an ORCON
report, which needs consent for the very report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gsomia.domain.instants import parse_instant, utc_iso
from gsomia.domain.topics import check_topic_prefix, topic_matches
from gsomia.errors import InvalidInput
from gsomia.services.exchange.access import Action, Principal, authorize
from gsomia.services.exchange.context import UTC_ZONE, ExchangeContext, new_id
from gsomia.services.exchange.presenters import standing_summary
from gsomia.storage.exchange import ExchangeRepo, NewStandingConsent, StandingConsentRow, Tx
from gsomia.storage.writer import Outcome

__all__ = ["StandingConsentService", "StandingConsentSpec", "matching_standing"]


def matching_standing(
    standing: Sequence[StandingConsentRow], *, topic: str, recipient: str, hub: str
) -> StandingConsentRow | None:
    """The first standing consent (already valid at the decision instant) that covers a relay."""
    for sc in standing:
        if sc.recipient == recipient and (sc.hub is None or sc.hub == hub) and topic_matches(sc.topic_prefix, topic):
            return sc
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class StandingConsentSpec:
    """A standing consent as an originator asks for it."""

    topic_prefix: str
    recipient: str
    hub: str | None = None
    valid_from: str | None = None
    valid_until: str
    note: str = ""


class StandingConsentService:
    """Give, list and revoke standing consents (each ledgered)."""

    def __init__(self, ctx: ExchangeContext) -> None:
        self.ctx = ctx

    def add(self, principal: Principal, spec: StandingConsentSpec) -> dict[str, Any]:
        """Record a standing consent of the caller (as originator); ledgered.

        Raises:
            NotPermitted: the principal is not a party.
            InvalidInput: a bad topic prefix, unknown recipient or hub, a hub that is the
                originator or the recipient, or an empty period.
            StorageError: on a database failure.
        """
        authorize(principal, Action.MANAGE_STANDING)
        assert principal.party is not None  # noqa: S101 - only parties manage standing consents
        ctx = self.ctx
        record = ctx.records.record()
        check_topic_prefix(spec.topic_prefix, "topic_prefix")
        for what, party in (("recipient", spec.recipient), ("hub", spec.hub)):
            if party is not None and party not in record.parties:
                raise InvalidInput(f"{what}: unknown party {party!r}")
        if spec.recipient == principal.party:
            raise InvalidInput("recipient: a standing consent names another party")
        if spec.hub is not None and spec.hub in (principal.party, spec.recipient):
            raise InvalidInput("hub: a relay goes through a third party, neither the originator nor the recipient")
        given_start = parse_instant(spec.valid_from, UTC_ZONE) if spec.valid_from else None
        until = parse_instant(spec.valid_until, UTC_ZONE)
        if given_start is not None and until <= given_start:
            raise InvalidInput("valid_until must be after valid_from")
        sid = new_id("sc")
        originator = principal.party

        def job(s: Tx) -> Outcome[dict[str, Any]]:
            ctx.require_principal(s, principal)
            now = ctx.instant(s)
            start = given_start or now
            if until <= start:
                raise InvalidInput("valid_until must be after valid_from (default: now)")
            leaf = ctx.append(
                s,
                "consent",
                now,
                {
                    "action": "standing_granted",
                    "standing_consent": sid,
                    "originator": originator,
                    "topic_prefix": spec.topic_prefix,
                    "recipient": spec.recipient,
                    "hub": spec.hub,
                    "valid_from": utc_iso(start),
                    "valid_until": utc_iso(until),
                },
                parties=[originator],
            )
            row = NewStandingConsent(
                id=sid,
                originator=originator,
                topic_prefix=spec.topic_prefix,
                recipient=spec.recipient,
                hub=spec.hub,
                valid_from=start,
                valid_until=until,
                note=spec.note,
                created_at=now,
                revoked_at=None,
                leaf_index=leaf,
            )
            ExchangeRepo.add(s, [row])
            return Outcome(standing_summary(row))

        return ctx.committer.run(job)

    def list(self, principal: Principal) -> list[dict[str, Any]]:
        """The caller's standing consents (revoked ones included, marked).

        Raises:
            NotPermitted: the principal is not a party.
            StorageError: on a database failure.
        """
        authorize(principal, Action.MANAGE_STANDING)
        assert principal.party is not None  # noqa: S101 - only parties manage standing consents
        with self.ctx.store.reading() as s:
            return [standing_summary(sc) for sc in ExchangeRepo.standing_consents(s, [principal.party], active_at=None)]

    def revoke(self, principal: Principal, standing_id: str) -> dict[str, Any]:
        """Revoke one of the caller's standing consents (idempotent); ledgered.

        Raises:
            NotPermitted: the principal is not a party.
            UnknownEntity: no such standing consent, or another party's.
            StorageError: on a database failure.
        """
        authorize(principal, Action.MANAGE_STANDING)
        ctx = self.ctx

        def job(s: Tx) -> Outcome[dict[str, Any]]:
            sc = ExchangeRepo.standing_consent(s, standing_id)
            authorize(
                principal,
                Action.MANAGE_STANDING,
                owners=[sc.originator] if sc else [],
                thing="standing consent",
                thing_id=standing_id,
            )
            assert sc is not None  # noqa: S101 - authorize raised for a missing one
            ctx.require_principal(s, principal)
            if sc.revoked_at is None:
                now = ctx.instant(s)
                ctx.append(
                    s,
                    "consent",
                    now,
                    {"action": "standing_revoked", "standing_consent": sc.id, "originator": sc.originator},
                    parties=[sc.originator],
                )
                ExchangeRepo.update(s, "standing_consents", {"id": sc.id}, {"revoked_at": now})
                sc.revoked_at = now
            return Outcome(standing_summary(sc))

        return ctx.committer.run(job)
