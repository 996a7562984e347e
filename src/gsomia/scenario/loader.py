"""Read scenario and what-if files into domain values, reporting every problem with its line.

Loading is all-or-nothing: :func:`parse_scenario` either returns a complete
:class:`~gsomia.domain.record.Record` or raises :class:`~gsomia.errors.ValidationFailed`
listing every problem found (schema, cross-references, calendar and lifecycle).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import rfc8785
import yaml
from pydantic import ValidationError

from gsomia.domain.agreements import Agreement, AgreementEvent, EventKind, NoticeRule, Reckoning, Term
from gsomia.domain.instants import local_date, parse_duration, parse_instant, zone
from gsomia.domain.markings import EquivalenceTable
from gsomia.domain.parties import CompetentAuthority, Ladder, Level, Party
from gsomia.domain.record import Caveats, Provision, Question, Record, Report, WhatIf, compile_network
from gsomia.domain.topics import Scope, scope_entries_valid
from gsomia.errors import GsomiaError, InvalidInput, Problem, ValidationFailed
from gsomia.scenario.model import AgreementDoc, EventDoc, PartyDoc, QuestionDoc, ScenarioDoc, WhatIfDoc

MAX_FILE_BYTES = 16 * 1024 * 1024
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
Path_ = tuple[str | int, ...]
_T = TypeVar("_T")


# --- YAML with line numbers ------------------------------------------------------------


_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when available


class _Loader(_Base):  # type: ignore[misc]
    """SafeLoader that keeps dates and times as strings: instants are parsed by gsomia,
    with their zones, not by YAML."""


# YAML 1.1 would read `on`, `no` or `NO` (Norway) as booleans and dates as timestamps;
# gsomia reads only true/false as booleans (the YAML 1.2 core schema) and parses instants
# itself, with their zones.
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
    for k, v in _Base.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _to_python(node: yaml.Node, path: Path_, lines: dict[Path_, int], loader: _Loader) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for k, v in node.value:
            key = loader.construct_object(k)
            if key in out:
                raise ValidationFailed([Problem(f"duplicate key {key!r}", _dotted(path), k.start_mark.line + 1)])
            out[key] = _to_python(v, (*path, key), lines, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, (*path, i), lines, loader) for i, v in enumerate(node.value)]
    return loader.construct_object(node)


def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)


def read_yaml(text: str, file: str = "") -> tuple[Any, dict[Path_, int]]:
    """Parse YAML text into Python data and a map from each path to its line.

    Raises:
        ValidationFailed: on a YAML syntax error or a duplicate key.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[Path_, int] = {}
        data = _to_python(node, (), lines, loader) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        raise ValidationFailed([Problem(f"YAML syntax: {e.problem}", "", mark.line + 1 if mark else None, file)]) from e
    except yaml.YAMLError as e:
        raise ValidationFailed([Problem(f"YAML: {e}", file=file)]) from e
    except ValidationFailed as e:
        raise ValidationFailed([Problem(p.message, p.path, p.line, file) for p in e.problems]) from e
    finally:
        loader.dispose()
    return data, lines


def read_file(path: Path) -> str:
    """Read a scenario file as UTF-8 text, refusing oversized or binary input.

    Raises:
        InvalidInput: if it cannot be read, is too large, or is not UTF-8.
    """
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InvalidInput(f"{path}: {size} bytes is over the {MAX_FILE_BYTES} byte limit for a scenario")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read ({e.strerror})") from e


# --- problems ------------------------------------------------------------------------------


@dataclass
class _Collector:
    file: str
    lines: dict[Path_, int]
    problems: list[Problem]

    def add(self, path: Path_, message: str) -> None:
        line = None
        p = path
        while True:
            if p in self.lines:
                line = self.lines[p]
                break
            if not p:
                break
            p = p[:-1]
        self.problems.append(Problem(message, _dotted(path), line, self.file))

    def guard(self, path: Path_, fn: Callable[[], _T]) -> _T | None:
        try:
            return fn()
        except GsomiaError as e:
            self.add(path, str(e))
            return None


def _pydantic_problems(err: ValidationError, col: _Collector) -> None:
    for item in err.errors():
        loc = tuple(x for x in item["loc"] if not (isinstance(x, str) and x.startswith("function-")))
        msg = item["msg"]
        if item["type"] == "extra_forbidden":
            msg = f"unknown field {loc[-1]!r}" if loc else "unknown field"
        elif item["type"] == "missing":
            msg = f"missing field {loc[-1]!r}" if loc else "missing field"
        col.add(tuple(loc), msg)


