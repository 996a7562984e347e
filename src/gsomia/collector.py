"""The garbage collector's settings for a long-running server process (the exchange's and the
party node's; why and how much: docs/adr/0003)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["SERVING_THRESHOLDS", "serving"]

SERVING_THRESHOLDS = (10_000, 20, 20)
"""The collector's generation thresholds while serving."""


@contextmanager
def serving() -> Iterator[None]:
    """While serving: what start-up built (compiled record, Merkle tree, routes, modules, key
    rings) is frozen out of the collector's passes, which would otherwise stop every thread of
    the process for tens of milliseconds when they walk it (a full pass over a party node's
    heap took about 50 ms); young objects are collected less often. The thresholds are put
    back afterwards."""
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(*SERVING_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
