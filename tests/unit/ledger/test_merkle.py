"""Laws of the RFC 9162 Merkle tree: proofs verify, tampered ones fail, and the incremental
tree agrees with a naive transcription of RFC 9162 §2.1's recursive definitions."""

from __future__ import annotations

from hashlib import sha256

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsomia.errors import InvalidInput, LedgerInvalid
from gsomia.ledger import tree as merkle_tree
from gsomia.ledger.merkle import EMPTY_ROOT, leaf_hash, node_hash, root, verify_consistency, verify_inclusion
from gsomia.ledger.tree import MerkleTree, consistency_proof, inclusion_proof

MAX_LEAVES = 300

# --- the oracle: RFC 9162 §2.1 written out recursively, as the RFC states it -----------


def _h(data: bytes) -> bytes:
    return sha256(data).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def naive_root(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) of §2.1.1 over leaf hashes."""
    if not leaves:
        return _h(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _h(b"\x01" + naive_root(leaves[:k]) + naive_root(leaves[k:]))


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of §2.1.3.1."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_root(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_root(leaves[:k])]


def naive_subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of §2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if b else [naive_root(leaves)]
    k = _split(n)
    if m <= k:
        return [*naive_subproof(m, leaves[:k], b), naive_root(leaves[k:])]
    return [*naive_subproof(m - k, leaves[k:], False), naive_root(leaves[:k])]


def naive_consistency(m: int, leaves: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of §2.1.4.1 (defined for 0 < m < n; empty otherwise)."""
    if m in (0, len(leaves)):
        return []
    return naive_subproof(m, leaves, True)


def make_leaves(n: int, salt: int = 0) -> list[bytes]:
    return [leaf_hash(b"entry %d/%d" % (salt, i)) for i in range(n)]


def flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@pytest.fixture(scope="module")
def big() -> tuple[list[bytes], MerkleTree]:
    leaves = make_leaves(MAX_LEAVES, salt=7)
    tree = MerkleTree()
    tree.extend(leaves)
    return leaves, tree


# --- hashing ---------------------------------------------------------------------------


def test_rfc6962_leaf_and_empty_hashes() -> None:
    # Known answers also used by the transparency-dev vectors: the empty tree and the
    # hash of an empty leaf.
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert root([]) == EMPTY_ROOT
    assert MerkleTree().root() == EMPTY_ROOT


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) == _h(b"\x01" + a + b)
    assert node_hash(a, b) != leaf_hash(a + b)


@pytest.mark.parametrize("bad", ["text", 7, None])
def test_leaf_hash_refuses_non_bytes(bad: object) -> None:
    with pytest.raises(InvalidInput):
        leaf_hash(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("left", "right"), [(b"", b"\x00" * 32), (b"\x00" * 32, b"\x00" * 31), ("x" * 32, b"\x00" * 32)]
)
def test_node_hash_refuses_non_hashes(left: bytes, right: bytes) -> None:
    with pytest.raises(InvalidInput):
        node_hash(left, right)


# --- the incremental tree against the oracle ---------------------------------------------


def test_incremental_root_equals_naive_root_at_every_size(big: tuple[list[bytes], MerkleTree]) -> None:
    leaves, _ = big
    tree = MerkleTree()
    assert tree.root() == naive_root([])
    for n, h in enumerate(leaves, start=1):
        assert tree.append(h) == n - 1
        expected = naive_root(leaves[:n])
        assert tree.root() == expected
        assert root(leaves[:n]) == expected
        assert MerkleTree.from_leaf_hashes(leaves[:n]).root() == expected


def test_past_roots_stay_answerable(big: tuple[list[bytes], MerkleTree]) -> None:
    leaves, tree = big
    for n in range(MAX_LEAVES + 1):
        assert tree.root(n) == naive_root(leaves[:n])