# --- building the record ---------------------------------------------------------------


def _instant(col: _Collector, path: Path_, text: str | None, zone_name: str) -> datetime | None:
    if text is None:
        return None
    result: datetime | None = col.guard(path, lambda: parse_instant(text, zone_name))
    return result


def _event(
    col: _Collector,
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
    col: _Collector, path: Path_, doc: AgreementDoc, parties: dict[str, Party], default_zone: str
) -> Agreement | None:
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
    tz = doc.timezone or default_zone
    if col.guard((*path, "timezone"), lambda: zone(tz)) is None:
        ok = False
    bad_scope = scope_entries_valid(doc.scope)
    if bad_scope:
        col.add((*path, "scope"), f"malformed scope entries {bad_scope}")
        ok = False
    table = None
    if doc.equivalence or doc.common_levels:
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
        if ok:
            table = col.guard(
                (*path, "equivalence"), lambda: EquivalenceTable.build(doc.common_levels, doc.equivalence)
            )
            if table is None:
                ok = False
            else:
                _check_monotone(col, (*path, "equivalence"), table, parties)
    if doc.max_level is not None and doc.max_level not in doc.common_levels:
        col.add((*path, "max_level"), f"maximum {doc.max_level!r} is not one of common_levels {doc.common_levels}")
        ok = False
    if doc.notice is not None and doc.notice.reckoning == "before_term_end" and doc.term is None:
        col.add((*path, "notice"), "a notice counted before the term's end needs a term")
        ok = False
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


def _check_monotone(col: _Collector, path: Path_, table: EquivalenceTable, parties: dict[str, Party]) -> None:
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


def _party(col: _Collector, path: Path_, doc: PartyDoc) -> Party | None:
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


