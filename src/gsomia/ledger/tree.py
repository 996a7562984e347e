"""The append-only RFC 9162 Merkle tree and the proofs it generates (§2.1.3.1, §2.1.4.1).

:class:`MerkleTree` keeps every leaf hash plus, per level, the hash of every complete
subtree as leaves are appended. Any node of the tree at any past size is then either one of
those stored hashes or (on the ragged right edge) a fold of O(log n) of them, so roots and
proofs at any size cost O(log n) list look-ups and a few hashes.

Hashing and proof verification are in :mod:`gsomia.ledger.merkle`. Everything here is pure
too: a caller passing a malformed hash, size or index gets :class:`InvalidInput`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import sha256

from gsomia.errors import InvalidInput
from gsomia.ledger.merkle import EMPTY_ROOT, HASH_SIZE, NODE_PREFIX, require_int, require_leaf_hashes

__all__ = ["MerkleTree", "consistency_proof", "inclusion_proof"]

# Bound on the ragged-edge cache of MerkleTree; cleared wholesale when reached.
_CACHE_LIMIT = 1 << 14


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
        require_leaf_hashes(level)
        tree = cls()
        levels = tree._levels
        levels[0] = level
        h = sha256
        prefix = NODE_PREFIX
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
        require_int(index, "leaf index")
        leaves = self._levels[0]
        if not 0 <= index < len(leaves):
            raise InvalidInput(f"leaf index {index} is outside a tree of {len(leaves)} leaves")
        return leaves[index]

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf hash.

        Args:
            leaf_hash: The new leaf's hash (see :func:`~gsomia.ledger.merkle.leaf_hash`).

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
            node = sha256(NODE_PREFIX + level[-2] + node).digest()
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
        require_int(index, "leaf index")
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
        require_int(old_size, "old tree size")
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
        require_int(size, "tree size")
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
        prefix = NODE_PREFIX
        r = nodes.pop()
        while nodes:
            r = h(prefix + nodes.pop() + r).digest()
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = r
        return r
