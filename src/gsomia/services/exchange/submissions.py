"""Submitting a report: verify, decide every recipient, encrypt, wrap, deliver, ledger, commit.

Outside the writer, a submission is checked (the originator's signature over the RFC 8785
bytes of the report, its marking against the originator's ladder, its topic and parties),
encrypted (a fresh AES-256-GCM content key, sealed under the exchange's KEK), decided for
every recipient on the record the exchange holds now, and its content key wrapped by HPKE to
every party that decision needs: the CPU work, done before the writer sees it.

Inside the writer's transaction the submission is decided again, on the record as committed
(its stored version is checked first) and at the transaction's own instant, which never
precedes an earlier commit's. Only if that decision is the one prepared are the report, its
decisions, deliveries and consent requests written with their ledger entries; otherwise the
submission is prepared again. The originator is answered only after the commit.

Report ids are the originator's own: the report is stored under ``ORIGINATOR/ID``. The report
is kept exactly as signed (its canonical text), and the ledger holds only a salted commitment
to the signed bytes, which the originator and the recipients (who get the salt) can check
and nobody else can guess.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from gsomia.codec import b64decode, b64encode
from gsomia.crypto import encrypt_payload, new_content_key, payload_aad, verify
from gsomia.domain.instants import require_supported, utc_iso
from gsomia.domain.record import Caveats, Network, Record
from gsomia.domain.routing import Decision, ReleaseRequest, Route, explain
from gsomia.domain.states import DeliveryPurpose, ReleaseOutcome
from gsomia.domain.topics import TOPIC
from gsomia.errors import BadSignature, Busy, Conflict, GsomiaError, InvalidInput, PayloadTooLarge
from gsomia.ledger.entries import entry_bytes  # the one canonical (RFC 8785) encoder
from gsomia.services.analysis import presenters as views
from gsomia.services.exchange.access import Action, Principal, authorize
from gsomia.services.exchange.context import (
    UTC_ZONE,
    DeliveryWrap,
    ExchangeContext,
    Pending,
    Stale,
    attempts,
    backoff,
    report_key,
)
from gsomia.services.exchange.deliveries import add_delivery
from gsomia.services.exchange.presenters import consent_summary, decision_entry_route, delivery_summary
from gsomia.services.exchange.relays import open_consent
from gsomia.services.exchange.standing import matching_standing
from gsomia.storage.exchange import ExchangeRepo, NewDecision, NewReport, StandingConsentRow, SubmittedReportRow, Tx
from gsomia.storage.writer import Outcome

__all__ = ["MAX_BATCH", "ReportSubmission", "SubmissionResult", "SubmissionService", "commitment"]

REPORT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,95}")
MAX_BATCH = 1000
"""Most signed reports one batch request may carry."""

_CREATED = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
"""A report's ``created``: ISO 8601 extended format with an offset (RFC 3339, T and Z in upper
case, seconds optional) — docs/protocol.md §1.3."""


def commitment(salt: bytes, signed: bytes) -> str:
    """The ledger's commitment to a report: ``HMAC-SHA256(key=salt, signed bytes)`` in hex.

    With a 32-byte random salt it hides the report (nobody without the salt can test a guess
    of its payload against it) and binds it (nobody can find other bytes with the same value).
    """
    return hmac.new(salt, signed, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportSubmission:
    """A report as an originator submits it: the signed report object (JSON values), the
    base64 signature over its RFC 8785 bytes, and the fingerprint of the signer's keys."""

    report: Mapping[str, Any]
    signature: str = field(repr=False)
    key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmissionResult:
    """The exchange's answer: ``created`` false when the same report was submitted before."""

    created: bool
    body: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    """One recipient's decision, and the content key wrapped to every party it needs."""

    recipient: str
    route: Route
    direct: DeliveryWrap | None = None
    hub: DeliveryWrap | None = None
    onward: DeliveryWrap | None = None
    missing_key: str | None = None

    def keys(self) -> dict[str, str | None]:
        """The fingerprint of the keys of each party this plan wraps to, or needed and found
        none for (None): what it was prepared on, and all it was."""
        r = self.route
        if r.decision is Decision.DIRECT:
            return {self.recipient: _fingerprint(self.direct)}
        if r.decision is Decision.RELAY and r.via is not None:
            return {r.via: _fingerprint(self.hub), self.recipient: _fingerprint(self.onward)}
        return {}

    def same_release(self, other: Route) -> bool:
        """Whether ``other`` releases the same way (decision, hub and agreements): the wraps
        prepared for this plan then serve it."""
        r = self.route
        return (r.decision, r.via, r.agreements) == (other.decision, other.via, other.agreements)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Checked:
    """A submission's signed content, checked."""

    id: str
    originator: str
    topic: str
    level: str
    caveats: Caveats
    recipients: tuple[str, ...]
    payload: bytes = field(repr=False)
    signed: bytes = field(repr=False)
    key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Prepared:
    key: str
    checked: _Checked
    report: Mapping[str, Any]
    principal: Principal
    signature: str = field(repr=False)
    signed_report: str
    salt: bytes = field(repr=False)
    commitment: str
    payload_ct: bytes = field(repr=False)
    sealed_key: bytes = field(repr=False)
    network: Network = field(repr=False)
    record_version: str
    keys_version: int
    keys_used: dict[str, str | None]
    plans: tuple[_Plan, ...]


