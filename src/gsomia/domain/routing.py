"""Release decisions and routes: direct, relayed through a hub, or denied (DESIGN §3).

Routing prefers a direct agreement; otherwise the cheapest relay (fewest hops, then least
modelled delay) through an arrangement's hub, with the originator's consent. Each leg is
checked at its own instant: the onward leg at ``at + relay delay``. Relay delay is a
scenario parameter that no source quantifies, so every relay carries it as an assumption.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from gsomia.domain.instants import format_duration
from gsomia.domain.markings import Marking
from gsomia.domain.policy import (
    Allow,
    Deny,
    Reason,
    Rule,
    rule_authority,
    rule_caveats,
    rule_in_force,
    rule_known,
    rule_level,
    rule_scope,
    rule_third_party,
)
from gsomia.domain.record import Caveats, Network
from gsomia.errors import ReleaseDenied

ZERO = timedelta(0)


class Decision(StrEnum):
    """How a report may go."""

    DIRECT = "direct"
    RELAY = "relay"
    DENY = "deny"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseRequest:
    """May ``originator``'s report (``topic``, national ``level``) go to ``recipient`` at ``at``?"""

    originator: str
    recipient: str
    topic: str
    level: str
    at: datetime | None
    caveats: Caveats = field(default_factory=Caveats)


@dataclass(frozen=True, slots=True)
class Leg:
    """One hop: ``sender`` → ``receiver`` under ``agreement`` at ``at``, with its marking."""

    sender: str
    receiver: str
    agreement: str
    at: datetime
    marking: Marking


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """A release decision with its path, agreements, marking, delay and reasons.

    For ``direct`` and ``relay``, ``reasons`` explains why no better route was open (e.g.
    why the direct agreement refused); for ``deny`` it lists every rule that failed.
    """

    decision: Decision
    request: ReleaseRequest
    path: tuple[str, ...] = ()
    agreements: tuple[str, ...] = ()
    legs: tuple[Leg, ...] = ()
    arrangement: str | None = None
    via: str | None = None
    consent_required: bool = False
    per_report_consent: bool = False
    marking: Marking | None = None
    delay: timedelta = ZERO
    assumptions: tuple[str, ...] = ()
    reasons: tuple[Reason, ...] = ()

    @property
    def allowed(self) -> bool:
        """True for direct or relay."""
        return self.decision is not Decision.DENY

    @property
    def verdict(self) -> Allow | Deny:
        """The rule-set face of the decision."""
        return Deny(self.reasons) if self.decision is Decision.DENY else Allow()


def _legs_between(
    net: Network, sender: str, receiver: str, topic: str, level: str, at: datetime
) -> tuple[Leg | None, list[Reason]]:
    """The first agreement under which ``sender`` may give ``level`` on ``topic`` to
    ``receiver`` at ``at`` (rules 1, 2, 3, 5); otherwise every reason it cannot."""
    reasons: list[Reason] = []
    candidates = net.direct.get((sender, receiver), ())
    if not candidates:
        return None, [Reason(Rule.IN_FORCE, f"no agreement lets {sender} and {receiver} exchange directly")]
    record = net.record
    for aid in candidates:
        tl = net.timelines[aid]
        failed: list[Reason] = []
        r1 = rule_in_force(tl, at)
        if r1 is not None:
            failed.append(r1)
        r2 = rule_scope(tl, topic, at)
        if r2 is not None:
            failed.append(r2)
        _scope, max_level = tl.terms_at(at)
        marking, r3 = rule_level(tl.agreement, max_level, sender, level, receiver)
        if r3 is not None:
            failed.append(r3)
        if marking is not None:
            r5 = rule_authority(record, receiver, marking.recipient_level)
            if r5 is not None:
                failed.append(r5)
        if not failed and marking is not None:
            return Leg(sender, receiver, aid, at, marking), []
        reasons.extend(failed)
    return None, reasons


@dataclass(slots=True)
class _RelayOption:
    route: Route | None
    reasons: list[Reason]


