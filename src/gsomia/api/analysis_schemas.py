"""Response bodies of the analysis and dashboard routes, as OpenAPI shows them and as every
answer is checked against.

The shapes are those of :mod:`gsomia.services.analysis.presenters` (the CLI's ``--json`` too)
and of the dashboard's compact views. As in :mod:`gsomia.api.schemas`, each model forbids
members it does not name, so a presenter that drifts from its documented shape fails loudly
in the tests instead of losing a member on the way out. Instants are ISO 8601 text with an
offset, shown in the agreement's zone (or the scenario's, for pair-level results); durations
are ISO 8601 (``PT4H``). These routes read agreement metadata and the scenario's record only:
no token, no report content, no key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gsomia.api.schemas import LegOut, MarkingOut, ReasonOut, problems
from gsomia.domain.agreements import EventKind
from gsomia.domain.lifecycle import State

__all__ = [
    "QUERY",
    "RECORD",
    "AgreementStateOut",
    "ComparisonOut",
    "EventOut",
    "FlowOut",
    "GapOut",
    "ImpactReportOut",
    "LifecycleOut",
    "MatrixOut",
    "NetworkOut",
    "ProvisionOut",
    "RecordReportOut",
    "RouteOut",
    "ScenarioOut",
    "SourceOut",
    "StatsOut",
    "StatusOut",
    "TrafficOut",
    "UnknownOut",
    "answers",
]

RouteKind = Literal["direct", "relay", "none", "unknown"]
"""How a flow goes at an instant: ``unknown`` when the only agreement that would carry it has
no recorded entry into force (not a gap)."""


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors ------------------------------------------------------------------------------------

_ANALYSIS_TEXT = {
    404: "An unknown agreement, party, topic or what-if event id (not-found).",
    422: "A malformed query: an instant that does not parse, an empty period, a what-if event "
    "that cannot apply (invalid-request, invalid-input, invalid-document).",
    503: "No scenario is loaded, or the database is unavailable (storage-unavailable).",
}

RECORD = (503,)
"""What a route that lists the loaded record may answer besides success."""

QUERY = (404, 422, 503)
"""What a route that takes a query (an instant, parties, a topic, a what-if) may answer besides success."""


def answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the problems an analysis route gives, described as the analysis
    routes give them (media type and schema: :func:`gsomia.api.schemas.problem_openapi`)."""
    out = problems(*statuses)
    for status in statuses:
        if status in _ANALYSIS_TEXT:
            out[status] = {"description": _ANALYSIS_TEXT[status]}
    return out


# --- the record's definitions ------------------------------------------------------------------


class WindowOut(_Out):
    """The scenario's analysis window: the default period of gaps, what-ifs and reports."""

    from_: str = Field(alias="from")
    to: str


class QuestionOut(_Out):
    """The question the scenario asks (``gsomia report`` answers it)."""

    title: str
    agreement: str = Field(description="The agreement the question is about.")
    parties: list[str]
    drop: list[str] = Field(description="Ids of the recorded events the question's what-if leaves out.")
    stats_at: str | None = Field(description="The instant the statistics were known then, if the question names one.")


class TopicOut(_Out):
    """A topic of the catalogue: a dotted path such as ``dprk.missile.launch``."""

    id: str
    description: str


class LevelOut(_Out):
    """A level of a party's national classification ladder."""

    name: str = Field(description="The national name, e.g. 極秘 or 군사II급비밀.")
    rank: int = Field(description="Higher is more sensitive.")
    english: str = Field(description="An English gloss; empty when none is recorded.")


class AuthorityOut(_Out):
    """A party's competent authority and the level it is cleared to (rule 5)."""

    name: str
    cleared_to: str


class PartyOut(_Out):
    """A party: a government or organisation that signs agreements."""

    id: str = Field(description="ISO 3166 alpha-3 code or a short organisation code.")
    name: str
    kind: str
    ladder: list[LevelOut] = Field(description="Its national ladder, in the order recorded.")
    authority: AuthorityOut | None
    aliases: list[str] = Field(description="Other names accepted for it in a query (ROK for KOR); answers use the id.")