def test_rebuilt_tree_is_the_appended_tree(big: tuple[list[bytes], MerkleTree]) -> None:
    leaves, tree = big
    rebuilt = MerkleTree.from_leaf_hashes(leaves)
    assert len(rebuilt) == rebuilt.size == tree.size == MAX_LEAVES
    for n in range(MAX_LEAVES + 1):
        assert rebuilt.root(n) == tree.root(n)
        assert rebuilt.consistency_proof(n // 3, n) == tree.consistency_proof(n // 3, n)
    assert rebuilt.leaf_hash(17) == leaves[17]


@given(n=st.integers(1, MAX_LEAVES), data=st.data())
def test_inclusion_proofs_equal_the_rfc_paths(big: tuple[list[bytes], MerkleTree], n: int, data: st.DataObject) -> None:
    leaves, tree = big
    index = data.draw(st.integers(0, n - 1), label="index")
    expected = naive_path(index, leaves[:n])
    assert tree.inclusion_proof(index, n) == expected
    assert inclusion_proof(leaves[:n], index) == expected


@given(n=st.integers(0, MAX_LEAVES), data=st.data())
def test_consistency_proofs_equal_the_rfc_proofs(
    big: tuple[list[bytes], MerkleTree], n: int, data: st.DataObject
) -> None:
    leaves, tree = big
    m = data.draw(st.integers(0, n), label="old size")
    expected = naive_consistency(m, leaves[:n])
    assert tree.consistency_proof(m, n) == expected
    assert consistency_proof(leaves[:n], m) == expected


def test_rfc9162_consistency_example(big: tuple[list[bytes], MerkleTree]) -> None:
    # RFC 9162 §2.1.5: PROOF(3, D[7]) = [c, d, g, l] with g = MTH(D[0:2]), l = MTH(D[4:7]).
    leaves, tree = big
    c, d = leaves[2], leaves[3]
    g = naive_root(leaves[0:2])
    ell = naive_root(leaves[4:7])
    assert tree.consistency_proof(3, 7) == [c, d, g, ell]
    # and PATH(3, D[7]) = [c, g, l] (§2.1.5's audit path of d).
    assert tree.inclusion_proof(3, 7) == [c, g, ell]


# --- inclusion: valid proofs verify, every tampering fails -----------------------------


@settings(max_examples=200)
@given(n=st.integers(1, MAX_LEAVES), data=st.data())
def test_inclusion_proofs_verify_and_tampering_fails(
    big: tuple[list[bytes], MerkleTree], n: int, data: st.DataObject
) -> None:
    leaves, tree = big
    index = data.draw(st.integers(0, n - 1), label="index")
    proof = tree.inclusion_proof(index, n)
    r = tree.root(n)
    leaf = leaves[index]
    verify_inclusion(leaf, index, n, proof, r)

    bit = data.draw(st.integers(0, 255), label="bit")
    with pytest.raises(LedgerInvalid):
        verify_inclusion(flip(leaf, bit), index, n, proof, r)
    with pytest.raises(LedgerInvalid):
        verify_inclusion(leaf, index, n, proof, flip(r, bit))
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1), label="position")
        tampered = [*proof[:at], flip(proof[at], bit), *proof[at + 1 :]]
        with pytest.raises(LedgerInvalid):
            verify_inclusion(leaf, index, n, tampered, r)
        with pytest.raises(LedgerInvalid):
            verify_inclusion(leaf, index, n, proof[:-1], r)
    with pytest.raises(LedgerInvalid):
        verify_inclusion(leaf, index, n, [*proof, r], r)
    with pytest.raises(LedgerInvalid):
        verify_inclusion(leaf, index, n, [r, *proof], r)
    if n > 1:
        other = data.draw(st.integers(0, n - 1).filter(lambda i: i != index), label="wrong index")
        with pytest.raises(LedgerInvalid):
            verify_inclusion(leaf, other, n, proof, r)
        # No law for a wrong tree size: a path has the same shape in sizes whose right
        # edges agree (leaf 0 in 65 or 66 leaves), so the size is bound by the signed
        # checkpoint that carries root and size together, not by the proof.
    for impossible in (n, n + 1, -1, 2**64):
        with pytest.raises(LedgerInvalid):
            verify_inclusion(leaf, impossible, n, proof, r)


def test_inclusion_edge_cases() -> None:
    leaf = leaf_hash(b"only")
    verify_inclusion(leaf, 0, 1, [], leaf)
    with pytest.raises(LedgerInvalid):
        verify_inclusion(leaf, 0, 0, [], EMPTY_ROOT)  # nothing is in the empty tree
    with pytest.raises(LedgerInvalid):
        verify_inclusion(leaf, 0, 2**64, [], leaf)  # beyond uint64
    with pytest.raises(LedgerInvalid):
        verify_inclusion(leaf[:31], 0, 1, [], leaf[:31])
    with pytest.raises(InvalidInput):
        verify_inclusion(leaf, True, 1, [], leaf)
    with pytest.raises(InvalidInput):
        verify_inclusion(leaf, 0, 1, [], leaf.hex())  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        verify_inclusion(leaf, 0, 1, leaf, leaf)  # type: ignore[arg-type]  # a bare hash is not a proof
    with pytest.raises(InvalidInput):
        verify_inclusion(leaf, 0, 2, [leaf.hex()], leaf)  # type: ignore[list-item]


# --- consistency: valid proofs verify, every tampering fails ---------------------------


