"""What the node's TAXII 2.1 endpoints call: collections, users, queries, the outbox that turns
POSTed envelopes into signed reports, and the inbox fed by verified deliveries
(docs/interop.md §3).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from gsomia.client.reports import ReportDraft
from gsomia.errors import ExchangeUnreachable, InvalidInput
from gsomia.interop.stix import (
    STIX_MEDIA_TYPE,
    TLP_1_0,
    TLP_2_0,
    DeliveredMarking,
    EnvelopePlan,
    MarkingPolicy,
    ReportGroup,
    TopicMap,
    delivered_marking_definition,
    delivery_objects,
    extension_definition,
    gsomia_identity,
    parse_timestamp,
    party_identity,
    plan_envelope,
    read_bundle,
    stix_timestamp,
    version_of,
)
from gsomia.node.batches import BatchWorker
from gsomia.node.taxii.store import (
    SHARED_TOPIC,
    NewObject,
    Page,
    Query,
    TaxiiStore,
    TaxiiWrite,
    VersionFilter,
    from_us,
    to_us,
)

log = logging.getLogger(__name__)

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
ROLES = ("officer", "approver", "admin")
"""The node's roles, lowest first (each has everything of the lower ones)."""

INBOX, OUTBOX = "inbox", "outbox"
_COLLECTION_NS = uuid.UUID("5b7a4f7c-1d42-4c8e-9d1b-6f2a0c3e8b11")


# --- who is asking ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated node user."""

    username: str
    role: str

    def at_least(self, role: str) -> bool:
        """True if this user's role is ``role`` or higher."""
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A node user as the directory stores it."""

    username: str
    role: str
    password_hash: str
    active: bool = True


class Throttled(Exception):
    """Too many failed logins for this username or from this address: the client may try again
    in ``retry_after`` seconds (429 with Retry-After)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins: try again in {retry_after} seconds")
        self.retry_after = retry_after


class UserDirectory(Protocol):
    """The node's users (argon2 password hashes, roles) and their login throttle."""

    def lookup(self, username: str) -> UserRecord | None:
        """The user called ``username``, or None."""

    def check(self, username: str, password: str, *, client: str) -> UserRecord | None:
        """The active user these credentials name, or None (one answer, after the same work,
        for a wrong password and an unknown or revoked user). Each check takes its place in
        the throttle's window, for the username and for the client's address, before the
        password is checked, so checks made at once are counted as they are made.

        Raises:
            Throttled: too many recent failures for this username or from this address.
        """

    def held(self, username: str, *, client: str) -> None:
        """Raise while logins for this username or from this address are throttled (a read:
        for a password remembered as right, which must not pass a throttle either).

        Raises:
            Throttled: too many recent failures for this username or from this address.
        """


