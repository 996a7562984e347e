"""What the node's unit tests share."""

from __future__ import annotations

from typing import Any

import pytest

from gsomia.node.store import NodeStore


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
