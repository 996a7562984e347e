"""Build the domain :class:`~gsomia.domain.record.Record` from a schema-valid scenario document.

Every cross-reference (parties, agreements, levels, topics, events) and every calendar and
lifecycle rule is checked here, and every problem is collected with its path, so a scenario
is loaded whole or not at all.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta

from gsomia.domain.agreements import Agreement, AgreementEvent, EventKind, NoticeRule, Reckoning, Term
from gsomia.domain.instants import local_date, parse_duration, parse_instant, zone
from gsomia.domain.markings import EquivalenceTable
from gsomia.domain.parties import CompetentAuthority, Ladder, Level, Party
from gsomia.domain.record import (
    Caveats,
    Provision,
    Question,
    Record,
    Report,
    SourceEntry,
    WhatIf,
    cited_source_ids,
    compile_network,
)
from gsomia.domain.topics import Scope, scope_entries_valid
from gsomia.errors import GsomiaError
from gsomia.scenario.model import AgreementDoc, EventDoc, PartyDoc, ProvisionDoc, QuestionDoc, ReportDoc, ScenarioDoc
from gsomia.scenario.yamlfile import Collector, Path_

__all__ = ["build_event", "build_record"]

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _instant(col: Collector, path: Path_, text: str | None, zone_name: str) -> datetime | None:
    if text is None:
        return None
    result: datetime | None = col.guard(path, lambda: parse_instant(text, zone_name))
    return result


def build_event(
    col: Collector,
    path: Path_,
    doc: EventDoc,
    agreements: dict[str, Agreement],
    default_zone: str,
    declared: frozenset[str] = frozenset(),
) -> AgreementEvent | None:
    a = agreements.get(doc.agreement)
    if a is None:
        if doc.agreement not in declared:  # a declared but invalid agreement is reported once, where it is
            col.add((*path, "agreement"), f"unknown agreement {doc.agreement!r}")
        return None
    if doc.by is not None and doc.by not in a.parties:
        col.add((*path, "by"), f"{doc.by} is not a party to {a.id}")
    zone_name = a.timezone or default_zone
    at = _instant(col, (*path, "at"), doc.at, zone_name)
    effective = _instant(col, (*path, "effective"), doc.effective, zone_name)
    if at is None:
        return None
    kind = EventKind(doc.kind)
    if kind is EventKind.REVIVAL and effective is None:
        col.add(path, "a revival must name when it takes effect (effective)")
    if kind is EventKind.NOTICE and effective is not None and a.notice is not None:
        col.add(
            (*path, "effective"),
            f"{a.id} fixes when a notice takes effect ({a.cite('termination')}); remove 'effective'",
        )
    changes: dict[str, object] = {}
    if doc.changes is not None:
        if kind is not EventKind.AMENDMENT:
            col.add((*path, "changes"), "only an amendment carries changes")
        if doc.changes.scope is not None:
            bad = scope_entries_valid(doc.changes.scope)
            if bad:
                col.add((*path, "changes", "scope"), f"malformed scope entries {bad}")
            else:
                changes["scope"] = Scope(frozenset(doc.changes.scope))
        if doc.changes.max_level is not None:
            if doc.changes.max_level not in (a.equivalence.common if a.equivalence else ()):
                col.add((*path, "changes", "max_level"), f"{doc.changes.max_level!r} is not a common level of {a.id}")
            changes["max_level"] = doc.changes.max_level
    elif kind is EventKind.AMENDMENT:
        changes = {}
    result: AgreementEvent | None = col.guard(
        path,
        lambda: AgreementEvent(
            id=doc.id,
            agreement=a.id,
            kind=kind,
            at=at,
            by=doc.by,
            effective=effective,
            note=doc.note,
            source=doc.source,
            changes=changes,
        ),
    )
    return result


def _agreement(
    col: Collector, path: Path_, doc: AgreementDoc, parties: dict[str, Party], default_zone: str
) -> Agreement | None:
    ok = _check_members(col, path, doc, parties)
    tz = doc.timezone or default_zone
    if col.guard((*path, "timezone"), lambda: zone(tz)) is None:
        ok = False
    bad_scope = scope_entries_valid(doc.scope)
    if bad_scope:
        col.add((*path, "scope"), f"malformed scope entries {bad_scope}")
        ok = False
    table = None
    if doc.equivalence or doc.common_levels:
        ok = _check_equivalence_rows(col, path, doc, parties) and ok
        if ok:
            table = col.guard(
                (*path, "equivalence"), lambda: EquivalenceTable.build(doc.common_levels, doc.equivalence)
            )
            if table is None:
                ok = False
            else:
                _check_monotone(col, (*path, "equivalence"), table, parties)
    ok = _check_limits(col, path, doc) and ok
    delay: timedelta | None = None
    if doc.relay_delay is not None:
        delay = col.guard((*path, "relay_delay"), lambda: parse_duration(doc.relay_delay or ""))
    if not ok:
        return None
    result: Agreement | None = col.guard(
        path,
        lambda: Agreement(
            id=doc.id,
            name=doc.name,
            parties=tuple(doc.parties),
            kind=doc.kind,
            legally_binding=doc.legally_binding,
            timezone=tz,
            term=Term(doc.term.years, doc.term.renewal_years) if doc.term else None,
            notice=NoticeRule(doc.notice.days, Reckoning(doc.notice.reckoning)) if doc.notice else None,
            scope=Scope(frozenset(doc.scope)),
            max_level=doc.max_level,
            equivalence=table,
            direct=doc.direct,
            hub=doc.hub,
            consent_required=doc.consent_required,
            relay_delay=delay,
            post_termination_protection=doc.post_termination_protection,
            articles=dict(doc.articles),
            source=doc.source,
        ),
    )
    return result


def _check_members(col: Collector, path: Path_, doc: AgreementDoc, parties: dict[str, Party]) -> bool:
    """Its parties are known and its relay hub is one of them (with a relay delay, rule 6);
    False if the agreement cannot be built."""
    ok = True
    for i, p in enumerate(doc.parties):
        if p not in parties:
            col.add((*path, "parties", i), f"unknown party {p!r}")
            ok = False
    if doc.hub is not None and doc.hub not in doc.parties:
        col.add((*path, "hub"), f"relay hub {doc.hub} is not a party to {doc.id}")
        ok = False
    if doc.hub is None and not doc.direct:
        col.add((*path, "direct"), "an agreement without direct exchange needs a relay hub")
    if doc.hub is not None and doc.relay_delay is None:
        col.add(
            (*path, "relay_delay"), "a relay hub needs a relay_delay (state it as an assumption if no source gives one)"
        )
    return ok


def _check_equivalence_rows(col: Collector, path: Path_, doc: AgreementDoc, parties: dict[str, Party]) -> bool:
    """Every row of the equivalence table (Art. 4) names a common level, a party to the
    agreement and levels of that party's ladder; False if one does not."""
    ok = True
    for c, by_party in doc.equivalence.items():
        if c not in doc.common_levels:
            col.add((*path, "equivalence", c), f"{c!r} is not one of common_levels {doc.common_levels}")
            ok = False
        for pid, levels in by_party.items():
            party = parties.get(pid)
            if pid not in doc.parties:
                col.add((*path, "equivalence", c, pid), f"{pid} is not a party to {doc.id}")
                ok = False
                continue
            if party is None:
                continue
            for j, lv in enumerate(levels):
                if lv not in party.ladder:
                    col.add(
                        (*path, "equivalence", c, pid, j),
                        f"level {lv!r} is not in {pid}'s ladder ({', '.join(party.ladder.names())})",
                    )
                    ok = False
    return ok