class AgreementOut(_Out):
    """An agreement's definition, as the network view draws it."""

    id: str
    name: str
    parties: list[str]
    kind: str = Field(description="bilateral, multilateral, arrangement…, as recorded.")
    legally_binding: bool
    timezone: str = Field(description="The zone its calendar rules are reckoned in (Art. 21.3: 00:00 local time).")
    direct: bool = Field(description="True if its parties exchange under it directly (false for a relay arrangement).")
    hub: str | None = Field(description="The party that relays under it (TISA: USA), if it is a relay arrangement.")
    scope: str = Field(description="Topic prefixes it covers, as text: 'dprk.missile*, dprk.nuclear*' or 'everything'.")
    max_level: str | None = Field(description="The highest common level it allows (rule 3).")
    relay_delay: str | None = Field(description="Modelled relay delay (a scenario assumption, not a sourced figure).")
    consent_required: bool = Field(description="A relay under it needs the originator's consent (rule 6).")
    term_years: int | None
    notice_days: int | None
    articles: dict[str, str] = Field(description="Article references by rule, as recorded.")
    source: str = Field(description="Confidence tag and sources, e.g. '[V S11]'.")
    common_levels: list[str] = Field(description="Its common levels, most sensitive first.")
    equivalence: dict[str, dict[str, list[str]]] = Field(
        description="The Art. 4.2-style table: common level → party → national levels (the first is stamped)."
    )


class ScenarioOut(_Out):
    """The loaded scenario's definitions, for clients that draw the network."""

    name: str
    title: str
    timezone: str = Field(description="The scenario's zone: bare dates and pair-level results are read in it.")
    database: str = Field(description="Where the record is stored (no credentials).")
    window: WindowOut | None
    assumptions: list[str] = Field(description="Modelling assumptions, shown wherever they are used.")
    question: QuestionOut | None
    topics: list[TopicOut]
    parties: list[PartyOut]
    agreements: list[AgreementOut]


class EventOut(_Out):
    """An agreement event: status is derived from these, never stored."""

    id: str
    agreement: str
    kind: EventKind
    at: str = Field(description="When it happened (a notice: when it was received).")
    by: str | None = Field(description="The party that acted (e.g. gave notice).")
    effective: str | None = Field(description="When it takes effect, if not at once (e.g. a revived notice).")
    note: str
    source: str
    hypothetical: bool = Field(description="Added by a what-if, not recorded.")


class RecordReportOut(_Out):
    """A past report of the scenario's record (not an exchange submission)."""

    id: str
    originator: str
    topic: str
    level: str = Field(description="In the originator's national ladder.")
    created: str
    title: str
    source: str


class SourceOut(_Out):
    """An entry of the scenario's sources list, as recorded; tags cite it by id ([V S11])."""

    id: str
    title: str
    date: str | None = Field(description="As the source gives it, e.g. '29 Dec 2014'.")
    links: list[str]
    note: str | None


class ProvisionOut(_Out):
    """Information provided under an agreement over a period, as recorded."""

    id: str
    agreement: str
    count: int
    start: str
    end: str
    dated: bool = Field(description="True if the provision's date is known, not only its year.")
    by: str | None = Field(description="The providing party, when recorded.")
    note: str
    source: str


# --- derived states ------------------------------------------------------------------------------


class _StatusFields(_Out):
    agreement: str
    name: str
    parties: list[str]
    state: State
    in_force: bool = Field(description="Information may flow (a pending or suspended notice does not stop it).")
    since: str | None = Field(description="When the current state began.")
    term_end: str | None = Field(description="When the current term ends (00:00 local on the anniversary).")
    notice_deadline: str | None = Field(
        description="The last day to give notice for the current term (a date; Art. 21.3: 90 days before its last day)."
    )
    ends_at: str | None = Field(description="When it ends, if a notice, termination or expiry says so.")
    notice: str | None = Field(description="The id of the notice in effect, if any.")
    post_termination_protection: bool = Field(description="Information already provided stays protected (Art. 21.4).")
    legally_binding: bool
    at: str
    unknown: bool = Field(description="No entry into force is recorded: the derived state is not a known fact.")


class StatusOut(_StatusFields):
    """An agreement's derived state at an instant (``gsomia status --json``)."""

    events: list[EventOut] = Field(description="The events up to the instant.")


class TimelineStatusOut(_StatusFields):
    """The question's agreement at one instant of the impact report's timeline."""

    events: list[str] = Field(description="Ids of the events up to the instant.")


class AgreementStateOut(_Out):
    """An agreement's state, without its details."""

    agreement: str
    state: State


class NetworkOut(_Out):
    """Every agreement's state at an instant, compactly (the network view's time slider)."""

    at: str
    states: list[AgreementStateOut]
    unknown: list[str] = Field(description="Agreements whose state is not known then (no entry into force recorded).")


class UnknownFromOut(_Out):
    """Where an agreement's state stops being known."""

    from_: str | None = Field(alias="from", description="null: from the start.")


