"""The API's response bodies, as OpenAPI shows them and as every answer is checked against.

Each model forbids members it does not name, so a response that drifts from its documented
shape fails loudly in the tests instead of losing a member on the way out. Instants are ISO
8601 text with an offset; durations ISO 8601 (``PT4H``); bytes standard base64.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gsomia.domain.states import ConsentState, DeliveryPurpose, DeliveryState, ReleaseOutcome
from gsomia.problems import ProblemOut, document_problems


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors ------------------------------------------------------------------------------------


_PROBLEM_TEXT = {
    400: "Bad request: a signature or ciphertext that does not verify (bad-signature, decryption-failed).",
    401: "No valid bearer token (not-authenticated).",
    403: "The caller's role may not do this, or it would act for another party (forbidden).",
    404: "No such object, or another party's (not-found).",
    405: "The method is not allowed on this resource (method-not-allowed).",
    408: "The request body did not arrive in time; the connection is closed (request-timeout).",
    409: "A conflict with what is stored (conflict).",
    413: "The request body is larger than the configured limit (payload-too-large).",
    422: "The request is malformed (invalid-request, invalid-input, invalid-document).",
    429: "Done too often of late (a party registering key sets); Retry-After says when to try again "
    "(too-many-requests).",
    503: "Nothing was changed; send the same request again after Retry-After: the database is unavailable "
    "(storage-unavailable), or what the request was decided on kept changing (busy).",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the problem answers a route gives (their media type and
    schema are set by :func:`problem_openapi`)."""
    return {s: {"description": _PROBLEM_TEXT[s]} for s in statuses}


def problem_openapi(spec: dict[str, Any]) -> dict[str, Any]:
    """Make every error response of ``spec`` a problem document (:func:`document_problems`)."""
    return document_problems(spec, _PROBLEM_TEXT, _implied)


def _implied(_path: str, _method: str, operation: dict[str, Any]) -> tuple[int, ...]:
    # Answered before any route runs (gsomia.api.middleware): a path or query string that is
    # not text is 422 everywhere; a body too large, too slow or not I-JSON, wherever a body is
    # read.
    return (408, 413, 422) if "requestBody" in operation else (422,)


AUTHENTICATED = (401, 403, 422, 503)
"""What any route with a bearer token may answer besides success."""


# --- shared shapes --------------------------------------------------------------------------------


class ReasonOut(_Out):
    """One rule that decided a release, with the article behind it."""

    rule: str
    message: str
    agreement: str | None = None


class MarkingOut(_Out):
    """The one marking shape (Art. 4.2): the originator's level and the recipient's own
    equivalent, e.g. banner ``군사II급비밀 (JPN 極秘)``. Null levels and banner: no translation
    (a denied release)."""

    originator: str
    originator_level: str
    recipient: str
    recipient_level: str | None
    common_level: str | None
    banner: str | None


class DeliveryMarkingOut(MarkingOut):
    """A delivery's marking; made under an exercise, its banner starts with ``EXERCISE``."""

    exercise: bool = False


class LegOut(_Out):
    """One leg of a route, checked at its own instant."""

    from_: str = Field(alias="from")
    to: str
    agreement: str
    at: str | None
    marking: MarkingOut


class DeliverySummaryOut(_Out):
    """A delivery as the originator's submission result shows it."""

    id: str
    recipient: str
    purpose: DeliveryPurpose
    via: str | None
    marking: DeliveryMarkingOut
    leaf_index: int
    created_at: str


class ConsentOut(_Out):
    """A consent request for a relay, and its answer."""

    id: str
    report: str
    originator: str
    recipient: str
    hub: str
    arrangement: str
    per_report: bool
    state: ConsentState
    requested_at: str
    expires_at: str
    resolved_at: str | None
    reason: str | None
    reason_salt: str | None = Field(
        description="base64 salt of the ledger's reason_commitment (docs/protocol.md §Commitments); null before an answer"
    )
    standing_consent: str | None
    outcome: dict[str, Any] | None = Field(description="{relayed, deliveries | reasons, delay}")
    leaf_index: int
    resolution_leaf_index: int | None
    topic: str | None = None
    level: str | None = Field(default=None, description="The report's level in the originator's ladder.")


class RecipientOut(_Out):
    """What happened for one recipient of a report: the decision (a route) and its outcome."""

    recipient: str
    outcome: ReleaseOutcome
    decision: Literal["direct", "relay", "deny"]
    originator: str
    topic: str
    at: str | None
    path: list[str]
    agreements: list[str]
    arrangement: str | None
    via: str | None
    consent_required: bool
    per_report_consent: bool
    marking: MarkingOut
    delay: str
    assumptions: list[str]
    legs: list[LegOut]
    reasons: list[ReasonOut]
    leaf_index: int
    deliveries: list[DeliverySummaryOut]
    consent: ConsentOut | None