def _check_limits(col: Collector, path: Path_, doc: AgreementDoc) -> bool:
    """The maximum is a common level (rule 3) and a notice counted before the term's end has a
    term to count from (Art. 21.3); False if not."""
    ok = True
    if doc.max_level is not None and doc.max_level not in doc.common_levels:
        col.add((*path, "max_level"), f"maximum {doc.max_level!r} is not one of common_levels {doc.common_levels}")
        ok = False
    if doc.notice is not None and doc.notice.reckoning == "before_term_end" and doc.term is None:
        col.add((*path, "notice"), "a notice counted before the term's end needs a term")
        ok = False
    return ok


def _check_monotone(col: Collector, path: Path_, table: EquivalenceTable, parties: dict[str, Party]) -> None:
    """A higher national level never maps to a lower common level than a lower one."""
    for pid in sorted(table.parties()):
        party = parties.get(pid)
        if party is None:
            continue
        mapped = []
        for name in table.national_levels(pid):
            lvl = party.ladder.get(name)
            common = table.to_common(pid, name)
            if lvl is not None and common is not None:
                mapped.append((lvl.rank, table.rank(common) or 0, name, common))
        for r1, c1, n1, k1 in mapped:
            for r2, c2, n2, k2 in mapped:
                if r1 < r2 and c1 > c2:
                    col.add(path, f"{pid} {n1} ranks above {n2} but maps to {k1}, below {k2}")


