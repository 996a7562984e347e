"""Operator actions: agreement events recorded over the API, and the exercise clock.

A notice, suspension, revival, withdrawal, amendment or termination recorded here changes the
decisions made from the next instant on, because release decisions derive an agreement's
status from its events. Deliveries already made are never touched: they keep their markings
and handling rules (Japan–Korea GSOMIA Art. 21.4).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from gsomia.domain.agreements import AgreementEvent
from gsomia.domain.instants import parse_instant, utc_iso
from gsomia.domain.lifecycle import Timeline, derive_timeline, releases_agree_until, status_at
from gsomia.errors import Conflict, StorageError, UnknownEntity
from gsomia.scenario.loader import parse_scenario_document
from gsomia.services.analysis import presenters as views
from gsomia.services.exchange.access import Action, Principal, authorize
from gsomia.services.exchange.context import UTC_ZONE, ExchangeContext, Stale, new_id
from gsomia.storage.exchange import Tx
from gsomia.storage.ledger import PUBLIC
from gsomia.storage.store import Store, StoredEvent
from gsomia.storage.writer import Outcome

__all__ = ["EventSpec", "OperatorService"]

_ATTEMPTS = 5
"""How many times an event is checked again on a record that another request changed."""

_JUST_AFTER = timedelta(microseconds=1)
"""An event recorded without ``at`` happens this long after its transaction's instant: after the
decisions made at that instant (on the record without it), at the next instant a decision can
have."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventSpec:
    """An agreement event as an operator records it (instants as ISO 8601 text)."""

    kind: str
    at: str | None = None
    by: str | None = None
    effective: str | None = None
    note: str = ""
    source: str = ""
    id: str | None = None
    changes: dict[str, Any] | None = None


class OperatorService:
    """Operator actions: agreement events that change future release decisions at once, and the
    exercise clock."""

    def __init__(self, ctx: ExchangeContext) -> None:
        self.ctx = ctx

    def record_event(self, principal: Principal, agreement_id: str, spec: EventSpec) -> dict[str, Any]:
        """Validate and record an operator's agreement event, with its ledger entry.

        The event is checked exactly as a scenario file's event would be (kind, instants,
        the notifying party), against the stored record — the record its transaction sees:
        an event another request recorded meanwhile (a withdrawal beside this suspension) makes
        this one be checked again, never stored on a check against the record before it.
        Without ``at`` it happens just after the instant of its transaction, after every
        decision committed before it (and those in its own transaction), which were made
        without it. With one, it may not change the release terms of an instant up to then
        (whether the agreement was in force, its scope or maximum level): decisions relied on
        them.

        Raises:
            NotPermitted: the principal is not an operator.
            UnknownEntity: no such agreement.
            ValidationFailed: the event is not valid for this agreement.
            Conflict: the event id is already used, the event would change the past, or the
                record kept changing.
            StorageError: if no scenario is loaded or the database fails.
        """
        authorize(principal, Action.RECORD_EVENT)
        ctx = self.ctx
        for _attempt in range(_ATTEMPTS):
            found = ctx.store.read_versioned_document()
            if found is None:
                raise StorageError("no scenario is loaded: run 'gsomia scenario load' first")
            document, version = found
            # checked first outside the writer, so a bad event is refused without holding it
            _check_event(document, agreement_id, spec, spec.at or utc_iso(ctx.shared_clock().now()))

            def job(s: Tx, document: dict[str, Any] = document, version: str = version) -> Outcome[_Checked]:
                return self._record(s, principal, document, version, agreement_id, spec)

            try:
                checked = ctx.committer.run(job)
            except Stale:
                continue
            net = ctx.records.network()
            status = status_at(net.timelines[agreement_id], ctx.clock.now())
            return {
                "event": views.event_json(checked.event, UTC_ZONE),
                "leaf_index": checked.leaf,
                "status": views.status_json(status),
            }
        raise Conflict("the agreement record kept changing while this event was recorded; record it again")

    def _record(
        self, s: Tx, principal: Principal, document: dict[str, Any], version: str, agreement_id: str, spec: EventSpec
    ) -> Outcome[_Checked]:
        """The writer's part of :meth:`record_event`: check on the record this transaction sees, at
        its instant, then store and ledger the event.

        Raises:
            Stale: the record changed since ``document`` was read.
        """
        ctx = self.ctx
        ctx.require_principal(s, principal)
        ctx.require_record(s, version)  # ``document`` is the record this transaction writes to
        recorded = ctx.instant(s)
        now = recorded + _JUST_AFTER
        checked = _check_event(document, agreement_id, spec, spec.at or utc_iso(now))
        if not releases_agree_until(checked.before, checked.after, recorded):
            raise Conflict(
                f"this event would change whether {agreement_id} was in force, or its scope or maximum level, "
                f"before now ({utc_iso(recorded)}), which decisions already relied on: record it at a later instant, "
                "or give none (it then happens now)"
            )
        stored = checked.stored
        # The stored record version moves with the event: every later action, in this
        # transaction or another process's, sees it and decides on the new record.
        ctx.store.add_event(stored, now=recorded, session=s)
        if spec.at is None:
            # No later commit, of this process or another, is decided at an instant before it.
            ctx.stamp_after(s, now)
        leaf = ctx.append(
            s,
            "agreement_event",
            recorded,
            {
                "event": stored.id,
                "agreement": stored.agreement,
                "kind": stored.kind,
                "event_at": utc_iso(stored.at),
                "by": stored.by,
                "effective": utc_iso(stored.effective) if stored.effective else None,
                "recorded_by": principal.id,
            },
            parties=[PUBLIC],
        )
        return Outcome(replace(checked, leaf=leaf), (ctx.records.invalidate,))

    def advance_clock(self, principal: Principal, at: str) -> datetime:
        """Move the exercise clock forward to ``at`` (operator, exercise mode only).

        Consent requests that run out by then are expired at once (by the sweep).

        Raises:
            NotPermitted: the principal is not an operator, or exercise mode is off.
            Conflict: ``at`` is before the exercise clock.
            InvalidInput: ``at`` is not an instant with an offset.
        """
        authorize(principal, Action.SET_CLOCK)
        to = parse_instant(at, UTC_ZONE)
        ctx = self.ctx

        def job(s: Tx) -> Outcome[datetime]:
            ctx.require_principal(s, principal)
            ctx.sync_clock(s)  # another process may have moved it: never move it back
            moved = ctx.clock.advance(to)
            offset = ctx.clock.offset_us()
            if offset is not None:
                Store.set_clock_offset(s, offset)
            return Outcome(moved)

        return ctx.committer.run(job)