class SubmissionOut(_Out):
    """A submitted report's result: every recipient decided, delivered or waiting for consent.
    ``commitment`` is the ledger's salted commitment to the signed report
    (docs/protocol.md §Commitments)."""

    report: str
    originator: str
    commitment: str
    salt: str | None = Field(
        description="base64 salt of the commitment: HMAC-SHA256(salt, signed bytes) is the commitment; "
        "null for a report stored before commitments were salted (the commitment is then the SHA-256)"
    )
    leaf_index: int
    received_at: str
    recipients: list[RecipientOut]


class BatchResultOut(_Out):
    """The result of one report of a batch."""

    index: int = Field(description="The report's position in the request.")
    status: int = Field(description="201 stored, 200 stored before (the same signed report), or the error status.")
    result: SubmissionOut | None
    problem: ProblemOut | None


class BatchCountsOut(_Out):
    """How the reports of a batch fared."""

    stored: int
    already_stored: int
    refused: int


class BatchOut(_Out):
    """One result per report of a batch, in order."""

    results: list[BatchResultOut]
    counts: BatchCountsOut


# --- inbox and deliveries -------------------------------------------------------------------------


class SignedOriginOut(_Out):
    """The report exactly as its originator signed it (without the payload), the signature,
    the fingerprint of the keys it was made with and when the exchange received it (the key
    must have been valid then), and the ledger's commitment to it with its salt and the
    submission entry's index: a recipient checks all of it after decrypting."""

    report: dict[str, Any]
    signature: str
    key: str
    received_at: str
    commitment: str
    salt: str | None = Field(description="null for a report stored before commitments were salted")
    leaf_index: int


class DeliveryOut(_Out):
    """A delivery as its recipient fetches it: decrypt locally (docs/protocol.md §Deliveries)."""

    id: str
    report: str
    originator: str
    topic: str
    marking: DeliveryMarkingOut
    via: str | None
    purpose: DeliveryPurpose
    state: DeliveryState
    leaf_index: int
    created_at: str
    acked_at: str | None
    content_type: str
    format: Literal[1, 2] = Field(description="2: payload AAD binds originator and id (docs/protocol.md)")
    payload_ciphertext: str
    wrapped_key: str
    profile: str
    key: str
    origin: SignedOriginOut


class DeliveryNotServedOut(_Out):
    """A delivery asked for that is not served: none with that id, or another party's."""

    id: str
    error: str


class InboxItemOut(BaseModel):
    """One inbox item, in commit order: ``type`` is ``delivery``, ``consent_request``,
    ``incident`` or ``incident_update``; ``seq`` is its cursor."""

    model_config = ConfigDict(extra="allow")
    seq: int
    type: Literal["delivery", "consent_request", "incident", "incident_update", "keys"]
    document: DeliveryOut | None = Field(
        default=None,
        description="With `deliveries=true`, on a delivery item: the delivery as /deliveries/{id} serves it.",
    )


class InboxPageOut(_Out):
    """A page of the inbox; ``next_cursor`` is null when there is nothing more now."""

    items: list[InboxItemOut]
    next_cursor: str | None
    cursor: str
    head: str = Field(
        description="The cursor of the caller's newest inbox item ('0' if none), read with the page: "
        "a cursor past it was not given by this exchange's database (restored from an older copy)."
    )


class DeliveriesOut(_Out):
    """Deliveries as their recipient fetches them, in the order asked."""

    items: list[DeliveryOut | DeliveryNotServedOut]


class AckOut(_Out):
    """An acknowledgement, attesting need-to-know (rule 5)."""

    id: str
    state: DeliveryState
    acked_at: str | None
    leaf_index: int | None


class IncidentUpdateOut(_Out):
    """Results and measures appended to an incident."""

    by: str
    result: str
    measures: str
    created_at: str
    leaf_index: int
    salt: str | None


class IncidentOut(_Out):
    """A loss or compromise report (Art. 17) and its updates."""

    id: str
    delivery: str
    report: str
    reporter: str
    originator: str
    kind: Literal["loss", "compromise", "possible_compromise"]
    description: str
    created_at: str
    leaf_index: int
    salt: str | None
    updates: list[IncidentUpdateOut]


# --- consents ---------------------------------------------------------------------------------------


class ConsentListOut(_Out):
    """Consent requests for relays of the caller's reports."""

    consents: list[ConsentOut]


class StandingConsentOut(_Out):
    """A standing consent: relays of a topic prefix to a recipient, for a period."""

    id: str
    originator: str
    topic_prefix: str
    recipient: str
    hub: str | None
    valid_from: str
    valid_until: str
    note: str | None
    revoked_at: str | None
    leaf_index: int


class StandingConsentListOut(_Out):
    """The caller's standing consents (revoked ones included)."""

    standing_consents: list[StandingConsentOut]


# --- identity and keys -------------------------------------------------------------------------------