def build_record(doc: ScenarioDoc, col: _Collector) -> Record | None:
    """Turn a schema-valid document into a record, collecting every problem."""
    header = doc.scenario
    if col.guard(("scenario", "timezone"), lambda: zone(header.timezone)) is None:
        return None
    tz = header.timezone
    seen: dict[str, set[str]] = {}

    def unique(kind: str, path: Path_, ident: str) -> None:
        if ident in seen.setdefault(kind, set()):
            col.add(path, f"duplicate {kind} id {ident!r}")
        seen[kind].add(ident)

    topics: dict[str, str] = {}
    for i, t in enumerate(doc.topics):
        unique("topic", ("topics", i, "id"), t.id)
        topics[t.id] = t.description

    parties: dict[str, Party] = {}
    for i, pdoc in enumerate(doc.parties):
        path: Path_ = ("parties", i)
        unique("party", (*path, "id"), pdoc.id)
        party = _party(col, path, pdoc)
        if party is not None:
            parties[pdoc.id] = party

    agreements: dict[str, Agreement] = {}
    for i, a in enumerate(doc.agreements):
        unique("agreement", ("agreements", i, "id"), a.id)
        built = _agreement(col, ("agreements", i), a, parties, tz)
        if built is not None:
            agreements[a.id] = built

    declared = frozenset(a.id for a in doc.agreements)
    events: list[AgreementEvent] = []
    event_paths: dict[str, Path_] = {}
    for i, e in enumerate(doc.events):
        unique("event", ("events", i, "id"), e.id)
        event_paths[e.id] = ("events", i)
        ev = _event(col, ("events", i), e, agreements, tz, declared)
        if ev is not None:
            events.append(ev)
    _check_event_order(col, events, event_paths)

    reports: list[Report] = []
    for i, r in enumerate(doc.reports):
        path = ("reports", i)
        unique("report", (*path, "id"), r.id)
        orig = parties.get(r.originator)
        if orig is None:
            col.add((*path, "originator"), f"unknown party {r.originator!r}")
            continue
        if r.level not in orig.ladder:
            col.add(
                (*path, "level"), f"{r.level!r} is not a level of {r.originator} ({', '.join(orig.ladder.names())})"
            )
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
            continue
        caveats = Caveats(
            rel_to=frozenset(cav.rel_to) if cav and cav.rel_to is not None else None,
            noforn=bool(cav and cav.noforn),
            orcon=bool(cav and cav.orcon),
        )
        reports.append(
            Report(
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
        )

    provisions: list[Provision] = []
    for i, pv in enumerate(doc.provisions):
        path = ("provisions", i)
        unique("provision", (*path, "id"), pv.id)
        ag = agreements.get(pv.agreement)
        if ag is None:
            if pv.agreement not in declared:
                col.add((*path, "agreement"), f"unknown agreement {pv.agreement!r}")
            continue
        if pv.by is not None and pv.by not in ag.parties:
            col.add((*path, "by"), f"{pv.by} is not a party to {ag.id}")
        if (pv.date is None) == (pv.from_ is None and pv.to is None) or (
            pv.date is None and (pv.from_ is None or pv.to is None)
        ):
            col.add(path, "give either 'date' (a dated exchange) or both 'from' and 'to' (a count within a period)")
            continue
        # A bare date stands for the whole day: a period 'to: 2019-08-21' is complete
        # (and counted) from 00:00 on 22 August; an exchange 'date: 2019-08-06' from 7 August.
        last = pv.date or pv.to or ""
        start = _instant(col, (*path, "date" if pv.date else "from"), pv.date or pv.from_, ag.timezone)
        end = _instant(col, (*path, "date" if pv.date else "to"), last, ag.timezone)
        if start is None or end is None:
            continue
        if _DATE_ONLY.match(last):
            end += timedelta(days=1)
        if end < start:
            col.add(path, "the period ends before it starts")
            continue
        if (
            local_date(start, ag.timezone).year != local_date(end - timedelta(microseconds=1), ag.timezone).year
            and end != start
        ):
            col.add(path, "a counted period must fall within one calendar year")
            continue
        try:
            prov: Provision | None = Provision(
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
            prov = None
        if prov is not None:
            provisions.append(prov)

    window = None
    if header.window:
        lo = _instant(col, ("scenario", "window", "from"), header.window.get("from"), tz)
        hi = _instant(col, ("scenario", "window", "to"), header.window.get("to"), tz)
        if lo is None or hi is None:
            col.add(("scenario", "window"), "a window needs 'from' and 'to'")
        elif hi <= lo:
            col.add(("scenario", "window"), "the window must end after it starts")
        else:
            window = (lo, hi)

    asked = header.question
    if asked is not None:
        if asked.agreement not in declared:
            col.add(("scenario", "question", "agreement"), f"unknown agreement {asked.agreement!r}")
        for i, pid in enumerate(asked.parties):
            if pid not in parties:
                col.add(("scenario", "question", "parties", i), f"unknown party {pid!r}")
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
    )
    for anomaly in compile_network(record).anomalies():
        col.add(event_paths.get(anomaly.event, ("events",)), f"event {anomaly.event}: {anomaly.message}")
    if header.question is not None:
        question = _question(col, header.question, record)
        if question is not None:
            record = replace(record, question=question)
    return None if col.problems else record


def _question(col: _Collector, doc: QuestionDoc, record: Record) -> Question | None:
    path: Path_ = ("scenario", "question")
    agreement = record.agreements[doc.agreement]  # checked in build_record
    added = []
    for i, e in enumerate(doc.whatif.add):
        ev = _event(col, (*path, "whatif", "add", i), e, dict(record.agreements), record.timezone)
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


def _check_event_order(col: _Collector, events: list[AgreementEvent], paths: dict[str, Path_]) -> None:
    signatures: dict[str, datetime] = {}
    for e in events:
        if e.kind is EventKind.SIGNATURE:
            signatures.setdefault(e.agreement, e.at)
    for e in events:
        signed = signatures.get(e.agreement)
        if signed is not None and e.kind is not EventKind.SIGNATURE and e.at < signed:
            col.add(paths[e.id], f"event {e.id} ({e.kind}) is dated before the signature of {e.agreement}")


def digest_of(data: Any) -> str:
    """SHA-256 of the RFC 8785 canonical form of a parsed document."""
    return hashlib.sha256(rfc8785.dumps(data)).hexdigest()


@dataclass(frozen=True, slots=True)
class LoadedScenario:
    """A valid scenario: its record, the canonical document and its digest."""

    record: Record
    document: dict[str, Any]
    digest: str


def parse_scenario(text: str, file: str = "") -> LoadedScenario:
    """Parse and validate scenario text.

    Raises:
        ValidationFailed: listing every problem, each with file and line.
    """
    data, lines = read_yaml(text, file)
    return _parse_data(data, lines, file)


def _parse_data(data: Any, lines: dict[Path_, int], file: str, *, canonical: bool = True) -> LoadedScenario:
    col = _Collector(file, lines, [])
    if not isinstance(data, dict):
        raise ValidationFailed(
            [Problem("a scenario is a YAML mapping with scenario, parties, agreements…", line=1, file=file)]
        )
    try:
        doc = ScenarioDoc.model_validate(data)
    except ValidationError as e:
        _pydantic_problems(e, col)
        raise ValidationFailed(col.problems) from e
    record = build_record(doc, col)
    if record is None:
        raise ValidationFailed(col.problems)
    document = doc.model_dump(mode="json", by_alias=True, exclude_none=True)
    if canonical:
        return LoadedScenario(record, document, digest_of(document))
    # a stored document only needs an identity for caching, not the RFC 8785 digest
    quick = hashlib.sha256(json.dumps(document, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return LoadedScenario(record, document, quick)


def parse_scenario_document(document: dict[str, Any]) -> LoadedScenario:
    """Rebuild a scenario from its stored canonical document (no line numbers).

    Raises:
        ValidationFailed: if the stored document no longer validates.
    """
    return _parse_data(document, {}, "<stored scenario>", canonical=False)


def parse_whatif(text: str, record: Record, file: str = "") -> WhatIf:
    """Parse a what-if file against ``record``.

    Raises:
        ValidationFailed: listing every problem with its line.
    """
    data, lines = read_yaml(text, file)
    col = _Collector(file, lines, [])
    try:
        doc = WhatIfDoc.model_validate(data if data is not None else {})
    except ValidationError as e:
        _pydantic_problems(e, col)
        raise ValidationFailed(col.problems) from e
    added = []
    for i, event_doc in enumerate(doc.add):
        ev = _event(col, ("add", i), event_doc, dict(record.agreements), record.timezone)
        if ev is not None:
            added.append(ev)
    known = {e.id for e in record.events}
    for i, d in enumerate(doc.drop):
        if d not in known:
            col.add(("drop", i), f"no recorded event {d!r} to drop")
    if col.problems:
        raise ValidationFailed(col.problems)
    return WhatIf(doc.name, tuple(added), tuple(doc.drop))


_SPEC_KINDS = {k.value for k in EventKind}


def parse_event_spec(spec: str, record: Record, n: int = 1) -> AgreementEvent:
    """Parse ``'AGREEMENT KIND INSTANT [by PARTY] [effective INSTANT]'``.

    Dates are read in the agreement's zone. The event gets the id ``whatif-N``.

    Raises:
        InvalidInput: if the text does not follow that form.
        UnknownEntity: if the agreement or party is unknown.
    """
    words = spec.split()
    form = "'AGREEMENT KIND INSTANT [by PARTY] [effective INSTANT]'"
    if len(words) < 3:
        raise InvalidInput(f"--add-event {spec!r}: expected {form}")
    agreement = record.agreement(words[0])
    kind = words[1]
    if kind not in _SPEC_KINDS:
        raise InvalidInput(f"--add-event {spec!r}: KIND must be one of {', '.join(sorted(_SPEC_KINDS))}")
    at = parse_instant(words[2], agreement.timezone)
    by = effective = None
    rest = words[3:]
    while rest:
        if len(rest) < 2 or rest[0] not in ("by", "effective"):
            raise InvalidInput(f"--add-event {spec!r}: expected {form}")
        if rest[0] == "by":
            by = record.party(rest[1]).id
            if by not in agreement.parties:
                raise InvalidInput(f"--add-event {spec!r}: {by} is not a party to {agreement.id}")
        else:
            effective = parse_instant(rest[1], agreement.timezone)
        rest = rest[2:]
    return AgreementEvent(
        id=f"whatif-{n}",
        agreement=agreement.id,
        kind=EventKind(kind),
        at=at,
        by=by,
        effective=effective,
        hypothetical=True,
        note=f"hypothetical: {spec}",
    )


def bundled_scenarios() -> dict[str, Path]:
    """Scenario files shipped in the package, by name."""
    folder = Path(__file__).parent / "data"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of scenario files."""
    schema = ScenarioDoc.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://gsomia.invalid/schema/scenario.json"
    return schema
