"""Release decisions and routes: direct, relayed through a hub, or denied (docs/design.md §3).

Routing prefers a direct agreement; otherwise the cheapest relay (fewest hops, then least
modelled delay) through an arrangement's hub, with the originator's consent. Each leg is
checked at its own instant: the onward leg at ``at + relay delay``. Relay delay is a
scenario parameter that no source quantifies, so every relay carries it as an assumption.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from gsomia.domain.instants import format_duration
from gsomia.domain.lifecycle import BEGINNING
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
_NO_CAVEATS = Caveats()


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
    caveats: Caveats = _NO_CAVEATS


class Leg(NamedTuple):
    """One hop: ``sender`` → ``receiver`` under ``agreement`` at ``at``, with its marking."""

    sender: str
    receiver: str
    agreement: str
    at: datetime
    marking: Marking


_new = tuple.__new__
"""Builds a named tuple from all its fields at once, without its generated ``__new__``."""


class Route(NamedTuple):
    """A release decision with its path, agreements, marking, delay and reasons.

    For ``direct`` and ``relay``, ``reasons`` explains why no better route was open (e.g.
    why the direct agreement refused); for ``deny`` it lists every rule that failed.
    An immutable named tuple rather than a frozen dataclass: decisions are the hot path
    (hundreds of thousands per second), and a tuple is built several times faster.
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

    @classmethod
    def direct(cls, req: ReleaseRequest, leg: Leg) -> Route:
        """A direct release under ``leg``'s agreement, marked as that leg translates it."""
        # positional construction through tuple.__new__: the hottest line of the exchange
        return _new(
            cls,
            (
                Decision.DIRECT,
                req,
                (leg.sender, leg.receiver),
                (leg.agreement,),
                (leg,),
                None,
                None,
                False,
                False,
                leg.marking,
                ZERO,
                (),
                (),
            ),
        )

    @classmethod
    def deny(cls, req: ReleaseRequest, reasons: tuple[Reason, ...]) -> Route:
        """A denial, with every rule that failed."""
        return _new(cls, (Decision.DENY, req, (), (), (), None, None, False, False, None, ZERO, (), reasons))

    @property
    def allowed(self) -> bool:
        """True for direct or relay."""
        return self.decision is not Decision.DENY

    @property
    def verdict(self) -> Allow | Deny:
        """The rule-set face of the decision."""
        return Deny(self.reasons) if self.decision is Decision.DENY else Allow()


# --- memoised rule outcomes ----------------------------------------------------------------
#
# Every rule outcome below depends on static facts only (a segment of a timeline, a scope
# piece, a table, a party's declaration), never on the instant itself: the instant only
# selects the segment and the piece (two bisections). Outcomes are memoised per network, so
# a decision is a handful of lookups and the same Reason objects are shared by every
# decision that fails for the same cause.

_NO_DIRECT = "no-direct"


def _in_force(net: Network, aid: str, seg: int) -> Reason | None:
    key = ("r1", aid, seg)
    memo = net.memo
    if key in memo:
        return memo[key]  # type: ignore[no-any-return]
    tl = net.timelines[aid]
    out = rule_in_force(tl.agreement, tl.segments[seg])
    memo[key] = out
    return out


def _scope(net: Network, aid: str, piece: int, topic: str) -> Reason | None:
    key = ("r2", aid, piece, topic)
    memo = net.memo
    if key in memo:
        return memo[key]  # type: ignore[no-any-return]
    tl = net.timelines[aid]
    scope, _max = tl.term_piece(piece)
    out = rule_scope(tl.agreement, scope, topic)
    memo[key] = out
    return out


def _level(net: Network, aid: str, piece: int, sender: str, level: str, receiver: str) -> Marking | tuple[Reason, ...]:
    """Rules 3 and 5 for one leg: the marking, or why not."""
    key = ("r3", aid, piece, sender, level, receiver)
    memo = net.memo
    if key in memo:
        return memo[key]  # type: ignore[no-any-return]
    tl = net.timelines[aid]
    _scope_now, max_level = tl.term_piece(piece)
    marking, r3 = rule_level(tl.agreement, max_level, sender, level, receiver)
    out: Marking | tuple[Reason, ...]
    if marking is None:
        out = (r3,) if r3 is not None else ()
    else:
        r5 = rule_authority(net.record, receiver, marking.recipient_level)
        out = marking if r5 is None else (r5,)
    memo[key] = out
    return out