class WhoamiOut(_Out):
    """Who a token belongs to."""

    id: str
    name: str
    role: Literal["party", "operator", "auditor"]
    party: str | None


class RegisteredKeysOut(_Out):
    """A party's registered public keys (never a private key)."""

    party: str
    profile: Literal["classic", "cnsa2"]
    signing_key: str
    encryption_key: str
    fingerprint: str
    registered_at: str | None
    retired_at: str | None
    current: bool


class PublicKeysOut(_Out):
    """A party's public keys."""

    party: str
    keys: list[RegisteredKeysOut]


# --- operator, auditor, exercise ----------------------------------------------------------------------


class RecordedEventOut(_Out):
    """An agreement event an operator recorded, its ledger entry and the agreement's state now."""

    event: dict[str, Any]
    leaf_index: int
    status: dict[str, Any]


class PairCountOut(_Out):
    """Deliveries from one party to another."""

    originator: str
    recipient: str
    deliveries: int


class ExchangeStatsOut(_Out):
    """Exchange counts for auditors and operators: never content."""

    reports: int
    decisions: dict[str, int]
    deliveries: dict[str, int]
    consents: dict[str, int]
    incidents: int
    pairs: list[PairCountOut]


class ExerciseOut(_Out):
    """Whether exercise mode is on, and the exchange clock."""

    exercise: bool
    clock: str
    whatif: str | None = None


# --- ledger --------------------------------------------------------------------------------------------


class LedgerKeyOut(_Out):
    """The exchange's checkpoint verification key (pin it)."""

    name: str
    key_id: str
    public_key: str
    algorithm: Literal["ed25519"]
    vkey: str


class WitnessOut(_Out):
    """A party's witness: the key its node cosigns checkpoints with (C2SP tlog-cosignature)."""

    party: str
    name: str = Field(description="The witness's name, as in its cosignature lines.")
    key_id: str = Field(description="Hex of the 4-byte key ID: SHA-256(name || LF || 0x04 || key)[:4].")
    vkey: str = Field(description="The verifier key: NAME+KEYID+base64(0x04 || Ed25519 public key).")
    registered_at: str
    leaf_index: int = Field(description="The public ledger entry that records the registration.")


class WitnessesOut(_Out):
    """Every party's current witness."""

    witnesses: list[WitnessOut]


class CosignatureOut(_Out):
    """A cosignature the exchange verified and recorded."""

    size: int
    witness: str
    timestamp: int = Field(description="The witness's POSIX time in the cosignature.")
    kept: bool = Field(description="False if a cosignature of that size by this witness, as new or newer, was kept.")
    checkpoint: str = Field(description="The checkpoint of that size with every cosignature recorded for it.")


class LedgerEntryOut(_Out):
    """One ledger entry, its leaf hash and when it was recorded."""

    index: int
    entry: dict[str, Any]
    body: str = Field(description="The leaf data exactly as hashed: base64 of the entry's RFC 8785 bytes.")
    leaf_hash: str
    recorded_at: str


class LedgerPageOut(_Out):
    """A page of entries; ``next`` is null after the last entry."""

    start: int
    limit: int
    entries: list[LedgerEntryOut]
    next: int | None


class InclusionProofOut(_Out):
    """An inclusion proof (RFC 9162 §2.1.3), with the signed checkpoint at the current size."""

    index: int
    size: int
    leaf_hash: str
    proof: list[str]
    root: str
    checkpoint: str | None = None


class ProvedEntryOut(_Out):
    """One entry with its inclusion proof, or why it is not served (``error``)."""

    index: int
    entry: LedgerEntryOut | None = None
    proof: InclusionProofOut | None = None
    error: str | None = Field(
        default=None, description="Set instead of entry and proof: no such entry in the tree, or not yours to read."
    )


class ConsistencyProofOut(_Out):
    """A consistency proof (RFC 9162 §2.1.4), with the signed checkpoint at the current size."""

    old: int
    new: int
    proof: list[str]
    old_root: str
    new_root: str
    checkpoint: str | None = None


class ProvedEntriesOut(_Out):
    """Entries, each with its inclusion proof in the tree of ``size`` (RFC 9162 §2.1.3), in the
    order asked; with the signed checkpoint of that tree when ``size`` is (or was asked as) the
    current size, and the consistency proof from ``old`` when that was asked."""

    size: int
    items: list[ProvedEntryOut]
    checkpoint: str | None = None
    consistency: ConsistencyProofOut | None = Field(
        default=None, description="With `old`: the consistency proof from the tree at `old` to this one."
    )


class HealthOut(_Out):
    """Liveness and database reachability."""

    status: Literal["ok"]
    scenario: str
    database: str
    exercise: dict[str, str | None] | None
    listening: bool | None = Field(
        description="Whether this process hears other processes' commits (LISTEN on PostgreSQL, data_version on"
        " an SQLite file; null for an in-memory database)"
    )
    streams: int = Field(description="Inbox event streams open on this process")
