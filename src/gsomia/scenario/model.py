"""The scenario file format: pydantic models at the edge, from which the JSON Schema is made.

Instants are strings (ISO 8601 with an offset, or a bare date read in the agreement's zone,
or the scenario's zone for items that belong to no agreement); the loader converts them.
Every fact may carry ``source``: the reference tag it rests on, e.g. ``"[V S1]"`` — V read
in the treaty or an official text, R press, I inferred, M unverified general knowledge.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gsomia.domain.parties import PARTY_ID
from gsomia.domain.topics import TOPIC

INSTANT_PATTERN = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2}))?$"
DURATION_PATTERN = r"^P(\d+D)?(T(\d+H)?(\d+M)?(\d+S)?)?$"

Instant = Annotated[
    str,
    Field(
        description="ISO 8601 instant with offset (2019-08-23T15:30+09:00) or a date (2019-08-23), "
        "read as 00:00 in the agreement's (else the scenario's) time zone",
        pattern=INSTANT_PATTERN,
    ),
]
Source = Annotated[str, Field(description="confidence tag and source ids, e.g. '[V S1]' or '[M]'")]
PartyId = Annotated[str, Field(pattern=PARTY_ID.pattern)]
TopicId = Annotated[str, Field(pattern=TOPIC.pattern)]
Duration = Annotated[str, Field(pattern=DURATION_PATTERN, description="ISO 8601 duration, e.g. PT4H")]

PATTERN_HINTS = {
    INSTANT_PATTERN: "{!r} is not an instant: give a date (2019-08-23) or a date and time with its UTC offset "
    "(2019-08-23T15:30+09:00); a time of day without an offset could be any zone's",
    DURATION_PATTERN: "{!r} is not a duration: give ISO 8601 days, hours, minutes or seconds (PT4H, P1DT12H)",
    PARTY_ID.pattern: "{!r} is not a party id: a capital letter, then 1 to 15 capitals, digits, _ or - (JPN)",
}
"""What a value that does not match a pattern should look like, in a scenario author's words."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuestionDoc(_Strict):
    """The scenario's main what-if question, asked by ``gsomia report`` by default."""

    title: str
    agreement: str
    parties: list[PartyId] = Field(min_length=2)
    whatif: WhatIfDoc
    stats_at: Instant | None = Field(default=None, description="instant of the record to show statistics as known then")


class ScenarioHeader(_Strict):
    """Name, zone and analysis window of the scenario."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
    title: str = ""
    timezone: str = "UTC"
    window: dict[Literal["from", "to"], Instant] | None = Field(
        default=None, description="period analysed by reports and gap searches"
    )
    assumptions: list[str] = Field(default_factory=list, description="modelling assumptions shown with results")
    question: QuestionDoc | None = None
    source: Source = ""


class TopicDoc(_Strict):
    """A topic of the catalogue; reports and requests must use a catalogued topic."""

    id: TopicId
    description: str = ""
    source: Source = ""


class LevelDoc(_Strict):
    """A rung of a national classification ladder; rank 1 is the highest."""

    name: str = Field(min_length=1)
    rank: int = Field(ge=1, le=99, strict=True)
    english: str = ""
    source: Source = ""


class AuthorityDoc(_Strict):
    """The competent authority a party declares, and the level it is cleared to hold."""

    name: str
    cleared_to: str
    source: Source = ""


class PartyDoc(_Strict):
    """A party with its national ladder."""

    id: PartyId
    name: str
    aliases: list[PartyId] = Field(
        default_factory=list,
        description="Other codes a user may type for this party (ROK for KOR): accepted on the command line "
        "and echoed, never in signed reports or the exchange's API.",
    )
    kind: Literal["state", "intl_org", "threat_actor"] = "state"
    ladder: list[LevelDoc] = Field(default_factory=list)
    authority: AuthorityDoc | None = None
    source: Source = ""


class TermDoc(_Strict):
    """Fixed term from entry into force; ``renewal_years`` null means it simply expires."""

    years: int = Field(ge=1, le=100, strict=True)
    renewal_years: int | None = Field(default=1, ge=1, le=100, strict=True)
    source: Source = ""


class NoticeDoc(_Strict):
    """Termination notice period."""

    days: int = Field(ge=0, le=36_600, strict=True)
    reckoning: Literal["before_term_end", "after_receipt"] = "before_term_end"
    source: Source = ""


class AgreementDoc(_Strict):
    """A security agreement or arrangement."""

    id: Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9-]{1,62}$")]
    name: str
    parties: list[PartyId] = Field(min_length=2)
    kind: Literal["bilateral", "multilateral", "arrangement"] = "bilateral"
    legally_binding: bool = True
    timezone: str | None = None
    term: TermDoc | None = None
    notice: NoticeDoc | None = None
    scope: list[str] = Field(default_factory=lambda: ["*"])
    common_levels: list[str] = Field(default_factory=list, description="common levels, highest first")
    max_level: str | None = None
    equivalence: dict[str, dict[PartyId, list[str]]] = Field(
        default_factory=dict, description="common level -> party -> national levels (first is stamped)"
    )
    direct: bool = True
    hub: PartyId | None = None
    consent_required: bool = True
    relay_delay: Duration | None = Field(default=None, description="modelling assumption for a hub's relay")
    relay_delay_source: Source = ""
    post_termination_protection: bool = True
    articles: dict[str, str] = Field(default_factory=dict)
    source: Source = ""


EventKindDoc = Literal[
    "signature", "entry_into_force", "notice", "suspension", "revival", "withdrawal", "termination", "amendment"
]


class AmendmentDoc(_Strict):
    """What an amendment changes."""

    scope: list[str] | None = None
    max_level: str | None = None


class EventDoc(_Strict):
    """An agreement event. ``at`` is when it happened (for a notice, when received)."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,80}$")]
    agreement: str
    kind: EventKindDoc
    at: Instant
    by: PartyId | None = None
    effective: Instant | None = None
    changes: AmendmentDoc | None = None
    note: str = ""
    source: Source = ""