@dataclass(frozen=True, slots=True)
class _Checked:
    """An operator's event checked against a stored record: as stored, and the agreement's
    timeline without it and with it."""

    event: AgreementEvent
    stored: StoredEvent
    before: Timeline
    after: Timeline
    leaf: int = -1


def _check_event(document: dict[str, Any], agreement_id: str, spec: EventSpec, at: str) -> _Checked:
    """``spec`` at ``at`` as the record ``document`` reads it, checked as a scenario's event is.

    Raises:
        UnknownEntity: no such agreement.
        ValidationFailed: the event is not valid for this agreement.
        Conflict: the event id is already used.
    """
    known = {str(a.get("id")) for a in document.get("agreements", [])}
    if agreement_id not in known:
        raise UnknownEntity(f"unknown agreement {agreement_id!r} (known: {', '.join(sorted(known))})")
    event_id = _unused_event_id(document, spec.id)
    doc: dict[str, Any] = {"id": event_id, "agreement": agreement_id, "kind": spec.kind, "at": at}
    for name in ("by", "effective", "note", "source", "changes"):
        value = getattr(spec, name)
        if value:
            doc[name] = value
    record = parse_scenario_document({**document, "events": [*document.get("events", []), doc]}).record
    event = next(e for e in record.events if e.id == event_id)
    stored = StoredEvent(
        id=event.id,
        agreement=event.agreement,
        kind=event.kind.value,
        at=event.at,
        by=event.by,
        effective=event.effective,
        changes=dict(spec.changes) if spec.changes else None,  # JSON as given; validated above
        note=event.note,
        source=event.source,
        origin="operator",
    )
    agreement = record.agreements[agreement_id]
    before = derive_timeline(agreement, [e for e in record.events if e.id != event_id])
    return _Checked(event=event, stored=stored, before=before, after=derive_timeline(agreement, record.events))


def _unused_event_id(document: dict[str, Any], wanted: str | None) -> str:
    """``wanted``, or a fresh id if none is wanted.

    Checked before the record is parsed, which would refuse a duplicate as an invalid record:
    the id is taken, the event itself may be valid (docs/protocol.md: 409).

    Raises:
        Conflict: ``wanted`` is the id of a recorded event.
    """
    if not wanted:
        return new_id("op")
    if any(str(e.get("id")) == wanted for e in document.get("events", [])):
        raise Conflict(f"event id {wanted!r} is already used: choose another id or omit it")
    return wanted
