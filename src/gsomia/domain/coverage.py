"""Coverage at an instant and gaps over a period, as exact intervals (docs/design.md §2).

Coverage asks, for an ordered pair of parties and a topic, whether *some* classified
level of that topic can flow: directly, relayed through a hub (with its modelled delay),
or not at all. ``route`` answers for one given level; a pair is covered directly exactly
when some level of the originator's ladder is released directly.

A fourth answer, ``unknown``, is not a gap: the pair has no route in the record only
because an agreement between them that would carry the topic has no recorded entry into
force (see :attr:`~gsomia.domain.lifecycle.Timeline.unknown_from`). The record is silent
there, so no gap is claimed; releases are still denied (rule 7).

Gaps are computed from the instants at which agreements change state (and those instants
shifted back by a relay's delay, since the onward leg is checked later), never by sampling:
every agreement contributes the half-open windows during which it is in force, split where
an amendment changes its scope or maximum level; flows are unions and intersections of
those windows.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gsomia.domain.lifecycle import BEGINNING
from gsomia.domain.record import Network
from gsomia.domain.topics import Scope

FOREVER = datetime.max.replace(tzinfo=UTC)
ZERO = timedelta(0)

Interval = tuple[datetime, datetime]


# --- interval algebra on sorted, disjoint, half-open intervals -------------------------


def union(*sets: Sequence[Interval]) -> list[Interval]:
    """Union of interval lists."""
    items = sorted(iv for s in sets for iv in s if iv[0] < iv[1])
    out: list[Interval] = []
    for s, e in items:
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Intersection of two sorted disjoint interval lists."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        s = max(a[i][0], b[j][0])
        e = min(a[i][1], b[j][1])
        if s < e:
            out.append((s, e))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def earlier(a: Sequence[Interval], delta: timedelta) -> list[Interval]:
    """``{t : t + delta ∈ a}``: the instants whose onward leg, ``delta`` later, falls in ``a``."""
    if not delta:
        return list(a)
    return [(s if s == BEGINNING else s - delta, e if e == FOREVER else e - delta) for s, e in a]


def clip(a: Sequence[Interval], lo: datetime, hi: datetime) -> list[Interval]:
    """``a`` restricted to ``[lo, hi)``."""
    return intersect(a, [(lo, hi)])


def contains(a: Sequence[Interval], t: datetime) -> bool:
    """True if ``t`` lies in one of the intervals."""
    i = bisect.bisect_right(a, (t, FOREVER)) - 1
    return i >= 0 and a[i][0] <= t < a[i][1]


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Flow:
    """Coverage of one ordered pair and topic at an instant."""

    originator: str
    recipient: str
    topic: str
    route: str  # direct | relay | none | unknown
    via: str | None = None
    delay: timedelta = ZERO
    agreement: str | None = None


@dataclass(frozen=True, slots=True)
class FlowSegment:
    """A stretch ``[start, end)`` over which a pair/topic's coverage does not change."""

    originator: str
    recipient: str
    topic: str
    start: datetime
    end: datetime
    route: str
    via: str | None = None
    delay: timedelta = ZERO
    agreement: str | None = None


@dataclass(frozen=True, slots=True)
class Gap:
    """A pair/topic/interval with no route at all."""

    originator: str
    recipient: str
    topic: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class _Piece:
    start: datetime
    end: datetime
    scope: Scope
    max_level: str | None


