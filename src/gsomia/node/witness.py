"""The node as a witness of the exchange's ledger (docs/design.md §6, docs/protocol.md §5).

The node keeps every checkpoint it has accepted. For each new checkpoint the exchange serves
it checks the signature with the ledger key pinned at init, fetches the RFC 9162 §2.1.4
consistency proof from the last checkpoint it accepted (one request: the exchange answers a
proof to its current size with the checkpoint of that size) and verifies it itself
(:func:`gsomia.ledger.merkle.verify_consistency`); only then is the checkpoint accepted and
cosigned (C2SP tlog-cosignature ``cosignature/v1``, with the node's own witness key) and the
cosignature posted to the exchange.

A checkpoint that does not extend the accepted one raises an **alarm**, kept in the store
until an administrator clears it: a *fork* (the same size with another root, or a
consistency proof that does not verify, nor does the one asked for again: the exchange shows a
tree it cannot prove extends the one it showed before) or a *rollback* (a smaller tree than one it already signed). Under
an alarm the node accepts and cosigns nothing more, and a delivery that would need a newer
checkpoint is quarantined (``checkpoint_inconsistent``).

A checkpoint that carries no valid signature from the pinned ledger key (the exchange's key
file replaced, or a note forged under its name) raises the *key* alarm, with the last accepted
checkpoint and the one served as its evidence: once, not at every round while it stands.
Signatures by other keys are ignored (C2SP signed-note), so a note the pinned key signed
alongside others is accepted; an exchange that cannot be reached, or an answer that is no
signed note at all (or one of a size beyond :data:`MAX_SIZE`), raises nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import Connection, func, insert, select, update

from gsomia import jsontext
from gsomia.client.http import ExchangeClient
from gsomia.codec import b64decode
from gsomia.crypto.ledger_key import Cosigner, LedgerKey
from gsomia.errors import ExchangeUnreachable, GsomiaError, InvalidInput, LedgerInvalid, UnknownEntity
from gsomia.ledger import merkle
from gsomia.ledger.checkpoint import Checkpoint, b64, parse_signed_note
from gsomia.ledger.entries import entry_bytes
from gsomia.node.store import NodeStore, alarms, checkpoints, iso_now

__all__ = ["KEY_ALARM", "MAX_SIZE", "Accepted", "LedgerWitness", "fetch_entry", "proof_hashes"]

log = logging.getLogger(__name__)

KEY_ALARM = "the exchange's checkpoint is not signed by the pinned ledger key"
"""How the detail of a *key* alarm begins."""

COSIGNED_TIME = "witness.cosigned_time"
"""The setting holding the timestamp of the last cosignature sent (POSIX seconds)."""

MAX_SIZE = 2**63 - 1
"""The largest tree size a checkpoint the node accepts may have: its store holds sizes as
signed 64-bit integers, and no ledger comes near it. A checkpoint claiming more (its format
allows up to 2**64 - 1) is a malformed answer, refused before anything is asked about it."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """A checkpoint the node accepted: its size, root and signed note."""

    size: int
    root: bytes
    note: str


def proof_hashes(doc: dict[str, Any], what: str) -> list[bytes]:
    """The base64 hashes of a proof document's ``proof`` member.

    Raises:
        LedgerInvalid: the member is missing or holds something other than 32-byte hashes.
    """
    raw = doc.get("proof") if isinstance(doc, dict) else None
    if not isinstance(raw, list):
        raise LedgerInvalid(f"{what}: the proof is missing")
    try:
        hashes = [b64decode(h, f"{what} proof") for h in raw]
    except InvalidInput as e:
        raise LedgerInvalid(f"{what}: {e}") from None
    if any(len(h) != merkle.HASH_SIZE for h in hashes):
        raise LedgerInvalid(f"{what}: a proof element is not a 32-byte hash")
    return hashes


class LedgerWitness:
    """Accepts checkpoints that extend the last one, cosigns them, and raises the alarm."""

    def __init__(
        self,
        store: NodeStore,
        *,
        key: LedgerKey,
        cosigner: Cosigner | None,
        publish: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.store = store
        self.key = key
        self.cosigner = cosigner
        self._publish = publish
        self._lock = threading.Lock()
        # accepted by the sync, to be stored in the transaction of the results it proves (see
        # :meth:`keep`): what was never stored was never relied on
        self._held: Accepted | None = None

    # --- reading -----------------------------------------------------------------------------------

    def latest(self) -> Accepted | None:
        """The largest checkpoint accepted (stored, or held to be stored with the results it
        proves)."""
        with self.store.read() as c:
            return self._newer(_latest(c))

    def _state(self) -> tuple[Accepted | None, bool]:
        """The largest checkpoint accepted, and whether an alarm stands (one read)."""
        with self.store.read() as c:
            standing = c.execute(_STANDING).first()
            return self._newer(_latest(c)), standing is not None

    def _newer(self, stored: Accepted | None) -> Accepted | None:
        held = self._held
        return held if held is not None and (stored is None or held.size > stored.size) else stored

    def accepted(self, size: int) -> Accepted | None:
        """The accepted checkpoint of exactly ``size``, if any."""
        held = self._held
        if held is not None and held.size == size:
            return held
        with self.store.read() as c:
            row = c.execute(select(checkpoints).where(checkpoints.c.size == size)).mappings().first()
        return None if row is None else Accepted(size, b64decode(row["root"], "root"), str(row["note"]))

    def alarm(self) -> dict[str, Any] | None:
        """The standing alarm, or None."""
        with self.store.read() as c:
            row = (
                c.execute(select(alarms).where(alarms.c.cleared_at.is_(None)).order_by(alarms.c.id.desc()).limit(1))
                .mappings()
                .first()
            )
        if row is None:
            return None
        return {k: row[k] for k in ("kind", "detail", "first", "second", "at")}

    def summary(self) -> dict[str, Any]:
        """``{size, root, checked_at, cosigned_size, cosigned_at, accepted}`` of the ledger as seen."""
        with self.store.read() as c:
            last = c.execute(select(checkpoints).order_by(checkpoints.c.size.desc()).limit(1)).mappings().first()
            cosigned = (
                c.execute(
                    select(checkpoints)
                    .where(checkpoints.c.cosigned_at.is_not(None))
                    .order_by(checkpoints.c.size.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
            count = c.execute(select(func.count()).select_from(checkpoints)).scalar_one()
        return {
            "size": last["size"] if last else None,
            "root": last["root"] if last else None,
            "checked_at": self.store.get("ledger.checked_at"),
            "cosigned_size": cosigned["size"] if cosigned else None,
            "cosigned_at": cosigned["cosigned_at"] if cosigned else None,
            "accepted": count,
        }

    # --- advancing ---------------------------------------------------------------------------------

    def advance(
        self,
        exchange: ExchangeClient,
        *,
        cosign: bool = True,
        ask: Callable[[int], dict[str, Any]] | None = None,
        hold: bool = False,
    ) -> Accepted | None:
        """Fetch the exchange's checkpoint and accept it if it extends the last accepted one.

        Returns the latest accepted checkpoint (unchanged under an alarm). ``cosign=False``
        accepts without cosigning (the sync, which needs a checkpoint for every new delivery,
        leaves cosigning to the witness's own pace). ``ask`` is how the consistency proof
        from the accepted size is asked for, with the checkpoint it leads to
        (``{"old", "new", "proof", "checkpoint"}``): by default
        ``GET /ledger/proof/consistency?old=``; the sync asks for it with the inclusion
        proofs it needs (docs/protocol.md §5.5). Its answer is taken on no word of the
        exchange: the checkpoint must verify with the pinned key and the proof against it.
        ``hold`` (with ``cosign=False``): a checkpoint accepted is not stored now but held, to
        be stored in the transaction of the results verified against it (:meth:`keep`); it
        is the latest accepted meanwhile, in this process.

        Raises:
            LedgerInvalid: the checkpoint carries no valid signature from the pinned key (the
                key alarm is raised first, unless an alarm stands: then the accepted checkpoint
                is returned), or a fork or rollback was found (the alarm is raised first), or
                the note is malformed or of another log.
            ExchangeUnreachable: the exchange could not be reached.
        """
        hold = hold and not cosign
        with self._lock:
            if not hold:
                self._store_held()  # what is cosigned or built on by others is stored first
            last, alarmed = self._state()
            if last is not None and not alarmed:
                quick = self._advance_by_proof(exchange, last, cosign=cosign, ask=ask, hold=hold)
                if quick is not None:
                    return quick
            note = exchange.ledger_checkpoint()
            cp = self._open(note)
            if cp is None:
                return self.latest()
            self.store.note("ledger.checked_at", iso_now())
            last = self.latest()
            if self.alarm() is not None:
                return last
            if last is None:
                return self._accept(exchange, cp.size, cp.root_hash, note, cosign=cosign, hold=hold)
            if cp.size == last.size:
                return self._unchanged(exchange, last, cp, note, cosign=cosign)
            if cp.size < last.size:
                self._rollback(last, cp, note)
            try:
                proof = exchange.ledger_consistency(last.size, cp.size)
            except (InvalidInput, UnknownEntity) as e:  # it cannot prove what it signed
                self._raise(
                    "fork", f"the exchange cannot prove size {cp.size} extends size {last.size} ({e})", last.note, note
                )
            return self._extended(exchange, last, cp, note, proof, cosign=cosign, hold=hold)

    def _advance_by_proof(
        self,
        exchange: ExchangeClient,
        last: Accepted,
        *,
        cosign: bool,
        ask: Callable[[int], dict[str, Any]] | None = None,
        hold: bool = False,
    ) -> Accepted | None:
        """One round trip instead of two: the consistency proof from ``last`` to the current
        size, which the exchange answers with the signed checkpoint of that size
        (docs/protocol.md §5.5). None when the answer cannot be used so (no checkpoint in it,
        a proof for another size, a refusal): :meth:`advance` then fetches the checkpoint
        first, and finds and names whatever is wrong.

        Raises:
            LedgerInvalid: the checkpoint is not signed by the pinned key (the key alarm is
                raised first), or the proof does not verify (a fork; the alarm is raised first).
            ExchangeUnreachable: the exchange could not be reached.
        """
        try:
            doc = (ask or exchange.ledger_consistency)(last.size)
        except (InvalidInput, UnknownEntity):
            return None  # e.g. a tree smaller than ``last``: the checkpoint says what happened
        note = doc.get("checkpoint") if isinstance(doc, dict) else None
        if not isinstance(note, str):
            return None
        cp = self._open(note)
        if cp is None:
            return last
        if type(doc.get("new")) is not int or doc["new"] != cp.size or doc.get("old") != last.size:
            return None
        self.store.note("ledger.checked_at", iso_now())
        if cp.size < last.size:
            self._rollback(last, cp, note)
        if cp.size == last.size:
            return self._unchanged(exchange, last, cp, note, cosign=cosign)
        return self._extended(exchange, last, cp, note, doc, cosign=cosign, hold=hold)

    def _open(self, note: str) -> Checkpoint | None:
        """The checkpoint ``note`` holds, verified with the pinned key; None when it carries no
        valid signature from that key while an alarm stands already (it is not raised again).

        Raises:
            LedgerInvalid: no valid signature from the pinned key (the key alarm is raised
                first); or the note is malformed, of another log, or of a size beyond
                :data:`MAX_SIZE` (no alarm: nothing says the exchange's key changed).
        """
        try:
            cp = self.key.open(note)
        except LedgerInvalid:
            why = _unsigned(self.key, note)
            if why is None:
                raise
        else:
            if cp.size > MAX_SIZE:
                raise LedgerInvalid(
                    f"the exchange's checkpoint is of size {cp.size}, more than a ledger holds "
                    f"(at most {MAX_SIZE}): a malformed answer"
                )
            return cp
        if self.alarm() is None:
            last = self.latest()
            self._raise("key", why, last.note if last is not None else "", note)
        log.debug("ledger: %s (the alarm stands already)", why)
        return None

    def _rollback(self, last: Accepted, cp: Checkpoint, note: str) -> None:
        """A signed checkpoint smaller than the accepted one: the rollback alarm.

        Raises:
            LedgerInvalid: always (the alarm is raised first).
        """
        kept = self.accepted(cp.size)
        shape = (
            "an older state of the same tree"
            if kept is not None and kept.root == cp.root_hash
            else "a tree this node never saw at that size"
        )
        self._raise(
            "rollback",
            f"the exchange serves size {cp.size} after it signed size {last.size} ({shape})",
            last.note,
            note,
        )

    def _unchanged(
        self, exchange: ExchangeClient, last: Accepted, cp: Checkpoint, note: str, *, cosign: bool
    ) -> Accepted:
        """A checkpoint of the accepted size: the same root (cosigned now if it was not yet),
        or a fork.

        Raises:
            LedgerInvalid: another root (the alarm is raised first).
        """
        if cp.root_hash != last.root:
            self._raise("fork", f"two checkpoints of size {cp.size} with different roots", last.note, note)
        if cosign and self._needs_cosignature(last.size):
            self._cosign(exchange, last)
        return last

    def _extended(
        self,
        exchange: ExchangeClient,
        last: Accepted,
        cp: Checkpoint,
        note: str,
        proof: dict[str, Any],
        *,
        cosign: bool,
        hold: bool = False,
    ) -> Accepted:
        """A larger checkpoint, accepted if ``proof`` shows that it extends ``last``.

        Raises:
            LedgerInvalid: the proof does not verify (a fork; the alarm is raised first).
        """
        try:
            merkle.verify_consistency(last.size, cp.size, last.root, cp.root_hash, proof_hashes(proof, "consistency"))
        except LedgerInvalid as first:
            # A proof is not signed: one garbled on the way proves nothing. Asked again, an
            # exchange whose tree extends the accepted one proves it; one that forked cannot.
            try:
                again = exchange.ledger_consistency(last.size, cp.size)
                merkle.verify_consistency(
                    last.size, cp.size, last.root, cp.root_hash, proof_hashes(again, "consistency")
                )
            except (LedgerInvalid, InvalidInput, UnknownEntity) as e:
                self._raise(
                    "fork",
                    f"size {cp.size} does not extend the accepted size {last.size}: {first}; asked again, the "
                    f"exchange could not prove it either ({e})",
                    last.note,
                    note,
                )
            log.warning("a consistency proof to size %d did not verify (%s); asked again, it did", cp.size, first)
        return self._accept(exchange, cp.size, cp.root_hash, note, cosign=cosign, hold=hold)

    def _accept(
        self, exchange: ExchangeClient, size: int, root: bytes, note: str, *, cosign: bool, hold: bool = False
    ) -> Accepted:
        accepted = Accepted(size, root, note)
        if hold:
            self._held = accepted
        else:
            with self.store.write() as c:
                _insert(c, accepted)
            self.kept(accepted)
        self._publish("status", {"ledger": {"size": size, "root": b64(root)}})
        if cosign:
            self._cosign(exchange, accepted)
        return accepted

    def keep(self, c: Connection) -> Accepted | None:
        """Store the checkpoint held (inside ``c``, the transaction of the results verified
        against it); which one, for :meth:`kept` once ``c`` commits."""
        held = self._held
        if held is not None:
            _insert(c, held)
        return held

    def _store_held(self) -> None:
        if self._held is not None:
            with self.store.write() as c:
                stored = self.keep(c)
            self.kept(stored)

    def kept(self, stored: Accepted | None) -> None:
        """``stored`` is stored now: a checkpoint held that it covers is no longer held."""
        held = self._held
        if stored is not None and held is not None and held.size <= stored.size:
            self._held = None

    def _needs_cosignature(self, size: int) -> bool:
        if self.cosigner is None:
            return False
        with self.store.read() as c:
            row = c.execute(select(checkpoints.c.cosigned_at).where(checkpoints.c.size == size)).first()
        return row is not None and row[0] is None

    def _cosign(self, exchange: ExchangeClient, cp: Accepted) -> None:
        """Cosign an accepted checkpoint and post it; a refusal is logged, never fatal."""
        if self.cosigner is None or self.store.get("witness.registered") is None:
            return
        body, _ = parse_signed_note(cp.note)
        before = self.store.get(COSIGNED_TIME)
        timestamp = _cosignature_time(before)
        # Stored before the line leaves: a cosignature the exchange may have kept (the answer
        # lost, the process killed) is never followed by an older one, whatever the clock does.
        self.store.put(COSIGNED_TIME, str(timestamp))
        line = self.cosigner.cosign(body, timestamp)
        try:
            exchange.cosign(cp.size, line)
        except ExchangeUnreachable:
            raise
        except GsomiaError as e:
            log.warning("the exchange refused the cosignature of size %d: %s", cp.size, e)
            # refused, so kept nowhere: a timestamp ahead of the exchange's clock (this node's
            # clock once ahead) does not hold back the next cosignatures
            with self.store.write() as c:
                self.store.put(COSIGNED_TIME, before or "0", c)
                self.store.put("witness.last_error", str(e), c)
            return
        with self.store.write() as c:
            c.execute(update(checkpoints).where(checkpoints.c.size == cp.size).values(cosigned_at=iso_now()))

    def _raise(self, kind: str, detail: str, first: str, second: str) -> NoReturn:
        """Store and publish the alarm, then raise it.

        Raises:
            LedgerInvalid: always.
        """
        alarm = {"kind": kind, "detail": detail, "first": first, "second": second, "at": iso_now()}
        self._held = None  # the next base is what the alarm's clearing decides
        with self.store.write() as c:
            c.execute(insert(alarms).values(**alarm))
        log.error("LEDGER ALARM (%s): %s", kind, detail)
        self._publish("alarm", alarm)
        raise LedgerInvalid(f"{kind}: {detail}")

    def clear_alarm(self, by: str) -> dict[str, Any] | None:
        """Clear the standing alarm (an administrator's decision, after investigation); after a
        fork or a rollback the next checkpoint the exchange serves becomes the new base, after
        a key alarm the accepted checkpoints stay the base (they were signed by the pinned key;
        the next one must extend them). Returns the cleared alarm."""
        current = self.alarm()
        if current is None:
            return None
        with self.store.write() as c:
            kinds = set(c.execute(select(alarms.c.kind).where(alarms.c.cleared_at.is_(None))).scalars())
            c.execute(update(alarms).where(alarms.c.cleared_at.is_(None)).values(cleared_at=iso_now(), cleared_by=by))
            if kinds != {"key"}:
                c.execute(checkpoints.delete())
        return current

    # --- inclusion ------------------------------------------------------------------------------------

    def check_inclusion(
        self,
        exchange: ExchangeClient,
        index: int,
        cp: Accepted,
        *,
        record: dict[str, Any] | None = None,
        proof: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Prove that entry ``index`` is leaf ``index`` of the accepted checkpoint ``cp``
        (RFC 9162 §2.1.3); the entry object, hashed exactly as served (docs/protocol.md §5.2).
        The entry record and the proof are fetched unless given (fetched ahead).

        Raises:
            LedgerInvalid: the entry's bytes do not hash to the leaf, or the proof fails.
            UnknownEntity: the exchange has no such entry for this party.
            ExchangeUnreachable: the exchange could not be reached.
        """
        if record is None:
            record = fetch_entry(exchange, index)
        if not isinstance(record, dict) or not isinstance(proof, dict | None):
            raise LedgerInvalid(f"entry {index}: the entry record or its proof is not a JSON object")
        body = _entry_body(record)
        leaf = merkle.leaf_hash(body)
        served = record.get("leaf_hash")
        if served is not None and served != b64(leaf):
            raise LedgerInvalid(f"entry {index}: its bytes do not hash to the leaf hash served")
        if proof is None:
            proof = exchange.ledger_inclusion(index, cp.size)
        if proof.get("size") not in (None, cp.size) or proof.get("index") not in (None, index):
            raise LedgerInvalid(f"the inclusion proof of {index} is for another index or size")
        merkle.verify_inclusion(leaf, index, cp.size, proof_hashes(proof, f"inclusion of {index}"), cp.root)
        try:
            entry = jsontext.parse(body, unique=True)
        except ValueError as e:
            raise LedgerInvalid(f"entry {index}: not JSON ({e})") from None
        if not isinstance(entry, dict):
            raise LedgerInvalid(f"entry {index}: not a JSON object")
        _require_canonical(index, entry, body)
        return entry


_LATEST = select(checkpoints).order_by(checkpoints.c.size.desc()).limit(1)
_STANDING = select(alarms.c.id).where(alarms.c.cleared_at.is_(None)).limit(1)


def _unsigned(key: LedgerKey, note: str) -> str | None:
    """Why ``note`` carries no valid signature from ``key`` (signed-note: every signature under
    its name and key ID must verify, and there must be one), or None if that is not why it was
    refused (it is malformed, or of another log). Names only key IDs: the names in a note are
    the exchange's words."""
    try:
        text, signatures = parse_signed_note(note)
    except LedgerInvalid:
        return None
    pinned = f"{key.name}, key ID {key.key_id.hex()}"
    ours = [s for s in signatures if s.name == key.name and s.key_id == key.key_id]
    if not ours:
        ids = ", ".join(dict.fromkeys(s.key_id.hex() for s in signatures))
        return f"{KEY_ALARM} ({pinned}): it is signed by key ID {ids} only"
    message = text.encode("utf-8")
    failed = sum(key.verify(message, s.signature) is not True for s in ours)
    if failed:
        return (
            f"{KEY_ALARM} ({pinned}): {failed} of its {len(ours)} signature(s) under that key's name and ID "
            "does not verify"
        )
    return None


def _cosignature_time(before: str | None) -> int:
    """The timestamp of the next cosignature: now, or the last one's if the clock went back
    (C2SP tlog-cosignature: a cosignature states the largest consistent tree the witness has
    seen as of its timestamp, so a later cosignature never bears an earlier time)."""
    now = int(time.time())
    try:
        return max(now, int(before or 0))
    except ValueError:
        return now


def _insert(c: Connection, cp: Accepted) -> None:
    """Store an accepted checkpoint (inside ``c``) unless it is stored already."""
    if c.execute(select(checkpoints.c.size).where(checkpoints.c.size == cp.size)).first() is None:
        c.execute(insert(checkpoints).values(size=cp.size, root=b64(cp.root), note=cp.note, accepted_at=iso_now()))


def _latest(c: Connection) -> Accepted | None:
    row = c.execute(_LATEST).mappings().first()
    if row is None:
        return None
    return Accepted(int(row["size"]), b64decode(row["root"], "root"), str(row["note"]))


def fetch_entry(exchange: ExchangeClient, index: int) -> dict[str, Any]:
    """An entry record as the exchange serves it (``GET /api/v1/ledger/entries/{index}``).

    Raises:
        UnknownEntity: no such entry for this party.
        ExchangeUnreachable: the exchange could not be reached.
    """
    return exchange.ledger_entry(index)


def _require_canonical(index: int, entry: dict[str, Any], body: bytes) -> None:
    """The leaf bytes are the entry's RFC 8785 form and nothing else (docs/protocol.md §5.1).
    Other bytes (whitespace, another spelling of a number or a string, a member name twice)
    could be read one way here and another way by an auditor's parser, though both hash them.

    Raises:
        LedgerInvalid: ``body`` is not ``JCS(entry)``.
    """
    try:
        canonical = entry_bytes(entry)
    except InvalidInput as e:
        raise LedgerInvalid(f"entry {index}: cannot be canonicalised ({e})") from None
    if canonical != body:
        raise LedgerInvalid(
            f"entry {index}: its leaf bytes are not the RFC 8785 canonical form of the entry they hold "
            "(docs/protocol.md §5.1): another reader could take them for another entry"
        )


def _entry_body(record: dict[str, Any]) -> bytes:
    """The exact leaf bytes of an entry record: ``body`` when served, else the RFC 8785 bytes
    of ``entry`` (docs/protocol.md §5.3)."""
    if isinstance(record.get("body"), str):
        try:
            return b64decode(record["body"], "entry body")
        except InvalidInput as e:
            raise LedgerInvalid(str(e)) from None
    entry = record.get("entry")
    if not isinstance(entry, dict):
        raise LedgerInvalid("entry record without an entry")
    return entry_bytes(entry)


def same(entry: dict[str, Any], expected: dict[str, Any], names: Sequence[str]) -> list[str]:
    """The members of ``names`` whose values differ between a ledger entry and what was served."""
    return [n for n in names if entry.get(n) != expected.get(n)]