class Authenticator:
    """HTTP Basic (TAXII 2.1 §8.2.2 requires it) against the node's users, and bearer tokens
    issued to them.

    An argon2 verification costs tens of milliseconds by design. A Basic password that verified
    is remembered, keyed by the user's *stored hash* and a keyed digest of the password, so the
    next request with the same credentials skips argon2 while a password change or a revocation
    (the user is looked up on every request) takes effect at once. A remembered password is
    still refused while the login throttle holds its username or address: otherwise guesses
    compared with it would not be counted.

    Requests with the same credentials made at once are checked once: the others wait for that
    check and take its result from memory. Every check takes a place in the throttle's window
    while it runs, so a client opening six connections at once would otherwise be throttled
    by its own right password.
    """

    def __init__(self, users: UserDirectory, store: TaxiiStore, *, cache_seconds: float = 300.0) -> None:
        self.users = users
        self.store = store
        self._key = secrets.token_bytes(32)
        self._verified: dict[tuple[str, str, bytes], float] = {}
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._checking: dict[tuple[str, bytes], threading.Lock] = {}

    def basic(self, username: str, password: str, *, client: str) -> Principal | None:
        """The user these credentials name, or None (the same answer for an unknown user).

        Raises:
            Throttled: too many recent failures for this username or from this address.
        """
        tag = hmac.digest(self._key, password.encode("utf-8"), "sha256")
        known = self._remembered(username, tag, client)
        if known is not None:
            return known
        with self._one_check(username, tag):
            known = self._remembered(username, tag, client)  # checked meanwhile by another request
            if known is not None:
                return known
            record = self.users.check(username, password, client=client)
            if record is None or not record.active or record.role not in ROLES:
                return None
            with self._lock:
                if len(self._verified) > 10_000:
                    self._verified.clear()
                self._verified[(username, record.password_hash, tag)] = time.monotonic()
        return Principal(username, record.role)

    def _remembered(self, username: str, tag: bytes, client: str) -> Principal | None:
        """The user, if this password was checked right within the cache's time and the throttle
        holds neither the username nor the address.

        Raises:
            Throttled: too many recent failures for this username or from this address.
        """
        record = self.users.lookup(username)
        if record is None or not record.active or record.role not in ROLES:
            return None
        with self._lock:
            seen = self._verified.get((username, record.password_hash, tag))
        if seen is None or time.monotonic() - seen >= self._cache_seconds:
            return None
        self.users.held(username, client=client)
        return Principal(username, record.role)

    @contextmanager
    def _one_check(self, username: str, tag: bytes) -> Iterator[None]:
        """Held while these credentials are checked: one check at a time for the same ones."""
        with self._lock:
            if len(self._checking) > 10_000:
                self._checking = {k: gate for k, gate in self._checking.items() if gate.locked()}
            gate = self._checking.setdefault((username, tag), threading.Lock())
        with gate:
            yield

    def bearer(self, token: str, *, now: datetime | None = None) -> Principal | None:
        """The user of a live bearer token (neither revoked nor expired), or None."""
        username = self.store.token_user(hashlib.sha256(token.encode("utf-8")).hexdigest(), now=now)
        if username is None:
            return None
        record = self.users.lookup(username)
        if record is None or not record.active or record.role not in ROLES:
            return None
        return Principal(username, record.role)


TOKEN_DAYS = 365
"""How long a bearer token lives unless its issuer says otherwise (``--expires-in``)."""
MAX_TOKEN_DAYS = 3650


def issue_token(
    store: TaxiiStore, *, username: str, name: str, now: datetime, days: int = TOKEN_DAYS
) -> tuple[str, datetime]:
    """A new bearer token for ``username`` (``gtx_`` and 256 random bits), refused ``days``
    days from ``now``, and that instant; only its SHA-256 is kept, so it is shown once.

    Raises:
        InvalidInput: ``days`` out of 1..3650.
    """
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise InvalidInput(f"a token expires in 1 to {MAX_TOKEN_DAYS} days; not {days}")
    token = "gtx_" + secrets.token_urlsafe(32)
    expires = now + timedelta(days=days)
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
    store.add_token(digest, username=username, name=name, now=now, expires=expires)
    return token, expires


# --- collections --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Collection:
    """A TAXII collection of the node: the inbox (read), a topic view of it (read), or the
    outbox (write)."""

    id: str
    alias: str
    title: str
    description: str
    base: str
    topic_prefix: str | None = None

    @property
    def readable(self) -> bool:
        """Users may read it."""
        return self.base == INBOX

    @property
    def writable(self) -> bool:
        """Users may write to it."""
        return self.base == OUTBOX

    def resource(self, who: Principal) -> dict[str, Any]:
        """The collection resource (TAXII 2.1 §5.2.1) as ``who`` sees it."""
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "alias": self.alias,
            "can_read": self.readable and who.at_least("officer"),
            "can_write": self.writable and who.at_least("officer"),
            "media_types": [STIX_MEDIA_TYPE],
        }


