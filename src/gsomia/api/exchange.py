"""Exchange endpoints: submit reports, the inbox (paged and streamed), deliveries and their
acknowledgement, consents, incidents (Art. 17), public keys, operator agreement events,
statistics and exercise mode.

Every endpoint needs a bearer token. Handlers parse the request, call one service and return
its answer; who may do what is decided by the services (:mod:`gsomia.services.exchange.access`).
Request bodies reject unknown fields (422). Errors are RFC 9457 problems.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from gsomia import jsontext
from gsomia.api.deps import Caller, app_of
from gsomia.api.problems import describe
from gsomia.api.schemas import (
    AUTHENTICATED,
    AckOut,
    BatchOut,
    ConsentListOut,
    ConsentOut,
    DeliveriesOut,
    DeliveryOut,
    ExchangeStatsOut,
    ExerciseOut,
    InboxPageOut,
    IncidentOut,
    PublicKeysOut,
    RecordedEventOut,
    RegisteredKeysOut,
    StandingConsentListOut,
    StandingConsentOut,
    SubmissionOut,
    WhoamiOut,
    WitnessesOut,
    WitnessOut,
    problems,
)
from gsomia.crypto import PublicKeys
from gsomia.errors import InvalidInput
from gsomia.services.exchange.deliveries import MAX_DELIVERIES
from gsomia.services.exchange.operator import EventSpec
from gsomia.services.exchange.standing import StandingConsentSpec
from gsomia.services.exchange.submissions import MAX_BATCH, ReportSubmission, SubmissionResult

router = APIRouter(prefix="/api/v1", tags=["exchange"])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# --- reports -------------------------------------------------------------------------------


class CaveatsIn(_Strict):
    """The originator's caveats (rule 4)."""

    rel_to: list[str] | None = Field(description="REL TO list of party ids, or null for none.")
    noforn: bool
    orcon: bool = Field(description="Originator-controlled: every relay needs consent for this very report.")


class ReportIn(_Strict):
    """The report as signed: every member is required, so the signed bytes are unambiguous."""

    id: str = Field(description="Unique id chosen by the originator (idempotency key).")
    originator: str
    topic: str
    level: str = Field(description="A level of the originator's national ladder, e.g. 極秘.")
    caveats: CaveatsIn
    created: str = Field(description="ISO 8601 instant with offset.")
    recipients: list[str] | None = Field(description="Recipients, or null for every other party.")
    content_type: str
    payload: str = Field(description="The payload, base64.")


class SubmissionIn(_Strict):
    """A signed report: the signature is over the RFC 8785 canonical bytes of ``report``."""

    report: ReportIn
    signature: str = Field(description="base64 signature by the originator's signing key.")
    key: str = Field(description="Fingerprint of the originator's registered public keys.")


class CompactJSONResponse(JSONResponse):
    """A JSON answer written by :mod:`gsomia.jsontext` (orjson): byte for byte what
    :class:`JSONResponse` writes (compact, UTF-8 as is) for the service's plain values, several
    times faster on a batch's results (about 2.5 KB per report)."""

    def render(self, content: Any) -> bytes:
        """The compact UTF-8 JSON of ``content``."""
        return jsontext.compact_bytes(content)


@router.post(
    "/reports",
    status_code=201,
    summary="Submit a signed report; every recipient is decided and delivered in one commit",
    response_model=None,
    responses={
        201: {"model": SubmissionOut, "description": "Submitted: the result for every recipient."},
        200: {"model": SubmissionOut, "description": "The same report was submitted before: the stored result."},
        **problems(400, *AUTHENTICATED, 409, 413),
    },
)
async def submit(request: Request, body: SubmissionIn, caller: Caller) -> CompactJSONResponse:
    """Verify, decide every recipient at the exchange clock, encrypt, wrap per recipient, ledger."""
    sub = ReportSubmission(report=body.report.model_dump(mode="json"), signature=body.signature, key=body.key)
    result = await app_of(request).exchange.submissions.submit_async(caller, sub)
    # The body is plain JSON values built by the service: encoded once, without a second pass
    # through a response model (the hottest endpoint).
    return CompactJSONResponse(result.body, status_code=201 if result.created else 200)


