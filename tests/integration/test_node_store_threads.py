"""The node's encrypted store under concurrent readers, as the node's API threads use it."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

from gsomia.node.store import NodeStore


def test_many_threads_read_the_store_at_once(tmp_path: Path) -> None:
    # The console asks for several things at once, and the API serves each request on its own
    # thread: more threads than a per-thread pool keeps must all get their answer.
    store = NodeStore(tmp_path / "node.db", secrets.token_bytes(32))
    store.put("greeting", "안녕")
    errors: list[str] = []
    answers: list[str | None] = []

    def read() -> None:
        try:
            answers.extend(store.get("greeting") for _ in range(25))
        except Exception as e:  # noqa: BLE001 - any failure is the test's finding
            errors.append(repr(e))

    threads = [threading.Thread(target=read) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    assert errors == []
    assert answers == ["안녕"] * 16 * 25
