"""Opening a delivery on the recipient's own machine: unwrap the content key with the
recipient's private key (HPKE, RFC 9180), decrypt the payload (AES-256-GCM), and check the
originator's signature over the report as signed. The exchange never sees either key
(docs/protocol.md §Deliveries).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gsomia.codec import b64decode, b64encode
from gsomia.crypto import PartyKeys, PublicKeys, decrypt_payload, delivery_info, payload_aad, unwrap_key, verify
from gsomia.errors import BadSignature, InvalidInput
from gsomia.ledger.entries import entry_bytes  # the one canonical (RFC 8785) encoder

__all__ = ["OpenedDelivery", "open_delivery", "signed_bytes", "verify_origin"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenedDelivery:
    """A delivery opened and checked: the payload, and what the exchange said about it."""

    view: Mapping[str, Any]
    payload: bytes = field(repr=False)

    @property
    def delivery_id(self) -> str:
        """The delivery's id."""
        return str(self.view["id"])

    @property
    def report_id(self) -> str:
        """The report's id."""
        return str(self.view["report"])

    @property
    def banner(self) -> str:
        """The marking banner in the recipient's ladder, e.g. ``군사II급비밀 (JPN 極秘)``."""
        return str(self.view["marking"]["banner"])


def open_delivery(view: Mapping[str, Any], private: PartyKeys) -> bytes:
    """Decrypt a fetched delivery with the recipient's private keys.

    Args:
        view: the delivery as ``GET /api/v1/deliveries/{id}`` returned it.
        private: the recipient's :class:`~gsomia.crypto.PartyKeys`.

    Returns:
        The payload.

    Raises:
        DecryptionFailed: the keys are not the recipient's, or anything was altered.
        InvalidInput: the view is malformed.
    """
    wrapped = b64decode(view.get("wrapped_key"), "wrapped_key")
    blob = b64decode(view.get("payload_ciphertext"), "payload_ciphertext")
    did, report_id, originator = str(view.get("id", "")), str(view.get("report", "")), str(view.get("originator", ""))
    version = 1 if view.get("format") == 1 else 2
    content_key = unwrap_key(private, wrapped, delivery_info(did, private.party))
    return decrypt_payload(content_key, blob, payload_aad(originator, report_id, version=version))


def signed_bytes(report: Mapping[str, Any], payload: bytes) -> bytes:
    """The bytes the originator signed: the RFC 8785 form of the report with its payload
    (base64), as ``gsomia client submit`` built it."""
    return entry_bytes({**report, "payload": b64encode(payload)})


def verify_origin(view: Mapping[str, Any], payload: bytes, registered: Sequence[Mapping[str, Any]]) -> None:
    """Check the originator's signature over the report and its decrypted payload, with the
    key that was valid when the exchange received the report, and the ledger's commitment to it.

    Args:
        view: the delivery as fetched (its ``origin`` member carries the report as signed,
            the signature, the fingerprint of the signing keys, when the exchange received
            the report, the ledger's commitment and its salt).
        payload: the decrypted payload.
        registered: the originator's registered public keys with their validity
            (``GET /api/v1/parties/{party}/keys`` → ``keys``), current and retired.

    Raises:
        BadSignature: no registered key has that fingerprint, the key was not valid when the
            report was received, the signature does not verify, or the commitment does not
            match (deliberately without detail).
        InvalidInput: the view is malformed.
    """
    origin = view.get("origin")
    if not isinstance(origin, Mapping) or not isinstance(origin.get("report"), Mapping):
        raise InvalidInput("delivery: the origin (report as signed, signature, key) is missing")
    signature = b64decode(origin.get("signature"), "origin.signature")
    received = _instant(origin.get("received_at"))
    message = signed_bytes(origin["report"], payload)
    for doc in registered:
        if doc.get("fingerprint") != origin.get("key"):
            continue
        start, end = _instant(doc.get("registered_at")), _instant(doc.get("retired_at"))
        if received is None or start is None or received < start or (end is not None and received >= end):
            raise BadSignature()
        public = PublicKeys.from_dict({k: doc[k] for k in ("party", "profile", "signing_key", "encryption_key")})
        verify(public, message, signature)
        salt = origin.get("salt")
        if salt is not None and not hmac.compare_digest(
            hmac.new(b64decode(salt, "origin.salt"), message, hashlib.sha256).hexdigest(), str(origin.get("commitment"))
        ):
            raise BadSignature()
        return
    raise BadSignature()


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None
