"""Operator actions: an agreement event changes the decisions made from the next instant on while
past deliveries keep their markings (Art. 21.4), and the exercise clock moves only forward, only
for operators, only in exercise mode."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gsomia.bootstrap import Settings, build
from gsomia.domain.instants import parse_instant
from gsomia.errors import Conflict, InvalidInput, NotPermitted, StorageError, UnknownEntity, ValidationFailed
from gsomia.services.exchange.access import Role
from gsomia.services.exchange.operator import EventSpec
from tests.harness import NOV22, Harness, start, start_terminated

LOWER_MAX = EventSpec(kind="amendment", changes={"max_level": "CONFIDENTIAL"}, note="exercise inject")
"""An amendment lowering the Japan–Korea GSOMIA's maximum level: 極秘 (SECRET) no longer fits."""


def test_an_event_changes_later_decisions_and_past_deliveries_keep_their_markings(harness: Harness) -> None:
    before = harness.submit("JPN", recipients=["KOR"], payload=b"before")
    (item,) = harness.deliveries("KOR")
    recorded = harness.exchange.operator.record_event(harness.principals["operator"], "JPN-KOR-GSOMIA", LOWER_MAX)
    assert (recorded["event"]["kind"], recorded["event"]["agreement"], recorded["event"]["note"]) == (
        "amendment",
        "JPN-KOR-GSOMIA",
        "exercise inject",
    )
    # now, unless told: just after the instant of its transaction and of every decision before it
    assert recorded["event"]["at"] == "2019-11-22T01:00:00.000001+00:00"
    assert recorded["status"]["in_force"] is True
    after = harness.submit("JPN", recipients=["KOR"])
    kor = harness.decision(after, "KOR")
    assert (kor["decision"], kor["via"], kor["outcome"]) == ("relay", "USA", "pending_consent")
    assert harness.outcomes(before) == {"KOR": "delivered"}
    # Art. 21.4: what was provided stays protected, with its marking, and still opens
    view = harness.exchange.deliveries.delivery(harness.principals["KOR"], item["id"])
    assert view["marking"]["banner"] == "군사II급비밀 (JPN 極秘)"
    assert harness.open("KOR", item["id"]) == b"before"
    entry = harness.app.ledger.entry(recorded["leaf_index"])["entry"]
    assert (entry["type"], entry["kind"], entry["agreement"], entry["recorded_by"]) == (
        "agreement_event",
        "amendment",
        "JPN-KOR-GSOMIA",
        harness.principals["operator"].id,
    )


def test_an_event_with_its_own_id_and_instant_is_stored_as_given(harness: Harness) -> None:
    spec = EventSpec(kind="termination", at="2019-11-22T12:00+09:00", id="op-tisa-end", source="exercise")
    recorded = harness.exchange.operator.record_event(harness.principals["operator"], "TISA", spec)
    assert (recorded["event"]["id"], recorded["event"]["at"], recorded["event"]["source"]) == (
        "op-tisa-end",
        "2019-11-22T03:00+00:00",
        "exercise",
    )
    assert recorded["status"]["in_force"] is True  # ends at noon; it is ten o'clock
    entry = harness.app.ledger.entry(recorded["leaf_index"])["entry"]
    assert (entry["event"], entry["event_at"]) == ("op-tisa-end", "2019-11-22T03:00+00:00")


@pytest.mark.parametrize("who", ["JPN", "KOR", "auditor"])
def test_only_operators_record_events(harness: Harness, who: str) -> None:
    with pytest.raises(NotPermitted, match="may not record agreement events"):
        harness.exchange.operator.record_event(harness.principals[who], "JPN-KOR-GSOMIA", LOWER_MAX)
    assert harness.outcomes(harness.submit("JPN", recipients=["KOR"])) == {"KOR": "delivered"}


@pytest.mark.parametrize(
    ("agreement", "spec", "error", "message"),
    [
        ("NOPE", LOWER_MAX, UnknownEntity, "unknown agreement 'NOPE'"),
        ("JPN-KOR-GSOMIA", EventSpec(kind="notice", by="USA"), ValidationFailed, "USA"),
        ("JPN-KOR-GSOMIA", EventSpec(kind="explode"), ValidationFailed, "kind"),
        ("TISA", EventSpec(kind="termination", at="yesterday"), ValidationFailed, "at"),
    ],
)
def test_bad_events_are_refused_and_change_nothing(
    harness: Harness, agreement: str, spec: EventSpec, error: type[Exception], message: str
) -> None:
    written = harness.written()
    with pytest.raises(error, match=message):
        harness.exchange.operator.record_event(harness.principals["operator"], agreement, spec)
    assert harness.written() == written
    assert harness.outcomes(harness.submit("JPN", recipients=["KOR"])) == {"KOR": "delivered"}


