"""Submitting a report: every recipient is decided once, allowed ones get a delivery marked in
their own ladder, a resubmission is answered from the store, and a refused submission writes
nothing (DESIGN §3, rules 1–7)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsomia.client.opening import signed_bytes
from gsomia.codec import b64encode
from gsomia.crypto import sign
from gsomia.domain.states import ReleaseOutcome
from gsomia.errors import BadSignature, Conflict, GsomiaError, InvalidInput, NotPermitted, UnknownEntity
from gsomia.ledger.entries import entry_bytes
from gsomia.services.exchange.operator import EventSpec
from gsomia.services.exchange.submissions import ReportSubmission, commitment
from tests.harness import Harness, start

JPN_LEVELS = ("機密", "極秘", "特定秘密", "秘")
OTHERS = ("AUS", "DEU", "FRA", "GBR", "IND", "ITA", "KOR", "NATO", "UKR", "USA")
"""Every party of the bundled scenario but Japan."""


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """One exchange for the property tests (each example submits a report of its own)."""
    h = start(tmp_path_factory.mktemp("shared"))
    yield h
    h.close()


def raw_report(h: Harness, **fields: Any) -> dict[str, Any]:
    """A report object as JPN's client would build it, with ``fields`` on top (for values the
    client itself would never produce)."""
    body = h.signed("JPN", recipients=["KOR"])
    return {**body.report, "id": f"raw-{h.draft().id}", **fields}


def signed_raw(h: Harness, report: dict[str, Any], party: str = "JPN") -> ReportSubmission:
    """``report`` signed by ``party``'s key, whatever it says."""
    keys = h.keys[party]
    return ReportSubmission(report=report, signature=b64encode(sign(keys, entry_bytes(report))), key=keys.fingerprint())


# --- what recipients get ---------------------------------------------------------------------------


def test_a_direct_release_is_ledgered_and_opens_only_for_its_recipient(harness: Harness) -> None:
    result = harness.submit("JPN", recipients=["KOR", "USA"], payload=b"track-42")
    assert result.created
    assert harness.outcomes(result) == {"KOR": "delivered", "USA": "delivered"}
    kor = harness.decision(result, "KOR")
    assert (kor["decision"], kor["agreements"], kor["via"], kor["consent"]) == (
        "direct",
        ["JPN-KOR-GSOMIA"],
        None,
        None,
    )
    assert harness.decision(result, "USA")["marking"]["banner"] == "SECRET (JPN 極秘)"
    (delivery,) = kor["deliveries"]
    (item,) = harness.deliveries("KOR")
    assert item["id"] == delivery["id"] and item["state"] == "ready"
    assert harness.open("KOR", item["id"]) == b"track-42"
    # the ledger records a salted commitment to the signed report, never its payload; the
    # recipient, who gets the salt, checks it when it opens the delivery
    submission = harness.app.ledger.entry(result.body["leaf_index"])["entry"]
    assert (submission["type"], submission["report"], submission["commitment"]) == (
        "submission",
        result.body["report"],
        result.body["commitment"],
    )
    assert b64encode(b"track-42") not in str(submission)
    view = harness.exchange.deliveries.delivery(harness.principals["KOR"], item["id"])
    assert view["origin"]["commitment"] == result.body["commitment"]
    signed = signed_bytes(view["origin"]["report"], b"track-42")
    assert commitment(base64.b64decode(view["origin"]["salt"]), signed) == result.body["commitment"]
    decision = harness.app.ledger.entry(kor["leaf_index"])["entry"]
    assert (decision["type"], decision["recipient"], decision["outcome"]) == ("decision", "KOR", "delivered")
    entry = harness.app.ledger.entry(delivery["leaf_index"])["entry"]
    assert (entry["type"], entry["delivery"], entry["marking"]["recipient_level"]) == (
        "delivery",
        delivery["id"],
        "군사II급비밀",
    )