def _legs_between(
    net: Network, sender: str, receiver: str, topic: str, level: str, at: datetime
) -> tuple[Leg | None, list[Reason]]:
    """The first agreement under which ``sender`` may give ``level`` on ``topic`` to
    ``receiver`` at ``at`` (rules 1, 2, 3, 5); otherwise every reason it cannot."""
    candidates = net.direct.get((sender, receiver), ())
    if not candidates:
        key = (_NO_DIRECT, sender, receiver)
        reason = net.memo.get(key)
        if reason is None:
            reason = Reason(Rule.IN_FORCE, f"no agreement lets {sender} and {receiver} exchange directly")
            net.memo[key] = reason
        return None, [reason]
    reasons: list[Reason] = []
    timelines = net.timelines
    legs = net.legs
    for aid in candidates:
        tl = timelines[aid]
        seg = bisect_right(tl.starts, at) - 1
        piece = bisect_right(tl.term_starts, at) - 1 if len(tl.term_starts) > 1 else 0
        leg_key = (aid, seg, piece, topic, sender, level, receiver)
        outcome = legs.get(leg_key)
        if outcome is None:
            outcome = _leg_outcome(net, aid, seg, piece, topic, sender, level, receiver)
            legs[leg_key] = outcome
        if outcome.__class__ is Marking:
            return Leg(sender, receiver, aid, at, outcome), []
        reasons.extend(outcome)  # type: ignore[arg-type]  # not a Marking, so the reasons
    return None, reasons


def _leg_outcome(
    net: Network, aid: str, seg: int, piece: int, topic: str, sender: str, level: str, receiver: str
) -> Marking | tuple[Reason, ...]:
    """Rules 1, 2, 3 and 5 for one leg under one agreement: the marking, or every reason not."""
    r1 = _in_force(net, aid, seg)
    r2 = _scope(net, aid, piece, topic)
    lv = _level(net, aid, piece, sender, level, receiver)
    if r1 is None and r2 is None and isinstance(lv, Marking):
        return lv
    failed = [r for r in (r1, r2) if r is not None]
    if not isinstance(lv, Marking):
        failed.extend(lv)
    return tuple(failed)


@dataclass(slots=True)
class _RelayOption:
    route: Route | None
    reasons: list[Reason]


def _arrangement_refuses(
    net: Network, aid: str, first: tuple[int, int], onward: tuple[int, int], req: ReleaseRequest
) -> tuple[Reason, ...]:
    """Rules 1–3 on the arrangement itself, at both legs' segments and pieces."""
    reasons: list[Reason] = []
    for seg, piece in (first, onward) if onward != first else (first,):
        for r in (_in_force(net, aid, seg), _scope(net, aid, piece, req.topic)):
            if r is not None:
                reasons.append(r)
    if net.timelines[aid].agreement.equivalence is not None:
        lv = _level(net, aid, first[1], req.originator, req.level, req.recipient)
        if not isinstance(lv, Marking):
            reasons.extend(r for r in lv if r.rule is Rule.LEVEL)
    return _unique(reasons)


def _relay_through(net: Network, aid: str, req: ReleaseRequest, at: datetime) -> _RelayOption:
    """Try relaying ``req`` through the hub of arrangement ``aid``: the arrangement must be
    in force and cover the topic at both legs' instants, its own table must allow the level,
    the caveats must allow the hub, and each leg needs its own agreement (TISA para. 3)."""
    tl = net.timelines[aid]
    arr = tl.agreement
    hub = arr.hub
    assert hub is not None  # noqa: S101 - net.relays lists only arrangements with a hub
    delay = arr.relay_delay or ZERO
    onward = at + delay
    starts, ts = tl.starts, tl.term_starts
    s0, s1 = bisect_right(starts, at) - 1, bisect_right(starts, onward) - 1
    p0, p1 = (bisect_right(ts, at) - 1, bisect_right(ts, onward) - 1) if len(ts) > 1 else (0, 0)
    arr_key = ("arrangement", aid, s0, s1, p0, p1, req.topic, req.originator, req.level, req.recipient)
    refused = net.memo.get(arr_key)
    if refused is None:
        refused = _arrangement_refuses(net, aid, (s0, p0), (s1, p1), req)
        net.memo[arr_key] = refused
    if refused:
        # the arrangement itself refuses (not in force, topic or level outside it): its legs
        # are not examined, since no relay under it can exist
        return _RelayOption(None, list(refused))
    marking: Marking | None = None
    if arr.equivalence is not None:
        lv = _level(net, aid, p0, req.originator, req.level, req.recipient)
        marking = lv if isinstance(lv, Marking) else None
    reasons: list[Reason] = []
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
        return _RelayOption(None, list(_unique(reasons)))
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


# --- decisions memoised per pair and interval ------------------------------------------------
#
# Every rule outcome of a decision depends on the instant only through which segment and
# which scope piece of each agreement it falls in (see above). For one ordered pair, the
# agreements that can matter are known in advance: the pair's direct agreements, and for each
# relaying arrangement the arrangement itself and the agreements of both legs, the onward leg
# at ``at + relay delay``. Between two consecutive start instants of all of them (the onward
# ones moved back by the delay) every bisection gives the same index, so the whole decision is
# the same but for the instant it carries: a direct decision or a denial is memoised per
# (interval, topic, level) and rebuilt around the request. Relays are rare and carry instants
# of their own (the onward leg's), so they are always decided in full.

