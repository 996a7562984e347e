"""The node's interoperability, wired: TAXII 2.1 mounted at ``/taxii2/`` over the node's users
and store, the CoT bridge's listeners and outputs, and the feed that puts every verified
delivery (never a quarantined one) into the TAXII inbox and, for tracks, out as CoT.

Configured by ``interop.json`` in the node's folder (docs/interop.md §6); without it TAXII is
served with its defaults and CoT is off.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, select
from starlette.types import ASGIApp

from gsomia.client.http import ExchangeClient
from gsomia.client.reports import ReportDraft, sign_report
from gsomia.errors import (
    Busy,
    ExchangeUnreachable,
    GsomiaError,
    InvalidInput,
    NotAuthenticated,
    PayloadTooLarge,
    StorageError,
)
from gsomia.interop.cot import (
    CotEndpoint,
    CotRule,
    endpoints_from_config,
    instant_or_none,
    is_track_content,
    is_track_topic,
    rules_from_config,
)
from gsomia.interop.stix import DeliveredMarking, MarkingPolicy, NationalMarking, TopicMap
from gsomia.node.cot.bridge import (
    EVENT_SECONDS,
    IDLE_SECONDS,
    MAX_BACKLOG,
    MAX_BACKLOG_BYTES,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_ADDRESS,
    CotIngest,
    CotListeners,
    CotOutput,
    Listen,
    describe,
)
from gsomia.node.cot.output import OUTPUT_QUEUE
from gsomia.node.service import NodeService
from gsomia.node.store import deliveries, users
from gsomia.node.taxii.app import create_taxii_app
from gsomia.node.taxii.service import (
    INBOX,
    Authenticator,
    Outbox,
    OutboxConfig,
    SendResult,
    TaxiiService,
    TaxiiSettings,
    Throttled,
    UserRecord,
    inbox_objects,
)
from gsomia.node.taxii.store import NewObject, TaxiiStore
from gsomia.node.users import LoginThrottled

log = logging.getLogger(__name__)

INTEROP_FILE = "interop.json"
MAX_BATCH_BYTES = 8 << 20
BUSY_ATTEMPTS = 3
"""How many times a report the exchange answers 503 for (busy, its database away) is sent in all."""
MAX_BUSY_WAIT = 30
"""The longest wait (seconds) before sending such reports again, whatever Retry-After asks."""
"""The most a batch of signed reports may weigh, as JSON, before it is sent as several: half the
exchange's default limit (16 MiB, ``GSOMIA_MAX_BATCH_BYTES``). A batch the exchange still finds
too large (413) is split in two and each half sent again."""


# --- configuration -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class InteropConfig:
    """``interop.json``: the TAXII server's and the CoT bridge's settings."""

    taxii: bool = True
    topic_collections: tuple[str, ...] = ()
    topics: TopicMap = field(default_factory=TopicMap)
    acs_levels: Mapping[str, str] = field(default_factory=dict)
    recipients: tuple[str, ...] | None = None
    wait_seconds: float = 30.0
    listen: tuple[Listen, ...] = ()
    rules: tuple[CotRule, ...] = ()
    outputs: tuple[CotEndpoint, ...] = ()
    track_topics: tuple[str, ...] = ("dprk.missile",)
    max_backlog: int = MAX_BACKLOG
    max_backlog_bytes: int = MAX_BACKLOG_BYTES
    output_queue: int = OUTPUT_QUEUE
    tcp_idle_seconds: float = IDLE_SECONDS
    tcp_event_seconds: float = EVENT_SECONDS
    tcp_max_connections: int = MAX_CONNECTIONS
    tcp_max_per_address: int = MAX_CONNECTIONS_PER_ADDRESS

    @classmethod
    def read(cls, directory: Path) -> InteropConfig:
        """Read ``interop.json`` from the node's folder (defaults if there is none).

        Raises:
            InvalidInput: a malformed file.
        """
        path = directory / INTEROP_FILE
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, RecursionError) as e:  # RecursionError: nested deeper than the stack
            raise InvalidInput(f"cannot read {path}: {e}") from e
        try:
            return cls.from_doc(doc)
        except InvalidInput as e:
            raise InvalidInput(f"{path}: {e}") from e

    @classmethod
    def from_doc(cls, doc: object) -> InteropConfig:
        """The configuration from its JSON document.

        Raises:
            InvalidInput: unknown members or bad values.
        """
        if not isinstance(doc, dict):
            raise InvalidInput("expected a JSON object")
        _only(doc, {"taxii", "cot"}, "")
        taxii = doc.get("taxii", {})
        cot = doc.get("cot", {})
        if not isinstance(taxii, dict) or not isinstance(cot, dict):
            raise InvalidInput("taxii and cot are objects")
        _only(taxii, {"enabled", "topic_collections", "topics", "acs_levels", "recipients", "wait_seconds"}, "taxii.")
        _only(cot, {"listen", "rules", "outputs", "track_topics", *_COT_LIMITS}, "cot.")
        recipients = taxii.get("recipients")
        listen = [_listen(item) for item in cot.get("listen", [])]
        return cls(
            taxii=bool(taxii.get("enabled", True)),
            topic_collections=tuple(taxii.get("topic_collections", ())),
            topics=TopicMap.from_config(taxii.get("topics", {})),
            acs_levels=dict(taxii.get("acs_levels", {})),
            recipients=tuple(recipients) if recipients is not None else None,
            wait_seconds=float(taxii.get("wait_seconds", 30.0)),
            listen=tuple(listen),
            rules=rules_from_config(cot.get("rules", [])),
            outputs=endpoints_from_config(cot.get("outputs", [])),
            track_topics=tuple(cot.get("track_topics", ("dprk.missile",))),
            max_backlog=int(_positive(cot, "max_backlog", MAX_BACKLOG)),
            max_backlog_bytes=int(_positive(cot, "max_backlog_bytes", MAX_BACKLOG_BYTES)),
            output_queue=int(_positive(cot, "output_queue", OUTPUT_QUEUE)),
            tcp_idle_seconds=_positive(cot, "tcp_idle_seconds", IDLE_SECONDS),
            tcp_event_seconds=_positive(cot, "tcp_event_seconds", EVENT_SECONDS),
            tcp_max_connections=int(_positive(cot, "tcp_max_connections", MAX_CONNECTIONS)),
            tcp_max_per_address=int(_positive(cot, "tcp_max_per_address", MAX_CONNECTIONS_PER_ADDRESS)),
        )


_COT_LIMITS = (
    "max_backlog",
    "max_backlog_bytes",
    "output_queue",
    "tcp_idle_seconds",
    "tcp_event_seconds",
    "tcp_max_connections",
    "tcp_max_per_address",
)


def _listen(item: object) -> Listen:
    """One of ``cot.listen``: ``proto``, ``host``, ``port`` and, for a multicast group,
    ``interface``.

    Raises:
        InvalidInput: unknown members or bad values.
    """
    _only(item, {"proto", "host", "port", "interface"}, "cot.listen[].")
    assert isinstance(item, dict)  # noqa: S101 - _only refuses anything else
    interface = item.get("interface")
    if interface is not None and not isinstance(interface, str):
        raise InvalidInput(f"cot.listen[].interface: give an interface's IPv4 address, not {interface!r}")
    return Listen(str(item.get("proto")), str(item.get("host", "127.0.0.1")), int(item.get("port", 0)), interface)


def _positive(doc: dict[str, Any], key: str, default: float) -> float:
    """``doc[key]``, a number above zero and below 10⁹ (a whole one where the default is), or
    ``default``.

    Raises:
        InvalidInput: anything else.
    """
    value = doc.get(key, default)
    whole = isinstance(default, int)
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) or not 0 < value < 1e9:
        kind = "a whole number" if whole else "a number"
        raise InvalidInput(f"cot.{key}: give {kind} above zero and below 10⁹, not {value!r}")
    return float(value) if not whole else value


def _only(doc: object, allowed: set[str], where: str) -> None:
    if not isinstance(doc, dict):
        raise InvalidInput(f"{where or 'the document'} is not an object")
    unknown = set(doc) - allowed
    if unknown:
        raise InvalidInput(f"unknown member(s) {', '.join(where + u for u in sorted(unknown))}")


# --- adapters ------------------------------------------------------------------------------------------


class NodeUsers:
    """The node's accounts as TAXII's user directory: argon2 hashes, roles, revocation, and the
    console's login throttle (5 failures per username, and per address, within 15 minutes),
    through the console's own admission: each check takes its place in the window before its
    password is checked."""

    def __init__(self, service: NodeService) -> None:
        self.store = service.store
        self.users = service.users

    def lookup(self, username: str) -> UserRecord | None:
        """The account, or None."""
        with self.store.read() as c:
            row = c.execute(select(users).where(users.c.username == username)).mappings().first()
        if row is None:
            return None
        return UserRecord(
            username=str(row["username"]),
            role=str(row["role"]),
            password_hash=str(row["password_hash"]),
            active=row["revoked_at"] is None,
        )

    def check(self, username: str, password: str, *, client: str) -> UserRecord | None:
        """The active account these credentials name, or None: an unknown or revoked user is
        checked against the console's dummy hash, and every refusal counts toward the throttle.

        Raises:
            Throttled: too many recent failures for this username or from this address.
        """
        try:
            self.users.check(username, password, client=client)
        except LoginThrottled as e:
            raise Throttled(e.retry_after) from None
        except NotAuthenticated:
            return None
        return self.lookup(username)

    def held(self, username: str, *, client: str) -> None:
        """Raise while the throttle holds this username or this address.

        Raises:
            Throttled: too many recent failures for this username or from this address.
        """
        wait = self.users.held(username, client=client)
        if wait:
            raise Throttled(wait)


def _summary(result: Mapping[str, Any], stored_before: bool) -> str:
    by_outcome: dict[str, list[str]] = {}
    for r in result.get("recipients", []):
        by_outcome.setdefault(str(r.get("outcome")), []).append(str(r.get("recipient")))
    text = "; ".join(f"{outcome}: {', '.join(sorted(ps))}" for outcome, ps in sorted(by_outcome.items()))
    return ("already stored; " if stored_before else "") + (text or "no recipient")


class ExchangeSender:
    """Signs with the party's current key in the node and submits by ``POST
    /api/v1/report-batches`` (docs/protocol.md §6.3), one request per batch. Safe to call from
    several threads: each has a client (a connection) of its own, so a failure that drops one
    never closes a connection another thread is using."""

    def __init__(
        self,
        service: NodeService,
        *,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        busy_attempts: int = BUSY_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.service = service
        self.max_batch_bytes = max_batch_bytes
        self.busy_attempts = busy_attempts
        self._sleep = sleep
        self._local = threading.local()
        self._clients: set[ExchangeClient] = set()
        self._lock = threading.Lock()

    def _connected(self) -> ExchangeClient:
        client: ExchangeClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self.service.connect()
            self._local.client = client
            with self._lock:
                self._clients.add(client)
        return client

    def _drop(self, client: ExchangeClient) -> None:
        self._local.client = None
        with self._lock:
            self._clients.discard(client)
        client.close()

    def send(self, drafts: Sequence[ReportDraft]) -> list[SendResult]:
        """One result per draft. Sent in requests of at most :attr:`max_batch_bytes` (a report
        larger than that goes alone); a request the exchange finds too large is split in two.

        Raises:
            ExchangeUnreachable: the exchange could not be reached, or stayed busy with some of
                the reports (503) through every attempt: the caller sends them all again later
                (reports are idempotent by id: those the exchange stored are answered as stored).
        """
        keys = self.service.keyring.current()
        everyone: tuple[str, ...] | None = None
        if any(d.recipients is None for d in drafts):
            # The exchange wants recipients named (need-to-know); "every party" is the
            # scenario's parties but this one, and the exchange decides each.
            meta = self.service.meta()
            everyone = tuple(p for p in meta["parties"] if p != self.service.config.party)
        subs = [sign_report(keys, d if d.recipients is not None else replace(d, recipients=everyone)) for d in drafts]
        client = self._connected()
        out: list[SendResult] = []
        try:
            for part in batches_by_size(subs, self.max_batch_bytes):
                out += self._submit(client, part)
        except ExchangeUnreachable:
            self._drop(client)
            raise
        busy = sum(1 for result in out if result.retry)
        if busy:
            # never counted refused: a report the exchange could not decide yet is sent again
            raise ExchangeUnreachable(
                f"the exchange stayed busy with {busy} of {len(out)} report(s) after {self.busy_attempts} attempts"
            )
        return out

    def _submit(self, client: ExchangeClient, subs: list[dict[str, Any]], *, attempt: int = 1) -> list[SendResult]:
        """One result per submission; the reports the exchange answered 503 for (``busy``: what
        it decided them on kept changing; ``storage-unavailable``) are sent again, alone, after
        the Retry-After their problem documents give, up to :attr:`busy_attempts` times in all
        (the exchange is idempotent by report id).

        Raises:
            ExchangeUnreachable: the exchange could not be reached.
        """
        out, again, wait = self._submit_once(client, subs)
        if again and attempt < self.busy_attempts:
            log.info("the exchange was busy with %d report(s); sending them again in %d s", len(again), wait)
            self._sleep(wait)
            for i, result in zip(
                again, self._submit(client, [subs[i] for i in again], attempt=attempt + 1), strict=True
            ):
                out[i] = result
        return out

    def _submit_once(
        self, client: ExchangeClient, subs: list[dict[str, Any]]
    ) -> tuple[list[SendResult], list[int], int]:
        """One request: one result per submission, the positions of those answered 503, and
        the longest Retry-After (seconds) those asked for."""
        try:
            answer = client.submit_batch(subs)
        except PayloadTooLarge as e:
            if len(subs) == 1:
                return [SendResult(False, f"refused by the exchange: {e}")], [], 0
            log.info("the exchange found a batch of %d reports too large; sending it in two", len(subs))
            half = len(subs) // 2
            return self._submit(client, subs[:half]) + self._submit(client, subs[half:]), [], 0
        except ExchangeUnreachable:
            raise
        except (Busy, StorageError) as e:  # the whole request answered 503: every report again
            told = e.retry_after if isinstance(e, Busy) else 1
            retry = SendResult(False, f"the exchange asks to try again: {e}", retry=True)
            return [retry] * len(subs), list(range(len(subs))), min(max(told, 1), MAX_BUSY_WAIT)
        except GsomiaError as e:
            return [SendResult(False, f"refused by the exchange: {e}")] * len(subs), [], 0
        out: list[SendResult] = []
        again: list[int] = []
        wait = 1
        for r in answer.get("results", []):
            status = int(r.get("status", 0))
            if status in (200, 201) and isinstance(r.get("result"), dict):
                out.append(SendResult(True, _summary(r["result"], status == 200)))
                continue
            p = r.get("problem") or {}
            if status == 503:
                again.append(len(out))
                asked = p.get("retry_after")
                wait = max(wait, min(asked, MAX_BUSY_WAIT) if type(asked) is int else 1)
            out.append(
                SendResult(
                    False,
                    f"refused by the exchange ({status}): {p.get('detail') or p.get('title')}",
                    retry=status == 503,
                )
            )
        if len(out) != len(subs):
            return [SendResult(False, "the exchange's answer does not have one result per report")] * len(subs), [], 0
        return out, again, wait

    def close(self) -> None:
        """Close the connections (once the threads that send are stopped)."""
        with self._lock:
            clients, self._clients = self._clients, set()
        for client in clients:
            client.close()


def batches_by_size(subs: Sequence[dict[str, Any]], most: int) -> list[list[dict[str, Any]]]:
    """``subs`` in order, cut into runs whose request body (``{"reports": [...]}`` as JSON)
    stays within ``most`` bytes; a submission larger than that alone is a run of its own."""
    runs: list[list[dict[str, Any]]] = []
    run: list[dict[str, Any]] = []
    size = len(b'{"reports": []}')
    for sub in subs:
        weight = len(json.dumps(sub).encode("utf-8")) + 2  # and the ", " before the next
        if run and size + weight > most:
            runs.append(run)
            run, size = [], len(b'{"reports": []}')
        run.append(sub)
        size += weight
    if run:
        runs.append(run)
    return runs


# --- the whole -----------------------------------------------------------------------------------------


class Interop:
    """TAXII, CoT and the delivery feed of one node."""

    def __init__(self, service: NodeService, config: InteropConfig) -> None:
        self.service = service
        self.config = config
        party = service.config.party
        self.store = TaxiiStore(service.store)
        self._ladder_cache: dict[str, int] = {}
        self.outbox_sender = ExchangeSender(service)
        self.outbox = Outbox(
            store=self.store,
            sender=self.outbox_sender,
            policy=MarkingPolicy(party=party, levels=tuple(self.ladder()), acs_levels=config.acs_levels),
            topics=config.topics,
            config=OutboxConfig(recipients=config.recipients, wait_seconds=config.wait_seconds),
            clock=lambda: datetime.now(UTC),
        )
        self.taxii = TaxiiService(
            settings=TaxiiSettings(party=party, topic_collections=config.topic_collections),
            store=self.store,
            auth=Authenticator(NodeUsers(service), self.store),
            outbox=self.outbox,
        )
        self.cot_sender = ExchangeSender(service)
        self.ingest = CotIngest(
            sender=self.cot_sender,
            rules=config.rules,
            max_backlog=config.max_backlog,
            max_backlog_bytes=config.max_backlog_bytes,
        )
        self.listeners = CotListeners(
            config.listen,
            self.ingest,
            idle_seconds=config.tcp_idle_seconds,
            event_seconds=config.tcp_event_seconds,
            max_connections=config.tcp_max_connections,
            max_per_address=config.tcp_max_per_address,
        )
        self.output = CotOutput(config.outputs, self.ladder, queue_size=config.output_queue)
        self.bound: list[tuple[str, str, int]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cot_from = 0
        self._cursor: int | None = None  # the feed's cursor, ahead of the stored one (see _hand_on)
        self._agreements: dict[tuple[Any, ...], str | None] = {}

    @property
    def mounts(self) -> dict[str, ASGIApp]:
        """What the node's application mounts."""
        return {"/taxii2": create_taxii_app(self.taxii)} if self.config.taxii else {}

    def ladder(self) -> dict[str, int]:
        """The party's ladder, level to rank (empty until the exchange was reached once)."""
        if not self._ladder_cache:
            try:
                meta = self.service.meta()
                self._ladder_cache = {lv["level"]: int(lv["rank"]) for lv in meta["ladder"]}
            except GsomiaError as e:
                log.info("the party's ladder is not known yet: %s", e)
        return self._ladder_cache

    def start(self) -> None:
        """Start the outbox, the CoT bridge and the delivery feed."""
        with self.service.store.read() as c:
            self._cot_from = int(c.execute(select(func.max(deliveries.c.n))).scalar() or 0)
        self.outbox.start()
        self.ingest.start()
        self.output.start()
        self.bound = self.listeners.start()
        self.service.bus.subscribe(self._on_event)
        self._stop.clear()
        self._thread = threading.Thread(target=self._feed_loop, name="interop-feed", daemon=True)
        self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """Stop everything (queued work is finished first)."""
        self.service.bus.unsubscribe(self._on_event)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._keep_cursor()
        self.listeners.stop()
        self.ingest.stop()
        self.outbox.stop()
        self.output.close()
        self.outbox_sender.close()
        self.cot_sender.close()

    def status(self) -> dict[str, Any]:
        """What the CoT bridge has done since the node started (for operators)."""
        return {
            "cot": {
                "listening": [list(b) for b in self.bound],
                "in": describe(self.ingest.stats),
                "out": self.output.counters(),
            }
        }

    # --- the delivery feed ------------------------------------------------------------------

    def _on_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "delivery" and data.get("state") == "verified":
            self._wake.set()

    def _feed_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=5.0)
            self._wake.clear()
            try:
                # the bridge's counters, for 'gsomia node status' in another process (at most
                # every 5 s: they may lag by that much)
                cot = self.status()["cot"]
                self.service.store.note("interop.cot", json.dumps(cot, sort_keys=True), every=5.0)
                while self._drain() and not self._stop.is_set():
                    pass
            except Exception:  # the feed must outlive one bad delivery or a store hiccup
                log.exception("interop feed")

    def _drain(self) -> bool:
        cursor = self._cursor if self._cursor is not None else int(self.service.store.get("interop.cursor") or 0)
        with self.service.store.read() as c:
            rows = c.execute(_AFTER, {"cursor": cursor}).mappings().all()
        if not rows:
            return False
        each: list[tuple[list[NewObject], int]] = []
        try:
            for row in rows:
                if row["state"] == "pending":
                    return False  # the sync is still on it: come back when it has decided
                each.append((self._handed_on(row) if row["state"] == "verified" else [], int(row["n"])))
        finally:
            # The objects of the rows handed on and the cursor after them: one transaction (not
            # one per row), so a crash leaves neither without the other.
            if each:
                self._hand_on_all(each)
        return len(rows) == 200

    def _hand_on_all(self, each: list[tuple[list[NewObject], int]]) -> None:
        """Hand on rows' objects in one transaction; if their content is refused by the store
        (which the checks before it should have caught), row by row, so that one delivery's
        content fails alone instead of holding back every later delivery for ever."""
        try:
            self._hand_on([o for objs, _ in each for o in objs], each[-1][1])
        except InvalidInput:
            for objs, n in each:
                try:
                    self._hand_on(objs, n)
                except InvalidInput as e:
                    log.warning("delivery row %d: STIX content not served over TAXII: %s", n, e)
                    self._hand_on([], n)

    def _keep_cursor(self) -> None:
        """Store the feed's cursor (when it stops)."""
        if self._cursor is not None:
            self.service.store.put("interop.cursor", str(self._cursor))

    def _hand_on(self, inbox: list[NewObject], done: int) -> None:
        """Add the objects to the TAXII inbox with the cursor after the rows they came from, in
        one transaction. Rows that add nothing (tracks only go out on CoT) move the cursor in
        memory, and in the store at most once a second and when the feed stops: after a
        crash, the feed reads those rows again, and they add nothing again (CoT is only sent
        for rows stored after the node started)."""
        if not inbox:
            self._cursor = done
            self.service.store.note("interop.cursor", str(done))
            return
        with self.store.writing() as w:
            w.add(INBOX, inbox, now=datetime.now(UTC))
            self.service.store.put("interop.cursor", str(done), w.connection)
        self._cursor = done

    def _handed_on(self, row: Any) -> list[NewObject]:
        """:meth:`_deliver`, except that content nothing foresaw fails that delivery alone: it is
        logged and not served over TAXII or CoT, and the feed goes on past it (tried again, it
        would fail again and hold back every later delivery)."""
        try:
            return self._deliver(row)
        except Exception:
            log.exception("delivery %s: not served over TAXII or CoT", row["delivery_id"])
            return []

    def _deliver(self, row: Any) -> list[NewObject]:
        """Emit a verified delivery on CoT; what it adds to the TAXII inbox."""
        marking = json.loads(row["marking"] or "{}")
        caveats = json.loads(row["caveats"] or "{}")
        verification = json.loads(row["verification"] or "{}")
        rel_to = caveats.get("rel_to")
        try:
            originator = NationalMarking(
                party=str(row["originator"]),
                level=str(marking.get("originator_level", "")),
                rel_to=tuple(rel_to) if isinstance(rel_to, list) else None,
                noforn=bool(caveats.get("noforn", False)),
                orcon=bool(caveats.get("orcon", False)),
            )
        except InvalidInput as e:
            log.warning("delivery %s: marking not readable (%s); not served over TAXII or CoT", row["delivery_id"], e)
            return []
        inclusion = verification.get("inclusion") or {}
        delivered = DeliveredMarking(
            recipient=self.service.config.party,
            level=str(marking.get("level", row["level"])),
            originator=originator,
            common_level=marking.get("common_level"),
            banner=str(marking.get("banner", "")),
            agreement=None,
            delivery=str(row["delivery_id"]),
            ledger_index=int(inclusion.get("index") or 0),
            purpose=str(row["purpose"]),
            via=row["via"],
            exercise=bool(row["exercise"]),
        )
        payload = bytes(row["payload"] or b"")
        # Only CoT and JSON tracks are offered to the TAK endpoints: STIX content on a track
        # topic is simply no CoT, not a track refused.
        if (
            self.config.outputs
            and row["n"] > self._cot_from
            and is_track_topic(str(row["topic"]), self.config.track_topics)
            and is_track_content(str(row["content_type"]))
        ):
            self.output.emit(
                delivered=delivered,
                payload=payload,
                content_type=str(row["content_type"]),
                report_id=str(row["report_id"]),
                created=instant_or_none(str(row["created"] or "")),
            )
        if not self.config.taxii:
            return []
        agreement = self._agreement(row, delivered)
        delivered = DeliveredMarking(**{**_fields(delivered), "agreement": agreement})
        try:
            received = datetime.fromisoformat(str(row["received_at"]))
        except ValueError:
            received = datetime.now(UTC)
        try:
            return inbox_objects(
                delivered=delivered,
                topic=str(row["topic"]),
                content_type=str(row["content_type"]),
                payload=payload,
                created=received if received.tzinfo else received.replace(tzinfo=UTC),
            )
        except InvalidInput as e:
            log.warning("delivery %s: STIX content not served over TAXII: %s", row["delivery_id"], e)
            return []

    def _agreement(self, row: Any, delivered: DeliveredMarking) -> str | None:
        """The agreement under which the exchange released this delivery. A recipient may not
        read the originator's ``decision`` ledger entry, so the node asks the exchange's route
        engine for the same decision at the delivery's instant (``GET /api/v1/route``, under the
        exchange's own what-if, as it decided); for a relay, the last leg's agreement."""
        o = delivered.originator
        at = str(row["received_at"])
        key = (o.party, str(row["topic"]), o.level, o.rel_to, o.noforn, o.orcon, at[:16])
        if key in self._agreements:
            return self._agreements[key]
        params: dict[str, Any] = {
            "originator": o.party,
            "recipient": self.service.config.party,
            "topic": str(row["topic"]),
            "level": o.level,
            "at": at,
            "noforn": o.noforn,
            "orcon": o.orcon,
            "as_exchange": True,
        }
        if o.rel_to is not None:
            params["rel_to"] = ",".join(o.rel_to)
        try:
            with self.service.connect() as ex:
                route = ex.route(params)
        except GsomiaError as e:
            log.info("agreement of delivery %s not read: %s", delivered.delivery, e)
            return None
        legs = route.get("legs") if isinstance(route.get("legs"), list) else []
        agreements = route.get("agreements") if isinstance(route.get("agreements"), list) else []
        found = legs[-1].get("agreement") if legs and isinstance(legs[-1], dict) else None
        agreement = str(found or (agreements[-1] if agreements else "")) or None
        if len(self._agreements) > 10_000:
            self._agreements.clear()
        self._agreements[key] = agreement
        return agreement


_AFTER = select(deliveries).where(deliveries.c.n > bindparam("cursor")).order_by(deliveries.c.n).limit(200)


def _fields(d: DeliveredMarking) -> dict[str, Any]:
    return {name: getattr(d, name) for name in DeliveredMarking.__slots__}


def build_interop(service: NodeService) -> Interop:
    """The node's interop from its ``interop.json``.

    Raises:
        InvalidInput: a malformed configuration.
    """
    return Interop(service, InteropConfig.read(service.config.dir))
