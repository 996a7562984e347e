"""Do the rows the exchange serves say what its ledger says?

The ledger proves what happened; the API serves rows (reports, decisions, deliveries, consents,
standing consents, incidents, public keys, inbox items). A row edited in the database — a
delivery's recipient or marking rewritten, a consent's state flipped — would leave the
Merkle tree intact. This audit re-derives every served row from the ledger entry it claims
(each row keeps its entry's index) and names the first row that differs, field by field;
``gsomia ledger verify`` runs it after re-deriving the tree. Reports are also re-derived from
their ciphertext: the payload is decrypted under the KEK and the commitment recomputed over
the report as signed, so neither can be swapped.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from gsomia.codec import b64encode
from gsomia.crypto import PublicKeys, decrypt_payload, payload_aad
from gsomia.domain.states import ConsentState, DeliveryState, ReleaseOutcome
from gsomia.errors import GsomiaError
from gsomia.ledger.entries import entry_bytes  # the one canonical (RFC 8785) encoder
from gsomia.services.exchange.context import ExchangeContext, split_report_key
from gsomia.services.exchange.relays import text_commitment
from gsomia.services.exchange.submissions import commitment
from gsomia.storage.exchange import (
    ConsentRow,
    DecisionRow,
    DeliveryRow,
    ExchangeRepo,
    InboxEventRow,
    IncidentRow,
    IncidentUpdateRow,
    PartyKeyRow,
    StandingConsentRow,
    SubmittedReportRow,
)
from gsomia.storage.ledger import LedgerTable

__all__ = ["RowFinding", "audit_rows"]

_AFTER_CONSENT = {
    ConsentState.PENDING: {ReleaseOutcome.PENDING_CONSENT},
    ConsentState.REFUSED: {ReleaseOutcome.CONSENT_REFUSED},
    ConsentState.EXPIRED: {ReleaseOutcome.CONSENT_EXPIRED},
    ConsentState.GRANTED: {ReleaseOutcome.RELAYED, ReleaseOutcome.RELAY_REFUSED},
}
"""The outcomes a relay decision may have, given its consent request's state."""


@dataclass(frozen=True, slots=True)
class RowFinding:
    """A served row that its ledger entry does not vouch for."""

    table: str
    row: str
    index: int | None
    message: str

    def __str__(self) -> str:
        at = f" (ledger entry {self.index})" if self.index is not None else ""
        return f"{self.table} row {self.row}{at}: {self.message}"


class _Mismatch(Exception):
    def __init__(self, finding: RowFinding) -> None:
        super().__init__(str(finding))
        self.finding = finding


def audit_rows(ctx: ExchangeContext, *, progress: Callable[[int], None] | None = None) -> RowFinding | None:
    """Check every served row against the ledger entry it claims; the first finding, or None.

    Raises:
        StorageError: on a database failure.
    """
    entries = _Entries(LedgerTable(ctx.store))
    checked = 0
    try:
        with ctx.store.reading() as s:
            for check in _checks(ctx, entries, s):
                check()
                checked += 1
                if progress is not None and checked % 1000 == 0:
                    progress(checked)
    except _Mismatch as m:
        return m.finding
    return None


class _Entries:
    """Ledger entries by index, parsed once."""

    def __init__(self, table: LedgerTable) -> None:
        self._table = table
        self._cache: dict[int, dict[str, Any] | None] = {}

    def get(self, index: int | None) -> dict[str, Any] | None:
        if index is None:
            return None
        if index not in self._cache:
            row = self._table.get(index)
            try:
                parsed = json.loads(row.body) if row is not None else None
            except ValueError:
                parsed = None
            self._cache[index] = parsed if isinstance(parsed, dict) else None
        return self._cache[index]

    def of_type(self, kind: str) -> Iterator[dict[str, Any]]:
        marker = f'"type":"{kind}"'.encode()
        for batch in self._table.scan():
            for _index, body, _leaf in batch:
                if marker in body:
                    parsed = json.loads(body)
                    if isinstance(parsed, dict) and parsed.get("type") == kind:
                        yield parsed