def _relay_through(net: Network, aid: str, req: ReleaseRequest, at: datetime) -> _RelayOption:
    """Try relaying ``req`` through the hub of arrangement ``aid``."""
    tl = net.timelines[aid]
    arr = tl.agreement
    hub = arr.hub
    assert hub is not None  # noqa: S101 - net.relays lists only arrangements with a hub
    delay = arr.relay_delay or ZERO
    onward = at + delay
    reasons: list[Reason] = []
    for when in (at, onward) if delay else (at,):
        for r in (rule_in_force(tl, when), rule_scope(tl, req.topic, when)):
            if r is not None and r not in reasons:
                reasons.append(r)
    _scope, max_level = tl.terms_at(at)
    marking: Marking | None = None
    if arr.equivalence is not None:
        marking, r3 = rule_level(arr, max_level, req.originator, req.level, req.recipient)
        if r3 is not None:
            reasons.append(r3)
    r4 = rule_caveats(req.caveats, hub, role="relay hub")
    if r4 is not None:
        reasons.append(r4)
    leg1, why1 = _legs_between(net, req.originator, hub, req.topic, req.level, at)
    reasons.extend(why1)
    leg2 = None
    if leg1 is not None:
        leg2, why2 = _legs_between(net, hub, req.recipient, req.topic, leg1.marking.recipient_level, onward)
        reasons.extend(why2)
    if reasons or leg1 is None or leg2 is None:
        return _RelayOption(None, reasons)
    if marking is None:
        marking = Marking(
            originator=req.originator,
            level=req.level,
            common_level=leg1.marking.common_level,
            recipient=req.recipient,
            recipient_level=leg2.marking.recipient_level,
        )
    elif marking.recipient_level != leg2.marking.recipient_level:
        reasons.append(
            Reason(
                Rule.LEVEL,
                f"{arr.id} marks it {marking.recipient_level} for {req.recipient} but "
                f"{leg2.agreement} gives {leg2.marking.recipient_level}: the tables disagree",
                arr.id,
            )
        )
        return _RelayOption(None, reasons)
    assumptions = (
        f"relay delay {format_duration(delay)} through {hub} under {arr.id} is a modelling "
        "assumption: no source quantifies it",
    )
    route = Route(
        decision=Decision.RELAY,
        request=req,
        path=(req.originator, hub, req.recipient),
        agreements=(aid, leg1.agreement, leg2.agreement),
        legs=(leg1, leg2),
        arrangement=aid,
        via=hub,
        consent_required=arr.consent_required or req.caveats.orcon,
        per_report_consent=req.caveats.orcon,
        marking=marking,
        delay=delay,
        assumptions=assumptions,
    )
    return _RelayOption(route, [])


def explain(net: Network, req: ReleaseRequest) -> Route:
    """Decide ``req``. Never raises: every failure becomes a reason on a ``deny`` route."""
    try:
        return _decide(net, req)
    except Exception as e:  # noqa: BLE001 - explain is total by contract; deny, never crash
        return Route(
            decision=Decision.DENY,
            request=req,
            reasons=(Reason(Rule.KNOWN, f"the decision could not be computed: {e}"),),
        )


def enforce(net: Network, req: ReleaseRequest) -> Route:
    """Decide ``req``; return the route if allowed.

    Raises:
        ReleaseDenied: with every reason, if no route is allowed.
    """
    route = explain(net, req)
    if route.decision is Decision.DENY:
        raise ReleaseDenied(route.reasons)
    return route


def _decide(net: Network, req: ReleaseRequest) -> Route:
    known = rule_known(net.record, req.originator, req.recipient, req.topic, req.level, req.at)
    if known:
        return Route(decision=Decision.DENY, request=req, reasons=tuple(known))
    assert req.at is not None  # noqa: S101 - rule_known denied a missing instant above
    at = req.at
    blocked_by_caveats = rule_caveats(req.caveats, req.recipient)
    reasons: list[Reason] = [blocked_by_caveats] if blocked_by_caveats else []
    leg, why = _legs_between(net, req.originator, req.recipient, req.topic, req.level, at)
    if leg is not None and blocked_by_caveats is None:
        return Route(
            decision=Decision.DIRECT,
            request=req,
            path=(req.originator, req.recipient),
            agreements=(leg.agreement,),
            legs=(leg,),
            marking=leg.marking,
        )
    reasons.extend(why)
    best: Route | None = None
    relays = net.relays.get((req.originator, req.recipient), ())
    for aid in relays:
        option = _relay_through(net, aid, req, at)
        if option.route is not None and (best is None or option.route.delay < best.delay):
            best = option.route
        reasons.extend(r for r in option.reasons if r not in reasons)
    if best is not None and blocked_by_caveats is None:
        arrangement = net.timelines[best.arrangement or ""].agreement
        return replace(best, reasons=(*reasons, rule_third_party(arrangement, best.via or "")))
    if not relays and not net.direct.get((req.originator, req.recipient)):
        reasons.append(Reason(Rule.THIRD_PARTY, f"no arrangement relays between {req.originator} and {req.recipient}"))
    return Route(decision=Decision.DENY, request=req, reasons=tuple(dict.fromkeys(reasons)))
