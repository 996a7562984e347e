"""Analysis use cases: status, routes, coverage, gaps, statistics, what-if and the impact report.

The record is read from the store once per version and compiled once; what-ifs are applied
on top in memory. Nothing here writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from gsomia.domain.coverage import (
    CoverageIndex,
    Flow,
    FlowSegment,
    Gap,
    Progress,
    coverage_at,
    gaps,
    pairs_of,
    unknowns,
)
from gsomia.domain.instants import parse_instant
from gsomia.domain.lifecycle import Status, status_at, term_ends
from gsomia.domain.record import Caveats, Network, Question, Record, WhatIf, apply_whatif, compile_network
from gsomia.domain.routing import ReleaseRequest, Route, explain
from gsomia.domain.stats import ProvisionStats, provision_stats
from gsomia.domain.traffic import TrafficImpact, TrafficRow, TrafficSelection, replay_traffic
from gsomia.domain.whatif import FlowChange, ReplayedReport, compare_flows, replay_reports
from gsomia.errors import InvalidInput, StorageError
from gsomia.scenario.loader import LoadedScenario, parse_event_spec, parse_scenario_document, parse_whatif


class RecordSource(Protocol):
    """What analysis needs from storage."""

    def version(self) -> str | None:
        """A token that changes whenever the stored record changes, or None if empty."""
        ...

    def read_document(self) -> dict[str, Any] | None:
        """The stored scenario document, or None."""
        ...

    def read_versioned_document(self) -> tuple[dict[str, Any], str] | None:
        """The stored scenario document and its version, read together, or None."""
        ...


class TrafficSource(Protocol):
    """The exchange's recorded decisions, as the traffic replay reads them."""

    def key(self, at: datetime) -> Any:
        """The stored form of ``at`` (see :class:`StoredForms`)."""
        ...

    def instant(self, key: Any) -> datetime:
        """The instant of a stored form."""
        ...

    def caveats(self, stored: Any) -> Caveats:
        """The caveats of a stored form."""
        ...

    def count(self, selection: TrafficSelection | None = None) -> int:
        """How many recorded decisions ``selection`` holds."""
        ...

    def pages(self, selection: TrafficSelection | None = None, *, page_size: int = ...) -> Iterator[list[TrafficRow]]:
        """The recorded decisions, in the order they were made, a page at a time."""
        ...


@dataclass(frozen=True, slots=True)
class TrafficReplay:
    """The exchange's recorded decisions replayed under a what-if."""

    whatif: WhatIf
    selection: TrafficSelection
    impact: TrafficImpact
    keep: int


@dataclass(frozen=True, slots=True)
class WhatIfSpec:
    """A what-if as a user gives it: a file's text, ``--add-event`` specs, ``--drop-event`` ids."""

    file_text: str | None = None
    file_name: str = ""
    add: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    name: str = ""

    @property
    def empty(self) -> bool:
        """True if it asks for nothing."""
        return self.file_text is None and not self.add and not self.drop


