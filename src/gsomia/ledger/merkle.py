"""Merkle tree hashing and proof verification (RFC 9162 §2.1, same as RFC 6962 §2.1).

The tree is the one RFC 9162 §2.1.1 defines over SHA-256 with domain separation: a leaf
hashes as ``SHA-256(0x00 || data)``, an interior node as ``SHA-256(0x01 || left || right)``,
and the empty tree as ``SHA-256("")``. Proofs are verified with the algorithms of §2.1.3.2
(inclusion) and §2.1.4.2 (consistency); :mod:`gsomia.ledger.tree` keeps the tree and
generates them as §2.1.3.1 and §2.1.4.1 define them.

Everything here is pure: bytes and integers in, bytes out or :class:`LedgerInvalid` raised.
A proof that does not verify raises :class:`LedgerInvalid`, whatever the reason (bad hash,
wrong length, impossible index or size); a caller passing the wrong *types* gets
:class:`InvalidInput`.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256

from gsomia.errors import InvalidInput, LedgerInvalid

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Length in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = sha256(b"").digest()
"""RFC 9162 §2.1.1: the hash of an empty list is the hash of an empty string."""

# RFC 9162 §2.1.1 domain separation prefixes (second-preimage resistance between leaves
# and interior nodes).
_LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
"""RFC 9162 §2.1.1: an interior node hashes as ``SHA-256(NODE_PREFIX || left || right)``."""

# RFC 9162 §4.1 and the wire formats carry tree sizes and indices as uint64.
_MAX_SIZE = (1 << 64) - 1


def leaf_hash(data: bytes) -> bytes:
    """Hash one leaf: ``SHA-256(0x00 || data)`` (RFC 9162 §2.1.1).

    Args:
        data: The leaf's bytes (for gsomia, an entry's RFC 8785 encoding).

    Returns:
        The 32-byte leaf hash.

    Raises:
        InvalidInput: ``data`` is not bytes-like.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInput("a Merkle leaf must be bytes")
    return sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash an interior node: ``SHA-256(0x01 || left || right)`` (RFC 9162 §2.1.1).

    Args:
        left: Hash of the left subtree (32 bytes).
        right: Hash of the right subtree (32 bytes).

    Returns:
        The 32-byte node hash.

    Raises:
        InvalidInput: Either child is not a 32-byte ``bytes`` value.
    """
    _require_hash(left, "left child")
    _require_hash(right, "right child")
    return sha256(NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of leaf hashes (RFC 9162 §2.1.1).

    Computed level by level, carrying an odd last node up unchanged; this yields the same
    tree as §2.1.1's split at the largest power of two smaller than n.

    Args:
        leaf_hashes: Leaf hashes (see :func:`leaf_hash`), in log order.

    Returns:
        The 32-byte root; :data:`EMPTY_ROOT` for an empty list.

    Raises:
        InvalidInput: An element is not a 32-byte ``bytes`` value.
    """
    level = list(leaf_hashes)
    require_leaf_hashes(level)
    if not level:
        return EMPTY_ROOT
    h = sha256
    prefix = NODE_PREFIX
    while len(level) > 1:
        odd = level[-1] if len(level) & 1 else None
        # zip() over one iterator pairs consecutive elements and drops an odd last one.
        pairs = iter(level)
        level = [h(prefix + a + b).digest() for a, b in zip(pairs, pairs, strict=False)]
        if odd is not None:
            level.append(odd)
    return level[0]