def _busy() -> Busy:
    return Busy(
        "the record, or the keys of a party this report concerns, changed every time it was decided; "
        "nothing was stored: submit it again"
    )


def _fingerprint(wrap: DeliveryWrap | None) -> str | None:
    return wrap.fingerprint if wrap is not None else None


def _keys_used(checked: _Checked, plans: Sequence[_Plan]) -> dict[str, str | None]:
    """The keys a prepared submission depends on: the originator's, which verified it, and
    those of every party its plans wrap to (by fingerprint; None where a party had none)."""
    used: dict[str, str | None] = {checked.originator: checked.key}
    for plan in plans:
        used |= plan.keys()
    return used


def _text(report: Mapping[str, Any], name: str, *, max_len: int = 256) -> str:
    value = report.get(name)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise InvalidInput(f"report.{name}: expected a non-empty string of at most {max_len} characters")
    return value


def _recipients(value: object, record: Record, originator: str) -> tuple[str, ...]:
    """The named recipients: explicit, known, distinct, not the originator (need-to-know)."""
    if value is None:
        raise InvalidInput(
            "report.recipients: name every recipient (need-to-know); to send to every party an agreement "
            "allows, list them ('gsomia client submit --all-eligible' does)"
        )
    if not isinstance(value, list) or not value or not all(isinstance(p, str) for p in value):
        raise InvalidInput("report.recipients: expected a non-empty list of party ids")
    if len(set(value)) != len(value):
        raise InvalidInput("report.recipients: lists a party twice")
    _check_known(record, value, "report.recipients")
    if originator in value:
        raise InvalidInput("report.recipients: the originator cannot be a recipient of its own report")
    return tuple(value)


def _check_known(record: Record, parties: Sequence[str] | frozenset[str], what: str) -> None:
    unknown = sorted(set(parties) - set(record.parties))
    if unknown:
        raise InvalidInput(f"{what}: unknown part{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}")


