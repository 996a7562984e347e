"""Agreements, the events that happen to them, and their calendar (docs/design.md §3).

The reference case is the Japan–Korea GSOMIA, Art. 21: in force from the latter written
notification; one-year term, automatically extended annually unless either party gives
written notice ninety days in advance; after termination, information already provided
stays protected (Art. 21.4). The states an agreement goes through are derived from its
events by :mod:`gsomia.domain.lifecycle`, never stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

from gsomia.domain.instants import add_years, local_date, require_aware, start_of_day
from gsomia.domain.markings import EquivalenceTable
from gsomia.domain.topics import Scope
from gsomia.errors import InvalidInput


class EventKind(StrEnum):
    """What can happen to an agreement."""

    SIGNATURE = "signature"
    ENTRY_INTO_FORCE = "entry_into_force"
    NOTICE = "notice"
    SUSPENSION = "suspension"
    REVIVAL = "revival"
    WITHDRAWAL = "withdrawal"
    TERMINATION = "termination"
    AMENDMENT = "amendment"


# Order of events that share an instant: an agreement is signed before it enters into
# force; a notice is given before it is suspended, revived or withdrawn.
_SAME_INSTANT_ORDER = {k: i for i, k in enumerate(EventKind)}


@dataclass(frozen=True, slots=True, kw_only=True)
class AgreementEvent:
    """Something that happened (or, in a what-if, might have happened) to an agreement.

    ``at`` is when it happened; for a notice, when it was *received* (Art. 21.3 counts
    from receipt). ``effective`` is the instant a revival or termination names.
    ``changes`` carries an amendment's new scope or maximum level.
    """

    id: str
    agreement: str
    kind: EventKind
    at: datetime
    by: str | None = None
    effective: datetime | None = None
    note: str = ""
    source: str = ""
    hypothetical: bool = False
    changes: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id.strip():
            raise InvalidInput("an agreement event needs an id")
        object.__setattr__(self, "at", require_aware(self.at, f"event {self.id}"))
        if self.effective is not None:
            object.__setattr__(self, "effective", require_aware(self.effective, f"event {self.id} effective"))

    def sort_key(self) -> tuple[datetime, int, str]:
        """Chronological order, ties broken by kind then id."""
        return (self.at, _SAME_INSTANT_ORDER[self.kind], self.id)


@dataclass(frozen=True, slots=True)
class Term:
    """A fixed term from entry into force, optionally renewed.

    ``years``: length of the first term. ``renewal_years``: length of each automatic
    extension (GSOMIA Art. 21.3: one year), or None if the agreement simply expires.
    """

    years: int
    renewal_years: int | None = 1

    def __post_init__(self) -> None:
        if self.years < 1 or (self.renewal_years is not None and self.renewal_years < 1):
            raise InvalidInput("term and renewal lengths are whole years, at least 1")


class Reckoning(StrEnum):
    """How a termination notice period is counted."""

    BEFORE_TERM_END = "before_term_end"  # GSOMIA Art. 21.3: N days before the term's end
    AFTER_RECEIPT = "after_receipt"  # agreements without a term: ends N days after receipt


@dataclass(frozen=True, slots=True)
class NoticeRule:
    """The termination notice period and how it is reckoned."""

    days: int
    reckoning: Reckoning = Reckoning.BEFORE_TERM_END

    def __post_init__(self) -> None:
        if self.days < 0:
            raise InvalidInput("a notice period cannot be negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class Agreement:
    """A security agreement or arrangement between parties.

    ``direct``: whether members exchange with each other under it. A hub arrangement such as
    TISA has ``direct=False`` and a ``hub``: members exchange only through the hub, each leg
    protected by the bilateral agreement between its two ends (TISA para. 3–4).
    ``articles`` maps a provision (``equivalence``, ``third_party``, ``termination``,
    ``protection``, ``loss``) to the article that states it, for reasons and reports.
    """

    id: str
    name: str
    parties: tuple[str, ...]
    kind: str = "bilateral"
    legally_binding: bool = True
    timezone: str = "UTC"
    term: Term | None = None
    notice: NoticeRule | None = None
    scope: Scope = field(default_factory=lambda: Scope.of("*"))
    max_level: str | None = None
    equivalence: EquivalenceTable | None = None
    direct: bool = True
    hub: str | None = None
    consent_required: bool = True
    relay_delay: timedelta | None = None
    post_termination_protection: bool = True
    articles: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if len(set(self.parties)) != len(self.parties) or len(self.parties) < 2:
            raise InvalidInput(f"agreement {self.id}: needs at least two distinct parties")
        if self.hub is not None and self.hub not in self.parties:
            raise InvalidInput(f"agreement {self.id}: relay hub {self.hub} is not one of its parties")
        if self.notice and self.notice.reckoning is Reckoning.BEFORE_TERM_END and self.term is None:
            raise InvalidInput(f"agreement {self.id}: a notice counted before the term's end needs a term")

    def cite(self, provision: str) -> str:
        """``JPN-KOR-GSOMIA Art. 4`` or just the agreement id if the article is unknown."""
        art = self.articles.get(provision)
        return f"{self.id} {art}" if art else self.id

    def has(self, party: str) -> bool:
        """True if ``party`` is a party to this agreement."""
        return party in self.parties

    # --- calendar (Art. 21.3) -------------------------------------------------------------

    def term_boundaries_after(self, entry: datetime, at: datetime) -> tuple[datetime, datetime] | None:
        """The current term ``(start, end)`` containing ``at``, for an agreement in force
        since ``entry``; None without a term. Terms end at 00:00 local on the anniversary.

        Every anniversary is counted from the day of entry into force itself, never from the
        previous anniversary: an agreement in force since 29 February ends a term on
        28 February in a common year and on 29 February again in a leap year.
        """
        if self.term is None:
            return None
        start_day = local_date(entry, self.timezone)
        start = entry
        end = start_of_day(add_years(start_day, self.term.years), self.timezone)
        if self.term.renewal_years is None:
            return (start, end)
        k = 0
        while end <= at:
            k += 1
            start = end
            years = self.term.years + k * self.term.renewal_years
            end = start_of_day(add_years(start_day, years), self.timezone)
        return (start, end)

    def next_term_end(self, entry: datetime, term_end: datetime) -> datetime | None:
        """The end of the term after the one ending at ``term_end`` (None if no renewal),
        for an agreement in force since ``entry``."""
        if self.term is None or self.term.renewal_years is None:
            return None
        bounds = self.term_boundaries_after(entry, term_end)
        return bounds[1] if bounds else None

    def notice_deadline(self, term_end: datetime) -> date | None:
        """Last day a notice can be received to end the agreement at ``term_end``.

        The term's last day is the day before the anniversary; the notice must arrive the
        notice period before it: for the 2019 term, 2019-11-22 − 90 days = 2019-08-24.
        """
        if self.notice is None or self.notice.reckoning is not Reckoning.BEFORE_TERM_END:
            return None
        last_day = local_date(term_end, self.timezone) - timedelta(days=1)
        return last_day - timedelta(days=self.notice.days)


@dataclass(frozen=True, slots=True)
class NoticeAssessment:
    """How a notice received at ``received`` is reckoned."""

    received: datetime
    deadline: date | None
    in_time: bool | None
    ends_at: datetime


def assess_notice(
    agreement: Agreement, entry: datetime, received: datetime, effective: datetime | None = None
) -> NoticeAssessment:
    """When a termination notice received at ``received`` ends ``agreement``.

    A notice received by the deadline ends it when the current term ends; a late notice
    ends it when the following term ends (Art. 21.3). Without a term the period runs from
    the day of receipt: it ends at 00:00 local after ``days`` full days. Without any known
    notice rule the notice takes effect on the date it names, or when received.
    """
    rule = agreement.notice
    if rule is None:
        return NoticeAssessment(received, None, None, effective or received)
    if rule.reckoning is Reckoning.AFTER_RECEIPT:
        end_day = local_date(received, agreement.timezone) + timedelta(days=rule.days + 1)
        return NoticeAssessment(received, None, None, start_of_day(end_day, agreement.timezone))
    bounds = agreement.term_boundaries_after(entry, received)
    assert bounds is not None  # noqa: S101 - Agreement.__post_init__ requires a term here
    _start, term_end = bounds
    deadline = agreement.notice_deadline(term_end)
    assert deadline is not None  # noqa: S101 - a term and a notice rule give a deadline
    in_time = local_date(received, agreement.timezone) <= deadline
    if in_time:
        return NoticeAssessment(received, deadline, True, term_end)
    following = agreement.next_term_end(entry, term_end)
    return NoticeAssessment(received, deadline, False, following or term_end)
