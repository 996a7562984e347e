"""What the node's unit tests share."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gsomia.node.store import NodeStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[NodeStore]:
    """An empty node store under a random key (closed after the test)."""
    s = NodeStore(tmp_path / "node.db", secrets.token_bytes(32))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def writes(store: NodeStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The test's ``store`` write transactions from now on, one element each (clear it to count
    from a later point)."""
    counted: list[int] = []
    write = store.write

    def counting() -> Any:
        counted.append(1)
        return write()

    monkeypatch.setattr(store, "write", counting)
    return counted