def test_events_need_a_loaded_scenario(tmp_path: Path) -> None:
    app = build(Settings(db=f"sqlite:///{tmp_path / 'empty.db'}", data_dir=tmp_path))
    try:
        operator = app.exchange.identity.add_principal(role=Role.OPERATOR, name="the operator").principal
        with pytest.raises(StorageError, match="no scenario is loaded"):
            app.exchange.operator.record_event(operator, "TISA", EventSpec(kind="termination"))
    finally:
        app.close()


# --- the exercise clock -----------------------------------------------------------------------------


def test_jumping_the_exercise_clock_past_the_end_of_the_gsomia_reroutes_the_next_track(tmp_path: Path) -> None:
    h = start_terminated(tmp_path, at=NOV22, exercise_clock=NOV22)
    try:
        assert h.outcomes(h.submit("JPN", recipients=["KOR"])) == {"KOR": "delivered"}
        moved = h.exchange.operator.advance_clock(h.principals["operator"], "2019-11-23T00:00+09:00")
        assert h.exchange.clock.now() == moved
        kor = h.decision(h.submit("JPN", recipients=["KOR"]), "KOR")
        assert (kor["decision"], kor["via"], kor["arrangement"]) == ("relay", "USA", "TISA")
        info = h.exchange.clock.info()
        assert info is not None
        assert info.header() == "clock=2019-11-22T15:00+00:00; whatif=no-suspension.yaml"
    finally:
        h.close()


def test_the_exercise_clock_only_moves_forward_and_only_for_operators(tmp_path: Path) -> None:
    h = start(tmp_path, exercise_clock=NOV22)
    try:
        operator = h.exchange.operator
        with pytest.raises(Conflict, match="only moves forward"):
            operator.advance_clock(h.principals["operator"], "2019-11-22T09:59+09:00")
        for who in ("JPN", "auditor"):
            with pytest.raises(NotPermitted):
                operator.advance_clock(h.principals[who], "2019-11-23T00:00+09:00")
        with pytest.raises(InvalidInput, match="no offset"):
            operator.advance_clock(h.principals["operator"], "2019-11-23T00:00")
        with pytest.raises(InvalidInput, match="invalid instant"):
            operator.advance_clock(h.principals["operator"], "tomorrow")
        assert h.exchange.clock.now() == h.clock()  # none of that moved it
        assert operator.advance_clock(h.principals["operator"], NOV22) == h.clock()  # standing still is allowed
    finally:
        h.close()


def test_an_exchange_clock_run_past_the_supported_range_decides_nothing(tmp_path: Path) -> None:
    h = start(tmp_path, exercise_clock=NOV22)
    try:
        operator = h.exchange.operator
        assert operator.advance_clock(h.principals["operator"], "2999-12-31T23:59:58Z").year == 2999
        assert h.outcomes(h.submit("JPN", recipients=["KOR"])) == {"KOR": "delivered"}
        # the exercise runs on into the year 3000: the clock, not the report, is wrong
        h.clock.advance(timedelta(seconds=3))
        written = h.written()
        with pytest.raises(StorageError, match="outside the supported range"):
            h.submit("JPN", recipients=["KOR"])
        assert h.written() == written
    finally:
        h.close()


def test_the_real_clock_is_never_set(harness: Harness) -> None:
    assert harness.exchange.clock.info() is None
    with pytest.raises(NotPermitted, match="only in exercise mode"):
        harness.exchange.operator.advance_clock(harness.principals["operator"], "2019-11-23T00:00+09:00")


def test_an_event_id_already_used_is_a_conflict(harness: Harness) -> None:
    operator = harness.exchange.operator
    spec = EventSpec(kind="amendment", id="op-1", changes={"max_level": "CONFIDENTIAL"})
    operator.record_event(harness.principals["operator"], "JPN-KOR-GSOMIA", spec)
    written = harness.written()
    with pytest.raises(Conflict, match="op-1"):
        operator.record_event(harness.principals["operator"], "JPN-KOR-GSOMIA", spec)
    assert harness.written() == written