def test_korea_reports_reach_japan_marked_in_japans_ladder(harness: Harness) -> None:
    result = harness.submit("KOR", recipients=["JPN"], level="군사II급비밀")
    assert harness.outcomes(result) == {"JPN": "delivered"}
    (item,) = harness.deliveries("JPN")
    assert (item["originator"], item["marking"]["recipient_level"], item["marking"]["originator_level"]) == (
        "KOR",
        "極秘",
        "군사II급비밀",
    )


def test_kimitsu_goes_to_the_us_and_is_denied_to_korea_with_the_level_rule(harness: Harness) -> None:
    result = harness.submit("JPN", recipients=["KOR", "USA"], level="機密")
    assert harness.outcomes(result) == {"KOR": "denied", "USA": "delivered"}
    kor = harness.decision(result, "KOR")
    assert kor["deliveries"] == [] and kor["consent"] is None
    assert kor["marking"]["banner"] is None
    assert any(r["rule"] == "level" and r["agreement"] == "JPN-KOR-GSOMIA" for r in kor["reasons"])
    assert harness.deliveries("KOR") == []
    assert harness.decision(result, "USA")["marking"]["recipient_level"] == "TOP SECRET"


def test_every_recipient_must_be_named_and_each_is_decided_once(harness: Harness) -> None:
    with pytest.raises(InvalidInput, match="name every recipient"):
        harness.submit("JPN", recipients=None)
    result = harness.submit("JPN", recipients=list(OTHERS))
    outcomes = harness.outcomes(result)
    assert sorted(outcomes) == sorted(OTHERS)
    assert (outcomes["KOR"], outcomes["USA"]) == ("delivered", "delivered")
    # in force with NATO, but NATO registered no key: allowed, and nothing is delivered
    nato = harness.decision(result, "NATO")
    assert nato["outcome"] == "no_key" and nato["deliveries"] == []
    assert {"rule": "keys", "message": "NATO has registered no encryption key"} in nato["reasons"]
    # the Japan–Germany agreement enters into force only in 2021
    assert outcomes["DEU"] == "denied"


def test_a_rel_to_list_that_leaves_a_recipient_out_denies_it(harness: Harness) -> None:
    result = harness.submit("JPN", recipients=["KOR", "USA"], rel_to=["USA"])
    assert harness.outcomes(result) == {"KOR": "denied", "USA": "delivered"}
    assert harness.deliveries("KOR") == []


def test_a_topic_outside_tisa_is_denied_once_the_gsomia_has_ended(terminated: Harness) -> None:
    result = terminated.submit("JPN", recipients=["KOR"], topic="dprk.military.movement")
    kor = terminated.decision(result, "KOR")
    assert (kor["outcome"], kor["consent"]) == ("denied", None)
    assert terminated.consent_requests() == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    recipients=st.lists(st.sampled_from(OTHERS), min_size=1, unique=True),
    level=st.sampled_from(JPN_LEVELS),
    topic=st.sampled_from(("dprk.missile.launch", "dprk.nuclear.test", "dprk.military.movement")),
)
def test_every_named_recipient_gets_exactly_one_decision_and_everything_is_ledgered(
    shared: Harness, recipients: list[str], level: str, topic: str
) -> None:
    size, _ = shared.written()
    result = shared.submit("JPN", recipients=recipients, level=level, topic=topic)
    decided = result.body["recipients"]
    assert [d["recipient"] for d in decided] == recipients
    deliveries = consents = 0
    for d in decided:
        assert d["outcome"] in set(ReleaseOutcome)
        if d["outcome"] == "delivered":
            assert [x["recipient"] for x in d["deliveries"]] == [d["recipient"]]
        else:
            assert d["deliveries"] == []
        if d["outcome"] == "denied":
            assert d["reasons"] and d["consent"] is None
        deliveries += len(d["deliveries"])
        consents += d["consent"] is not None
    # one submission, one decision per recipient, one entry per delivery and consent request
    assert shared.app.ledger.size() == size + 1 + len(recipients) + deliveries + consents
    for party in ("KOR", "USA"):
        got = shared.deliveries(party, result.body["report"])
        assert len(got) == (shared.outcomes(result).get(party) == "delivered")


# --- idempotency ------------------------------------------------------------------------------------