@dataclass(frozen=True, slots=True)
class Compiled:
    """A record and its compiled network and coverage index."""

    record: Record
    network: Network
    index: CoverageIndex
    version: str = ""
    """The stored record's version this was compiled from (empty for a what-if's record)."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """The record with and without a what-if, over a period, for some pairs and topics."""

    whatif: WhatIf
    start: datetime
    end: datetime
    pairs: tuple[tuple[str, str], ...]
    topics: tuple[str, ...]
    changes: tuple[FlowChange, ...]
    gaps_before: tuple[Gap, ...]
    gaps_after: tuple[Gap, ...]
    reports: tuple[ReplayedReport, ...]
    no_longer_apply: tuple[tuple[str, str], ...]

    @property
    def rerouted(self) -> list[FlowChange]:
        """Intervals where a direct flow becomes a relay."""
        return [c for c in self.changes if c.kind == "rerouted"]

    @property
    def stopped(self) -> list[FlowChange]:
        """Intervals where a flow has no route any more."""
        return [c for c in self.changes if c.kind == "stopped"]

    @property
    def changed_reports(self) -> list[ReplayedReport]:
        """Past reports whose route would have differed."""
        return [r for r in self.reports if r.changed]


@dataclass(frozen=True, slots=True)
class ImpactReport:
    """Everything ``gsomia report`` shows, computed from the record."""

    record: Record
    question: Question
    timeline: tuple[Status, ...]
    deadlines: tuple[tuple[datetime, Any], ...]
    stats_then: ProvisionStats | None
    stats_now: ProvisionStats
    whatif: Comparison
    recorded_gaps: tuple[Gap, ...]
    assumptions: tuple[str, ...]
    generated_at: datetime
    database: str = ""
    notes: tuple[str, ...] = field(default=())


class AnalysisService:
    """Read-side use cases over the stored record."""

    def __init__(
        self,
        source: RecordSource,
        *,
        clock: Callable[[], datetime],
        database: str = "",
        traffic: TrafficSource | None = None,
    ) -> None:
        self._source = source
        self._traffic = traffic
        self._clock = clock
        self.database = database
        self._lock = threading.Lock()
        self._cached: tuple[str, Compiled] | None = None

    # --- the record ------------------------------------------------------------------------

    def _load(self) -> LoadedScenario:
        doc = self._source.read_document()
        if doc is None:
            raise StorageError("no scenario is loaded: run 'gsomia scenario load japan-korea-2019' (or 'make demo')")
        return parse_scenario_document(doc)

    def compiled(self) -> Compiled:
        """The current record, compiled (cached until the stored record changes).

        Raises:
            StorageError: if no scenario is loaded or the database fails.
        """
        token = self._source.version()
        with self._lock:
            if self._cached is not None and token is not None and self._cached[0] == token:
                return self._cached[1]
            # The document and its version in one read: a change committed meanwhile is either
            # in both or in neither, so the cache never labels a record with another's version.
            found = self._source.read_versioned_document()
            if found is None:
                raise StorageError(
                    "no scenario is loaded: run 'gsomia scenario load japan-korea-2019' (or 'make demo')"
                )
            doc, version = found
            loaded = parse_scenario_document(doc)
            net = compile_network(loaded.record)
            compiled = Compiled(loaded.record, net, CoverageIndex(net), version)
            self._cached = (version, compiled)
            return compiled

    def invalidate(self) -> None:
        """Forget the cached record (after a write)."""
        with self._lock:
            self._cached = None

    def now(self) -> datetime:
        """The service clock."""
        return self._clock()

    def instant(self, text: str | None, *, agreement: str | None = None) -> datetime:
        """Parse a user instant; a bare date is read in ``agreement``'s zone (else the
        scenario's). None means now.

        Raises:
            InvalidInput: if the text is not an instant.
        """
        if text is None:
            return self._clock()
        rec = self.compiled().record
        zone_name = rec.agreement(agreement).timezone if agreement else rec.timezone
        return parse_instant(text, zone_name)

    def whatif(self, spec: WhatIfSpec) -> WhatIf:
        """Turn a user's what-if into domain form.

        Raises:
            ValidationFailed: if a what-if file has problems.
            InvalidInput, UnknownEntity: if an ``--add-event`` or ``--drop-event`` is wrong.
        """
        record = self.compiled().record
        base = parse_whatif(spec.file_text, record, spec.file_name) if spec.file_text is not None else WhatIf("")
        added = list(base.add)
        for i, text in enumerate(spec.add, start=1):
            added.append(parse_event_spec(text, record, len(base.add) + i))
        name = spec.name or base.name or ("what-if" if (added or spec.drop or base.drop) else "")
        # an event dropped twice (a file and the command line, or a repeated parameter) is dropped once
        return WhatIf(name, tuple(added), tuple(dict.fromkeys(tuple(base.drop) + tuple(spec.drop))))

    def with_whatif(self, whatif: WhatIf) -> Compiled:
        """The record with ``whatif`` applied, compiled.

        Raises:
            InvalidInput, UnknownEntity: if the what-if cannot apply.
        """
        base = self.compiled()
        if whatif.empty:
            return base
        record = apply_whatif(base.record, whatif)
        net = compile_network(record)
        return Compiled(record, net, CoverageIndex(net))

    # --- queries -----------------------------------------------------------------------------

    def status(self, at: datetime, whatif: WhatIf | None = None, agreement: str | None = None) -> list[Status]:
        """Every agreement's status at ``at`` (or one agreement's).

        Raises:
            UnknownEntity: for an unknown agreement.
        """
        c = self.with_whatif(whatif or WhatIf(""))
        ids = [c.record.agreement(agreement).id] if agreement else sorted(c.record.agreements)
        return [status_at(c.network.timelines[a], at) for a in ids]

    def route(
        self,
        originator: str,
        recipient: str,
        *,
        topic: str,
        level: str,
        at: datetime,
        caveats: Caveats | None = None,
        whatif: WhatIf | None = None,
    ) -> Route:
        """Decide one release (never raises for a refusal: the route says deny and why)."""
        c = self.with_whatif(whatif or WhatIf(""))
        req = ReleaseRequest(
            originator=originator, recipient=recipient, topic=topic, level=level, at=at, caveats=caveats or Caveats()
        )
        return explain(c.network, req)

    def _pairs(self, record: Record, pair: str | None, parties: Sequence[str] | None = None) -> list[tuple[str, str]]:
        if pair:
            parts = pair.replace("->", ",").replace(">", ",").split(",")
            if len(parts) != 2:
                raise InvalidInput(f"--pair {pair!r}: use ORIGINATOR,RECIPIENT such as JPN,KOR")
            o, r = (record.party(p.strip().upper()).id for p in parts)
            if o == r:
                raise InvalidInput("--pair needs two different parties")
            return [(o, r)]
        return pairs_of(parties or [p for p, v in record.parties.items() if v.ladder])

    def _topics(self, record: Record, topic: str | None) -> list[str]:
        if topic is None:
            if not record.topics:
                raise InvalidInput("this scenario has no topic catalogue: give --topic")
            return sorted(record.topics)
        return [record.topic(topic)]

    def resolve(self, kind: str, typed: str, *, party: str | None = None) -> str:
        """The id a user means by ``typed``: a ``party`` (its id or an alias, in any case), an
        ``agreement`` or a ``topic`` (in any case), or a ``level`` of ``party``'s ladder (its
        national or English name).

        Raises:
            UnknownEntity: if nothing is known by that name (the message names the closest).
            InvalidInput: for an unknown kind.
        """
        rec = self.compiled().record
        if kind == "party":
            return rec.party(typed).id
        if kind == "agreement":
            return rec.agreement(typed).id
        if kind == "topic":
            return rec.topic(typed)
        if kind == "level" and party is not None:
            return rec.level(party, typed)
        raise InvalidInput(f"cannot resolve a {kind}")

    def pair_count(self, pair: str | None = None) -> int:
        """How many ordered pairs a pair-level query will visit (for progress bars)."""
        return len(self._pairs(self.compiled().record, pair))

    def flow_count(
        self, *, pair: str | None = None, parties: Sequence[str] | None = None, topic: str | None = None
    ) -> int:
        """How many flows (ordered pairs × topics) a coverage, gaps, unknowns or what-if query
        over these visits (a what-if adds no party or topic, so the record's count holds).

        Raises:
            UnknownEntity: for an unknown party or topic.
            InvalidInput: for a malformed pair, or a scenario without topics and no topic.
        """
        rec = self.compiled().record
        chosen = list(dict.fromkeys(rec.party(p).id for p in parties)) if parties else None
        return len(self._pairs(rec, pair, chosen)) * len(self._topics(rec, topic))

    def coverage(
        self,
        at: datetime,
        *,
        topic: str | None = None,
        pair: str | None = None,
        whatif: WhatIf | None = None,
        progress: Progress | None = None,
        parties: Sequence[str] | None = None,
    ) -> list[Flow]:
        """Coverage of every ordered pair × topic at ``at`` (among ``parties`` when given).

        Raises:
            UnknownEntity: for an unknown topic or party.
        """
        c = self.with_whatif(whatif or WhatIf(""))
        chosen = list(dict.fromkeys(c.record.party(p).id for p in parties)) if parties else None
        pairs = self._pairs(c.record, pair, chosen)
        return coverage_at(c.index, at, pairs, self._topics(c.record, topic), progress)

    def window(self) -> tuple[datetime, datetime]:
        """The scenario's analysis window (default period for gaps and reports).

        Raises:
            InvalidInput: if the scenario defines none.
        """
        rec = self.compiled().record
        if rec.window is None:
            raise InvalidInput("this scenario defines no analysis window: give --from and --to")
        return rec.window

    def gaps(
        self,
        start: datetime,
        end: datetime,
        *,
        topic: str | None = None,
        pair: str | None = None,
        whatif: WhatIf | None = None,
        progress: Progress | None = None,
    ) -> list[Gap]:
        """Every interval in ``[start, end)`` with no route.

        Raises:
            InvalidInput: if the period is empty.
        """
        if end <= start:
            raise InvalidInput("--to must be after --from")
        c = self.with_whatif(whatif or WhatIf(""))
        return gaps(c.index, start, end, self._pairs(c.record, pair), self._topics(c.record, topic), progress)

    def unknowns(
        self,
        start: datetime,
        end: datetime,
        *,
        topic: str | None = None,
        pair: str | None = None,
        parties: Sequence[str] | None = None,
        whatif: WhatIf | None = None,
    ) -> list[FlowSegment]:
        """Every interval in ``[start, end)`` whose coverage is unknown (an agreement's entry
        into force is not recorded): not gaps, listed apart from them.

        Raises:
            InvalidInput: if the period is empty.
            UnknownEntity: for an unknown topic or party.
        """
        if end <= start:
            raise InvalidInput("--to must be after --from")
        c = self.with_whatif(whatif or WhatIf(""))
        chosen = list(dict.fromkeys(c.record.party(p).id for p in parties)) if parties else None
        return unknowns(c.index, start, end, self._pairs(c.record, pair, chosen), self._topics(c.record, topic))

    def stats(self, agreement: str | None, at: datetime) -> list[ProvisionStats]:
        """Provisions by year under ``agreement`` (or every agreement with any), as known at ``at``.

        Raises:
            UnknownEntity: for an unknown agreement.
        """
        c = self.compiled()
        rec = c.record
        ids = [rec.agreement(agreement).id] if agreement is not None else sorted({p.agreement for p in rec.provisions})
        out = []
        for aid in ids:
            tl = c.network.timelines[aid]
            out.append(provision_stats(aid, rec.provisions, at, tl.agreement.timezone, in_force_from=tl.entry))
        return out

    def compare(
        self,
        whatif: WhatIf,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        parties: Sequence[str] | None = None,
        topic: str | None = None,
    ) -> Comparison:
        """The record with and without ``whatif``.

        Raises:
            InvalidInput: the what-if cannot apply, or the period is half given or empty.
            UnknownEntity: a party, topic or event of the what-if is unknown.
        """
        if (start is None) != (end is None):
            raise InvalidInput("give both --from and --to, or neither (the scenario's window)")
        if start is not None and end is not None and end <= start:
            raise InvalidInput("--to must be after --from")
        base = self.compiled()
        # as a user types them (aliases, any case); an unknown party is an error, not a pair
        # of strangers between whom nothing changes
        parties = list(dict.fromkeys(base.record.party(p).id for p in parties)) if parties else None
        alt = self.with_whatif(whatif)
        lo, hi = (start, end) if start and end else self.window()
        pairs = self._pairs(base.record, None, parties)
        topics = self._topics(base.record, topic)
        changes = compare_flows(base.index, alt.index, lo, hi, pairs, topics)
        before = gaps(base.index, lo, hi, pairs, topics)
        after = gaps(alt.index, lo, hi, pairs, topics)
        selected = [r for r in base.record.reports if not parties or r.originator in parties]
        replayed = replay_reports(base.network, alt.network, selected)
        if parties:
            replayed = [r for r in replayed if r.recipient in parties]
        dropped = {a.event for a in base.network.anomalies()}
        stale = tuple((a.event, a.message) for a in alt.network.anomalies() if a.event not in dropped)
        return Comparison(
            whatif,
            lo,
            hi,
            tuple(pairs),
            tuple(topics),
            tuple(changes),
            tuple(before),
            tuple(after),
            tuple(replayed),
            stale,
        )

    def traffic_selection(
        self,
        *,
        parties: Sequence[str] | None = None,
        topic: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> TrafficSelection:
        """Which recorded decisions a traffic replay reads: parties and the topic as a user
        types them (an alias, any case), selected by the ids the exchange records.

        Raises:
            UnknownEntity: for an unknown party or topic.
            InvalidInput: if the period is empty.
        """
        rec = self.compiled().record
        chosen = tuple(dict.fromkeys(rec.party(p).id for p in parties)) if parties else None
        # the catalogue's spelling: the replay compares it with the recorded topics exactly
        canonical = self._topics(rec, topic)[0] if topic is not None else None
        if start is not None and end is not None and end <= start:
            raise InvalidInput("--to must be after --from")
        return TrafficSelection(parties=chosen, topic=canonical, start=start, end=end)

    def traffic_count(self, selection: TrafficSelection) -> int:
        """How many recorded decisions a replay of ``selection`` will read (for progress bars).

        Raises:
            StorageError: if the database fails or holds no exchange.
        """
        return self._traffic_source().count(selection)

    def traffic(
        self,
        whatif: WhatIf,
        selection: TrafficSelection | None = None,
        *,
        keep: int = 20,
        progress: Progress | None = None,
    ) -> TrafficReplay:
        """Replay every decision the exchange recorded (in ``selection``) under ``whatif``: each
        is decided again at the instant it was made and compared with what was recorded.

        Raises:
            InvalidInput, UnknownEntity: if the what-if cannot apply.
            StorageError: if the database fails.
        """
        if keep < 0:
            raise InvalidInput("keep must be 0 or more")
        source = self._traffic_source()
        base = self.compiled()
        alt = self.with_whatif(whatif)
        chosen = selection or TrafficSelection()
        impact = replay_traffic(
            base.network,
            alt.network,
            source.pages(chosen),
            selection=chosen,
            keep=keep,
            progress=progress,
            forms=source,
        )
        return TrafficReplay(whatif, chosen, impact, keep)

    def _traffic_source(self) -> TrafficSource:
        if self._traffic is None:
            raise StorageError("this database holds no exchange traffic")
        return self._traffic

    def report(self, whatif: WhatIf | None = None) -> ImpactReport:
        """The impact report of the scenario's question (or of ``whatif`` when given).

        Raises:
            InvalidInput: if the scenario has no question and no what-if is given.
        """
        c = self.compiled()
        rec = c.record
        q = rec.question
        if q is None and (whatif is None or whatif.empty):
            raise InvalidInput("this scenario asks no question: give --whatif, --add-event or --drop-event")
        if q is None:
            parties = tuple(sorted(rec.parties))[:2]
            first = sorted(rec.agreements)[0]
            q = Question(
                title=whatif.describe(rec) if whatif else "", agreement=first, parties=parties, whatif=WhatIf("")
            )
        if whatif is not None and not whatif.empty:
            q = Question(
                title=f"What if: {whatif.describe(rec)}",
                agreement=q.agreement,
                parties=q.parties,
                whatif=whatif,
                stats_at=q.stats_at,
            )
        tl = c.network.timelines[q.agreement]
        points = [e.at for e in tl.events] + [s.start for s in tl.segments[1:]]
        timeline = tuple(status_at(tl, t) for t in sorted(set(points)))
        deadlines = [(end, tl.agreement.notice_deadline(end)) for end in term_ends(tl, *self.window())]
        now = self._clock()
        stats_then = None
        if q.stats_at is not None:
            stats_then = provision_stats(
                q.agreement, rec.provisions, q.stats_at, tl.agreement.timezone, in_force_from=tl.entry
            )
        stats_now = provision_stats(q.agreement, rec.provisions, now, tl.agreement.timezone, in_force_from=tl.entry)
        comparison = self.compare(q.whatif, parties=q.parties)
        return ImpactReport(
            record=rec,
            question=q,
            timeline=timeline,
            deadlines=tuple(deadlines),
            stats_then=stats_then,
            stats_now=stats_now,
            whatif=comparison,
            recorded_gaps=comparison.gaps_before,
            assumptions=rec.assumptions,
            generated_at=now,
            database=self.database,
        )
