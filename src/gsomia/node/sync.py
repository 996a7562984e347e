"""Following the party's inbox on the exchange: fetch, decrypt and verify every delivery.

The node reads the inbox from its stored cursor (``GET /api/v1/inbox``, then the event stream
with ``Last-Event-ID``, docs/protocol.md §7), so after any outage or restart it resumes where
it stopped; an item's result and the cursor past it are written in one transaction, so no
item is processed twice or skipped.

Each delivery is opened exactly as docs/protocol.md §4.4 says, then checked against the
ledger as §4.5 says:

1. select the private key set named by ``key`` (any the node holds, retired ones included)
   and unwrap and decrypt (:func:`gsomia.client.opening.open_delivery`) —
   else ``decryption_failed``;
2. find the originator's key set named by ``origin.key`` in its key history and check it was
   valid when the exchange received the report (``registered_at <= received_at <
   retired_at``) — else ``key_not_valid``;
3. rebuild the signed report and verify the signature and the ledger commitment
   (:func:`gsomia.client.opening.verify_origin`), and check that the document says what was
   signed (report, originator, topic, media type, the marking's originator and level, this
   party among the recipients unless it is the relay's hub) — else ``signature``;
4. prove the delivery's ledger entry and the report's submission entry are included in a
   checkpoint the node accepted after checking its consistency (:mod:`gsomia.node.witness`),
   and that they say what the delivery says (recipient, purpose, via, marking, key, the hash
   of the wrapped key, the instant; the signed topic, level, media type, caveats, payload
   size, the commitment and the signer's key) — else ``not_in_ledger``, or
   ``checkpoint_inconsistent`` when the node cannot accept the exchange's checkpoint
   (an alarm stands: a fork, a rollback, or a checkpoint not signed by the pinned key).

A delivery that fails any step is **quarantined** with that reason and never shown as normal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update

from gsomia.client.http import ExchangeClient
from gsomia.client.opening import open_delivery, verify_origin
from gsomia.client.stream import ServerSentEvent
from gsomia.codec import b64decode
from gsomia.crypto import PartyKeys
from gsomia.errors import (
    BadSignature,
    DecryptionFailed,
    ExchangeError,
    ExchangeUnreachable,
    GsomiaError,
    InvalidInput,
    KeysRetired,
    LedgerInvalid,
    NotAuthenticated,
    StorageError,
    UnknownEntity,
)
from gsomia.node.audit import SYSTEM, AuditLog
from gsomia.node.batches import read_ahead
from gsomia.node.keyring import KeyRing
from gsomia.node.store import NodeStore, deliveries, incidents, iso_now, utc_text
from gsomia.node.witness import Accepted, LedgerWitness, fetch_entry, same

__all__ = ["REASONS", "SyncResult", "Syncer"]

log = logging.getLogger(__name__)

REASONS = {
    "decryption_failed": "the delivery does not open with any key this node holds",
    "key_not_valid": "the originator's key was not valid when the exchange received the report",
    "signature": "the originator's signature over the report does not verify",
    "not_in_ledger": "the delivery is not proved in the exchange's ledger as delivered",
    "checkpoint_inconsistent": "the exchange's ledger checkpoint is inconsistent with one this node accepted, "
    "or not signed by the ledger key it pinned",
}
"""Why a delivery is quarantined, by reason code."""

PAGE = 100  # inbox items per page, each delivery with it (the exchange serves up to 100 so)
PROVED_PER_REQUEST = 200  # entries with proofs per request (the exchange takes up to 256)
FETCH_PER_REQUEST = 100  # deliveries per request (the exchange's limit)
WORKERS = 8  # deliveries verified at once while catching up
MAX_BACKOFF = 30.0
HEALTHY_STREAM = 30.0
"""Seconds an event stream must stay up (if it delivered nothing) for its failure to count as a
new outage, retried after 1 s again; one that fails sooner is retried after a growing wait."""
MAX_SEQ = 2**63 - 1
"""The largest inbox sequence number (cursor) the node takes: its store holds signed 64-bit
integers. The exchange gives cursors of at most 18 digits (docs/protocol.md §7.1)."""
_DELIVERY_FIELDS = ("delivery", "report", "originator", "recipient", "purpose", "via", "marking", "key")
_LEGACY_DELIVERY_FIELDS = tuple(f for f in _DELIVERY_FIELDS if f != "marking")


class Quarantined(Exception):
    """A delivery failed one verification step."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class SyncResult:
    """What one pass of :meth:`Syncer.once` did."""

    items: int = 0
    verified: int = 0
    quarantined: int = 0
    cursor: str | None = None
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON shape for ``gsomia node sync --once --json``."""
        return {
            "items": self.items,
            "verified": self.verified,
            "quarantined": self.quarantined,
            "cursor": self.cursor,
            "errors": self.errors,
        }


class Syncer:
    """Follows one party's inbox and keeps the node's deliveries."""

    def __init__(
        self,
        store: NodeStore,
        *,
        party: str,
        keyring: KeyRing,
        witness: LedgerWitness,
        connect: Callable[[], ExchangeClient],
        publish: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.store = store
        self.party = party
        self.keyring = keyring
        self.witness = witness
        self.connect = connect
        self._publish = publish
        self._signers: dict[str, list[dict[str, Any]]] = {}
        self._audit = AuditLog(store)
        self._lock = threading.Lock()  # one pass at a time (the loop, a CLI --once)
        self._ahead = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="node-ledger")
        # kept from page to page: starting eight threads for every page cost more than a
        # small page's checks
        self._verifiers = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="node-verify")
        # index -> an entry with its inclusion proof in an accepted checkpoint, fetched for a
        # whole page of deliveries in a few requests (see _prove); read by the verifying threads
        self._proved: dict[int, tuple[Accepted, dict[str, Any]]] = {}

    def close(self) -> None:
        """Stop the threads that fetch ledger entries and proofs ahead, and that verify."""
        self._ahead.shutdown(wait=False, cancel_futures=True)
        self._verifiers.shutdown(wait=False, cancel_futures=True)

    # --- state -------------------------------------------------------------------------------------

    @property
    def cursor(self) -> str | None:
        """The inbox cursor after the last item processed."""
        return self.store.get("sync.cursor")

    def _reachable(self, ok: bool, error: str | None = None) -> None:
        """Record whether the exchange answers (written only when it changes)."""
        state = "true" if ok else "false"
        shown = error if error is not None else ("" if ok else None)
        if self.store.get("exchange.reachable") == state and (
            shown is None or self.store.get("exchange.error") == shown
        ):
            return
        with self.store.write() as c:
            self.store.put("exchange.reachable", state, c)
            if shown is not None:
                self.store.put("exchange.error", shown, c)
        self._publish("status", {"exchange": {"reachable": ok, "error": error}})

    # --- one pass ----------------------------------------------------------------------------------

    def once(self) -> SyncResult:
        """Catch up: register the witness if needed, check the ledger, read every inbox item
        after the cursor. Marks the exchange unreachable and re-raises if it cannot be reached.

        Raises:
            ExchangeUnreachable: the exchange could not be reached.
            GsomiaError: the exchange refused the node (a revoked token: NotAuthenticated).
        """
        result = SyncResult()
        with self._lock:
            try:
                with self.connect() as ex:
                    self.prepare(ex)
                    for page in self._pages(ex):
                        self._page(ex, page, result)
            except (ExchangeUnreachable, StorageError, ExchangeError, NotAuthenticated) as e:
                self._reachable(False, str(e))
                raise
        result.cursor = self.cursor
        return result

    def prepare(self, ex: ExchangeClient) -> None:
        """Before reading the inbox: the node's key sets are in line with the exchange's
        (:meth:`reconcile_keys`), the witness is registered, the exercise state is known, and
        the ledger's latest checkpoint was checked (an alarm is recorded, not raised)."""
        self.reconcile_keys(ex)
        cosigner = self.keyring.witness()
        if cosigner is not None and self.store.get("witness.registered") != cosigner.public.vkey():
            try:
                ex.register_witness(self.party, cosigner.public.vkey())
                self.store.put("witness.registered", cosigner.public.vkey())
            except (ExchangeUnreachable, StorageError):
                raise
            except GsomiaError as e:
                log.warning("the exchange refused the witness key: %s", e)
                self.store.put("witness.last_error", str(e))
        self._exercise(ex)
        self._advance(ex)
        self._reachable(True)

    # --- the party's key sets ----------------------------------------------------------------------

    def reconcile_keys(self, ex: ExchangeClient) -> None:
        """Put the node's key sets in line with the exchange's, while no rotation runs here.

        A node without a current set (an init or a rotation the exchange did not answer)
        registers its pending set and makes it current once the exchange takes it. Then the
        exchange's current set for the party is read: one the node keeps (pending, or retired
        here: a rotation cut short, a store restored from before one) is made current here,
        audited; one the node does not keep at all is recorded for ``status``: the node cannot
        open what is sealed to it, nor sign what the exchange accepts, until that set is
        restored or the keys are rotated.

        Raises:
            ExchangeUnreachable: the exchange could not be reached.
        """
        with self.keyring.changing:
            if self.keyring.current_fingerprint() is None:
                self._register_pending(ex)
            self._follow_exchange_keys(ex)

    def settle_keys(self) -> None:
        """Forget a recorded key problem: the node's current set is the exchange's again."""
        for name in ("keys.missing", "keys.error"):
            if self.store.get(name) is not None:
                self.store.delete_setting(name)

    def _register_pending(self, ex: ExchangeClient) -> None:
        pending = self.keyring.pending()
        if pending is None:
            return
        fingerprint = pending.fingerprint()
        try:
            answer = self.register_keys(ex, pending)
        except KeysRetired as e:
            self.keyring.retire(fingerprint)  # never current again: a new set is needed
            self._key_error(f"{e}; run 'gsomia node keys rotate'")
            return
        except (ExchangeUnreachable, StorageError, ExchangeError, NotAuthenticated):
            raise
        except GsomiaError as e:
            self._key_error(f"the exchange refused key set {fingerprint}: {e}")
            return
        self.keyring.make_current(fingerprint, registered_at=str(answer.get("registered_at") or iso_now()))
        self.settle_keys()
        self._audit.record(
            SYSTEM, "register_keys", fingerprint, {"detail": "the pending key set, registered by the sync"}
        )
        log.info("registered the pending key set %s with the exchange", fingerprint[:16])

    def register_keys(self, ex: ExchangeClient, keys: PartyKeys) -> dict[str, Any]:
        """Register a key set with the exchange (its answer; nothing changed here).

        Raises:
            KeysRetired: the exchange registered this set before and retired it since (it
                answers a plain refusal: its key history says which).
            GsomiaError: another refusal, as the exchange answers.
        """
        try:
            return ex.register_keys(self.party, keys.public_keys().to_dict())
        except InvalidInput as e:
            fingerprint = keys.fingerprint()
            try:
                served = ex.public_keys(self.party).get("keys")
            except UnknownEntity:
                served = []
            if any(
                isinstance(k, dict) and k.get("fingerprint") == fingerprint and k.get("retired_at") is not None
                for k in (served if isinstance(served, list) else [])
            ):
                raise KeysRetired(
                    f"the exchange registered key set {fingerprint} before and retired it since: it cannot be "
                    "current again"
                ) from e
            raise

    def _key_error(self, message: str) -> None:
        log.warning("keys: %s", message)
        if self.store.get("keys.error") != message:
            self.store.put("keys.error", message)

    def _follow_exchange_keys(self, ex: ExchangeClient) -> None:
        try:
            served = ex.public_keys(self.party).get("keys")
        except UnknownEntity:
            served = []
        history = [k for k in served if isinstance(k, dict)] if isinstance(served, list) else []
        self._signers[self.party] = history
        theirs = next(
            (k for k in history if k.get("retired_at") is None and isinstance(k.get("fingerprint"), str)), None
        )
        mine = self.keyring.current_fingerprint()
        if theirs is None:
            if mine is not None:  # nothing sealed to the node can be made, nothing it signs taken
                self._key_error(
                    f"the exchange holds no current key set for {self.party} (its database restored from before "
                    "the keys were registered?): run 'gsomia node keys rotate' to register a new one"
                )
            return
        if theirs["fingerprint"] == mine:
            self.settle_keys()
            return
        fingerprint = str(theirs["fingerprint"])
        state = self.keyring.state(fingerprint)
        if state == "retired":
            # Never made current again on the exchange's word: a set is retired here when it was
            # replaced, perhaps because it was compromised, and an exchange (or anything between)
            # must not be able to bring it back. A rotation registers a fresh set.
            self._key_error(
                f"the exchange holds key set {fingerprint} current, which this node retired: run "
                "'gsomia node keys rotate' to register a new one"
            )
            return
        if state is None:
            missing = {"fingerprint": fingerprint, "registered_at": theirs.get("registered_at"), "node_current": mine}
            if self.store.get_json("keys.missing") != missing:
                log.warning("keys: the exchange's current key set %s is not in this node", fingerprint)
                self.store.put_json("keys.missing", missing)
                self._publish("status", {"keys": {"missing": missing}})
            return
        self.keyring.make_current(fingerprint, registered_at=str(theirs.get("registered_at") or iso_now()))
        self.settle_keys()
        self._audit.record(
            SYSTEM, "reconcile_keys", fingerprint, {"was": mine, "state": state, "detail": "the exchange's current set"}
        )
        log.warning("keys: made %s current, as at the exchange (it was %s here)", fingerprint[:16], state)

    def _exercise(self, ex: ExchangeClient) -> None:
        """Record whether the exchange runs an exercise, with its clock and what-if, for ``status``.

        Raises:
            ExchangeError: an exercise runs and its clock is not an ISO 8601 instant with its
                offset (``status`` would show what is no time, or print what is no JSON).
        """
        exercise = ex.exercise()
        clock = exercise.get("clock")
        if exercise.get("exercise") and _instant(clock) is None:
            raise ExchangeError(f"GET /api/v1/exercise: the exercise clock {_shown(clock)} is not an instant")
        self.store.put_json(
            "exchange.exercise",
            {"at": clock, "whatif": shown_name(exercise.get("whatif"))} if exercise.get("exercise") else None,
        )

    def _advance(self, ex: ExchangeClient, *, cosign: bool = True) -> Accepted | None:
        """The witness's latest accepted checkpoint, brought up to date if the exchange's
        extends it (:meth:`LedgerWitness.advance`); under an alarm, the one accepted before.

        Raises:
            ExchangeError: the exchange served no checkpoint of its ledger (see :meth:`_refused`).
            ExchangeUnreachable: the exchange could not be reached.
        """
        try:
            return self.witness.advance(ex, cosign=cosign)
        except LedgerInvalid as e:
            return self._refused(e)

    def _refused(self, e: LedgerInvalid) -> Accepted | None:
        """After the witness refused the exchange's checkpoint (``e``): under the alarm that
        raised (or one standing), the latest checkpoint accepted before; deliveries it does
        not cover are quarantined, naming the alarm.

        Raises:
            ExchangeError: no alarm stands: the answer was no checkpoint of the exchange's
                ledger (a malformed note, another log's, a size beyond what a ledger holds).
                The pass ends on the exchange's error, shown in ``status``, and is tried again.
        """
        if self.witness.alarm() is None:
            raise ExchangeError(f"ledger: {e}") from e
        log.warning("ledger: %s", e)
        return self.witness.latest()

    def _pages(self, ex: ExchangeClient) -> Iterator[list[dict[str, Any]]]:
        cursor = self.cursor
        if cursor and cursor != "0":
            why = self._diverged(ex, cursor)
            if why is not None:  # once a pass: an exchange that says so again is read again next pass
                cursor = self._rewind(cursor, why)
        while True:
            page = ex.inbox(cursor=cursor, limit=PAGE, deliveries=True)
            served = page.get("items")
            items = [i for i in map(_inbox_item, served if isinstance(served, list) else []) if i is not None]
            _moving_on(cursor, items)
            yield items
            following = page.get("next_cursor")
            if not following:
                return
            cursor = _next_cursor(cursor, following)

    def _diverged(self, ex: ExchangeClient, cursor: str) -> str | None:
        """Why the exchange's inbox is not the one this node read up to ``cursor`` (None if it
        is): the newest delivery the node read must still be at its sequence number. An
        exchange restored from an older copy of its database has lost it, or holds another item
        there, and the items written since the restore carry sequence numbers the node passed
        (they are shared by every party: another party's traffic moves them on too). The
        inbox's ``head`` before the cursor says the same."""
        last = self.store.get_json("sync.last_delivery")
        at = _seq(last.get("seq")) if isinstance(last, dict) else 0
        probe = ex.inbox(cursor=str(at - 1) if at > 0 else cursor, limit=1)
        head = probe.get("head")
        if isinstance(head, str) and head.isascii() and head.isdigit() and int(head) < _seq(cursor):
            return f"the exchange's inbox ends at {head}, before this node's cursor {cursor}"
        if at <= 0 or not isinstance(last, dict):
            return None
        items = probe.get("items")
        first = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}
        if _seq(first.get("seq")) != at or str(first.get("id")) != str(last.get("id")):
            return f"delivery {last.get('id')} is no longer at {at} in the exchange's inbox"
        return None

    def _rewind(self, cursor: str | None, why: str) -> str:
        """The exchange's inbox is not the one this node read (its database was restored from an
        older copy): items written since the restore may sit anywhere after the restored point,
        which is not known here, so the whole inbox is read again, from the start. Deliveries
        already decided are recognised by id and passed over; an incident the node holds is
        never replaced by an older state of it. Recorded for ``status`` and logged."""
        log.warning("sync: %s: reading the inbox again from the start", why)
        with self.store.write() as c:
            self.store.put_json("sync.rewound", {"at": iso_now(), "from": cursor, "why": why}, c)
            self.store.put("sync.cursor", "0", c)
            self.store.put_json("sync.last_delivery", None, c)
        return "0"

    def recheck(self, done: dict[str, Any] | None = None) -> dict[str, Any]:
        """Verify every quarantined delivery again, as fetched now and against the checkpoint the
        node accepts now (after an alarm was cleared, or a key the exchange was missing was put
        back): those that verify become verified, the others stay quarantined with the new
        reason. A delivery that verifies is stored again as the newest, so TAXII and CoT hand it
        on. Returns ``{"rechecked", "verified": [ids], "quarantined": [ids]}``, kept up to date
        in ``done`` as it goes (what was done before a failure is then known). A delivery that
        is no longer quarantined when its turn comes (another recheck took it) is left alone.

        Raises:
            ExchangeUnreachable: the exchange could not be reached (what was rechecked before
                stays done, in ``done``).
            ExchangeError: the exchange served no checkpoint of its ledger (likewise).
            LedgerInvalid: the ledger alarm stands (clear it first: nothing could verify).
        """
        if self.witness.alarm() is not None:
            raise LedgerInvalid("the ledger alarm stands: clear it first ('gsomia node alarm clear'), then recheck")
        out = done if done is not None else {}
        out.update({"rechecked": 0, "verified": [], "quarantined": []})
        with self.store.read() as c:
            held = list(
                c.execute(
                    select(deliveries.c.delivery_id).where(deliveries.c.state == "quarantined").order_by(deliveries.c.n)
                ).scalars()
            )
        with self._lock, self.connect() as ex:
            self._advance(ex, cosign=False)
            for delivery_id in held:
                state = self._recheck_one(ex, str(delivery_id))
                if state is not None:
                    out["rechecked"] += 1
                    out[state].append(delivery_id)
        return out

    def _recheck_one(self, ex: ExchangeClient, delivery_id: str) -> str | None:
        """Verify one quarantined delivery again; its state now, or None if it was not
        quarantined any more. The row is read again, and written, in one transaction."""
        with self.store.read() as c:
            old = c.execute(select(deliveries).where(deliveries.c.delivery_id == delivery_id)).mappings().first()
        if old is None or old["state"] != "quarantined":
            return None
        item = {"id": delivery_id, "seq": old["seq"], "type": "delivery"} | _as_item(dict(old))
        row = self._verify(ex, item)
        with self.store.write() as c:
            now = c.execute(select(deliveries).where(deliveries.c.delivery_id == delivery_id)).mappings().first()
            if now is None or now["state"] != "quarantined":
                return None  # another recheck (another process) took it meanwhile
            if row["state"] == "verified":
                # after every row there is (SQLite would give a deleted last row's number
                # again, which a feed's cursor has passed)
                newest = int(c.execute(select(func.max(deliveries.c.n))).scalar() or 0)
                c.execute(deliveries.delete().where(deliveries.c.delivery_id == delivery_id))
                c.execute(deliveries.insert().values(dict(now) | row | {"n": newest + 1}))
            else:
                _update_deliveries(c, [(delivery_id, row)])
        self._published(delivery_id, item, row)
        return "verified" if row["state"] == "verified" else "quarantined"

    # --- the loop ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Follow the inbox until ``stop`` is set: catch up, then the event stream; after a
        failure wait (1, 2, 4 … 30 seconds) and resume from the stored cursor. The wait starts
        again from 1 s only after the stream worked (it delivered, or stayed up for
        :data:`HEALTHY_STREAM` seconds): a catch-up that succeeds before a stream that fails
        at once is no recovery. The exchange's errors are logged in one line; an error no
        check foresaw with its traceback, the first time of a run of the same one."""
        backoff = 1.0
        unforeseen: str | None = None  # the last error no check foresaw, logged in full
        while not stop.is_set():
            healthy = threading.Event()
            following: float | None = None
            try:
                self.once()
                following = time.monotonic()
                self._follow(stop, healthy)
                continue  # stopped
            except GsomiaError as e:
                if _worked(healthy, following):
                    backoff = 1.0
                log.warning("sync: %s; retrying in %.0f s", e, backoff)
                self._reachable(False, str(e))
                unforeseen = None
            except Exception as e:  # an answer no check foresaw must not end the sync
                if _worked(healthy, following):
                    backoff = 1.0
                if repr(e) != unforeseen:
                    log.exception("sync: unexpected error; retrying in %.0f s", backoff)
                else:
                    log.warning("sync: unexpected error again (%r); retrying in %.0f s", e, backoff)
                unforeseen = repr(e)
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _follow(self, stop: threading.Event, healthy: threading.Event | None = None) -> None:
        """Process the inbox's event stream from the stored cursor, each delivery carrying its
        delivery (docs/protocol.md §7.2): the events that arrived while one batch was being
        processed are the next page, verified concurrently as when catching up, without a
        read of the inbox. Items a page already took are skipped against a cursor kept in
        memory, without reading the store for each of them. Returns once ``stop`` is set
        (even while nothing arrives); ``healthy`` is set once a page of events was processed.

        Raises:
            ExchangeUnreachable: the stream broke, or the exchange closed it.
            ExchangeError: the exchange sent what is no inbox item (a sequence number beyond
                what the store holds).
        """
        with self.connect() as ex:
            seen = _seq(self.cursor)
            stream = ex.events(last_event_id=self.cursor or "0", deliveries=True)
            with closing(read_ahead(stream, PAGE, name="sync-events", stop=stop)) as batches:
                for events in batches:
                    items = [item for item in map(_event_item, events) if item is not None]
                    if not items:
                        continue
                    with self._lock:
                        seen = max(seen, _seq(self.cursor))  # another pass may have moved it
                        fresh = [item for item in items if _seq(item.get("seq")) > seen]
                        if fresh:
                            # the stream holds every item after the cursor it started from, in
                            # order: what is after the stored cursor continues it exactly
                            self._page(ex, fresh, SyncResult())
                            seen = _seq(fresh[-1].get("seq"))  # the cursor the page stored last
                    self.store.note("exchange.last_event_at", iso_now())
                    if healthy is not None:
                        healthy.set()
        if stop.is_set():
            return
        raise ExchangeUnreachable("the exchange closed the event stream")

    def witness_loop(self, stop: threading.Event, interval: float) -> None:
        """Check (and cosign) the exchange's checkpoint every ``interval`` seconds, so the node
        witnesses the ledger even when nothing arrives for its party."""
        while not stop.wait(interval):
            try:
                with self.connect() as ex:
                    self._exercise(ex)
                    self._advance(ex)
                    self._reachable(True)
            except GsomiaError as e:
                log.info("witness: %s", e)
                self._reachable(False, str(e))
            except Exception:  # an answer no check foresaw must not end the witness
                log.exception("witness: unexpected error; trying again in %.0f s", interval)

    # --- items -------------------------------------------------------------------------------------

    def process(
        self,
        ex: ExchangeClient,
        item: dict[str, Any],
        result: SyncResult,
        *,
        ready: Future[dict[str, Any]] | None = None,
    ) -> None:
        """Handle one inbox item and move the cursor past it.

        Raises:
            ExchangeUnreachable: the exchange went away (the cursor stays before the item).
        """
        seq = str(item.get("seq", ""))
        kind = item.get("type")
        result.items += 1
        if kind == "delivery":
            state = self._delivery(ex, item, seq, ready)
            if state == "verified":
                result.verified += 1
            elif state == "quarantined":
                result.quarantined += 1
            return
        if kind in {"incident", "incident_update"}:
            self._incident(ex, item, seq)
            return
        if kind == "consent_request":
            self._publish("consent", {k: item.get(k) for k in ("id", "report", "recipient", "hub", "topic", "level")})
        if seq:
            self.store.put("sync.cursor", seq)

    def _incident(self, ex: ExchangeClient, item: dict[str, Any], seq: str) -> None:
        incident_id = str(item.get("incident") or item.get("id") or "")
        try:
            doc: dict[str, Any] | None = ex.incident(incident_id)
        except UnknownEntity:
            doc = None
        if doc is not None and not isinstance(doc.get("id"), str):
            doc = None  # not an incident document: nothing to keep
        with self.store.write() as c:
            if doc is not None:
                upsert_incident(c, doc)
            if seq:
                self.store.put("sync.cursor", seq, c)
        self._publish("incident", {"id": incident_id, "type": item.get("type")})

    def _delivery(
        self, ex: ExchangeClient, item: dict[str, Any], seq: str, ready: Future[dict[str, Any]] | None = None
    ) -> str:
        """Verify one delivery (or take the result verified ahead in ``ready``), store it and
        move the cursor past it, in one transaction."""
        delivery_id = str(item.get("id", ""))
        known = self._final(delivery_id)
        if known is not None:  # processed before a restart (or read again): only move on
            if seq:
                with self.store.write() as c:
                    self._moved_past(c, seq, delivery_id)
            return known
        if ready is None:
            self._pending(item, seq)
        row = ready.result() if ready is not None else self._verify(ex, item)
        row["seq"] = int(seq or 0)
        with self.store.write() as c:
            _update_deliveries(c, [(delivery_id, row)])
            if seq:
                self._moved_past(c, seq, delivery_id)
        self._published(delivery_id, item, row)
        return str(row["state"])

    def _moved_past(self, c: Any, seq: str, delivery_id: str) -> None:
        """The cursor after delivery ``delivery_id`` (inside ``c``), and that delivery as the
        newest read at its place in the exchange's inbox (:meth:`_diverged` looks for it there)."""
        self.store.put("sync.cursor", seq, c)
        self.store.put_json("sync.last_delivery", {"seq": _seq(seq), "id": delivery_id}, c)

    def _published(self, delivery_id: str, item: dict[str, Any], row: dict[str, Any]) -> None:
        self._publish(
            "delivery",
            {
                "delivery_id": delivery_id,
                "state": row["state"],
                "reason": row["reason"],
                "banner": banner(json.loads(row["marking"]) if "marking" in row else item.get("marking") or {}),
            },
        )

    def _final(self, delivery_id: str) -> str | None:
        with self.store.read() as c:
            known = c.execute(select(deliveries.c.state).where(deliveries.c.delivery_id == delivery_id)).scalar()
        return str(known) if known in {"verified", "quarantined"} else None

    def _finals(self, delivery_ids: list[str]) -> set[str]:
        """Which of these deliveries were verified or quarantined before (one query)."""
        if not delivery_ids:
            return set()
        # By the unique id alone, the state compared here: with the state in the WHERE clause,
        # SQLite may walk the state index, i.e. every verified delivery ever stored.
        with self.store.read() as c:
            found = c.execute(_STATES, {"ids": delivery_ids})
            return {str(d) for d, state in found if state in {"verified", "quarantined"}}

    def _verify(self, ex: ExchangeClient, item: dict[str, Any]) -> dict[str, Any]:
        """Fetch and verify one delivery: the row to store (nothing is written here).

        Raises:
            ExchangeUnreachable: the exchange went away (nothing is decided).
        """
        return self._checked(ex, item, self._fetch(ex, item))

    def _fetch(self, ex: ExchangeClient, item: dict[str, Any]) -> dict[str, Any] | None:
        """The delivery as the exchange serves it; None if it does not serve it to this party.

        Raises:
            ExchangeUnreachable: the exchange went away.
        """
        try:
            return ex.delivery(str(item.get("id", "")))
        except UnknownEntity:
            return None

    def _fetch_many(self, ex: ExchangeClient, items: list[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
        """Several deliveries in one request (``GET /api/v1/deliveries``), by id; None for one
        the exchange does not serve to this party. One by one from an exchange without that
        endpoint.

        Raises:
            ExchangeUnreachable: the exchange went away.
        """
        ids = [str(i.get("id", "")) for i in items]
        try:
            served = ex.deliveries(ids).get("items")
        except (ExchangeError, UnknownEntity) as e:
            log.debug("deliveries not fetched together (%s); one by one instead", e)
            return {d: self._fetch(ex, i) for d, i in zip(ids, items, strict=True)}
        out: dict[str, dict[str, Any] | None] = dict.fromkeys(ids)
        for view in served if isinstance(served, list) else []:
            if isinstance(view, dict) and view.get("id") in out and "error" not in view:
                out[str(view["id"])] = view
        return out

    def _checked(
        self, ex: ExchangeClient, item: dict[str, Any], view: dict[str, Any] | Future[dict[str, Any] | None] | None
    ) -> dict[str, Any]:
        """The row of a fetched delivery (``view``; a fetch still running or failed is awaited
        here, so its error is raised in inbox order)."""
        if isinstance(view, Future):
            view = view.result()
        if view is not None and view.get("id") != str(item.get("id", "")):
            view = None  # served under another id: not the delivery the inbox named
        if view is None:
            missing = {
                "id": str(item.get("id", "")),
                "marking": item.get("marking") or {},
                **{k: item.get(k) for k in ("report", "originator", "topic", "purpose", "via", "created_at")},
            }
            return self.check_missing(missing)
        return self.check(ex, view)

    def _advance_ahead(
        self, ex: ExchangeClient, pool: ThreadPoolExecutor, items: list[dict[str, Any]]
    ) -> Future[Accepted | None] | None:
        """Bring the checkpoint up to date in ``pool``, while the page's deliveries are fetched,
        if the inbox items name ledger entries beyond the latest accepted checkpoint."""
        newest = max((i for i in (item.get("leaf_index") for item in items) if type(i) is int), default=-1)
        if newest < 0:
            return None
        cp = self.witness.latest()
        if cp is not None and newest < cp.size:
            return None
        return pool.submit(self._advance, ex, cosign=False)

    def _prove(
        self, ex: ExchangeClient, views: list[dict[str, Any]], advanced: Future[Accepted | None] | None = None
    ) -> None:
        """Fetch the ledger entries of a page's deliveries and submissions with their inclusion
        proofs in a few requests (``GET /api/v1/ledger/proof/inclusions``), against one
        checkpoint brought up to date once (``advanced``, if it is under way already). What
        this cannot fetch (an exchange without that endpoint, an entry refused) is fetched one
        by one when each delivery is checked.

        Raises:
            ExchangeUnreachable: the exchange went away while the checkpoint was fetched.
        """
        cp_ahead = advanced.result() if advanced is not None else None
        wanted = sorted(
            {
                i
                for v in views
                for i in (v.get("leaf_index"), _member(v, "origin", "leaf_index"))
                if type(i) is int and i >= 0
            }
        )
        if not wanted:
            return
        cp = cp_ahead or self.witness.latest()
        if cp is None or wanted[-1] >= cp.size:
            if advanced is None and cp is not None and len(wanted) <= PROVED_PER_REQUEST:
                cp, taken = self._prove_advancing(ex, wanted)
                if taken:
                    return
            else:
                cp = self._advance(ex, cosign=False)
        if cp is None:
            return
        wanted = [i for i in wanted if i < cp.size]
        for start in range(0, len(wanted), PROVED_PER_REQUEST):
            try:
                answer = ex.ledger_inclusions(wanted[start : start + PROVED_PER_REQUEST], cp.size)
            except (ExchangeError, UnknownEntity) as e:
                log.debug("entries with proofs not fetched together (%s); one by one instead", e)
                return
            self._take(cp, answer)

    def _prove_advancing(self, ex: ExchangeClient, wanted: list[int]) -> tuple[Accepted | None, bool]:
        """The checkpoint brought up to date and the entries ``wanted`` with their proofs in it,
        in one request (``GET /api/v1/ledger/proof/inclusions?old=``, docs/protocol.md §5.5):
        the witness takes the checkpoint and the consistency proof of the answer as it takes
        them from ``/proof/consistency``, and the proofs are kept only if they are in the
        tree of the checkpoint it accepted. Returns the latest accepted checkpoint, and
        whether the proofs were taken (if not, the caller asks for them at that checkpoint).

        Raises:
            ExchangeUnreachable: the exchange went away.
        """
        answers: list[dict[str, Any]] = []

        def ask(old: int) -> dict[str, Any]:
            answer = ex.ledger_inclusions(wanted, old=old)
            answers.append(answer)
            consistency = answer.get("consistency")
            if not isinstance(consistency, dict):
                return {}  # an exchange that does not prove consistency here: asked apart
            return {**consistency, "checkpoint": answer.get("checkpoint")}

        try:
            cp = self.witness.advance(ex, cosign=False, ask=ask, hold=True)
        except LedgerInvalid as e:
            return self._refused(e), False
        except ExchangeError as e:
            log.debug("checkpoint not brought up to date with the proofs (%s); apart instead", e)
            return self._advance(ex, cosign=False), False
        if cp is None or not answers or answers[-1].get("size") != cp.size:
            return cp, False
        self._take(cp, answers[-1])
        return cp, True

    def _take(self, cp: Accepted, answer: dict[str, Any]) -> None:
        """Keep the entries and proofs of ``answer`` for the deliveries of the page, each to be
        verified against ``cp`` when its delivery is checked."""
        served = answer.get("items")
        for got in served if isinstance(served, list) else []:
            at = got.get("index") if isinstance(got, dict) else None
            if type(at) is int and isinstance(got.get("entry"), dict) and isinstance(got.get("proof"), dict):
                self._proved[at] = (cp, got)

    def _page(self, ex: ExchangeClient, items: list[dict[str, Any]], result: SyncResult) -> None:
        """Process one page of inbox items in order, verifying its deliveries concurrently
        ahead of time; results are stored, and the cursor moved, strictly in inbox order.

        Each run of results already verified is stored with the cursor after it in one
        transaction, and the page's deliveries not yet decided are recorded as pending in the
        first of them: one durable commit for a page whose deliveries came with it and were all
        verified at once, rather than one for the pending rows and one for the results (a page
        whose deliveries must be fetched records them as pending before it asks). A page with
        one delivery goes the same way.
        """
        named = [i for i in items if i.get("type") == "delivery"]
        final = self._finals([str(i.get("id", "")) for i in named])
        todo = [i for i in named if str(i.get("id", "")) not in final]
        if not todo:
            for item in items:
                self.process(ex, item, result)
            return
        pool = self._verifiers
        running: list[Future[Any]] = []
        ahead: dict[str, Future[dict[str, Any]]] = {}
        unrecorded = _by_id(todo)  # given no row yet
        try:
            fetched = self._fetch_page(ex, todo, running, unrecorded)
            ahead = {str(i.get("id")): pool.submit(self._checked, ex, i, fetched[str(i.get("id"))]) for i in todo}
            running += ahead.values()
            done: list[tuple[dict[str, Any], dict[str, Any]]] = []
            try:
                for item in items:
                    future = ahead.get(str(item.get("id"))) if item.get("type") == "delivery" else None
                    if future is None:
                        self._store_verified(done, result, unrecorded)
                        self.process(ex, item, result)
                        continue
                    if done and not future.done():
                        self._store_verified(done, result, unrecorded)  # store what is ready, then wait
                    done.append((item, future.result()))
            finally:
                try:
                    self._store_verified(done, result, unrecorded)  # what was verified stays verified
                finally:
                    self._proved.clear()
                    for future in ahead.values():
                        future.cancel()
        finally:
            wait(running)  # nothing of this page runs on once it is over (the threads serve the next)

    def _fetch_page(
        self,
        ex: ExchangeClient,
        todo: list[dict[str, Any]],
        running: list[Future[Any]],
        unrecorded: dict[str, dict[str, Any]],
    ) -> dict[str, Future[dict[str, Any] | None]]:
        """Get what verifying the page's deliveries needs: each delivery (served with the inbox
        page, or else fetched a hundred at a time while the checkpoint is brought up to date),
        and the ledger entries with their proofs (see :meth:`_prove`). Deliveries to be fetched
        are first recorded as pending (and taken out of ``unrecorded``): the exchange may go
        away while they are asked for. Each future started is added to ``running``.

        Raises:
            ExchangeUnreachable: the exchange went away.
            StorageError: the pending rows could not be written.
        """
        pool = self._verifiers
        fetched: dict[str, Future[dict[str, Any] | None]] = {str(i.get("id")): _carried(i) for i in todo}
        asked = [i for i in todo if not fetched[str(i.get("id"))].done()]
        if not asked:
            self._prove(ex, [v for v in (f.result() for f in fetched.values()) if v is not None])
            return fetched
        self._pending_many(todo)
        unrecorded.clear()
        advanced = self._advance_ahead(ex, pool, asked)
        if advanced is not None:
            running.append(advanced)
        for start in range(0, len(asked), FETCH_PER_REQUEST):
            chunk = asked[start : start + FETCH_PER_REQUEST]
            each = _each(pool.submit(self._fetch_many, ex, chunk), [str(i.get("id")) for i in chunk])
            fetched |= each
            running += each.values()
        views = [v for v in (_settled(f) for f in fetched.values()) if v is not None]
        self._prove(ex, views, advanced)
        return fetched

    def _store_verified(
        self,
        done: list[tuple[dict[str, Any], dict[str, Any]]],
        result: SyncResult,
        unrecorded: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Store verified (or quarantined) deliveries and the cursor after the last of them in
        one transaction, with the rest of the page's deliveries given no row yet
        (``unrecorded``) as pending, then tell the console; empties ``done`` and
        ``unrecorded`` first."""
        batch = list(done)
        done.clear()  # stored now, or, if the write fails, taken again by the next pass
        fresh = dict(unrecorded or {})
        if unrecorded:
            unrecorded.clear()
        if not batch and not fresh:
            return
        for item, row in batch:
            row["seq"] = int(str(item.get("seq", "")) or 0)
        with self.store.write() as c:
            _record_deliveries(c, [(str(item.get("id", "")), row) for item, row in batch], fresh)
            last = str(batch[-1][0].get("seq", "")) if batch else ""
            if last:
                self._moved_past(c, last, str(batch[-1][0].get("id", "")))
            checkpoint = self.witness.keep(c)  # the checkpoint the results were verified against
        self.witness.kept(checkpoint)
        for item, row in batch:
            result.items += 1
            if row["state"] == "verified":
                result.verified += 1
            elif row["state"] == "quarantined":
                result.quarantined += 1
            self._published(str(item.get("id", "")), item, row)

    def _pending(self, item: dict[str, Any], seq: str) -> None:
        self._pending_many([item | {"seq": seq}])

    def _pending_many(self, items: list[dict[str, Any]]) -> None:
        """Record deliveries the inbox named as pending, except those recorded already."""
        with self.store.write() as c:
            _record_deliveries(c, [], _by_id(items))

    # --- verification ------------------------------------------------------------------------------

    def check(self, ex: ExchangeClient, view: dict[str, Any]) -> dict[str, Any]:
        """Open and verify one fetched delivery; the row to store (state, reason, payload…).

        Raises:
            ExchangeUnreachable: the exchange went away mid-way (nothing is decided).
        """
        origin: dict[str, Any] = view["origin"] if isinstance(view.get("origin"), dict) else {}
        report: dict[str, Any] = origin["report"] if isinstance(origin.get("report"), dict) else {}
        marking: dict[str, Any] = view["marking"] if isinstance(view.get("marking"), dict) else {}
        verification: dict[str, Any] = {
            "signature": "failed",
            "key_fingerprint": origin.get("key"),
            "key_valid_from": None,
            "key_valid_to": None,
            "inclusion": {"index": view.get("leaf_index"), "size": None, "ok": False},
            "submission_inclusion": {"index": origin.get("leaf_index"), "size": None, "ok": False},
            "checkpoint_size": None,
            "detail": None,
        }
        payload: bytes | None = None
        state, reason = "verified", None
        try:
            payload = self._open(view)
            self._signature(ex, view, payload, verification)
            self._signed_as_served(view, report)
            self._ledger(ex, view, verification, len(payload))
        except Quarantined as q:
            state, reason = "quarantined", q.reason
            verification["detail"] = f"{REASONS[q.reason]}: {q.detail}"
            log.warning("delivery %s quarantined: %s", view.get("id"), q)
        text = _text(payload)
        return {
            "report_id": str(view.get("report", "")),
            "originator": str(view.get("originator", "")),
            "topic": str(view.get("topic", "")),
            "level": recipient_level(marking),
            "purpose": str(view.get("purpose", "")),
            "via": view.get("via"),
            "marking": json.dumps(marking, ensure_ascii=False),
            "caveats": json.dumps(report.get("caveats") or {}),
            "exercise": bool(marking.get("exercise")) or str(marking.get("banner", "")).startswith("EXERCISE "),
            "state": state,
            "reason": reason,
            "detail": verification["detail"],
            "created": str(report.get("created", "")),
            "received_at": utc_text(str(view.get("created_at", ""))),
            "processed_at": iso_now(),
            "content_type": str(view.get("content_type", "")),
            "payload": payload,
            "verification": json.dumps(verification, ensure_ascii=False),
            "search": " ".join(
                str(x)
                for x in (
                    view.get("report"),
                    view.get("originator"),
                    view.get("topic"),
                    marking.get("banner"),
                    marking.get("originator_level"),
                    text if state == "verified" else "",
                )
                if x
            ).casefold(),
        }

    def check_missing(self, view: dict[str, Any]) -> dict[str, Any]:
        """The row of a delivery the inbox named but the exchange does not serve."""
        detail = f"{REASONS['not_in_ledger']}: the exchange does not serve delivery {view['id']} to this party"
        marking = view["marking"]
        return {
            "state": "quarantined",
            "reason": "not_in_ledger",
            "detail": detail,
            "processed_at": iso_now(),
            "verification": json.dumps({"signature": "failed", "detail": detail}),
            "exercise": bool(marking.get("exercise")),
        }

    def _open(self, view: dict[str, Any]) -> bytes:
        fingerprint = str(view.get("key", ""))
        keys = self.keyring.get(fingerprint)
        if keys is None or keys.profile.value != view.get("profile"):
            raise Quarantined("decryption_failed", f"this node holds no {view.get('profile')} key set {fingerprint}")
        try:
            return open_delivery(view, keys)
        except (DecryptionFailed, InvalidInput):
            raise Quarantined("decryption_failed", "the wrapped key or the payload does not open") from None

    def _signature(self, ex: ExchangeClient, view: dict[str, Any], payload: bytes, out: dict[str, Any]) -> None:
        origin = view.get("origin")
        if not isinstance(origin, dict) or not isinstance(origin.get("report"), dict):
            raise Quarantined("signature", "the delivery carries no signed report (origin.report)")
        originator = str(origin["report"].get("originator", view.get("originator")))
        registered = self._key_history(ex, originator, str(origin.get("key")))
        doc = next((d for d in registered if d.get("fingerprint") == origin.get("key")), None)
        if doc is None:
            raise Quarantined("key_not_valid", f"{originator} never registered the key set {origin.get('key')}")
        out["key_valid_from"], out["key_valid_to"] = doc.get("registered_at"), doc.get("retired_at")
        received = _instant(origin.get("received_at"))
        start, end = _instant(doc.get("registered_at")), _instant(doc.get("retired_at"))
        if received is None or start is None or received < start or (end is not None and received >= end):
            raise Quarantined(
                "key_not_valid",
                f"key set {origin.get('key')} was valid from {doc.get('registered_at')} to "
                f"{doc.get('retired_at') or 'now'}, the report was received at {origin.get('received_at')}",
            )
        try:
            verify_origin(view, payload, registered)
        except (BadSignature, InvalidInput):
            raise Quarantined("signature", f"by key set {origin.get('key')}") from None
        out["signature"] = "ok"

    def _signed_as_served(self, view: dict[str, Any], report: dict[str, Any]) -> None:
        """What the node shows of a delivery must be what the originator signed: the document's
        report, originator, topic and media type, its marking's originator and level, and this
        party among the signed recipients (unless it is the hub a relay passes through). The
        document's other members are checked against the ledger (:meth:`_ledger`).

        Raises:
            Quarantined: a member says something the signed report does not.
        """
        marking: dict[str, Any] = view["marking"] if isinstance(view.get("marking"), dict) else {}
        served = {
            "id": view.get("report"),
            "originator": view.get("originator"),
            "topic": view.get("topic"),
            "content_type": view.get("content_type"),
            "level": marking.get("originator_level"),
        }
        wrong = [name for name, value in served.items() if report.get(name) != value]
        if marking.get("originator") != report.get("originator"):
            wrong.append("marking.originator")
        if wrong:
            raise Quarantined("signature", f"the delivery document's {', '.join(wrong)} is not what was signed")
        recipients = report.get("recipients")
        hub_copy = view.get("purpose") == "relay_hub"
        if not hub_copy and (not isinstance(recipients, list) or self.party not in recipients):
            raise Quarantined("signature", f"the signed report does not name {self.party} among its recipients")

    def _key_history(self, ex: ExchangeClient, party: str, fingerprint: str) -> list[dict[str, Any]]:
        cached = self._signers.get(party)
        if cached is None or not any(d.get("fingerprint") == fingerprint for d in cached):
            try:
                keys = ex.public_keys(party).get("keys")
            except UnknownEntity:
                keys = []
            cached = [d for d in keys if isinstance(d, dict)] if isinstance(keys, list) else []
            self._signers[party] = cached
        return cached

    def _ledger(self, ex: ExchangeClient, view: dict[str, Any], out: dict[str, Any], payload_size: int) -> None:
        origin = view["origin"]
        index, submission = view.get("leaf_index"), origin.get("leaf_index")
        if type(index) is not int or type(submission) is not int:
            raise Quarantined("not_in_ledger", "the delivery names no ledger entry")
        # fetched with the page (see _prove), or else the two entries while the checkpoint is
        # brought up to date, then the two proofs at once: four round trips, not seven
        mine, theirs = self._proved.get(index), self._proved.get(submission)
        cp: Accepted | None
        if mine is not None and theirs is not None and mine[0] is theirs[0]:
            # proved in a checkpoint this node accepted (checked consistent with every earlier
            # one) when the page was read; a later one proves nothing more
            cp = mine[0]
            records = {index: _done(mine[1]["entry"]), submission: _done(theirs[1]["entry"])}
            proofs = {index: _done(mine[1]["proof"]), submission: _done(theirs[1]["proof"])}
        else:
            cp = self.witness.latest()
            records = {i: self._ahead.submit(fetch_entry, ex, i) for i in (index, submission)}
            proofs = {}
        if cp is None or max(index, submission) >= cp.size:
            cp = self._advance(ex, cosign=False)
        if cp is None or max(index, submission) >= cp.size:
            alarm = self.witness.alarm()
            if alarm is not None:
                raise Quarantined(
                    "checkpoint_inconsistent",
                    f"no checkpoint this node accepted covers the delivery: the ledger alarm ({alarm['kind']}) "
                    f"stands: {alarm['detail']}",
                )
            raise Quarantined("not_in_ledger", f"entry {max(index, submission)} is beyond the signed checkpoint")
        out["checkpoint_size"] = cp.size
        size = cp.size
        if not proofs:
            proofs = {i: self._ahead.submit(ex.ledger_inclusion, i, size) for i in (index, submission)}
        entry = self._included(ex, index, cp, "delivery", records[index], proofs[index])
        out["inclusion"] = {"index": index, "size": cp.size, "ok": True}
        expected = {
            "delivery": view.get("id"),
            "report": view.get("report"),
            "originator": view.get("originator"),
            "recipient": self.party,
            "purpose": view.get("purpose"),
            "via": view.get("via"),
            "marking": view.get("marking"),
            "key": view.get("key"),
        }
        legacy = view.get("format") == 1  # ledgered by the first release (docs/protocol.md §4.5)
        wrong = same(entry, expected, _LEGACY_DELIVERY_FIELDS if legacy else _DELIVERY_FIELDS)
        if legacy and not _legacy_marking_is(entry.get("marking"), view.get("marking")):
            wrong.append("marking")
        if _instant(entry.get("at")) is None or _instant(entry.get("at")) != _instant(view.get("created_at")):
            wrong.append("at")  # the document's created_at is when the delivery was ledgered
        wrapped = hashlib.sha256(b64decode(view.get("wrapped_key"), "wrapped_key")).hexdigest()
        if entry.get("type") != "delivery" or wrong or entry.get("wrapped_key_sha256") != wrapped:
            what = ", ".join(wrong or ["wrapped_key_sha256"]) if entry.get("type") == "delivery" else "its type"
            raise Quarantined("not_in_ledger", f"ledger entry {index} differs from the delivery in {what}")
        sub = self._included(ex, submission, cp, "submission", records[submission], proofs[submission])
        out["submission_inclusion"] = {"index": submission, "size": cp.size, "ok": True}
        report = origin["report"]
        claimed = {
            "report": report.get("id"),
            "originator": report.get("originator"),
            "topic": report.get("topic"),
            "level": report.get("level"),
            "content_type": report.get("content_type"),
            "caveats": _ledgered_caveats(report.get("caveats")),
            "payload_size": payload_size,
            "commitment": origin.get("commitment"),
            "key": origin.get("key"),
        }
        if legacy:  # an unsalted digest then, under its own name
            claimed["digest"] = claimed.pop("commitment")
        wrong = same(sub, claimed, tuple(claimed))
        if sub.get("type") != "submission" or wrong:
            raise Quarantined("not_in_ledger", f"submission entry {submission} differs in {', '.join(wrong) or 'type'}")

    def _included(
        self,
        ex: ExchangeClient,
        index: int,
        cp: Accepted,
        what: str,
        record: Future[dict[str, Any]],
        proof: Future[dict[str, Any]],
    ) -> dict[str, Any]:
        try:
            return self.witness.check_inclusion(ex, index, cp, record=record.result(), proof=proof.result())
        except UnknownEntity:
            raise Quarantined("not_in_ledger", f"the exchange serves no {what} entry {index} to this party") from None
        except LedgerInvalid as e:
            raise Quarantined("not_in_ledger", f"{what} entry {index}: {e}") from None


SHOWN_NAME = 80
"""The longest name from the exchange the console shows within its own sentences (characters)."""


def shown_name(value: object) -> str | None:
    """A name the exchange gives (an exercise's what-if), fit to stand inside the node's own
    words: without control and format characters (a right-to-left override would turn the
    sentence around it, a zero-width one hide a difference), at most :data:`SHOWN_NAME`
    characters; None for none."""
    if not isinstance(value, str):
        return None
    spaced = "".join(" " if ch.isspace() else ch for ch in value)
    text = "".join(ch for ch in spaced if unicodedata.category(ch) not in ("Cc", "Cf"))
    text = " ".join(text.split())
    if len(text) > SHOWN_NAME:
        text = text[: SHOWN_NAME - 1] + "…"
    return text or None


def _legacy_marking_is(ledgered: object, served: object) -> bool:
    """Whether a marking the first release ledgered (``level`` for the recipient's level, no
    ``recipient``) says what the delivery document serves in today's shape."""
    if not isinstance(ledgered, dict) or not isinstance(served, dict):
        return False
    return ledgered.get("level") == served.get("recipient_level") and all(
        ledgered.get(k) == served.get(k) for k in ("banner", "originator", "originator_level", "common_level")
    )


def _ledgered_caveats(caveats: object) -> dict[str, Any] | None:
    """Signed caveats as a submission entry holds them (docs/protocol.md §5.2): ``rel_to`` in
    ascending order; None for caveats that are not an object (no entry matches them)."""
    if not isinstance(caveats, dict):
        return None
    rel_to = caveats.get("rel_to")
    return {
        "rel_to": sorted(rel_to) if isinstance(rel_to, list) and all(isinstance(p, str) for p in rel_to) else rel_to,
        "noforn": caveats.get("noforn"),
        "orcon": caveats.get("orcon"),
    }


def _event_item(event: ServerSentEvent) -> dict[str, Any] | None:
    """The inbox item an event carries (its id is the item's ``seq``); None for another event."""
    if not isinstance(event.data, dict):
        return None
    item = dict(event.data)
    if event.id and "seq" not in item:
        item["seq"] = _seq(event.id)
    return _inbox_item(item)


def _inbox_item(value: object) -> dict[str, Any] | None:
    """An inbox item as the exchange served it, or None for what cannot be one: not a JSON
    object, a ``seq`` that is not a cursor (a non-negative integer or its decimal digits), an
    ``id`` that is neither text nor absent. A ``marking`` that is not an object is read as none.

    Raises:
        ExchangeError: the ``seq`` is a cursor beyond :data:`MAX_SEQ` (not an item to skip: the
            cursor would move past every item after it).
    """
    if not isinstance(value, dict):
        return None
    if not _is_cursor(value.get("seq")) or not isinstance(value.get("id"), str | None):
        return None
    if _beyond(value.get("seq")):
        raise ExchangeError(
            f"the exchange's inbox item {_shown(value.get('id'))} has seq {_shown(value.get('seq'))}, beyond "
            f"{MAX_SEQ}: no inbox goes so far"
        )
    if isinstance(value.get("marking"), dict | None):
        return value
    return value | {"marking": None}


def _is_cursor(seq: object) -> bool:
    """Whether an item's ``seq`` can be an inbox cursor (or is absent): a non-negative integer
    or its decimal digits (whether the store holds it is :func:`_beyond`'s question)."""
    if isinstance(seq, str):
        return not seq or (seq.isascii() and seq.isdigit())
    return seq is None or (type(seq) is int and seq >= 0)


def _beyond(seq: object) -> bool:
    """Whether a cursor (as :func:`_is_cursor` takes it) is beyond :data:`MAX_SEQ`: the store
    cannot hold it, and no exchange gives one so large (its text is not read as a number past
    19 characters)."""
    if isinstance(seq, str):
        return len(seq) > len(str(MAX_SEQ)) or (bool(seq) and int(seq) > MAX_SEQ)
    return type(seq) is int and seq > MAX_SEQ


def _shown(value: object) -> str:
    """A value from the exchange as an error names it: its JSON-like text, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _moving_on(sent: str | None, items: list[dict[str, Any]]) -> None:
    """Check that the items of the inbox page after cursor ``sent`` come after it, each after
    the one before.

    Raises:
        ExchangeError: an item's ``seq`` does not (the inbox would be read again, in a loop).
    """
    at = _seq(sent)
    for item in items:
        seq = item.get("seq")
        if seq is None or seq == "":
            continue
        if _seq(seq) <= at:
            raise ExchangeError(
                f"GET /api/v1/inbox: the page after cursor {sent or '0'} holds an item of seq {seq} after "
                f"seq {at}: the inbox does not move on"
            )
        at = _seq(seq)


def _next_cursor(sent: str | None, following: object) -> str:
    """The cursor to ask for the next page with: the page's ``next_cursor``.

    Raises:
        ExchangeError: it is no cursor, or not after ``sent`` (the same page would be asked
            for again and again).
    """
    if following is None or not _is_cursor(following) or _beyond(following):
        raise ExchangeError(f"GET /api/v1/inbox: the next cursor {_shown(following)} is not a cursor")
    text = str(following)
    if _seq(text) <= _seq(sent):
        raise ExchangeError(
            f"GET /api/v1/inbox: the page after cursor {sent or '0'} gives {text} as the next cursor: it does "
            "not move on"
        )
    return text


def _worked(healthy: threading.Event, following: float | None) -> bool:
    """Whether the event stream worked before it failed: it delivered (``healthy``), or stayed
    up :data:`HEALTHY_STREAM` seconds since it was opened (at ``following``)."""
    if healthy.is_set():
        return True
    return following is not None and time.monotonic() - following >= HEALTHY_STREAM


def _member(doc: dict[str, Any], name: str, member: str) -> Any:
    """``doc[name][member]``, or None where ``doc[name]`` is not an object."""
    inner = doc.get(name)
    return inner.get(member) if isinstance(inner, dict) else None


def _carried(item: dict[str, Any]) -> Future[dict[str, Any] | None]:
    """The delivery the inbox page carried with ``item`` as a future already done, or a
    future not yet started if it carried none (or one under another id): it is fetched."""
    future: Future[dict[str, Any] | None] = Future()
    view = item.get("document")
    if isinstance(view, dict) and view.get("id") == item.get("id"):
        future.set_result(view)
    return future


def _done(value: dict[str, Any]) -> Future[dict[str, Any]]:
    """A future already holding ``value`` (what was fetched with the page)."""
    future: Future[dict[str, Any]] = Future()
    future.set_result(value)
    return future


def _each(
    together: Future[dict[str, dict[str, Any] | None]], ids: list[str]
) -> dict[str, Future[dict[str, Any] | None]]:
    """One future per id for a fetch of several: each resolves to its view (or None), or
    fails as the fetch failed."""
    each: dict[str, Future[dict[str, Any] | None]] = {i: Future() for i in ids}

    def settle(done: Future[dict[str, dict[str, Any] | None]]) -> None:
        try:
            views = done.result()
        except BaseException as e:  # noqa: BLE001 - handed to every waiting delivery, raised in order
            for future in each.values():
                future.set_exception(e)
            return
        for i, future in each.items():
            future.set_result(views.get(i))

    together.add_done_callback(settle)
    return each


def _settled(future: Future[dict[str, Any] | None]) -> dict[str, Any] | None:
    """A fetch's view once it ends; None if it failed (its error is raised again, in inbox
    order, when that delivery is checked)."""
    try:
        return future.result()
    except GsomiaError:
        return None


def _update_deliveries(c: Any, rows: list[tuple[str, dict[str, Any]]]) -> None:
    """Update deliveries by id (inside ``c``): one statement, run for many rows, per shape of row
    (a verified and a quarantined row set different columns)."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for delivery_id, row in rows:
        shapes.setdefault(tuple(sorted(row)), []).append(row | {"b_delivery_id": delivery_id})
    for params in shapes.values():
        c.execute(_UPDATE_DELIVERY, params)


_UPDATE_DELIVERY = update(deliveries).where(deliveries.c.delivery_id == bindparam("b_delivery_id"))
# built once: a live page runs them every few milliseconds
_KNOWN = select(deliveries.c.delivery_id).where(deliveries.c.delivery_id.in_(bindparam("ids", expanding=True)))
_STATES = select(deliveries.c.delivery_id, deliveries.c.state).where(
    deliveries.c.delivery_id.in_(bindparam("ids", expanding=True))
)


def _record_deliveries(c: Any, rows: list[tuple[str, dict[str, Any]]], fresh: dict[str, dict[str, Any]]) -> None:
    """Store decided rows by id (inside ``c``), and record the deliveries of ``fresh`` (inbox
    items by id, given no row yet) that are not decided here as pending. Those recorded
    before (a pass that failed) are updated; the others are inserted in inbox order, the
    decided ones before the pending ones as they come before them, so the local order ``n``
    stays the inbox's."""
    known: set[str] = set()
    if fresh:
        ids = list(fresh)
        known = set(c.execute(_KNOWN, {"ids": ids}).scalars())
    inserts: list[dict[str, Any]] = []
    updates: list[tuple[str, dict[str, Any]]] = []
    for delivery_id, row in rows:
        item = fresh.pop(delivery_id, None)
        if item is None or delivery_id in known:
            updates.append((delivery_id, row))
            continue
        inserts.append(_pending_row(item) | row)
        known.add(delivery_id)
    for delivery_id, item in fresh.items():
        if delivery_id not in known:
            inserts.append(_pending_row(item))
            known.add(delivery_id)
    if inserts:
        c.execute(insert(deliveries), inserts)
    _update_deliveries(c, updates)


def _by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Inbox items by delivery id, in inbox order (the first item of an id kept)."""
    found: dict[str, dict[str, Any]] = {}
    for item in items:
        found.setdefault(str(item.get("id", "")), item)
    return found


def _pending_row(item: dict[str, Any]) -> dict[str, Any]:
    marking = item.get("marking") or {}
    return {
        "delivery_id": str(item.get("id")),
        "seq": int(str(item.get("seq", "")) or 0),
        "report_id": str(item.get("report", "")),
        "originator": str(item.get("originator", "")),
        "topic": str(item.get("topic", "")),
        "level": recipient_level(marking),
        "purpose": str(item.get("purpose", "direct")),
        "via": item.get("via"),
        "marking": json.dumps(marking, ensure_ascii=False),
        "caveats": "{}",
        "exercise": bool(marking.get("exercise") or item.get("exercise")),
        "state": "pending",
        "created": "",
        "received_at": utc_text(str(item.get("created_at", ""))),
        "processed_at": iso_now(),
        "content_type": "",
        "verification": "{}",
        "search": "",
        "reason": None,
        "detail": None,
        "payload": None,
    }


def upsert_incident(c: Any, doc: dict[str, Any]) -> None:
    """Keep the exchange's incident document (inside ``c``), unless the node holds a later
    state of it: an incident's follow-ups only ever grow, and an exchange restored from an older
    copy of its database serves it with fewer."""
    held = c.execute(select(incidents.c.document).where(incidents.c.id == doc["id"])).scalar()
    if held is not None:
        before = json.loads(held).get("updates")
        now = doc.get("updates")
        if isinstance(before, list) and len(before) > (len(now) if isinstance(now, list) else 0):
            log.warning("incident %s: the exchange serves an older state of it; the node keeps its own", doc["id"])
            return
    values = {
        "delivery_id": str(doc.get("delivery", "")),
        "document": json.dumps(doc, ensure_ascii=False),
        "updated_at": iso_now(),
    }
    if c.execute(update(incidents).where(incidents.c.id == doc["id"]).values(**values)).rowcount == 0:
        c.execute(insert(incidents).values(id=doc["id"], **values))


def recipient_level(marking: dict[str, Any]) -> str:
    """The level in the recipient's own ladder, from a delivery marking."""
    return str(marking.get("recipient_level") or marking.get("level") or "")


def banner(marking: dict[str, Any]) -> str:
    """The banner: the party's level, then the originator and its level (Art. 4.2), and
    ``EXERCISE`` first for anything made under an exercise (design §10)."""
    text = str(marking.get("banner") or "")
    if not text:
        text = f"{recipient_level(marking)} ({marking.get('originator', '')} {marking.get('originator_level', '')})"
    if marking.get("exercise") and not text.startswith("EXERCISE "):
        text = "EXERCISE " + text
    return text


def _as_item(row: dict[str, Any]) -> dict[str, Any]:
    """The inbox item a stored delivery came as (what a check needs of it)."""
    return {
        "report": row["report_id"],
        "originator": row["originator"],
        "topic": row["topic"],
        "purpose": row["purpose"],
        "via": row["via"],
        "marking": json.loads(row["marking"]) if row["marking"] else {},
        "created_at": row["received_at"],
    }


def _seq(value: object) -> int:
    """An inbox sequence number (a cursor is one as text); 0 for none."""
    try:
        return int(str(value)) if value not in (None, "") else 0
    except ValueError:
        return 0


def _text(payload: bytes | None) -> str:
    if payload is None:
        return ""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return ""


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None