def test_the_same_signed_report_again_is_answered_from_the_store(harness: Harness) -> None:
    sub = harness.signed("JPN", recipients=["KOR", "USA"])
    first = harness.exchange.submissions.submit(harness.principals["JPN"], sub)
    written = harness.written()
    again = harness.exchange.submissions.submit(harness.principals["JPN"], sub)
    assert (first.created, again.created) == (True, False)
    assert again.body == first.body
    assert harness.written() == written
    assert len(harness.deliveries("KOR")) == 1


def test_a_resubmitted_relay_shows_its_consent_and_relay_deliveries(terminated: Harness) -> None:
    sub = terminated.signed("JPN", recipients=["KOR"])
    first = terminated.exchange.submissions.submit(terminated.principals["JPN"], sub)
    again = terminated.exchange.submissions.submit(terminated.principals["JPN"], sub)
    assert again.body == first.body
    consent = terminated.decision(first, "KOR")["consent"]
    terminated.exchange.consents.answer(terminated.principals["JPN"], consent["id"], grant=True)
    later = terminated.exchange.submissions.submit(terminated.principals["JPN"], sub)
    kor = terminated.decision(later, "KOR")
    assert (later.created, kor["outcome"], kor["consent"]["state"]) == (False, "relayed", "granted")
    assert [(d["recipient"], d["purpose"]) for d in kor["deliveries"]] == [
        ("USA", "relay_hub"),
        ("KOR", "relay_onward"),
    ]


def test_a_resubmission_is_not_decided_again_after_the_record_changed(harness: Harness) -> None:
    sub = harness.signed("JPN", recipients=["KOR"])
    first = harness.exchange.submissions.submit(harness.principals["JPN"], sub)
    harness.exchange.operator.record_event(
        harness.principals["operator"],
        "JPN-KOR-GSOMIA",
        EventSpec(kind="amendment", changes={"max_level": "CONFIDENTIAL"}),  # 極秘 no longer fits
    )
    again = harness.exchange.submissions.submit(harness.principals["JPN"], sub)
    assert (again.created, harness.outcomes(again)) == (False, {"KOR": "delivered"})
    assert again.body == first.body
    assert harness.outcomes(harness.submit("JPN", recipients=["KOR"]))["KOR"] != "delivered"


def test_another_report_under_a_used_id_is_a_conflict_and_writes_nothing(harness: Harness) -> None:
    harness.submit("JPN", id="track-1", recipients=["KOR"])
    written = harness.written()
    with pytest.raises(Conflict, match="track-1"):
        harness.submit("JPN", id="track-1", recipients=["USA"])
    assert harness.written() == written
    # ids are each originator's own: Korea may use the same one
    other = harness.submit("KOR", id="track-1", recipients=["JPN"], level="군사II급비밀")
    assert (other.created, harness.outcomes(other)) == (True, {"JPN": "delivered"})


# --- refusals ---------------------------------------------------------------------------------------

REFUSED: list[tuple[str, dict[str, Any], type[GsomiaError], str]] = [
    ("a level of another ladder", {"level": "TOP SECRET"}, InvalidInput, "not a level of JPN"),
    ("an unknown topic", {"topic": "dprk.weather"}, InvalidInput, "unknown topic"),
    ("a malformed topic", {"topic": "DPRK Missile!"}, InvalidInput, "unknown topic"),
    ("an unknown recipient", {"recipients": ["XYZ"]}, InvalidInput, "unknown party XYZ"),
    ("unknown recipients", {"recipients": ["XYZ", "QQQ"]}, InvalidInput, "unknown parties QQQ, XYZ"),
    ("the originator as recipient", {"recipients": ["JPN"]}, InvalidInput, "originator cannot be a recipient"),
    ("an empty recipient list", {"recipients": []}, InvalidInput, "expected a non-empty list of party ids"),
    ("a recipient twice", {"recipients": ["KOR", "KOR"]}, InvalidInput, "twice"),
    ("an unknown party in REL TO", {"rel_to": ["XYZ"]}, InvalidInput, "rel_to"),
    ("a malformed id", {"id": "bad id!"}, InvalidInput, "report.id"),
]