def verify_inclusion(leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``tree_size`` with ``root``.

    Implements RFC 9162 §2.1.3.2, after rejecting anything §4 could not carry (sizes
    outside uint64, hashes that are not 32 bytes) and proofs of the wrong length.

    Args:
        leaf_hash: Hash of the leaf (see :func:`leaf_hash`).
        index: Zero-based index claimed for the leaf.
        tree_size: Size of the tree the proof is for.
        proof: Audit path, deepest sibling first.
        root: Root hash of the tree of ``tree_size`` leaves.

    Raises:
        InvalidInput: An argument has the wrong type.
        LedgerInvalid: The proof does not show the inclusion.
    """
    require_int(index, "leaf index")
    require_int(tree_size, "tree size")
    path = _as_proof(proof)
    _require_bytes(leaf_hash, "leaf hash")
    _require_bytes(root, "root hash")
    # §2.1.3.2 step 1: an index at or past the end of the tree is never included.
    if not 0 <= index < tree_size <= _MAX_SIZE:
        raise LedgerInvalid("inclusion proof: leaf index is not inside the tree")
    if len(leaf_hash) != HASH_SIZE or len(root) != HASH_SIZE:
        raise LedgerInvalid("inclusion proof: hashes must be 32 bytes")
    if len(path) != _inclusion_length(index, tree_size):
        raise LedgerInvalid("inclusion proof has the wrong number of hashes")
    if not _all_hashes(path):
        raise LedgerInvalid("inclusion proof: hashes must be 32 bytes")

    h = sha256
    prefix = NODE_PREFIX
    # §2.1.3.2 steps 2-4.
    fn = index
    sn = tree_size - 1
    r = leaf_hash
    for p in path:
        if sn == 0:
            raise LedgerInvalid("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = h(prefix + p + r).digest()
            # A right-edge node with no right sibling: skip the levels where it is promoted.
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = h(prefix + r + p).digest()
        fn >>= 1
        sn >>= 1
    # §2.1.3.2 step 5.
    if sn != 0 or r != root:
        raise LedgerInvalid("inclusion proof does not match the root")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree of ``old_size`` with ``old_root`` is a prefix of the one with ``new_root``.

    Implements RFC 9162 §2.1.4.2 for ``0 < old_size < new_size``. The other cases, which
    §2.1.4.2 leaves to the caller, are decided here as follows:

    * ``old_size > new_size``: invalid.
    * ``old_size == new_size``: the proof must be empty and the roots the same bytes (and,
      for size 0, the roots must be the empty-tree hash).
    * ``old_size == 0 < new_size``: every tree extends the empty one, so the proof must be
      empty, ``old_root`` must be the empty-tree hash and ``new_root`` a 32-byte hash.

    Args:
        old_size: Size of the older tree.
        new_size: Size of the newer tree.
        old_root: Root hash of the older tree.
        new_root: Root hash of the newer tree.
        proof: The consistency proof, as
            :meth:`~gsomia.ledger.tree.MerkleTree.consistency_proof` returns it.

    Raises:
        InvalidInput: An argument has the wrong type.
        LedgerInvalid: The proof does not show the older tree is a prefix of the newer.
    """
    require_int(old_size, "old tree size")
    require_int(new_size, "new tree size")
    path = _as_proof(proof)
    _require_bytes(old_root, "old root hash")
    _require_bytes(new_root, "new root hash")
    if not 0 <= old_size <= new_size <= _MAX_SIZE:
        raise LedgerInvalid("consistency proof: the old size must not exceed the new size")
    if old_size == new_size:
        if path:
            raise LedgerInvalid("consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise LedgerInvalid("consistency proof: equal sizes with different roots")
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise LedgerInvalid("consistency proof: wrong root for the empty tree")
        return
    if old_size == 0:
        if path:
            raise LedgerInvalid("consistency proof from the empty tree must be empty")
        if old_root != EMPTY_ROOT:
            raise LedgerInvalid("consistency proof: wrong root for the empty tree")
        if len(new_root) != HASH_SIZE:
            raise LedgerInvalid("consistency proof: hashes must be 32 bytes")
        return
    if len(old_root) != HASH_SIZE or len(new_root) != HASH_SIZE:
        raise LedgerInvalid("consistency proof: hashes must be 32 bytes")
    # §2.1.4.2 step 1 (empty path fails) is implied by the exact length check.
    if len(path) != _consistency_length(old_size, new_size):
        raise LedgerInvalid("consistency proof has the wrong number of hashes")
    if not _all_hashes(path):
        raise LedgerInvalid("consistency proof: hashes must be 32 bytes")

    h = sha256
    prefix = NODE_PREFIX
    # §2.1.4.2 step 2: a power-of-two old tree is itself a node of the new one, so the
    # proof omits its hash.
    if old_size & (old_size - 1) == 0:
        path = [old_root, *path]
    # §2.1.4.2 steps 3-4.
    fn = old_size - 1
    sn = new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # §2.1.4.2 steps 5-6.
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise LedgerInvalid("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = h(prefix + c + fr).digest()
            sr = h(prefix + c + sr).digest()
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = h(prefix + sr + c).digest()
        fn >>= 1
        sn >>= 1
    # §2.1.4.2 step 7.
    if sn != 0 or fr != old_root or sr != new_root:
        raise LedgerInvalid("consistency proof does not match the roots")


def _inclusion_length(index: int, size: int) -> int:
    """Number of hashes in the audit path of ``index`` in a tree of ``size`` (0 <= index < size)."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _consistency_length(old_size: int, new_size: int) -> int:
    """Number of hashes in the consistency proof for ``0 < old_size < new_size``."""
    level = (old_size & -old_size).bit_length() - 1
    index = (old_size - 1) >> level
    inner = (index ^ ((new_size - 1) >> level)).bit_length()
    return (1 if index else 0) + inner + (index >> inner).bit_count()


def require_int(value: object, what: str) -> None:
    """Refuse anything but an ``int`` as a tree size or leaf index.

    Raises:
        InvalidInput: ``value`` is not an ``int`` (a ``bool`` is refused too).
    """
    # bool is an int subclass; a True index is a bug, not leaf 1.
    if type(value) is not int:
        raise InvalidInput(f"{what} must be an integer")


def _require_bytes(value: object, what: str) -> None:
    if not isinstance(value, bytes):
        raise InvalidInput(f"{what} must be bytes")


def _require_hash(value: object, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise InvalidInput(f"{what} must be a 32-byte hash")


def require_leaf_hashes(values: list[bytes]) -> None:
    """Refuse a list of leaf hashes unless every element is a 32-byte ``bytes`` value.

    Raises:
        InvalidInput: an element is not a 32-byte ``bytes`` value.
    """
    if not _all_hashes(values):
        raise InvalidInput("every Merkle leaf hash must be 32 bytes")


def _all_hashes(values: list[bytes]) -> bool:
    # set(map(...)) runs in C: this is on the hot path of every proof and every rebuild.
    return not values or (set(map(type, values)) == {bytes} and set(map(len, values)) == {HASH_SIZE})


def _as_proof(proof: Sequence[bytes]) -> list[bytes]:
    # Exact list/tuple first: isinstance() against an ABC is slow on the hot path.
    if type(proof) not in (list, tuple) and (
        isinstance(proof, str | bytes | bytearray | memoryview) or not isinstance(proof, Sequence)
    ):
        raise InvalidInput("a proof must be a sequence of hashes")
    path = list(proof)
    if path and set(map(type, path)) != {bytes}:
        raise InvalidInput("every proof hash must be bytes")
    return path