class SubmissionService:
    """Submitting reports and reading their results."""

    def __init__(self, ctx: ExchangeContext) -> None:
        self.ctx = ctx

    # --- preparing (outside the writer) --------------------------------------------------------

    def _check(self, principal: Principal, sub: ReportSubmission, record: Record) -> _Checked:
        """Authorise, verify the signature, then check what it says (rule 7: nothing on a guess).

        Raises:
            NotPermitted, BadSignature, InvalidInput: as :meth:`submit_async`.
        """
        rep = sub.report
        originator = _text(rep, "originator", max_len=16)
        authorize(principal, Action.SUBMIT, acting_for=originator)
        report_id = _text(rep, "id", max_len=96)
        if not REPORT_ID.fullmatch(report_id):
            raise InvalidInput("report.id: use 1 to 96 letters, digits and . _ : - (starting with a letter or digit)")
        payload = rep.get("payload")
        most = self.ctx.config.max_payload_chars
        if isinstance(payload, str) and len(payload) > most:
            # what the request size limit refuses alone is refused in a batch too
            raise PayloadTooLarge(
                f"report.payload: at most {most:,} characters of base64 in one report (GSOMIA_MAX_BODY_BYTES), "
                "in a batch as alone"
            )
        try:
            signature = b64decode(sub.signature, "signature")
        except InvalidInput:
            raise BadSignature() from None
        keys = self.ctx.identity.signing_key(sub.key, originator)
        if keys is None:
            raise BadSignature()
        signed = entry_bytes(dict(rep))
        verify(keys, signed, signature)
        _check_known(record, [originator], "report.originator")
        level = _text(rep, "level", max_len=64)
        ladder = record.parties[originator].ladder
        if level not in ladder:
            raise InvalidInput(
                f"report.level: {level!r} is not a level of {originator} (levels: {', '.join(ladder.names())})"
            )
        topic = _text(rep, "topic", max_len=128)
        if not TOPIC.fullmatch(topic) or (record.topics and topic not in record.topics):
            raise InvalidInput(f"report.topic: unknown topic {topic!r} (known: {', '.join(sorted(record.topics))})")
        caveats = Caveats.from_json(rep.get("caveats"), "report.caveats")
        if caveats.rel_to is not None:
            _check_known(record, caveats.rel_to, "report.caveats.rel_to")
        created = _text(rep, "created", max_len=64)
        try:
            # The text travels to every recipient as signed: one spelling every reader knows,
            # not whatever else fromisoformat reads (basic format, week dates, a space for T).
            created_at: datetime | None = datetime.fromisoformat(created) if _CREATED.fullmatch(created) else None
        except ValueError:
            created_at = None
        if created_at is None:
            raise InvalidInput(
                "report.created: expected an ISO 8601 instant in extended format with an offset, such as "
                "2019-11-22T09:58:00+09:00 or 2019-11-22T00:58:00Z (RFC 3339)"
            )
        require_supported(created_at, "report.created")
        _text(rep, "content_type", max_len=128)
        recipients = _recipients(rep.get("recipients"), record, originator)
        if len(recipients) > self.ctx.config.max_recipients:
            raise InvalidInput(f"report.recipients: at most {self.ctx.config.max_recipients} recipients")
        return _Checked(
            id=report_id,
            originator=originator,
            topic=topic,
            level=level,
            caveats=caveats,
            recipients=recipients,
            payload=b64decode(rep.get("payload"), "report.payload"),
            signed=signed,
            key=keys.fingerprint(),
        )

    def _prepare(self, principal: Principal, sub: ReportSubmission) -> _Prepared:
        ctx = self.ctx
        # The network and the keys with the stored versions they were read at: the writer
        # compares those with the versions its transaction sees.
        net, record_version = ctx.records.current()
        # read before the keys are used: keys read after it are as new or newer, so a change
        # between the two is seen by the writer as a version that moved (ADR 0003)
        keys_version = ctx.identity.held_keys_version()
        checked = self._check(principal, sub, net.record)
        key = report_key(checked.originator, checked.id)
        content_key = new_content_key()
        salt = secrets.token_bytes(32)
        at = ctx.prepare_instant()
        plans = tuple(self._plan(explain(net, self._request(checked, r, at)), content_key) for r in checked.recipients)
        unsigned = {k: v for k, v in sub.report.items() if k != "payload"}
        return _Prepared(
            key=key,
            checked=checked,
            report=sub.report,
            principal=principal,
            signature=sub.signature,
            signed_report=entry_bytes(unsigned).decode("utf-8"),
            salt=salt,
            commitment=commitment(salt, checked.signed),
            payload_ct=encrypt_payload(content_key, checked.payload, payload_aad(checked.originator, checked.id)),
            sealed_key=ctx.seal(key, content_key),
            network=net,
            record_version=record_version,
            keys_version=keys_version,
            keys_used=_keys_used(checked, plans),
            plans=plans,
        )

    def _prepare_or_stored(self, principal: Principal, sub: ReportSubmission) -> _Prepared | SubmissionResult:
        """:meth:`_prepare`, or the stored result of exactly this signed report when its key has
        been retired since it was stored: a retry of a kept request gets what was stored, as
        any retry does, whatever keys were registered meanwhile.

        Raises:
            as :meth:`_prepare`.
        """
        try:
            return self._prepare(principal, sub)
        except BadSignature:
            stored = self._stored_retry(sub)
            if stored is None:
                raise
            return stored

    def _stored_retry(self, sub: ReportSubmission) -> SubmissionResult | None:
        """The stored result of ``sub`` if it is a report stored with the same signed bytes, the
        same signature and the same key (byte for byte what was verified when it was received),
        else None. Called only once the caller was authorised as its originator."""
        rep = sub.report
        originator, report_id = rep.get("originator"), rep.get("id")
        if not isinstance(originator, str) or not isinstance(report_id, str):
            return None
        with self.ctx.store.reading() as s:
            row = ExchangeRepo.report(s, report_key(originator, report_id))
            if row is None or row.originator != originator or row.signature != sub.signature:
                return None
            if not hmac.compare_digest(row.key, sub.key.lower()):
                return None
            signed = entry_bytes(dict(rep))
            kept = commitment(row.salt, signed) if row.salt else hashlib.sha256(signed).hexdigest()
            if not hmac.compare_digest(kept, row.digest):
                return None
            return SubmissionResult(created=False, body=self._stored_result(s, row))

    @staticmethod
    def _request(c: _Checked, recipient: str, at: datetime) -> ReleaseRequest:
        return ReleaseRequest(
            originator=c.originator, recipient=recipient, topic=c.topic, level=c.level, at=at, caveats=c.caveats
        )

    def _plan(self, route: Route, content_key: bytes) -> _Plan:
        ctx = self.ctx
        recipient = route.request.recipient
        if route.decision is Decision.DIRECT:
            wrap = ctx.wrap_for(recipient, content_key)
            return _Plan(recipient=recipient, route=route, direct=wrap, missing_key=None if wrap else recipient)
        if route.decision is Decision.RELAY and route.via is not None:
            # Wrapped now so a standing consent can release at once; discarded if one does not.
            hub = ctx.wrap_for(route.via, content_key)
            onward = ctx.wrap_for(recipient, content_key)
            missing = None if hub and onward else (route.via if hub is None else recipient)
            return _Plan(recipient=recipient, route=route, hub=hub, onward=onward, missing_key=missing)
        return _Plan(recipient=recipient, route=route)

    # --- submitting -------------------------------------------------------------------------

    def submit(self, principal: Principal, sub: ReportSubmission) -> SubmissionResult:
        """Submit a report and wait for its commit (see :meth:`submit_async`).

        Raises:
            NotPermitted, NotAuthenticated, BadSignature, InvalidInput, Conflict, Busy,
            StorageError: as :meth:`submit_async`.
        """
        for attempt in attempts():
            prepared = self._prepare_or_stored(principal, sub)
            if isinstance(prepared, SubmissionResult):
                return prepared
            try:
                result: SubmissionResult = self.ctx.committer.submit_batched(self._commit_many, prepared).result()
            except Stale:
                time.sleep(backoff(attempt))
                continue
            return result
        raise _busy()

    async def submit_async(self, principal: Principal, sub: ReportSubmission) -> SubmissionResult:
        """Submit a report: verify, decide every recipient, encrypt, deliver, ledger, commit.

        Idempotent by report id (the originator's): the same signed report again returns the
        stored result (``created`` false); another report under a used id is refused.

        Raises:
            NotPermitted: the principal is not the report's originator.
            NotAuthenticated: the principal's token was revoked before the commit.
            BadSignature: the signature does not verify with the originator's current key
                (deliberately without detail).
            InvalidInput: the marking, topic, parties or payload are not valid.
            Conflict: the id was used for a different report of the same originator.
            Busy: the record, or the keys of a party it concerns, changed every time it was
                decided (a few times, a moment apart); nothing was written.
            StorageError: the database failed; nothing was written.
        """
        for attempt in attempts():
            if self.ctx.records.warm():
                # CPU work only (signature, decisions, AES, HPKE), and `cryptography` holds the
                # GIL throughout: a worker thread would run no faster, only add two thread
                # hops and a GIL hand-over per request.
                prepared = self._prepare_or_stored(principal, sub)
            else:  # the record needs re-reading (and maybe compiling): keep the loop free
                prepared = await asyncio.to_thread(self._prepare_or_stored, principal, sub)
            if isinstance(prepared, SubmissionResult):
                return prepared
            try:
                done: SubmissionResult = await self.ctx.committer.run_batched_async(self._commit_many, prepared)
            except Stale:
                await asyncio.sleep(backoff(attempt))
                continue
            return done
        raise _busy()

    async def submit_many_async(
        self, principal: Principal, subs: Sequence[ReportSubmission]
    ) -> list[SubmissionResult | GsomiaError]:
        """Submit many signed reports in one request: each is checked, decided and stored as if
        submitted alone, and they reach the writer together (one commit for all, unless the
        writer's batch limit splits them). One result per report, in order: the stored result,
        or the error that refused that report alone.

        Raises:
            InvalidInput: no reports, or more than :data:`MAX_BATCH`.
        """
        if not 1 <= len(subs) <= MAX_BATCH:
            raise InvalidInput(f"a batch holds 1 to {MAX_BATCH} signed reports")
        results: list[SubmissionResult | GsomiaError | None] = [None] * len(subs)
        waiting = list(range(len(subs)))
        for attempt in attempts():
            prepared: list[tuple[int, _Prepared]] = []
            for n, i in enumerate(waiting):
                try:
                    ready = self._prepare_or_stored(principal, subs[i])
                except GsomiaError as e:
                    results[i] = e
                else:
                    if isinstance(ready, SubmissionResult):
                        results[i] = ready
                    else:
                        prepared.append((i, ready))
                if n % 64 == 63:
                    await asyncio.sleep(0)  # let other requests in between the CPU work
            answers = await asyncio.gather(
                *(self.ctx.committer.run_batched_async(self._commit_many, p) for _, p in prepared),
                return_exceptions=True,
            )
            waiting = []
            for (i, _p), answer in zip(prepared, answers, strict=True):
                if isinstance(answer, Stale):
                    waiting.append(i)
                elif isinstance(answer, (SubmissionResult, GsomiaError)):
                    results[i] = answer
                else:  # pragma: no cover - the writer answers with a result or a gsomia error
                    raise answer
            if not waiting:
                break
            await asyncio.sleep(backoff(attempt))
        for i in waiting:
            results[i] = _busy()
        return [r if r is not None else Conflict("not decided") for r in results]

    # --- committing (inside the writer's transaction) ---------------------------------------------

    def _commit_many(self, s: Tx, batch: list[_Prepared]) -> list[Outcome[SubmissionResult] | Exception]:
        """Store every submission queued together: one existence query, one insert per table.

        Every check comes before any write, so a refused submission has written nothing.
        """
        ctx = self.ctx
        existing = ExchangeRepo.report_digests(s, [p.key for p in batch])
        out: list[Outcome[SubmissionResult] | Exception] = []
        fresh: dict[str, tuple[_Prepared, int]] = {}
        rows = Pending()
        for p in batch:
            seen = existing.get(p.key)
            earlier = fresh.get(p.key)
            if seen is not None or earlier is not None:
                out.append(self._again(s, p, seen, earlier, out))
                continue
            try:
                plans = self._decide_again(s, p)
            except (Stale, GsomiaError) as e:
                out.append(e)
                continue
            fresh[p.key] = (p, len(out))
            out.append(Outcome(SubmissionResult(created=True, body=self._write(s, rows, p, plans))))
        rows.flush(s)
        first = next((i for i, o in enumerate(out) if isinstance(o, Outcome) and o.value.created), None)
        if first is not None:  # one wake-up for the whole batch
            out[first] = replace(out[first], after_commit=rows.outcome(ctx, None).after_commit)  # type: ignore[type-var]
        return out

    def _again(
        self,
        s: Tx,
        p: _Prepared,
        seen: tuple[str, str] | None,
        earlier: tuple[_Prepared, int] | None,
        out: list[Outcome[SubmissionResult] | Exception],
    ) -> Outcome[SubmissionResult] | Exception:
        """A report id used before: the stored result if it is the same signed report, else a
        conflict. Compared on the signed bytes (through the stored commitment's salt), so the
        same report signed again — a retry — is recognised, and nothing else is."""
        if earlier is not None:
            if earlier[0].checked.signed != p.checked.signed:
                return Conflict(f"report id {p.checked.id!r} was already used for a different report")
            return out[earlier[1]]  # the same report twice in one batch: one result
        row = ExchangeRepo.report(s, p.key)
        assert row is not None  # noqa: S101 - found by report_digests in this transaction
        # A report stored before commitments were salted holds the SHA-256 of the same bytes.
        kept = commitment(row.salt, p.checked.signed) if row.salt else hashlib.sha256(p.checked.signed).hexdigest()
        if not hmac.compare_digest(kept, row.digest):
            return Conflict(f"report id {p.checked.id!r} was already used for a different report")
        return Outcome(SubmissionResult(created=False, body=self._stored_result(s, row)))

    def _decide_again(self, s: Tx, p: _Prepared) -> tuple[_Plan, ...]:
        """The plans, decided again on the record as committed at this transaction's instant.

        Raises:
            Stale: the record, a decision or the keys of a party it wraps to (or of its
                originator) changed since the submission was prepared.
            NotAuthenticated: the submitter's token was revoked meanwhile.
        """
        ctx = self.ctx
        ctx.require_principal(s, p.principal)
        ctx.require_record(s, p.record_version)
        ctx.require_keys(s, p.keys_version, p.keys_used)
        at = ctx.instant(s)
        plans = []
        for plan in p.plans:
            route = explain(p.network, self._request(p.checked, plan.recipient, at))
            if not plan.same_release(route):
                raise Stale(f"the decision for {plan.recipient} changed by {utc_iso(at)}")
            plans.append(replace(plan, route=route))
        return tuple(plans)

    def _write(self, s: Tx, rows: Pending, p: _Prepared, plans: tuple[_Plan, ...]) -> dict[str, Any]:
        ctx = self.ctx
        c = p.checked
        at = ctx.instant(s)
        leaf = ctx.append(
            s,
            "submission",
            at,
            {
                "report": c.id,
                "originator": c.originator,
                "topic": c.topic,
                "level": c.level,
                "caveats": c.caveats.to_json(),
                "content_type": p.report["content_type"],
                "payload_size": len(c.payload),
                "commitment": p.commitment,
                "key": c.key,
            },
            parties=[c.originator],
        )
        rows.add(
            NewReport(
                id=p.key,
                originator=c.originator,
                topic=c.topic,
                level=c.level,
                caveats=c.caveats.to_json(),
                created=p.report["created"],
                recipients=list(c.recipients),
                content_type=p.report["content_type"],
                payload_size=len(c.payload),
                digest=p.commitment,
                key=c.key,
                signature=p.signature,
                payload=p.payload_ct,
                sealed_key=p.sealed_key,
                received_at=at,
                leaf_index=leaf,
                signed_report=p.signed_report,
                salt=p.salt,
            )
        )
        standing: list[StandingConsentRow] = []
        if any(plan.route.decision is Decision.RELAY for plan in plans) and not c.caveats.orcon:
            standing = ExchangeRepo.standing_consents(s, [c.originator], active_at=at)
        recipients = [self._commit_plan(s, rows, p, plan, leaf, standing) for plan in plans]
        return {
            "report": c.id,
            "originator": c.originator,
            "commitment": p.commitment,
            "salt": b64encode(p.salt),
            "leaf_index": leaf,
            "received_at": utc_iso(at),
            "recipients": recipients,
        }

    def _commit_plan(
        self, s: Tx, rows: Pending, p: _Prepared, plan: _Plan, submission_leaf: int, standing: Sequence[Any]
    ) -> dict[str, Any]:
        ctx = self.ctx
        c = p.checked
        at = ctx.instant(s)
        route = plan.route
        outcome = _outcome(plan)
        route_json = views.route_json(route, UTC_ZONE)
        if outcome is ReleaseOutcome.NO_KEY:
            route_json["reasons"].append(
                {"rule": "keys", "message": f"{plan.missing_key} has registered no encryption key"}
            )
        match = None
        if outcome is ReleaseOutcome.PENDING_CONSENT and route.via is not None:
            match = matching_standing(standing, topic=c.topic, recipient=plan.recipient, hub=route.via)
            if match is not None:
                outcome = ReleaseOutcome.RELAYED
        decision_leaf = ctx.append(
            s,
            "decision",
            at,
            {"report": c.id, "originator": c.originator, "recipient": plan.recipient, "outcome": outcome}
            | {"route": decision_entry_route(route_json)},
            parties=[c.originator],
        )
        rows.add(
            NewDecision(
                report_id=p.key,
                recipient=plan.recipient,
                decision=route.decision.value,
                outcome=outcome,
                route=route_json,
                decided_at=at,
                leaf_index=decision_leaf,
            )
        )
        deliveries: list[dict[str, Any]] = []
        consent: dict[str, Any] | None = None
        if outcome is ReleaseOutcome.DELIVERED and plan.direct is not None and route.marking is not None:
            deliveries.append(
                add_delivery(
                    ctx,
                    s,
                    rows,
                    wrap=plan.direct,
                    report=p.key,
                    topic=c.topic,
                    marking=route.marking,
                    purpose=DeliveryPurpose.DIRECT,
                    via=None,
                    consent_id=None,
                    submission_leaf=submission_leaf,
                    at=at,
                )
            )
        elif outcome in (ReleaseOutcome.PENDING_CONSENT, ReleaseOutcome.RELAYED):
            consent, relayed = open_consent(
                ctx,
                s,
                rows,
                report=p.key,
                topic=c.topic,
                level=c.level,
                route=route,
                at=at,
                standing=match,
                wraps=(plan.hub, plan.onward),
                submission_leaf=submission_leaf,
            )
            deliveries.extend(relayed)
        return {
            "recipient": plan.recipient,
            "outcome": outcome,
            **route_json,
            "leaf_index": decision_leaf,
            "deliveries": deliveries,
            "consent": consent,
        }

    # --- reading ----------------------------------------------------------------------------

    def _stored_result(self, s: Tx, report: SubmittedReportRow) -> dict[str, Any]:
        by_consent: dict[str, list[dict[str, Any]]] = {}
        direct: dict[str, dict[str, Any]] = {}
        for d in ExchangeRepo.deliveries_of_report(s, report.id):
            if d.consent_id is not None:
                by_consent.setdefault(d.consent_id, []).append(delivery_summary(d))
            elif d.purpose == DeliveryPurpose.DIRECT:
                direct[d.recipient] = delivery_summary(d)
        consents = {c.recipient: c for c in ExchangeRepo.consents_of_report(s, report.id)}
        recipients = []
        for dec in ExchangeRepo.decisions(s, report.id):
            c = consents.get(dec.recipient)
            deliveries = [direct[dec.recipient]] if dec.recipient in direct else []
            if c is not None:
                deliveries += by_consent.get(c.id, [])
            recipients.append(
                {
                    "recipient": dec.recipient,
                    "outcome": dec.outcome,
                    **dec.route,
                    "leaf_index": dec.leaf_index,
                    "deliveries": deliveries,
                    "consent": consent_summary(c) if c is not None else None,
                }
            )
        return {
            "report": report.id.partition("/")[2],
            "originator": report.originator,
            "commitment": report.digest,
            "salt": b64encode(report.salt) if report.salt else None,
            "leaf_index": report.leaf_index,
            "received_at": utc_iso(report.received_at),
            "recipients": recipients,
        }

    def result(self, principal: Principal, report_id: str) -> dict[str, Any]:
        """The current result of one of the caller's reports (its own id).

        Raises:
            NotPermitted: the principal's role may not read submission results.
            UnknownEntity: no such report of the caller's.
            StorageError: on a database failure.
        """
        authorize(principal, Action.READ_REPORT)
        with self.ctx.store.reading() as s:
            report = ExchangeRepo.report(s, report_key(principal.party or "", report_id))
            authorize(
                principal,
                Action.READ_REPORT,
                owners=[report.originator] if report else [],
                thing="report",
                thing_id=report_id,
            )
            assert report is not None  # noqa: S101 - authorize raised for a missing report
            return self._stored_result(s, report)


def _outcome(plan: _Plan) -> ReleaseOutcome:
    """What a decision releases, before standing consents are looked at."""
    if plan.route.decision is Decision.DENY:
        return ReleaseOutcome.DENIED
    if plan.missing_key is not None:
        return ReleaseOutcome.NO_KEY
    if plan.route.decision is Decision.DIRECT:
        return ReleaseOutcome.DELIVERED
    return ReleaseOutcome.PENDING_CONSENT
