"""Verify a ledger the way an auditor does: trust only a public key and a checkpoint you kept.

From a stream of ``(index, entry bytes, recorded leaf hash)`` (read from the store, an export
file or a server), :func:`verify_ledger` re-derives every leaf hash (RFC 9162 §2.1.1,
``SHA-256(0x00 || RFC 8785 bytes)``), rebuilds the Merkle tree, checks the signed checkpoint
(C2SP tlog-checkpoint in a C2SP signed note) against the exchange's key, checks that an older
checkpoint the auditor kept is a prefix of it (RFC 9162 §2.1.4: no rollback, no fork) and
checks inclusion and consistency proofs (§2.1.3.2, §2.1.4.2). :func:`verify_proof` checks a
proof alone, offline, against signed checkpoints.

Both have the two faces of a policy check: they return a :class:`VerifyReport` that names
the first problem (:class:`~gsomia.ledger.proofs.Finding`) and never raise for a bad
ledger; :meth:`VerifyReport.enforce` raises :class:`~gsomia.errors.LedgerInvalid`.

The key comes from :mod:`gsomia.crypto.ledger_key`, proofs are checked by
:mod:`gsomia.ledger.proofs`, and export files are read by
:mod:`gsomia.ledger.export`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any, NoReturn

from gsomia.codec import b64decode_or_none
from gsomia.errors import InvalidInput, LedgerInvalid
from gsomia.ledger.checkpoint import Checkpoint, NoteVerifier, b64, open_with, parse_signed_note
from gsomia.ledger.cosignature import CosignerKey, cosigned_message, split_line
from gsomia.ledger.merkle import verify_consistency
from gsomia.ledger.proofs import Finding, Stop, check_proof, compare_proof, open_checkpoint
from gsomia.ledger.tree import MerkleTree

__all__ = ["Batch", "EntryProblem", "StoredNote", "VerifyReport", "verify_entries", "verify_ledger", "verify_proof"]

Batch = Sequence[tuple[int, bytes, bytes | None]]
"""``(index, entry bytes, recorded leaf hash or None)`` rows, in index order."""


class EntryProblem(LedgerInvalid):
    """An entry could not even be read from its source (undecodable line, bad base64...)."""

    def __init__(self, message: str, *, index: int | None) -> None:
        """Name the entry (when known) and what is wrong with it."""
        super().__init__(message)
        self.index = index


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredNote:
    """A signed checkpoint the source keeps and serves on its own authority: its latest
    checkpoint, or the checkpoint a witness cosigned with that witness's cosignature line.
    :func:`verify_ledger` checks each against the key and the re-derived tree.

    Attributes:
        size: The tree size it is kept under; None when the stored record is unreadable.
        note: The signed note as kept.
        witness: For a cosignature, the witness name it is kept under (None: the latest
            checkpoint).
        timestamp: For a cosignature, the timestamp it is kept with.
        line: For a cosignature, the witness's signature line.
    """

    size: int | None
    note: str
    witness: str | None = None
    timestamp: int | None = None
    line: str = ""

    def what(self, *, cosignature: bool = False) -> str:
        """How a finding names it: its checkpoint, or (``cosignature``) the witness's line."""
        if self.witness is None:
            return "the stored checkpoint" + ("" if self.size is None else f" of size {self.size}")
        at = "" if self.size is None else f" at size {self.size}"
        if cosignature:
            return f"cosignature of witness {self.witness}{at}"
        return f"the checkpoint witness {self.witness} cosigned{at}"


WitnessKeys = Callable[[str], Sequence[CosignerKey]]
"""Every key registered under a witness name (in the log itself), for its cosignatures."""


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    """What was verified, and the first problem found (``problem is None`` when all is well)."""

    source: str
    key: NoteVerifier | None
    key_pinned: bool
    entries: int = 0
    checkpoint: Checkpoint | None = None
    since: Checkpoint | None = None
    proofs: int = 0
    checks: tuple[str, ...] = ()
    problem: Finding | None = None

    @property
    def ok(self) -> bool:
        """True if nothing failed."""
        return self.problem is None

    def enforce(self) -> VerifyReport:
        """Return the report if it is clean.

        Returns:
            This report.

        Raises:
            LedgerInvalid: naming the first problem.
        """
        if self.problem is not None:
            raise LedgerInvalid(self.problem.message)
        return self

    def as_dict(self) -> dict[str, Any]:
        """JSON form (the contract of ``gsomia ledger verify --json``)."""
        cp = self.checkpoint
        return {
            "ok": self.ok,
            "source": self.source,
            "key": self.key.to_dict() if self.key else None,
            "key_pinned": self.key_pinned,
            "entries": self.entries,
            "checkpoint": {"origin": cp.origin, "size": cp.size, "root": b64(cp.root_hash)} if cp else None,
            "since": {"size": self.since.size, "root": b64(self.since.root_hash)} if self.since else None,
            "proofs": self.proofs,
            "checks": list(self.checks),
            "problem": self.problem.as_dict() if self.problem else None,
        }