class CaveatsDoc(_Strict):
    """Originator caveats on a report."""

    rel_to: list[PartyId] | None = None
    noforn: bool = False
    orcon: bool = False


class ReportDoc(_Strict):
    """A report in the record (e.g. a tracking report of a DPRK launch)."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,80}$")]
    originator: PartyId
    topic: TopicId
    level: str
    created: Instant
    title: str = ""
    caveats: CaveatsDoc | None = None
    recipients: list[PartyId] | None = None
    source: Source = ""


class ProvisionDoc(_Strict):
    """Information provided under an agreement: one dated exchange (``date``) or a count
    known only to fall within ``from``–``to`` (same calendar year)."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,80}$")]
    agreement: str
    count: int = Field(default=1, ge=1, le=1_000_000, strict=True)
    date: Instant | None = None
    from_: Instant | None = Field(default=None, alias="from")
    to: Instant | None = None
    by: PartyId | None = None
    note: str = ""
    source: Source = ""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SourceDoc(_Strict):
    """An entry of the sources list that tags cite by id (``[V S11]`` cites ``S11``), as recorded."""

    id: Annotated[str, Field(pattern=r"^S[0-9]+$", description="S and a number, as tags cite it")]
    title: str = Field(min_length=1, description="title or description of the source")
    date: str = Field(default="", description="its date as the list gives it (e.g. '22 Aug 2019'), if any")
    links: list[Annotated[str, Field(pattern=r"^https?://\S+$")]] = Field(
        default_factory=list, description="addresses as recorded"
    )
    note: str = ""


class ScenarioDoc(_Strict):
    """A gsomia scenario file."""

    scenario: ScenarioHeader
    topics: list[TopicDoc] = Field(default_factory=list)
    parties: list[PartyDoc]
    agreements: list[AgreementDoc]
    events: list[EventDoc] = Field(default_factory=list)
    reports: list[ReportDoc] = Field(default_factory=list)
    provisions: list[ProvisionDoc] = Field(default_factory=list)
    sources: list[SourceDoc] = Field(
        default_factory=list,
        description="the sources the tags cite; when given, every source id a tag cites must be listed",
    )


class WhatIfDoc(_Strict):
    """A what-if file: hypothetical events to add and recorded events to drop."""

    name: str = "what-if"
    description: str = ""
    add: list[EventDoc] = Field(default_factory=list)
    drop: list[str] = Field(default_factory=list)


QuestionDoc.model_rebuild()
ScenarioHeader.model_rebuild()
ScenarioDoc.model_rebuild()