def _checks(ctx: ExchangeContext, entries: _Entries, s: Any) -> Iterator[Callable[[], None]]:
    """One check per served row."""
    for report in ExchangeRepo.all(s, SubmittedReportRow):
        yield partial(_report, ctx, entries, report)
    consents = {c.report_id + "\0" + c.recipient: c for c in ExchangeRepo.all(s, ConsentRow)}
    for decision in ExchangeRepo.all(s, DecisionRow):
        yield partial(_decision, entries, decision, consents.get(decision.report_id + "\0" + decision.recipient))
    deliveries = {d.id: d for d in ExchangeRepo.all(s, DeliveryRow)}
    for delivery in deliveries.values():
        yield partial(_delivery, entries, delivery)
    for consent in consents.values():
        yield partial(_consent, entries, consent)
    for standing in ExchangeRepo.all(s, StandingConsentRow):
        yield partial(_standing, entries, standing)
    for incident in ExchangeRepo.all(s, IncidentRow):
        yield partial(_incident, entries, incident)
    for update in ExchangeRepo.all(s, IncidentUpdateRow):
        yield partial(_incident_update, entries, update)
    registered = {(e.get("party"), e.get("fingerprint")): e for e in entries.of_type("key")}
    for key in ExchangeRepo.all(s, PartyKeyRow):
        yield partial(_key, key, registered)
    for item in ExchangeRepo.all(s, InboxEventRow):
        if item.kind == "delivery":
            yield partial(_inbox_delivery, item, deliveries.get(item.ref))


def _expect(table: str, row: str, index: int | None, entry: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any]:
    if entry is None or entry.get("type") != kind:
        raise _Mismatch(RowFinding(table, row, index, f"its ledger entry is not a {kind} entry"))
    return entry


def _same(table: str, row: str, index: int | None, pairs: Mapping[str, tuple[Any, Any]]) -> None:
    for name, (stored, ledgered) in pairs.items():
        if stored != ledgered:
            raise _Mismatch(
                RowFinding(table, row, index, f"{name} is {stored!r} in the database but {ledgered!r} in the ledger")
            )


def _report(ctx: ExchangeContext, entries: _Entries, r: SubmittedReportRow) -> None:
    e = _expect("report", r.id, r.leaf_index, entries.get(r.leaf_index), "submission")
    originator, report_id = split_report_key(r.id)
    pairs: dict[str, tuple[Any, Any]] = {
        "report": (report_id, e.get("report")),
        "originator": (r.originator, e.get("originator")),
        "topic": (r.topic, e.get("topic")),
        "level": (r.level, e.get("level")),
        "key": (r.key, e.get("key")),
    }
    if r.salt:  # stored with a salted commitment
        pairs |= {"caveats": (r.caveats, e.get("caveats")), "commitment": (r.digest, e.get("commitment"))}
        signed = json.loads(r.signed_report) if r.signed_report else {}
        pairs |= {
            f"signed {name}": (value, signed.get(name))
            for name, value in (("id", report_id), ("originator", originator), ("topic", r.topic), ("level", r.level))
        }
    _same("report", r.id, r.leaf_index, pairs)
    if r.salt:
        _report_content(ctx, r)


def _report_content(ctx: ExchangeContext, r: SubmittedReportRow) -> None:
    """Decrypt the stored payload and recompute the commitment over the report as signed."""
    originator, report_id = split_report_key(r.id)
    try:
        content_key = ctx.unseal(r.id, r.sealed_key)
        payload = decrypt_payload(content_key, r.payload, payload_aad(originator, report_id))
    except GsomiaError:
        raise _Mismatch(
            RowFinding("report", r.id, r.leaf_index, "its stored ciphertext or sealed key does not open")
        ) from None
    signed = entry_bytes({**json.loads(r.signed_report), "payload": b64encode(payload)})
    if not hmac.compare_digest(commitment(r.salt, signed), r.digest):
        raise _Mismatch(
            RowFinding("report", r.id, r.leaf_index, "its report as signed and payload do not match its commitment")
        )


