"""Check ledger proofs against signed checkpoints, and what a failed check reports.

An inclusion proof (RFC 9162 §2.1.3.2) or a consistency proof (§2.1.4.2) is checked against
the root a signature vouches for: the checkpoint the proof carries, one the auditor gives,
or the root of the re-derived tree. The first thing that fails is a :class:`Finding`;
checks raise :class:`Stop` with it, and :mod:`gsomia.ledger.audit` turns it into
the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gsomia.codec import b64decode_or_none
from gsomia.errors import InvalidInput, LedgerInvalid
from gsomia.ledger.checkpoint import Checkpoint, NoteVerifier, open_with
from gsomia.ledger.entries import entry_leaf_hash
from gsomia.ledger.merkle import HASH_SIZE, verify_consistency, verify_inclusion
from gsomia.ledger.tree import MerkleTree

__all__ = ["Finding", "Stop", "check_proof", "compare_proof", "open_checkpoint"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """The first thing that failed verification.

    Attributes:
        kind: What failed: ``entry`` (an entry does not hash to its recorded leaf hash, or
            cannot be read), ``missing-entry``, ``checkpoint``, ``kept-checkpoint``,
            ``rollback``, ``fork``, ``inclusion-proof``, ``consistency-proof``, ``source``,
            ``stored-checkpoint``, ``stored-cosignature`` (a checkpoint or cosignature the
            store keeps does not verify or does not match the tree).
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


class Stop(Exception):
    """Raised by a check to stop verification at its first :class:`Finding`."""

    def __init__(self, finding: Finding) -> None:
        """Carry ``finding`` to the caller that turns it into a report."""
        super().__init__(finding.message)
        self.finding = finding


def open_checkpoint(key: NoteVerifier, note: str | bytes, kind: str, what: str) -> Checkpoint:
    """Verify a signed checkpoint with ``key``, or stop with a finding of ``kind`` naming ``what``."""
    try:
        return open_with(key, note)
    except (LedgerInvalid, InvalidInput) as e:
        raise Stop(
            Finding(kind=kind, message=f"{what} does not verify with key {key.name} ({key.key_id.hex()}): {e}")
        ) from None


def compare_proof(what: str, got: Sequence[bytes], expected: Sequence[bytes], index: int | None) -> None:
    """Stop at the first hash of a served proof that is not the re-derived tree's own."""
    kind = what.replace(" ", "-")
    for k, (a, b) in enumerate(zip(got, expected, strict=False)):
        if a != b:
            raise Stop(
                Finding(
                    kind=kind,
                    index=index,
                    element=k,
                    message=f"{what}{'' if index is None else f' for entry {index}'}: element {k} (of {len(got)}) "
                    "is wrong: it is not the tree's node hash",
                )
            )
    if len(got) != len(expected):
        raise Stop(
            Finding(
                kind=kind,
                index=index,
                message=f"{what} has {len(got)} hashes; the tree's has {len(expected)}",
            )
        )