def build_collections(party: str, topic_prefixes: Sequence[str]) -> tuple[Collection, ...]:
    """The node's collections, with ids fixed by the party and alias (RFC 4122 name-based)."""

    def cid(alias: str) -> str:
        return str(uuid.uuid5(_COLLECTION_NS, f"{party}/{alias}"))

    out = [
        Collection(
            cid(INBOX),
            INBOX,
            f"{party} inbox",
            f"What {party} received: verified deliveries, marked in {party}'s own ladder.",
            INBOX,
        ),
        Collection(
            cid(OUTBOX),
            OUTBOX,
            f"{party} outbox",
            f"What {party} sends: each object needs {party}'s national marking; the node signs and submits it.",
            OUTBOX,
        ),
    ]
    for prefix in topic_prefixes:
        alias = f"inbox-{prefix}"
        out.append(
            Collection(
                cid(alias), alias, f"{party} inbox: {prefix}", f"What {party} received on {prefix}.", INBOX, prefix
            )
        )
    return tuple(out)


# --- queries ------------------------------------------------------------------------------------------


class BadQuery(InvalidInput):
    """A malformed URL query parameter (TAXII 2.1 §3.4: 400)."""


def _single(params: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in params if k == name]
    if len(values) > 1:
        raise BadQuery(f"{name} may be given once")
    return values[0] if values else None


