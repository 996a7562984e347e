"""The transparency-dev/merkle test vectors: every happy path verifies, every tampered
variant (bit flips, garbage, swapped roots, wrong sizes) is rejected.

The vectors are not part of this repository. They are read from ``$GSOMIA_MERKLE_VECTORS``
or ``../shared/vectors/transparency-dev-merkle/`` next to the repository (``.ci/run`` finds
them and sets the variable). A fresh clone without them says so and skips only these tests.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from gsomia.errors import InvalidInput, LedgerInvalid
from gsomia.ledger.merkle import verify_consistency, verify_inclusion

REPO_ROOT = Path(__file__).resolve().parents[3]
EXPECTED_FILES = 196  # 98 inclusion + 98 consistency at the pinned commit


def _vector_root() -> Path:
    configured = os.environ.get("GSOMIA_MERKLE_VECTORS")
    if configured:
        return Path(configured)
    return REPO_ROOT.parent / "shared" / "vectors" / "transparency-dev-merkle"


VECTOR_ROOT = _vector_root()
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
        "Set GSOMIA_MERKLE_VECTORS to the folder that holds transparency-dev/merkle's testdata/."
    )
    pytest.skip(message)


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
