"""Replay the exchange's own traffic under a what-if (docs/design.md §2, "What-if").

Every release decision the exchange stored is decided again, at the instant it was made, on
the record with the what-if applied, and compared with what the exchange recorded: which
releases would have stopped, which would have been rerouted through a hub (and at what
modelled delay), which would have gone otherwise (another hub, another marking, direct
instead of relayed), and which refusals would have become releases.

Decisions are replayed in exact batches. A decision depends on the request (originator,
recipient, topic, level, caveats) and on the instant only through the segment and term piece
of each agreement's timeline that the instant, or the instant plus a relay delay, falls in
(:mod:`gsomia.domain.routing` bisects nothing else). Between two consecutive
:func:`breakpoints` every such bisection gives the same answer, so every request with the
same inputs in the same interval gets the same decision: it is computed once per batch and
counted for each. No instant is rounded.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from gsomia.domain.record import Caveats, Network
from gsomia.domain.routing import Decision, ReleaseRequest, Route, explain

ZERO = timedelta(0)

STOPPED = "stopped"
REROUTED = "rerouted"
CHANGED = "changed"
RELEASED = "released"
KINDS = (STOPPED, REROUTED, CHANGED, RELEASED)
"""How a recorded decision changes under the what-if: a release that would have been refused
(``stopped``), a direct release that would have needed a relay (``rerouted``), a release made
otherwise (``changed``: another hub, another marking, direct instead of relayed) and a refusal
that would have been a release (``released``)."""


@dataclass(frozen=True, slots=True)
class TrafficSelection:
    """Which recorded decisions to read: among ``parties`` (originator and recipient both),
    on ``topic``, decided in ``[start, end)``; None means no restriction."""

    parties: tuple[str, ...] | None = None
    topic: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    @property
    def everything(self) -> bool:
        """True if it selects every decision."""
        return self.parties is None and self.topic is None and self.start is None and self.end is None


TrafficRow = tuple[str, str, str, str, str, Any, Any, str, str]
"""One decision the exchange stored, as the replay reads it: ``(report, originator, recipient,
topic, level, caveats, decided_at, decision, outcome)``, the caveats and the instant in the
store's own form (see :class:`StoredForms`). ``report`` is the stored report key (``JPN/R-1``);
``decision`` (``direct``, ``relay`` or ``deny``) is what the exchange recorded and ``outcome``
what became of it (``delivered``, ``relayed``, ``pending_consent``, …). A plain tuple: a
million of them are made per replay."""


@dataclass(slots=True)
class TrafficGroup:
    """Recorded decisions of one pair and topic that change the same way under the what-if."""

    originator: str
    recipient: str
    topic: str
    kind: str
    before: str
    before_via: str | None
    after: str
    after_via: str | None
    after_delay: timedelta
    after_level: str | None
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    reports: list[tuple[str, datetime]] = field(default_factory=list)
    """The earliest reports (key and decision instant), in time order."""
    without_whatif: int = 0
    """How many of them today's record would already decide otherwise, with no what-if."""


@dataclass(frozen=True, slots=True)
class TrafficImpact:
    """What the what-if changes in the exchange's recorded decisions."""

    decisions: int
    """Recorded decisions replayed."""
    unchanged: int
    groups: tuple[TrafficGroup, ...]
    distinct: int
    """Distinct (request, interval) batches decided; each was decided once per record."""
    drift: int
    """Recorded decisions that today's record, with no what-if, already decides otherwise
    (an event recorded since, or an exercise's what-if): their change is not the what-if's alone."""
    first: datetime | None = None
    last: datetime | None = None

    def count(self, kind: str) -> int:
        """How many recorded decisions change in this way."""
        return sum(g.count for g in self.groups if g.kind == kind)