class SegmentOut(_Out):
    """A stretch of an agreement's lifecycle in one state."""

    start: str | None = Field(description="null: before any event.")
    state: State
    ends_at: str | None = Field(description="When a notice in effect ends it, if one does.")
    cause: str | None = Field(description="The event that began it; null for a derived end (a notice running out).")
    notice: str | None = Field(description="The notice in effect, if any.")


class AnomalyOut(_Out):
    """A recorded event that does not apply where it stands (e.g. a withdrawal of no notice)."""

    event: str
    message: str


class LifecycleOut(_Out):
    """An agreement's derived lifecycle and the events replayed to derive it."""

    agreement: str
    entry: str | None = Field(description="Its entry into force, if recorded.")
    unknown: UnknownFromOut | None = Field(description="Set when no entry into force is recorded.")
    segments: list[SegmentOut]
    events: list[EventOut] = Field(description="The events replayed, hypothetical ones marked.")
    anomalies: list[AnomalyOut]


# --- releases, coverage and gaps -----------------------------------------------------------------


class RouteOut(_Out):
    """One release decided: direct, relay or deny, with every failed rule (``gsomia route --json``)."""

    decision: Literal["direct", "relay", "deny"]
    originator: str
    recipient: str
    topic: str
    at: str | None
    path: list[str] = Field(description="The parties the report passes through; empty when denied.")
    agreements: list[str]
    arrangement: str | None = Field(description="The relay arrangement (TISA), for a relay.")
    via: str | None = Field(description="The hub, for a relay.")
    consent_required: bool = Field(description="A relay needs the originator's prior written consent (rule 6).")
    per_report_consent: bool = Field(description="ORCON: consent for this very report, not a standing one.")
    marking: MarkingOut
    delay: str = Field(description="Modelled delay of the route (ISO 8601 duration).")
    assumptions: list[str] = Field(description="Modelling assumptions the decision depends on.")
    legs: list[LegOut]
    reasons: list[ReasonOut] = Field(description="Every rule that failed, each with its agreement when there is one.")


class FlowOut(_Out):
    """How one party's information on a topic reaches another at an instant."""

    from_: str = Field(alias="from")
    to: str
    topic: str
    route: RouteKind
    via: str | None = Field(description="The hub, for a relay.")
    delay: str | None = Field(description="A relay's modelled delay (a scenario assumption); null otherwise.")
    agreement: str | None = Field(description="The agreement (or arrangement) that carries it, or would.")


class GapOut(_Out):
    """An interval in which a pair has no route for a topic."""

    from_: str = Field(alias="from")
    to: str
    topic: str
    start: str
    end: str


class UnknownOut(GapOut):
    """An interval whose coverage is unknown because ``agreement``'s entry into force is not recorded: not a gap."""

    agreement: str | None


class MatrixOut(_Out):
    """Coverage among some parties for one topic at an instant (rows originators, columns recipients)."""

    at: str
    topic: str
    parties: list[str]
    flows: list[FlowOut]


# --- statistics ------------------------------------------------------------------------------------


class TrendOut(_Out):
    """A Mann–Kendall trend test over the yearly counts."""

    method: str
    statistic: int = Field(description="Mann–Kendall S.")
    p_value: float | None
    direction: Literal["increasing", "decreasing", "none"]
    n: int = Field(description="How many yearly counts were tested.")
    min_p_value: float | None = Field(description="The smallest p-value n points can give.")
    note: str


class StatsOut(_Out):
    """Provisions under an agreement by year, as known at an instant (``gsomia stats --json``)."""

    agreement: str
    at: str
    by_year: dict[str, int]
    by_month: dict[str, int] = Field(description="Counts of dated provisions by YYYY-MM.")
    total: int
    partial_years: list[str] = Field(description="Years only partly covered (in force part of it, or not over yet).")
    missing_years: list[str] = Field(description="Years in force with no provision recorded.")
    trend: TrendOut


# --- what-if and the impact report -------------------------------------------------------------------


class WhatIfOut(_Out):
    """A what-if: hypothetical events added, recorded ones dropped."""

    name: str
    description: str
    add: list[EventOut]
    drop: list[str]


class RouteBeforeOut(_Out):
    """A flow's route on the record."""

    route: RouteKind
    via: str | None
    delay: str | None = Field(description="A relay's modelled delay (a modelling assumption); null otherwise.")


class RouteAfterOut(RouteBeforeOut):
    """A flow's route under the what-if."""


