"""Relays and the originator's consent (docs/design.md §3 rule 6; TISA para. 4).

A relay decision opens a consent request to the originator, unless a standing consent covers
it (originator, topic prefix, recipient, optionally hub, validity window; never for ORCON,
which needs consent for the very report). On grant the relay is decided again inside the
writer's transaction, on the record as committed and at that transaction's instant (each leg
is checked when it happens): if it is still a relay through the same hub, the hub's delivery
and the onward delivery are created, each ledgered; otherwise the relay is refused with the
reasons. A request nobody answers expires after ``consent_ttl`` of exchange time, checked
when consents are read or answered and by a periodic sweep.

The originator's reason for an answer is its own text: the ledger holds a salted commitment
to it, never the text.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from datetime import datetime
from typing import Any

from gsomia.domain.instants import format_duration, utc_iso
from gsomia.domain.record import Caveats, Network
from gsomia.domain.routing import Decision, ReleaseRequest, Route, explain
from gsomia.domain.states import ConsentState, DeliveryPurpose, ReleaseOutcome
from gsomia.errors import Busy, Conflict, InvalidInput
from gsomia.services.analysis import presenters as views
from gsomia.services.exchange.access import Action, Principal, authorize
from gsomia.services.exchange.context import (
    UTC_ZONE,
    DeliveryWrap,
    ExchangeContext,
    Pending,
    Stale,
    attempts,
    backoff,
    new_id,
    split_report_key,
)
from gsomia.services.exchange.deliveries import add_delivery
from gsomia.services.exchange.presenters import consent_summary, decision_entry_route
from gsomia.storage.exchange import ConsentRow, ExchangeRepo, NewConsent, StandingConsentRow, SubmittedReportRow, Tx
from gsomia.storage.writer import Outcome

__all__ = ["ConsentService", "open_consent", "text_commitment"]

log = logging.getLogger(__name__)

_REASON_MAX = 2000


def text_commitment(salt: bytes, label: str, text: str) -> str:
    """A salted commitment to a free text: ``HMAC-SHA256(key=salt, label || 0x00 || UTF-8
    text)`` in hex; the label (``reason``, ``description``, ``result``, ``measures``) keeps the
    commitments to two texts under one salt apart."""
    return hmac.new(salt, label.encode("ascii") + b"\x00" + text.encode("utf-8"), hashlib.sha256).hexdigest()


def _release_relay(
    ctx: ExchangeContext,
    s: Tx,
    rows: Pending,
    *,
    report: str,
    topic: str,
    route: Route,
    consent_id: str,
    wraps: tuple[DeliveryWrap, DeliveryWrap],
    submission_leaf: int,
    at: datetime,
) -> list[dict[str, Any]]:
    """Create the hub's delivery and the onward delivery of a relay, each ledgered."""
    assert route.marking is not None  # noqa: S101 - a relay route has a marking
    assert route.legs  # noqa: S101 - and its legs
    hub, onward = wraps
    return [
        add_delivery(
            ctx,
            s,
            rows,
            wrap=wrap,
            report=report,
            topic=topic,
            marking=marking,
            purpose=purpose,
            via=via,
            consent_id=consent_id,
            submission_leaf=submission_leaf,
            at=at,
        )
        for wrap, marking, purpose, via in (
            (hub, route.legs[0].marking, DeliveryPurpose.RELAY_HUB, None),
            (onward, route.marking, DeliveryPurpose.RELAY_ONWARD, route.via),
        )
    ]


