"""Release decisions: rules 1–7, routes and marking translation on the bundled record."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gsomia.domain.agreements import AgreementEvent, EventKind
from gsomia.domain.policy import Allow, Deny, Rule
from gsomia.domain.record import Caveats, Network, Record, WhatIf, apply_whatif, compile_network
from gsomia.domain.routing import Decision, ReleaseRequest, Route, enforce, explain
from gsomia.domain.topics import Scope
from gsomia.errors import ReleaseDenied
from tests.conftest import kst


def ask(net: Network, o: str, r: str, topic: str, level: str, at: str | datetime | None, **caveats: Any) -> Route:
    when = kst(at) if isinstance(at, str) else at
    return explain(
        net, ReleaseRequest(originator=o, recipient=r, topic=topic, level=level, at=when, caveats=Caveats(**caveats))
    )


def test_direct_under_the_gsomia_with_art_4_marking(net: Network) -> None:
    r = ask(net, "JPN", "KOR", "dprk.missile.launch", "極秘", "2019-11-22T10:00+09:00")
    assert r.decision is Decision.DIRECT
    assert r.path == ("JPN", "KOR") and r.agreements == ("JPN-KOR-GSOMIA",)
    assert r.marking is not None
    assert (r.marking.originator, r.marking.recipient_level, r.marking.common_level) == (
        "JPN",
        "군사II급비밀",
        "SECRET",
    )
    assert r.marking.banner() == "군사II급비밀 (JPN 極秘)"
    assert isinstance(r.verdict, Allow)


def test_without_suspension_missile_launch_relays_via_usa_under_tisa(no_suspension: Network) -> None:
    r = ask(no_suspension, "JPN", "KOR", "dprk.missile.launch", "極秘", "2019-12-01")
    assert r.decision is Decision.RELAY
    assert r.path == ("JPN", "USA", "KOR")
    assert r.via == "USA" and r.arrangement == "TISA"
    assert r.consent_required is True
    assert r.marking is not None and r.marking.recipient_level == "군사II급비밀"
    assert r.agreements == ("TISA", "JPN-USA-GSOMIA", "KOR-USA-1987")
    assert r.delay.total_seconds() > 0
    assert any("modelling assumption" in a for a in r.assumptions)
    assert any(x.rule is Rule.IN_FORCE and "JPN-KOR-GSOMIA is terminated" in x.message for x in r.reasons)
    assert any(x.rule is Rule.THIRD_PARTY and "consent" in x.message for x in r.reasons)


def test_without_suspension_military_movement_is_denied_by_tisa_scope(no_suspension: Network) -> None:
    r = ask(no_suspension, "JPN", "KOR", "dprk.military.movement", "極秘", "2019-12-01")
    assert r.decision is Decision.DENY
    assert any(x.rule is Rule.SCOPE and x.agreement == "TISA" for x in r.reasons)
    assert any(x.rule is Rule.IN_FORCE and x.agreement == "JPN-KOR-GSOMIA" for x in r.reasons)


def test_kimitsu_is_denied_under_the_gsomia_citing_the_art_4_table(net: Network) -> None:
    r = ask(net, "JPN", "KOR", "dprk.missile.launch", "機密", "2018-06-01")
    assert r.decision is Decision.DENY
    level = [x for x in r.reasons if x.rule is Rule.LEVEL and x.agreement == "JPN-KOR-GSOMIA"]
    assert level and "Art. 4" in level[0].message and "機密" in level[0].message
    # nor can it go round the exclusion through the hub: TISA's maximum is SECRET
    assert any(x.rule is Rule.LEVEL and x.agreement == "TISA" for x in r.reasons)
    with pytest.raises(ReleaseDenied) as exc:
        enforce(net, r.request)
    assert exc.value.reasons == r.reasons


def test_kimitsu_goes_to_the_usa_at_top_secret(net: Network) -> None:
    r = ask(net, "JPN", "USA", "dprk.missile.launch", "機密", "2018-06-01")
    assert r.decision is Decision.DIRECT
    assert r.marking is not None and r.marking.recipient_level == "TOP SECRET"


def test_before_the_gsomia_only_tisa_carries_missile_launches(net: Network) -> None:
    r = ask(net, "JPN", "KOR", "dprk.missile.launch", "極秘", "2016-11-22")
    assert r.decision is Decision.RELAY and r.via == "USA"
    assert ask(net, "JPN", "KOR", "dprk.military.movement", "極秘", "2016-11-22").decision is Decision.DENY


def test_relay_onward_leg_is_checked_at_its_own_instant(record: Record) -> None:
    # TISA ends at 02:00 KST on 2020-01-01 (hypothetically), with the GSOMIA already gone:
    # a relay whose onward leg (4 h later) would fall after that is refused.
    end_tisa = AgreementEvent(
        id="tisa-end", agreement="TISA", kind=EventKind.TERMINATION, at=kst("2020-01-01T02:00+09:00")
    )
    net = compile_network(apply_whatif(record, WhatIf("w", add=(end_tisa,), drop=("jpn-kor-2019-suspension",))))
    ok = ask(net, "JPN", "KOR", "dprk.missile.launch", "極秘", "2019-12-31T21:00+09:00")
    assert ok.decision is Decision.RELAY
    assert ok.legs[1].at == kst("2020-01-01T01:00+09:00")
    late = ask(net, "JPN", "KOR", "dprk.missile.launch", "極秘", "2019-12-31T23:00+09:00")
    assert late.decision is Decision.DENY
    assert any(x.agreement == "TISA" and x.rule is Rule.IN_FORCE and "terminated" in x.message for x in late.reasons)


@pytest.mark.parametrize(
    ("o", "r", "topic", "level", "at", "fragment"),
    [
        ("XXX", "KOR", "dprk.missile.launch", "極秘", "2019-01-01", "unknown originator"),
        ("JPN", "KOR", "dprk.missile.launch", "TOP SECRET", "2019-01-01", "not a level of JPN"),
        ("JPN", "KOR", "dprk.weather", "極秘", "2019-01-01", "unknown topic"),
        ("JPN", "KOR", "Not A Topic", "極秘", "2019-01-01", "malformed topic"),
        ("JPN", "JPN", "dprk.missile.launch", "極秘", "2019-01-01", "itself"),
    ],
)
def test_rule_7_unknown_facts_deny(
    net: Network, o: str, r: str, topic: str, level: str, at: str, fragment: str
) -> None:
    route = ask(net, o, r, topic, level, at)
    assert route.decision is Decision.DENY
    assert all(x.rule is Rule.KNOWN for x in route.reasons)
    assert any(fragment in x.message for x in route.reasons)


def test_rule_7_a_clock_problem_denies(net: Network) -> None:
    naive = datetime(2019, 1, 1)  # noqa: DTZ001 - the point of the test
    route = ask(net, "JPN", "KOR", "dprk.missile.launch", "極秘", naive)
    assert route.decision is Decision.DENY and "time zone" in route.reasons[0].message
    assert ask(net, "JPN", "KOR", "dprk.missile.launch", "極秘", None).decision is Decision.DENY


def test_rule_4_caveats(net: Network) -> None:
    r = ask(net, "JPN", "KOR", "dprk.missile.launch", "極秘", "2018-06-01", rel_to=frozenset({"USA"}))
    assert r.decision is Decision.DENY and any(x.rule is Rule.CAVEATS for x in r.reasons)
    assert ask(net, "JPN", "USA", "dprk.missile.launch", "極秘", "2018-06-01", noforn=True).decision is Decision.DENY
    # REL TO the recipient but not the hub: no relay
    r = ask(net, "JPN", "KOR", "dprk.missile.launch", "極秘", "2016-01-01", rel_to=frozenset({"KOR"}))
    assert r.decision is Decision.DENY
    assert any(x.rule is Rule.CAVEATS and "relay hub USA" in x.message for x in r.reasons)


def test_orcon_relay_needs_per_report_consent(no_suspension: Network) -> None:
    r = ask(no_suspension, "JPN", "KOR", "dprk.missile.launch", "極秘", "2019-12-01", orcon=True)
    assert r.decision is Decision.RELAY and r.per_report_consent


def test_rule_5_no_competent_authority_denies(record: Record) -> None:
    kor = replace(record.parties["KOR"], authority=None)
    net = compile_network(replace(record, parties={**record.parties, "KOR": kor}))
    r = ask(net, "JPN", "KOR", "dprk.missile.launch", "極秘", "2018-06-01")
    assert r.decision is Decision.DENY and any(x.rule is Rule.AUTHORITY for x in r.reasons)


def test_no_agreement_at_all(net: Network) -> None:
    r = ask(net, "FRA", "DEU", "dprk.missile.launch", "SECRET", "2022-01-01")
    assert r.decision is Decision.DENY
    assert isinstance(r.verdict, Deny) and r.verdict.reasons


def test_not_yet_in_force_ukraine(net: Network) -> None:
    r = ask(net, "JPN", "UKR", "dprk.missile.launch", "極秘", "2025-01-01")
    assert r.decision is Decision.DENY
    assert any("not yet in force" in x.message for x in r.reasons)


def test_explain_never_raises_even_on_garbage(net: Network) -> None:
    r = explain(net, ReleaseRequest(originator="", recipient="", topic="", level="", at=None))
    assert r.decision is Decision.DENY and r.reasons


def test_deny_requires_a_reason() -> None:
    with pytest.raises(ValueError, match="at least one reason"):
        Deny(())


def test_a_relay_whose_onward_instant_is_past_the_calendar_is_denied_however_warm(record: Record) -> None:
    # TISA's onward leg is 4 h later: at the last hour of the calendar it has no instant, and
    # a decision asked there says so even after decisions in the same (last) interval.
    far = datetime.max.replace(tzinfo=UTC) - timedelta(hours=1)
    warm = compile_network(record)
    earlier = ask(warm, "JPN", "KOR", "dprk.missile.launch", "機密", datetime(2030, 1, 1, tzinfo=UTC))
    assert earlier.decision is Decision.DENY
    late = ask(warm, "JPN", "KOR", "dprk.missile.launch", "機密", far)
    assert late == ask(compile_network(record), "JPN", "KOR", "dprk.missile.launch", "機密", far)
    assert [r.message for r in late.reasons] == ["the decision could not be computed: date value out of range"]


def _change_instants(net: Network) -> list[datetime]:
    """Every instant at which a rule outcome can change (segment and piece starts, and the
    instants whose relay onward leg reaches one), with the microsecond either side."""
    found: set[datetime] = set()
    delays = {timedelta(0)} | {a.relay_delay for a in net.record.agreements.values() if a.relay_delay is not None}
    for tl in net.timelines.values():
        for start in (*tl.starts[1:], *tl.term_starts[1:]):
            for delay in delays:
                found.update(start - delay + timedelta(microseconds=tick) for tick in (-1, 0, 1))
    return sorted(found)


def test_memoised_decisions_equal_fresh_ones_at_every_change_in_either_order(record: Record) -> None:
    # Decisions are memoised per pair and interval between change instants. Walking every
    # change instant (and a microsecond either side) forwards and backwards, a network that
    # has answered all the earlier ones must give exactly what a fresh network gives. The
    # TISA-end what-if makes a relay's arrangement end between its two legs (4 h apart); the
    # KOR-USA-end one leaves the onward leg to an agreement whose reasons change when it
    # enters into force.
    end_tisa = AgreementEvent(
        id="tisa-end", agreement="TISA", kind=EventKind.TERMINATION, at=kst("2020-01-01T02:00+09:00")
    )
    end_kor_usa = AgreementEvent(
        id="kor-usa-end", agreement="KOR-USA-1987", kind=EventKind.TERMINATION, at=kst("2020-06-01")
    )
    records = [
        record,
        apply_whatif(record, WhatIf("w", drop=("jpn-kor-2019-suspension",))),
        apply_whatif(record, WhatIf("w", add=(end_tisa,), drop=("jpn-kor-2019-suspension",))),
        apply_whatif(record, WhatIf("w", add=(end_kor_usa,), drop=("jpn-kor-2019-suspension",))),
    ]
    parties = ("JPN", "KOR", "USA")
    for chosen in records:
        changes = _change_instants(compile_network(chosen))
        for walk in (changes, changes[::-1]):
            warm = compile_network(chosen)
            for at in walk:
                fresh = compile_network(chosen)
                for o in parties:
                    for r in (p for p in parties if p != o):
                        for topic in sorted(chosen.topics):
                            for level in chosen.parties[o].ladder.names():
                                req = ReleaseRequest(originator=o, recipient=r, topic=topic, level=level, at=at)
                                assert explain(warm, req) == explain(fresh, req), req


def _amendment(eid: str, at: datetime, effective: datetime, **changes: object) -> AgreementEvent:
    return AgreementEvent(
        id=eid, agreement="JPN-KOR-GSOMIA", kind=EventKind.AMENDMENT, at=at, effective=effective, changes=changes
    )


def test_amendments_apply_in_the_order_they_take_effect_not_the_order_recorded(record: Record) -> None:
    # Recorded first, taking effect last: a narrower scope. Recorded second, taking effect at
    # once: a lower maximum. Between the two, the maximum alone is amended; after both, both.
    at_once = datetime(2020, 1, 31, 15, tzinfo=UTC)
    add = (
        _amendment(
            "amend-scope",
            datetime(2019, 12, 31, 15, tzinfo=UTC),
            datetime(2020, 5, 31, 15, tzinfo=UTC),
            scope=Scope(frozenset({"dprk.nuclear"})),
        ),
        _amendment("amend-max", at_once, at_once, max_level="CONFIDENTIAL"),
    )
    net = compile_network(apply_whatif(record, WhatIf("two amendments", add=add)))
    tl = net.timelines["JPN-KOR-GSOMIA"]
    assert tl.term_starts == sorted(tl.term_starts)
    assert tl.terms_at(datetime(2020, 3, 1, tzinfo=UTC)) == (Scope(frozenset({"*"})), "CONFIDENTIAL")
    assert tl.terms_at(datetime(2020, 7, 1, tzinfo=UTC)) == (Scope(frozenset({"dprk.nuclear"})), "CONFIDENTIAL")
    for when in (datetime(2020, 3, 1, tzinfo=UTC), datetime(2020, 7, 1, tzinfo=UTC)):
        secret = explain(
            net, ReleaseRequest(originator="JPN", recipient="KOR", topic="dprk.missile.launch", level="極秘", at=when)
        )
        assert "JPN-KOR-GSOMIA" not in secret.agreements, (when, secret)  # 極秘 is SECRET: above the amended maximum
        confidential = explain(
            net, ReleaseRequest(originator="JPN", recipient="KOR", topic="dprk.nuclear.test", level="秘", at=when)
        )
        assert confidential.decision is Decision.DIRECT, (when, confidential)
