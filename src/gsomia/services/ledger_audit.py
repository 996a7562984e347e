"""Verify a ledger the way an auditor does: trust only a public key and a checkpoint you kept.

From a stream of ``(index, entry bytes, recorded leaf hash)`` (read from the store, an export
file or a server), :func:`verify_ledger` re-derives every leaf hash (RFC 9162 §2.1.1,
``SHA-256(0x00 || RFC 8785 bytes)``), rebuilds the Merkle tree, checks the signed checkpoint
(C2SP tlog-checkpoint in a C2SP signed note) against the exchange's key, checks that an older
checkpoint the auditor kept is a prefix of it (RFC 9162 §2.1.4: no rollback, no fork) and
checks inclusion and consistency proofs (§2.1.3.2, §2.1.4.2). :func:`verify_proof` checks a
proof alone, offline, against signed checkpoints.

Both have the two faces of a policy check: they return a :class:`VerifyReport` that names
the first problem (:class:`Finding`) and never raise for a bad ledger;
:meth:`VerifyReport.enforce` raises :class:`~gsomia.errors.LedgerInvalid`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import IO, Any

from gsomia.crypto.signing import verify_exchange_signature
from gsomia.errors import InvalidInput, LedgerInvalid
from gsomia.ledger.checkpoint import ED25519_SIGNATURE_TYPE, Checkpoint, ed25519_key_id, open_note
from gsomia.ledger.entries import entry_leaf_hash
from gsomia.ledger.merkle import HASH_SIZE, MerkleTree, verify_consistency, verify_inclusion

__all__ = [
    "EXPORT_FORMAT",
    "EntryProblem",
    "ExportReader",
    "Finding",
    "LedgerKey",
    "VerifyReport",
    "b64",
    "verify_ledger",
    "verify_proof",
]

EXPORT_FORMAT = "gsomia-ledger-export/v1"
"""First line of an export: a JSON header; then one JSON line per entry, in index order."""

Batch = Sequence[tuple[int, bytes, bytes | None]]
"""``(index, entry bytes, recorded leaf hash or None)`` rows, in index order."""


def b64(data: bytes) -> str:
    """Standard base64 (RFC 4648 §4), as checkpoints and proofs carry hashes."""
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    # One spelling per value (RFC 4648 §3.5 canonical encoding): an edited proof text that
    # still decodes to the same bytes is refused too.
    return raw if base64.b64encode(raw).decode("ascii") == value else None


class EntryProblem(LedgerInvalid):
    """An entry could not even be read from its source (undecodable line, bad base64...)."""

    def __init__(self, message: str, *, index: int | None) -> None:
        """Name the entry (when known) and what is wrong with it."""
        super().__init__(message)
        self.index = index


# --- the exchange's public key ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerKey:
    """The exchange's checkpoint verification key: a signed-note key name and an Ed25519 key.

    Attributes:
        name: The signed-note key name; tlog-checkpoint §Signatures says it SHOULD be the
            log's origin, and gsomia always makes it so.
        public_key: The 32-byte RFC 8032 public key.
    """

    name: str
    public_key: bytes
    key_id: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise InvalidInput("a ledger public key is 32 bytes (Ed25519)")
        # ed25519_key_id checks the name (signed-note §Format) and derives the 4-byte key ID.
        object.__setattr__(self, "key_id", ed25519_key_id(self.name, self.public_key))

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True only if ``signature`` is this key's Ed25519 signature of ``message``."""
        return verify_exchange_signature(self.public_key, message, signature)

    def open(self, note: str | bytes) -> Checkpoint:
        """Verify a signed checkpoint with this key and return it.

        Raises:
            LedgerInvalid: the note is malformed or not validly signed by this key.
        """
        return open_note(note, self.name, self.key_id, self.verify)

    def vkey(self) -> str:
        """The Go ``note`` verifier key: ``<name>+<key ID hex>+<base64(0x01 || key)>``."""
        return f"{self.name}+{self.key_id.hex()}+{b64(bytes([ED25519_SIGNATURE_TYPE]) + self.public_key)}"

    def to_dict(self) -> dict[str, str]:
        """The key as ``GET /api/v1/ledger/key`` and ``gsomia ledger key --json`` publish it."""
        return {
            "name": self.name,
            "key_id": self.key_id.hex(),
            "public_key": b64(self.public_key),
            "algorithm": "ed25519",
            "vkey": self.vkey(),
        }

    @classmethod
    def parse(cls, text: str, *, name: str | None = None) -> LedgerKey:
        """Read a key as published: the JSON of :meth:`to_dict`, a vkey line, or bare base64.

        Args:
            text: The key text (surrounding whitespace is ignored).
            name: The key name for bare base64 (the log's origin); ignored otherwise.

        Returns:
            The key.

        Raises:
            InvalidInput: the text is none of those forms, or a key ID does not match.
        """
        text = text.strip()
        if text.startswith("{"):
            try:
                doc = json.loads(text)
            except ValueError as e:
                raise InvalidInput("ledger key: not valid JSON") from e
            if not isinstance(doc, dict):
                raise InvalidInput("ledger key: expected a JSON object with name and public_key")
            raw = _unb64(doc.get("public_key"))
            key_name = doc.get("name")
            if raw is None or not isinstance(key_name, str):
                raise InvalidInput("ledger key: expected a JSON object with name and base64 public_key")
            if doc.get("algorithm", "ed25519") != "ed25519":
                raise InvalidInput(f"ledger key: unsupported algorithm {doc.get('algorithm')!r}; expected ed25519")
            key = cls(name=key_name, public_key=raw)
            claimed = doc.get("key_id")
            if claimed is not None and claimed != key.key_id.hex():
                raise InvalidInput("ledger key: key_id does not match the name and public key")
            return key
        bare = _unb64(text)
        if "+" in text and (bare is None or len(bare) != 32):  # base64 has "+" too: a bare key wins
            parts = text.split("+", 2)  # the base64 key may itself contain "+"
            raw = _unb64(parts[2]) if len(parts) == 3 else None
            if raw is None or len(raw) != 33 or raw[0] != ED25519_SIGNATURE_TYPE:
                raise InvalidInput("ledger key: a vkey is NAME+KEYID+base64(0x01 || 32-byte Ed25519 key)")
            key = cls(name=parts[0], public_key=raw[1:])
            if parts[1] != key.key_id.hex():
                raise InvalidInput("ledger key: the vkey's key ID does not match its name and key")
            return key
        raw = bare
        if raw is None or len(raw) != 32:
            raise InvalidInput(
                "ledger key: give the JSON from 'gsomia ledger key --json', a vkey, or base64 of 32 bytes"
            )
        if name is None:
            raise InvalidInput("ledger key: a bare base64 key needs the log's origin as its name")
        return cls(name=name, public_key=raw)


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """The first thing that failed verification.

    Attributes:
        kind: What failed: ``entry`` (an entry does not hash to its recorded leaf hash, or
            cannot be read), ``missing-entry``, ``checkpoint``, ``kept-checkpoint``,
            ``rollback``, ``fork``, ``inclusion-proof``, ``consistency-proof``, ``source``.
        message: One line saying what is wrong and what it means.
        index: The ledger entry concerned, if any.
        element: The zero-based position of the bad proof hash, if known.
    """

    kind: str
    message: str
    index: int | None = None
    element: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form (the ``problem`` member of ``gsomia ledger verify --json``)."""
        return {"kind": self.kind, "message": self.message, "index": self.index, "element": self.element}


class _Stop(Exception):
    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    """What was verified, and the first problem found (``problem is None`` when all is well)."""

    source: str
    key: LedgerKey | None
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


# --- full verification -------------------------------------------------------------------------


def verify_ledger(
    batches: Iterable[Batch],
    *,
    key: LedgerKey,
    checkpoint: str | bytes | None,
    source: str,
    key_pinned: bool = True,
    since: str | bytes | None = None,
    proofs: Sequence[Mapping[str, Any]] = (),
    served_consistency: Callable[[int, int], Sequence[bytes]] | None = None,
    progress: Callable[[int], None] | None = None,
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

    Returns:
        The report; its ``problem`` names the first failure.
    """
    state = _Progress(source=source, key=key, key_pinned=key_pinned)
    try:
        cp = None
        if checkpoint is not None:
            cp = _open(key, checkpoint, "checkpoint", "the checkpoint")
            state.checkpoint = cp
            state.checks.append("checkpoint signature")
        old = _kept(key, since, cp) if since is not None else None
        state.since = old
        tree = _rederive(batches, source, state, progress)
        if cp is not None:
            _check_checkpoint(tree, cp, source, state)
        if old is not None:
            _check_fork(tree, old, cp, served_consistency, state)
        for doc in proofs:
            _check_proof(doc, key=key, checkpoint=cp, since=old, tree=tree)
            state.proofs += 1
        if state.proofs:
            state.checks.append(f"{state.proofs} proof(s)")
    except _Stop as stop:
        return state.report(stop.finding)
    return state.report(None)