def breakpoints(*networks: Network) -> list[datetime]:
    """Every instant at which a decision on any of ``networks`` may change, sorted.

    A decision at ``at`` reads each timeline's segment and term piece at ``at`` and, for a
    relay, at ``at + delay``; so a segment or term start ``s`` matters at ``s`` and at ``s -
    delay`` for every relay delay.
    """
    starts: set[datetime] = set()
    delays: set[timedelta] = set()
    for net in networks:
        for tl in net.timelines.values():
            starts.update(tl.starts[1:])
            starts.update(tl.term_starts[1:])
            delay = tl.agreement.relay_delay
            if tl.agreement.hub is not None and delay:
                delays.add(delay)
    points = set(starts)
    for d in delays:
        points.update(s - d for s in starts)
    return sorted(points)


def _kind(decision: str, before: Route | None, after: Route) -> str | None:
    """How the recorded ``decision`` changes as ``after``; ``before`` is the route today's
    record gives it (None if today's record decides otherwise than the exchange did)."""
    recorded = Decision(decision)
    if recorded is Decision.DENY:
        return None if after.decision is Decision.DENY else RELEASED
    if after.decision is Decision.DENY:
        return STOPPED
    if recorded is Decision.DIRECT and after.decision is Decision.RELAY:
        return REROUTED
    if recorded is not after.decision:
        return CHANGED
    if before is not None and (before.via != after.via or _level(before) != _level(after)):
        return CHANGED
    return None


def _level(route: Route) -> str | None:
    return route.marking.recipient_level if route.marking else None


class _Batch(NamedTuple):
    """The outcome shared by every recorded decision of one batch."""

    group: _Group | None
    drifted: bool


class StoredForms(Protocol):
    """How a store gives instants and caveats: ``key`` maps an instant to the stored form,
    which orders as the instants do (so rows need no conversion), ``instant`` maps it back, and
    ``caveats`` reads stored caveats (equal caveats are stored equal)."""

    def key(self, at: datetime) -> Any:
        """The stored form of ``at``."""
        ...

    def instant(self, key: Any) -> datetime:
        """The instant of a stored form."""
        ...

    def caveats(self, stored: Any) -> Caveats:
        """The caveats of a stored form."""
        ...


class Values:
    """Rows that hold instants and :class:`Caveats` themselves."""

    def key(self, at: datetime) -> Any:
        """``at`` itself."""
        return at

    def instant(self, key: Any) -> datetime:
        """``key`` itself."""
        return key  # type: ignore[no-any-return]

    def caveats(self, stored: Any) -> Caveats:
        """``stored`` itself."""
        return stored  # type: ignore[no-any-return]


@dataclass(slots=True)
class _Group:
    """A :class:`TrafficGroup` while it is counted: instants are still keys."""

    group: TrafficGroup
    count: int = 0
    first: Any = None
    last: Any = None
    outcomes: dict[str, int] = field(default_factory=dict)
    reports: list[tuple[Any, str]] = field(default_factory=list)
    without_whatif: int = 0

    def add(self, at: Any, outcome: str, report: str, *, drifted: bool, keep: int) -> None:
        """Count one recorded decision; keep its report if it is among the ``keep`` earliest
        (trimmed in bulk, so a million decisions are not sorted one by one)."""
        self.count += 1
        if self.first is None or at < self.first:
            self.first = at
        if self.last is None or at > self.last:
            self.last = at
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if drifted:
            self.without_whatif += 1
        if keep:
            reports = self.reports
            reports.append((at, report))
            if len(reports) >= 2 * keep:
                reports.sort()
                del reports[keep:]