@pytest.mark.parametrize(("fields", "error", "message"), [pytest.param(f, e, m, id=name) for name, f, e, m in REFUSED])
def test_a_refused_submission_writes_nothing(
    harness: Harness, fields: dict[str, Any], error: type[GsomiaError], message: str
) -> None:
    harness.submit("JPN", recipients=["KOR"])
    written = harness.written()
    recipients = fields.pop("recipients", ["KOR"])
    with pytest.raises(error, match=message):
        harness.submit("JPN", recipients=recipients, **fields)
    assert harness.written() == written
    assert len(harness.deliveries("KOR")) == 1


RAW_REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("a created time without offset", {"created": "2019-11-22T10:00:00"}, "report.created"),
    ("a created time that is no time", {"created": "yesterday"}, "report.created"),
    # spellings fromisoformat reads that a recipient's RFC 3339 reader would not
    ("a created time in basic format", {"created": "20191122T100000+0900"}, "report.created"),
    ("a created time as a week date", {"created": "2019-W47-5T10:00:00+09:00"}, "report.created"),
    ("a created time with a space for T", {"created": "2019-11-22 10:00:00+09:00"}, "report.created"),
    ("a created time with seconds in its offset", {"created": "2019-11-22T10:00:00+09:00:00.5"}, "report.created"),
    ("a created time with a decimal comma", {"created": "2019-11-22T10:00:00,5+09:00"}, "report.created"),
    ("a created time of hours only", {"created": "2019-11-22T10+09:00"}, "report.created"),
    ("a payload that is not base64", {"payload": "not base64!"}, "report.payload"),
    ("no content type", {"content_type": ""}, "report.content_type"),
    ("recipients that are not a list", {"recipients": "KOR"}, "report.recipients"),
    ("caveats that are not an object", {"caveats": "NOFORN"}, "caveats"),
    ("an overlong id", {"id": "r" * 97}, "report.id"),
]


@pytest.mark.parametrize(("fields", "message"), [pytest.param(f, m, id=name) for name, f, m in RAW_REFUSED])
def test_a_signed_report_with_bad_fields_is_refused_and_writes_nothing(
    harness: Harness, fields: dict[str, Any], message: str
) -> None:
    written = harness.written()
    sub = signed_raw(harness, raw_report(harness, **fields))
    with pytest.raises(InvalidInput, match=message):
        harness.exchange.submissions.submit(harness.principals["JPN"], sub)
    assert harness.written() == written


@pytest.mark.parametrize(
    "created",
    ["2019-11-22T10:00:00+09:00", "2019-11-22T01:00:00Z", "2019-11-22T01:00Z", "2019-11-22T01:00:00.123456789-00:00"],
)
def test_a_created_time_in_rfc_3339_form_is_taken_as_signed(harness: Harness, created: str) -> None:
    sub = signed_raw(harness, raw_report(harness, created=created))
    assert harness.exchange.submissions.submit(harness.principals["JPN"], sub).created
    (stored,) = [d for d in harness.deliveries("KOR") if d["report"] == sub.report["id"]]
    view = harness.exchange.deliveries.delivery(harness.principals["KOR"], stored["id"])
    assert view["origin"]["report"]["created"] == created  # as signed, never re-formatted


def test_signatures_that_do_not_verify_are_refused_without_detail(harness: Harness) -> None:
    written = harness.written()
    good = harness.signed("JPN", recipients=["KOR"])
    forged = harness.signed("JPN", signer="KOR", recipients=["KOR"])
    tampered = ReportSubmission(report={**good.report, "level": "秘"}, signature=good.signature, key=good.key)
    not_base64 = ReportSubmission(report=good.report, signature="***", key=good.key)
    unknown_key = ReportSubmission(report=good.report, signature=good.signature, key="00" * 32)
    for sub in (forged, tampered, not_base64, unknown_key):
        with pytest.raises(BadSignature) as caught:
            harness.exchange.submissions.submit(harness.principals["JPN"], sub)
        assert str(caught.value) == "signature verification failed"
    assert harness.written() == written


