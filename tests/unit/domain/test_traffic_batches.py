"""The exchange's recorded decisions replayed under a what-if: exact batches, the four kinds of
change, selection and drill-down."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsomia.domain.record import Caveats, Network, Record, WhatIf, apply_whatif, compile_network
from gsomia.domain.routing import Decision, ReleaseRequest, explain
from gsomia.domain.traffic import (
    CHANGED,
    RELEASED,
    REROUTED,
    STOPPED,
    TrafficRow,
    TrafficSelection,
    breakpoints,
    replay_traffic,
)
from tests.conftest import kst

EXPIRY = kst("2019-11-23")  # when the notice would have ended the Japan–Korea GSOMIA
PARTIES = ("JPN", "KOR", "USA")
LEVELS = {"JPN": ("極秘", "秘", "機密"), "KOR": ("군사II급비밀", "군사III급비밀"), "USA": ("SECRET", "TOP SECRET")}
TOPICS = ("dprk.missile.launch", "dprk.nuclear.test", "dprk.military.movement", "dprk.sigint")
NO_CAVEATS = Caveats()


def row(
    net: Network,
    at: datetime,
    originator: str = "JPN",
    recipient: str = "KOR",
    topic: str = "dprk.missile.launch",
    level: str = "極秘",
    *,
    caveats: Caveats = NO_CAVEATS,
    decision: str | None = None,
    report: str = "JPN/R-1",
    outcome: str = "delivered",
) -> TrafficRow:
    """A stored decision as the exchange would have recorded it at ``at`` (or ``decision``)."""
    if decision is None:
        req = ReleaseRequest(
            originator=originator, recipient=recipient, topic=topic, level=level, at=at, caveats=caveats
        )
        decision = str(explain(net, req).decision)
    return (report, originator, recipient, topic, level, caveats, at, decision, outcome)


def brute_force(recorded: Network, whatif: Network, rows: list[TrafficRow]) -> Counter[tuple[str, str, str, str]]:
    """Each row decided on its own, with no batching: (originator, recipient, topic, kind) counts."""
    out: Counter[tuple[str, str, str, str]] = Counter()
    for _report, o, r, topic, level, caveats, at, decision, _outcome in rows:
        req = ReleaseRequest(originator=o, recipient=r, topic=topic, level=level, at=at, caveats=caveats)
        after, today = explain(whatif, req), explain(recorded, req)
        recorded_kind = Decision(decision)
        if recorded_kind is Decision.DENY:
            kind = None if after.decision is Decision.DENY else RELEASED
        elif after.decision is Decision.DENY:
            kind = STOPPED
        elif recorded_kind is Decision.DIRECT and after.decision is Decision.RELAY:
            kind = REROUTED
        elif recorded_kind is not after.decision or (
            today.decision is recorded_kind
            and (
                today.via != after.via
                or (today.marking and today.marking.recipient_level)
                != (after.marking and after.marking.recipient_level)
            )
        ):
            kind = CHANGED
        else:
            kind = None
        if kind is not None:
            out[(o, r, topic, kind)] += 1
    return out


def counted(impact: Any) -> Counter[tuple[str, str, str, str]]:
    out: Counter[tuple[str, str, str, str]] = Counter()
    for g in impact.groups:
        out[(g.originator, g.recipient, g.topic, g.kind)] += g.count
    return out


def test_ending_the_agreement_stops_and_reroutes_what_was_released_after_expiry(
    net: Network, no_suspension: Network
) -> None:
    rows = [
        row(net, kst("2019-11-22T10:00+09:00"), report="JPN/R-1"),  # before expiry: unchanged
        row(net, kst("2019-12-01T10:00+09:00"), report="JPN/R-2"),  # missile track: rerouted through the US
        row(
            net, kst("2019-12-01T10:00+09:00"), topic="dprk.military.movement", report="JPN/R-3"
        ),  # outside TISA: stopped
    ]
    impact = replay_traffic(net, no_suspension, [rows])
    assert impact.decisions == 3 and impact.unchanged == 1 and impact.drift == 0
    assert impact.count(REROUTED) == 1 and impact.count(STOPPED) == 1
    rerouted = next(g for g in impact.groups if g.kind == REROUTED)
    assert (rerouted.after, rerouted.after_via, rerouted.after_delay) == ("relay", "USA", timedelta(hours=4))
    assert rerouted.after_level == "군사II급비밀"
    assert rerouted.reports == [("JPN/R-2", kst("2019-12-01T10:00+09:00"))]
    stopped = next(g for g in impact.groups if g.kind == STOPPED)
    assert stopped.topic == "dprk.military.movement" and stopped.after == "deny"
    assert impact.first == kst("2019-11-22T10:00+09:00") and impact.last == kst("2019-12-01T10:00+09:00")


def test_a_decision_at_the_boundary_is_decided_at_its_own_instant(net: Network, no_suspension: Network) -> None:
    """Batching never rounds an instant: one microsecond either side of the expiry (and of the
    expiry less the relay delay, where the onward leg of a relay crosses it) decides apart."""
    micro = timedelta(microseconds=1)
    four = timedelta(hours=4)
    instants = [EXPIRY - micro, EXPIRY, EXPIRY - four - micro, EXPIRY - four, EXPIRY - four + micro]
    rows = [row(net, at, report=f"JPN/R-{i}") for i, at in enumerate(instants)]
    rows += [
        row(net, at, "KOR", "JPN", "dprk.nuclear.test", "군사II급비밀", report=f"KOR/R-{i}")
        for i, at in enumerate(instants)
    ]
    impact = replay_traffic(net, no_suspension, [rows])
    assert counted(impact) == brute_force(net, no_suspension, rows)
    assert EXPIRY in breakpoints(no_suspension) and EXPIRY - four in breakpoints(no_suspension)
    rerouted = {at for g in impact.groups if g.kind == REROUTED for _k, at in g.reports}
    assert EXPIRY in rerouted and EXPIRY - micro not in rerouted


# Hypothesis takes naive bounds and attaches the zone it is given to what it draws
instants = st.datetimes(
    min_value=datetime(2014, 6, 1),  # noqa: DTZ001
    max_value=datetime(2024, 6, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
).map(lambda d: d.replace(microsecond=0))


@st.composite
def stored_rows(draw: st.DrawFn, net: Network) -> list[TrafficRow]:
    out = []
    for i in range(draw(st.integers(1, 40))):
        o = draw(st.sampled_from(PARTIES))
        r = draw(st.sampled_from([p for p in PARTIES if p != o]))
        # mostly as the exchange would have decided, sometimes another (a record changed since)
        decision = draw(st.one_of(st.none(), st.sampled_from(["direct", "relay", "deny"])))
        rel_to = draw(st.sampled_from([None, frozenset({r}), frozenset({"USA"})]))
        caveats = Caveats(rel_to=rel_to, orcon=draw(st.booleans()))
        out.append(
            row(
                net,
                draw(st.one_of(instants, st.sampled_from([EXPIRY, EXPIRY - timedelta(hours=4), kst("2023-03-21")]))),
                o,
                r,
                draw(st.sampled_from(TOPICS)),
                draw(st.sampled_from(LEVELS[o])),
                caveats=caveats,
                decision=decision,
                report=f"{o}/R-{i}",
            )
        )
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_batched_replay_equals_deciding_every_row_on_its_own(
    data: st.DataObject, record: Record, net: Network, no_suspension: Network
) -> None:
    whatif = data.draw(
        st.sampled_from(
            [
                no_suspension,
                compile_network(apply_whatif(record, WhatIf("w", drop=("jpn-kor-2019-notice",)))),
                compile_network(apply_whatif(record, WhatIf("w", drop=("tisa-entry-into-force",)))),
            ]
        )
    )
    rows = data.draw(stored_rows(net))
    # pages of any size: batching spans pages
    cut = data.draw(st.integers(0, len(rows)))
    impact = replay_traffic(net, whatif, [rows[:cut], rows[cut:]], keep=3)
    assert counted(impact) == brute_force(net, whatif, rows)
    assert impact.decisions == len(rows)
    assert impact.unchanged + sum(g.count for g in impact.groups) == len(rows)
    for g in impact.groups:
        assert len(g.reports) == min(3, g.count)
        assert [at for _k, at in g.reports] == sorted(at for _k, at in g.reports)
        assert g.first is not None and g.last is not None and g.first <= g.reports[0][1]


def test_a_refusal_that_would_have_been_a_release_and_a_relay_that_would_have_gone_direct(
    net: Network, record: Record
) -> None:
    # TISA never in force: what went through the US between Japan and Korea before the GSOMIA...
    before_gsomia = kst("2016-06-01T10:00+09:00")
    relayed = row(net, before_gsomia, report="JPN/R-1")
    assert relayed[7] == "relay"
    # ...and a GSOMIA in force from 2015: the relay would have gone direct, and a refusal
    # (a topic TISA does not cover) would have been a release
    earlier = WhatIf(
        "earlier",
        drop=("jpn-kor-gsomia-entry-into-force",),
    )
    from gsomia.domain.agreements import AgreementEvent, EventKind

    entry = AgreementEvent(
        id="jpn-kor-2015", agreement="JPN-KOR-GSOMIA", kind=EventKind.ENTRY_INTO_FORCE, at=kst("2015-11-23")
    )
    # signed then too: no event of an agreement may precede its signature, in a what-if as in history
    signed = AgreementEvent(
        id="jpn-kor-2015-signature", agreement="JPN-KOR-GSOMIA", kind=EventKind.SIGNATURE, at=kst("2015-11-23")
    )
    whatif = compile_network(apply_whatif(record, WhatIf("earlier", add=(signed, entry), drop=earlier.drop)))
    refused = row(net, before_gsomia, topic="dprk.military.movement", report="JPN/R-2")
    assert refused[7] == "deny"
    impact = replay_traffic(net, whatif, [[relayed, refused]])
    kinds = {g.kind: g for g in impact.groups}
    assert set(kinds) == {CHANGED, RELEASED}
    assert (kinds[CHANGED].before, kinds[CHANGED].after) == ("relay", "direct")
    assert kinds[RELEASED].after == "direct"


def test_decisions_the_record_already_decides_otherwise_are_counted_apart(net: Network, no_suspension: Network) -> None:
    # recorded as a direct release, though today's record refuses it (JPN 機密 is outside the GSOMIA)
    drifted = row(net, kst("2019-12-01T10:00+09:00"), level="機密", decision="direct")
    impact = replay_traffic(net, no_suspension, [[drifted]])
    assert impact.drift == 1
    (g,) = impact.groups
    assert g.kind == STOPPED and g.without_whatif == 1


def test_selection_keeps_only_what_it_names(net: Network, no_suspension: Network) -> None:
    at = kst("2019-12-01T10:00+09:00")
    rows = [
        row(net, at, report="JPN/R-1"),
        row(net, at, "KOR", "JPN", "dprk.missile.launch", "군사II급비밀", report="KOR/R-2"),
        row(net, at, "JPN", "USA", report="JPN/R-3"),
        row(net, kst("2020-06-01"), report="JPN/R-4"),
    ]
    seen: list[int] = []
    impact = replay_traffic(
        net,
        no_suspension,
        [rows],
        selection=TrafficSelection(parties=("JPN", "KOR"), topic="dprk.missile.launch", end=kst("2020-01-01")),
        progress=seen.append,
    )
    assert seen == [4]  # every row read is reported, selected or not
    assert impact.decisions == 2
    assert {(g.originator, g.recipient) for g in impact.groups} == {("JPN", "KOR"), ("KOR", "JPN")}


def test_only_the_earliest_reports_are_kept(net: Network, no_suspension: Network) -> None:
    start = kst("2019-12-01")
    rows = [row(net, start + timedelta(hours=h), report=f"JPN/R-{h:03d}") for h in reversed(range(50))]
    impact = replay_traffic(net, no_suspension, [rows[:7], rows[7:]], keep=4)
    (g,) = impact.groups
    assert g.count == 50
    assert [k for k, _at in g.reports] == ["JPN/R-000", "JPN/R-001", "JPN/R-002", "JPN/R-003"]
    assert (g.first, g.last) == (start, start + timedelta(hours=49))


def test_nothing_recorded_replays_to_nothing(net: Network, no_suspension: Network) -> None:
    impact = replay_traffic(net, no_suspension, [])
    assert (impact.decisions, impact.groups, impact.first, impact.last) == (0, (), None, None)


@pytest.mark.parametrize("kind", [STOPPED, REROUTED, CHANGED, RELEASED])
def test_every_kind_is_counted_by_name(kind: str, net: Network, no_suspension: Network) -> None:
    impact = replay_traffic(net, no_suspension, [[row(net, kst("2019-12-01T10:00+09:00"))]])
    assert impact.count(kind) == (1 if kind == REROUTED else 0)