def _csv(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = tuple(v for v in value.split(","))
    if any(not v for v in items):
        raise BadQuery("a match value list is values separated by commas, without empty values or spaces")
    return items


def parse_query(
    params: Sequence[tuple[str, str]],
    *,
    allowed: frozenset[str],
    max_page: int,
    versions_default_all: bool = False,
) -> tuple[Query, str]:
    """A :class:`Query` from TAXII URL query parameters, and the digest of its filters (which a
    ``next`` value must match).

    Raises:
        BadQuery: a parameter is malformed or repeated.
    """
    matches: dict[str, str | None] = {}
    for name in ("id", "type", "version", "spec_version"):
        matches[name] = _single(params, f"match[{name}]") if name in allowed else None
    added_after = _single(params, "added_after")
    after_us = to_us(parse_timestamp(added_after, "added_after")) if added_after is not None else None
    limit_text = _single(params, "limit")
    limit = max_page
    if limit_text is not None:
        digits = limit_text.lstrip("0")
        # Read as a number only once it is known to be short: Python refuses to convert a
        # text of more than 4,300 digits, and any limit above the page size is that size.
        if not (limit_text.isascii() and limit_text.isdigit()) or not digits:
            raise BadQuery("limit is a positive integer")
        limit = max_page if len(digits) > 18 else min(int(digits), max_page)
    versions = VersionFilter(last=False, all=True) if versions_default_all else VersionFilter()
    if matches["version"] is not None:
        words = _csv(matches["version"])
        if len(set(words)) != len(words):
            raise BadQuery("match[version] names a version twice")
        if "all" in words and len(words) > 1:
            raise BadQuery("match[version]=all goes alone")
        exact = tuple(to_us(parse_timestamp(w, "match[version]")) for w in words if w not in ("first", "last", "all"))
        versions = VersionFilter(first="first" in words, last="last" in words, all="all" in words, exact=exact)
    spec_versions = _csv(matches["spec_version"])
    q = Query(
        after_us=after_us,
        limit=limit,
        ids=_csv(matches["id"]),
        types=_csv(matches["type"]),
        spec_versions=spec_versions,
        versions=versions,
    )
    digest = hashlib.sha256(
        json.dumps([added_after, matches["id"], matches["type"], matches["version"], matches["spec_version"]]).encode()
    ).hexdigest()[:16]
    nxt = _single(params, "next")
    if nxt is not None:
        last, _, token_digest = nxt.partition("-")
        if (
            not (last.isascii() and last.isdigit())
            or len(last) > 19  # before int(): no long text is converted
            or int(last) > _LAST_US
            or token_digest != digest
        ):
            raise BadQuery("next is not a value this server gave for these same filters")
        cursor = int(last)
        q = Query(
            after_us=cursor if q.after_us is None else max(q.after_us, cursor),
            limit=q.limit,
            ids=q.ids,
            types=q.types,
            spec_versions=q.spec_versions,
            versions=q.versions,
        )
    return q, digest


_LAST_US = 2**63 - 1
"""The largest ``date_added`` a store holds (a 64-bit integer of microseconds): a ``next`` beyond
it is not one this server gave."""


def next_token(page: Page, digest: str) -> str | None:
    """The ``next`` value after ``page`` (the last ``date_added`` and the filters' digest)."""
    if not page.more or not page.rows:
        return None
    return f"{page.rows[-1].date_added}-{digest}"


# --- the outbox ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the exchange answered for one report."""

    ok: bool
    detail: str
    retry: bool = False


class ReportSender(Protocol):
    """Signs reports with the party's key and submits them to the exchange in one batch
    (``POST /api/v1/report-batches``)."""

    def send(self, drafts: Sequence[ReportDraft]) -> list[SendResult]:
        """One result per draft, in order.

        Raises:
            ExchangeUnreachable: nothing is known to have reached the exchange.
        """


@dataclass(slots=True)
class _Job:
    status_id: str
    owner: str
    created: datetime
    body: dict[str, Any]
    groups: tuple[ReportGroup, ...]
    recorded: bool
    """The status resource is in the store (else the worker stores it, with the results)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Held by the worker while it records the results, and by a POST that stops waiting."""
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxConfig:
    """How the outbox sends: recipients of every report (None: every party, the exchange
    decides each) and the longest a POST waits for its reports before answering ``pending``."""

    recipients: tuple[str, ...] | None = None
    wait_seconds: float = 30.0
    max_batch: int = 1000
    senders: int = 2
    """Batches in flight at once: while one waits for the exchange, the next is signed and
    sent, and the results of another are recorded."""


def _readable_version(obj: Mapping[str, Any]) -> bool:
    """The object's TAXII version is absent or a timestamp (an object whose version is not is
    refused with the reason by :func:`plan_envelope`, never looked up)."""
    version = version_of(obj)
    if version is None:
        return True
    try:
        parse_timestamp(version)
    except InvalidInput:
        return False
    return True


def _details(
    pairs: Sequence[tuple[str, str | None]], fallback: str, message: str | None = None
) -> list[dict[str, Any]]:
    out = []
    for oid, version in pairs:
        d: dict[str, Any] = {"id": oid, "version": version or fallback}
        if message:
            d["message"] = message
        out.append(d)
    return out


class Outbox:
    """Turns POSTed envelopes into reports: one per distinct (national marking, topic), signed
    in the node and submitted in batches by worker threads, each taking every envelope waiting
    at that moment (a bulk feed pays one exchange round trip per batch, not per envelope).
    With several threads, a batch is signed and sent while another waits for the exchange."""

    def __init__(
        self,
        *,
        store: TaxiiStore,
        sender: ReportSender,
        policy: MarkingPolicy,
        topics: TopicMap,
        config: OutboxConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.sender = sender
        self.policy = policy
        self.topics = topics
        self.config = config
        self.clock = clock
        self._defining = threading.Lock()
        self._worker: BatchWorker[_Job] = BatchWorker(
            "taxii-outbox",
            self._send,
            limit=config.max_batch,
            weight=lambda job: len(job.groups),
            workers=config.senders,
        )

    def start(self) -> None:
        """Start the worker thread, and send again the reports of every status a process stopped
        before it stored their results (their ``created`` is that of the POST, as before: the
        exchange takes the same report once)."""
        self._worker.start()
        for status_id, owner, created, body, objs in self.store.unfinished():
            try:
                self._resume(status_id, owner, created, body, objs)
            except Exception:  # one status the store cannot answer must not stop the others
                log.exception("TAXII status %s could not be resumed; it stays pending", status_id)

    def _resume(self, status_id: str, owner: str, created: datetime, body: dict[str, Any], objs: list[Any]) -> None:
        already, plan = self._plan(objs)
        planned = {m for g in plan.groups for m in g.members()}
        left = [p for p in body.get("pendings", []) if (p.get("id"), p.get("version")) not in planned]
        if left:  # planned otherwise than when posted (sent meanwhile, or refused now): said so
            body["pendings"] = [p for p in body.get("pendings", []) if p not in left]
            sent = {oid for oid, _ in already}
            body["successes"] = body.get("successes", []) + [
                {**p, "message": "already sent"} for p in left if p.get("id") in sent
            ]
            body["failures"] = body.get("failures", []) + [
                {**p, "message": "not sent: the node could not plan it again after a restart; POST it again"}
                for p in left
                if p.get("id") not in sent
            ]
            for name in ("pending", "success", "failure"):
                body[f"{name}_count"] = len(body[f"{name}es" if name == "success" else f"{name}s"])
        log.info("TAXII status %s: sending the reports of %d object(s) again after a restart", status_id, len(objs))
        job = _Job(status_id, owner, created, body, plan.groups, recorded=True)
        if not plan.groups:
            body["status"] = "complete"
            with self.store.writing() as w:
                self._store_status(w, job)
            return
        self._worker.put(job)

    def stop(self) -> None:
        """Stop the worker after the envelopes already queued."""
        self._worker.stop()

    def _plan(self, envelope_objects: Sequence[object]) -> tuple[set[tuple[str, str | None]], EnvelopePlan]:
        """The ``(id, version)`` pairs of an envelope the outbox already holds, and the plan for
        the rest."""
        pairs_all = [
            (str(o.get("id")), version_of(o))
            for o in envelope_objects
            if isinstance(o, Mapping) and o.get("id") and _readable_version(o)
        ]
        already = self.store.present(OUTBOX, pairs_all)
        fresh = [
            o for o in envelope_objects if not (isinstance(o, Mapping) and (str(o.get("id")), version_of(o)) in already)
        ]
        refs: set[str] = set()
        for o in fresh:
            if isinstance(o, Mapping) and isinstance(o.get("object_marking_refs"), list):
                refs.update(r for r in o["object_marking_refs"] if isinstance(r, str))
        in_envelope = {str(o.get("id")) for o in fresh if isinstance(o, Mapping)}
        # The definitions the objects reference, and those the envelope brings that the outbox
        # already holds: a marking definition is never versioned, so one that differs from the
        # stored one is refused (plan_envelope), never taken as the marking's new meaning.
        redefined = {
            str(o.get("id")) for o in fresh if isinstance(o, Mapping) and o.get("type") == "marking-definition"
        }
        lookup = sorted({r for r in refs if r not in in_envelope and r not in TLP_2_0 and r not in TLP_1_0} | redefined)
        known = self.store.bodies(OUTBOX, lookup)
        plan = plan_envelope(fresh, policy=self.policy, topics=self.topics, known_definitions=known)
        return already, plan

    def accept(self, envelope_objects: Sequence[object], *, owner: str, wait: bool) -> dict[str, Any]:
        """Plan an envelope, record its status resource, queue its reports and, if ``wait``,
        wait (up to the configured time) until they are decided. The status resource as it
        stands then."""
        # One envelope at a time from its plan until its marking definitions are stored: two
        # envelopes defining one id at once would both be taken (the check that a definition is
        # never versioned reads the stored ones), and a later object would be sent under
        # whichever was stored last (its REL TO lost).
        with self._defining:
            job, answer = self._planned(envelope_objects, owner=owner, wait=wait)
        return answer if job is None else self._waited(job)

    def _planned(
        self, envelope_objects: Sequence[object], *, owner: str, wait: bool
    ) -> tuple[_Job | None, dict[str, Any]]:
        """Plan an envelope and store its marking definitions: the job to wait for (``wait``
        and reports to send), or the answer now (the status resource stored, reports queued)."""
        now = self.clock()
        request_ts = stix_timestamp(now)
        status_id = str(uuid.uuid4())
        already, plan = self._plan(envelope_objects)
        successes = _details(sorted(already), request_ts, "already sent")
        successes += _details(
            [(str(d["id"]), version_of(d)) for d in plan.definitions],
            request_ts,
            "marking definition recorded; it travels with the objects that reference it",
        )
        failures = [
            {"id": r.object_id or "(no id)", "version": r.version or request_ts, "message": r.reason}
            for r in plan.refused
        ]
        pendings = [{"id": oid, "version": version or request_ts} for g in plan.groups for oid, version in g.members()]
        body: dict[str, Any] = {
            "id": status_id,
            "status": "pending" if pendings else "complete",
            "request_timestamp": request_ts,
            "total_count": len(envelope_objects),
            "success_count": len(successes),
            "successes": successes,
            "failure_count": len(failures),
            "failures": failures,
            "pending_count": len(pendings),
            "pendings": pendings,
        }
        definitions = [NewObject(body=d) for d in plan.definitions]
        if not plan.groups or not wait:
            # Answered now: the envelope's marking definitions and its status resource are
            # stored (one transaction) before the answer names the status.
            with self.store.writing() as w:
                if definitions:
                    w.add(OUTBOX, definitions, now=now)
                w.put_status(status_id, owner, body, now=now)
                if plan.groups:  # kept until the results are stored: a restart sends them
                    w.put_job(status_id, _objects(plan.groups))
            if not plan.groups:
                return None, body
            queued = _Job(status_id, owner, now, body, plan.groups, recorded=True)
            self._worker.put(queued)
            with queued.lock:  # as it stands: pending, or every result recorded
                return None, dict(queued.body)
        if definitions:
            self.store.add(OUTBOX, definitions, now=now)  # later envelopes may reference them
        return _Job(status_id, owner, now, body, plan.groups, recorded=False), body

    def _waited(self, job: _Job) -> dict[str, Any]:
        """Queue ``job`` and wait (up to the configured time) for its reports to be decided.
        The answer waits for the reports: the worker stores the status resource once, with
        their results, in the transaction that stores the objects (no pending version first)."""
        self._worker.put(job)
        if job.done.wait(self.config.wait_seconds):
            return job.body
        with job.lock:
            if not job.done.is_set():
                # Still pending after the wait: the status is stored before the answer names it
                # (TAXII 2.1 §4.3.1); the worker updates it when the reports are decided.
                with self.store.writing() as w:
                    w.put_status(job.status_id, job.owner, job.body, now=job.created)
                    w.put_job(job.status_id, _objects(job.groups))
                job.recorded = True
                return dict(job.body)
        return job.body

    # --- the worker ---------------------------------------------------------------------

    def _send(self, jobs: list[_Job]) -> None:
        drafts = []
        for job in jobs:
            for g in job.groups:
                drafts.append(
                    ReportDraft(
                        id=g.report_id,
                        topic=g.topic,
                        level=g.marking.level,
                        payload=g.payload,
                        # the POST's time, whenever sent: the same report sent again, after a
                        # restart too, is the same signed report (the exchange takes it once)
                        created=job.created,
                        recipients=self.config.recipients,
                        rel_to=g.marking.rel_to,
                        noforn=g.marking.noforn,
                        orcon=g.marking.orcon,
                        content_type=STIX_MEDIA_TYPE,
                    )
                )
        delay = 1.0
        while True:
            try:
                results: list[SendResult] = []
                for start in range(0, len(drafts), self.config.max_batch):
                    results += self.sender.send(drafts[start : start + self.config.max_batch])
                break
            except ExchangeUnreachable as e:
                # Statuses stay pending (TAXII 2.1 §4.3.1: "MAY be updated") until the exchange
                # answers; reports are idempotent by id, so sending them again is safe.
                log.warning("exchange unreachable, retrying TAXII reports in %.0f s: %s", delay, e)
                time.sleep(delay)
                delay = min(delay * 2, 60.0)
            except Exception as e:  # a bug or an unexpected answer must fail the statuses, not the worker
                log.exception("sending TAXII reports failed")
                results = [SendResult(False, f"not sent: {e.__class__.__name__}")] * len(drafts)
                break
        with ExitStack() as held:
            # A POST that stops waiting takes its job's lock to store the pending status: it
            # finds either the job untouched or its results recorded, never half of them.
            for job in jobs:
                held.enter_context(job.lock)
            self._record(jobs, results)
            for job in jobs:
                job.done.set()

    def _record(self, jobs: list[_Job], results: list[SendResult]) -> None:
        it = iter(results)
        now = self.clock()
        sent: list[list[NewObject]] = []
        for job in jobs:
            sent_objects: list[NewObject] = []
            sent.append(sent_objects)
            for g in job.groups:
                res = next(it)
                members = g.members()
                ids = {m[0] for m in members}
                job.body["pendings"] = [p for p in job.body["pendings"] if p["id"] not in ids]
                target = "successes" if res.ok else "failures"
                # New lists, never changed in place: an answer already given may still be
                # encoding the ones it copied.
                job.body[target] = job.body[target] + _details(
                    members, job.body["request_timestamp"], f"report {g.report_id}: {res.detail}"
                )
                if res.ok:
                    texts = g.texts if len(g.texts) == len(g.objects) else (None,) * len(g.objects)
                    sent_objects += [
                        NewObject(body=o, topic=g.topic, text=t) for o, t in zip(g.objects, texts, strict=True)
                    ]
            job.body["pending_count"] = len(job.body["pendings"])
            job.body["success_count"] = len(job.body["successes"])
            job.body["failure_count"] = len(job.body["failures"])
            if job.body["pending_count"] == 0:
                job.body["status"] = "complete"
        recorded = [job.recorded for job in jobs]
        try:
            # The sent objects of every envelope of the batch, in order, and their statuses: one
            # transaction (a status never says complete without its objects stored).
            with self.store.writing() as w:
                everything = [o for objs in sent for o in objs]
                if everything:
                    w.add(OUTBOX, everything, now=now)
                for job in jobs:
                    self._store_status(w, job)
        except Exception:  # the statuses must still be answered to the waiting POSTs
            log.exception("recording the sent TAXII objects failed; recording each envelope alone")
            for job, objs, was in zip(jobs, sent, recorded, strict=True):
                job.recorded = was  # the failed transaction stored no status
                self._record_alone(job, objs, now)

    def _record_alone(self, job: _Job, objs: list[NewObject], now: datetime) -> None:
        """One envelope's sent objects and status, when the batch's transaction failed: one
        envelope's failure does not keep the others' objects out of the outbox."""
        was = job.recorded
        try:
            with self.store.writing() as w:
                if objs:
                    w.add(OUTBOX, objs, now=now)
                self._store_status(w, job)
        except Exception:
            log.exception("recording the sent TAXII objects of status %s failed", job.status_id)
            job.recorded = was
        else:
            return
        try:  # the reports' results, at least: they are what the exchange decided
            with self.store.writing() as w:
                self._store_status(w, job)
        except Exception:
            log.exception("recording TAXII status %s failed", job.status_id)

    @staticmethod
    def _store_status(w: TaxiiWrite, job: _Job) -> None:
        if job.recorded:
            w.update_status(job.status_id, job.body)
            if job.body["pending_count"] == 0:
                w.drop_job(job.status_id)
        else:
            w.put_status(job.status_id, job.owner, job.body, now=job.created)
            job.recorded = True


def _objects(groups: Sequence[ReportGroup]) -> list[Mapping[str, Any]]:
    """The data objects of an envelope's report groups, in order (planned again on a restart)."""
    return [o for g in groups for o in g.objects]


# --- the service --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TaxiiSettings:
    """The TAXII server's settings."""

    party: str
    title: str = ""
    contact: str = ""
    topic_collections: tuple[str, ...] = ()
    max_page: int = 1000
    max_content_length: int = 10 * 1024 * 1024


class TaxiiService:
    """The node's TAXII server, minus HTTP."""

    def __init__(self, *, settings: TaxiiSettings, store: TaxiiStore, auth: Authenticator, outbox: Outbox) -> None:
        self.settings = settings
        self.store = store
        self.auth = auth
        self.outbox = outbox
        self.collections = build_collections(settings.party, settings.topic_collections)
        self._by_key = {c.id: c for c in self.collections} | {c.alias: c for c in self.collections}

    def collection(self, key: str) -> Collection | None:
        """The collection with id or alias ``key``."""
        return self._by_key.get(key)

    def receive(
        self,
        *,
        delivered: DeliveredMarking,
        topic: str,
        content_type: str,
        payload: bytes,
        created: datetime,
        originator_name: str | None = None,
        now: datetime | None = None,
    ) -> int:
        """Put a verified delivery's STIX objects into the inbox; how many objects were new. A
        payload that is not STIX 2.1 content is not a TAXII object and adds nothing.

        Raises:
            InvalidInput: the payload claims to be STIX but is not a bundle.
        """
        new = inbox_objects(
            delivered=delivered,
            topic=topic,
            content_type=content_type,
            payload=payload,
            created=created,
            originator_name=originator_name,
        )
        if not new:
            return 0
        added = self.store.add(INBOX, new, now=now or datetime.now(UTC))
        return sum(1 for _, _, a in added if a)


def inbox_objects(
    *,
    delivered: DeliveredMarking,
    topic: str,
    content_type: str,
    payload: bytes,
    created: datetime,
    originator_name: str | None = None,
) -> list[NewObject]:
    """What a verified delivery puts into the inbox (:meth:`TaxiiService.receive`), for a caller
    that stores several deliveries in one transaction. Nothing for a payload that is not STIX
    2.1 content.

    Raises:
        InvalidInput: the payload claims to be STIX but is not a bundle.
    """
    if content_type.replace(" ", "").lower() not in (STIX_MEDIA_TYPE, "application/stix+json"):
        return []
    objs = delivery_objects(read_bundle(payload), delivered=delivered, created=created, originator_name=originator_name)
    own_marking = delivered_marking_definition(delivered, created=created)["id"]
    shared = {extension_definition()["id"], gsomia_identity()["id"], party_identity(delivered.originator.party)["id"]}
    made = {*shared, own_marking}

    def topic_of(o: Mapping[str, Any]) -> str:
        # What objects of any topic reference is in every topic view; the delivery's own
        # marking and its data objects are in its topic's.
        common = o["id"] in shared or (o["type"] == "marking-definition" and o["id"] != own_marking)
        return SHARED_TOPIC if common else topic

    # What the node makes is its own (no originator versions it); the rest is the originator's,
    # which only the originator's later deliveries version.
    return [
        NewObject(
            body=o,
            topic=topic_of(o),
            delivery=delivered.delivery,
            origin="" if o["id"] in made else delivered.originator.party,
            versioned=o["id"] not in made,
        )
        for o in objs
    ]


__all__ = [
    "INBOX",
    "OUTBOX",
    "TAXII_MEDIA_TYPE",
    "TOKEN_DAYS",
    "Authenticator",
    "BadQuery",
    "Collection",
    "Outbox",
    "OutboxConfig",
    "Principal",
    "ReportSender",
    "SendResult",
    "TaxiiService",
    "TaxiiSettings",
    "Throttled",
    "UserDirectory",
    "UserRecord",
    "from_us",
    "inbox_objects",
    "issue_token",
    "next_token",
    "parse_query",
]
