"""The exchange clock: real time, or an exercise clock that runs on and only moves forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gsomia.errors import Conflict, InvalidInput, NotPermitted
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


@pytest.mark.parametrize(
    "instant",
    [
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),  # would overflow a moment later
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(3000, 1, 1, tzinfo=UTC),
        datetime(1899, 12, 31, tzinfo=UTC),
    ],
)
def test_the_exercise_clock_is_never_set_outside_the_supported_years(instant: datetime) -> None:
    system = FakeSystem()
    with pytest.raises(InvalidInput, match="out of range"):
        ExchangeClock(system=system, exercise_start=instant)
    start = datetime.fromisoformat("2019-11-22T10:00+09:00")
    clock = ExchangeClock(system=system, exercise_start=start)
    with pytest.raises(InvalidInput, match="out of range"):
        clock.advance(instant)
    assert clock.now() == start  # unchanged, and still readable a long time later
    system.now += timedelta(days=365 * 100)
    assert clock.now() == start + timedelta(days=365 * 100)


def test_the_exercise_clock_can_reach_the_last_supported_year_and_keeps_running() -> None:
    system = FakeSystem()
    clock = ExchangeClock(system=system, exercise_start=datetime.fromisoformat("2019-11-22T10:00+09:00"))
    last = datetime(2999, 12, 31, 23, 59, tzinfo=UTC)
    clock.advance(last)
    system.now += timedelta(days=2)
    assert clock.now() == last + timedelta(days=2)
    info = clock.info()
    assert info is not None and info.header().startswith("clock=3000-01-02T23:59")