class CoverageIndex:
    """Windows of every agreement, derived once from a :class:`Network`, and the
    coverage questions answered from them."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self._pieces: dict[str, list[_Piece]] = {}
        self._starts: dict[str, list[datetime]] = {}
        self._feasible: dict[tuple[str, str | None, str, str], bool] = {}
        self._direct: dict[tuple[str, str, str], list[Interval]] = {}
        self._unknown_from = {aid: tl.unknown_from for aid, tl in net.timelines.items()}
        for aid, tl in net.timelines.items():
            pieces: list[_Piece] = []
            cuts = tl.term_change_points()
            for s, e in tl.in_force_windows():
                end = e or FOREVER
                bounds = [s, *[c for c in cuts if s < c < end], end]
                for lo, hi in itertools.pairwise(bounds):
                    scope, max_level = tl.terms_at(lo)
                    pieces.append(_Piece(lo, hi, scope, max_level))
            self._pieces[aid] = pieces
            self._starts[aid] = [p.start for p in pieces]

    # -- per agreement --------------------------------------------------------------------

    def pieces(self, aid: str) -> list[tuple[datetime, datetime, Scope, str | None]]:
        """Windows in which ``aid`` is in force, each with its scope and maximum level."""
        return [(p.start, p.end, p.scope, p.max_level) for p in self._pieces[aid]]

    def feasible(self, aid: str, max_level: str | None, sender: str, receiver: str) -> bool:
        """Some level can go ``sender`` → ``receiver`` under ``aid`` at ``max_level``
        (rule 3), and the receiver's authority is cleared for it (rule 5)."""
        key = (aid, max_level, sender, receiver)
        hit = self._feasible.get(key)
        if hit is None:
            agreement = self.net.record.agreements[aid]
            table = agreement.equivalence
            party = self.net.record.parties.get(receiver)
            hit = bool(
                table is not None
                and party is not None
                and any(
                    party.cleared_for(table.from_common(c, receiver) or "")
                    for c in table.releasable_commons(sender, receiver, max_level)
                )
            )
            self._feasible[key] = hit
        return hit

    def _arrangement_feasible(self, aid: str, max_level: str | None, o: str, r: str) -> bool:
        agreement = self.net.record.agreements[aid]
        if agreement.equivalence is None:
            return True  # the legs' own tables decide
        return self.feasible(aid, max_level, o, r)

    def windows(self, aid: str, topic: str, sender: str, receiver: str, *, arrangement: bool = False) -> list[Interval]:
        """Where agreement ``aid`` is open for ``topic`` from ``sender`` to ``receiver``."""
        check = self._arrangement_feasible if arrangement else self.feasible
        return union(
            [
                (p.start, p.end)
                for p in self._pieces[aid]
                if p.scope.covers(topic) and check(aid, p.max_level, sender, receiver)
            ]
        )

    def _open_at(
        self, aid: str, at: datetime, topic: str, sender: str, receiver: str, *, arrangement: bool = False
    ) -> bool:
        starts = self._starts[aid]
        i = bisect.bisect_right(starts, at) - 1
        if i < 0:
            return False
        p = self._pieces[aid][i]
        if not (p.start <= at < p.end and p.scope.covers(topic)):
            return False
        check = self._arrangement_feasible if arrangement else self.feasible
        return check(aid, p.max_level, sender, receiver)

    # -- per pair ---------------------------------------------------------------------------

    def direct_windows(self, o: str, r: str, topic: str) -> list[Interval]:
        """Where ``o`` can give ``topic`` to ``r`` directly."""
        key = (o, r, topic)
        hit = self._direct.get(key)
        if hit is None:
            hit = union(*(self.windows(aid, topic, o, r) for aid in self.net.direct.get((o, r), ())))
            self._direct[key] = hit
        return hit

    def _unknown_agreement(self, aid: str, topic: str, o: str, r: str) -> bool:
        """``aid``'s entry into force is not recorded, and it would carry ``topic`` from
        ``o`` to ``r`` if it were in force (scope and levels as defined, no amendment can
        have applied before an entry into force)."""
        if self._unknown_from[aid] is None:
            return False
        agreement = self.net.record.agreements[aid]
        return agreement.scope.covers(topic) and self.feasible(aid, agreement.max_level, o, r)

    def unknown_windows(self, o: str, r: str, topic: str) -> list[Interval]:
        """Where ``o`` → ``r`` for ``topic`` depends on a direct agreement whose entry into
        force is not recorded (unknown from its signature on)."""
        return union(
            *(
                [(start, FOREVER)]
                for aid in self.net.direct.get((o, r), ())
                if (start := self._unknown_from[aid]) is not None and self._unknown_agreement(aid, topic, o, r)
            )
        )

    def _unknown_for(self, o: str, r: str, topic: str, at: datetime) -> str | None:
        """The agreement that makes ``o`` → ``r`` unknown at ``at`` (see :meth:`unknown_windows`)."""
        for aid in self.net.direct.get((o, r), ()):
            start = self._unknown_from[aid]
            if start is not None and at >= start and self._unknown_agreement(aid, topic, o, r):
                return aid
        return None

    def relay_windows(self, o: str, r: str, topic: str, aid: str) -> list[Interval]:
        """Where ``o`` can give ``topic`` to ``r`` through the hub of arrangement ``aid``."""
        arr = self.net.record.agreements[aid]
        hub = arr.hub
        assert hub is not None  # noqa: S101 - net.relays lists only arrangements with a hub
        delay = arr.relay_delay or ZERO
        w = self.windows(aid, topic, o, r, arrangement=True)
        if not w:
            return []
        w = intersect(w, earlier(w, delay))
        w = intersect(w, self.direct_windows(o, hub, topic))
        return intersect(w, earlier(self.direct_windows(hub, r, topic), delay))

    def flow_at(self, o: str, r: str, topic: str, at: datetime) -> Flow:
        """Coverage of ``o`` → ``r`` for ``topic`` at ``at``."""
        for aid in self.net.direct.get((o, r), ()):
            if self._open_at(aid, at, topic, o, r):
                return Flow(o, r, topic, "direct", agreement=aid)
        best: Flow | None = None
        for aid in self.net.relays.get((o, r), ()):
            arr = self.net.record.agreements[aid]
            hub = arr.hub
            assert hub is not None  # noqa: S101 - net.relays lists only arrangements with a hub
            delay = arr.relay_delay or ZERO
            onward = at + delay
            if (
                self._open_at(aid, at, topic, o, r, arrangement=True)
                and self._open_at(aid, onward, topic, o, r, arrangement=True)
                and any(self._open_at(a, at, topic, o, hub) for a in self.net.direct.get((o, hub), ()))
                and any(self._open_at(a, onward, topic, hub, r) for a in self.net.direct.get((hub, r), ()))
                and (best is None or delay < best.delay)
            ):
                best = Flow(o, r, topic, "relay", via=hub, delay=delay, agreement=aid)
        if best is not None:
            return best
        unknown = self._unknown_for(o, r, topic, at)
        if unknown is not None:
            return Flow(o, r, topic, "unknown", agreement=unknown)
        return Flow(o, r, topic, "none")

    def segments(self, o: str, r: str, topic: str, lo: datetime, hi: datetime) -> list[FlowSegment]:
        """The coverage of ``o`` → ``r`` for ``topic`` over ``[lo, hi)``, as maximal
        segments of constant route (``unknown`` where there is no route only because an
        entry into force is not recorded)."""
        direct = clip(self.direct_windows(o, r, topic), lo, hi)
        unknown = clip(self.unknown_windows(o, r, topic), lo, hi)
        relays: list[tuple[timedelta, str, str, list[Interval]]] = []
        for aid in self.net.relays.get((o, r), ()):
            w = clip(self.relay_windows(o, r, topic, aid), lo, hi)
            if w:
                arr = self.net.record.agreements[aid]
                relays.append((arr.relay_delay or ZERO, aid, arr.hub or "", w))
        if not direct and not relays and not unknown:
            return [FlowSegment(o, r, topic, lo, hi, "none")]
        relays.sort()
        cuts = {lo, hi}
        for s, e in [*direct, *unknown]:
            cuts.update((s, e))
        for *_x, w in relays:
            for s, e in w:
                cuts.update((s, e))
        points = sorted(c for c in cuts if lo <= c <= hi)
        out: list[FlowSegment] = []
        for s, e in itertools.pairwise(points):
            if contains(direct, s):
                seg = FlowSegment(o, r, topic, s, e, "direct")
            else:
                seg = FlowSegment(o, r, topic, s, e, "none")
                for delay, aid, hub, w in relays:
                    if contains(w, s):
                        seg = FlowSegment(o, r, topic, s, e, "relay", hub, delay, aid)
                        break
                else:
                    if contains(unknown, s):
                        seg = FlowSegment(o, r, topic, s, e, "unknown", agreement=self._unknown_for(o, r, topic, s))
            if out and (out[-1].route, out[-1].via, out[-1].agreement) == (seg.route, seg.via, seg.agreement):
                prev = out[-1]
                out[-1] = FlowSegment(o, r, topic, prev.start, e, prev.route, prev.via, prev.delay, prev.agreement)
            else:
                out.append(seg)
        return out