def verify_proof(
    doc: Mapping[str, Any],
    *,
    key: LedgerKey,
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
        cp = _open(key, checkpoint, "checkpoint", "the checkpoint") if checkpoint is not None else None
        old = _open(key, since, "kept-checkpoint", "your kept checkpoint") if since is not None else None
        state.checkpoint, state.since = cp, old
        _check_proof(doc, key=key, checkpoint=cp, since=old, tree=None)
        state.proofs = 1
        state.checks.append("proof")
    except _Stop as stop:
        return state.report(stop.finding)
    return state.report(None)


@dataclass(slots=True, kw_only=True)
class _Progress:
    source: str
    key: LedgerKey
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


def _open(key: LedgerKey, note: str | bytes, kind: str, what: str) -> Checkpoint:
    try:
        return key.open(note)
    except (LedgerInvalid, InvalidInput) as e:
        raise _Stop(
            Finding(kind=kind, message=f"{what} does not verify with key {key.name} ({key.key_id.hex()}): {e}")
        ) from None


def _kept(key: LedgerKey, since: str | bytes, cp: Checkpoint | None) -> Checkpoint:
    old = _open(key, since, "kept-checkpoint", "your kept checkpoint")
    if cp is None:
        return old
    if old.origin != cp.origin:
        raise _Stop(
            Finding(
                kind="fork",
                message=f"your kept checkpoint is for {old.origin!r} but the ledger presented is {cp.origin!r}",
            )
        )
    if old.size > cp.size:
        raise _Stop(
            Finding(
                kind="rollback",
                message=f"rollback: the ledger presented has {cp.size} entries but your kept checkpoint has {old.size}; "
                "entries the exchange signed for are gone",
            )
        )
    if old.size == cp.size and old.root_hash != cp.root_hash:
        raise _Stop(
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
                        raise _Stop(
                            Finding(
                                kind="missing-entry",
                                index=expected,
                                message=f"entry {expected} is missing from {source} (the next entry is {index})",
                            )
                        )
                    raise _Stop(
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
                    raise _Stop(
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
        raise _Stop(Finding(kind="entry", index=e.index, message=str(e))) from None
    except LedgerInvalid as e:
        state.entries = expected
        raise _Stop(Finding(kind="source", message=str(e))) from None
    state.checks.append(f"{expected} entries re-derived")
    return MerkleTree.from_leaf_hashes(leaves)


def _check_checkpoint(tree: MerkleTree, cp: Checkpoint, source: str, state: _Progress) -> None:
    n = tree.size
    if n < cp.size:
        raise _Stop(
            Finding(
                kind="missing-entry",
                index=n,
                message=f"{source} holds {n} entries but the checkpoint commits to {cp.size}: "
                f"entries {n}..{cp.size - 1} are missing (truncated or rolled back)",
            )
        )
    if tree.root(cp.size) != cp.root_hash:
        raise _Stop(
            Finding(
                kind="checkpoint",
                message=f"checkpoint (size {cp.size}): its root hash is not the root of entries "
                f"0..{cp.size - 1}; the ledger is not the one the exchange signed",
            )
        )
    state.checks.append(f"entries 0..{cp.size - 1} hash to the checkpoint's root")


def _check_fork(
    tree: MerkleTree,
    old: Checkpoint,
    cp: Checkpoint | None,
    served: Callable[[int, int], Sequence[bytes]] | None,
    state: _Progress,
) -> None:
    if old.size > tree.size:
        raise _Stop(
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
        raise _Stop(
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
        raise _Stop(Finding(kind="consistency-proof", message=f"consistency proof from {state.source}: {e}")) from None
    expected = tree.consistency_proof(old.size, cp.size)
    _compare("consistency proof", proof, expected, None)
    try:
        verify_consistency(old.size, cp.size, old.root_hash, cp.root_hash, proof)
    except LedgerInvalid as e:  # pragma: no cover - equal to the tree's own proof, which verifies
        raise _Stop(Finding(kind="consistency-proof", message=f"consistency proof: {e}")) from None
    state.checks.append(f"{state.source} serves a correct consistency proof {old.size} -> {cp.size}")


def _compare(what: str, got: Sequence[bytes], expected: Sequence[bytes], index: int | None) -> None:
    kind = what.replace(" ", "-")
    for k, (a, b) in enumerate(zip(got, expected, strict=False)):
        if a != b:
            raise _Stop(
                Finding(
                    kind=kind,
                    index=index,
                    element=k,
                    message=f"{what}{'' if index is None else f' for entry {index}'}: element {k} (of {len(got)}) "
                    "is wrong: it is not the tree's node hash",
                )
            )
    if len(got) != len(expected):
        raise _Stop(
            Finding(
                kind=kind,
                index=index,
                message=f"{what} has {len(got)} hashes; the tree's has {len(expected)}",
            )
        )


# --- proofs ------------------------------------------------------------------------------------


def _hashes(doc: Mapping[str, Any], what: str, index: int | None) -> list[bytes]:
    kind = what.replace(" ", "-")
    raw = doc.get("proof")
    if not isinstance(raw, list):
        raise _Stop(Finding(kind=kind, index=index, message=f"{what}: 'proof' must be a list of base64 hashes"))
    out: list[bytes] = []
    for k, item in enumerate(raw):
        value = _unb64(item)
        if value is None or len(value) != HASH_SIZE:
            raise _Stop(
                Finding(
                    kind=kind,
                    index=index,
                    element=k,
                    message=f"{what} element {k} (of {len(raw)}) is not base64 of a 32-byte hash",
                )
            )
        out.append(value)
    return out


def _int(doc: Mapping[str, Any], member: str, what: str) -> int:
    value = doc.get(member)
    if type(value) is not int or value < 0:
        raise _Stop(Finding(kind=what.replace(" ", "-"), message=f"{what}: '{member}' must be a non-negative integer"))
    return value


def _signed_root(
    doc: Mapping[str, Any], size: int, key: LedgerKey, checkpoint: Checkpoint | None, tree: MerkleTree | None, what: str
) -> bytes:
    """The root of the tree at ``size`` that a signature (or the re-derived tree) vouches for."""
    kind = what.replace(" ", "-")
    note = doc.get("checkpoint")
    if isinstance(note, str):
        carried = _open(key, note, kind, f"the checkpoint in the {what}")
        if carried.size != size:
            raise _Stop(
                Finding(
                    kind=kind, message=f"{what}: it is for size {size} but carries a checkpoint of size {carried.size}"
                )
            )
        if checkpoint is not None and carried.origin != checkpoint.origin:
            raise _Stop(Finding(kind=kind, message=f"{what}: its checkpoint is for another log ({carried.origin!r})"))
        return carried.root_hash
    if checkpoint is not None and checkpoint.size == size:
        return checkpoint.root_hash
    if tree is not None and size <= tree.size:
        return tree.root(size)
    raise _Stop(
        Finding(
            kind=kind,
            message=f"{what} (size {size}): no signed checkpoint of that size to check it against; "
            f"pass --checkpoint with a checkpoint of size {size}",
        )
    )


def _check_proof(
    doc: Mapping[str, Any],
    *,
    key: LedgerKey,
    checkpoint: Checkpoint | None,
    since: Checkpoint | None,
    tree: MerkleTree | None,
) -> None:
    if not isinstance(doc, Mapping):
        raise _Stop(Finding(kind="source", message="a proof must be a JSON object"))
    if "index" in doc:
        _check_inclusion(doc, key=key, checkpoint=checkpoint, tree=tree)
    elif "old" in doc:
        _check_consistency(doc, key=key, checkpoint=checkpoint, since=since, tree=tree)
    else:
        raise _Stop(
            Finding(kind="source", message="not a ledger proof: expected 'index' (inclusion) or 'old' (consistency)")
        )


def _check_inclusion(
    doc: Mapping[str, Any], *, key: LedgerKey, checkpoint: Checkpoint | None, tree: MerkleTree | None
) -> None:
    what = "inclusion proof"
    index = _int(doc, "index", what)
    size = _int(doc, "size", what)
    leaf = _unb64(doc.get("leaf_hash"))
    if leaf is None or len(leaf) != HASH_SIZE:
        raise _Stop(
            Finding(kind="inclusion-proof", index=index, message=f"{what}: 'leaf_hash' is not base64 of 32 bytes")
        )
    path = _hashes(doc, what, index)
    if "entry" in doc:
        try:
            derived = entry_leaf_hash(doc["entry"])
        except InvalidInput as e:
            raise _Stop(Finding(kind="inclusion-proof", index=index, message=f"{what}: its entry: {e}")) from None
        if derived != leaf:
            raise _Stop(
                Finding(
                    kind="inclusion-proof",
                    index=index,
                    message=f"{what} for entry {index}: the entry it carries does not hash to its leaf hash",
                )
            )
    root = _signed_root(doc, size, key, checkpoint, tree, what)
    claimed_root = _unb64(doc.get("root")) if "root" in doc else root
    if claimed_root != root:
        raise _Stop(
            Finding(
                kind="inclusion-proof", index=index, message=f"{what}: its root is not the signed root at size {size}"
            )
        )
    if tree is not None and index < tree.size and size <= tree.size:
        if tree.leaf_hash(index) != leaf:
            raise _Stop(
                Finding(
                    kind="inclusion-proof",
                    index=index,
                    message=f"{what}: its leaf hash is not the ledger's leaf hash of entry {index}",
                )
            )
        if index < size:
            _compare(what, path, tree.inclusion_proof(index, size), index)
    try:
        verify_inclusion(leaf, index, size, path, root)
    except LedgerInvalid as e:
        raise _Stop(
            Finding(
                kind="inclusion-proof",
                index=index,
                message=f"{what} for entry {index} does not verify against the signed root at size {size}: {e}",
            )
        ) from None


def _check_consistency(
    doc: Mapping[str, Any],
    *,
    key: LedgerKey,
    checkpoint: Checkpoint | None,
    since: Checkpoint | None,
    tree: MerkleTree | None,
) -> None:
    what = "consistency proof"
    old = _int(doc, "old", what)
    new = _int(doc, "new", what)
    path = _hashes(doc, what, None)
    new_root = _signed_root(doc, new, key, checkpoint, tree, what)
    if since is not None and since.size == old:
        old_root = since.root_hash
    elif tree is not None and old <= tree.size:
        old_root = tree.root(old)
    else:
        raise _Stop(
            Finding(
                kind="consistency-proof",
                message=f"{what} from size {old}: pass --since with your kept checkpoint of size {old}",
            )
        )
    if tree is not None and new <= tree.size and old <= new:
        _compare(what, path, tree.consistency_proof(old, new), None)
    try:
        verify_consistency(old, new, old_root, new_root, path)
    except LedgerInvalid as e:
        raise _Stop(
            Finding(
                kind="consistency-proof",
                message=f"{what} {old} -> {new} does not verify against the signed roots: {e}",
            )
        ) from None


# --- export files --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportHeader:
    """The first line of an export."""

    origin: str
    size: int
    key: LedgerKey
    checkpoint: str


class ExportReader:
    """Reads an export written by ``gsomia ledger export``: a header line, then entries.

    Each entry line is ``{"index": N, "leaf_hash": base64, "body": base64 of the RFC 8785
    bytes}``. Lines are decoded lazily, in batches, so a large export is verified in bounded
    memory.
    """

    def __init__(self, stream: IO[bytes], *, name: str) -> None:
        """Read the header from ``stream``.

        Raises:
            LedgerInvalid: the header is missing or malformed.
        """
        self._stream = stream
        self.name = name
        first = stream.readline()
        try:
            doc = json.loads(first)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
            raise LedgerInvalid(f"{name}: not a gsomia ledger export (its first line must be a {EXPORT_FORMAT} header)")
        try:
            key_doc = doc["key"]
            self.header = ExportHeader(
                origin=str(doc["origin"]),
                size=int(doc["size"]),
                key=LedgerKey.parse(json.dumps(key_doc)),
                checkpoint=str(doc["checkpoint"]),
            )
        except (KeyError, TypeError, ValueError, InvalidInput) as e:
            raise LedgerInvalid(f"{name}: malformed export header ({e})") from None

    @classmethod
    def open(cls, path: Path) -> ExportReader:
        """Open an export file.

        Raises:
            InvalidInput: the file cannot be read.
            LedgerInvalid: it is not an export.
        """
        try:
            stream = path.open("rb")
        except OSError as e:
            raise InvalidInput(f"cannot read export {path}: {e.strerror}") from e
        try:
            return cls(stream, name=str(path))
        except BaseException:
            stream.close()
            raise

    def close(self) -> None:
        """Close the file."""
        self._stream.close()

    def batches(self, size: int = 20_000) -> Iterator[Batch]:
        """The entries, ``size`` at a time.

        Raises:
            EntryProblem: a line cannot be decoded (naming the line and the entry).
        """
        batch: list[tuple[int, bytes, bytes | None]] = []
        expected = 0
        loads = json.loads
        for line_no, line in enumerate(self._stream, start=2):
            if not line.strip():
                continue
            try:
                doc = loads(line)
                index = doc["index"]
                body = _canonical_b64(doc["body"])
                leaf = _canonical_b64(doc["leaf_hash"])
            except (ValueError, KeyError, TypeError, binascii.Error) as e:
                raise EntryProblem(
                    f"{self.name} line {line_no} (entry {expected}): malformed entry line ({type(e).__name__}); "
                    "the export was altered or truncated",
                    index=expected,
                ) from None
            if type(index) is not int:
                raise EntryProblem(f"{self.name} line {line_no}: 'index' must be an integer", index=expected)
            batch.append((index, body, leaf))
            expected += 1
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch


def _canonical_b64(text: str) -> bytes:
    """Strict base64: one spelling per value, so no edit of the text goes unnoticed."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("non-canonical base64")
    return raw