def test_a_retired_key_no_longer_signs(harness: Harness) -> None:
    old = harness.signed("JPN", recipients=["KOR"])
    new_keys = type(harness.keys["JPN"]).generate("JPN", harness.keys["JPN"].profile)
    harness.exchange.keys.register(harness.principals["JPN"], "JPN", new_keys.public_keys())
    with pytest.raises(BadSignature):
        harness.exchange.submissions.submit(harness.principals["JPN"], old)
    harness.keys["JPN"] = new_keys
    assert harness.outcomes(harness.submit("JPN", recipients=["KOR"])) == {"KOR": "delivered"}


def test_a_stored_report_sent_again_after_its_key_was_retired_gets_its_stored_result(harness: Harness) -> None:
    sub = harness.signed("JPN", recipients=["KOR"], id="kept-1")
    first = harness.exchange.submissions.submit(harness.principals["JPN"], sub)
    new_keys = type(harness.keys["JPN"]).generate("JPN", harness.keys["JPN"].profile)
    harness.exchange.keys.register(harness.principals["JPN"], "JPN", new_keys.public_keys())
    written = harness.written()
    # the answer was lost: the client sends the bytes it kept, signed with the key now retired
    again = harness.exchange.submissions.submit(harness.principals["JPN"], sub)
    assert (again.created, again.body) == (False, first.body)
    # a report never stored, or the stored id with other content, still needs the current key
    other = harness.signed("JPN", recipients=["KOR"], id="kept-2")
    changed = harness.signed("JPN", recipients=["KOR"], id="kept-1", payload=b"other content")
    for refused in (other, changed, ReportSubmission(report=sub.report, signature=other.signature, key=sub.key)):
        with pytest.raises(BadSignature):
            harness.exchange.submissions.submit(harness.principals["JPN"], refused)
    # nor does the retry pass for another party
    with pytest.raises(NotPermitted):
        harness.exchange.submissions.submit(harness.principals["KOR"], sub)
    assert harness.written() == written


@pytest.mark.parametrize("who", ["KOR", "operator", "auditor"])
def test_nobody_submits_as_another_party(harness: Harness, who: str) -> None:
    sub = harness.signed("JPN", recipients=["USA"])
    written = harness.written()
    with pytest.raises(NotPermitted):
        harness.exchange.submissions.submit(harness.principals[who], sub)
    assert harness.written() == written


def test_a_party_cannot_name_an_unknown_originator(harness: Harness) -> None:
    sub = signed_raw(harness, raw_report(harness, originator="XYZ"))
    with pytest.raises(NotPermitted, match="not for XYZ"):
        harness.exchange.submissions.submit(harness.principals["JPN"], sub)


# --- reading results --------------------------------------------------------------------------------


def test_only_the_originator_reads_a_submission_result(harness: Harness) -> None:
    result = harness.submit("JPN", recipients=["KOR"])
    report_id = result.body["report"]
    assert harness.exchange.submissions.result(harness.principals["JPN"], report_id) == result.body
    for party in ("KOR", "USA"):
        with pytest.raises(UnknownEntity, match=f"no report {report_id!r}") as foreign:
            harness.exchange.submissions.result(harness.principals[party], report_id)
        with pytest.raises(UnknownEntity) as missing:
            harness.exchange.submissions.result(harness.principals[party], "never-submitted")
        # a foreign report and a missing one read the same: existence does not leak
        assert str(foreign.value).replace(report_id, "X") == str(missing.value).replace("never-submitted", "X")
    with pytest.raises(NotPermitted):
        harness.exchange.submissions.result(harness.principals["auditor"], report_id)


def test_submissions_in_exercise_mode_say_so_in_the_ledger(terminated: Harness) -> None:
    result = terminated.submit("JPN", recipients=["USA"])
    assert terminated.app.ledger.entry(result.body["leaf_index"])["entry"]["exercise"] is True


def test_submissions_in_normal_operation_carry_no_exercise_mark(harness: Harness) -> None:
    result = harness.submit("JPN", recipients=["USA"])
    assert "exercise" not in harness.app.ledger.entry(result.body["leaf_index"])["entry"]