def _party(col: Collector, path: Path_, doc: PartyDoc) -> Party | None:
    try:
        ladder = Ladder(tuple(Level(x.name, x.rank, x.english) for x in doc.ladder))
    except GsomiaError as e:
        col.add((*path, "ladder"), str(e))
        return None
    authority = None
    if doc.authority is not None:
        if doc.authority.cleared_to not in ladder:
            col.add((*path, "authority", "cleared_to"), f"{doc.authority.cleared_to!r} is not in {doc.id}'s ladder")
            return None
        authority = CompetentAuthority(doc.authority.name, doc.authority.cleared_to)
    try:
        return Party(id=doc.id, name=doc.name, kind=doc.kind, ladder=ladder, authority=authority, source=doc.source)
    except GsomiaError as e:
        col.add(path, str(e))
        return None


class _Ids:
    """The ids seen so far, by kind: a repeated one is a problem where it repeats."""

    def __init__(self, col: Collector) -> None:
        self._col = col
        self._seen: dict[str, set[str]] = {}

    def unique(self, kind: str, path: Path_, ident: str) -> None:
        """Note ``ident``; a problem at ``path`` if it was seen before."""
        seen = self._seen.setdefault(kind, set())
        if ident in seen:
            self._col.add(path, f"duplicate {kind} id {ident!r}")
        seen.add(ident)


def build_record(doc: ScenarioDoc, col: Collector) -> Record | None:
    """Turn a schema-valid document into a record, collecting every problem."""
    header = doc.scenario
    if col.guard(("scenario", "timezone"), lambda: zone(header.timezone)) is None:
        return None
    tz = header.timezone
    ids = _Ids(col)
    topics: dict[str, str] = {}
    for i, t in enumerate(doc.topics):
        ids.unique("topic", ("topics", i, "id"), t.id)
        topics[t.id] = t.description
    parties = _parties(col, doc, ids)
    agreements = _agreements(col, doc, parties, tz, ids)
    declared = frozenset(a.id for a in doc.agreements)
    events, event_paths = _events(col, doc, agreements, tz, declared, ids)
    reports = _reports(col, doc, parties, topics, tz, ids)
    provisions = _provisions(col, doc, agreements, declared, ids)
    window = _window(col, doc, tz)
    sources = _sources(col, doc)
    if header.question is not None:
        _check_question_names(col, header.question, declared, parties)
    if col.problems:
        return None
    record = Record(
        name=header.name,
        title=header.title,
        timezone=tz,
        parties=parties,
        agreements=agreements,
        events=tuple(events),
        topics=topics,
        reports=tuple(reports),
        provisions=tuple(provisions),
        assumptions=tuple(header.assumptions),
        window=window,
        sources=sources,
    )
    for anomaly in compile_network(record).anomalies():
        col.add(event_paths.get(anomaly.event, ("events",)), f"event {anomaly.event}: {anomaly.message}")
    if header.question is not None:
        question = _question(col, header.question, record)
        if question is not None:
            record = replace(record, question=question)
    return None if col.problems else record


def _parties(col: Collector, doc: ScenarioDoc, ids: _Ids) -> dict[str, Party]:
    parties: dict[str, Party] = {}
    for i, pdoc in enumerate(doc.parties):
        path: Path_ = ("parties", i)
        ids.unique("party", (*path, "id"), pdoc.id)
        party = _party(col, path, pdoc)
        if party is not None:
            parties[pdoc.id] = party
    return parties


def _agreements(
    col: Collector, doc: ScenarioDoc, parties: dict[str, Party], tz: str, ids: _Ids
) -> dict[str, Agreement]:
    agreements: dict[str, Agreement] = {}
    for i, a in enumerate(doc.agreements):
        ids.unique("agreement", ("agreements", i, "id"), a.id)
        built = _agreement(col, ("agreements", i), a, parties, tz)
        if built is not None:
            agreements[a.id] = built
    return agreements


def _events(
    col: Collector,
    doc: ScenarioDoc,
    agreements: dict[str, Agreement],
    tz: str,
    declared: frozenset[str],
    ids: _Ids,
) -> tuple[list[AgreementEvent], dict[str, Path_]]:
    """The recorded events, and where each is in the file (to place lifecycle anomalies)."""
    events: list[AgreementEvent] = []
    event_paths: dict[str, Path_] = {}
    for i, e in enumerate(doc.events):
        ids.unique("event", ("events", i, "id"), e.id)
        event_paths[e.id] = ("events", i)
        ev = build_event(col, ("events", i), e, agreements, tz, declared)
        if ev is not None:
            events.append(ev)
    _check_event_order(col, events, event_paths)
    return events, event_paths


