"""Merkle tree hashing, proofs and proof verification (RFC 9162 §2.1, same as RFC 6962 §2.1).

The tree is the one RFC 9162 §2.1.1 defines over SHA-256 with domain separation: a leaf
hashes as ``SHA-256(0x00 || data)``, an interior node as ``SHA-256(0x01 || left || right)``,
and the empty tree as ``SHA-256("")``. Proofs are generated as §2.1.3.1 (inclusion) and
§2.1.4.1 (consistency) define them and verified with the algorithms of §2.1.3.2 and
§2.1.4.2.

Everything here is pure: bytes and integers in, bytes out or :class:`LedgerInvalid` raised.
A proof that does not verify raises :class:`LedgerInvalid`, whatever the reason (bad hash,
wrong length, impossible index or size); a caller passing the wrong *types* gets
:class:`InvalidInput`.

:class:`MerkleTree` keeps every leaf hash plus, per level, the hash of every complete
subtree as leaves are appended. Any node of the tree at any past size is then either one of
those stored hashes or (on the ragged right edge) a fold of O(log n) of them, so roots and
proofs at any size cost O(log n) list look-ups and a few hashes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import sha256

from gsomia.errors import InvalidInput, LedgerInvalid

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "consistency_proof",
    "inclusion_proof",
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
_NODE_PREFIX = b"\x01"

# RFC 9162 §4.1 and the wire formats carry tree sizes and indices as uint64.
_MAX_SIZE = (1 << 64) - 1

# Bound on the ragged-edge cache of MerkleTree; cleared wholesale when reached.
_CACHE_LIMIT = 1 << 14


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
    return sha256(_NODE_PREFIX + left + right).digest()


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
    _require_hashes(level)
    if not level:
        return EMPTY_ROOT
    h = sha256
    prefix = _NODE_PREFIX
    while len(level) > 1:
        odd = level[-1] if len(level) & 1 else None
        # zip() over one iterator pairs consecutive elements and drops an odd last one.
        pairs = iter(level)
        level = [h(prefix + a + b).digest() for a, b in zip(pairs, pairs, strict=False)]
        if odd is not None:
            level.append(odd)
    return level[0]


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``leaf_hashes`` (RFC 9162 §2.1.3.1).

    Args:
        leaf_hashes: Every leaf hash of the tree, in log order.
        index: Zero-based index of the leaf to prove.

    Returns:
        The proof, deepest sibling first.

    Raises:
        InvalidInput: A leaf hash is malformed or ``index`` is not a leaf of the tree.
    """
    return MerkleTree.from_leaf_hashes(leaf_hashes).inclusion_proof(index)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """The consistency proof from the first ``old_size`` leaves to all of them (RFC 9162 §2.1.4.1).

    Args:
        leaf_hashes: Every leaf hash of the newer tree, in log order.
        old_size: Size of the older tree, ``0 <= old_size <= len(leaf_hashes)``.

    Returns:
        The proof; empty when ``old_size`` is 0 or equals the tree size.

    Raises:
        InvalidInput: A leaf hash is malformed or ``old_size`` is out of range.
    """
    return MerkleTree.from_leaf_hashes(leaf_hashes).consistency_proof(old_size)


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
    _require_int(index, "leaf index")
    _require_int(tree_size, "tree size")
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
    prefix = _NODE_PREFIX
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
        proof: The consistency proof, as :meth:`MerkleTree.consistency_proof` returns it.

    Raises:
        InvalidInput: An argument has the wrong type.
        LedgerInvalid: The proof does not show the older tree is a prefix of the newer.
    """
    _require_int(old_size, "old tree size")
    _require_int(new_size, "new tree size")
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
    prefix = _NODE_PREFIX
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


class MerkleTree:
    """An append-only RFC 9162 Merkle tree answering for its current and every past size.

    ``_levels[k][j]`` is the hash of the complete subtree over leaves
    ``[j * 2**k, (j + 1) * 2**k)``; level 0 holds the leaf hashes. Appending a leaf adds
    one entry to level 0 and, each time a level gets an even length, one to the level
    above: amortised one hash per append, and about ``2 n`` stored hashes in all.

    Every node of the tree at any size ``n`` (RFC 9162 §2.1.1's recursive split) is either
    a stored complete subtree or lies on the ragged right edge, where its hash is the
    right fold of the complete subtrees that tile it. Ragged-edge hashes never change once
    computed (the log only grows), so a bounded cache keeps the ones proofs reuse.

    Not thread-safe: the owner serialises appends (the ledger has one writer).
    """

    __slots__ = ("_edge_cache", "_levels")

    def __init__(self) -> None:
        """Create an empty tree."""
        self._levels: list[list[bytes]] = [[]]
        self._edge_cache: dict[tuple[int, int], bytes] = {}

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Iterable[bytes]) -> MerkleTree:
        """Rebuild a tree from stored leaf hashes, one level at a time.

        Args:
            leaf_hashes: Leaf hashes in log order.

        Returns:
            A tree holding exactly those leaves.

        Raises:
            InvalidInput: An element is not a 32-byte ``bytes`` value.
        """
        level = list(leaf_hashes)
        _require_hashes(level)
        tree = cls()
        levels = tree._levels
        levels[0] = level
        h = sha256
        prefix = _NODE_PREFIX
        while len(level) > 1:
            # Only complete pairs make a complete parent; an odd last node stays unpaired.
            pairs = iter(level)
            level = [h(prefix + a + b).digest() for a, b in zip(pairs, pairs, strict=False)]
            levels.append(level)
        return tree

    def __len__(self) -> int:
        """Number of leaves."""
        return len(self._levels[0])

    @property
    def size(self) -> int:
        """Number of leaves (the current tree size)."""
        return len(self._levels[0])

    def leaf_hash(self, index: int) -> bytes:
        """The hash of leaf ``index``.

        Args:
            index: Zero-based leaf index.

        Returns:
            The stored 32-byte leaf hash.

        Raises:
            InvalidInput: ``index`` is not a leaf of the tree.
        """
        _require_int(index, "leaf index")
        leaves = self._levels[0]
        if not 0 <= index < len(leaves):
            raise InvalidInput(f"leaf index {index} is outside a tree of {len(leaves)} leaves")
        return leaves[index]

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf hash.

        Args:
            leaf_hash: The new leaf's hash (see :func:`leaf_hash`).

        Returns:
            The index of the new leaf.

        Raises:
            InvalidInput: ``leaf_hash`` is not a 32-byte ``bytes`` value.
        """
        if type(leaf_hash) is not bytes or len(leaf_hash) != HASH_SIZE:
            raise InvalidInput("a Merkle leaf hash must be 32 bytes")
        levels = self._levels
        level = levels[0]
        level.append(leaf_hash)
        index = len(level) - 1
        node = leaf_hash
        k = 0
        # Each even-length level has just completed a pair: its parent is now complete.
        while not len(level) & 1:
            node = sha256(_NODE_PREFIX + level[-2] + node).digest()
            k += 1
            if k == len(levels):
                levels.append([])
            level = levels[k]
            level.append(node)
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append several leaf hashes, in order.

        Args:
            leaf_hashes: The new leaves' hashes.

        Raises:
            InvalidInput: An element is not a 32-byte ``bytes`` value; the leaves before
                it have been appended.
        """
        append = self.append
        for h in leaf_hashes:
            append(h)

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the tree at ``size`` leaves (RFC 9162 §2.1.1).

        Args:
            size: A past or the current size; None means the current size.

        Returns:
            The 32-byte root; :data:`EMPTY_ROOT` for size 0.

        Raises:
            InvalidInput: ``size`` is negative or larger than the tree.
        """
        n = self._size_arg(size)
        if n == 0:
            return EMPTY_ROOT
        return self._subtree(0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree at ``size`` (RFC 9162 §2.1.3.1).

        Args:
            index: Zero-based index of the leaf to prove.
            size: A past or the current size; None means the current size.

        Returns:
            The proof, deepest sibling first.

        Raises:
            InvalidInput: ``size`` is out of range or ``index`` is not below it.
        """
        n = self._size_arg(size)
        _require_int(index, "leaf index")
        if not 0 <= index < n:
            raise InvalidInput(f"leaf index {index} is outside a tree of {n} leaves")
        return self._path(0, index, n)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The proof that the tree at ``old_size`` is a prefix of the one at ``new_size``.

        RFC 9162 §2.1.4.1 ``PROOF(m, D[n])``, built from node positions rather than by
        recursion: the proof is the inclusion path, in the tree of ``new_size``, of the
        largest complete subtree that ends at ``old_size``, preceded by that subtree's own
        hash unless ``old_size`` is a power of two (then it is the old root, which the
        verifier already has).

        Args:
            old_size: Size of the older tree.
            new_size: Size of the newer tree; None means the current size.

        Returns:
            The proof; empty when ``old_size`` is 0 or equals ``new_size``.

        Raises:
            InvalidInput: The sizes are out of range or ``old_size > new_size``.
        """
        n = self._size_arg(new_size)
        _require_int(old_size, "old tree size")
        if not 0 <= old_size <= n:
            raise InvalidInput(f"old size {old_size} is not between 0 and {n}")
        m = old_size
        if m in (0, n):
            return []
        level = (m & -m).bit_length() - 1  # trailing zero bits of m
        index = (m - 1) >> level
        path = self._path(level, index, n)
        if index:
            path.insert(0, self._levels[level][index])
        return path

    def _size_arg(self, size: int | None) -> int:
        current = len(self._levels[0])
        if size is None:
            return current
        _require_int(size, "tree size")
        if not 0 <= size <= current:
            raise InvalidInput(f"tree size {size} is not between 0 and {current}")
        return size

    def _path(self, level: int, index: int, n: int) -> list[bytes]:
        """Sibling hashes from the complete node ``(level, index)`` up to the root of size ``n``.

        Levels below ``inner`` are where the node and the tree's last leaf are in different
        subtrees: there every sibling is complete, except possibly the topmost one, which
        holds the last leaf and may be ragged. Above ``inner`` the node is on the right
        edge; only left siblings exist there and they are complete (RFC 9162 §2.1.3.1's
        recursion promotes a right-edge node without a sibling unchanged).
        """
        levels = self._levels
        last = (n - 1) >> level
        inner = (index ^ last).bit_length()
        proof: list[bytes] = []
        append = proof.append
        for j in range(inner):
            k = level + j
            sibling = (index >> j) ^ 1
            if (sibling + 1) << k <= n:
                append(levels[k][sibling])
            else:
                append(self._subtree(sibling << k, n))
        i = index >> inner
        k = level + inner
        while i:
            if i & 1:
                append(levels[k][i ^ 1])
            i >>= 1
            k += 1
        return proof

    def _subtree(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for a node of the tree: ``lo`` is aligned to the largest power of
        two not above ``hi - lo``, so the range is tiled by stored complete subtrees of
        decreasing size, folded from the right as RFC 9162 §2.1.1 nests them."""
        width = hi - lo
        if not width & (width - 1):
            k = width.bit_length() - 1
            return self._levels[k][lo >> k]
        key = (lo, hi)
        cache = self._edge_cache
        cached = cache.get(key)
        if cached is not None:
            return cached
        levels = self._levels
        nodes: list[bytes] = []
        pos = lo
        while width:
            k = width.bit_length() - 1
            nodes.append(levels[k][pos >> k])
            step = 1 << k
            pos += step
            width -= step
        h = sha256
        prefix = _NODE_PREFIX
        r = nodes.pop()
        while nodes:
            r = h(prefix + nodes.pop() + r).digest()
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = r
        return r


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


def _require_int(value: object, what: str) -> None:
    # bool is an int subclass; a True index is a bug, not leaf 1.
    if type(value) is not int:
        raise InvalidInput(f"{what} must be an integer")


def _require_bytes(value: object, what: str) -> None:
    if not isinstance(value, bytes):
        raise InvalidInput(f"{what} must be bytes")


def _require_hash(value: object, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise InvalidInput(f"{what} must be a 32-byte hash")


def _require_hashes(values: list[bytes]) -> None:
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
