"""A key-encryption key the exchange cannot use is its operator's to fix, not the caller's: a
submission is answered as the exchange being unavailable (503, nothing written) with no server
path in the answer (``gsomia serve`` names the file, and the fix, before it serves:
tests/unit/cli/test_serve_listen.py)."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import pytest

from gsomia.bootstrap import Settings, build
from gsomia.errors import StorageError


def _readable_kek(data: Path) -> Path:
    data.mkdir(mode=0o700)
    kek = data / "exchange.kek"
    kek.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    kek.chmod(0o644)  # put back with the wrong mode
    return kek


def test_a_submission_is_told_the_exchange_is_unavailable_never_that_its_input_was_wrong(tmp_path: Path) -> None:
    kek = _readable_kek(tmp_path / "data")
    app = build(Settings(db=f"sqlite:///{tmp_path / 'gsomia.db'}", data_dir=kek.parent))
    try:
        with pytest.raises(StorageError, match="cannot use its key-encryption key") as refused:
            app.exchange.context.seal("JPN/R-1", secrets.token_bytes(32))
    finally:
        app.close()
    assert str(kek) not in str(refused.value)