class BatchIn(_Strict):
    """Many signed reports in one request (a bulk feed pays HTTP once, not per report)."""

    reports: list[SubmissionIn] = Field(min_length=1, max_length=MAX_BATCH)


@router.post(
    "/report-batches",
    summary="Submit up to 1,000 signed reports in one request; one result per report",
    response_model=None,
    responses={
        200: {
            "model": BatchOut,
            "description": "One result per report, in order: each decided, delivered and ledgered as if "
            "submitted alone; one refused report fails only itself.",
        },
        **problems(*AUTHENTICATED, 413),
    },
)
async def submit_batch(request: Request, body: BatchIn, caller: Caller) -> CompactJSONResponse:
    """Like ``POST /reports`` for each report, in one request and one commit. The answer is always
    200 with a result per report (like a TAXII status resource): ``status`` 201 (stored), 200
    (the same report was stored before) or the error status, with ``result`` or ``problem``."""
    subs = [
        ReportSubmission(report=item.report.model_dump(mode="json"), signature=item.signature, key=item.key)
        for item in body.reports
    ]
    answers = await app_of(request).exchange.submissions.submit_many_async(caller, subs)
    results: list[dict[str, Any]] = []
    for index, answer in enumerate(answers):
        if isinstance(answer, SubmissionResult):
            status = 201 if answer.created else 200
            results.append({"index": index, "status": status, "result": answer.body, "problem": None})
        else:
            problem = describe(answer)
            results.append({"index": index, "status": problem["status"], "result": None, "problem": problem})
    counts = {
        "stored": sum(r["status"] == 201 for r in results),
        "already_stored": sum(r["status"] == 200 for r in results),
        "refused": sum(r["status"] >= 400 for r in results),
    }
    return CompactJSONResponse({"results": results, "counts": counts})


@router.get(
    "/reports/{report_id}",
    summary="The current result of one of your reports",
    response_model=SubmissionOut,
    responses=problems(*AUTHENTICATED, 404),
)
def report(request: Request, report_id: str, caller: Caller) -> dict[str, Any]:
    """Decisions, deliveries and consent states per recipient (originator only)."""
    return app_of(request).exchange.submissions.result(caller, report_id)


# --- inbox and deliveries --------------------------------------------------------------------


