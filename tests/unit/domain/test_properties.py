"""Laws of the engine, checked with Hypothesis."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gsomia.domain.agreements import Agreement, AgreementEvent, EventKind, NoticeRule, Term
from gsomia.domain.coverage import CoverageIndex, contains
from gsomia.domain.lifecycle import derive_timeline
from gsomia.domain.markings import EquivalenceTable
from gsomia.domain.record import Network, Record, compile_network
from gsomia.domain.routing import Decision, ReleaseRequest, explain
from gsomia.domain.topics import Scope

T0 = datetime(2014, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 1, 1, tzinfo=UTC)
instants = st.integers(min_value=0, max_value=int((T1 - T0).total_seconds()) - 1).map(
    lambda s: T0 + timedelta(seconds=s)
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _seconds_after(at: datetime, seconds: int) -> datetime:
    return at + timedelta(seconds=seconds)


@st.composite
def event_sequences(draw: st.DrawFn) -> list[AgreementEvent]:
    kinds = st.sampled_from(list(EventKind))
    n = draw(st.integers(min_value=0, max_value=8))
    out = []
    for i in range(n):
        kind = draw(kinds)
        at = draw(instants)
        by = draw(st.sampled_from(["JPN", "KOR", None]))
        eff = draw(
            st.one_of(
                st.none(),
                st.integers(min_value=0, max_value=400 * 86400).map(partial(_seconds_after, at)),
            )
        )
        out.append(AgreementEvent(id=f"e{i}", agreement="A", kind=kind, at=at, by=by, effective=eff))
    return out


AGREEMENTS = [
    Agreement(
        id="A", name="annual", parties=("JPN", "KOR"), timezone="Asia/Seoul", term=Term(1, 1), notice=NoticeRule(90)
    ),
    Agreement(
        id="A", name="five", parties=("JPN", "KOR"), timezone="Asia/Tokyo", term=Term(5, None), notice=NoticeRule(180)
    ),
    Agreement(id="A", name="open", parties=("JPN", "KOR"), timezone="UTC"),
]


@SETTINGS
@given(events=event_sequences(), which=st.sampled_from(AGREEMENTS), probe=instants)
def test_states_change_only_at_event_instants_or_derived_ends(
    events: list[AgreementEvent], which: Agreement, probe: datetime
) -> None:
    tl = derive_timeline(which, events)
    instants_of_events = {e.at for e in events} | {e.effective for e in events if e.effective}
    for seg in tl.segments[1:]:
        # a change is caused by an event at that instant, or is the end a pending notice
        # (or a term without renewal) scheduled earlier
        assert seg.start in instants_of_events or seg.cause is None
        if seg.cause is None:
            assert any(s.ends_at == seg.start for s in tl.segments)
    # constant between change points
    points = [s.start for s in tl.segments]
    i = max(k for k, p in enumerate(points) if p <= probe)
    nxt = points[i + 1] if i + 1 < len(points) else T1 + timedelta(days=3650)
    mid = probe + (nxt - probe) / 2
    assert tl.state_at(probe) is tl.state_at(mid) is tl.segments[i].state


@SETTINGS
@given(events=event_sequences(), which=st.sampled_from(AGREEMENTS))
def test_lifecycle_instants_are_monotone(events: list[AgreementEvent], which: Agreement) -> None:
    tl = derive_timeline(which, events)
    starts = [s.start for s in tl.segments]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)


levels_of = {
    "JPN": ["機密", "極秘", "特定秘密", "秘"],
    "KOR": ["군사I급비밀", "군사II급비밀", "군사III급비밀", "대외비"],
    "USA": ["TOP SECRET", "SECRET", "CONFIDENTIAL"],
}


@st.composite
def requests(draw: st.DrawFn, record: Record) -> ReleaseRequest:
    parties = sorted(record.parties)
    o = draw(st.sampled_from(parties))
    r = draw(st.sampled_from(parties))
    level = draw(st.sampled_from([*list(record.parties[o].ladder.names()), "BOGUS"]))
    topic = draw(st.sampled_from([*sorted(record.topics), "dprk.unknown", "Bad Topic"]))
    at = draw(st.one_of(instants, st.just(None)))
    return ReleaseRequest(originator=o, recipient=r, topic=topic, level=level, at=at)


@SETTINGS
@given(data=st.data())
def test_every_deny_carries_a_reason(net: Network, data: st.DataObject) -> None:
    req = data.draw(requests(net.record))
    route = explain(net, req)
    if route.decision is Decision.DENY:
        assert route.reasons
    else:
        assert route.marking is not None and route.path[0] == req.originator and route.path[-1] == req.recipient


@st.composite
def extra_agreements(draw: st.DrawFn, record: Record) -> tuple[Agreement, list[AgreementEvent]]:
    parties = draw(st.lists(st.sampled_from(sorted(record.parties)), min_size=2, max_size=3, unique=True))
    scope = draw(
        st.lists(
            st.sampled_from(["*", "dprk", "dprk.missile", "dprk.nuclear.test", "dprk.sigint"]), min_size=1, max_size=2
        )
    )
    table = EquivalenceTable.build(["SECRET"], {"SECRET": {p: [record.parties[p].ladder.names()[0]] for p in parties}})
    hub = draw(st.one_of(st.none(), st.sampled_from(parties))) if len(parties) == 3 else None
    a = Agreement(
        id="EXTRA",
        name="extra",
        parties=tuple(parties),
        scope=Scope(frozenset(scope)),
        max_level="SECRET",
        equivalence=table,
        hub=hub,
        direct=hub is None or draw(st.booleans()),
        relay_delay=timedelta(hours=draw(st.integers(0, 48))) if hub else None,
    )
    start = draw(instants)
    events = [AgreementEvent(id="extra-eif", agreement="EXTRA", kind=EventKind.ENTRY_INTO_FORCE, at=start)]
    if draw(st.booleans()):
        events.append(
            AgreementEvent(
                id="extra-end",
                agreement="EXTRA",
                kind=EventKind.TERMINATION,
                at=start + timedelta(days=draw(st.integers(1, 2000))),
            )
        )
    return a, events


@SETTINGS
@given(data=st.data())
def test_adding_an_agreement_never_turns_an_allow_into_a_deny(
    record: Record, net: Network, data: st.DataObject
) -> None:
    extra, events = data.draw(extra_agreements(record))
    bigger = compile_network(
        replace(record, agreements={**record.agreements, extra.id: extra}, events=record.events + tuple(events))
    )
    for _ in range(10):
        req = data.draw(requests(record))
        before = explain(net, req)
        if before.allowed:
            after = explain(bigger, req)
            assert after.allowed, (req, after.reasons)


@SETTINGS
@given(data=st.data())
def test_translation_round_trips_through_the_common_level(record: Record, data: st.DataObject) -> None:
    tables = [a for a in record.agreements.values() if a.equivalence is not None]
    a = data.draw(st.sampled_from(tables))
    table = a.equivalence
    assert table is not None
    o = data.draw(st.sampled_from(sorted(table.parties())))
    r = data.draw(st.sampled_from(sorted(table.parties())))
    level = data.draw(st.sampled_from(table.national_levels(o)))
    m = table.translate(o, level, r)
    assume(m is not None)
    assert m is not None
    back = table.translate(r, m.recipient_level, o)
    assert back is not None and back.common_level == m.common_level
    assert table.to_common(o, table.from_common(m.common_level, o) or "") == m.common_level


@SETTINGS
@given(data=st.data())
def test_coverage_agrees_with_routes_and_gaps(no_suspension: Network, data: st.DataObject) -> None:
    net = no_suspension
    idx = CoverageIndex(net)
    parties = ["JPN", "KOR", "USA", "AUS"]
    o = data.draw(st.sampled_from(parties))
    r = data.draw(st.sampled_from([p for p in parties if p != o]))
    topic = data.draw(st.sampled_from(sorted(net.record.topics)))
    at = data.draw(instants)
    flow = idx.flow_at(o, r, topic, at)
    decisions = {
        explain(net, ReleaseRequest(originator=o, recipient=r, topic=topic, level=lv, at=at)).decision
        for lv in net.record.parties[o].ladder.names()
    }
    assert (flow.route == "direct") == (Decision.DIRECT in decisions)
    if flow.route in ("none", "unknown"):  # unknown is not a gap, but nothing is released on a guess
        assert decisions == {Decision.DENY}
    if flow.route == "relay":
        assert Decision.RELAY in decisions
    # the exact segments say the same thing as the point query
    segs = idx.segments(o, r, topic, T0, T1)
    seg = next(s for s in segs if s.start <= at < s.end)
    assert (seg.route, seg.via) == (flow.route, flow.via)
    assert contains([(s.start, s.end) for s in segs], at)


@SETTINGS
@given(data=st.data())
def test_a_decision_does_not_depend_on_the_decisions_asked_before(
    record: Record, no_suspension: Network, data: st.DataObject
) -> None:
    # Decisions are memoised per pair and interval between change instants: a network that
    # has answered requests hours either side must give exactly the answer a fresh one gives.
    chosen = data.draw(st.sampled_from([record, no_suspension.record]))
    warm, fresh = compile_network(chosen), compile_network(chosen)
    parties = st.sampled_from(sorted(chosen.parties))
    o, r = data.draw(st.one_of(st.sampled_from(sorted(warm.relays)), st.tuples(parties, parties)))
    topic = data.draw(st.sampled_from(sorted(chosen.topics)))
    at = data.draw(instants)
    nearby = st.integers(min_value=-8 * 3600, max_value=8 * 3600).map(partial(_seconds_after, at))
    before = data.draw(st.lists(nearby, min_size=1, max_size=4))
    for level in chosen.parties[o].ladder.names():
        req = ReleaseRequest(originator=o, recipient=r, topic=topic, level=level, at=at)
        for earlier in before:
            explain(warm, replace(req, at=earlier))
        assert explain(warm, req) == explain(fresh, req), req