def _decision(entries: _Entries, d: DecisionRow, consent: ConsentRow | None) -> None:
    name = f"{d.report_id}→{d.recipient}"
    e = _expect("decision", name, d.leaf_index, entries.get(d.leaf_index), "decision")
    _same(
        "decision",
        name,
        d.leaf_index,
        {
            "report": (split_report_key(d.report_id)[1], e.get("report")),
            "recipient": (d.recipient, e.get("recipient")),
        },
    )
    first = e.get("outcome")
    if consent is None or first not in (ReleaseOutcome.PENDING_CONSENT, ReleaseOutcome.RELAYED):
        _same("decision", name, d.leaf_index, {"outcome": (d.outcome, first)})
        return
    allowed = (
        {ReleaseOutcome.RELAYED} if first == ReleaseOutcome.RELAYED else _AFTER_CONSENT[ConsentState(consent.state)]
    )
    if d.outcome not in allowed:
        raise _Mismatch(
            RowFinding(
                "decision", name, d.leaf_index, f"outcome {d.outcome!r} does not follow from its consent request"
            )
        )


def _delivery(entries: _Entries, d: DeliveryRow) -> None:
    e = _expect("delivery", d.id, d.leaf_index, entries.get(d.leaf_index), "delivery")
    _same(
        "delivery",
        d.id,
        d.leaf_index,
        {
            "delivery": (d.id, e.get("delivery")),
            "report": (split_report_key(d.report_id)[1], e.get("report")),
            "originator": (d.originator, e.get("originator")),
            "recipient": (d.recipient, e.get("recipient")),
            "purpose": (d.purpose, e.get("purpose")),
            "via": (d.via, e.get("via")),
            "marking": (d.marking, e.get("marking")),
            "key": (d.key_fingerprint, e.get("key")),
            "wrapped key": (hashlib.sha256(d.wrapped_key).hexdigest(), e.get("wrapped_key_sha256")),
        },
    )
    acked = d.state == DeliveryState.ACKNOWLEDGED
    if acked != (d.acked_at is not None) or acked != (d.ack_leaf_index is not None):
        raise _Mismatch(
            RowFinding("delivery", d.id, d.leaf_index, f"state {d.state!r} and its acknowledgement disagree")
        )
    if acked:
        a = _expect("delivery", d.id, d.ack_leaf_index, entries.get(d.ack_leaf_index), "ack")
        _same(
            "delivery",
            d.id,
            d.ack_leaf_index,
            {"acknowledged delivery": (d.id, a.get("delivery")), "acknowledged by": (d.recipient, a.get("recipient"))},
        )


def _consent(entries: _Entries, c: ConsentRow) -> None:
    e = _expect("consent", c.id, c.leaf_index, entries.get(c.leaf_index), "consent")
    _same(
        "consent",
        c.id,
        c.leaf_index,
        {
            "consent": (c.id, e.get("consent")),
            "report": (split_report_key(c.report_id)[1], e.get("report")),
            "originator": (c.originator, e.get("originator")),
            "recipient": (c.recipient, e.get("recipient")),
            "hub": (c.hub, e.get("hub")),
            "arrangement": (c.arrangement, e.get("arrangement")),
        },
    )
    if c.state == ConsentState.PENDING:
        if c.resolution_leaf_index is not None:
            raise _Mismatch(RowFinding("consent", c.id, c.leaf_index, "pending, yet it records an answer"))
        return
    if c.resolution_leaf_index == c.leaf_index:  # granted at once under a standing consent
        _same("consent", c.id, c.leaf_index, {"state": (c.state, e.get("action"))})
        return
    res = _expect("consent", c.id, c.resolution_leaf_index, entries.get(c.resolution_leaf_index), "consent")
    _same(
        "consent",
        c.id,
        c.resolution_leaf_index,
        {"state": (c.state, res.get("action")), "consent": (c.id, res.get("consent"))},
    )
    if c.reason_salt:
        _same(
            "consent",
            c.id,
            c.resolution_leaf_index,
            {"reason": (text_commitment(c.reason_salt, "reason", c.reason), res.get("reason_commitment"))},
        )