# --- an event and the decisions around it -----------------------------------------------------------


def test_events_recorded_at_once_are_each_checked_on_the_record_with_the_other(harness: Harness) -> None:
    """Two operators end TISA at the same moment: each termination is valid alone, not both (the
    second would end an agreement already ended). The one that commits second is checked again on
    the record holding the first, and refused; the stored record stays one that compiles."""
    operator = harness.exchange.operator
    store = harness.app.store
    read = store.read_versioned_document
    other: list[str] = []

    def racing() -> tuple[dict[str, Any], str] | None:
        found = read()
        if not other:  # the other operator's termination commits between this read and the write
            other.append("recording")
            operator.record_event(harness.principals["operator"], "TISA", EventSpec(kind="termination"))
        return found

    store.read_versioned_document = racing  # type: ignore[method-assign]
    try:
        with pytest.raises(ValidationFailed, match="termination after the agreement ended"):
            operator.record_event(harness.principals["operator"], "TISA", EventSpec(kind="termination", by="USA"))
    finally:
        del store.read_versioned_document
    assert len(other) == 1
    events = [e for e in store.events() if e.agreement == "TISA" and e.origin == "operator"]
    assert len(events) == 1  # only the first is stored
    harness.exchange.context.records.invalidate()
    assert harness.exchange.context.records.network().record.agreements["TISA"]  # the record compiles


def test_an_event_recorded_now_comes_after_every_decision_made_without_it(harness: Harness) -> None:
    before = harness.submit("JPN", recipients=["KOR"])
    decided = parse_instant(harness.decision(before, "KOR")["at"], "UTC")
    recorded = harness.exchange.operator.record_event(harness.principals["operator"], "JPN-KOR-GSOMIA", LOWER_MAX)
    lowered = parse_instant(recorded["event"]["at"], "UTC")
    assert lowered > decided  # the clock has not moved: a microsecond later
    # The record as stored says what the decision relied on at its instant: 極秘 (SECRET) fitted.
    timeline = harness.exchange.context.records.network().timelines["JPN-KOR-GSOMIA"]
    assert timeline.terms_at(decided)[1] != "CONFIDENTIAL" and timeline.terms_at(lowered)[1] == "CONFIDENTIAL"
    after = harness.decision(harness.submit("JPN", recipients=["KOR"]), "KOR")
    assert parse_instant(after["at"], "UTC") >= lowered  # the clock stands still; instants do not go back
    assert (after["decision"], after["via"]) == ("relay", "USA")


@pytest.mark.parametrize(
    ("at", "effective"),
    [
        ("2019-11-22T09:00+09:00", None),  # an hour ago
        ("2019-11-22T10:00+09:00", None),  # at the instant of the last decision
        (None, "2019-11-21T00:00+09:00"),  # recorded now, in effect since yesterday
    ],
)
def test_an_event_that_would_rewrite_what_decisions_relied_on_is_a_conflict(
    harness: Harness, at: str | None, effective: str | None
) -> None:
    harness.submit("JPN", recipients=["KOR"])
    written = harness.written()
    spec = EventSpec(kind="amendment", changes={"max_level": "CONFIDENTIAL"}, at=at, effective=effective)
    with pytest.raises(Conflict, match="would change whether JPN-KOR-GSOMIA was in force"):
        harness.exchange.operator.record_event(harness.principals["operator"], "JPN-KOR-GSOMIA", spec)
    assert harness.written() == written
    assert harness.outcomes(harness.submit("JPN", recipients=["KOR"])) == {"KOR": "delivered"}


def test_an_event_of_yesterday_whose_effect_is_still_to_come_is_recorded(harness: Harness) -> None:
    harness.submit("JPN", recipients=["KOR"])
    spec = EventSpec(
        kind="amendment",
        changes={"max_level": "CONFIDENTIAL"},
        at="2019-11-21T10:00+09:00",  # agreed yesterday
        effective="2019-11-23T00:00+09:00",  # in effect tomorrow: nothing decided so far changes
    )
    recorded = harness.exchange.operator.record_event(harness.principals["operator"], "JPN-KOR-GSOMIA", spec)
    assert recorded["event"]["at"] == "2019-11-21T01:00+00:00"
    assert harness.outcomes(harness.submit("JPN", recipients=["KOR"])) == {"KOR": "delivered"}