Progress = Callable[[int], None]
"""Called with the number of pairs done since the last call (for progress bars)."""

_STEP = 500


def pairs_of(parties: Iterable[str]) -> list[tuple[str, str]]:
    """Every ordered pair of distinct parties, each pair once however often a party is named
    (a list naming two parties n times each would otherwise be 2n² pairs, every flow and gap
    among them repeated n² times)."""
    ps = sorted(set(parties))
    return [(a, b) for a in ps for b in ps if a != b]


def coverage_at(
    index: CoverageIndex,
    at: datetime,
    pairs: Sequence[tuple[str, str]],
    topics: Sequence[str],
    progress: Progress | None = None,
) -> list[Flow]:
    """Coverage for every pair × topic at ``at``."""
    net = index.net
    out: list[Flow] = []
    for n, (o, r) in enumerate(pairs, start=1):
        if progress is not None and n % _STEP == 0:
            progress(_STEP)
        if (o, r) not in net.direct and (o, r) not in net.relays:
            out.extend(Flow(o, r, t, "none") for t in topics)
            continue
        out.extend(index.flow_at(o, r, t, at) for t in topics)
    return out


def gaps(
    index: CoverageIndex,
    lo: datetime,
    hi: datetime,
    pairs: Sequence[tuple[str, str]],
    topics: Sequence[str],
    progress: Progress | None = None,
) -> list[Gap]:
    """Every interval in ``[lo, hi)`` with no route, per pair × topic (an ``unknown``
    interval is not a gap: see :func:`unknowns`)."""
    net = index.net
    out: list[Gap] = []
    for n, (o, r) in enumerate(pairs, start=1):
        if progress is not None and n % _STEP == 0:
            progress(_STEP)
        if (o, r) not in net.direct and (o, r) not in net.relays:
            out.extend(Gap(o, r, t, lo, hi) for t in topics)
            continue
        for t in topics:
            out.extend(Gap(o, r, t, s.start, s.end) for s in index.segments(o, r, t, lo, hi) if s.route == "none")
    return out


def unknowns(
    index: CoverageIndex,
    lo: datetime,
    hi: datetime,
    pairs: Sequence[tuple[str, str]],
    topics: Sequence[str],
) -> list[FlowSegment]:
    """Every interval in ``[lo, hi)`` whose coverage is unknown, per pair × topic: no route
    in the record only because an agreement's entry into force is not recorded."""
    net = index.net
    out: list[FlowSegment] = []
    for o, r in pairs:
        if (o, r) not in net.direct:
            continue
        for t in topics:
            if index.unknown_windows(o, r, t):
                out.extend(s for s in index.segments(o, r, t, lo, hi) if s.route == "unknown")
    return out
