"""Compare the record with and without a what-if: flows, gaps and past reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from gsomia.domain.coverage import CoverageIndex, FlowSegment
from gsomia.domain.record import Network, Report
from gsomia.domain.routing import ReleaseRequest, Route, explain


@dataclass(frozen=True, slots=True)
class FlowChange:
    """Over ``[start, end)`` the pair/topic's route differs between the two records."""

    originator: str
    recipient: str
    topic: str
    start: datetime
    end: datetime
    before: str
    before_via: str | None
    after: str
    after_via: str | None
    after_delay: timedelta
    after_agreement: str | None = None
    before_delay: timedelta = timedelta(0)

    @property
    def kind(self) -> str:
        """``stopped`` (now no route), ``rerouted`` (now a relay), ``restored`` or ``changed``."""
        if self.after == "none":
            return "stopped"
        if self.after == "relay" and self.before == "direct":
            return "rerouted"
        if self.before == "none":
            return "restored"
        return "changed"


def _route(seg: FlowSegment) -> tuple[str, str | None, timedelta]:
    """What an analyst reads of a segment's route: how, through whom, how late (a relay
    through the same hub under an arrangement with another delay is another route)."""
    return seg.route, seg.via, seg.delay


def _overlay(a: Sequence[FlowSegment], b: Sequence[FlowSegment]) -> list[FlowChange]:
    out: list[FlowChange] = []
    i = j = 0
    while i < len(a) and j < len(b):
        s = max(a[i].start, b[j].start)
        e = min(a[i].end, b[j].end)
        x, y = a[i], b[j]
        if s < e and _route(x) != _route(y):
            change = FlowChange(
                x.originator,
                x.recipient,
                x.topic,
                s,
                e,
                x.route,
                x.via,
                y.route,
                y.via,
                y.delay,
                y.agreement,
                before_delay=x.delay,
            )
            prev = out[-1] if out else None
            # one change per stretch that reads the same before and after, delays included
            if prev is not None and prev.end == s and replace(prev, start=s, end=e) == change:
                out[-1] = replace(prev, end=e)
            else:
                out.append(change)
        if a[i].end < b[j].end:
            i += 1
        elif a[i].end > b[j].end:
            j += 1
        else:
            i += 1
            j += 1
    return out


def compare_flows(
    before: CoverageIndex,
    after: CoverageIndex,
    lo: datetime,
    hi: datetime,
    pairs: Sequence[tuple[str, str]],
    topics: Sequence[str],
) -> list[FlowChange]:
    """Every interval in ``[lo, hi)`` where a pair/topic is routed differently."""
    out: list[FlowChange] = []
    for o, r in pairs:
        for t in topics:
            out.extend(_overlay(before.segments(o, r, t, lo, hi), after.segments(o, r, t, lo, hi)))
    return out


@dataclass(frozen=True, slots=True)
class ReplayedReport:
    """A past report's route to one recipient, with and without the what-if."""

    report: Report
    recipient: str
    before: Route
    after: Route

    @property
    def changed(self) -> bool:
        """True if the decision, path or marking differ."""
        b, a = self.before, self.after
        return (b.decision, b.path, b.marking) != (a.decision, a.path, a.marking)


def replay_reports(before: Network, after: Network, reports: Sequence[Report]) -> list[ReplayedReport]:
    """Re-decide every past report for each of its recipients (or every other party)."""
    out: list[ReplayedReport] = []
    parties = sorted(before.record.parties)
    for rep in reports:
        recipients = rep.recipients or tuple(p for p in parties if p != rep.originator)
        for r in recipients:
            req = ReleaseRequest(
                originator=rep.originator,
                recipient=r,
                topic=rep.topic,
                level=rep.level,
                at=rep.created,
                caveats=rep.caveats,
            )
            out.append(ReplayedReport(rep, r, explain(before, req), explain(after, req)))
    return out
