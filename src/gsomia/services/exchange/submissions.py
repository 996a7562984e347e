"""Submitting a report: verify, decide every recipient, encrypt, wrap, deliver, ledger, commit.

A submission is checked (the originator's signature over the RFC 8785 bytes of the report,
its marking against the originator's ladder, its topic and parties), encrypted (a fresh
AES-256-GCM content key, sealed under the exchange's KEK) and decided for every recipient at
the exchange clock with the core engine; the content key is wrapped by HPKE to each allowed
recipient, all before the writer sees it. The writer stores the report, its decisions,
deliveries and consent requests with their ledger entries in one transaction (group commit),
and the originator is answered only after that commit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from gsomia.codec import b64decode
from gsomia.crypto import encrypt_payload, new_content_key, payload_aad, verify
from gsomia.domain.instants import require_supported, utc_iso
from gsomia.domain.record import Caveats, Record
from gsomia.domain.routing import Decision, ReleaseRequest, Route, explain
from gsomia.domain.states import DeliveryPurpose, ReleaseOutcome
from gsomia.domain.topics import TOPIC
from gsomia.errors import BadSignature, Conflict, InvalidInput
from gsomia.ledger.entries import entry_bytes  # the one canonical (RFC 8785) encoder
from gsomia.services.analysis import presenters as views
from gsomia.services.exchange.access import Action, Principal, authorize
from gsomia.services.exchange.context import UTC_ZONE, DeliveryWrap, ExchangeContext, Pending
from gsomia.services.exchange.deliveries import add_delivery
from gsomia.services.exchange.presenters import consent_summary, decision_entry_route, delivery_summary
from gsomia.services.exchange.relays import open_consent
from gsomia.services.exchange.standing import matching_standing
from gsomia.storage.exchange import ExchangeRepo, NewDecision, NewReport, SubmittedReportRow, Tx
from gsomia.storage.writer import Outcome

__all__ = ["ReportSubmission", "SubmissionResult", "SubmissionService"]

REPORT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,95}")


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
    recipient: str
    route: Route
    route_json: dict[str, Any]
    direct: DeliveryWrap | None = None
    hub: DeliveryWrap | None = None
    onward: DeliveryWrap | None = None
    missing_key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Prepared:
    id: str
    originator: str
    topic: str
    level: str
    caveats: Caveats
    report: Mapping[str, Any]
    digest: str
    signature: str = field(repr=False)
    key: str
    payload_ct: bytes = field(repr=False)
    sealed_key: bytes = field(repr=False)
    payload_size: int
    at: datetime
    plans: tuple[_Plan, ...]
    generation: int
    keys_generation: int


class _Stale(Exception):
    """The record or the keys changed between preparing a submission and committing it."""


def _text(report: Mapping[str, Any], name: str, *, max_len: int = 256) -> str:
    value = report.get(name)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise InvalidInput(f"report.{name}: expected a non-empty string of at most {max_len} characters")
    return value


def _parties(value: object, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise InvalidInput(f"{what}: expected a list of party ids or null")
    if len(set(value)) != len(value):
        raise InvalidInput(f"{what}: lists a party twice")
    return tuple(value)


def _check_known(record: Record, parties: Iterable[str], what: str) -> None:
    unknown = sorted(set(parties) - set(record.parties))
    if unknown:
        raise InvalidInput(f"{what}: unknown part{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}")


class SubmissionService:
    """Submitting reports and reading their results."""

    def __init__(self, ctx: ExchangeContext) -> None:
        self.ctx = ctx

    # --- submit ----------------------------------------------------------------------------

    def _prepare(self, principal: Principal, sub: ReportSubmission) -> _Prepared:
        ctx = self.ctx
        # Generations first, what they count after: a record or key change that lands while
        # this runs then shows as a mismatch at commit (and the report is decided again),
        # never as a decision on the old record stamped with the new generation.
        generation = ctx.records.generation
        keys_generation = ctx.identity.keys_generation
        rep = sub.report
        originator = _text(rep, "originator", max_len=16)
        authorize(principal, Action.SUBMIT, acting_for=originator)
        report_id = _text(rep, "id", max_len=96)
        if not REPORT_ID.fullmatch(report_id):
            raise InvalidInput("report.id: use 1 to 96 letters, digits and . _ : - (starting with a letter or digit)")
        try:
            signature = base64.b64decode(sub.signature.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise BadSignature() from None
        keys = ctx.identity.signing_key(sub.key, originator)
        if keys is None:
            raise BadSignature()
        canonical = entry_bytes(dict(rep))
        verify(keys, canonical, signature)
        # The signature holds; now check what it says (rule 7: nothing on a guess).
        net = ctx.records.network()
        record = net.record
        _check_known(record, [originator], "report.originator")
        party = record.parties[originator]
        level = _text(rep, "level", max_len=64)
        if level not in party.ladder:
            raise InvalidInput(
                f"report.level: {level!r} is not a level of {originator} (levels: {', '.join(party.ladder.names())})"
            )
        topic = _text(rep, "topic", max_len=128)
        if not TOPIC.fullmatch(topic) or (record.topics and topic not in record.topics):
            known = ", ".join(sorted(record.topics))
            raise InvalidInput(f"report.topic: unknown topic {topic!r} (known: {known})")
        caveats = Caveats.from_json(rep.get("caveats"), "report.caveats")
        if caveats.rel_to is not None:
            _check_known(record, caveats.rel_to, "report.caveats.rel_to")
        created = _text(rep, "created", max_len=64)
        try:
            created_at = datetime.fromisoformat(created)
        except ValueError:
            created_at = None
        if created_at is None or created_at.tzinfo is None:
            raise InvalidInput("report.created: expected an ISO 8601 instant with a UTC offset")
        require_supported(created_at, "report.created")
        _text(rep, "content_type", max_len=128)
        named = _parties(rep.get("recipients"), "report.recipients")
        if named is not None:
            _check_known(record, named, "report.recipients")
            if originator in named:
                raise InvalidInput("report.recipients: the originator cannot be a recipient of its own report")
            if not named:
                raise InvalidInput("report.recipients: name at least one recipient, or null for every party")
        recipients = named if named is not None else tuple(sorted(p for p in record.parties if p != originator))
        if len(recipients) > ctx.config.max_recipients:
            raise InvalidInput(f"report.recipients: at most {ctx.config.max_recipients} recipients")
        payload = b64decode(rep.get("payload"), "report.payload")
        at = ctx.clock.now()
        content_key = new_content_key()
        plans = []
        for recipient in recipients:
            req = ReleaseRequest(
                originator=originator, recipient=recipient, topic=topic, level=level, at=at, caveats=caveats
            )
            route = explain(net, req)
            plans.append(self._plan(route, content_key))
        return _Prepared(
            id=report_id,
            originator=originator,
            topic=topic,
            level=level,
            caveats=caveats,
            report=rep,
            digest=hashlib.sha256(canonical).hexdigest(),
            signature=sub.signature,
            key=keys.fingerprint(),
            payload_ct=encrypt_payload(content_key, payload, payload_aad(report_id)),
            sealed_key=ctx.seal(report_id, content_key),
            payload_size=len(payload),
            at=at,
            plans=tuple(plans),
            generation=generation,
            keys_generation=keys_generation,
        )

    def _plan(self, route: Route, content_key: bytes) -> _Plan:
        ctx = self.ctx
        recipient = route.request.recipient
        rj = views.route_json(route, UTC_ZONE)
        if route.decision is Decision.DIRECT:
            wrap = ctx.wrap_for(recipient, content_key)
            return _Plan(
                recipient=recipient, route=route, route_json=rj, direct=wrap, missing_key=None if wrap else recipient
            )
        if route.decision is Decision.RELAY and route.via is not None:
            # Wrapped now so a standing consent can release at once; discarded if one does not.
            hub = ctx.wrap_for(route.via, content_key)
            onward = ctx.wrap_for(recipient, content_key)
            missing = None if hub and onward else (route.via if hub is None else recipient)
            return _Plan(recipient=recipient, route=route, route_json=rj, hub=hub, onward=onward, missing_key=missing)
        return _Plan(recipient=recipient, route=route, route_json=rj)

    def submit(self, principal: Principal, sub: ReportSubmission) -> SubmissionResult:
        """Submit a report and wait for its commit (see :meth:`submit_async`).

        Raises:
            NotPermitted, BadSignature, InvalidInput, Conflict, StorageError: as
            :meth:`submit_async`.
        """
        for _attempt in range(5):
            prepared = self._prepare(principal, sub)
            try:
                result: SubmissionResult = self.ctx.committer.submit_batched(self._commit_many, prepared).result()
            except _Stale:
                continue
            return result
        raise Conflict("the record kept changing while this report was decided; submit it again")

    async def submit_async(self, principal: Principal, sub: ReportSubmission) -> SubmissionResult:
        """Submit a report: verify, decide every recipient, encrypt, deliver, ledger, commit.

        Idempotent by report id: the same signed report again returns the stored result
        (``created`` false); another report under a used id is refused.

        Raises:
            NotPermitted: the principal is not the report's originator.
            BadSignature: the signature does not verify with the originator's current key
                (deliberately without detail).
            InvalidInput: the marking, topic, parties or payload are not valid.
            Conflict: the id was used for a different report.
            StorageError: the database failed; nothing was written.
        """
        for _attempt in range(5):
            if self.ctx.records.warm():
                # CPU work only (signature, decisions, AES, HPKE), and `cryptography` holds the
                # GIL throughout: a worker thread would run no faster, only add two thread
                # hops and a GIL hand-over per request.
                prepared = self._prepare(principal, sub)
            else:  # the record needs re-reading (and maybe compiling): keep the loop free
                prepared = await asyncio.to_thread(self._prepare, principal, sub)
            try:
                done: SubmissionResult = await self.ctx.committer.run_batched_async(self._commit_many, prepared)
            except _Stale:
                continue
            return done
        raise Conflict("the record kept changing while this report was decided; submit it again")

    def _commit_many(self, s: Tx, batch: list[_Prepared]) -> list[Outcome[SubmissionResult] | Exception]:
        """Store every submission queued together: one existence query, one insert per table.

        Every check comes before any write, so a refused submission has written nothing.
        """
        ctx = self.ctx
        existing = ExchangeRepo.report_digests(s, [p.id for p in batch])
        out: list[Outcome[SubmissionResult] | Exception] = []
        fresh: dict[str, tuple[_Prepared, int]] = {}
        rows = Pending()
        for p in batch:
            stored = existing.get(p.id)
            earlier = fresh.get(p.id)
            if stored is not None or earlier is not None:
                if stored is not None:
                    digest, originator = stored
                else:
                    assert earlier is not None  # noqa: S101 - one of the two is set
                    digest, originator = earlier[0].digest, earlier[0].originator
                if digest != p.digest or originator != p.originator:
                    out.append(Conflict(f"report id {p.id!r} was already used for a different report"))
                elif earlier is not None:
                    out.append(out[earlier[1]])  # the same report twice in one batch: one result
                else:
                    row = ExchangeRepo.report(s, p.id)
                    assert row is not None  # noqa: S101 - found by report_digests in this transaction
                    out.append(Outcome(SubmissionResult(created=False, body=self._stored_result(s, row))))
                continue
            if p.generation != ctx.records.generation or p.keys_generation != ctx.identity.keys_generation:
                out.append(_Stale())
                continue
            fresh[p.id] = (p, len(out))
            out.append(Outcome(SubmissionResult(created=True, body=self._write(s, rows, p))))
        rows.flush(s)
        first = next((i for i, o in enumerate(out) if isinstance(o, Outcome) and o.value.created), None)
        if first is not None:  # one wake-up for the whole batch
            out[first] = replace(out[first], after_commit=rows.outcome(ctx, None).after_commit)  # type: ignore[type-var]
        return out

    def _write(self, s: Tx, rows: Pending, p: _Prepared) -> dict[str, Any]:
        ctx = self.ctx
        caveats = p.caveats.to_json()
        # what the ledger records of a submission (a digest, never the payload), and the row
        # that adds the sealed payload and signature to it
        described = {
            "originator": p.originator,
            "topic": p.topic,
            "level": p.level,
            "caveats": caveats,
            "created": p.report["created"],
            "recipients": p.report.get("recipients"),
            "content_type": p.report["content_type"],
            "payload_size": p.payload_size,
            "digest": p.digest,
            "key": p.key,
        }
        leaf = ctx.ledger.append(s, ctx.entry("submission", p.at, {"report": p.id, **described}))
        rows.add(
            NewReport(
                id=p.id,
                originator=p.originator,
                topic=p.topic,
                level=p.level,
                caveats=caveats,
                created=p.report["created"],
                recipients=p.report.get("recipients"),
                content_type=p.report["content_type"],
                payload_size=p.payload_size,
                digest=p.digest,
                key=p.key,
                signature=p.signature,
                payload=p.payload_ct,
                sealed_key=p.sealed_key,
                received_at=p.at,
                leaf_index=leaf,
            )
        )
        standing = None
        if any(plan.route.decision is Decision.RELAY for plan in p.plans) and not p.caveats.orcon:
            standing = ExchangeRepo.standing_consents(s, [p.originator], active_at=p.at)
        recipients = [self._commit_plan(s, rows, p, plan, standing or []) for plan in p.plans]
        return {
            "report": p.id,
            "originator": p.originator,
            "digest": p.digest,
            "leaf_index": leaf,
            "received_at": utc_iso(p.at),
            "recipients": recipients,
        }

    def _commit_plan(self, s: Tx, rows: Pending, p: _Prepared, plan: _Plan, standing: Sequence[Any]) -> dict[str, Any]:
        ctx = self.ctx
        route = plan.route
        deliveries: list[dict[str, Any]] = []
        consent: dict[str, Any] | None = None
        if route.decision is Decision.DENY:
            outcome = ReleaseOutcome.DENIED
        elif plan.missing_key is not None:
            outcome = ReleaseOutcome.NO_KEY
        elif route.decision is Decision.DIRECT:
            outcome = ReleaseOutcome.DELIVERED
        else:
            outcome = ReleaseOutcome.PENDING_CONSENT
        reasons = list(plan.route_json["reasons"])
        if outcome is ReleaseOutcome.NO_KEY:
            reasons.append({"rule": "keys", "message": f"{plan.missing_key} has registered no encryption key"})
        route_json = {**plan.route_json, "reasons": reasons}
        match = None
        if outcome is ReleaseOutcome.PENDING_CONSENT and route.via is not None:
            match = matching_standing(standing, topic=p.topic, recipient=plan.recipient, hub=route.via)
            if match is not None:
                outcome = ReleaseOutcome.RELAYED
        decision_leaf = ctx.ledger.append(
            s,
            ctx.entry(
                "decision",
                p.at,
                {"report": p.id, "originator": p.originator, "recipient": plan.recipient, "outcome": outcome}
                | {"route": decision_entry_route(route_json)},
            ),
        )
        rows.add(
            NewDecision(
                report_id=p.id,
                recipient=plan.recipient,
                decision=route.decision.value,
                outcome=outcome,
                route=route_json,
                decided_at=p.at,
                leaf_index=decision_leaf,
            )
        )
        if outcome is ReleaseOutcome.DELIVERED and plan.direct is not None and route.marking is not None:
            deliveries.append(
                add_delivery(
                    ctx,
                    s,
                    rows,
                    wrap=plan.direct,
                    report_id=p.id,
                    originator=p.originator,
                    topic=p.topic,
                    marking=route.marking,
                    purpose=DeliveryPurpose.DIRECT,
                    via=None,
                    consent_id=None,
                    at=p.at,
                )
            )
        elif outcome in (ReleaseOutcome.PENDING_CONSENT, ReleaseOutcome.RELAYED):
            consent, relayed = open_consent(
                ctx,
                s,
                rows,
                report_id=p.id,
                originator=p.originator,
                topic=p.topic,
                level=p.level,
                route=route,
                at=p.at,
                standing=match,
                wraps=(plan.hub, plan.onward),
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
            "report": report.id,
            "originator": report.originator,
            "digest": report.digest,
            "leaf_index": report.leaf_index,
            "received_at": utc_iso(report.received_at),
            "recipients": recipients,
        }

    def result(self, principal: Principal, report_id: str) -> dict[str, Any]:
        """The current result of a submitted report, for its originator.

        Raises:
            NotPermitted: the principal's role may not read submission results.
            UnknownEntity: no such report, or another party's.
            StorageError: on a database failure.
        """
        authorize(principal, Action.READ_REPORT)
        with self.ctx.store.reading() as s:
            report = ExchangeRepo.report(s, report_id)
            authorize(
                principal,
                Action.READ_REPORT,
                owners=[report.originator] if report else [],
                thing="report",
                thing_id=report_id,
            )
            assert report is not None  # noqa: S101 - authorize raised for a missing report
            return self._stored_result(s, report)