def replay_traffic(
    recorded: Network,
    whatif: Network,
    pages: Iterable[Sequence[TrafficRow]],
    *,
    selection: TrafficSelection | None = None,
    keep: int = 20,
    progress: Callable[[int], None] | None = None,
    forms: StoredForms | None = None,
) -> TrafficImpact:
    """Decide every recorded decision again on ``whatif`` and compare with what was recorded.

    Args:
        recorded: today's record, compiled (to tell the what-if's changes from the record's).
        whatif: the record with the what-if applied, compiled.
        pages: the stored decisions, page by page, in any order.
        selection: only the decisions it selects are replayed (the others are read past).
        keep: how many report keys to keep per group for drill-down (the earliest).
        progress: called with the number of decisions of each page once it is replayed.
        forms: how the rows hold instants and caveats (default: as values).
    """
    keys = forms or Values()
    points = [keys.key(p) for p in breakpoints(recorded, whatif)]
    sel = selection or TrafficSelection()
    parties = frozenset(sel.parties) if sel.parties is not None else None
    topic = sel.topic
    lo = keys.key(sel.start) if sel.start is not None else None
    hi = keys.key(sel.end) if sel.end is not None else None
    filtered = not sel.everything
    batches: dict[tuple[object, ...], _Batch] = {}
    groups: dict[tuple[object, ...], _Group] = {}
    total = unchanged = drift = 0
    first: Any = None
    last: Any = None
    for page in pages:
        for row in page:
            report, originator, recipient, topic_, level, cav, at, decision, outcome = row
            if filtered and (
                (parties is not None and (originator not in parties or recipient not in parties))
                or (topic is not None and topic_ != topic)
                or (lo is not None and at < lo)
                or (hi is not None and at >= hi)
            ):
                continue
            total += 1
            first = at if first is None or at < first else first
            last = at if last is None or at > last else last
            key = (originator, recipient, topic_, level, cav, decision, bisect_right(points, at))
            batch = batches.get(key)
            if batch is None:
                req = ReleaseRequest(
                    originator=originator,
                    recipient=recipient,
                    topic=topic_,
                    level=level,
                    at=keys.instant(at),
                    caveats=keys.caveats(cav),
                )
                batch = _decide(recorded, whatif, req, decision, groups)
                batches[key] = batch
            if batch.drifted:
                drift += 1
            g = batch.group
            if g is None:
                unchanged += 1
                continue
            g.add(at, outcome, report, drifted=batch.drifted, keep=keep)
        if progress is not None:
            progress(len(page))
    done = [_finish(g, keep, keys) for g in groups.values() if g.count]
    done.sort(key=lambda g: (g.originator, g.recipient, g.topic, KINDS.index(g.kind), -g.count))
    return TrafficImpact(
        decisions=total,
        unchanged=unchanged,
        groups=tuple(done),
        distinct=len(batches),
        drift=drift,
        first=keys.instant(first) if first is not None else None,
        last=keys.instant(last) if last is not None else None,
    )


def _finish(g: _Group, keep: int, keys: StoredForms) -> TrafficGroup:
    g.reports.sort()
    return replace(
        g.group,
        count=g.count,
        first=keys.instant(g.first),
        last=keys.instant(g.last),
        outcomes=dict(g.outcomes),
        reports=[(report, keys.instant(at)) for at, report in g.reports[:keep]],
        without_whatif=g.without_whatif,
    )


def _decide(
    recorded: Network, whatif: Network, req: ReleaseRequest, decision: str, groups: dict[tuple[object, ...], _Group]
) -> _Batch:
    """Decide one batch on both records and find (or open) the group it counts in."""
    after = explain(whatif, req)
    today = explain(recorded, req)
    drifted = today.decision is not Decision(decision)
    before = None if drifted else today
    kind = _kind(decision, before, after)
    if kind is None:
        return _Batch(None, drifted)
    after_level = _level(after)
    before_via = before.via if before is not None else None
    gkey = (
        req.originator,
        req.recipient,
        req.topic,
        kind,
        decision,
        before_via,
        str(after.decision),
        after.via,
        after.delay,
        after_level,
    )
    g = groups.get(gkey)
    if g is None:
        g = _Group(
            TrafficGroup(
                originator=req.originator,
                recipient=req.recipient,
                topic=req.topic,
                kind=kind,
                before=decision,
                before_via=before_via,
                after=str(after.decision),
                after_via=after.via,
                after_delay=after.delay,
                after_level=after_level,
            )
        )
        groups[gkey] = g
    return _Batch(g, drifted)