def _standing(entries: _Entries, sc: StandingConsentRow) -> None:
    e = _expect("standing consent", sc.id, sc.leaf_index, entries.get(sc.leaf_index), "consent")
    _same(
        "standing consent",
        sc.id,
        sc.leaf_index,
        {
            "id": (sc.id, e.get("standing_consent")),
            "originator": (sc.originator, e.get("originator")),
            "topic_prefix": (sc.topic_prefix, e.get("topic_prefix")),
            "recipient": (sc.recipient, e.get("recipient")),
            "hub": (sc.hub, e.get("hub")),
        },
    )


def _incident(entries: _Entries, i: IncidentRow) -> None:
    e = _expect("incident", i.id, i.leaf_index, entries.get(i.leaf_index), "incident")
    pairs: dict[str, tuple[Any, Any]] = {
        "incident": (i.id, e.get("incident")),
        "delivery": (i.delivery_id, e.get("delivery")),
        "reporter": (i.reporter, e.get("reporter")),
        "originator": (i.originator, e.get("originator")),
        "kind": (i.kind, e.get("kind")),
    }
    if i.salt:
        pairs["description"] = (
            text_commitment(i.salt, "description", i.description),
            e.get("description_commitment"),
        )
    _same("incident", i.id, i.leaf_index, pairs)


def _incident_update(entries: _Entries, u: IncidentUpdateRow) -> None:
    name = f"{u.incident_id}#{u.id}"
    e = _expect("incident update", name, u.leaf_index, entries.get(u.leaf_index), "incident")
    pairs: dict[str, tuple[Any, Any]] = {"incident": (u.incident_id, e.get("incident")), "by": (u.by, e.get("by"))}
    if u.salt:
        pairs |= {
            "result": (text_commitment(u.salt, "result", u.result), e.get("result_commitment")),
            "measures": (text_commitment(u.salt, "measures", u.measures), e.get("measures_commitment")),
        }
    _same("incident update", name, u.leaf_index, pairs)


def _key(k: PartyKeyRow, registered: Mapping[tuple[Any, Any], Mapping[str, Any]]) -> None:
    doc = {"party": k.party, "profile": k.profile, "signing_key": k.signing_key, "encryption_key": k.encryption_key}
    try:
        derived = PublicKeys.from_dict(doc).fingerprint()
    except GsomiaError:
        derived = None
    if derived != k.fingerprint:
        raise _Mismatch(RowFinding("public keys", k.fingerprint, None, "the stored keys do not have this fingerprint"))
    entry = registered.get((k.party, k.fingerprint))
    if entry is None:
        raise _Mismatch(
            RowFinding("public keys", k.fingerprint, None, f"no ledger entry registers these keys for {k.party}")
        )
    _same("public keys", k.fingerprint, None, {"profile": (k.profile, entry.get("profile"))})


def _inbox_delivery(item: InboxEventRow, d: DeliveryRow | None) -> None:
    name = f"#{item.seq}"
    if d is None:
        raise _Mismatch(RowFinding("inbox item", name, None, f"names delivery {item.ref!r}, which does not exist"))
    body = item.body
    _same(
        "inbox item",
        name,
        d.leaf_index,
        {
            "recipient": (item.party, d.recipient),
            "report": (body.get("report"), split_report_key(d.report_id)[1]),
            "originator": (body.get("originator"), d.originator),
            "marking": (body.get("marking"), d.marking),
            "via": (body.get("via"), d.via),
            "leaf_index": (body.get("leaf_index"), d.leaf_index),
        },
    )
