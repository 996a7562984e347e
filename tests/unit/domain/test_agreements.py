"""Agreement lifecycle derived from events (docs/design.md §3; GSOMIA Art. 21)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest

from gsomia.domain.agreements import Agreement, AgreementEvent, EventKind, NoticeRule, Reckoning, Term, assess_notice
from gsomia.domain.lifecycle import State, derive_timeline, status_at, term_ends
from gsomia.domain.record import Network, Record, WhatIf, apply_whatif, compile_network
from gsomia.errors import InvalidInput, UnknownEntity
from tests.conftest import kst

GSOMIA = "JPN-KOR-GSOMIA"


def _ev(
    eid: str, kind: EventKind, at: str, by: str | None = None, effective: str | None = None, agreement: str = "A"
) -> AgreementEvent:
    return AgreementEvent(
        id=eid, agreement=agreement, kind=kind, at=kst(at), by=by, effective=kst(effective) if effective else None
    )


def _annual(**kw: object) -> Agreement:
    base = Agreement(
        id="A", name="a", parties=("JPN", "KOR"), timezone="Asia/Seoul", term=Term(1, 1), notice=NoticeRule(90)
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_2019_notice_deadline_is_24_august(net: Network) -> None:
    status = status_at(net.timelines[GSOMIA], kst("2019-08-01"))
    assert status.notice_deadline == date(2019, 8, 24)
    assert status.term is not None and status.term[1] == kst("2019-11-23")


def test_a_notice_received_on_25_august_is_late_and_ends_the_following_term(net: Network) -> None:
    tl = net.timelines[GSOMIA]
    assert tl.entry is not None
    late = assess_notice(tl.agreement, tl.entry, kst("2019-08-25T12:00+09:00"))
    assert late.in_time is False
    assert late.deadline == date(2019, 8, 24)
    assert late.ends_at == datetime.fromisoformat("2020-11-23T00:00+09:00")
    on_time = assess_notice(tl.agreement, tl.entry, kst("2019-08-24T23:59+09:00"))
    assert on_time.in_time is True and on_time.ends_at == kst("2019-11-23")


def test_late_notice_as_a_whatif_ends_in_2020(record: Record) -> None:
    w = WhatIf(
        "late",
        add=(
            AgreementEvent(
                id="late", agreement=GSOMIA, kind=EventKind.NOTICE, at=kst("2019-08-25T12:00+09:00"), by="KOR"
            ),
        ),
        drop=("jpn-kor-2019-notice", "jpn-kor-2019-suspension", "jpn-kor-2023-withdrawal"),
    )
    tl = compile_network(apply_whatif(record, w)).timelines[GSOMIA]
    s = status_at(tl, kst("2019-12-01"))
    assert s.state is State.NOTICE_PENDING
    assert s.ends_at == datetime.fromisoformat("2020-11-23T00:00+09:00")
    assert tl.state_at(kst("2020-11-23")) is State.TERMINATED


@pytest.mark.parametrize(
    ("at", "state", "in_force", "ends_at"),
    [
        ("2016-11-22T23:59+09:00", State.NOT_YET_IN_FORCE, False, None),
        ("2019-08-01", State.IN_FORCE, True, None),
        ("2019-08-23T15:29+09:00", State.IN_FORCE, True, None),
        ("2019-08-23T15:30+09:00", State.NOTICE_PENDING, True, "2019-11-23T00:00+09:00"),
        ("2019-11-22T17:00+09:00", State.NOTICE_PENDING, True, "2019-11-23T00:00+09:00"),
        ("2019-11-22T19:00+09:00", State.NOTICE_SUSPENDED, True, None),
        ("2020-01-01", State.NOTICE_SUSPENDED, True, None),
        ("2023-04-01", State.IN_FORCE, True, None),
    ],
)
def test_the_2019_crisis_states(net: Network, at: str, state: State, in_force: bool, ends_at: str | None) -> None:
    s = status_at(net.timelines[GSOMIA], kst(at))
    assert s.state is state
    assert s.in_force is in_force
    assert s.ends_at == (datetime.fromisoformat(ends_at) if ends_at else None)


def test_without_the_suspension_it_terminates_at_midnight_kst(no_suspension: Network) -> None:
    tl = no_suspension.timelines[GSOMIA]
    assert tl.state_at(kst("2019-11-22T23:59:59+09:00")) is State.NOTICE_PENDING
    assert tl.state_at(kst("2019-11-23T00:00+09:00")) is State.TERMINATED
    s = status_at(tl, kst("2020-01-01"))
    assert s.ends_at == datetime.fromisoformat("2019-11-23T00:00+09:00")
    # the 2023 withdrawal cannot apply to an agreement that has ended: flagged, not guessed
    assert [a.event for a in tl.anomalies] == ["jpn-kor-2023-withdrawal"]


def test_revival_ends_it_on_the_named_date() -> None:
    events = [
        _ev("eif", EventKind.ENTRY_INTO_FORCE, "2016-11-23"),
        _ev("n", EventKind.NOTICE, "2019-08-23T15:30+09:00", by="KOR"),
        _ev("s", EventKind.SUSPENSION, "2019-11-22T18:00+09:00", by="KOR"),
        _ev("r", EventKind.REVIVAL, "2020-08-20", by="KOR", effective="2020-09-01"),
    ]
    tl = derive_timeline(_annual(), events)
    assert tl.state_at(kst("2020-08-25")) is State.NOTICE_PENDING
    assert status_at(tl, kst("2020-08-25")).ends_at == kst("2020-09-01")
    assert tl.state_at(kst("2020-09-01")) is State.TERMINATED
    assert not tl.anomalies


def test_withdrawal_resumes_plain_annual_extension() -> None:
    events = [
        _ev("eif", EventKind.ENTRY_INTO_FORCE, "2016-11-23"),
        _ev("n", EventKind.NOTICE, "2019-08-23", by="KOR"),
        _ev("w", EventKind.WITHDRAWAL, "2019-09-01", by="KOR"),
    ]
    tl = derive_timeline(_annual(), events)
    assert tl.state_at(kst("2025-01-01")) is State.IN_FORCE
    s = status_at(tl, kst("2025-01-01"))
    assert s.term == (kst("2024-11-23"), kst("2025-11-23"))
    assert s.notice_deadline == date(2025, 8, 24)


def test_29_february_anniversary_comes_back_in_leap_years() -> None:
    # Each term runs from the anniversary of entry into force: 28 February in a common
    # year, 29 February again in a leap year, not 28 February for ever after 2017.
    tl = derive_timeline(_annual(), [_ev("eif", EventKind.ENTRY_INTO_FORCE, "2016-02-29")])
    assert status_at(tl, kst("2017-01-01")).term == (kst("2016-02-29"), kst("2017-02-28"))
    assert status_at(tl, kst("2019-06-01")).term == (kst("2019-02-28"), kst("2020-02-29"))
    assert status_at(tl, kst("2019-06-01")).notice_deadline == date(2019, 11, 30)
    assert status_at(tl, kst("2020-06-01")).term == (kst("2020-02-29"), kst("2021-02-28"))


def test_late_notice_ends_the_following_term_on_29_february() -> None:
    events = [
        _ev("eif", EventKind.ENTRY_INTO_FORCE, "2016-02-29"),
        _ev("n", EventKind.NOTICE, "2018-12-01", by="KOR"),  # deadline for the 2019 end: 2018-11-29
    ]
    tl = derive_timeline(_annual(), events)
    assert status_at(tl, kst("2018-12-02")).ends_at == kst("2020-02-29")
    assert tl.state_at(kst("2020-02-28T23:59:59.999999+09:00")) is State.NOTICE_PENDING
    assert tl.state_at(kst("2020-02-29")) is State.TERMINATED


def test_a_term_ending_on_a_day_without_midnight_ends_at_its_first_instant() -> None:
    # Sao Paulo moved its clocks from 00:00 to 01:00 on 2018-11-04: that day begins at 01:00.
    brazil = _annual(timezone="America/Sao_Paulo")
    entry = datetime.fromisoformat("2017-11-04T00:00-02:00")
    tl = derive_timeline(brazil, [AgreementEvent(id="e", agreement="A", kind=EventKind.ENTRY_INTO_FORCE, at=entry)])
    first_instant = datetime.fromisoformat("2018-11-04T01:00-02:00")
    assert status_at(tl, first_instant - timedelta(microseconds=1)).term == (entry, first_instant)
    assert status_at(tl, first_instant).term is not None
    assert status_at(tl, first_instant).term == (first_instant, datetime.fromisoformat("2019-11-04T00:00-03:00"))


def test_term_without_renewal_expires() -> None:
    five = _annual(term=Term(5, None), notice=NoticeRule(180))
    tl = derive_timeline(five, [_ev("eif", EventKind.ENTRY_INTO_FORCE, "2010-03-01")])
    assert tl.state_at(kst("2015-02-28")) is State.IN_FORCE
    assert status_at(tl, kst("2015-02-28")).ends_at == kst("2015-03-01")
    assert tl.state_at(kst("2015-03-01")) is State.EXPIRED


def test_the_term_ends_of_a_term_without_renewal_are_listed_once() -> None:
    five = _annual(term=Term(5, None), notice=NoticeRule(180))
    tl = derive_timeline(five, [_ev("eif", EventKind.ENTRY_INTO_FORCE, "2010-03-01")])
    assert term_ends(tl, kst("2009-01-01"), kst("2030-01-01")) == [kst("2015-03-01")]
    assert term_ends(tl, kst("2016-01-01"), kst("2030-01-01")) == []
    renewed = derive_timeline(_annual(), [_ev("eif", EventKind.ENTRY_INTO_FORCE, "2016-11-23")])
    assert term_ends(renewed, kst("2019-01-01"), kst("2020-12-01")) == [
        kst("2019-11-23"),
        kst("2020-11-23"),
        kst("2021-11-23"),
    ]


def test_five_year_renewable_term() -> None:
    five = _annual(term=Term(5, 5), notice=NoticeRule(180))
    tl = derive_timeline(
        five, [_ev("eif", EventKind.ENTRY_INTO_FORCE, "2010-03-01"), _ev("n", EventKind.NOTICE, "2016-01-10", by="JPN")]
    )
    assert status_at(tl, kst("2016-02-01")).ends_at == kst("2020-03-01")  # in time for the 2020 term end
    assert tl.state_at(kst("2020-03-01")) is State.TERMINATED


def test_no_term_notice_runs_from_receipt() -> None:
    open_ended = _annual(term=None, notice=NoticeRule(180, Reckoning.AFTER_RECEIPT))
    tl = derive_timeline(
        open_ended,
        [
            _ev("eif", EventKind.ENTRY_INTO_FORCE, "2000-01-01"),
            _ev("n", EventKind.NOTICE, "2020-01-10T15:00+09:00", by="KOR"),
        ],
    )
    assert tl.term_at(kst("2020-01-01")) is None
    assert status_at(tl, kst("2020-01-11")).ends_at == kst("2020-01-10") + timedelta(days=181)


def test_unknown_notice_rule_takes_effect_on_the_named_date() -> None:
    arr = _annual(term=None, notice=None)
    tl = derive_timeline(
        arr,
        [
            _ev("eif", EventKind.ENTRY_INTO_FORCE, "2014-12-29"),
            _ev("n", EventKind.NOTICE, "2020-01-01", by="JPN", effective="2020-02-01"),
        ],
    )
    assert tl.state_at(kst("2020-01-15")) is State.NOTICE_PENDING
    assert tl.state_at(kst("2020-02-01")) is State.TERMINATED


def test_immediate_termination() -> None:
    tl = derive_timeline(
        _annual(), [_ev("eif", EventKind.ENTRY_INTO_FORCE, "2016-11-23"), _ev("t", EventKind.TERMINATION, "2018-05-05")]
    )
    assert tl.state_at(kst("2018-05-04")) is State.IN_FORCE
    assert tl.state_at(kst("2018-05-05")) is State.TERMINATED


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([_ev("s", EventKind.SUSPENSION, "2019-01-01")], "nothing to suspend"),
        (
            [
                _ev("eif", EventKind.ENTRY_INTO_FORCE, "2016-11-23"),
                _ev("eif2", EventKind.ENTRY_INTO_FORCE, "2017-01-01"),
            ],
            "second entry into force",
        ),
        (
            [_ev("eif", EventKind.ENTRY_INTO_FORCE, "2016-11-23"), _ev("n", EventKind.NOTICE, "2019-01-01")],
            "which party",
        ),
        (
            [_ev("eif", EventKind.ENTRY_INTO_FORCE, "2016-11-23"), _ev("n", EventKind.NOTICE, "2019-01-01", by="USA")],
            "not a party",
        ),
        (
            [
                _ev("eif", EventKind.ENTRY_INTO_FORCE, "2016-11-23"),
                _ev("w", EventKind.WITHDRAWAL, "2019-01-01", by="KOR"),
            ],
            "nothing to withdraw",
        ),
        (
            [
                _ev("eif", EventKind.ENTRY_INTO_FORCE, "2016-11-23"),
                _ev("n", EventKind.NOTICE, "2019-01-01", by="KOR"),
                _ev("s", EventKind.SUSPENSION, "2019-02-01", by="KOR"),
                _ev("r", EventKind.REVIVAL, "2019-03-01", by="KOR"),
            ],
            "must name when",
        ),
    ],
)
def test_events_that_cannot_apply_are_anomalies_not_guesses(events: list[AgreementEvent], message: str) -> None:
    tl = derive_timeline(_annual(), events)
    assert any(message in a.message for a in tl.anomalies), tl.anomalies


def test_notice_pending_then_new_notice_after_suspension_replaces_it() -> None:
    tl = derive_timeline(
        _annual(),
        [
            _ev("eif", EventKind.ENTRY_INTO_FORCE, "2016-11-23"),
            _ev("n1", EventKind.NOTICE, "2019-08-01", by="KOR"),
            _ev("s", EventKind.SUSPENSION, "2019-11-01", by="KOR"),
            _ev("n2", EventKind.NOTICE, "2021-09-01", by="JPN"),
        ],
    )
    s = status_at(tl, kst("2021-10-01"))
    assert s.state is State.NOTICE_PENDING and s.notice == "n2"
    assert s.ends_at == kst("2022-11-23")  # 1 September is after the 24 August deadline


def test_events_are_timezone_aware() -> None:
    with pytest.raises(InvalidInput, match="no time zone"):
        AgreementEvent(id="x", agreement="A", kind=EventKind.SIGNATURE, at=datetime(2019, 1, 1))  # noqa: DTZ001


def test_hub_must_be_a_party() -> None:
    with pytest.raises(InvalidInput, match="hub"):
        Agreement(id="X", name="x", parties=("JPN", "KOR"), hub="USA")


def test_whatif_refuses_unknown_events_and_bad_additions(record: Record) -> None:
    with pytest.raises(UnknownEntity):
        apply_whatif(record, WhatIf("w", drop=("no-such-event",)))
    bad = AgreementEvent(id="x", agreement=GSOMIA, kind=EventKind.SUSPENSION, at=kst("2018-01-01"), by="KOR")
    with pytest.raises(InvalidInput, match="nothing to suspend"):
        apply_whatif(record, WhatIf("w", add=(bad,)))


def test_a_whatif_event_before_the_signature_is_refused_as_in_recorded_history(record: Record) -> None:
    early = AgreementEvent(id="early-eif", agreement=GSOMIA, kind=EventKind.ENTRY_INTO_FORCE, at=kst("2016-11-01"))
    with pytest.raises(InvalidInput, match=r"what-if event early-eif \(entry_into_force.*before the signature"):
        apply_whatif(record, WhatIf("w", add=(early,)))
    # dropping the signature and signing later leaves recorded events before it
    late_sig = AgreementEvent(id="late-sig", agreement=GSOMIA, kind=EventKind.SIGNATURE, at=kst("2017-01-01"))
    with pytest.raises(InvalidInput, match="recorded event jpn-kor-gsomia-entry-into-force"):
        apply_whatif(record, WhatIf("w", add=(late_sig,), drop=("jpn-kor-gsomia-signature",)))
    # an earlier signature added with it makes the same event acceptable
    sig = AgreementEvent(id="early-sig", agreement=GSOMIA, kind=EventKind.SIGNATURE, at=kst("2016-10-01"))
    applied = apply_whatif(record, WhatIf("w", add=(sig, early)))
    assert {"early-sig", "early-eif"} <= {e.id for e in applied.events}


def test_a_recorded_event_before_a_whatif_signature_is_told_to_be_dropped(record: Record) -> None:
    # a what-if cannot re-date a recorded event: the error says to drop it, not to date it
    late_sig = AgreementEvent(id="late-sig", agreement=GSOMIA, kind=EventKind.SIGNATURE, at=kst("2017-01-01"))
    with pytest.raises(InvalidInput) as caught:
        apply_whatif(record, WhatIf("w", add=(late_sig,), drop=("jpn-kor-gsomia-signature",)))
    message = str(caught.value)
    assert "recorded event jpn-kor-gsomia-entry-into-force" in message
    assert "drop it too" in message
    assert "date it at or after" not in message
    # following the advice applies: the event dropped and added again after the signature
    eif = AgreementEvent(id="eif-again", agreement=GSOMIA, kind=EventKind.ENTRY_INTO_FORCE, at=kst("2017-01-01"))
    dropped = ("jpn-kor-gsomia-signature", "jpn-kor-gsomia-entry-into-force")
    applied = apply_whatif(record, WhatIf("w", add=(late_sig, eif), drop=dropped))
    assert "eif-again" in {e.id for e in applied.events}
