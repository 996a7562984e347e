"""An agreement's lifecycle, derived from its events for any instant (docs/design.md §3).

Status is never stored: :func:`derive_timeline` replays an agreement's events and returns
the piecewise-constant sequence of states; :func:`status_at` reads it at an instant. The
calendar it follows (terms, notice deadlines, in-time and late notices) is the agreement's
own (:mod:`gsomia.domain.agreements`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum

from gsomia.domain.agreements import Agreement, AgreementEvent, EventKind, assess_notice
from gsomia.domain.instants import require_aware
from gsomia.domain.topics import Scope

BEGINNING = datetime.min.replace(tzinfo=UTC)


class State(StrEnum):
    """Derived state of an agreement at an instant."""

    NOT_YET_IN_FORCE = "not_yet_in_force"
    IN_FORCE = "in_force"
    NOTICE_PENDING = "notice_pending"
    NOTICE_SUSPENDED = "notice_suspended"
    TERMINATED = "terminated"
    EXPIRED = "expired"

    @property
    def in_force(self) -> bool:
        """In force: information may flow (a pending or suspended notice does not stop it)."""
        return self in (State.IN_FORCE, State.NOTICE_PENDING, State.NOTICE_SUSPENDED)


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of time from ``start`` during which the state does not change.

    ``ends_at``: when a pending notice (or a term without renewal) will end the agreement.
    ``cause``: id of the event that opened the segment (None for a derived end).
    """

    start: datetime
    state: State
    ends_at: datetime | None = None
    cause: str | None = None
    notice: str | None = None


@dataclass(frozen=True, slots=True)
class Anomaly:
    """An event that cannot apply in the state it meets (e.g. a suspension with no notice
    pending). Validation reports these; the lifecycle ignores the event rather than guess."""

    event: str
    message: str


