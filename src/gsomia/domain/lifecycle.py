"""An agreement's lifecycle, derived from its events for any instant (docs/design.md §3).

Status is never stored: :func:`derive_timeline` replays an agreement's events and returns
the piecewise-constant sequence of states; :func:`status_at` reads it at an instant. The
calendar it follows (terms, notice deadlines, in-time and late notices) is the agreement's
own (:mod:`gsomia.domain.agreements`).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
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
        # in the order they take effect (those taking effect together, in the order recorded):
        # an amendment recorded later may take effect earlier, and until one takes effect its
        # changes are no part of the terms
        amendments = sorted(
            (ev for ev in self.events if ev.kind is EventKind.AMENDMENT and ev.changes),
            key=lambda ev: ev.effective or ev.at,
        )
        starts, values = [BEGINNING], [(self.agreement.scope, self.agreement.max_level)]
        for ev in amendments:
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


class _Replay:
    """One agreement's events replayed in time order: the segments derived so far and what
    the next event meets (docs/design.md §3; Japan–Korea GSOMIA Art. 21). One method per event
    kind; an event that does not fit the state it meets is an anomaly and changes nothing."""

    __slots__ = (
        "agreement",
        "anomalies",
        "end_state",
        "entry",
        "pending_notice",
        "scheduled_end",
        "segments",
        "signed",
        "signers",
        "state",
    )

    def __init__(self, agreement: Agreement) -> None:
        self.agreement = agreement
        self.segments: list[Segment] = [Segment(BEGINNING, State.NOT_YET_IN_FORCE)]
        self.anomalies: list[Anomaly] = []
        self.entry: datetime | None = None
        self.signed = False
        self.signers: set[str | None] = set()
        self.state = State.NOT_YET_IN_FORCE
        self.pending_notice: AgreementEvent | None = None
        self.scheduled_end: datetime | None = None  # a pending notice's end, or expiry without renewal
        self.end_state = State.TERMINATED

    def push(self, at: datetime, new_state: State, ends_at: datetime | None, cause: str | None) -> None:
        """Enter ``new_state`` at ``at`` (replacing a segment that starts at the same instant)."""
        self.state = new_state
        notice_id = self.pending_notice.id if self.pending_notice is not None else None
        if self.segments[-1].start == at:
            self.segments[-1] = Segment(at, new_state, ends_at, cause, notice_id)
        else:
            self.segments.append(Segment(at, new_state, ends_at, cause, notice_id))

    def expiry_without_renewal(self) -> datetime | None:
        """The end of the first term of an agreement that is not renewed, if it is one."""
        term = self.agreement.term
        if self.entry is None or term is None or term.renewal_years is not None:
            return None
        bounds = self.agreement.term_boundaries_after(self.entry, self.entry)
        return bounds[1] if bounds else None

    def flag(self, ev: AgreementEvent, message: str) -> None:
        """Record that ``ev`` cannot apply where it stands."""
        self.anomalies.append(Anomaly(ev.id, message))

    def apply(self, ev: AgreementEvent) -> None:
        """Replay one event, after any scheduled end that comes first."""
        if self.scheduled_end is not None and self.scheduled_end <= ev.at and self.state.in_force:
            self.push(self.scheduled_end, self.end_state, None, None)
            self.scheduled_end = None
        if self.state in (State.TERMINATED, State.EXPIRED):
            self.flag(ev, f"{ev.kind} after the agreement ended ({self.state})")
            return
        if ev.by is not None and not self.agreement.has(ev.by):
            self.flag(ev, f"{ev.by} is not a party to {self.agreement.id}")
            return
        _HANDLERS[ev.kind](self, ev)

    def finish(self) -> None:
        """End the replay: a scheduled end after the last event still happens."""
        if self.scheduled_end is not None and self.state.in_force:
            self.push(self.scheduled_end, self.end_state, None, None)

    def sign(self, ev: AgreementEvent) -> None:
        """A signature. A multilateral text is signed party by party (TISA: USA on 23 Dec
        2014, the others on 26 Dec); only the same signer signing twice is an anomaly."""
        if ev.by in self.signers:
            self.flag(ev, "already signed" + (f" by {ev.by}" if ev.by else ""))
        self.signers.add(ev.by)
        self.signed = True

    def enter_into_force(self, ev: AgreementEvent) -> None:
        """Entry into force: the first term starts (and, without renewal, its end is scheduled)."""
        if self.entry is not None:
            self.flag(ev, "a second entry into force")
            return
        if ev.effective is not None and ev.effective != ev.at:
            self.flag(ev, "an entry into force takes effect when it happens: give that instant as 'at'")
            return
        self.entry = ev.at
        expiry = self.expiry_without_renewal()
        if expiry is not None:
            self.scheduled_end, self.end_state = expiry, State.EXPIRED
        self.push(self.entry, State.IN_FORCE, expiry, ev.id)

    def give_notice(self, ev: AgreementEvent) -> None:
        """A termination notice: it ends the agreement when the agreement's calendar says
        (Art. 21.3: at the end of the current term if received in time, else the next)."""
        if self.state not in (State.IN_FORCE, State.NOTICE_SUSPENDED):
            self.flag(ev, f"a notice needs the agreement in force, not {self.state}")
            return
        if ev.by is None:
            self.flag(ev, "a notice must say which party gave it (by PARTY)")
            return
        assert self.entry is not None  # noqa: S101 - in force implies an entry into force
        assessed = assess_notice(self.agreement, self.entry, ev.at, ev.effective)
        expiry = self.expiry_without_renewal()
        self.pending_notice = ev
        if assessed.ends_at <= ev.at:  # takes effect on receipt
            self.scheduled_end = None
            self.push(ev.at, State.TERMINATED, None, ev.id)
            return
        if expiry is not None and expiry < assessed.ends_at:
            self.scheduled_end, self.end_state = expiry, State.EXPIRED
        else:
            self.scheduled_end, self.end_state = assessed.ends_at, State.TERMINATED
        self.push(ev.at, State.NOTICE_PENDING, self.scheduled_end, ev.id)

    def suspend(self, ev: AgreementEvent) -> None:
        """A pending notice suspended: the agreement stays in force (Korea, 2019-11-22)."""
        if self.state is not State.NOTICE_PENDING:
            self.flag(ev, f"nothing to suspend: no notice is pending ({self.state})")
            return
        self.scheduled_end = self.expiry_without_renewal()
        self.end_state = State.EXPIRED
        self.push(ev.at, State.NOTICE_SUSPENDED, self.scheduled_end, ev.id)

    def revive(self, ev: AgreementEvent) -> None:
        """A suspended notice revived, with effect from the instant it names."""
        if self.state is not State.NOTICE_SUSPENDED:
            self.flag(ev, f"nothing to revive: no notice is suspended ({self.state})")
            return
        if ev.effective is None or ev.effective < ev.at:
            self.flag(ev, "a revival must name when it takes effect (effective INSTANT, not before the revival)")
            return
        self.scheduled_end, self.end_state = ev.effective, State.TERMINATED
        self.push(ev.at, State.NOTICE_PENDING, self.scheduled_end, ev.id)

    def withdraw(self, ev: AgreementEvent) -> None:
        """A notice withdrawn: plain annual extension resumes (Korea, 2023-03-21)."""
        if self.state not in (State.NOTICE_PENDING, State.NOTICE_SUSPENDED):
            self.flag(ev, f"nothing to withdraw: no notice is pending or suspended ({self.state})")
            return
        self.pending_notice = None
        self.scheduled_end = self.expiry_without_renewal()
        self.end_state = State.EXPIRED
        self.push(ev.at, State.IN_FORCE, self.scheduled_end, ev.id)

    def terminate(self, ev: AgreementEvent) -> None:
        """A termination, at once or from its effective instant."""
        if not self.state.in_force:
            self.flag(ev, f"cannot terminate an agreement that is {self.state}")
            return
        when = ev.effective or ev.at
        if when <= ev.at:
            self.scheduled_end = None
            self.push(ev.at, State.TERMINATED, None, ev.id)
        else:
            self.pending_notice = ev
            self.scheduled_end, self.end_state = when, State.TERMINATED
            self.push(ev.at, State.NOTICE_PENDING, when, ev.id)

    def amend(self, ev: AgreementEvent) -> None:
        """An amendment: it changes scope and maximum (read by :class:`Timeline`), not the state."""
        if not self.state.in_force and not self.signed:
            self.flag(ev, "an amendment needs a signed agreement")


_HANDLERS: dict[EventKind, Callable[[_Replay, AgreementEvent], None]] = {
    EventKind.SIGNATURE: _Replay.sign,
    EventKind.ENTRY_INTO_FORCE: _Replay.enter_into_force,
    EventKind.NOTICE: _Replay.give_notice,
    EventKind.SUSPENSION: _Replay.suspend,
    EventKind.REVIVAL: _Replay.revive,
    EventKind.WITHDRAWAL: _Replay.withdraw,
    EventKind.TERMINATION: _Replay.terminate,
    EventKind.AMENDMENT: _Replay.amend,
}
"""How each kind of event is replayed (every kind has its handler)."""


def derive_timeline(agreement: Agreement, events: Iterable[AgreementEvent]) -> Timeline:
    """Replay ``events`` of ``agreement`` into a :class:`Timeline` (pure, total).

    Events that do not fit the state they meet are recorded as anomalies and otherwise
    ignored; validation turns anomalies into errors so nothing is loaded on a guess.
    """
    evs = tuple(sorted((e for e in events if e.agreement == agreement.id), key=AgreementEvent.sort_key))
    replay = _Replay(agreement)
    for ev in evs:
        replay.apply(ev)
    replay.finish()
    return Timeline(agreement, evs, tuple(replay.segments), replay.entry, tuple(replay.anomalies))


def term_ends(timeline: Timeline, lo: datetime, hi: datetime) -> list[datetime]:
    """The end of every term that runs at some instant of ``[lo, hi)`` after entry into force,
    in order; none without a term. A term that is not renewed ends once: nothing follows it.
    """
    entry = timeline.entry
    ends: list[datetime] = []
    if entry is None:
        return ends
    t = max(entry, lo)
    while t < hi:
        term = timeline.agreement.term_boundaries_after(entry, t)
        if term is None or term[1] <= t:
            break
        if timeline.state_at(t) is not State.NOT_YET_IN_FORCE:
            ends.append(term[1])
        t = term[1]
    return ends


def releases_agree_until(old: Timeline, new: Timeline, at: datetime) -> bool:
    """Whether ``new`` says what ``old`` says, as far as releases go, about every instant up to
    and including ``at``: whether the agreement is in force, and its scope and maximum level.

    An event recorded now must not rewrite what decisions up to now relied on (an event whose
    effect lies in the past would); a notice received earlier whose effect is still to come
    changes nothing up to now and agrees.
    """
    return _releases_until(old, at) == _releases_until(new, at)


_Releases = tuple[list[tuple[datetime, bool]], list[tuple[datetime, tuple[Scope, str | None]]]]


def _releases_until(timeline: Timeline, at: datetime) -> _Releases:
    force: list[tuple[datetime, bool]] = []
    for seg in timeline.segments:
        if seg.start > at:
            break
        if not force or force[-1][1] != seg.state.in_force:
            force.append((seg.start, seg.state.in_force))
    terms: list[tuple[datetime, tuple[Scope, str | None]]] = []
    for index, start in enumerate(timeline.term_starts):
        if start > at:
            break
        piece = timeline.term_piece(index)
        if not terms or terms[-1][1] != piece:
            terms.append((start, piece))
    return force, terms


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
