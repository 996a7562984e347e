"""The outbox keeps each signed submission whole, private and under its own name."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from gsomia.client.outbox import Outbox
from gsomia.errors import InvalidInput

BODY = b'{"report": {"id": "r/1", "payload": "dHJhY2s="}, "signature": "c2ln", "key": "k"}'


def test_kept_private_and_found_again(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox")
    kept = outbox.keep("JPN", "r/1", BODY)
    assert kept.path.parent == tmp_path / "outbox" / "JPN"  # an id never names another path
    assert kept.path.name == "r%2F1.json"
    assert stat.S_IMODE(kept.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.path.parent.stat().st_mode) == 0o700
    assert [p.name for p in kept.path.parent.iterdir()] == ["r%2F1.json"]  # no temporary left
    found = outbox.find("JPN", "r/1")
    assert found is not None and found.body == BODY
    assert found.report()["id"] == "r/1"
    assert found.payload_digest() == hashlib.sha256(b"track").hexdigest()
    assert outbox.find("KOR", "r/1") is None
    outbox.remove(found)
    assert outbox.find("JPN", "r/1") is None
    outbox.remove(found)  # twice is fine


def test_a_file_that_is_not_a_submission_is_named(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    kept = outbox.keep("JPN", "r-2", b"not json")
    with pytest.raises(InvalidInput, match="not a signed submission"):
        kept.report()
    with pytest.raises(InvalidInput, match="empty"):
        outbox.path("JPN", "")
