"""A what-if that changes only how late a relay arrives is a change: the analyst asks "at what
delay", so a relay through the same hub under an arrangement with another delay is reported,
and two stretches relayed with different delays are never merged into one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from gsomia.domain.coverage import CoverageIndex, FlowSegment
from gsomia.domain.whatif import FlowChange, compare_flows

T0 = datetime(2019, 11, 1, tzinfo=UTC)
T1 = datetime(2019, 12, 1, tzinfo=UTC)
T2 = datetime(2020, 1, 1, tzinfo=UTC)
HOURS = timedelta(hours=1)


class _Segments:
    """An index that answers ``segments`` from a fixed list (one pair, one topic)."""

    def __init__(self, *segments: FlowSegment) -> None:
        self._segments = list(segments)

    def segments(self, o: str, r: str, topic: str, lo: datetime, hi: datetime) -> list[FlowSegment]:
        return self._segments


def _relay(start: datetime, end: datetime, hours: int, arrangement: str) -> FlowSegment:
    return FlowSegment("JPN", "KOR", "dprk.missile.launch", start, end, "relay", "USA", hours * HOURS, arrangement)


def _compare(before: _Segments, after: _Segments) -> list[FlowChange]:
    return compare_flows(
        cast(CoverageIndex, before), cast(CoverageIndex, after), T0, T2, [("JPN", "KOR")], ["dprk.missile.launch"]
    )


def test_a_relay_that_only_arrives_later_is_a_change() -> None:
    before = _Segments(_relay(T0, T2, 2, "FAST"))
    after = _Segments(_relay(T0, T2, 4, "SLOW"))
    (change,) = _compare(before, after)
    assert (change.before, change.before_via, change.before_delay) == ("relay", "USA", 2 * HOURS)
    assert (change.after, change.after_via, change.after_delay, change.after_agreement) == (
        "relay",
        "USA",
        4 * HOURS,
        "SLOW",
    )
    assert change.kind == "changed"


def test_stretches_relayed_with_different_delays_are_not_merged() -> None:
    before = _Segments(FlowSegment("JPN", "KOR", "dprk.missile.launch", T0, T2, "direct"))
    after = _Segments(_relay(T0, T1, 4, "SLOW"), _relay(T1, T2, 6, "SLOWER"))
    changes = _compare(before, after)
    assert [(c.start, c.end, c.after_delay, c.after_agreement) for c in changes] == [
        (T0, T1, 4 * HOURS, "SLOW"),
        (T1, T2, 6 * HOURS, "SLOWER"),
    ]
    assert {c.kind for c in changes} == {"rerouted"}


def test_the_same_relay_on_both_sides_is_no_change_and_adjacent_equal_changes_merge() -> None:
    assert (
        _compare(_Segments(_relay(T0, T2, 4, "TISA")), _Segments(_relay(T0, T1, 4, "TISA"), _relay(T1, T2, 4, "TISA")))
        == []
    )
    before = _Segments(
        FlowSegment("JPN", "KOR", "dprk.missile.launch", T0, T1, "direct"),
        FlowSegment("JPN", "KOR", "dprk.missile.launch", T1, T2, "direct"),
    )
    (change,) = _compare(before, _Segments(_relay(T0, T2, 4, "TISA")))
    assert (change.start, change.end, change.kind) == (T0, T2, "rerouted")
