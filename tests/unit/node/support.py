"""Rows for the node's tests and benchmarks."""

from __future__ import annotations

from typing import Any

from gsomia.node.store import NodeStore, deliveries


def verified_row(n: int, *, prefix: str = "d", **columns: Any) -> dict[str, Any]:
    """A verified delivery ``{prefix}-{n}`` (seq ``n``) from JPN, as the sync would leave it;
    ``columns`` overrides any column."""
    return {
        "delivery_id": f"{prefix}-{n}",
        "seq": n,
        "report_id": f"R-{n}",
        "originator": "JPN",
        "topic": "dprk.missile.launch",
        "level": "군사II급비밀",
        "purpose": "direct",
        "marking": "{}",
        "caveats": "{}",
        "exercise": False,
        "state": "verified",
        "created": "2019-11-22T01:00:00Z",
        "received_at": "2019-11-22T01:00:00Z",
        "processed_at": "2019-11-22T01:00:00Z",
        "content_type": "application/json",
        "verification": "{}",
        "search": "",
    } | columns


def store_verified(store: NodeStore, numbers: range, *, prefix: str = "d", **columns: Any) -> None:
    """Store :func:`verified_row` for each of ``numbers``, in one transaction."""
    with store.write() as c:
        c.execute(deliveries.insert(), [verified_row(n, prefix=prefix, **columns) for n in numbers])