class ChangeOut(_Out):
    """An interval in which a flow differs under the what-if."""

    from_: str = Field(alias="from")
    to: str
    topic: str
    start: str
    end: str
    kind: Literal["stopped", "rerouted", "restored", "changed"]
    before: RouteBeforeOut
    after: RouteAfterOut


class ChangedReportOut(_Out):
    """A past report whose route to a recipient would have differed."""

    report: str
    title: str
    created: str
    originator: str
    recipient: str
    topic: str
    before: RouteOut
    after: RouteOut


class StaleEventOut(_Out):
    """A recorded event that no longer applies under the what-if, and why."""

    event: str
    why: str


class ComparisonOut(_Out):
    """The record with and without a what-if (``gsomia whatif --json``)."""

    whatif: WhatIfOut
    start: str
    end: str
    pairs: list[tuple[str, str]] = Field(description="The ordered pairs compared (originator, recipient).")
    topics: list[str]
    changes: list[ChangeOut]
    gaps_before: list[GapOut]
    gaps_after: list[GapOut]
    reports_changed: list[ChangedReportOut]
    reports_replayed: int = Field(description="How many past report deliveries were replayed.")
    no_longer_apply: list[StaleEventOut]
    assumptions: list[str] = Field(
        description="One line for each relay delay the changes show: a modelling assumption, not a sourced figure."
    )


class ImpactScenarioOut(_Out):
    """Which record the impact report was made from."""

    name: str
    title: str
    database: str


class ImpactQuestionOut(_Out):
    """The question the impact report answers."""

    title: str
    agreement: str
    parties: list[str]


class DeadlineOut(_Out):
    """A term's end and the last day to give notice for it."""

    term_end: str
    notice_deadline: str | None = Field(description="A date; null for an agreement without a notice rule.")


class ImpactReportOut(_Out):
    """The impact report of the scenario's question, or of a what-if (``gsomia report --json``)."""

    scenario: ImpactScenarioOut
    generated_at: str
    question: ImpactQuestionOut
    timeline: list[TimelineStatusOut] = Field(description="The agreement's state at each instant it changes.")
    deadlines: list[DeadlineOut]
    stats_then: StatsOut | None = Field(description="Statistics as known at the question's instant, if it names one.")
    stats_now: StatsOut
    whatif: ComparisonOut
    recorded_gaps: list[GapOut]
    assumptions: list[str]


# --- the exchange's traffic under a what-if --------------------------------------------------

DecisionKind = Literal["direct", "relay", "deny"]
"""How the engine decided a release."""

TrafficChange = Literal["stopped", "rerouted", "changed", "released"]
"""How a recorded decision changes under the what-if."""


class TrafficSelectionOut(_Out):
    """Which recorded decisions were replayed (null: all)."""

    parties: list[str] | None
    topic: str | None
    from_: str | None = Field(alias="from")
    to: str | None


class TrafficRecordedOut(_Out):
    """How the exchange decided them."""

    decision: DecisionKind
    via: str | None


class TrafficWhatIfOut(_Out):
    """How they would have been decided under the what-if."""

    decision: DecisionKind
    via: str | None
    delay: str | None = Field(description="The relay's modelled delay (ISO 8601), a modelling assumption.")
    recipient_level: str | None = Field(description="The level the recipient would have seen, if released.")


class TrafficReportOut(_Out):
    """One report of a group, for drill-down."""

    report: str = Field(description="The stored report key, originator/id.")
    decided_at: str


class TrafficGroupOut(_Out):
    """Recorded decisions of one pair and topic that change the same way."""

    from_: str = Field(alias="from")
    to: str
    topic: str
    change: TrafficChange
    recorded: TrafficRecordedOut
    whatif: TrafficWhatIfOut
    decisions: int
    first: str | None
    last: str | None
    outcomes: dict[str, int] = Field(description="What the exchange did with them (delivered, relayed…).")
    without_whatif: int = Field(
        description="How many of them today's record already decides otherwise without the what-if (drift)."
    )
    reports: list[TrafficReportOut] = Field(description="The earliest reports of the group.")


class TrafficOut(_Out):
    """The exchange's recorded decisions replayed under a what-if (``gsomia whatif --traffic --json``)."""

    whatif: WhatIfOut
    selection: TrafficSelectionOut
    decisions: int = Field(description="How many recorded decisions were replayed.")
    first: str | None
    last: str | None
    changed: dict[TrafficChange, int]
    unchanged: int
    drift: int = Field(description="Decisions today's record decides otherwise than recorded, without the what-if.")
    batches: int = Field(description="Distinct requests decided (each once, for all its decisions).")
    reports_per_group: int
    groups: list[TrafficGroupOut]
    assumptions: list[str]