def open_consent(
    ctx: ExchangeContext,
    s: Tx,
    rows: Pending,
    *,
    report: str,
    topic: str,
    level: str,
    route: Route,
    at: datetime,
    standing: StandingConsentRow | None,
    wraps: tuple[DeliveryWrap | None, DeliveryWrap | None],
    submission_leaf: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Open the consent request of a relay decision (ledgered), or grant it at once under
    ``standing`` and release the relay. Returns the consent summary and any deliveries."""
    assert route.via is not None  # noqa: S101 - relay routes name their hub
    assert route.arrangement is not None  # noqa: S101 - and their arrangement
    originator, report_id = split_report_key(report)
    cid = new_id("c")
    granted = standing is not None
    expires = at + ctx.config.consent_ttl
    leaf = ctx.append(
        s,
        "consent",
        at,
        {
            "action": "granted" if granted else "requested",
            "consent": cid,
            "report": report_id,
            "originator": originator,
            "recipient": route.request.recipient,
            "hub": route.via,
            "arrangement": route.arrangement,
            "per_report": route.per_report_consent,
            "standing_consent": standing.id if standing else None,
            "expires_at": utc_iso(expires),
        },
        parties=[originator],
    )
    deliveries: list[dict[str, Any]] = []
    hub, onward = wraps
    if granted and hub is not None and onward is not None:
        deliveries = _release_relay(
            ctx,
            s,
            rows,
            report=report,
            topic=topic,
            route=route,
            consent_id=cid,
            wraps=(hub, onward),
            submission_leaf=submission_leaf,
            at=at,
        )
    row = NewConsent(
        id=cid,
        report_id=report,
        originator=originator,
        recipient=route.request.recipient,
        hub=route.via,
        arrangement=route.arrangement,
        per_report=route.per_report_consent,
        state=ConsentState.GRANTED if granted else ConsentState.PENDING,
        requested_at=at,
        expires_at=expires,
        resolved_at=at if granted else None,
        resolved_by=f"standing:{standing.id}" if standing else None,
        reason="standing consent" if granted else "",
        standing_id=standing.id if standing else None,
        outcome={"relayed": True, "deliveries": [d["id"] for d in deliveries]} if granted else None,
        leaf_index=leaf,
        resolution_leaf_index=leaf if granted else None,
    )
    rows.add(row)
    summary = consent_summary(row)  # the same shape as a stored one
    if not granted:
        body = {
            "type": "consent_request",
            "id": cid,
            "report": report_id,
            "recipient": route.request.recipient,
            "hub": route.via,
            "arrangement": route.arrangement,
            "topic": topic,
            "level": level,
            "per_report": route.per_report_consent,
            "requested_at": utc_iso(at),
            "expires_at": utc_iso(expires),
            "leaf_index": leaf,
        }
        rows.inbox(originator, "consent_request", cid, body, at)
    return summary, deliveries


class ConsentService:
    """Consent requests, their answers and expiry."""

    def __init__(self, ctx: ExchangeContext) -> None:
        self.ctx = ctx
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        ctx.clock.on_advance(lambda _at: self._wake.set())

    # --- reading ---------------------------------------------------------------------------

    def consents(self, principal: Principal, *, state: str | None = "pending") -> list[dict[str, Any]]:
        """The caller's consent requests (as originator), expiring any that ran out first.

        Raises:
            NotPermitted: the principal is not a party.
            InvalidInput: an unknown state.
            StorageError: on a database failure.
        """
        authorize(principal, Action.ANSWER_CONSENT)
        if state is not None and state not in tuple(ConsentState):
            raise InvalidInput("state must be pending, granted, refused or expired")
        assert principal.party is not None  # noqa: S101 - only parties answer consents
        self.expire_due(originator=principal.party)
        with self.ctx.store.reading() as s:
            rows = ExchangeRepo.consents(s, principal.party, state)
            reports = ExchangeRepo.reports(s, [c.report_id for c in rows])
            return [consent_summary(c, reports.get(c.report_id)) for c in rows]

    # --- answering -------------------------------------------------------------------------

    def answer(self, principal: Principal, consent_id: str, *, grant: bool, reason: str = "") -> dict[str, Any]:
        """Grant or refuse a consent request (by the report's originator); ledgered.

        A grant decides the relay again, inside the transaction that records it, on the record
        as committed and at that transaction's instant; if it is no longer a relay through the
        same hub, the relay is refused with the reasons (the answer says so).

        Raises:
            NotPermitted: the principal is not a party.
            NotAuthenticated: the principal's token was revoked before the commit.
            UnknownEntity: no such consent request, or another party's.
            Conflict: it was already answered or has expired.
            Busy: the record, or the keys of the hub or the recipient a grant wraps to, changed
                every time it was recorded (a few times, a moment apart); nothing was recorded.
            InvalidInput: the reason is too long.
            StorageError: on a database failure.
        """
        authorize(principal, Action.ANSWER_CONSENT)
        if len(reason) > _REASON_MAX:
            raise InvalidInput(f"reason: at most {_REASON_MAX} characters")
        for attempt in attempts():
            net, version = self.ctx.records.current()
            # read before the keys a grant wraps to: while it is the stored version nothing was
            # registered since; once it moved, the writer compares the hub's and the recipient's
            # current keys with those wrapped to, and prepares again only if theirs changed
            keys = self.ctx.identity.held_keys_version()

            def job(
                s: Tx, net: Network = net, version: str = version, keys: int = keys
            ) -> Outcome[tuple[dict[str, Any], str]]:
                return self._answer(s, principal, consent_id, grant, reason, net, version, keys_version=keys)

            try:
                view, conflict = self.ctx.committer.run(job)
            except Stale:
                time.sleep(backoff(attempt))
                continue
            if conflict:
                raise Conflict(conflict)
            return view
        raise Busy(
            "the record, or the keys of the hub or the recipient, changed every time this answer was recorded; "
            "nothing was recorded: answer again"
        )

    def _answer(
        self,
        s: Tx,
        principal: Principal,
        consent_id: str,
        grant: bool,
        reason: str,
        net: Network,
        version: str,
        *,
        keys_version: int,
    ) -> Outcome[tuple[dict[str, Any], str]]:
        ctx = self.ctx
        c = ExchangeRepo.consent(s, consent_id)
        authorize(
            principal,
            Action.ANSWER_CONSENT,
            owners=[c.originator] if c else [],
            thing="consent request",
            thing_id=consent_id,
        )
        assert c is not None  # noqa: S101 - authorize raised for a missing consent
        ctx.require_principal(s, principal)
        ctx.require_record(s, version)
        now = ctx.instant(s)
        rows = Pending()
        if c.state == ConsentState.PENDING and c.expires_at <= now:
            self._expire(s, c)
            return rows.outcome(ctx, (consent_summary(c), f"consent request {c.id} expired at {utc_iso(c.expires_at)}"))
        if c.state != ConsentState.PENDING:
            return rows.outcome(ctx, (consent_summary(c), f"consent request {c.id} is already {c.state}"))
        report = ExchangeRepo.report(s, c.report_id)
        assert report is not None  # noqa: S101 - a consent's report is a foreign key
        action = ConsentState.GRANTED if grant else ConsentState.REFUSED
        salt = secrets.token_bytes(32)
        leaf = ctx.append(
            s,
            "consent",
            now,
            {
                "action": action,
                "consent": c.id,
                "report": split_report_key(c.report_id)[1],
                "originator": c.originator,
                "recipient": c.recipient,
                "hub": c.hub,
                "by": principal.id,
                "reason_commitment": text_commitment(salt, "reason", reason),
            },
            parties=[c.originator],
        )
        c.state, c.resolved_at, c.resolved_by, c.reason = action, now, principal.id, reason
        c.resolution_leaf_index, c.reason_salt = leaf, salt
        if grant:
            c.outcome = self._relay_on_grant(s, rows, c, report, net, now, keys_version=keys_version)
            decision_outcome = ReleaseOutcome.RELAYED if c.outcome.get("relayed") else ReleaseOutcome.RELAY_REFUSED
        else:
            c.outcome = {"relayed": False, "reasons": [{"rule": "third_party", "message": "the originator refused"}]}
            decision_outcome = ReleaseOutcome.CONSENT_REFUSED
        ExchangeRepo.update(
            s,
            "consents",
            {"id": c.id},
            {
                "state": c.state,
                "resolved_at": now,
                "resolved_by": principal.id,
                "reason": reason,
                "resolution_leaf_index": leaf,
                "outcome": c.outcome,
                "reason_salt": salt,
            },
        )
        ExchangeRepo.update(
            s, "decisions", {"report_id": c.report_id, "recipient": c.recipient}, {"outcome": decision_outcome}
        )
        rows.flush(s)
        return rows.outcome(ctx, (consent_summary(c, report), ""))

    def _relay_on_grant(
        self,
        s: Tx,
        rows: Pending,
        c: ConsentRow,
        report: SubmittedReportRow,
        net: Network,
        now: datetime,
        *,
        keys_version: int,
    ) -> dict[str, Any]:
        ctx = self.ctx
        caveats = Caveats.from_json(report.caveats, f"stored caveats of report {report.id}")
        req = ReleaseRequest(
            originator=report.originator,
            recipient=c.recipient,
            topic=report.topic,
            level=report.level,
            at=now,
            caveats=caveats,
        )
        route = explain(net, req)
        route_json = views.route_json(route, UTC_ZONE)
        reasons = route_json["reasons"]
        wraps = None
        if route.decision is not Decision.RELAY or route.via != c.hub:
            now_is = f"{route.decision} via {route.via}" if route.via else str(route.decision)
            reasons.append(
                {"rule": "third_party", "message": f"at consent the route is {now_is}, not a relay via {c.hub}"}
            )
        else:
            wraps = self._wrap_relay(s, report, c, reasons, keys_version)
        ctx.append(
            s,
            "decision",
            now,
            {
                "report": split_report_key(report.id)[1],
                "originator": report.originator,
                "recipient": c.recipient,
                "outcome": ReleaseOutcome.RELAYED if wraps else ReleaseOutcome.RELAY_REFUSED,
                "consent": c.id,
                "route": decision_entry_route(route_json),
            },
            parties=[report.originator],
        )
        if wraps is None:
            return {"relayed": False, "reasons": reasons}
        deliveries = _release_relay(
            ctx,
            s,
            rows,
            report=report.id,
            topic=report.topic,
            route=route,
            consent_id=c.id,
            wraps=wraps,
            submission_leaf=report.leaf_index,
            at=now,
        )
        return {"relayed": True, "deliveries": [d["id"] for d in deliveries], "delay": format_duration(route.delay)}

    def _wrap_relay(
        self, s: Tx, report: SubmittedReportRow, c: ConsentRow, reasons: list[dict[str, str]], keys_version: int
    ) -> tuple[DeliveryWrap, DeliveryWrap] | None:
        """The content key wrapped to the hub and to the recipient, or None (with the reason)
        if either has registered no key. Wrapped to the keys this process holds, read after
        ``keys_version``: the grant goes on only if they are the hub's and the recipient's
        current keys in this transaction (never one retired meanwhile, by any process).

        Raises:
            Stale: the hub or the recipient registered other keys since they were read.
        """
        ctx = self.ctx
        content_key = ctx.unseal(report.id, report.sealed_key, version=2 if report.salt else 1)
        hub = ctx.wrap_for(c.hub, content_key)
        onward = ctx.wrap_for(c.recipient, content_key)
        used = {c.hub: hub.fingerprint if hub else None, c.recipient: onward.fingerprint if onward else None}
        ctx.require_keys(s, keys_version, used)
        for party, wrap in ((c.hub, hub), (c.recipient, onward)):
            if wrap is None:
                reasons.append({"rule": "keys", "message": f"{party} has registered no encryption key"})
        return (hub, onward) if hub is not None and onward is not None else None

    # --- expiry ----------------------------------------------------------------------------

    def _expire(self, s: Tx, c: ConsentRow) -> None:
        ctx = self.ctx
        reason = f"no answer within {format_duration(ctx.config.consent_ttl)}"
        leaf = ctx.append(
            s,
            "consent",
            ctx.instant(s),
            {
                "action": "expired",
                "consent": c.id,
                "report": split_report_key(c.report_id)[1],
                "originator": c.originator,
                "recipient": c.recipient,
                "hub": c.hub,
                "expired_at": utc_iso(c.expires_at),
                "reason": reason,
            },
            parties=[c.originator],
        )
        outcome = {"relayed": False, "reasons": [{"rule": "third_party", "message": reason}]}
        ExchangeRepo.update(
            s,
            "consents",
            {"id": c.id, "state": ConsentState.PENDING},
            {
                "state": ConsentState.EXPIRED,
                "resolved_at": c.expires_at,
                "reason": reason,
                "resolution_leaf_index": leaf,
            }
            | {"outcome": outcome},
        )
        ExchangeRepo.update(
            s,
            "decisions",
            {"report_id": c.report_id, "recipient": c.recipient},
            {"outcome": ReleaseOutcome.CONSENT_EXPIRED},
        )
        c.state, c.resolved_at, c.reason, c.resolution_leaf_index, c.outcome = (
            ConsentState.EXPIRED,
            c.expires_at,
            reason,
            leaf,
            outcome,
        )

    def expire_due(self, *, originator: str | None = None) -> int:
        """Expire the consent requests whose time ran out (all, or one originator's); ledgered.

        Raises:
            StorageError: on a database failure.
        """

        def job(s: Tx) -> Outcome[int]:
            due = ExchangeRepo.due_consents(s, self.ctx.instant(s), originator)
            for c in due:
                self._expire(s, c)
            return Outcome(len(due))

        return self.ctx.committer.run(job)

    def start_sweeper(self) -> None:
        """Expire due consents every ``sweep_seconds`` (and whenever the exercise clock moves)."""
        if self._sweeper is not None:
            return
        self._stop.clear()
        self._sweeper = threading.Thread(target=self._sweep, name="gsomia-consent-sweeper", daemon=True)
        self._sweeper.start()

    def stop_sweeper(self) -> None:
        """Stop the periodic sweep."""
        self._stop.set()
        self._wake.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=10)
            self._sweeper = None

    def _sweep(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.ctx.config.sweep_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                n = self.expire_due()
                if n:
                    log.info("expired %d consent request(s)", n)
            except Exception:  # the sweep retries on its next turn
                log.exception("the consent sweep failed")