@settings(max_examples=200)
@given(n=st.integers(0, MAX_LEAVES), data=st.data())
def test_consistency_proofs_verify_and_tampering_fails(
    big: tuple[list[bytes], MerkleTree], n: int, data: st.DataObject
) -> None:
    _, tree = big
    m = data.draw(st.integers(0, n), label="old size")
    proof = tree.consistency_proof(m, n)
    old, new = tree.root(m), tree.root(n)
    verify_consistency(m, n, old, new, proof)

    bit = data.draw(st.integers(0, 255), label="bit")
    with pytest.raises(LedgerInvalid):
        verify_consistency(m, n, flip(old, bit), new, proof)
    if m > 0:
        # Every tree extends the empty one, so only a non-empty old tree pins the new root.
        with pytest.raises(LedgerInvalid):
            verify_consistency(m, n, old, flip(new, bit), proof)
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1), label="position")
        tampered = [*proof[:at], flip(proof[at], bit), *proof[at + 1 :]]
        with pytest.raises(LedgerInvalid):
            verify_consistency(m, n, old, new, tampered)
        with pytest.raises(LedgerInvalid):
            verify_consistency(m, n, old, new, proof[:-1])
        with pytest.raises(LedgerInvalid):
            verify_consistency(m, n, old, new, proof[1:])
    with pytest.raises(LedgerInvalid):
        verify_consistency(m, n, old, new, [*proof, new])
    with pytest.raises(LedgerInvalid):
        verify_consistency(m, n, old, new, [old, *proof])
    if 0 < m < n:
        with pytest.raises(LedgerInvalid):
            verify_consistency(m, n, new, old, proof)  # swapped roots
        with pytest.raises(LedgerInvalid):
            verify_consistency(n, m, old, new, proof)  # swapped sizes
        other_old = data.draw(st.integers(1, n - 1).filter(lambda s: s != m), label="wrong old size") if n > 2 else 0
        if other_old:
            with pytest.raises(LedgerInvalid):
                verify_consistency(other_old, n, old, new, proof)


@pytest.mark.parametrize("size", [0, 1, 5])
def test_consistency_between_equal_sizes_needs_no_proof(size: int) -> None:
    tree = MerkleTree.from_leaf_hashes(make_leaves(size))
    r = tree.root()
    verify_consistency(size, size, r, r, [])
    with pytest.raises(LedgerInvalid):
        verify_consistency(size, size, r, r, [r])
    with pytest.raises(LedgerInvalid):
        verify_consistency(size, size, r, flip(r, 3), [])


def test_consistency_from_the_empty_tree() -> None:
    tree = MerkleTree.from_leaf_hashes(make_leaves(4))
    verify_consistency(0, 4, EMPTY_ROOT, tree.root(), [])
    with pytest.raises(LedgerInvalid):
        verify_consistency(0, 4, EMPTY_ROOT, tree.root(), [EMPTY_ROOT])
    with pytest.raises(LedgerInvalid):
        verify_consistency(0, 4, tree.root(), tree.root(), [])
    with pytest.raises(LedgerInvalid):
        verify_consistency(0, 4, EMPTY_ROOT, tree.root()[:16], [])
    with pytest.raises(LedgerInvalid):
        verify_consistency(0, 0, b"garbage", b"garbage", [])  # the empty tree has one root


def test_consistency_rejects_impossible_sizes() -> None:
    tree = MerkleTree.from_leaf_hashes(make_leaves(8))
    with pytest.raises(LedgerInvalid):
        verify_consistency(-1, 8, EMPTY_ROOT, tree.root(), [])
    with pytest.raises(LedgerInvalid):
        verify_consistency(4, 2**64, tree.root(4), tree.root(), tree.consistency_proof(4))
    with pytest.raises(InvalidInput):
        verify_consistency(4.0, 8, tree.root(4), tree.root(), tree.consistency_proof(4))  # type: ignore[arg-type]


# --- the tree's own argument checks ----------------------------------------------------


def test_tree_refuses_bad_leaves_and_sizes() -> None:
    tree = MerkleTree.from_leaf_hashes(make_leaves(5))
    with pytest.raises(InvalidInput):
        tree.append(b"short")
    with pytest.raises(InvalidInput):
        tree.append(bytearray(32))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        MerkleTree.from_leaf_hashes([b"\x00" * 32, b"\x00" * 33])
    with pytest.raises(InvalidInput):
        root([b"x"])
    assert tree.size == 5  # refused appends left the tree as it was
    for size in (-1, 6):
        with pytest.raises(InvalidInput):
            tree.root(size)
    bad_proofs: tuple[tuple[int, int | None], ...] = ((5, None), (3, 3), (-1, None))
    for index, at_size in bad_proofs:
        with pytest.raises(InvalidInput):
            tree.inclusion_proof(index, at_size)
    bad_consistency: tuple[tuple[int, int | None], ...] = ((6, None), (4, 3), (-1, 5))
    for old, new in bad_consistency:
        with pytest.raises(InvalidInput):
            tree.consistency_proof(old, new)
    with pytest.raises(InvalidInput):
        tree.leaf_hash(5)
    with pytest.raises(InvalidInput):
        inclusion_proof([], 0)


def test_ragged_edge_cache_is_bounded_and_transparent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(merkle_tree, "_CACHE_LIMIT", 4)
    leaves = make_leaves(MAX_LEAVES, salt=3)
    tree = MerkleTree.from_leaf_hashes(leaves)
    for n in range(1, MAX_LEAVES + 1, 7):
        assert tree.root(n) == naive_root(leaves[:n])
        assert tree.inclusion_proof(n - 1, n) == naive_path(n - 1, leaves[:n])
        assert len(tree._edge_cache) <= 4