def _reports(
    col: Collector, doc: ScenarioDoc, parties: dict[str, Party], topics: dict[str, str], tz: str, ids: _Ids
) -> list[Report]:
    reports: list[Report] = []
    for i, r in enumerate(doc.reports):
        path: Path_ = ("reports", i)
        ids.unique("report", (*path, "id"), r.id)
        report = _report(col, path, r, parties, topics, tz)
        if report is not None:
            reports.append(report)
    return reports


def _report(
    col: Collector, path: Path_, r: ReportDoc, parties: dict[str, Party], topics: dict[str, str], tz: str
) -> Report | None:
    """A past report: its originator, level (in the originator's ladder), topic, recipients
    and REL TO parties must be known (rule 7: nothing on a guess)."""
    orig = parties.get(r.originator)
    if orig is None:
        col.add((*path, "originator"), f"unknown party {r.originator!r}")
        return None
    if r.level not in orig.ladder:
        col.add((*path, "level"), f"{r.level!r} is not a level of {r.originator} ({', '.join(orig.ladder.names())})")
    if topics and r.topic not in topics:
        col.add((*path, "topic"), f"topic {r.topic!r} is not in the topic catalogue")
    for j, rcpt in enumerate(r.recipients or []):
        if rcpt not in parties:
            col.add((*path, "recipients", j), f"unknown party {rcpt!r}")
    cav = r.caveats or None
    for j, rel in enumerate((cav.rel_to or []) if cav else []):
        if rel not in parties:
            col.add((*path, "caveats", "rel_to", j), f"unknown party {rel!r}")
    created = _instant(col, (*path, "created"), r.created, tz)
    if created is None:
        return None
    caveats = Caveats(
        rel_to=frozenset(cav.rel_to) if cav and cav.rel_to is not None else None,
        noforn=bool(cav and cav.noforn),
        orcon=bool(cav and cav.orcon),
    )
    return Report(
        id=r.id,
        originator=r.originator,
        topic=r.topic,
        level=r.level,
        created=created,
        title=r.title,
        caveats=caveats,
        recipients=tuple(r.recipients) if r.recipients else None,
        source=r.source,
    )


def _provisions(
    col: Collector, doc: ScenarioDoc, agreements: dict[str, Agreement], declared: frozenset[str], ids: _Ids
) -> list[Provision]:
    provisions: list[Provision] = []
    for i, pv in enumerate(doc.provisions):
        path: Path_ = ("provisions", i)
        ids.unique("provision", (*path, "id"), pv.id)
        provision = _provision(col, path, pv, agreements, declared)
        if provision is not None:
            provisions.append(provision)
    return provisions


def _provision(
    col: Collector, path: Path_, pv: ProvisionDoc, agreements: dict[str, Agreement], declared: frozenset[str]
) -> Provision | None:
    """Information provided under an agreement: one dated exchange, or a count over a period
    within one calendar year (so that statistics by year count it once)."""
    ag = agreements.get(pv.agreement)
    if ag is None:
        if pv.agreement not in declared:
            col.add((*path, "agreement"), f"unknown agreement {pv.agreement!r}")
        return None
    if pv.by is not None and pv.by not in ag.parties:
        col.add((*path, "by"), f"{pv.by} is not a party to {ag.id}")
    if (pv.date is None) == (pv.from_ is None and pv.to is None) or (
        pv.date is None and (pv.from_ is None or pv.to is None)
    ):
        col.add(path, "give either 'date' (a dated exchange) or both 'from' and 'to' (a count within a period)")
        return None
    # A bare date stands for the whole day: a period 'to: 2019-08-21' is complete
    # (and counted) from 00:00 on 22 August; an exchange 'date: 2019-08-06' from 7 August.
    last = pv.date or pv.to or ""
    start = _instant(col, (*path, "date" if pv.date else "from"), pv.date or pv.from_, ag.timezone)
    end = _instant(col, (*path, "date" if pv.date else "to"), last, ag.timezone)
    if start is None or end is None:
        return None
    if _DATE_ONLY.match(last):
        end += timedelta(days=1)
    if end < start:
        col.add(path, "the period ends before it starts")
        return None
    if (
        local_date(start, ag.timezone).year != local_date(end - timedelta(microseconds=1), ag.timezone).year
        and end != start
    ):
        col.add(path, "a counted period must fall within one calendar year")
        return None
    try:
        return Provision(
            id=pv.id,
            agreement=pv.agreement,
            count=pv.count,
            start=start,
            end=end,
            dated=pv.date is not None,
            by=pv.by,
            note=pv.note,
            source=pv.source,
        )
    except GsomiaError as e:
        col.add(path, str(e))
        return None


