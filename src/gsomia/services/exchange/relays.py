"""Relays and the originator's consent (docs/design.md §3 rule 6; TISA para. 4).

A relay decision opens a consent request to the originator, unless a standing consent covers
it (originator, topic prefix, recipient, optionally hub, validity window; never for ORCON,
which needs consent for the very report). On grant the relay is decided again at that instant
(each leg is checked when it happens): if it is still a relay through the same hub, the hub's
delivery and the onward delivery are created, each ledgered; otherwise the relay is refused
with the reasons. A request nobody answers expires after ``consent_ttl`` of exchange time,
checked when consents are read or answered and by a periodic sweep.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from gsomia.domain.instants import format_duration, utc_iso
from gsomia.domain.record import Caveats
from gsomia.domain.routing import Decision, ReleaseRequest, Route, explain
from gsomia.domain.states import ConsentState, DeliveryPurpose, ReleaseOutcome
from gsomia.errors import Conflict, InvalidInput
from gsomia.services.analysis import presenters as views
from gsomia.services.exchange.access import Action, Principal, authorize
from gsomia.services.exchange.context import UTC_ZONE, DeliveryWrap, ExchangeContext, Pending, new_id
from gsomia.services.exchange.deliveries import add_delivery
from gsomia.services.exchange.presenters import consent_summary, decision_entry_route
from gsomia.storage.exchange import ConsentRow, ExchangeRepo, NewConsent, StandingConsentRow, SubmittedReportRow, Tx
from gsomia.storage.writer import Outcome

log = logging.getLogger(__name__)

_REASON_MAX = 2000


def release_relay(
    ctx: ExchangeContext,
    s: Tx,
    rows: Pending,
    *,
    report_id: str,
    originator: str,
    topic: str,
    route: Route,
    consent_id: str,
    hub: DeliveryWrap,
    onward: DeliveryWrap,
    at: datetime,
) -> list[dict[str, Any]]:
    """Create the hub's delivery and the onward delivery of a relay, each ledgered."""
    assert route.marking is not None  # noqa: S101 - a relay route has a marking
    assert route.legs  # noqa: S101 - and its legs
    return [
        add_delivery(
            ctx,
            s,
            rows,
            wrap=wrap,
            report_id=report_id,
            originator=originator,
            topic=topic,
            marking=marking,
            purpose=purpose,
            via=via,
            consent_id=consent_id,
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
    report_id: str,
    originator: str,
    topic: str,
    level: str,
    route: Route,
    at: datetime,
    standing: StandingConsentRow | None,
    wraps: tuple[DeliveryWrap | None, DeliveryWrap | None],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Open the consent request of a relay decision (ledgered), or grant it at once under
    ``standing`` and release the relay. Returns the consent summary and any deliveries."""
    assert route.via is not None  # noqa: S101 - relay routes name their hub
    assert route.arrangement is not None  # noqa: S101 - and their arrangement
    cid = new_id("c")
    granted = standing is not None
    expires = at + ctx.config.consent_ttl
    leaf = ctx.ledger.append(
        s,
        ctx.entry(
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
        ),
    )
    deliveries: list[dict[str, Any]] = []
    hub, onward = wraps
    if granted and hub is not None and onward is not None:
        deliveries = release_relay(
            ctx,
            s,
            rows,
            report_id=report_id,
            originator=originator,
            topic=topic,
            route=route,
            consent_id=cid,
            hub=hub,
            onward=onward,
            at=at,
        )
    row = NewConsent(
        id=cid,
        report_id=report_id,
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
    """Consent requests, their answers and expiry; standing consents."""

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

        A grant decides the relay again at this instant; if it is no longer a relay through
        the same hub, the relay is refused with the reasons (the answer says so).

        Raises:
            NotPermitted: the principal is not a party.
            UnknownEntity: no such consent request, or another party's.
            Conflict: it was already answered or has expired.
            InvalidInput: the reason is too long.
            StorageError: on a database failure.
        """
        authorize(principal, Action.ANSWER_CONSENT)
        if len(reason) > _REASON_MAX:
            raise InvalidInput(f"reason: at most {_REASON_MAX} characters")
        now = self.ctx.clock.now()
        view, conflict = self.ctx.committer.run(lambda s: self._answer(s, principal, consent_id, grant, reason, now))
        if conflict:
            raise Conflict(conflict)
        return view

    def _answer(
        self, s: Tx, principal: Principal, consent_id: str, grant: bool, reason: str, now: datetime
    ) -> Outcome[tuple[dict[str, Any], str]]:
        ctx = self.ctx
        c = ExchangeRepo.consent(s, consent_id)
        authorize(principal, Action.ANSWER_CONSENT, owners=[c.originator] if c else [], thing="consent request")
        assert c is not None  # noqa: S101 - authorize raised for a missing consent
        rows = Pending()
        if c.state == ConsentState.PENDING and c.expires_at <= now:
            self._expire(s, c)
            return rows.outcome(ctx, (consent_summary(c), f"consent request {c.id} expired at {utc_iso(c.expires_at)}"))
        if c.state != ConsentState.PENDING:
            return rows.outcome(ctx, (consent_summary(c), f"consent request {c.id} is already {c.state}"))
        report = ExchangeRepo.report(s, c.report_id)
        assert report is not None  # noqa: S101 - a consent's report is a foreign key
        action = ConsentState.GRANTED if grant else ConsentState.REFUSED
        leaf = ctx.ledger.append(
            s,
            ctx.entry(
                "consent",
                now,
                {
                    "action": action,
                    "consent": c.id,
                    "report": c.report_id,
                    "originator": c.originator,
                    "recipient": c.recipient,
                    "hub": c.hub,
                    "by": principal.id,
                    "reason": reason,
                },
            ),
        )
        c.state, c.resolved_at, c.resolved_by, c.reason, c.resolution_leaf_index = (
            action,
            now,
            principal.id,
            reason,
            leaf,
        )
        if grant:
            c.outcome = self._relay_on_grant(s, rows, c, report, now)
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
            },
        )
        ExchangeRepo.update(
            s, "decisions", {"report_id": c.report_id, "recipient": c.recipient}, {"outcome": decision_outcome}
        )
        rows.flush(s)
        return rows.outcome(ctx, (consent_summary(c, report), ""))

    def _relay_on_grant(
        self, s: Tx, rows: Pending, c: ConsentRow, report: SubmittedReportRow, now: datetime
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
        route = explain(ctx.records.network(), req)
        route_json = views.route_json(route, UTC_ZONE)
        reasons = list(route_json["reasons"])
        hub = onward = None
        if route.decision is not Decision.RELAY or route.via != c.hub:
            now_is = f"{route.decision} via {route.via}" if route.via else str(route.decision)
            reasons.append(
                {"rule": "third_party", "message": f"at consent the route is {now_is}, not a relay via {c.hub}"}
            )
        else:
            content_key = ctx.unseal(report.id, report.sealed_key)
            hub = ctx.wrap_for(c.hub, content_key)
            onward = ctx.wrap_for(c.recipient, content_key)
            for party, wrap in ((c.hub, hub), (c.recipient, onward)):
                if wrap is None:
                    reasons.append({"rule": "keys", "message": f"{party} has registered no encryption key"})
        relayed = hub is not None and onward is not None
        ctx.ledger.append(
            s,
            ctx.entry(
                "decision",
                now,
                {
                    "report": report.id,
                    "originator": report.originator,
                    "recipient": c.recipient,
                    "outcome": ReleaseOutcome.RELAYED if relayed else ReleaseOutcome.RELAY_REFUSED,
                    "consent": c.id,
                    "route": decision_entry_route({**route_json, "reasons": reasons}),
                },
            ),
        )
        if not relayed:
            return {"relayed": False, "reasons": reasons}
        assert hub is not None  # noqa: S101 - relayed means both wraps exist
        assert onward is not None  # noqa: S101
        deliveries = release_relay(
            ctx,
            s,
            rows,
            report_id=report.id,
            originator=report.originator,
            topic=report.topic,
            route=route,
            consent_id=c.id,
            hub=hub,
            onward=onward,
            at=now,
        )
        return {"relayed": True, "deliveries": [d["id"] for d in deliveries], "delay": format_duration(route.delay)}

    # --- expiry ----------------------------------------------------------------------------

    def _expire(self, s: Tx, c: ConsentRow) -> None:
        ctx = self.ctx
        reason = f"no answer within {format_duration(ctx.config.consent_ttl)}"
        leaf = ctx.ledger.append(
            s,
            ctx.entry(
                "consent",
                c.expires_at,
                {
                    "action": "expired",
                    "consent": c.id,
                    "report": c.report_id,
                    "originator": c.originator,
                    "recipient": c.recipient,
                    "hub": c.hub,
                    "reason": reason,
                },
            ),
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
            "expired",
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
        now = self.ctx.clock.now()

        def job(s: Tx) -> Outcome[int]:
            due = ExchangeRepo.due_consents(s, now, originator)
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