@dataclass(frozen=True, slots=True)
class Timeline:
    """The derived lifecycle of one agreement: states over time, from its events."""

    agreement: Agreement
    events: tuple[AgreementEvent, ...]
    segments: tuple[Segment, ...]
    entry: datetime | None
    anomalies: tuple[Anomaly, ...]
    # start instants of the segments and of the scope/maximum pieces (sorted, for bisection;
    # plain attributes because routing reads them on every decision)
    starts: list[datetime] = field(init=False, repr=False, compare=False)

    term_starts: list[datetime] = field(init=False, repr=False, compare=False)
    _term_values: list[tuple[Scope, str | None]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts", [s.start for s in self.segments])
        # scope and maximum level as amended over time (Art. 21.2), as sorted pieces
        starts, values = [BEGINNING], [(self.agreement.scope, self.agreement.max_level)]
        for ev in self.events:
            if ev.kind is not EventKind.AMENDMENT or not ev.changes:
                continue
            when = ev.effective or ev.at
            scope, max_level = values[-1]
            new_scope = ev.changes.get("scope")
            if isinstance(new_scope, Scope):
                scope = new_scope
            if "max_level" in ev.changes:
                new_max = ev.changes["max_level"]
                max_level = new_max if isinstance(new_max, str) else None
            if when == starts[-1]:
                values[-1] = (scope, max_level)
            else:
                starts.append(when)
                values.append((scope, max_level))
        object.__setattr__(self, "term_starts", starts)
        object.__setattr__(self, "_term_values", values)

    def segment_at(self, at: datetime) -> Segment:
        """The segment in effect at ``at``."""
        return self.segments[bisect.bisect_right(self.starts, at) - 1]

    def state_at(self, at: datetime) -> State:
        """The state at ``at``."""
        return self.segments[bisect.bisect_right(self.starts, at) - 1].state

    def change_points(self) -> tuple[datetime, ...]:
        """Instants at which the state changes."""
        return tuple(self.starts[1:])

    def in_force_windows(self) -> list[tuple[datetime, datetime | None]]:
        """Maximal half-open intervals during which the agreement is in force."""
        out: list[tuple[datetime, datetime | None]] = []
        open_start: datetime | None = None
        for seg in self.segments:
            if seg.state.in_force and open_start is None:
                open_start = seg.start
            elif not seg.state.in_force and open_start is not None:
                out.append((open_start, seg.start))
                open_start = None
        if open_start is not None:
            out.append((open_start, None))
        return out

    def term_at(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The term containing ``at`` while in force, else None."""
        if self.entry is None or not self.state_at(at).in_force:
            return None
        return self.agreement.term_boundaries_after(self.entry, at)

    def terms_at(self, at: datetime) -> tuple[Scope, str | None]:
        """Scope and maximum level in effect at ``at``, after amendments (Art. 21.2)."""
        return self._term_values[bisect.bisect_right(self.term_starts, at) - 1]

    def segment_index(self, at: datetime) -> int:
        """Index of the segment in effect at ``at``."""
        return bisect.bisect_right(self.starts, at) - 1

    def term_index(self, at: datetime) -> int:
        """Index of the scope/maximum piece in effect at ``at`` (see :meth:`terms_at`)."""
        return bisect.bisect_right(self.term_starts, at) - 1

    def term_piece(self, index: int) -> tuple[Scope, str | None]:
        """The scope and maximum level of piece ``index``."""
        return self._term_values[index]

    def term_change_points(self) -> tuple[datetime, ...]:
        """Instants at which an amendment changes the scope or maximum level."""
        return tuple(self.term_starts[1:])

    @property
    def unknown_from(self) -> datetime | None:
        """From when the agreement's state is not known, or None if it is known throughout.

        An agreement with no recorded entry into force (KOR-AUS-CMI: signed in 2009, the
        date it entered into force not read) is derived as not yet in force, but after its
        signature that is a gap in the record, not a fact: it may well be in force. So its
        state is unknown from its first signature (from the beginning if nothing about it
        is recorded), and coverage must not report a gap there (DESIGN §3, rule 7 still
        denies any release under it: nothing is released on a guess).
        """
        if self.entry is not None:
            return None
        signed = [e.at for e in self.events if e.kind is EventKind.SIGNATURE]
        return min(signed) if signed else BEGINNING

    def unknown_at(self, at: datetime) -> bool:
        """True if the state at ``at`` is not known (see :attr:`unknown_from`)."""
        start = self.unknown_from
        return start is not None and at >= start


def derive_timeline(agreement: Agreement, events: Iterable[AgreementEvent]) -> Timeline:
    """Replay ``events`` of ``agreement`` into a :class:`Timeline` (pure, total).

    Events that do not fit the state they meet are recorded as anomalies and otherwise
    ignored; validation turns anomalies into errors so nothing is loaded on a guess.
    """
    evs = tuple(sorted((e for e in events if e.agreement == agreement.id), key=AgreementEvent.sort_key))
    segments: list[Segment] = [Segment(BEGINNING, State.NOT_YET_IN_FORCE)]
    anomalies: list[Anomaly] = []
    entry: datetime | None = None
    signed = False
    signers: set[str | None] = set()
    state = State.NOT_YET_IN_FORCE
    pending_notice: AgreementEvent | None = None
    scheduled_end: datetime | None = None  # a pending notice's end, or expiry without renewal
    end_state = State.TERMINATED

    def push(at: datetime, new_state: State, ends_at: datetime | None, cause: str | None) -> None:
        nonlocal state
        state = new_state
        notice_id = pending_notice.id if pending_notice is not None else None
        if segments[-1].start == at:
            segments[-1] = Segment(at, new_state, ends_at, cause, notice_id)
        else:
            segments.append(Segment(at, new_state, ends_at, cause, notice_id))

    def expiry_without_renewal() -> datetime | None:
        if entry is None or agreement.term is None or agreement.term.renewal_years is not None:
            return None
        bounds = agreement.term_boundaries_after(entry, entry)
        return bounds[1] if bounds else None

    for ev in evs:
        if scheduled_end is not None and scheduled_end <= ev.at and state.in_force:
            push(scheduled_end, end_state, None, None)
            scheduled_end = None
        if state in (State.TERMINATED, State.EXPIRED):
            anomalies.append(Anomaly(ev.id, f"{ev.kind} after the agreement ended ({state})"))
            continue
        if ev.by is not None and not agreement.has(ev.by):
            anomalies.append(Anomaly(ev.id, f"{ev.by} is not a party to {agreement.id}"))
            continue
        kind = ev.kind
        if kind is EventKind.SIGNATURE:
            # A multilateral text is signed party by party (TISA: USA on 23 Dec 2014, the
            # others on 26 Dec); only the same signer signing twice is an anomaly.
            if ev.by in signers:
                anomalies.append(Anomaly(ev.id, "already signed" + (f" by {ev.by}" if ev.by else "")))
            signers.add(ev.by)
            signed = True
        elif kind is EventKind.ENTRY_INTO_FORCE:
            if entry is not None:
                anomalies.append(Anomaly(ev.id, "a second entry into force"))
                continue
            if ev.effective is not None and ev.effective != ev.at:
                anomalies.append(
                    Anomaly(ev.id, "an entry into force takes effect when it happens: give that instant as 'at'")
                )
                continue
            entry = ev.at
            expiry = expiry_without_renewal()
            if expiry is not None:
                scheduled_end, end_state = expiry, State.EXPIRED
            push(entry, State.IN_FORCE, expiry, ev.id)
        elif kind is EventKind.NOTICE:
            if state not in (State.IN_FORCE, State.NOTICE_SUSPENDED):
                anomalies.append(Anomaly(ev.id, f"a notice needs the agreement in force, not {state}"))
                continue
            if ev.by is None:
                anomalies.append(Anomaly(ev.id, "a notice must say which party gave it (by PARTY)"))
                continue
            assert entry is not None  # noqa: S101 - in force implies an entry into force
            assessed = assess_notice(agreement, entry, ev.at, ev.effective)
            expiry = expiry_without_renewal()
            pending_notice = ev
            if assessed.ends_at <= ev.at:  # takes effect on receipt
                scheduled_end = None
                push(ev.at, State.TERMINATED, None, ev.id)
                continue
            if expiry is not None and expiry < assessed.ends_at:
                scheduled_end, end_state = expiry, State.EXPIRED
            else:
                scheduled_end, end_state = assessed.ends_at, State.TERMINATED
            push(ev.at, State.NOTICE_PENDING, scheduled_end, ev.id)
        elif kind is EventKind.SUSPENSION:
            if state is not State.NOTICE_PENDING:
                anomalies.append(Anomaly(ev.id, f"nothing to suspend: no notice is pending ({state})"))
                continue
            scheduled_end = expiry_without_renewal()
            end_state = State.EXPIRED
            push(ev.at, State.NOTICE_SUSPENDED, scheduled_end, ev.id)
        elif kind is EventKind.REVIVAL:
            if state is not State.NOTICE_SUSPENDED:
                anomalies.append(Anomaly(ev.id, f"nothing to revive: no notice is suspended ({state})"))
                continue
            if ev.effective is None or ev.effective < ev.at:
                anomalies.append(
                    Anomaly(
                        ev.id, "a revival must name when it takes effect (effective INSTANT, not before the revival)"
                    )
                )
                continue
            scheduled_end, end_state = ev.effective, State.TERMINATED
            push(ev.at, State.NOTICE_PENDING, scheduled_end, ev.id)
        elif kind is EventKind.WITHDRAWAL:
            if state not in (State.NOTICE_PENDING, State.NOTICE_SUSPENDED):
                anomalies.append(Anomaly(ev.id, f"nothing to withdraw: no notice is pending or suspended ({state})"))
                continue
            pending_notice = None
            scheduled_end = expiry_without_renewal()
            end_state = State.EXPIRED
            push(ev.at, State.IN_FORCE, scheduled_end, ev.id)
        elif kind is EventKind.TERMINATION:
            if not state.in_force:
                anomalies.append(Anomaly(ev.id, f"cannot terminate an agreement that is {state}"))
                continue
            when = ev.effective or ev.at
            if when <= ev.at:
                scheduled_end = None
                push(ev.at, State.TERMINATED, None, ev.id)
            else:
                pending_notice = ev
                scheduled_end, end_state = when, State.TERMINATED
                push(ev.at, State.NOTICE_PENDING, when, ev.id)
        elif kind is EventKind.AMENDMENT and not state.in_force and not signed:
            anomalies.append(Anomaly(ev.id, "an amendment needs a signed agreement"))
    if scheduled_end is not None and state.in_force:
        push(scheduled_end, end_state, None, None)
    return Timeline(agreement, evs, tuple(segments), entry, tuple(anomalies))


@dataclass(frozen=True, slots=True)
class Status:
    """An agreement's derived status at an instant (what ``gsomia status`` shows)."""

    agreement: Agreement
    at: datetime
    state: State
    since: datetime | None
    term: tuple[datetime, datetime] | None
    notice_deadline: date | None
    ends_at: datetime | None
    notice: str | None
    events: tuple[AgreementEvent, ...]
    unknown: bool = False  # no entry into force recorded: the derived state is not a known fact

    @property
    def in_force(self) -> bool:
        """True while information may flow under the agreement."""
        return self.state.in_force


def status_at(timeline: Timeline, at: datetime) -> Status:
    """Derive the status of ``timeline``'s agreement at ``at``.

    ``ends_at`` is the scheduled end while in force (a pending notice, or expiry without
    renewal), or the instant it ended once terminated or expired. ``notice_deadline`` is
    the last day a notice could still be received to end it at the current term's end.
    """
    at = require_aware(at)
    seg = timeline.segment_at(at)
    term = timeline.term_at(at)
    deadline = timeline.agreement.notice_deadline(term[1]) if term else None
    ends_at = (
        seg.ends_at if seg.state.in_force else (seg.start if seg.state in (State.TERMINATED, State.EXPIRED) else None)
    )
    return Status(
        agreement=timeline.agreement,
        at=at,
        state=seg.state,
        since=None if seg.start == BEGINNING else seg.start,
        term=term,
        notice_deadline=deadline,
        ends_at=ends_at,
        notice=seg.notice,
        events=tuple(e for e in timeline.events if e.at <= at),
        unknown=timeline.unknown_at(at),
    )
