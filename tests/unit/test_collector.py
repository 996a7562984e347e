"""A serving process keeps what start-up built out of the collector's passes, and puts the
collector back as it was when it stops serving."""

from __future__ import annotations

import gc

from gsomia import collector


def test_serving_freezes_the_heap_and_raises_the_thresholds_then_puts_them_back() -> None:
    before = gc.get_threshold()
    built_at_start_up = [{"n": n} for n in range(1000)]
    with collector.serving():
        assert gc.get_threshold() == collector.SERVING_THRESHOLDS
        assert gc.get_freeze_count() >= len(built_at_start_up)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0  # a process serving again (tests) does not pile them up
