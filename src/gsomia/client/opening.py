"""Opening a delivery on the recipient's own machine: unwrap the content key with the
recipient's private key (HPKE, RFC 9180) and decrypt the payload (AES-256-GCM). The exchange
never sees either key (docs/protocol.md §Deliveries)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gsomia.codec import b64decode
from gsomia.crypto import PartyKeys, decrypt_payload, delivery_info, payload_aad, unwrap_key

__all__ = ["open_delivery"]


def open_delivery(view: Mapping[str, Any], private: PartyKeys) -> bytes:
    """Decrypt a fetched delivery with the recipient's private keys (client side).

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
    did, report_id = str(view.get("id", "")), str(view.get("report", ""))
    content_key = unwrap_key(private, wrapped, delivery_info(did, private.party))
    return decrypt_payload(content_key, blob, payload_aad(report_id))