_DIRECT = Decision.DIRECT
_DENY = Decision.DENY
_LATEST = datetime.max.replace(tzinfo=UTC)
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class _Direct:
    """A memoised direct decision: its agreement and marking, and the route's agreements."""

    agreement: str
    marking: Marking
    agreements: tuple[str]


@dataclass(frozen=True, slots=True)
class _PairPlan:
    """What a decision between one ordered pair depends on, and the decisions memoised.

    ``bounds``: every instant at which a rule outcome for the pair can change, sorted; the
    interval of an instant is ``bisect_right(bounds, at)``. They include the instants from
    which ``at + relay delay`` is past the calendar (the full path then denies, saying so).
    """

    bounds: list[datetime]
    path: tuple[str, str]
    outcomes: dict[tuple[int, str, str], _Direct | tuple[Reason, ...]]


def _plan(net: Network, originator: str, recipient: str) -> _PairPlan | None:
    """The plan for ``originator`` → ``recipient``, made once and kept in ``net.plans``;
    None for an unknown party (rule 7 denies it; such names are not worth a plan each)."""
    parties = net.record.parties
    if originator not in parties or recipient not in parties:
        return None
    timelines = net.timelines
    bounds: set[datetime] = set()

    def add(aid: str, delay: timedelta) -> None:
        tl = timelines[aid]
        if not delay:
            bounds.update(tl.starts)
            bounds.update(tl.term_starts)
            return
        # ``bisect_right(starts, at + delay)`` changes where ``at`` crosses ``start - delay``
        for start in (*tl.starts, *tl.term_starts):
            try:
                bounds.add(start - delay)
            except OverflowError:
                # out of range: ``at + delay`` is on the same side of ``start`` for every ``at``
                continue

    for aid in net.direct.get((originator, recipient), ()):
        add(aid, ZERO)
    for aid in net.relays.get((originator, recipient), ()):
        arrangement = timelines[aid].agreement
        hub = arrangement.hub
        assert hub is not None  # noqa: S101 - net.relays lists only arrangements with a hub
        delay = arrangement.relay_delay or ZERO
        add(aid, ZERO)
        add(aid, delay)
        for first in net.direct.get((originator, hub), ()):
            add(first, ZERO)
        for onward in net.direct.get((hub, recipient), ()):
            add(onward, delay)
        # from this instant on (or before it, for a negative delay) the onward instant is
        # past the calendar: the full path denies, so the decisions either side differ
        try:
            bounds.add(_LATEST - delay + _TICK if delay > ZERO else BEGINNING - delay)
        except OverflowError:
            continue  # the onward instant exists for every instant, or for none
    plan = _PairPlan(bounds=sorted(bounds), path=(originator, recipient), outcomes={})
    net.plans[originator, recipient] = plan
    return plan


def _remember(plan: _PairPlan, cell: int, req: ReleaseRequest, route: Route) -> None:
    """Memoise ``route``, decided in full, for every request like ``req`` in interval ``cell``."""
    if route.decision is _DENY:
        # a rule-7 denial (unknown topic or level) is already one lookup in ``net.known``;
        # memoising it per interval too would let any string typed in a request grow the plan
        if route.reasons and route.reasons[0].rule is Rule.KNOWN:
            return
        plan.outcomes[cell, req.topic, req.level] = route.reasons
    elif route.decision is _DIRECT:
        leg = route.legs[0]
        plan.outcomes[cell, req.topic, req.level] = _Direct(leg.agreement, leg.marking, (leg.agreement,))


def _unrestricted(caveats: Caveats) -> bool:
    """True for caveats that restrict nothing (rule 4 passes everyone, no per-report consent):
    a direct decision or a denial under them is the one without caveats."""
    return caveats.__class__ is Caveats and caveats.rel_to is None and not caveats.noforn and not caveats.orcon


