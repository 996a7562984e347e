"""The transparency-dev/merkle test vectors: every happy path verifies, every tampered
variant (bit flips, garbage, swapped roots, wrong sizes) is rejected.

The vectors live in ``tests/data/transparency-dev-merkle/`` (Apache-2.0, upstream commit in
``COMMIT`` there). A missing folder fails these tests: the ledger's proofs are always checked
against an independent implementation.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gsomia.errors import InvalidInput, LedgerInvalid
from gsomia.ledger.merkle import verify_consistency, verify_inclusion

VECTOR_ROOT = Path(__file__).resolve().parents[2] / "data" / "transparency-dev-merkle"
EXPECTED_FILES = 196  # 98 inclusion + 98 consistency at the pinned commit
TESTDATA = VECTOR_ROOT / "testdata"
FILES = (
    sorted(
        path.relative_to(VECTOR_ROOT).as_posix()
        for kind in ("inclusion", "consistency")
        for path in (TESTDATA / kind).rglob("*.json")
    )
    if TESTDATA.is_dir()
    else []
)
MISSING = "vectors-missing"


def _missing() -> None:
    message = (
        f"Merkle test vectors are missing: no testdata/ under {VECTOR_ROOT}. "
        "Restore the folder from git (git checkout -- tests/data/transparency-dev-merkle)."
    )
    pytest.fail(message)


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "", validate=True)


def _check(vector: dict[str, Any]) -> None:
    proof = [_b64(p) for p in vector["proof"] or []]
    if "leafIdx" in vector:
        verify_inclusion(_b64(vector["leafHash"]), vector["leafIdx"], vector["treeSize"], proof, _b64(vector["root"]))
    else:
        verify_consistency(vector["size1"], vector["size2"], _b64(vector["root1"]), _b64(vector["root2"]), proof)


def test_the_whole_vector_set_is_present() -> None:
    if not FILES:
        _missing()
    kinds = {name.split("/")[1] for name in FILES}
    assert kinds == {"inclusion", "consistency"}
    assert len(FILES) >= EXPECTED_FILES, f"found only {len(FILES)} vector files under {TESTDATA}"


@pytest.mark.parametrize("name", FILES or [MISSING])
def test_vector(name: str) -> None:
    if name == MISSING:
        _missing()
    vector = json.loads((VECTOR_ROOT / name).read_text(encoding="utf-8"))
    assert isinstance(vector["wantErr"], bool)
    if vector["wantErr"]:
        with pytest.raises((LedgerInvalid, InvalidInput)):
            _check(vector)
    else:
        _check(vector)