def _window(col: Collector, doc: ScenarioDoc, tz: str) -> tuple[datetime, datetime] | None:
    """The analysis window, if the scenario gives one."""
    window = doc.scenario.window
    if not window:
        return None
    lo = _instant(col, ("scenario", "window", "from"), window.get("from"), tz)
    hi = _instant(col, ("scenario", "window", "to"), window.get("to"), tz)
    if lo is None or hi is None:
        col.add(("scenario", "window"), "a window needs 'from' and 'to'")
    elif hi <= lo:
        col.add(("scenario", "window"), "the window must end after it starts")
    else:
        return (lo, hi)
    return None


def _check_question_names(
    col: Collector, asked: QuestionDoc, declared: frozenset[str], parties: dict[str, Party]
) -> None:
    """The question names a declared agreement and known parties."""
    if asked.agreement not in declared:
        col.add(("scenario", "question", "agreement"), f"unknown agreement {asked.agreement!r}")
    for i, pid in enumerate(asked.parties):
        if pid not in parties:
            col.add(("scenario", "question", "parties", i), f"unknown party {pid!r}")


def _sources(col: Collector, doc: ScenarioDoc) -> tuple[SourceEntry, ...]:
    """The sources list; when the scenario gives one, every source id cited by a tag anywhere
    in the file must be in it (a scenario without a list cites nothing checkable)."""
    entries: list[SourceEntry] = []
    listed: set[str] = set()
    for i, sdoc in enumerate(doc.sources):
        if sdoc.id in listed:
            col.add(("sources", i, "id"), f"duplicate source id {sdoc.id!r}")
            continue
        listed.add(sdoc.id)
        try:
            entries.append(
                SourceEntry(id=sdoc.id, title=sdoc.title, date=sdoc.date, links=tuple(sdoc.links), note=sdoc.note)
            )
        except GsomiaError as e:
            col.add(("sources", i), str(e))
    if not doc.sources:
        return ()
    data = doc.model_dump(mode="json", by_alias=True, exclude={"sources"})

    def walk(value: object, path: Path_) -> None:
        if isinstance(value, str):
            for sid in cited_source_ids(value):
                if sid not in listed:
                    col.add(path, f"the tag cites source {sid}, which is not in the sources list")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*path, key))
        elif isinstance(value, list):
            for n, item in enumerate(value):
                walk(item, (*path, n))

    walk(data, ())
    return tuple(entries)


def _question(col: Collector, doc: QuestionDoc, record: Record) -> Question | None:
    path: Path_ = ("scenario", "question")
    agreement = record.agreements[doc.agreement]  # checked in build_record
    added = []
    for i, e in enumerate(doc.whatif.add):
        ev = build_event(col, (*path, "whatif", "add", i), e, dict(record.agreements), record.timezone)
        if ev is not None:
            added.append(ev)
    known = {e.id for e in record.events}
    for i, d in enumerate(doc.whatif.drop):
        if d not in known:
            col.add((*path, "whatif", "drop", i), f"no recorded event {d!r} to drop")
    stats_at = _instant(col, (*path, "stats_at"), doc.stats_at, agreement.timezone)
    if col.problems:
        return None
    return Question(
        title=doc.title,
        agreement=doc.agreement,
        parties=tuple(doc.parties),
        whatif=WhatIf(doc.whatif.name, tuple(added), tuple(doc.whatif.drop)),
        stats_at=stats_at,
    )


def _check_event_order(col: Collector, events: list[AgreementEvent], paths: dict[str, Path_]) -> None:
    signatures: dict[str, datetime] = {}
    for e in events:
        if e.kind is EventKind.SIGNATURE:
            signatures.setdefault(e.agreement, e.at)
    for e in events:
        signed = signatures.get(e.agreement)
        if signed is not None and e.kind is not EventKind.SIGNATURE and e.at < signed:
            col.add(paths[e.id], f"event {e.id} ({e.kind}) is dated before the signature of {e.agreement}")