def explain(net: Network, req: ReleaseRequest) -> Route:
    """Decide ``req``. Never raises: every failure becomes a reason on a ``deny`` route."""
    try:
        at = req.at
        caveats = req.caveats
        # Requests at a UTC instant without caveats (nearly all) are answered from the pair's
        # plan; the answer is the one the full path gives (the plan memoises only its answers).
        if type(at) is not datetime or at.tzinfo is not UTC:
            return _decide(net, req)
        if caveats is not _NO_CAVEATS and not _unrestricted(caveats):
            return _decide(net, req)
        plan = net.plans.get((req.originator, req.recipient)) or _plan(net, req.originator, req.recipient)
        if plan is None:
            return _decide(net, req)  # an unknown party
        cell = bisect_right(plan.bounds, at)
        out = plan.outcomes.get((cell, req.topic, req.level))
        if out is None:
            route = _decide(net, req)
            _remember(plan, cell, req, route)
            return route
        if isinstance(out, _Direct):
            marking = out.marking
            leg = _new(Leg, (req.originator, req.recipient, out.agreement, at, marking))
            # positional, as Route.direct builds it
            fields = (_DIRECT, req, plan.path, out.agreements, (leg,), None, None, False, False, marking, ZERO, (), ())
            return _new(Route, fields)
        return _new(Route, (_DENY, req, (), (), (), None, None, False, False, None, ZERO, (), out))
    except Exception as e:  # noqa: BLE001 - explain is total by contract; deny, never crash
        return Route.deny(req, (Reason(Rule.KNOWN, f"the decision could not be computed: {e}"),))


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
    at = req.at
    # instants are normally UTC already (parse_instant normalises); anything else is checked
    if at is None or (at.tzinfo is not UTC and (at.tzinfo is None or at.utcoffset() is None)):
        known = rule_known(net.record, req.originator, req.recipient, req.topic, req.level, at)
        return Route.deny(req, tuple(known))
    key = (req.originator, req.recipient, req.topic, req.level)
    known_memo = net.known.get(key)
    if known_memo is None:
        known_memo = tuple(rule_known(net.record, req.originator, req.recipient, req.topic, req.level, at))
        if _names_known(net, req):
            # kept only for names the record knows (so at most parties² × topics × levels): any
            # other string a request carries is checked again each time, never kept, or every
            # distinct name asked about would grow the network for as long as the record stands
            net.known[key] = known_memo
    if known_memo:
        return Route.deny(req, known_memo)
    pair = (req.originator, req.recipient)
    relays = net.relays.get(pair, ())
    if not relays and not net.direct.get(pair):
        # No agreement of any kind between the two: the same two reasons every time.
        return Route.deny(req, _unrelated(net, req.originator, req.recipient))
    caveats = req.caveats
    blocked_by_caveats = None if caveats is _NO_CAVEATS else rule_caveats(caveats, req.recipient)
    reasons: list[Reason] = [blocked_by_caveats] if blocked_by_caveats else []
    leg, why = _legs_between(net, req.originator, req.recipient, req.topic, req.level, at)
    if leg is not None and blocked_by_caveats is None:
        return Route.direct(req, leg)
    reasons.extend(why)
    best: Route | None = None
    for aid in relays:
        option = _relay_through(net, aid, req, at)
        if option.route is not None and (best is None or option.route.delay < best.delay):
            best = option.route
        reasons.extend(option.reasons)  # repeats are removed once, at the end
    if best is not None and blocked_by_caveats is None:
        arrangement = net.timelines[best.arrangement or ""].agreement
        return best._replace(reasons=(*_unique(reasons), rule_third_party(arrangement, best.via or "")))
    if not relays and not net.direct.get(pair):
        reasons.append(_no_relay(net, req.originator, req.recipient))
    return Route.deny(req, _unique(reasons))


def _names_known(net: Network, req: ReleaseRequest) -> bool:
    """True if the record knows both parties, the topic (from its catalogue) and the level."""
    parties = net.record.parties
    originator = parties.get(req.originator)
    return (
        originator is not None
        and req.recipient in parties
        and req.topic in net.record.topics
        and req.level in originator.ladder
    )


def _no_relay(net: Network, originator: str, recipient: str) -> Reason:
    key = ("no-relay", originator, recipient)
    reason: Reason | None = net.memo.get(key)
    if reason is None:
        reason = Reason(Rule.THIRD_PARTY, f"no arrangement relays between {originator} and {recipient}")
        net.memo[key] = reason
    return reason


def _unrelated(net: Network, originator: str, recipient: str) -> tuple[Reason, ...]:
    """Why two parties with no agreement and no relaying arrangement between them cannot
    exchange at all (what the general path would find, computed once per pair)."""
    key = ("unrelated", originator, recipient)
    reasons: tuple[Reason, ...] | None = net.memo.get(key)
    if reasons is None:
        _leg, why = _legs_between(net, originator, recipient, "", "", datetime.min.replace(tzinfo=UTC))
        reasons = _unique([*why, _no_relay(net, originator, recipient)])
        net.memo[key] = reasons
    return reasons


def _unique(reasons: list[Reason]) -> tuple[Reason, ...]:
    """Reasons without repeats, in order. Rule outcomes are memoised, so a reason that
    recurs is the same object: identity is enough, and much cheaper than hashing values."""
    n = len(reasons)
    if n < 2:
        return tuple(reasons)
    if n == 2:
        a, b = reasons
        return (a,) if a is b else (a, b)
    out: list[Reason] = []
    for r in reasons:
        for x in out:
            if x is r:
                break
        else:
            out.append(r)
    return tuple(out)