# --- verification -------------------------------------------------------------------------------


def verify_ledger(
    batches: Iterable[Batch],
    *,
    key: NoteVerifier,
    checkpoint: str | bytes | None,
    source: str,
    key_pinned: bool = True,
    since: str | bytes | None = None,
    proofs: Sequence[Mapping[str, Any]] = (),
    served_consistency: Callable[[int, int], Sequence[bytes]] | None = None,
    progress: Callable[[int], None] | None = None,
    exact: bool = False,
    stored: Sequence[StoredNote] = (),
    witness_keys: WitnessKeys | None = None,
) -> VerifyReport:
    """Re-derive a ledger from its entries and check it against signed checkpoints.

    Checks, in order, stopping at the first failure: the checkpoint's signature; the kept
    checkpoint's signature and that it is not newer than the checkpoint (rollback); every
    entry's leaf hash and that indices run 0, 1, 2... with no gap; that the entries reach the
    checkpoint's size and hash to its root; that the kept checkpoint's root is the root of
    the first entries (fork); the source's own consistency proof, if any; each proof.

    Args:
        batches: The entries, in index order.
        key: The exchange's checkpoint key.
        checkpoint: The latest signed checkpoint to check the entries against; None checks
            the entries (and ``since``) alone.
        source: Where the entries come from, for messages (``store``, a file, a URL).
        key_pinned: False when the key came from the source itself (reported, not checked).
        since: An older signed checkpoint the auditor kept.
        proofs: Inclusion or consistency proof documents to check as well.
        served_consistency: Returns the source's consistency proof ``(old, new)``, to check
            that the source serves correct proofs.
        progress: Called with the number of entries checked so far.
        exact: The source holds the checkpoint's entries and no more (an export, entries read
            up to the checkpoint's size): an entry past it is a problem. Otherwise (a live
            store) entries appended after it are left out as not signed yet.
        stored: The checkpoints and cosignatures the source keeps (a store's): each must be
            signed by ``key`` (a cosignature also by its witness) and have the root of the
            re-derived tree at its size, or the store was altered.
        witness_keys: The keys registered under a witness name; called only after every
            entry was re-derived (so it may collect them from the entries as they stream).

    Returns:
        The report; its ``problem`` names the first failure.
    """
    state = _Progress(source=source, key=key, key_pinned=key_pinned)
    try:
        cp = None
        if checkpoint is not None:
            cp = open_checkpoint(key, checkpoint, "checkpoint", "the checkpoint")
            state.checkpoint = cp
            state.checks.append("checkpoint signature")
        old = _kept(key, since, cp) if since is not None else None
        state.since = old
        tree = _rederive(batches, source, state, progress)
        if cp is not None:
            _check_checkpoint(tree, cp, source, state, exact=exact)
        if old is not None:
            _check_fork(tree, old, cp, served_consistency, state)
        _check_stored(tree, key, stored, witness_keys, state)
        for doc in proofs:
            check_proof(doc, key=key, checkpoint=cp, since=old, tree=tree)
            state.proofs += 1
        if state.proofs:
            state.checks.append(f"{state.proofs} proof(s)")
    except Stop as stop:
        return state.report(stop.finding)
    return state.report(None)


def verify_proof(
    doc: Mapping[str, Any],
    *,
    key: NoteVerifier,
    checkpoint: str | bytes | None = None,
    since: str | bytes | None = None,
) -> VerifyReport:
    """Check one inclusion or consistency proof alone, offline, against signed checkpoints.

    An inclusion proof (``gsomia ledger proof --index N``) is checked against the checkpoint
    it carries or ``checkpoint`` (same size); a consistency proof (``--old M``) against
    ``since`` (size M) and the checkpoint it carries or ``checkpoint``.

    Args:
        doc: The proof document.
        key: The exchange's checkpoint key.
        checkpoint: A signed checkpoint of the proof's (new) size.
        since: For a consistency proof, the older signed checkpoint the auditor kept.

    Returns:
        The report; its ``problem`` names the failure.
    """
    state = _Progress(source="proof", key=key, key_pinned=True)
    try:
        cp = open_checkpoint(key, checkpoint, "checkpoint", "the checkpoint") if checkpoint is not None else None
        old = open_checkpoint(key, since, "kept-checkpoint", "your kept checkpoint") if since is not None else None
        state.checkpoint, state.since = cp, old
        check_proof(doc, key=key, checkpoint=cp, since=old, tree=None)
        state.proofs = 1
        state.checks.append("proof")
    except Stop as stop:
        return state.report(stop.finding)
    return state.report(None)


