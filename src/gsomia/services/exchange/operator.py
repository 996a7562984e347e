"""Operator actions: agreement events recorded over the API, and the exercise clock.

A notice, suspension, revival, withdrawal, amendment or termination recorded here changes the
decisions made from the next instant on, because release decisions derive an agreement's
status from its events. Deliveries already made are never touched: they keep their markings
and handling rules (Japan–Korea GSOMIA Art. 21.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gsomia.domain.instants import parse_instant, utc_iso
from gsomia.domain.lifecycle import status_at
from gsomia.errors import Conflict, StorageError, UnknownEntity
from gsomia.scenario.loader import parse_scenario_document
from gsomia.services.analysis import presenters as views
from gsomia.services.exchange.access import Action, Principal, authorize
from gsomia.services.exchange.context import UTC_ZONE, ExchangeContext, new_id
from gsomia.storage.exchange import Tx
from gsomia.storage.ledger import PUBLIC
from gsomia.storage.store import Store, StoredEvent
from gsomia.storage.writer import Outcome

__all__ = ["EventSpec", "OperatorService"]


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
        the notifying party), against the stored record.

        Raises:
            NotPermitted: the principal is not an operator.
            UnknownEntity: no such agreement.
            ValidationFailed: the event is not valid for this agreement.
            Conflict: the event id is already used.
            StorageError: if no scenario is loaded or the database fails.
        """
        authorize(principal, Action.RECORD_EVENT)
        ctx = self.ctx
        document = ctx.store.read_document()
        if document is None:
            raise StorageError("no scenario is loaded: run 'gsomia scenario load' first")
        known = {str(a.get("id")) for a in document.get("agreements", [])}
        if agreement_id not in known:
            raise UnknownEntity(f"unknown agreement {agreement_id!r} (known: {', '.join(sorted(known))})")
        now = ctx.shared_clock().now()
        event_id = _unused_event_id(document, spec.id)
        doc: dict[str, Any] = {
            "id": event_id,
            "agreement": agreement_id,
            "kind": spec.kind,
            "at": spec.at or utc_iso(now),
        }
        for name in ("by", "effective", "note", "source", "changes"):
            value = getattr(spec, name)
            if value:
                doc[name] = value
        loaded = parse_scenario_document({**document, "events": [*document.get("events", []), doc]})
        event = next(e for e in loaded.record.events if e.id == event_id)
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

        def job(s: Tx) -> Outcome[int]:
            ctx.require_principal(s, principal)
            recorded = ctx.instant(s)
            # The stored record version moves with the event: every later action, in this
            # transaction or another process's, sees it and decides on the new record.
            ctx.store.add_event(stored, now=recorded, session=s)
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
            return Outcome(leaf, (ctx.records.invalidate,))

        leaf = ctx.committer.run(job)
        net = ctx.records.network()
        status = status_at(net.timelines[agreement_id], ctx.clock.now())
        return {
            "event": views.event_json(event, UTC_ZONE),
            "leaf_index": leaf,
            "status": views.status_json(status),
        }

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
