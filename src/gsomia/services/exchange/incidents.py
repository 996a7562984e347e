"""Loss and compromise reports on deliveries (Japan–Korea GSOMIA Art. 17) and their follow-up.

A recipient files an incident on a delivery; the originator is told at once (an inbox item).
Either side appends investigation results and measures; the other side is told. Each step is
ledgered with salted commitments to the text, never the text.
"""

from __future__ import annotations

import secrets
from typing import Any

from gsomia.errors import InvalidInput
from gsomia.services.exchange.access import Action, Principal, authorize
from gsomia.services.exchange.context import ExchangeContext, Pending, new_id, split_report_key
from gsomia.services.exchange.presenters import incident_view, update_view
from gsomia.services.exchange.relays import text_commitment
from gsomia.storage.exchange import ExchangeRepo, NewIncident, NewIncidentUpdate, Tx
from gsomia.storage.writer import Outcome

__all__ = ["INCIDENT_KINDS", "IncidentService"]

INCIDENT_KINDS = ("loss", "compromise", "possible_compromise")
_TEXT_MAX = 8000


class IncidentService:
    """File, follow and read incidents."""

    def __init__(self, ctx: ExchangeContext) -> None:
        self.ctx = ctx

    def file_incident(self, principal: Principal, delivery_id: str, *, kind: str, description: str) -> dict[str, Any]:
        """File a loss or compromise report on a delivery (by its recipient); the originator
        is told at once (an inbox item). Ledgered with salted commitments to the text, never the text.

        Raises:
            InvalidInput: an unknown kind or an empty or overlong description.
            NotPermitted: the principal is not a party.
            UnknownEntity: no such delivery, or another party's.
            StorageError: on a database failure.
        """
        authorize(principal, Action.FILE_INCIDENT)
        if kind not in INCIDENT_KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(INCIDENT_KINDS)}")
        description = description.strip()
        if not description or len(description) > _TEXT_MAX:
            raise InvalidInput(f"description: 1 to {_TEXT_MAX} characters")
        ctx = self.ctx

        def job(s: Tx) -> Outcome[dict[str, Any]]:
            d = ExchangeRepo.delivery(s, delivery_id)
            authorize(
                principal,
                Action.FILE_INCIDENT,
                owners=[d.recipient] if d else [],
                thing="delivery",
                thing_id=delivery_id,
            )
            assert d is not None  # noqa: S101 - authorize raised for a missing delivery
            ctx.require_principal(s, principal)
            now = ctx.instant(s)
            iid = new_id("i")
            salt = secrets.token_bytes(32)
            leaf = ctx.append(
                s,
                "incident",
                now,
                {
                    "action": "filed",
                    "incident": iid,
                    "delivery": d.id,
                    "report": split_report_key(d.report_id)[1],
                    "reporter": d.recipient,
                    "originator": d.originator,
                    "kind": kind,
                    "description_commitment": text_commitment(salt, "description", description),
                },
                parties=[d.recipient, d.originator],
            )
            row = NewIncident(
                id=iid,
                delivery_id=d.id,
                report_id=d.report_id,
                reporter=d.recipient,
                originator=d.originator,
                kind=kind,
                description=description,
                created_at=now,
                leaf_index=leaf,
                salt=salt,
            )
            rows = Pending()
            rows.add(row)
            view = incident_view(row, [])
            rows.inbox(d.originator, "incident", iid, {"type": "incident", **view}, now)
            rows.flush(s)
            return rows.outcome(ctx, view)

        return ctx.committer.run(job)

    def update_incident(self, principal: Principal, incident_id: str, *, result: str, measures: str) -> dict[str, Any]:
        """Append an investigation result and measures to an incident (by its reporter or the
        originator); the other side is told. Ledgered with salted commitments to the texts.

        Raises:
            InvalidInput: both texts empty, or one overlong.
            NotPermitted: the principal is not a party.
            UnknownEntity: no such incident, or another party's.
            StorageError: on a database failure.
        """
        authorize(principal, Action.FOLLOW_INCIDENT)
        result, measures = result.strip(), measures.strip()
        if not (result or measures) or max(len(result), len(measures)) > _TEXT_MAX:
            raise InvalidInput(f"give a result or measures, each at most {_TEXT_MAX} characters")
        assert principal.party is not None  # noqa: S101 - only parties follow incidents
        by = principal.party
        ctx = self.ctx

        def job(s: Tx) -> Outcome[dict[str, Any]]:
            inc = ExchangeRepo.incident(s, incident_id)
            owners = [inc.reporter, inc.originator] if inc else []
            authorize(principal, Action.FOLLOW_INCIDENT, owners=owners, thing="incident", thing_id=incident_id)
            assert inc is not None  # noqa: S101 - authorize raised for a missing incident
            ctx.require_principal(s, principal)
            now = ctx.instant(s)
            salt = secrets.token_bytes(32)
            leaf = ctx.append(
                s,
                "incident",
                now,
                {
                    "action": "update",
                    "incident": inc.id,
                    "by": by,
                    "result_commitment": text_commitment(salt, "result", result),
                    "measures_commitment": text_commitment(salt, "measures", measures),
                },
                parties=[inc.reporter, inc.originator],
            )
            update = NewIncidentUpdate(
                incident_id=inc.id, by=by, result=result, measures=measures, created_at=now, leaf_index=leaf, salt=salt
            )
            ExchangeRepo.add(s, [update])
            updates = ExchangeRepo.incident_updates(s, inc.id)
            view = incident_view(inc, updates)
            rows = Pending()
            latest = update_view(updates[-1])
            for party in {inc.reporter, inc.originator} - {by}:
                body = {"type": "incident_update", "incident": inc.id, "delivery": inc.delivery_id, **latest}
                rows.inbox(party, "incident_update", inc.id, body, now)
            rows.flush(s)
            return rows.outcome(ctx, view)

        return ctx.committer.run(job)

    def incident(self, principal: Principal, incident_id: str) -> dict[str, Any]:
        """An incident with its updates (for its reporter and the originator).

        Raises:
            NotPermitted: the principal is not a party.
            UnknownEntity: no such incident, or another party's.
            StorageError: on a database failure.
        """
        authorize(principal, Action.FOLLOW_INCIDENT)
        with self.ctx.store.reading() as s:
            inc = ExchangeRepo.incident(s, incident_id)
            owners = [inc.reporter, inc.originator] if inc else []
            authorize(principal, Action.FOLLOW_INCIDENT, owners=owners, thing="incident", thing_id=incident_id)
            assert inc is not None  # noqa: S101 - authorize raised for a missing incident
            return incident_view(inc, ExchangeRepo.incident_updates(s, inc.id))
