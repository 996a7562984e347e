"""The record: parties, agreements, their events, topics, reports and provisions.

A :class:`Record` is a plain value. :func:`compile_network` turns it into a
:class:`Network`, the index every decision reads (timelines derived once, agreements
indexed by pair). A what-if is applied to a record, giving another record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from gsomia.domain.agreements import Agreement, AgreementEvent, EventKind
from gsomia.domain.instants import iso, require_aware
from gsomia.domain.lifecycle import Anomaly, Timeline, derive_timeline
from gsomia.domain.names import shortened, suggestions, unknown_message
from gsomia.domain.parties import Party, check_party_id
from gsomia.errors import InvalidInput, UnknownEntity


@dataclass(frozen=True, slots=True)
class Caveats:
    """An originator's own release caveats (rule 4).

    ``rel_to``: only these parties may receive it (None: no REL TO list). ``noforn``: no
    foreign release at all. ``orcon``: originator-controlled, so every onward release needs
    consent for this very report (a standing consent does not apply).
    """

    rel_to: frozenset[str] | None = None
    noforn: bool = False
    orcon: bool = False

    def allows(self, party: str) -> bool:
        """True if these caveats let ``party`` receive the report."""
        if self.noforn:
            return False
        return self.rel_to is None or party in self.rel_to

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of caveats, everywhere the exchange writes them:
        ``{"rel_to": [sorted party ids] | null, "noforn": bool, "orcon": bool}``."""
        return {
            "rel_to": sorted(self.rel_to) if self.rel_to is not None else None,
            "noforn": self.noforn,
            "orcon": self.orcon,
        }

    @classmethod
    def from_json(cls, doc: object, what: str = "caveats") -> Caveats:
        """Read caveats from their JSON shape (every member required, each of its type).

        Raises:
            InvalidInput: the document is not ``{rel_to, noforn, orcon}`` with a list of
                distinct party ids (or null) and two booleans.
        """
        if not isinstance(doc, Mapping) or set(doc) != {"rel_to", "noforn", "orcon"}:
            raise InvalidInput(f"{what}: expected an object with exactly rel_to, noforn and orcon")
        rel_to = doc["rel_to"]
        if rel_to is not None:
            if not isinstance(rel_to, list):
                raise InvalidInput(f"{what}.rel_to: expected a list of party ids or null")
            for i, party in enumerate(rel_to):
                check_party_id(party, f"{what}.rel_to[{i}]")
            if len(set(rel_to)) != len(rel_to):
                raise InvalidInput(f"{what}.rel_to: lists a party twice")
        for flag in ("noforn", "orcon"):
            if type(doc[flag]) is not bool:
                raise InvalidInput(f"{what}.{flag}: expected true or false")
        return cls(rel_to=frozenset(rel_to) if rel_to is not None else None, noforn=doc["noforn"], orcon=doc["orcon"])

    def describe(self) -> str:
        """``REL TO JPN, USA; ORCON`` or empty."""
        parts = []
        if self.noforn:
            parts.append("NOFORN")
        if self.rel_to is not None:
            parts.append("REL TO " + ", ".join(sorted(self.rel_to)))
        if self.orcon:
            parts.append("ORCON")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """One item of classified military information, as the record knows it."""

    id: str
    originator: str
    topic: str
    level: str
    created: datetime
    title: str = ""
    caveats: Caveats = field(default_factory=Caveats)
    recipients: tuple[str, ...] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "created", require_aware(self.created, f"report {self.id}"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Provision:
    """Information provided under an agreement: ``count`` items in ``[start, end)``.

    ``dated``: a single exchange whose day (or instant) is known, as opposed to a count
    known only to fall within a period. Counted as known once ``end`` has passed.
    """

    id: str
    agreement: str
    count: int
    start: datetime
    end: datetime
    dated: bool = False
    by: str | None = None
    note: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if self.count < 1:
            raise InvalidInput(f"provision {self.id}: count must be at least 1")
        if self.end < self.start:
            raise InvalidInput(f"provision {self.id}: ends before it starts")


@dataclass(frozen=True, slots=True)
class WhatIf:
    """A named set of hypothetical events added to, and recorded events removed from, a record."""

    name: str
    add: tuple[AgreementEvent, ...] = ()
    drop: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True if it changes nothing."""
        return not self.add and not self.drop

    def describe(self, record: Record | None = None) -> str:
        """One line: ``drop jpn-kor-2019-suspension; add JPN-KOR-GSOMIA notice 2019-08-25T12:00+09:00 by KOR``.

        An added event's instants are shown in its agreement's zone in ``record`` (as every
        other instant of that agreement is), in UTC without a record.
        """

        def shown(at: datetime, agreement: str) -> str | None:
            if record is None:
                return iso(at)
            found = record.agreements.get(agreement)
            return iso(at, found.timezone if found is not None else record.timezone)

        parts = [f"drop {d}" for d in self.drop]
        parts += [
            f"add {e.agreement} {e.kind} {shown(e.at, e.agreement)}"
            + (f" by {e.by}" if e.by else "")
            + (f" effective {shown(e.effective, e.agreement)}" if e.effective else "")
            for e in self.add
        ]
        return "; ".join(parts) or "no change"


# A source tag is a bracketed group such as "[V S11]", "[R S35, S37]" or "[V S46 month; M day]":
# the confidence letters, then source ids (S and a number) among free words ("YTN, KBS via
# §8.3" names no source id and cites nothing in the sources list).
_TAG = re.compile(r"\[[^\[\]]*\]")
_SOURCE_ID = re.compile(r"\bS[0-9]+\b")


def cited_source_ids(text: str) -> tuple[str, ...]:
    """The source ids cited by the tags in ``text``, in order, each once (``[R S35, S37]`` → S35, S37)."""
    found = (sid for tag in _TAG.findall(text) for sid in _SOURCE_ID.findall(tag))
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceEntry:
    """One entry of the record's sources list, which the tags cite by id, as its author recorded it.

    ``date`` is the date as the list writes it ("22 Aug 2019", "Aug 2019"), not parsed: a
    source's date is a citation detail, never used in a rule. ``links`` are as recorded.
    """

    id: str
    title: str
    date: str = ""
    links: tuple[str, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        if not _SOURCE_ID.fullmatch(self.id):
            raise InvalidInput(f"source id {self.id!r}: use S and a number, as tags cite it (e.g. S11)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Question:
    """A scenario's main what-if question (the impact report asks it by default)."""

    title: str
    agreement: str
    parties: tuple[str, ...]
    whatif: WhatIf
    stats_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """Everything the engine reasons over. ``timezone`` reads bare dates typed by a user."""

    name: str
    title: str = ""
    timezone: str = "UTC"
    parties: Mapping[str, Party]
    agreements: Mapping[str, Agreement]
    events: tuple[AgreementEvent, ...] = ()
    topics: Mapping[str, str] = field(default_factory=dict)
    reports: tuple[Report, ...] = ()
    provisions: tuple[Provision, ...] = ()
    assumptions: tuple[str, ...] = ()
    window: tuple[datetime, datetime] | None = None
    question: Question | None = None
    sources: tuple[SourceEntry, ...] = ()

    @property
    def aliases(self) -> dict[str, str]:
        """Every party alias a user may type, and the party id it stands for."""
        return {a: p.id for p in self.parties.values() for a in p.aliases}

    def party(self, pid: str) -> Party:
        """The party ``pid``: its id, or (as a user types it) the id or an alias in any case.

        Raises:
            UnknownEntity: if there is none; the message lists the known ids and aliases and
                the closest matches.
        """
        found = self.parties.get(pid)
        if found is not None:
            return found
        folded = pid.strip().upper()
        target = folded if folded in self.parties else self.aliases.get(folded)
        if target is not None:
            return self.parties[target]
        raise UnknownEntity(unknown_message("party", pid, self.parties, aliases=self.aliases))

    def agreement(self, aid: str) -> Agreement:
        """The agreement ``aid`` (its id in any case).

        Raises:
            UnknownEntity: if there is none; the message lists the known ids and the closest.
        """
        found = self.agreements.get(aid)
        if found is not None:
            return found
        folded = {a.casefold(): a for a in self.agreements}.get(aid.strip().casefold())
        if folded is not None:
            return self.agreements[folded]
        raise UnknownEntity(unknown_message("agreement", aid, self.agreements))

    def topic(self, tid: str) -> str:
        """The catalogue's topic ``tid`` (in any case); any well-formed topic if there is no catalogue.

        Raises:
            UnknownEntity: if the catalogue has no such topic; the message lists it and the closest.
        """
        if not self.topics or tid in self.topics:
            return tid
        folded = {t.casefold(): t for t in self.topics}.get(tid.strip().casefold())
        if folded is not None:
            return folded
        raise UnknownEntity(unknown_message("topic", tid, self.topics))

    def level(self, pid: str, name: str) -> str:
        """The level of party ``pid``'s ladder a user means by ``name``: the national name, or
        (in any case) its English name, such as ``gokuhi`` for 極秘.

        Raises:
            UnknownEntity: for an unknown party, or a name that is not in its ladder; the
                message lists the ladder with the English names and the closest.
        """
        party = self.party(pid)
        ladder = party.ladder
        if name in ladder:
            return name
        folded = name.strip().casefold()
        for lv in ladder.levels:
            if folded in (lv.name.casefold(), lv.english.casefold()):
                return lv.name
        names = {lv.name: lv.name for lv in ladder.levels}
        english = {lv.english: lv.name for lv in ladder.levels if lv.english}
        listing = ", ".join(f"{lv.name} ({lv.english})" if lv.english else lv.name for lv in ladder.levels)
        raise UnknownEntity(_level_message(party.id, name, names, english, listing))

    def event(self, eid: str) -> AgreementEvent:
        """The event ``eid``.

        Raises:
            UnknownEntity: if there is none; the message names the closest ids.
        """
        for e in self.events:
            if e.id == eid:
                return e
        raise UnknownEntity(unknown_message("event", eid, (e.id for e in self.events)))


def _level_message(pid: str, name: str, names: dict[str, str], english: dict[str, str], listing: str) -> str:
    """An unknown level: the closest national or English names, each shown as the national one."""
    close = [english.get(c, c) for c in suggestions(name, [*names, *english])]
    close = list(dict.fromkeys(close))
    guess = f": did you mean {' or '.join(close)}?" if close else ""
    return f"unknown level of {pid} {shortened(name)!r}{guess} (its ladder: {listing})"


def apply_whatif(record: Record, whatif: WhatIf) -> Record:
    """The record with ``whatif`` applied.

    Raises:
        UnknownEntity: a dropped event, or an added event's agreement or party, is unknown.
        InvalidInput: an added event reuses an id, or cannot apply (e.g. a suspension with
            no notice pending): a what-if is checked like recorded history.
    """
    known = {e.id for e in record.events}
    for d in whatif.drop:
        if d not in known:
            raise UnknownEntity(f"cannot drop event: {unknown_message('recorded event', d, known)}")
    kept = tuple(e for e in record.events if e.id not in set(whatif.drop))
    ids = {e.id for e in kept}
    added: list[AgreementEvent] = []
    for e in whatif.add:
        record.agreement(e.agreement)
        if e.by is not None:
            record.party(e.by)
        if e.id in ids:
            raise InvalidInput(f"what-if event id {e.id!r} is already used")
        ids.add(e.id)
        added.append(e if e.hypothetical else replace(e, hypothetical=True))
    new = replace(record, events=kept + tuple(added))
    touched = {e.agreement for e in added}
    dropped = {e.agreement for e in record.events if e.id in set(whatif.drop)}
    _check_signed_first(new, touched | dropped, {e.id for e in added})
    anomalies = [
        a
        for aid in sorted(touched)
        for a in derive_timeline(new.agreements[aid], new.events).anomalies
        if a.event in {e.id for e in added}
    ]
    if anomalies:
        raise InvalidInput("; ".join(f"what-if event {a.event}: {a.message}" for a in anomalies))
    return new


def _check_signed_first(record: Record, agreements: set[str], added: set[str]) -> None:
    """A what-if is held to the rule recorded history is held to (the scenario loader's): no
    event of an agreement is dated before its first signature.

    Raises:
        InvalidInput: naming each event dated before its agreement's signature.
    """
    problems: list[str] = []
    for aid in sorted(agreements):
        events = [e for e in record.events if e.agreement == aid]
        signatures = [e.at for e in events if e.kind is EventKind.SIGNATURE]
        if not signatures:
            continue
        signed = min(signatures)
        zone = record.agreements[aid].timezone
        for e in events:
            if e.kind is not EventKind.SIGNATURE and e.at < signed:
                # a recorded event cannot be re-dated by a what-if: it is dropped (and added
                # again, dated anew) or an earlier signature is kept or added
                fix = (
                    "date it at or after the signature, or add an earlier signature"
                    if e.id in added
                    else "drop it too (and add it again, dated at or after the signature), or keep or add a "
                    "signature dated before it"
                )
                which = "what-if event" if e.id in added else "recorded event"
                problems.append(
                    f"{which} {e.id} ({e.kind}, {iso(e.at, zone)}) is dated before the signature of {aid}"
                    f" ({iso(signed, zone)}): {fix}"
                )
    if problems:
        raise InvalidInput("; ".join(problems))


@dataclass(frozen=True, slots=True)
class Network:
    """A compiled record: each agreement's timeline and agreements indexed by pair."""

    record: Record
    timelines: Mapping[str, Timeline]
    direct: Mapping[tuple[str, str], tuple[str, ...]]
    relays: Mapping[tuple[str, str], tuple[str, ...]]
    # memoised pure results (rule outcomes per segment, topic and level), owned by routing; the
    # two looked up on every decision are kept apart, so each stays small and warm in cache
    memo: dict[object, Any] = field(default_factory=dict, compare=False, repr=False)
    legs: dict[object, Any] = field(default_factory=dict, compare=False, repr=False)
    known: dict[object, Any] = field(default_factory=dict, compare=False, repr=False)
    # per ordered pair of parties, routing's plan: the instants at which any rule outcome for
    # the pair can change, and the decisions memoised between them
    plans: dict[tuple[str, str], Any] = field(default_factory=dict, compare=False, repr=False)

    def anomalies(self) -> list[Anomaly]:
        """Every anomaly in every timeline."""
        return [a for t in self.timelines.values() for a in t.anomalies]


def compile_network(record: Record) -> Network:
    """Derive every timeline and index agreements by ordered pair of parties."""
    by_agreement: dict[str, list[AgreementEvent]] = {aid: [] for aid in record.agreements}
    for e in record.events:
        by_agreement.setdefault(e.agreement, []).append(e)
    timelines = {aid: derive_timeline(a, by_agreement[aid]) for aid, a in record.agreements.items()}
    direct: dict[tuple[str, str], list[str]] = {}
    relays: dict[tuple[str, str], list[str]] = {}
    for aid in sorted(record.agreements):
        a = record.agreements[aid]
        for p in a.parties:
            for q in a.parties:
                if p == q:
                    continue
                if a.direct:
                    direct.setdefault((p, q), []).append(aid)
                if a.hub is not None and a.hub not in (p, q):
                    relays.setdefault((p, q), []).append(aid)
    return Network(
        record=record,
        timelines=timelines,
        direct={k: tuple(v) for k, v in direct.items()},
        relays={k: tuple(v) for k, v in relays.items()},
    )