def verify_entries(
    batches: Iterable[Batch],
    *,
    key: NoteVerifier,
    checkpoint: str | bytes,
    source: str,
    inclusion: Callable[[int, int], Mapping[str, Any]],
    consistency: Callable[[int, int], Mapping[str, Any]],
    key_pinned: bool = True,
    since: str | bytes | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Check the entries a party may read, without the others: each entry's leaf hash, and its
    inclusion proof against the signed checkpoint; and the checkpoint's consistency with an
    older one the party kept (no rollback, no fork).

    A party sees only the ledger entries about it, so it cannot re-derive the whole tree as an
    auditor does (:func:`verify_ledger`); what it can prove is that every entry it was shown is
    in the one log the exchange signed, and that the log only grew.

    Args:
        batches: The readable entries, in index order (indices skip the others').
        key: The exchange's checkpoint key.
        checkpoint: The latest signed checkpoint.
        source: Where the entries come from, for messages.
        inclusion: ``inclusion(index, size)`` → the source's inclusion proof document.
        consistency: ``consistency(old, new)`` → the source's consistency proof document.
        key_pinned: False when the key came from the source itself.
        since: An older signed checkpoint the party kept.
        progress: Called with the number of entries checked so far.

    Returns:
        The report; its ``problem`` names the first failure.
    """
    state = _Progress(source=source, key=key, key_pinned=key_pinned)
    try:
        cp = open_checkpoint(key, checkpoint, "checkpoint", "the checkpoint")
        state.checkpoint = cp
        state.checks.append("checkpoint signature")
        old = _kept(key, since, cp) if since is not None else None
        state.since = old
        if old is not None and old.size < cp.size:
            check_proof(consistency(old.size, cp.size), key=key, checkpoint=cp, since=old, tree=None)
            state.checks.append(f"your kept checkpoint (size {old.size}) is a prefix of the checkpoint")
        checked = 0
        last = -1
        for batch in batches:
            for index, body, recorded in batch:
                _check_order(index, last, source)
                last = index
                if index >= cp.size:
                    continue  # newer than the checkpoint: checked against the next one
                proof = inclusion(index, cp.size)
                _check_proof_names(index, cp.size, proof, source)
                _check_included(index, body, recorded, proof, source)
                check_proof(proof, key=key, checkpoint=cp, since=old, tree=None)
                checked += 1
            state.entries = checked
            if progress is not None:
                progress(checked)
        state.proofs = checked
        state.checks.append(f"{checked} entries readable here are in the signed log")
    except EntryProblem as e:
        return state.report(Finding(kind="entry", index=e.index, message=str(e)))
    except LedgerInvalid as e:
        return state.report(Finding(kind="source", message=str(e)))
    except Stop as stop:
        return state.report(stop.finding)
    return state.report(None)


def _check_order(index: int, last: int, source: str) -> None:
    """Entries are served in index order, each once."""
    if index <= last:
        raise Stop(
            Finding(
                kind="entry",
                index=index,
                message=f"entry {index}: {source} serves it after entry {last} (a duplicate or out of order)",
            )
        )


def _check_proof_names(index: int, size: int, proof: Mapping[str, Any], source: str) -> None:
    """The inclusion proof served is the proof of this entry in the checkpoint's tree."""
    if proof.get("index") != index or proof.get("size") != size:
        raise Stop(
            Finding(
                kind="inclusion-proof",
                index=index,
                message=f"inclusion proof for entry {index}: {source} served the proof of entry "
                f"{proof.get('index')!r} in a tree of {proof.get('size')!r}, not of entry {index} in the "
                f"checkpoint's {size}",
            )
        )


def _check_included(index: int, body: bytes, recorded: bytes | None, proof: Mapping[str, Any], source: str) -> None:
    """The entry hashes to its recorded leaf hash, and the proof is a proof of that leaf."""
    leaf = sha256(b"\x00" + body).digest()
    if recorded is not None and recorded != leaf:
        raise Stop(
            Finding(
                kind="entry",
                index=index,
                message=f"entry {index}: its bytes do not hash to its recorded leaf hash in {source}",
            )
        )
    if b64decode_or_none(proof.get("leaf_hash")) != leaf:
        raise Stop(
            Finding(
                kind="inclusion-proof",
                index=index,
                message=f"inclusion proof for entry {index}: not a proof of the entry {source} served",
            )
        )


@dataclass(slots=True, kw_only=True)
class _Progress:
    source: str
    key: NoteVerifier
    key_pinned: bool
    entries: int = 0
    checkpoint: Checkpoint | None = None
    since: Checkpoint | None = None
    proofs: int = 0
    checks: list[str] = field(default_factory=list)

    def report(self, problem: Finding | None) -> VerifyReport:
        return VerifyReport(
            source=self.source,
            key=self.key,
            key_pinned=self.key_pinned,
            entries=self.entries,
            checkpoint=self.checkpoint,
            since=self.since,
            proofs=self.proofs,
            checks=tuple(self.checks),
            problem=problem,
        )


def _kept(key: NoteVerifier, since: str | bytes, cp: Checkpoint | None) -> Checkpoint:
    old = open_checkpoint(key, since, "kept-checkpoint", "your kept checkpoint")
    if cp is None:
        return old
    if old.origin != cp.origin:
        raise Stop(
            Finding(
                kind="fork",
                message=f"your kept checkpoint is for {old.origin!r} but the ledger presented is {cp.origin!r}",
            )
        )
    if old.size > cp.size:
        raise Stop(
            Finding(
                kind="rollback",
                message=f"rollback: the ledger presented has {cp.size} entries but your kept checkpoint has {old.size}; "
                "entries the exchange signed for are gone",
            )
        )
    if old.size == cp.size and old.root_hash != cp.root_hash:
        raise Stop(
            Finding(
                kind="fork",
                message=f"fork: two checkpoints of size {cp.size} signed by the same key have different roots",
            )
        )
    return old


def _rederive(
    batches: Iterable[Batch], source: str, state: _Progress, progress: Callable[[int], None] | None
) -> MerkleTree:
    """Hash every entry into its leaf, check it against the recorded one and rebuild the tree."""
    leaves: list[bytes] = []
    add = leaves.append
    h = sha256
    expected = 0
    try:
        for batch in batches:
            for index, body, recorded in batch:
                if index != expected:
                    state.entries = expected
                    if index > expected:
                        raise Stop(
                            Finding(
                                kind="missing-entry",
                                index=expected,
                                message=f"entry {expected} is missing from {source} (the next entry is {index})",
                            )
                        )
                    raise Stop(
                        Finding(
                            kind="entry",
                            index=expected,
                            message=f"entry {expected}: {source} gives it index {index} (a duplicate or out of order)",
                        )
                    )
                # RFC 9162 §2.1.1: the leaf hash is SHA-256(0x00 || entry bytes).
                leaf = h(b"\x00" + body).digest()
                if recorded is not None and recorded != leaf:
                    state.entries = expected
                    raise Stop(
                        Finding(
                            kind="entry",
                            index=index,
                            message=f"entry {index}: its bytes do not hash to its recorded leaf hash "
                            f"in {source} (the entry or its leaf hash was altered)",
                        )
                    )
                add(leaf)
                expected += 1
            state.entries = expected
            if progress is not None:
                progress(expected)
    except EntryProblem as e:
        state.entries = expected
        raise Stop(Finding(kind="entry", index=e.index, message=str(e))) from None
    except LedgerInvalid as e:
        state.entries = expected
        raise Stop(Finding(kind="source", message=str(e))) from None
    state.checks.append(f"{expected} entries re-derived")
    return MerkleTree.from_leaf_hashes(leaves)


def _check_checkpoint(tree: MerkleTree, cp: Checkpoint, source: str, state: _Progress, *, exact: bool) -> None:
    n = tree.size
    if n > cp.size and exact:
        raise Stop(
            Finding(
                kind="entry",
                index=cp.size,
                message=f"{source} holds {n} entries but the checkpoint commits to {cp.size}: entries "
                f"{cp.size}..{n - 1} are covered by no signature",
            )
        )
    if n < cp.size:
        raise Stop(
            Finding(
                kind="missing-entry",
                index=n,
                message=f"{source} holds {n} entries but the checkpoint commits to {cp.size}: "
                f"entries {n}..{cp.size - 1} are missing (truncated or rolled back)",
            )
        )
    if tree.root(cp.size) != cp.root_hash:
        raise Stop(
            Finding(
                kind="checkpoint",
                message=f"checkpoint (size {cp.size}): its root hash is not the root of entries "
                f"0..{cp.size - 1}; the ledger is not the one the exchange signed",
            )
        )
    state.checks.append(f"entries 0..{cp.size - 1} hash to the checkpoint's root")
    if n > cp.size:  # appended while the store was read: the next checkpoint covers them
        state.entries = cp.size
        state.checks.append(f"{n - cp.size} entries after it not signed yet, so not counted")


def _check_fork(
    tree: MerkleTree,
    old: Checkpoint,
    cp: Checkpoint | None,
    served: Callable[[int, int], Sequence[bytes]] | None,
    state: _Progress,
) -> None:
    if old.size > tree.size:
        raise Stop(
            Finding(
                kind="rollback",
                index=tree.size,
                message=f"rollback: {state.source} holds {tree.size} entries but your kept checkpoint has "
                f"{old.size}; entries the exchange signed for are gone",
            )
        )
    # With every entry in hand, "is the old tree a prefix of the new one" is answered by the
    # old tree's root itself (RFC 9162 §2.1.4 proves exactly this to clients without them).
    if tree.root(old.size) != old.root_hash:
        raise Stop(
            Finding(
                kind="fork",
                message=f"fork: your kept checkpoint (size {old.size}) is not the root of entries 0..{old.size - 1} "
                "of this ledger; its history was rewritten",
            )
        )
    state.checks.append(f"consistent with your kept checkpoint (size {old.size})")
    if served is None or cp is None:
        return
    try:
        proof = list(served(old.size, cp.size))
    except LedgerInvalid as e:
        raise Stop(Finding(kind="consistency-proof", message=f"consistency proof from {state.source}: {e}")) from None
    expected = tree.consistency_proof(old.size, cp.size)
    compare_proof("consistency proof", proof, expected, None)
    try:
        verify_consistency(old.size, cp.size, old.root_hash, cp.root_hash, proof)
    except LedgerInvalid as e:  # pragma: no cover - equal to the tree's own proof, which verifies
        raise Stop(Finding(kind="consistency-proof", message=f"consistency proof: {e}")) from None
    state.checks.append(f"{state.source} serves a correct consistency proof {old.size} -> {cp.size}")


def _check_stored(
    tree: MerkleTree,
    key: NoteVerifier,
    stored: Sequence[StoredNote],
    witness_keys: WitnessKeys | None,
    state: _Progress,
) -> None:
    """Every checkpoint and cosignature the source keeps is signed and has the tree's root."""
    if not stored:
        return
    opened: dict[tuple[int, str], str] = {}  # (size, note) -> body: a note cosigned by many is checked once
    cosignatures = 0
    for item in stored:
        if item.size is None:
            _altered_store(item, "is unreadable")
        body = opened.get((item.size, item.note))
        if body is None:
            body = _stored_body(tree, key, item, item.size)
            opened[(item.size, item.note)] = body
        if item.witness is not None:
            _check_cosignature(item, body, witness_keys(item.witness) if witness_keys is not None else ())
            cosignatures += 1
    if any(item.witness is None for item in stored):
        state.checks.append("the checkpoint the store keeps is signed and has the tree's root")
    if cosignatures:
        state.checks.append(f"{cosignatures} witness cosignature(s) the store keeps verify over the tree's roots")


def _stored_body(tree: MerkleTree, key: NoteVerifier, item: StoredNote, size: int) -> str:
    """The body of a kept note signed by ``key`` for the tree's root at ``size``."""
    try:
        cp = open_with(key, item.note)
    except (LedgerInvalid, InvalidInput) as e:
        _altered_store(item, f"does not verify with key {key.name} ({key.key_id.hex()}): {e}")
    if cp.size != size or size > tree.size or tree.root(size) != cp.root_hash:
        _altered_store(item, "does not match the tree")
    return parse_signed_note(item.note)[0]


def _check_cosignature(item: StoredNote, body: str, keys: Sequence[CosignerKey]) -> None:
    """The witness's line is its own, of the time kept, and verifies over ``body`` with a key
    registered under its name."""
    try:
        cosig = split_line(item.line)
    except LedgerInvalid:
        _altered_store(item, "is not a cosignature line", cosignature=True)
    if cosig.name != item.witness or cosig.timestamp != item.timestamp:
        _altered_store(item, "is not a line of that witness at that time", cosignature=True)
    message = cosigned_message(body, cosig.timestamp)
    if not any(k.key_id == cosig.key_id and k.verify(message, cosig.signature) for k in keys):
        why = "with a key registered for it in the ledger" if keys else "(no such witness is registered in the ledger)"
        _altered_store(item, f"does not verify {why}", cosignature=True)


def _altered_store(item: StoredNote, what: str, *, cosignature: bool = False) -> NoReturn:
    kind = "stored-checkpoint" if item.witness is None else "stored-cosignature"
    raise Stop(Finding(kind=kind, message=f"{item.what(cosignature=cosignature)} {what}: the store was altered"))
