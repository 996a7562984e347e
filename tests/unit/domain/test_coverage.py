"""Coverage at an instant, exact gaps over a period, and what-if comparison."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gsomia.domain.agreements import AgreementEvent, EventKind
from gsomia.domain.coverage import CoverageIndex, coverage_at, earlier, gaps, intersect, union, unknowns
from gsomia.domain.lifecycle import State, status_at
from gsomia.domain.record import Network, WhatIf, apply_whatif, compile_network
from gsomia.domain.routing import Decision, ReleaseRequest, explain
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


def test_an_agreement_with_no_recorded_entry_into_force_is_unknown_not_a_gap(net: Network) -> None:
    # KOR-AUS-CMI was signed on 2009-05-30; no source read gives its entry into force
    tl = net.timelines["KOR-AUS-CMI"]
    assert tl.entry is None and tl.unknown_from == kst("2009-05-30")
    before, after = status_at(tl, kst("2009-05-29")), status_at(tl, kst("2019-12-01"))
    assert (before.state, before.unknown) == (State.NOT_YET_IN_FORCE, False)
    assert (after.state, after.unknown) == (State.NOT_YET_IN_FORCE, True)
    assert not status_at(net.timelines["JPN-KOR-GSOMIA"], kst("2019-12-01")).unknown

    idx = CoverageIndex(net)
    flow = idx.flow_at("KOR", "AUS", "dprk.missile.launch", kst("2019-12-01"))
    assert (flow.route, flow.agreement) == ("unknown", "KOR-AUS-CMI")
    assert idx.flow_at("KOR", "AUS", "dprk.missile.launch", kst("2009-05-29")).route == "none"
    # FRA and DEU have no agreement at all: that is a gap, not an unknown
    assert idx.flow_at("FRA", "DEU", "dprk.missile.launch", kst("2019-12-01")).route == "none"

    pairs, topics = [("KOR", "AUS"), ("AUS", "KOR")], ["dprk.missile.launch"]
    # a gap only until the signature; from then on the record is silent, not empty
    assert [(g.originator, g.start, g.end) for g in gaps(idx, kst("2008-01-01"), kst("2024-01-01"), pairs, topics)] == [
        ("KOR", kst("2008-01-01"), kst("2009-05-30")),
        ("AUS", kst("2008-01-01"), kst("2009-05-30")),
    ]
    found = unknowns(idx, kst("2008-01-01"), kst("2024-01-01"), pairs, topics)
    assert [(s.originator, s.start, s.end, s.agreement) for s in found] == [
        ("KOR", kst("2009-05-30"), kst("2024-01-01"), "KOR-AUS-CMI"),
        ("AUS", kst("2009-05-30"), kst("2024-01-01"), "KOR-AUS-CMI"),
    ]
    # no release on a guess: the route check still denies (rule 7)
    r = explain(
        net,
        ReleaseRequest(
            originator="KOR", recipient="AUS", topic="dprk.missile.launch", level="군사II급비밀", at=kst("2019-12-01")
        ),
    )
    assert r.decision is Decision.DENY


def test_recording_the_entry_into_force_turns_unknown_into_a_route(net: Network) -> None:
    eif = AgreementEvent(
        id="whatif-1", agreement="KOR-AUS-CMI", kind=EventKind.ENTRY_INTO_FORCE, at=kst("2010-01-01"), hypothetical=True
    )
    known = compile_network(apply_whatif(net.record, WhatIf("eif", add=(eif,))))
    idx = CoverageIndex(known)
    assert known.timelines["KOR-AUS-CMI"].unknown_from is None
    assert idx.flow_at("KOR", "AUS", "dprk.missile.launch", kst("2019-12-01")).route == "direct"
    segs = idx.segments("KOR", "AUS", "dprk.missile.launch", kst("2008-01-01"), kst("2011-01-01"))
    assert [(s.route, s.start) for s in segs] == [("none", kst("2008-01-01")), ("direct", kst("2010-01-01"))]
    assert unknowns(idx, kst("2008-01-01"), kst("2024-01-01"), [("KOR", "AUS")], ["dprk.missile.launch"]) == []


def test_unknown_coverage_in_the_matrix_is_per_topic_in_scope_and_levels(net: Network) -> None:
    flows = {
        (f.originator, f.recipient): f.route
        for f in coverage_at(
            CoverageIndex(net),
            kst("2019-12-01"),
            [("KOR", "AUS"), ("JPN", "UKR"), ("KOR", "JPN")],
            ["dprk.missile.launch"],
        )
    }
    # JPN-UKR-ISA is signed only in 2024-11: in 2019 there is no agreement to be unsure of
    assert flows == {("KOR", "AUS"): "unknown", ("JPN", "UKR"): "none", ("KOR", "JPN"): "direct"}
    assert CoverageIndex(net).flow_at("JPN", "UKR", "dprk.missile.launch", kst("2025-01-01")).route == "unknown"
