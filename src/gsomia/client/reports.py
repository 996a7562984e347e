"""Building and signing a report on the originator's machine (docs/protocol.md §Signed report).

The signature covers the RFC 8785 bytes of the whole report object, payload (base64)
included; the private key never leaves this machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gsomia.codec import b64encode
from gsomia.crypto import PartyKeys, sign
from gsomia.domain.instants import require_aware
from gsomia.ledger.entries import entry_bytes  # the one canonical (RFC 8785) encoder

__all__ = ["ReportDraft", "sign_report"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportDraft:
    """What an originator submits, before signing."""

    id: str
    topic: str
    level: str
    payload: bytes
    created: datetime
    recipients: Sequence[str] | None = None
    rel_to: Sequence[str] | None = None
    noforn: bool = False
    orcon: bool = False
    content_type: str = "application/octet-stream"


def sign_report(keys: PartyKeys, draft: ReportDraft) -> dict[str, Any]:
    """The submission body ``{"report", "signature", "key"}`` for ``draft``, signed by ``keys``.

    Raises:
        InvalidInput: ``draft.created`` is not timezone-aware.
    """
    report = {
        "id": draft.id,
        "originator": keys.party,
        "topic": draft.topic,
        "level": draft.level,
        "caveats": {
            "rel_to": list(draft.rel_to) if draft.rel_to is not None else None,
            "noforn": draft.noforn,
            "orcon": draft.orcon,
        },
        "created": require_aware(draft.created, "report.created").isoformat(),
        "recipients": list(draft.recipients) if draft.recipients is not None else None,
        "content_type": draft.content_type,
        "payload": b64encode(draft.payload),
    }
    signature = sign(keys, entry_bytes(report))
    return {"report": report, "signature": b64encode(signature), "key": keys.fingerprint()}