@router.get(
    "/inbox",
    summary="Your inbox: deliveries, consent requests and incident notices, in order",
    response_model=InboxPageOut,
    response_model_exclude_unset=True,
    responses=problems(*AUTHENTICATED),
)
def inbox(
    request: Request,
    caller: Caller,
    cursor: Annotated[str | None, Query(description="Continue after this cursor (next_cursor of a page).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description=f"1 to 1000 (to {MAX_DELIVERIES} with deliveries).")] = 100,
    deliveries: Annotated[
        bool,
        Query(
            description="Each delivery item also carries the delivery as /deliveries/{id} serves it "
            "(attests need-to-know as a fetch does), under `document`."
        ),
    ] = False,
) -> dict[str, Any]:
    """``{"items": [...], "next_cursor", "cursor", "head"}``; ``next_cursor`` is null when there is
    nothing more now; ``head`` is the caller's newest item's cursor (``"0"`` if none): a cursor
    past it was not given by this exchange's database."""
    after = _cursor(cursor)
    service = app_of(request).exchange.deliveries
    items, last, head = service.inbox_page(caller, after=after, limit=limit, deliveries=deliveries)
    return {
        "items": items,
        "next_cursor": str(last) if len(items) == limit else None,
        "cursor": str(last),
        "head": str(head),
    }


_CURSOR = re.compile(r"[0-9]{1,18}")
"""An inbox cursor: ASCII decimal digits that fit a 64-bit database integer (str.isdigit would
also accept superscripts and other scripts' digits, and int() has no upper bound)."""


def _cursor(text: str | None, name: str = "cursor") -> int:
    if text is None or text == "":
        return 0
    if not _CURSOR.fullmatch(text):
        raise InvalidInput(f"{name}: use a next_cursor value from a previous page (up to 18 decimal digits)")
    return int(text)


@router.get(
    "/inbox/stream",
    summary="Server-sent events: each new inbox item as soon as it is committed",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "An event stream: each event's name is the item's type, its id the inbox cursor, "
            "its data the item as JSON.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **problems(*AUTHENTICATED),
    },
)
async def stream(
    request: Request,
    caller: Caller,
    last_event_id: Annotated[str | None, Header(description="Resume after this event id.")] = None,
    cursor: Annotated[str | None, Query(description="Resume after this cursor (as Last-Event-ID).")] = None,
    deliveries: Annotated[
        bool,
        Query(
            description="Each delivery event also carries the delivery as /deliveries/{id} serves it, under `document`."
        ),
    ] = False,
) -> EventSourceResponse:
    """Events ``delivery``, ``consent_request``, ``incident``, ``incident_update``; the event id is
    the inbox cursor. Without ``Last-Event-ID`` or ``cursor`` the stream starts with new items."""
    exchange = app_of(request).exchange
    resume = last_event_id if last_event_id is not None else cursor
    # Subscribe before reading where to start, so an item committed in between is not missed.
    subscription = exchange.notifier.subscribe(caller.party or "")
    try:
        start = _cursor(resume, "Last-Event-ID" if last_event_id is not None else "cursor") if resume else None
        after = await run_in_threadpool(exchange.deliveries.stream_start, caller, start, deliveries=deliveries)
    except BaseException:
        subscription.close()
        raise

    async def events() -> AsyncIterator[ServerSentEvent | bytes]:
        yield ServerSentEvent(comment="gsomia inbox stream", retry=2000)
        follow = exchange.deliveries.follow(caller, after=after, subscription=subscription, deliveries=deliveries)
        async for items in follow:
            # the events of one read go out in one write (one trip through the middleware)
            yield b"".join(_event(item) for item in items)

    return EventSourceResponse(events(), ping=15)


def _event(item: dict[str, Any]) -> bytes:
    """One inbox item as an event: its type, its ``seq`` as the id, the item as JSON.

    Written here rather than by ``ServerSentEvent``, which splits its data at line breaks with a
    regular expression: compact JSON holds none (a line break in a string is escaped), nor do
    the item's ``seq`` (an integer) and its type (a word of the inbox's vocabulary, checked), so
    each field is one line. The frame is the one ``ServerSentEvent`` would write.
    """
    kind = item["type"]
    data = jsontext.compact_bytes(item)
    if not (isinstance(kind, str) and _EVENT_NAME.fullmatch(kind)):
        return ServerSentEvent(data.decode("utf-8"), event=str(kind), id=str(item["seq"])).encode()
    return b"id: %d\r\nevent: %s\r\ndata: %s\r\n\r\n" % (int(item["seq"]), kind.encode("ascii"), data)


_EVENT_NAME = re.compile(r"[a-z_]{1,64}")


@router.get(
    "/deliveries",
    summary="Fetch several deliveries at once (each attests need-to-know as a fetch does)",
    response_model=DeliveriesOut,
    responses=problems(*AUTHENTICATED),
)
def deliveries(
    request: Request,
    caller: Caller,
    id: Annotated[
        list[str],
        Query(min_length=1, max_length=MAX_DELIVERIES, description=f"Delivery ids (repeat), 1 to {MAX_DELIVERIES}."),
    ],
) -> dict[str, Any]:
    """``{"items": [delivery | {"id", "error"}]}`` in the order asked: each what
    ``/deliveries/{id}`` answers, or ``error`` where it answers 404."""
    return {"items": app_of(request).exchange.deliveries.deliveries(caller, id)}


@router.get(
    "/deliveries/{delivery_id}",
    summary="Fetch a delivery (attests need-to-know)",
    response_model=DeliveryOut,
    responses=problems(*AUTHENTICATED, 404),
)
def delivery(request: Request, delivery_id: str, caller: Caller) -> dict[str, Any]:
    """The marking, the payload ciphertext and the content key wrapped to your key; decrypt locally."""
    return app_of(request).exchange.deliveries.delivery(caller, delivery_id)


class AckIn(_Strict):
    """An acknowledgement: the recipient attests need-to-know (rule 5)."""

    need_to_know: bool


@router.post(
    "/deliveries/{delivery_id}/ack",
    summary="Acknowledge receipt (attests need-to-know)",
    response_model=AckOut,
    responses=problems(*AUTHENTICATED, 404, 413),
)
def ack(request: Request, delivery_id: str, body: AckIn, caller: Caller) -> dict[str, Any]:
    """Ledgered once; acknowledging again returns the same acknowledgement."""
    return app_of(request).exchange.deliveries.acknowledge(caller, delivery_id, need_to_know=body.need_to_know)


# --- incidents -----------------------------------------------------------------------------


class IncidentIn(_Strict):
    """A loss or compromise report (Art. 17)."""

    kind: Literal["loss", "compromise", "possible_compromise"]
    description: str = Field(min_length=1, max_length=8000)


@router.post(
    "/deliveries/{delivery_id}/incidents",
    status_code=201,
    summary="Report loss or compromise (Art. 17)",
    response_model=IncidentOut,
    responses=problems(*AUTHENTICATED, 404, 413),
)
def file_incident(request: Request, delivery_id: str, body: IncidentIn, caller: Caller) -> dict[str, Any]:
    """The originator is told at once (an inbox item)."""
    return app_of(request).exchange.incidents.file_incident(
        caller, delivery_id, kind=body.kind, description=body.description
    )


@router.get(
    "/incidents/{incident_id}",
    summary="An incident and its updates",
    response_model=IncidentOut,
    responses=problems(*AUTHENTICATED, 404),
)
def incident(request: Request, incident_id: str, caller: Caller) -> dict[str, Any]:
    """For the reporting recipient and the originator."""
    return app_of(request).exchange.incidents.incident(caller, incident_id)


class IncidentUpdateIn(_Strict):
    """An investigation result and the measures taken."""

    result: str = Field(default="", max_length=8000)
    measures: str = Field(default="", max_length=8000)


@router.post(
    "/incidents/{incident_id}/updates",
    status_code=201,
    summary="Append results and measures",
    response_model=IncidentOut,
    responses=problems(*AUTHENTICATED, 404, 413),
)
def update_incident(request: Request, incident_id: str, body: IncidentUpdateIn, caller: Caller) -> dict[str, Any]:
    """By the reporter or the originator; the other side is told."""
    return app_of(request).exchange.incidents.update_incident(
        caller, incident_id, result=body.result, measures=body.measures
    )


# --- consents ------------------------------------------------------------------------------


@router.get(
    "/consents",
    summary="Consent requests for relays of your reports",
    response_model=ConsentListOut,
    responses=problems(*AUTHENTICATED),
)
def consents(
    request: Request,
    caller: Caller,
    state: Annotated[
        Literal["pending", "granted", "refused", "expired", "all"], Query(description="Which to list.")
    ] = "pending",
) -> dict[str, Any]:
    """Pending ones by default; expired requests are expired (and ledgered) first."""
    items = app_of(request).exchange.consents.consents(caller, state=None if state == "all" else state)
    return {"consents": items}


class ConsentAnswerIn(_Strict):
    """The originator's answer."""

    decision: Literal["grant", "refuse"]
    reason: str = Field(default="", max_length=2000)


@router.post(
    "/consents/{consent_id}",
    summary="Grant or refuse a relay",
    response_model=ConsentOut,
    responses=problems(*AUTHENTICATED, 404, 409, 413),
)
def answer(request: Request, consent_id: str, body: ConsentAnswerIn, caller: Caller) -> dict[str, Any]:
    """A grant decides the relay again now; if it still holds, the hub's and the onward
    deliveries are made, each ledgered; otherwise the answer says why the relay was refused."""
    return app_of(request).exchange.consents.answer(
        caller, consent_id, grant=body.decision == "grant", reason=body.reason
    )


class StandingConsentIn(_Strict):
    """A standing consent: relays of a topic prefix to a recipient, for a period."""

    topic_prefix: str = Field(
        max_length=128, description="e.g. dprk.missile, or * for every topic (a report's topic is at most 128)."
    )
    recipient: str
    hub: str | None = None
    valid_from: str | None = Field(default=None, description="ISO 8601 instant; default: now.")
    valid_until: str
    note: str = Field(default="", max_length=2000)


@router.post(
    "/standing-consents",
    status_code=201,
    summary="Give a standing consent",
    response_model=StandingConsentOut,
    responses=problems(*AUTHENTICATED, 413),
)
def add_standing(request: Request, body: StandingConsentIn, caller: Caller) -> dict[str, Any]:
    """Relays it covers are released at once (never for ORCON reports)."""
    spec = StandingConsentSpec(**body.model_dump())
    return app_of(request).exchange.standing.add(caller, spec)


@router.get(
    "/standing-consents",
    summary="Your standing consents",
    response_model=StandingConsentListOut,
    responses=problems(*AUTHENTICATED),
)
def standing(request: Request, caller: Caller) -> dict[str, Any]:
    """Revoked ones included, with ``revoked_at``."""
    return {"standing_consents": app_of(request).exchange.standing.list(caller)}


@router.delete(
    "/standing-consents/{standing_id}",
    summary="Revoke a standing consent",
    response_model=StandingConsentOut,
    responses=problems(*AUTHENTICATED, 404),
)
def revoke_standing(request: Request, standing_id: str, caller: Caller) -> dict[str, Any]:
    """Idempotent; ledgered once."""
    return app_of(request).exchange.standing.revoke(caller, standing_id)


# --- keys ----------------------------------------------------------------------------------


class PublicKeysIn(_Strict):
    """A party's public keys, as ``gsomia keys generate`` prints them."""

    party: str
    profile: Literal["classic", "cnsa2"]
    signing_key: str
    encryption_key: str
    fingerprint: str | None = None


@router.put(
    "/parties/{party}/keys",
    summary="Register your public keys (never a private key)",
    response_model=RegisteredKeysOut,
    responses={
        201: {"model": RegisteredKeysOut, "description": "Registered; earlier keys retired."},
        200: {"description": "These keys were already the party's current keys."},
        **problems(*AUTHENTICATED, 404, 413, 429),
    },
)
def register_keys(
    request: Request, party: str, body: PublicKeysIn, caller: Caller, response: Response
) -> dict[str, Any]:
    """A party registers its own keys (an operator may register any party's); earlier keys retire.
    A party registers at most a few key sets an hour (``GSOMIA_KEY_REGISTRATIONS_PER_HOUR``);
    beyond, 429 with Retry-After."""
    keys = PublicKeys.from_dict(body.model_dump(exclude_none=True))
    registered, new = app_of(request).exchange.keys.register(caller, party, keys)
    response.status_code = 201 if new else 200
    return {"party": party, **registered.as_dict()}


@router.get(
    "/parties/{party}/keys",
    summary="A party's public keys",
    response_model=PublicKeysOut,
    responses=problems(*AUTHENTICATED, 404),
)
def public_keys(request: Request, party: str, caller: Caller) -> dict[str, Any]:
    """Public keys only: what a client needs to verify an originator's signature."""
    keys = app_of(request).exchange.keys.history(caller, party)
    return {"party": party, "keys": [k.as_dict() for k in keys]}


class WitnessIn(_Strict):
    """A witness's verifier key, as ``gsomia node`` prints it."""

    vkey: str = Field(
        max_length=400, description="NAME+KEYID+base64(0x04 || Ed25519 public key) (C2SP tlog-cosignature)."
    )


@router.put(
    "/parties/{party}/witness",
    summary="Register your node's witness key (it cosigns checkpoints)",
    response_model=WitnessOut,
    responses={
        201: {"model": WitnessOut, "description": "Registered (ledgered); the previous witness is replaced."},
        200: {"description": "This was already the party's witness."},
        **problems(*AUTHENTICATED, 404, 409, 413),
    },
)
def register_witness(
    request: Request, party: str, body: WitnessIn, caller: Caller, response: Response
) -> dict[str, Any]:
    """A party registers its own witness (an operator may register any party's); public ledger entry."""
    witness, new = app_of(request).exchange.witnesses.register(caller, party, body.vkey)
    response.status_code = 201 if new else 200
    return witness.to_dict()


@router.get(
    "/witnesses",
    summary="Every party's witness key",
    response_model=WitnessesOut,
    responses=problems(*AUTHENTICATED),
)
def witnesses(request: Request, caller: Caller) -> dict[str, Any]:
    """The keys to pass to ``gsomia ledger verify --witness``; each is also in the ledger."""
    return {"witnesses": [w.to_dict() for w in app_of(request).exchange.witnesses.witnesses(caller)]}


@router.get("/whoami", summary="Who the token belongs to", response_model=WhoamiOut, responses=problems(*AUTHENTICATED))
def whoami(caller: Caller) -> dict[str, Any]:
    """``{"id", "name", "role", "party"}``."""
    return {"id": caller.id, "name": caller.name, "role": caller.role.value, "party": caller.party}


# --- operator ------------------------------------------------------------------------------


class EventIn(_Strict):
    """An agreement event (the same fields as a scenario file's event)."""

    kind: Literal[
        "signature",
        "entry_into_force",
        "notice",
        "suspension",
        "revival",
        "withdrawal",
        "termination",
        "amendment",
    ]
    at: str | None = Field(default=None, description="When it happened (a notice: when received); default: now.")
    by: str | None = None
    effective: str | None = None
    note: str = ""
    source: str = ""
    id: str | None = Field(default=None, description="Event id; default: a fresh one.")
    changes: dict[str, Any] | None = None


@router.post(
    "/agreements/{agreement_id}/events",
    status_code=201,
    summary="Record an agreement event (operator)",
    response_model=RecordedEventOut,
    responses=problems(*AUTHENTICATED, 404, 409, 413),
)
def record_event(request: Request, agreement_id: str, body: EventIn, caller: Caller) -> dict[str, Any]:
    """Changes decisions from now on; deliveries already made keep their markings (Art. 21.4)."""
    return app_of(request).exchange.operator.record_event(caller, agreement_id, EventSpec(**body.model_dump()))


@router.get(
    "/exchange/stats",
    summary="Exchange counts (auditor, operator): never content",
    response_model=ExchangeStatsOut,
    responses=problems(*AUTHENTICATED),
)
def stats(request: Request, caller: Caller) -> dict[str, Any]:
    """Reports, decisions by outcome, deliveries by state, consents by state, incidents, pairs."""
    return app_of(request).exchange.deliveries.stats(caller)


class ClockIn(_Strict):
    """Where to move the exercise clock."""

    at: str = Field(description="ISO 8601 instant with offset; never earlier than the exercise clock.")


@router.get(
    "/exercise",
    summary="Whether exercise mode is on, and the exchange clock",
    response_model=ExerciseOut,
    responses=problems(*AUTHENTICATED),
)
def exercise(request: Request, caller: Caller) -> dict[str, Any]:
    """``{"exercise": bool, "clock", "whatif"}``."""
    clock = app_of(request).exchange.context.shared_clock()
    info = clock.info()
    return {
        "exercise": info is not None,
        "clock": clock.now().isoformat(),
        "whatif": (info.whatif or None) if info else None,
    }


@router.post(
    "/exercise/clock",
    summary="Move the exercise clock forward (operator, exercise mode only)",
    response_model=ExerciseOut,
    responses=problems(*AUTHENTICATED, 409, 413),
)
def set_clock(request: Request, body: ClockIn, caller: Caller) -> dict[str, Any]:
    """Never backwards; consent requests that run out are expired at once."""
    exchange = app_of(request).exchange
    at = exchange.operator.advance_clock(caller, body.at)
    return {"exercise": True, "clock": at.isoformat(), "whatif": exchange.clock.whatif_name or None}
