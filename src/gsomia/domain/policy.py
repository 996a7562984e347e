"""Release rules 1–7 of docs/design.md §3, each a named unit returning the reasons it fails.

A rule returns ``None`` when it holds, or a :class:`Reason` naming itself and the agreement
(and article) behind it. Decisions combine them in :mod:`gsomia.domain.routing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gsomia.domain.agreements import Agreement
from gsomia.domain.instants import iso
from gsomia.domain.lifecycle import Segment, State
from gsomia.domain.markings import Marking
from gsomia.domain.record import Caveats, Record
from gsomia.domain.topics import Scope, check_topic


class Rule(StrEnum):
    """The seven release rules (docs/design.md §3), by name."""

    IN_FORCE = "in_force"  # 1: an agreement (or chain, for a relay) is in force
    SCOPE = "scope"  # 2: the topic is in the agreement's scope
    LEVEL = "level"  # 3: the level maps through the table to at or below the maximum
    CAVEATS = "caveats"  # 4: the originator's caveats allow the recipient
    AUTHORITY = "authority"  # 5: the recipient's competent authority is cleared
    THIRD_PARTY = "third_party"  # 6: a relay needs an arrangement and originator consent
    KNOWN = "known"  # 7: nothing is released on a guess

    @property
    def number(self) -> int:
        """The rule's number in docs/design.md §3."""
        return list(Rule).index(self) + 1


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a release is refused: the rule and the agreement/article behind it."""

    rule: Rule
    message: str
    agreement: str | None = None

    def __str__(self) -> str:
        return f"rule {self.rule.number} ({self.rule}): {self.message}"

    def as_dict(self) -> dict[str, str]:
        """JSON shape ``{"rule", "message"}`` (plus ``agreement`` when there is one)."""
        d = {"rule": str(self.rule), "message": self.message}
        if self.agreement:
            d["agreement"] = self.agreement
        return d


@dataclass(frozen=True, slots=True)
class Allow:
    """A rule set held."""


@dataclass(frozen=True, slots=True)
class Deny:
    """A rule set failed; ``reasons`` is never empty."""

    reasons: tuple[Reason, ...]

    def __post_init__(self) -> None:
        if not self.reasons:
            raise ValueError("a denial must carry at least one reason")


# --- rule 7 ----------------------------------------------------------------------------


def rule_known(
    record: Record, originator: str, recipient: str, topic: str, level: str, at: datetime | None
) -> list[Reason]:
    """Rule 7: unknown party, level or topic, or a clock problem, means deny."""
    out: list[Reason] = []
    for role, pid in (("originator", originator), ("recipient", recipient)):
        if pid not in record.parties:
            out.append(Reason(Rule.KNOWN, f"unknown {role} {pid!r}"))
    if originator == recipient and originator in record.parties:
        out.append(Reason(Rule.KNOWN, f"{originator} cannot release to itself"))
    orig = record.parties.get(originator)
    if orig is not None and level not in orig.ladder:
        out.append(Reason(Rule.KNOWN, f"{level!r} is not a level of {originator} ({', '.join(orig.ladder.names())})"))
    try:
        check_topic(topic)
        if record.topics and topic not in record.topics:
            out.append(Reason(Rule.KNOWN, f"unknown topic {topic!r}"))
    except Exception:  # noqa: BLE001 - any malformed topic is a rule-7 denial, never a crash
        out.append(Reason(Rule.KNOWN, f"malformed topic {topic!r}"))
    if at is None or at.tzinfo is None or at.utcoffset() is None:
        out.append(Reason(Rule.KNOWN, "no trustworthy decision instant (missing or without a time zone)"))
    return out


# --- rules 1–3 and 5, for one leg under one agreement ---------------------------------


def rule_in_force(agreement: Agreement, segment: Segment) -> Reason | None:
    """Rule 1: the agreement is in force during ``segment`` of its timeline.

    The reason depends on the segment only (not on the instant asked about), so it can be
    computed once per segment.
    """
    state = segment.state
    if state.in_force:
        return None
    a = agreement
    if state is State.NOT_YET_IN_FORCE:
        msg = f"{a.id} is not yet in force"
    else:
        msg = (
            f"{a.id} is {state} since {iso(segment.start, a.timezone)} ({a.cite('termination')}); "
            f"information already provided stays protected"
            + (f" ({a.cite('protection')})" if a.post_termination_protection else "")
        )
    return Reason(Rule.IN_FORCE, msg, a.id)


def rule_scope(agreement: Agreement, scope: Scope, topic: str) -> Reason | None:
    """Rule 2: the topic is within the agreement's scope (as amended at the instant)."""
    if scope.covers(topic):
        return None
    return Reason(Rule.SCOPE, f"{topic} is outside the scope of {agreement.id} ({scope.describe()})", agreement.id)


def rule_level(
    agreement: Agreement, max_level: str | None, sender: str, level: str, receiver: str
) -> tuple[Marking | None, Reason | None]:
    """Rule 3: ``sender``'s ``level`` maps through the table to at or below the maximum,
    and ``receiver`` has an equivalent (Art. 4.2)."""
    table = agreement.equivalence
    where = agreement.cite("equivalence")
    if table is None or max_level is None:
        return None, Reason(
            Rule.LEVEL, f"{agreement.id} defines no equivalence table: nothing is releasable under it", agreement.id
        )
    common = table.to_common(sender, level)
    if common is None:
        return None, Reason(
            Rule.LEVEL,
            f"{sender} {level} has no equivalent in the {where} table: not releasable under {agreement.id}",
            agreement.id,
        )
    if not table.at_or_below(common, max_level):
        return None, Reason(
            Rule.LEVEL,
            f"{sender} {level} is {common}, above the {agreement.id} maximum {max_level} ({where})",
            agreement.id,
        )
    marking = table.translate(sender, level, receiver)
    if marking is None:
        return None, Reason(
            Rule.LEVEL, f"{receiver} has no level equivalent to {common} in the {where} table", agreement.id
        )
    return marking, None


def rule_authority(record: Record, receiver: str, receiver_level: str) -> Reason | None:
    """Rule 5: the receiver declared a competent authority cleared at that level."""
    party = record.parties.get(receiver)
    if party is not None and party.cleared_for(receiver_level):
        return None
    declared = party.authority if party is not None else None
    if declared is None:
        return Reason(Rule.AUTHORITY, f"{receiver} has declared no competent authority")
    return Reason(
        Rule.AUTHORITY,
        f"{receiver}'s competent authority ({declared.name}) is cleared to {declared.cleared_to}, not {receiver_level}",
    )


def rule_caveats(caveats: Caveats, party: str, role: str = "recipient") -> Reason | None:
    """Rule 4: the originator's caveats allow ``party``."""
    if caveats.allows(party):
        return None
    return Reason(Rule.CAVEATS, f"the originator's caveats ({caveats.describe()}) exclude {role} {party}")


def rule_third_party(arrangement: Agreement, hub: str) -> Reason:
    """Rule 6: a relay is a third-party release; it needs the originator's prior written
    consent (standing or for this report). Returned as the condition the relay carries."""
    return Reason(
        Rule.THIRD_PARTY,
        f"relay through {hub} under {arrangement.id} needs the originator's prior written consent "
        f"({arrangement.cite('third_party')})",
        arrangement.id,
    )
