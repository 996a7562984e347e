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
from gsomia.errors import BadSignature, InvalidInput, LedgerInvalid
from gsomia.ledger.checkpoint import Checkpoint, NoteVerifier, open_with
from gsomia.ledger.entries import entry_bytes  # the one canonical (RFC 8785) encoder
from gsomia.ledger.merkle import leaf_hash, verify_inclusion

__all__ = ["OpenedDelivery", "check_included", "check_ledgered", "open_delivery", "signed_bytes", "verify_origin"]


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
        if not isinstance(doc, Mapping) or doc.get("fingerprint") != origin.get("key"):
            continue
        start, end = _instant(doc.get("registered_at")), _instant(doc.get("retired_at"))
        if received is None or start is None or received < start or (end is not None and received >= end):
            raise BadSignature()
        # a member missing is None here, which from_dict refuses (InvalidInput), as a malformed one
        public = PublicKeys.from_dict({k: doc.get(k) for k in ("party", "profile", "signing_key", "encryption_key")})
        verify(public, message, signature)
        salt = origin.get("salt")
        # A report stored before commitments were salted is committed to by its SHA-256.
        expected = (
            hmac.new(b64decode(salt, "origin.salt"), message, hashlib.sha256).hexdigest()
            if salt is not None
            else hashlib.sha256(message).hexdigest()
        )
        if not hmac.compare_digest(expected, str(origin.get("commitment"))):
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


def check_ledgered(view: Mapping[str, Any], submission: Mapping[str, Any], delivery: Mapping[str, Any]) -> None:
    """Check that the ledger says what the delivery document says (docs/protocol.md §4.5).

    ``submission`` and ``delivery`` are the ledger entries at ``view["origin"]["leaf_index"]``
    and ``view["leaf_index"]`` as served (``GET /api/v1/ledger/entries/{index}``: ``index``,
    ``entry``, ``body``, ``leaf_hash``). Each entry's body must be the canonical bytes of the
    entry and hash to its leaf hash; the submission entry must hold the commitment, the key
    and the marking the document carries, and the delivery entry this delivery, its key, the
    SHA-256 of its wrapped key, its marking and its relay. Proving that those leaves are in
    the signed tree is the caller's next step (inclusion proofs, §5.3).

    Raises:
        LedgerInvalid: an entry is malformed or says something else (named).
        InvalidInput: the view is malformed.
    """
    origin = view.get("origin")
    if not isinstance(origin, Mapping) or not isinstance(origin.get("report"), Mapping):
        raise InvalidInput("delivery: the origin (report as signed, signature, key) is missing")
    report = origin["report"]
    sub = _ledgered_entry(submission, origin.get("leaf_index"), "submission")
    got = _ledgered_entry(delivery, view.get("leaf_index"), "delivery")
    expected_sub = {
        "report": view.get("report"),
        "originator": report.get("originator"),
        "topic": report.get("topic"),
        "level": report.get("level"),
        "commitment": origin.get("commitment"),
        "key": origin.get("key"),
    }
    wrapped = b64decode(view.get("wrapped_key"), "wrapped_key")
    expected_delivery = {
        "delivery": view.get("id"),
        "report": view.get("report"),
        "originator": report.get("originator"),
        "via": view.get("via"),
        "marking": view.get("marking"),
        "key": view.get("key"),
        "wrapped_key_sha256": hashlib.sha256(wrapped).hexdigest(),
    }
    if view.get("format") == 1:
        # Stored before commitments were salted: the entry holds the SHA-256 as "digest", and the
        # marking in an older JSON shape (the document serves it in the current one).
        expected_sub["digest"] = expected_sub.pop("commitment")
        del expected_delivery["marking"]
    for name, entry, expected in (("submission", sub, expected_sub), ("delivery", got, expected_delivery)):
        for member, value in expected.items():
            if entry.get(member) != value:
                raise LedgerInvalid(f"the ledger's {name} entry says another {member} than the delivery document")


def _ledgered_entry(doc: Mapping[str, Any], index: object, kind: str) -> Mapping[str, Any]:
    entry = doc.get("entry")
    if not isinstance(entry, Mapping) or doc.get("index") != index or not isinstance(index, int):
        raise LedgerInvalid(f"the ledger's {kind} entry is missing or is not at the index the delivery names")
    body = b64decode(doc.get("body"), f"{kind} entry body")
    if body != entry_bytes(dict(entry)) or b64encode(leaf_hash(body)) != doc.get("leaf_hash"):
        raise LedgerInvalid(f"the ledger's {kind} entry {index}: its body does not match the entry or its leaf hash")
    if entry.get("type") != kind:
        raise LedgerInvalid(f"ledger entry {index} is not a {kind} entry")
    return entry


def check_included(entry: Mapping[str, Any], proof: Mapping[str, Any], key: NoteVerifier) -> Checkpoint:
    """Check that a served entry is in the tree of a checkpoint signed with ``key``.

    ``proof`` is ``GET /api/v1/ledger/proof/inclusion?index=…`` of the current size: its
    ``checkpoint`` is opened with ``key``, and the entry's leaf hash is proved against its
    root (RFC 9162 §2.1.3.2). Returns the checkpoint, to keep for consistency checks.

    Raises:
        LedgerInvalid: the checkpoint is not signed with ``key``, or the proof fails.
    """
    note = proof.get("checkpoint")
    if not isinstance(note, str):
        raise LedgerInvalid("the inclusion proof carries no signed checkpoint")
    cp = open_with(key, note)
    index = entry.get("index")
    if proof.get("index") != index or proof.get("size") != cp.size or not isinstance(index, int):
        raise LedgerInvalid("the inclusion proof is not of this entry in the checkpoint's tree")
    path = proof.get("proof")
    if not isinstance(path, list):
        raise LedgerInvalid("the inclusion proof is malformed")
    try:
        hashes = [b64decode(h, "proof") for h in path]
        verify_inclusion(b64decode(entry.get("leaf_hash"), "leaf_hash"), index, cp.size, hashes, cp.root_hash)
    except InvalidInput as e:
        raise LedgerInvalid(f"ledger entry {index}: the inclusion proof does not verify ({e})") from None
    return cp
