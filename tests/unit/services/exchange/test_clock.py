"""The exchange clock: real time, or an exercise clock that runs on and only moves forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gsomia.errors import Conflict, NotPermitted
from gsomia.services.exchange.clock import ExchangeClock


class FakeSystem:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_normal_mode_is_the_system_clock_and_cannot_be_set() -> None:
    system = FakeSystem()
    clock = ExchangeClock(system=system)
    assert clock.now() == system.now
    assert clock.info() is None
    with pytest.raises(NotPermitted):
        clock.advance(system.now + timedelta(days=1))


def test_the_exercise_clock_runs_in_real_time_and_only_forward() -> None:
    system = FakeSystem()
    start = datetime.fromisoformat("2019-11-22T10:00+09:00")
    clock = ExchangeClock(system=system, exercise_start=start, whatif_name="drop.yaml")
    assert clock.now() == start
    system.now += timedelta(minutes=5)
    assert clock.now() == start + timedelta(minutes=5)
    seen: list[datetime] = []
    clock.on_advance(seen.append)
    target = datetime.fromisoformat("2019-12-01T10:00+09:00")
    clock.advance(target)
    assert clock.now() == target
    assert seen == [target]
    with pytest.raises(Conflict, match="only moves forward"):
        clock.advance(start)
    info = clock.info()
    assert info is not None
    assert info.header() == "clock=2019-12-01T01:00+00:00; whatif=drop.yaml"