def _hashes(doc: Mapping[str, Any], what: str, index: int | None) -> list[bytes]:
    kind = what.replace(" ", "-")
    raw = doc.get("proof")
    if not isinstance(raw, list):
        raise Stop(Finding(kind=kind, index=index, message=f"{what}: 'proof' must be a list of base64 hashes"))
    out: list[bytes] = []
    for k, item in enumerate(raw):
        value = b64decode_or_none(item)
        if value is None or len(value) != HASH_SIZE:
            raise Stop(
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
        raise Stop(Finding(kind=what.replace(" ", "-"), message=f"{what}: '{member}' must be a non-negative integer"))
    return value


def _signed_root(
    doc: Mapping[str, Any],
    size: int,
    key: NoteVerifier,
    checkpoint: Checkpoint | None,
    tree: MerkleTree | None,
    what: str,
) -> bytes:
    """The root of the tree at ``size`` that a signature (or the re-derived tree) vouches for."""
    kind = what.replace(" ", "-")
    note = doc.get("checkpoint")
    if isinstance(note, str):
        carried = open_checkpoint(key, note, kind, f"the checkpoint in the {what}")
        if carried.size != size:
            raise Stop(
                Finding(
                    kind=kind, message=f"{what}: it is for size {size} but carries a checkpoint of size {carried.size}"
                )
            )
        if checkpoint is not None and carried.origin != checkpoint.origin:
            raise Stop(Finding(kind=kind, message=f"{what}: its checkpoint is for another log ({carried.origin!r})"))
        return carried.root_hash
    if checkpoint is not None and checkpoint.size == size:
        return checkpoint.root_hash
    if tree is not None and size <= tree.size:
        return tree.root(size)
    raise Stop(
        Finding(
            kind=kind,
            message=f"{what} (size {size}): no signed checkpoint of that size to check it against; "
            f"pass --checkpoint with a checkpoint of size {size}",
        )
    )


def check_proof(
    doc: Mapping[str, Any],
    *,
    key: NoteVerifier,
    checkpoint: Checkpoint | None,
    since: Checkpoint | None,
    tree: MerkleTree | None,
) -> None:
    """Check one inclusion or consistency proof document (RFC 9162 §2.1.3.2, §2.1.4.2).

    Args:
        doc: The proof, as ``gsomia ledger proof`` or the API serves it.
        key: The exchange's checkpoint key.
        checkpoint: The latest signed checkpoint, if any.
        since: The older signed checkpoint the auditor kept, if any.
        tree: The re-derived tree, to compare the proof with element by element; None offline.

    Raises:
        Stop: naming the first problem.
    """
    if not isinstance(doc, Mapping):
        raise Stop(Finding(kind="source", message="a proof must be a JSON object"))
    if "index" in doc:
        _check_inclusion(doc, key=key, checkpoint=checkpoint, tree=tree)
    elif "old" in doc:
        _check_consistency(doc, key=key, checkpoint=checkpoint, since=since, tree=tree)
    else:
        raise Stop(
            Finding(kind="source", message="not a ledger proof: expected 'index' (inclusion) or 'old' (consistency)")
        )


def _check_inclusion(
    doc: Mapping[str, Any], *, key: NoteVerifier, checkpoint: Checkpoint | None, tree: MerkleTree | None
) -> None:
    what = "inclusion proof"
    index = _int(doc, "index", what)
    size = _int(doc, "size", what)
    leaf = b64decode_or_none(doc.get("leaf_hash"))
    if leaf is None or len(leaf) != HASH_SIZE:
        raise Stop(
            Finding(kind="inclusion-proof", index=index, message=f"{what}: 'leaf_hash' is not base64 of 32 bytes")
        )
    path = _hashes(doc, what, index)
    if "entry" in doc:
        try:
            derived = entry_leaf_hash(doc["entry"])
        except InvalidInput as e:
            raise Stop(Finding(kind="inclusion-proof", index=index, message=f"{what}: its entry: {e}")) from None
        if derived != leaf:
            raise Stop(
                Finding(
                    kind="inclusion-proof",
                    index=index,
                    message=f"{what} for entry {index}: the entry it carries does not hash to its leaf hash",
                )
            )
    root = _signed_root(doc, size, key, checkpoint, tree, what)
    claimed_root = b64decode_or_none(doc.get("root")) if "root" in doc else root
    if claimed_root != root:
        raise Stop(
            Finding(
                kind="inclusion-proof", index=index, message=f"{what}: its root is not the signed root at size {size}"
            )
        )
    if tree is not None and index < tree.size and size <= tree.size:
        if tree.leaf_hash(index) != leaf:
            raise Stop(
                Finding(
                    kind="inclusion-proof",
                    index=index,
                    message=f"{what}: its leaf hash is not the ledger's leaf hash of entry {index}",
                )
            )
        if index < size:
            compare_proof(what, path, tree.inclusion_proof(index, size), index)
    try:
        verify_inclusion(leaf, index, size, path, root)
    except LedgerInvalid as e:
        raise Stop(
            Finding(
                kind="inclusion-proof",
                index=index,
                message=f"{what} for entry {index} does not verify against the signed root at size {size}: {e}",
            )
        ) from None


def _check_consistency(
    doc: Mapping[str, Any],
    *,
    key: NoteVerifier,
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
        raise Stop(
            Finding(
                kind="consistency-proof",
                message=f"{what} from size {old}: pass --since with your kept checkpoint of size {old}",
            )
        )
    if tree is not None and new <= tree.size and old <= new:
        compare_proof(what, path, tree.consistency_proof(old, new), None)
    try:
        verify_consistency(old, new, old_root, new_root, path)
    except LedgerInvalid as e:
        raise Stop(
            Finding(
                kind="consistency-proof",
                message=f"{what} {old} -> {new} does not verify against the signed roots: {e}",
            )
        ) from None
