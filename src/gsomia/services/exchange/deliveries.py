"""The recipient's side: fetching and acknowledging deliveries, the inbox, loss and compromise
reports (Japan–Korea GSOMIA Art. 17), and exchange statistics for auditors.

Every delivery, consent request and incident notice is also an item in a party's inbox, in
commit order; ``GET /api/v1/inbox`` pages through them by sequence number and the event
stream pushes them as their transactions commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from gsomia.domain.instants import utc_iso
from gsomia.domain.markings import Marking
from gsomia.domain.states import DeliveryPurpose, DeliveryState
from gsomia.errors import InvalidInput, UnknownEntity
from gsomia.services.exchange.access import Action, Principal, authorize
from gsomia.services.exchange.context import DeliveryWrap, ExchangeContext, Pending, split_report_key
from gsomia.services.exchange.notify import Subscription
from gsomia.services.exchange.presenters import delivery_marking, delivery_view
from gsomia.storage.exchange import ExchangeRepo, NewDelivery, Tx
from gsomia.storage.writer import Outcome

__all__ = ["MAX_DELIVERIES", "DeliveryService", "add_delivery"]

MAX_DELIVERIES = 100
"""Most deliveries :meth:`DeliveryService.deliveries` answers in one call."""


def add_delivery(
    ctx: ExchangeContext,
    s: Tx,
    rows: Pending,
    *,
    wrap: DeliveryWrap,
    report: str,
    topic: str,
    marking: Marking,
    purpose: DeliveryPurpose,
    via: str | None,
    consent_id: str | None,
    submission_leaf: int,
    at: datetime,
) -> dict[str, Any]:
    """Ledger and queue one delivery of the report stored under ``report`` and its inbox item;
    return its summary.

    The delivery's entry is readable by the originator, the recipient and, for the onward
    leg of a relay, the hub; the recipient may from now on read the report's submission entry
    too (to check the commitment to what it receives).
    """
    originator, report_id = split_report_key(report)
    mark = delivery_marking(marking, exercise=ctx.clock.exercise)
    leaf = ctx.append(
        s,
        "delivery",
        at,
        {
            "delivery": wrap.delivery_id,
            "report": report_id,
            "originator": originator,
            "recipient": wrap.party,
            "purpose": purpose,
            "via": via,
            "marking": mark,
            "key": wrap.fingerprint,
            "wrapped_key_sha256": hashlib.sha256(wrap.wrapped).hexdigest(),
        },
        parties=[originator, wrap.party] + ([via] if via else []),
    )
    ctx.ledger.share(s, submission_leaf, [wrap.party])
    rows.add(
        NewDelivery(
            id=wrap.delivery_id,
            report_id=report,
            recipient=wrap.party,
            originator=originator,
            purpose=purpose,
            via=via,
            consent_id=consent_id,
            marking=mark,
            state=DeliveryState.READY,
            profile=wrap.profile,
            key_fingerprint=wrap.fingerprint,
            wrapped_key=wrap.wrapped,
            created_at=at,
            leaf_index=leaf,
        )
    )
    summary = {
        "id": wrap.delivery_id,
        "recipient": wrap.party,
        "purpose": purpose,
        "via": via,
        "marking": mark,
        "leaf_index": leaf,
        "created_at": utc_iso(at),
    }
    body = {"type": "delivery", "report": report_id, "originator": originator, "topic": topic, **summary}
    if ctx.clock.exercise:
        body["exercise"] = True
    rows.inbox(wrap.party, "delivery", wrap.delivery_id, body, at)
    return summary


class DeliveryService:
    """Deliveries, acknowledgements, the inbox and statistics."""

    def __init__(self, ctx: ExchangeContext) -> None:
        self.ctx = ctx

    # --- deliveries ------------------------------------------------------------------------

    def delivery(self, principal: Principal, delivery_id: str) -> dict[str, Any]:
        """A delivery as its recipient fetches it: marking, ciphertext, wrapped key, the report
        as its originator signed it, and the salt of the ledger's commitment to it. Reading
        changes nothing (the acknowledgement attests need-to-know, rule 5, and is ledgered).

        Raises:
            NotPermitted: the role may not read deliveries (operator, auditor).
            UnknownEntity: no such delivery, or another party's.
            StorageError: on a database failure.
        """
        authorize(principal, Action.READ_DELIVERY)
        with self.ctx.store.reading() as s:
            d = ExchangeRepo.delivery(s, delivery_id)
            authorize(
                principal,
                Action.READ_DELIVERY,
                owners=[d.recipient] if d else [],
                thing="delivery",
                thing_id=delivery_id,
            )
            assert d is not None  # noqa: S101 - authorize raised for a missing delivery
            report = ExchangeRepo.report(s, d.report_id)
            if report is None:
                raise UnknownEntity(f"no delivery {delivery_id!r}")
            return delivery_view(d, report)

    def deliveries(self, principal: Principal, delivery_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Several deliveries at once, in the order asked: each as :meth:`delivery` gives it, or
        ``{"id", "error"}`` where :meth:`delivery` would answer not found (no such delivery, or
        another party's: the same words, so nothing about another party leaks).

        Raises:
            NotPermitted: the role may not read deliveries (operator, auditor).
            InvalidInput: no ids, or more than :data:`MAX_DELIVERIES`.
            StorageError: on a database failure.
        """
        authorize(principal, Action.READ_DELIVERY)
        if not 1 <= len(delivery_ids) <= MAX_DELIVERIES:
            raise InvalidInput(f"ask for 1 to {MAX_DELIVERIES} deliveries at a time")
        with self.ctx.store.reading() as s:
            found = ExchangeRepo.deliveries_with_reports(s, delivery_ids)
        out: list[dict[str, Any]] = []
        for delivery_id in delivery_ids:
            pair = found.get(delivery_id)
            try:
                authorize(
                    principal,
                    Action.READ_DELIVERY,
                    owners=[pair[0].recipient] if pair else [],
                    thing="delivery",
                    thing_id=delivery_id,
                )
            except UnknownEntity as e:
                out.append({"id": delivery_id, "error": str(e)})
                continue
            if pair is None:  # an operator or an auditor is refused above; a party's is here
                out.append({"id": delivery_id, "error": f"no delivery {delivery_id!r}"})
                continue
            out.append(delivery_view(*pair))
        return out

    def acknowledge(self, principal: Principal, delivery_id: str, *, need_to_know: bool) -> dict[str, Any]:
        """Acknowledge receipt of a delivery, attesting need-to-know (rule 5); ledgered. Idempotent.

        Raises:
            InvalidInput: the need-to-know attestation is missing.
            NotPermitted: the role may not acknowledge.
            UnknownEntity: no such delivery, or another party's.
            StorageError: on a database failure.
        """
        authorize(principal, Action.ACK)
        if not need_to_know:
            raise InvalidInput('acknowledging a delivery attests need-to-know (rule 5): send {"need_to_know": true}')
        return self.ctx.committer.run(lambda s: self._ack(s, principal, delivery_id))

    def _ack(self, s: Tx, principal: Principal, delivery_id: str) -> Outcome[dict[str, Any]]:
        ctx = self.ctx
        d = ExchangeRepo.delivery(s, delivery_id)
        authorize(principal, Action.ACK, owners=[d.recipient] if d else [], thing="delivery", thing_id=delivery_id)
        assert d is not None  # noqa: S101 - authorize raised for a missing delivery
        ctx.require_principal(s, principal)
        if d.acked_at is None:
            now = ctx.instant(s)
            originator, report_id = split_report_key(d.report_id)
            leaf = ctx.append(
                s,
                "ack",
                now,
                {
                    "delivery": d.id,
                    "report": report_id,
                    "originator": originator,
                    "recipient": d.recipient,
                    "need_to_know": True,
                },
                parties=[d.recipient, originator],
            )
            values = {"state": DeliveryState.ACKNOWLEDGED, "acked_at": now, "ack_leaf_index": leaf}
            ExchangeRepo.update(s, "deliveries", {"id": d.id}, values)
            d.acked_at, d.ack_leaf_index, d.state = now, leaf, DeliveryState.ACKNOWLEDGED
        return Outcome(
            {
                "id": d.id,
                "state": d.state,
                "acked_at": utc_iso(d.acked_at),
                "leaf_index": d.ack_leaf_index,
            }
        )

    # --- inbox -----------------------------------------------------------------------------

    def inbox(self, principal: Principal, **options: Any) -> tuple[list[dict[str, Any]], int]:
        """:meth:`inbox_page` (same options and errors) without the newest item's sequence."""
        items, last, _head = self.inbox_page(principal, **options)
        return items, last

    def inbox_page(
        self,
        principal: Principal,
        *,
        after: int = 0,
        limit: int = 100,
        states: bool = True,
        deliveries: bool = False,
    ) -> tuple[list[dict[str, Any]], int, int]:
        """Up to ``limit`` of the caller's inbox items after sequence ``after``, the sequence to
        continue from, and the sequence of the caller's newest item in the same snapshot (0 if
        none): a reader whose cursor is past it holds a cursor this exchange never gave it (its
        database was restored from an older copy, or another exchange answers). ``states``
        adds each delivery's current state (a stream leaves it out: its items are new).
        ``deliveries`` adds to each delivery item, under ``"document"``, the delivery as
        :meth:`delivery` serves it, read in the same transaction: a recipient reads a page and
        what it needs to open it in one request (at most :data:`MAX_DELIVERIES` items then).

        Raises:
            NotPermitted: the principal is not a party, or (``deliveries``) may not read them.
            InvalidInput: a bad cursor or limit.
            StorageError: on a database failure.
        """
        authorize(principal, Action.READ_INBOX)
        assert principal.party is not None  # noqa: S101 - only parties may read an inbox
        if deliveries:
            authorize(principal, Action.READ_DELIVERY)
        most = MAX_DELIVERIES if deliveries else 1000
        if after < 0 or not 1 <= limit <= most:
            raise InvalidInput(
                f"cursor must be ≥ 0 and limit between 1 and {most}"
                + (" when the deliveries come with the page" if deliveries else "")
            )
        with self.ctx.store.reading() as s:
            items, last = self._inbox_in(s, principal, after, limit, states=states, deliveries=deliveries)
            return items, last, ExchangeRepo.inbox_head(s, principal.party)

    @staticmethod
    def _inbox_in(
        s: Tx, principal: Principal, after: int, limit: int, *, states: bool, deliveries: bool
    ) -> tuple[list[dict[str, Any]], int]:
        """:meth:`inbox` read in ``s`` (the caller authorized it)."""
        assert principal.party is not None  # noqa: S101 - only parties may read an inbox
        events = ExchangeRepo.inbox(s, principal.party, after, limit)
        wanted = [e.ref for e in events if e.kind == "delivery"] if states or deliveries else []
        if deliveries:
            found = ExchangeRepo.deliveries_with_reports(s, wanted)
            current = {ref: str(pair[0].state) for ref, pair in found.items()}
        else:
            found, current = {}, ExchangeRepo.delivery_states(s, wanted)
        items = []
        for e in events:
            item = {"seq": e.seq, **e.body}
            if e.ref in current and states:
                item["state"] = current[e.ref]
            pair = found.get(e.ref) if e.kind == "delivery" else None
            if pair is not None and pair[0].recipient == principal.party:
                item["document"] = delivery_view(*pair)
            items.append(item)
        return items, (events[-1].seq if events else after)

    async def follow(
        self, principal: Principal, *, after: int, subscription: Subscription, deliveries: bool = False
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The caller's inbox items after ``after``, then the new ones as they are committed, for
        as long as the caller's token holds: the token is checked before every read, so a
        revocation (by any process) ends the stream within ``stream_poll_seconds`` (1 s). Each
        read's items come as one list, in inbox order (never empty). ``deliveries``: each
        delivery item carries its delivery, as :meth:`inbox` gives it.

        Raises:
            StorageError: on a database failure.
        """
        authorize(principal, Action.READ_INBOX)
        if deliveries:
            authorize(principal, Action.READ_DELIVERY)
        most = MAX_DELIVERIES if deliveries else 500
        try:
            while True:
                # Read on the event loop itself: one indexed query, cheaper than a hop to a
                # worker thread, and the item goes out as soon as the loop gets to it. The
                # token is read in the same transaction as the items: one snapshot for both.
                with self.ctx.store.reading() as s:
                    if not ExchangeRepo.principal_active(s, principal.id):
                        return
                    items, after = self._inbox_in(s, principal, after, most, states=False, deliveries=deliveries)
                subscription.seen = after
                if items:
                    yield items
                if len(items) < most:
                    await subscription.wait(self.ctx.config.stream_poll_seconds)
        finally:
            subscription.close()

    def stream_start(self, principal: Principal, resume: int | None, *, deliveries: bool = False) -> int:
        """Where a new event stream of the caller's inbox starts: after ``resume`` if given,
        else after the newest item now (the stream then carries only new items).

        Raises:
            NotPermitted: the principal is not a party, or (``deliveries``) may not read them.
            StorageError: on a database failure.
        """
        authorize(principal, Action.READ_INBOX)
        if deliveries:
            authorize(principal, Action.READ_DELIVERY)
        if resume is not None:
            return resume
        with self.ctx.store.reading() as s:
            return ExchangeRepo.last_inbox_seq(s)

    def stats(self, principal: Principal) -> dict[str, Any]:
        """Exchange counts for auditors and operators (no payload, no key, no report content).

        Raises:
            NotPermitted: for a party.
            StorageError: on a database failure.
        """
        authorize(principal, Action.READ_STATS)
        with self.ctx.store.reading() as s:
            return ExchangeRepo.counts(s)
