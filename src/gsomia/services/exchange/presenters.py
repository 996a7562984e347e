"""The exchange's JSON shapes: what a party, an operator or an auditor is shown of reports,
decisions, deliveries, consents, standing consents and incidents. Use cases build values;
these functions alone say how they look on the wire (docs/protocol.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gsomia.codec import b64encode
from gsomia.domain.instants import utc_iso as t
from gsomia.domain.markings import Marking
from gsomia.services.analysis.presenters import marking_json
from gsomia.storage.exchange import (
    ConsentRow,
    DeliveryRow,
    IncidentRow,
    IncidentUpdateRow,
    NewConsent,
    NewIncident,
    NewIncidentUpdate,
    NewStandingConsent,
    StandingConsentRow,
    SubmittedReportRow,
)

__all__ = [
    "consent_summary",
    "decision_entry_route",
    "delivery_marking",
    "delivery_summary",
    "delivery_view",
    "incident_view",
    "standing_summary",
    "update_view",
]


def decision_entry_route(route_json: Mapping[str, Any]) -> dict[str, Any]:
    """What a decision's ledger entry records of its route: the decision, path, agreements,
    hub, resulting level and every reason (the full route stays in the decision row)."""
    marking = route_json.get("marking") or {}
    return {
        "decision": route_json["decision"],
        "path": route_json["path"],
        "agreements": route_json["agreements"],
        "arrangement": route_json.get("arrangement"),
        "via": route_json.get("via"),
        "recipient_level": marking.get("recipient_level"),
        "reasons": route_json["reasons"],
    }


def delivery_marking(m: Marking, *, exercise: bool = False) -> dict[str, Any]:
    """What a recipient sees (Art. 4.2): the marking in its one JSON shape. A delivery made
    under an exercise says so in its banner (``EXERCISE 군사II급비밀 (JPN 極秘)``) and in
    ``exercise``, so it is never taken for real traffic."""
    out = marking_json(m, originator=m.originator, originator_level=m.level, recipient=m.recipient)
    if exercise:
        out["banner"] = f"EXERCISE {out['banner']}"
    out["exercise"] = exercise
    return out


def delivery_summary(d: DeliveryRow) -> dict[str, Any]:
    """A stored delivery's summary, as :func:`add_delivery` returned it."""
    return {
        "id": d.id,
        "recipient": d.recipient,
        "purpose": d.purpose,
        "via": d.via,
        "marking": d.marking,
        "leaf_index": d.leaf_index,
        "created_at": t(d.created_at),
    }


def consent_summary(c: ConsentRow | NewConsent, report: SubmittedReportRow | None = None) -> dict[str, Any]:
    """A consent request as its originator (and the submission result) shows it."""
    out: dict[str, Any] = {
        "id": c.id,
        "report": _local(c.report_id),
        "originator": c.originator,
        "recipient": c.recipient,
        "hub": c.hub,
        "arrangement": c.arrangement,
        "per_report": c.per_report,
        "state": c.state,
        "requested_at": t(c.requested_at),
        "expires_at": t(c.expires_at),
        "resolved_at": t(c.resolved_at) if c.resolved_at else None,
        "reason": c.reason or None,
        # The salt of the ledger's commitment to the reason (docs/protocol.md §Commitments):
        # the originator checks the resolution entry says what it wrote.
        "reason_salt": b64encode(c.reason_salt) if c.reason_salt else None,
        "standing_consent": c.standing_id,
        "outcome": c.outcome,
        "leaf_index": c.leaf_index,
        "resolution_leaf_index": c.resolution_leaf_index,
    }
    if report is not None:
        out |= {"topic": report.topic, "level": report.level}
    return out


def standing_summary(sc: StandingConsentRow | NewStandingConsent) -> dict[str, Any]:
    """A standing consent as its originator sees it."""
    return {
        "id": sc.id,
        "originator": sc.originator,
        "topic_prefix": sc.topic_prefix,
        "recipient": sc.recipient,
        "hub": sc.hub,
        "valid_from": t(sc.valid_from),
        "valid_until": t(sc.valid_until),
        "note": sc.note or None,
        "revoked_at": t(sc.revoked_at) if sc.revoked_at else None,
        "leaf_index": sc.leaf_index,
    }


def delivery_view(d: DeliveryRow, report: SubmittedReportRow) -> dict[str, Any]:
    """A delivery as its recipient fetches it (docs/protocol.md §Deliveries): the marking, the
    payload ciphertext, the content key wrapped to the recipient, and ``origin``: the report as
    its originator signed it (without the payload), the signature, the fingerprint of the key
    that signed it, when the exchange received it, the ledger's commitment and its salt, and the
    index of the submission entry that holds the commitment."""
    legacy = not report.salt  # stored before reports were kept as signed
    signed = json.loads(report.signed_report) if report.signed_report else {}
    return {
        "id": d.id,
        "report": _local(d.report_id),
        "originator": d.originator,
        "topic": report.topic,
        "marking": d.marking,
        "via": d.via,
        "purpose": d.purpose,
        "state": d.state,
        "leaf_index": d.leaf_index,
        "created_at": t(d.created_at),
        "acked_at": t(d.acked_at) if d.acked_at else None,
        "content_type": report.content_type,
        "format": 1 if legacy else 2,
        "payload_ciphertext": b64encode(report.payload),
        "wrapped_key": b64encode(d.wrapped_key),
        "profile": d.profile,
        "key": d.key_fingerprint,
        "origin": {
            "report": signed,
            "signature": report.signature,
            "key": report.key,
            "received_at": t(report.received_at),
            "commitment": report.digest,
            "salt": b64encode(report.salt) if report.salt else None,
            "leaf_index": report.leaf_index,
        },
    }


def update_view(u: IncidentUpdateRow | NewIncidentUpdate) -> dict[str, Any]:
    return {
        "by": u.by,
        "result": u.result,
        "measures": u.measures,
        "created_at": t(u.created_at),
        "leaf_index": u.leaf_index,
        "salt": b64encode(u.salt) if u.salt else None,
    }


def incident_view(inc: IncidentRow | NewIncident, updates: list[IncidentUpdateRow]) -> dict[str, Any]:
    return {
        "id": inc.id,
        "delivery": inc.delivery_id,
        "report": _local(inc.report_id),
        "reporter": inc.reporter,
        "originator": inc.originator,
        "kind": inc.kind,
        "description": inc.description,
        "created_at": t(inc.created_at),
        "leaf_index": inc.leaf_index,
        "salt": b64encode(inc.salt) if inc.salt else None,
        "updates": [update_view(u) for u in updates],
    }


def _local(key: str) -> str:
    """The originator's own id of a stored report key (``JPN/R-1`` → ``R-1``)."""
    return key.partition("/")[2] or key
