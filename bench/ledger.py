"""Micro benchmark of the ledger core at 1,000,000 leaves.

Run: ``.venv/bin/python bench/ledger.py [--leaves N] [--proofs N] [--seed N]``

Measures appends, inclusion proofs (generation alone, and generation plus verification),
consistency proofs, and a full re-verification (hash every raw entry into its leaf and
recompute the root from scratch), and compares them with the goals:
>= 300,000 entries/s re-verified and >= 10,000 inclusion proofs/s.
Speed is measured here, never asserted in the test suite.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from collections.abc import Callable

from gsomia.ledger.merkle import leaf_hash, root, verify_consistency, verify_inclusion
from gsomia.ledger.tree import MerkleTree

GOAL_REVERIFY = 300_000  # entries/s
GOAL_PROOFS = 10_000  # inclusion proofs/s (generate + verify)
ENTRY_SIZE = 200  # bytes per synthetic entry


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def make_entries(n: int) -> list[bytes]:
    """n distinct ~200-byte canonical-JSON-like entries."""
    pad = "x" * ENTRY_SIZE
    out = []
    for i in range(n):
        head = '{"kind":"release","payload":"'
        tail = f'","seq":{i}}}'
        out.append((head + pad[: ENTRY_SIZE - len(head) - len(tail)] + tail).encode())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=20190822)
    args = parser.parse_args()
    n: int = args.leaves
    k: int = args.proofs
    rng = random.Random(args.seed)

    print(f"gsomia ledger bench: {n:,} leaves, {k:,} proofs, Python {platform.python_version()}")
    entries = make_entries(n)
    leaves = [leaf_hash(e) for e in entries]
    rows: list[tuple[str, float, str, str]] = []

    # Appends, one call per leaf (how the log grows) and bulk (how it restarts).
    tree = MerkleTree()
    append = tree.append
    t, _ = timed(lambda: [append(h) for h in leaves])
    rows.append(("append(), one leaf hash per call", n / t, "leaves/s", ""))
    t, rebuilt = timed(lambda: MerkleTree.from_leaf_hashes(leaves))
    rows.append(("from_leaf_hashes(), bulk rebuild", n / t, "leaves/s", ""))
    assert isinstance(rebuilt, MerkleTree)
    assert rebuilt.root() == tree.root()

    # Full re-verification from raw entries: leaf hashes, then the root from scratch.
    expected_root = tree.root()

    def reverify() -> bytes:
        return root([leaf_hash(e) for e in entries])

    t, got = timed(reverify)
    assert got == expected_root, "re-verified root differs"
    reverify_rate = n / t
    rows.append(("full re-verification (hash + root)", reverify_rate, "entries/s", _goal(reverify_rate, GOAL_REVERIFY)))

    # Inclusion proofs at the full size over random indices.
    indices = [rng.randrange(n) for _ in range(k)]
    size = n
    tree_root = tree.root()
    proof_of = tree.inclusion_proof
    t, _ = timed(lambda: [proof_of(i, size) for i in indices])
    rows.append(("inclusion proof, generate only", k / t, "proofs/s", ""))

    def generate_and_verify() -> None:
        for i in indices:
            verify_inclusion(leaves[i], i, size, proof_of(i, size), tree_root)

    t, _ = timed(generate_and_verify)
    proof_rate = k / t
    rows.append(("inclusion proof, generate + verify", proof_rate, "proofs/s", _goal(proof_rate, GOAL_PROOFS)))

    # The same at random past sizes (proofs for an older checkpoint).
    past = [(i, rng.randrange(i + 1, n + 1)) for i in indices]
    past_roots = {s: tree.root(s) for _, s in past}

    def past_generate_and_verify() -> None:
        for i, s in past:
            verify_inclusion(leaves[i], i, s, proof_of(i, s), past_roots[s])

    t, _ = timed(past_generate_and_verify)
    rows.append(("inclusion proof at a past size, gen + verify", k / t, "proofs/s", ""))

    # Consistency proofs from random older sizes to the full size.
    olds = [rng.randrange(1, n) for _ in range(k)]
    old_roots = {m: tree.root(m) for m in olds}
    consistency_of = tree.consistency_proof

    def consistency() -> None:
        for m in olds:
            verify_consistency(m, size, old_roots[m], tree_root, consistency_of(m, size))

    t, _ = timed(consistency)
    rows.append(("consistency proof, generate + verify", k / t, "proofs/s", ""))
    t, _ = timed(lambda: [consistency_of(m, size) for m in olds])
    rows.append(("consistency proof, generate only", k / t, "proofs/s", ""))

    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'measurement'.ljust(width)}  {'rate':>12}  unit        goal")
    print(f"{'-' * width}  {'-' * 12}  ----------  ----")
    for label, rate, unit, goal in rows:
        print(f"{label.ljust(width)}  {rate:>12,.0f}  {unit:<10}  {goal}")
    print()
    met = reverify_rate >= GOAL_REVERIFY and proof_rate >= GOAL_PROOFS
    verdict = "MET" if met else "NOT MET"
    print(f"goals: >= {GOAL_REVERIFY:,} entries/s re-verified, >= {GOAL_PROOFS:,} proofs/s: {verdict}")
    return 0


def _goal(rate: float, goal: int) -> str:
    return f"{'MET' if rate >= goal else 'NOT MET'} (>= {goal:,})"


if __name__ == "__main__":
    sys.exit(main())
