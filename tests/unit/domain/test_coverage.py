"""Coverage at an instant, exact gaps over a period, and what-if comparison."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gsomia.domain.coverage import CoverageIndex, coverage_at, earlier, gaps, intersect, union
from gsomia.domain.record import Network
from gsomia.domain.whatif import compare_flows, replay_reports
from tests.conftest import kst

D = datetime(2020, 1, 1, tzinfo=UTC)


def h(n: int) -> datetime:
    return D + timedelta(hours=n)


def test_interval_algebra() -> None:
    assert union([(h(0), h(2))], [(h(1), h(3)), (h(5), h(6))]) == [(h(0), h(3)), (h(5), h(6))]
    assert intersect([(h(0), h(3)), (h(5), h(9))], [(h(2), h(6))]) == [(h(2), h(3)), (h(5), h(6))]
    assert earlier([(h(4), h(8))], timedelta(hours=4)) == [(h(0), h(4))]
    assert union([(h(1), h(1))]) == []


def test_coverage_on_the_eve_of_expiry_and_after(net: Network, no_suspension: Network) -> None:
    flows = {
        (f.originator, f.recipient, f.topic): f
        for f in coverage_at(
            CoverageIndex(net), kst("2019-12-01"), [("JPN", "KOR")], ["dprk.missile.launch", "dprk.military.movement"]
        )
    }
    assert flows["JPN", "KOR", "dprk.missile.launch"].route == "direct"
    assert flows["JPN", "KOR", "dprk.military.movement"].route == "direct"
    idx = CoverageIndex(no_suspension)
    f = idx.flow_at("JPN", "KOR", "dprk.missile.launch", kst("2019-12-01"))
    assert (f.route, f.via, f.delay) == ("relay", "USA", timedelta(hours=4))
    assert idx.flow_at("JPN", "KOR", "dprk.military.movement", kst("2019-12-01")).route == "none"


def test_military_movement_gap_starts_at_midnight_kst(no_suspension: Network) -> None:
    idx = CoverageIndex(no_suspension)
    found = gaps(
        idx, kst("2019-01-01"), kst("2021-01-01"), [("JPN", "KOR")], ["dprk.military.movement", "dprk.missile.launch"]
    )
    assert [(g.topic, g.start, g.end) for g in found] == [
        ("dprk.military.movement", datetime.fromisoformat("2019-11-23T00:00+09:00"), kst("2021-01-01"))
    ]


def test_recorded_history_has_no_gap_during_the_suspension(net: Network) -> None:
    idx = CoverageIndex(net)
    assert (
        gaps(idx, kst("2016-11-23"), kst("2024-01-01"), [("JPN", "KOR"), ("KOR", "JPN")], sorted(net.record.topics))
        == []
    )
    before = gaps(idx, kst("2014-01-01"), kst("2016-11-23"), [("JPN", "KOR")], ["dprk.missile.launch"])
    assert [(g.start, g.end) for g in before] == [(kst("2014-01-01"), kst("2014-12-29"))]


def test_segments_are_exact_at_relay_boundaries(net: Network) -> None:
    segs = CoverageIndex(net).segments("JPN", "KOR", "dprk.missile.launch", kst("2014-01-01"), kst("2017-01-01"))
    assert [(s.route, s.start) for s in segs] == [
        ("none", kst("2014-01-01")),
        ("relay", kst("2014-12-29")),
        ("direct", kst("2016-11-23")),
    ]


def test_compare_flows_and_replay(net: Network, no_suspension: Network) -> None:
    changes = compare_flows(
        CoverageIndex(net),
        CoverageIndex(no_suspension),
        kst("2014-01-01"),
        kst("2024-01-01"),
        [("JPN", "KOR")],
        ["dprk.missile.launch", "dprk.military.movement"],
    )
    kinds = {(c.topic, c.kind, c.start, c.after_via) for c in changes}
    assert kinds == {
        ("dprk.missile.launch", "rerouted", kst("2019-11-23"), "USA"),
        ("dprk.military.movement", "stopped", kst("2019-11-23"), None),
    }
    changed = [r for r in replay_reports(net, no_suspension, net.record.reports) if r.changed]
    assert [(r.report.id, r.recipient) for r in changed] == [("r-2019-11-28-mrl", "KOR")]
