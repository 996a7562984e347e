"""What a hostile party tried against the exchange, in process: each finding is closed here.

Over a real socket, the same and the HTTP-level findings: tests/integration/test_trust_live.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gsomia.bootstrap import build
from gsomia.client.opening import open_delivery, verify_origin
from gsomia.crypto import PartyKeys, Profile
from gsomia.domain.instants import parse_instant
from gsomia.errors import BadSignature, InvalidInput, NotAuthenticated, UnknownEntity
from gsomia.ledger.entries import entry_bytes
from gsomia.services.exchange.context import Stale
from gsomia.services.exchange.operator import EventSpec
from gsomia.services.exchange.submissions import commitment
from tests.harness import Harness, start

WHATIF = "drop: [jpn-kor-2019-suspension]\n"


@pytest.fixture
def terminated(tmp_path: Path) -> Iterator[Harness]:
    """2019-12-01: with the suspension dropped, JPN→KOR is a relay through the USA under TISA."""
    whatif = tmp_path / "no-suspension.yaml"
    whatif.write_text(WHATIF, encoding="utf-8")
    h = start(tmp_path, at="2019-12-01T10:00+09:00", exercise_whatif=whatif)
    yield h
    h.close()


def entries(h: Harness, reader: str | None) -> list[dict[str, Any]]:
    return [e["entry"] for e in h.app.ledger.entries(0, 1000, reader=reader)]


# --- 1. a party reads only the ledger entries about it ----------------------------------------------


def test_a_party_sees_only_the_entries_about_it(harness: Harness) -> None:
    harness.submit("JPN", recipients=["KOR"], id="jk-1", payload=b"track")
    denied = harness.submit("JPN", recipients=["KOR"], id="jk-kimitsu", level="機密")
    assert harness.outcomes(denied) == {"KOR": "denied"}
    usa = entries(harness, "USA")
    # USA sees the public entries (key registrations) and nothing about JPN's reports to KOR
    assert {e["type"] for e in usa} == {"key"}
    kor = entries(harness, "KOR")
    kor_types = [e["type"] for e in kor if e["type"] != "key"]
    # KOR: the delivery it received, and the submission entry of that report (to check its
    # commitment); never a decision, and never the denied attempt
    assert sorted(kor_types) == ["delivery", "submission"]
    assert all(e.get("report") != "jk-kimitsu" for e in kor)
    jpn = [e for e in entries(harness, "JPN") if e["type"] != "key"]
    assert sorted(e["type"] for e in jpn) == ["decision", "decision", "delivery", "submission", "submission"]
    # auditors and operators read every entry
    assert len(entries(harness, None)) == len(harness.app.ledger.entries(0, 1000))


def test_another_partys_entry_and_its_proof_are_not_found(harness: Harness) -> None:
    harness.submit("JPN", recipients=["KOR"], id="jk-2")
    hidden = next(e["index"] for e in harness.app.ledger.entries(0, 1000) if e["entry"]["type"] == "decision")
    for reader in ("USA", "KOR"):
        with pytest.raises(UnknownEntity):
            harness.app.ledger.entry(hidden, reader=reader)
        with pytest.raises(UnknownEntity):
            harness.app.ledger.inclusion(hidden, reader=reader)
    assert harness.app.ledger.entry(hidden, reader="JPN")["entry"]["type"] == "decision"


# --- 2. a release is decided inside the transaction that commits it --------------------------------


def test_a_grant_prepared_before_the_arrangement_ended_is_decided_again_and_refused(terminated: Harness) -> None:
    h = terminated
    r = h.submit("JPN", recipients=["KOR"], id="relay-1")
    assert h.outcomes(r) == {"KOR": "pending_consent"}
    consent = r.body["recipients"][0]["consent"]["id"]
    consents = h.exchange.consents
    stale_net, stale_version = h.exchange.context.records.current()
    h.exchange.operator.record_event(
        h.principals["operator"],
        "TISA",
        EventSpec(kind="termination", id="tisa-end"),  # now
    )
    # The grant, prepared on the record as it was before the termination, reaches the writer
    # after it: the writer refuses to decide on the old record ...
    with h.app.store.writing() as s:
        h.exchange.context.begin(s)
        with pytest.raises(Stale):
            consents._answer(
                s,
                h.principals["JPN"],
                consent,
                True,
                "",
                stale_net,
                stale_version,
                keys_version=h.exchange.context.identity.held_keys_version(),
            )
    # ... and the service decides again on the record as committed: the relay is refused.
    answer = consents.answer(h.principals["JPN"], consent, grant=True)
    assert answer["outcome"]["relayed"] is False
    assert any("TISA" in r["message"] for r in answer["outcome"]["reasons"])
    assert h.deliveries("KOR") == [] and h.deliveries("USA") == []


def test_instants_never_run_backwards_against_commit_order(harness: Harness) -> None:
    first = harness.submit("JPN", recipients=["KOR"], id="t-1")
    harness.clock.advance(-timedelta(hours=2))  # another process's clock, or a clock stepped back
    second = harness.submit("JPN", recipients=["KOR"], id="t-2")
    assert parse_instant(second.body["received_at"], "UTC") >= parse_instant(first.body["received_at"], "UTC")


def test_a_submission_prepared_before_an_agreement_ends_is_decided_at_its_commit(tmp_path: Path) -> None:
    whatif = tmp_path / "no-suspension.yaml"
    whatif.write_text(WHATIF, encoding="utf-8")
    # Without the suspension the Japan–Korea GSOMIA ends at 2019-11-23 00:00 KST.
    h = start(tmp_path, at="2019-11-22T23:59:59+09:00", exercise_whatif=whatif)
    try:
        sub = h.signed("JPN", recipients=["KOR"], id="edge")
        prepared = h.exchange.submissions._prepare(h.principals["JPN"], sub)
        assert prepared.plans[0].route.decision.value == "direct"  # a second before the end
        h.clock.advance(timedelta(seconds=2))  # the writer gets to it after the end
        with h.app.store.writing() as s:
            h.exchange.context.begin(s)
            (out,) = h.exchange.submissions._commit_many(s, [prepared])
        assert isinstance(out, Stale)  # not released on a decision made before the end
        result = h.exchange.submissions.submit(h.principals["JPN"], sub)
        assert h.outcomes(result) == {"KOR": "pending_consent"}  # decided again: a relay now
        assert h.deliveries("KOR") == []
    finally:
        h.close()


def test_a_revoked_tokens_writes_are_refused_at_commit(harness: Harness) -> None:
    jpn = harness.principals["JPN"]
    prepared = harness.exchange.submissions._prepare(jpn, harness.signed("JPN", recipients=["KOR"], id="rv-1"))
    harness.app.exchange.identity.revoke(jpn.id)
    with harness.app.store.writing() as s:
        harness.exchange.context.begin(s)
        (out,) = harness.exchange.submissions._commit_many(s, [prepared])
    assert isinstance(out, NotAuthenticated)


# --- 3. the ledger's commitments hide what they commit to ------------------------------------------


def test_a_guessed_payload_cannot_be_tested_against_the_ledger(harness: Harness) -> None:
    payload = json.dumps({"alert": "launch", "count": 139}, separators=(",", ":")).encode()
    result = harness.submit("JPN", recipients=["KOR"], id="secret-1", payload=payload)
    (entry,) = [e for e in entries(harness, None) if e["type"] == "submission"]
    # the unsalted hash of the signed bytes, which a guesser would compute, appears nowhere
    view = harness.exchange.deliveries.delivery(harness.principals["KOR"], harness.deliveries("KOR")[0]["id"])
    report = {**view["origin"]["report"], "payload": base64.b64encode(payload).decode()}
    guess = hashlib.sha256(entry_bytes(report)).hexdigest()
    assert guess not in json.dumps(entries(harness, None))
    # the recipient, who has the salt, can check the commitment; it is the ledger's
    salt = base64.b64decode(view["origin"]["salt"])
    assert commitment(salt, entry_bytes(report)) == entry["commitment"] == result.body["commitment"]


def test_incident_texts_and_consent_reasons_are_committed_to_never_written(terminated: Harness) -> None:
    h = terminated
    r = h.submit("JPN", recipients=["KOR", "USA"], id="inc-1")
    usa = next(d for d in h.deliveries("USA"))
    h.exchange.incidents.file_incident(h.principals["USA"], usa["id"], kind="loss", description="left on a train")
    h.exchange.consents.answer(
        h.principals["JPN"], r.body["recipients"][0]["consent"]["id"], grant=False, reason="source protection"
    )
    text = json.dumps(entries(h, None), ensure_ascii=False)
    assert "left on a train" not in text and "source protection" not in text
    for secret in ("left on a train", "source protection"):
        assert hashlib.sha256(secret.encode()).hexdigest() not in text


# --- 5. a party cannot disown what it signed by rotating its keys ----------------------------------


def test_a_report_verifies_with_the_key_valid_when_it_was_received(harness: Harness) -> None:
    harness.submit("JPN", recipients=["KOR"], id="rot-1", payload=b"before rotation")
    (item,) = harness.deliveries("KOR", "rot-1")
    harness.clock.advance(timedelta(minutes=5))
    fresh = PartyKeys.generate("JPN", Profile.CLASSIC)
    harness.exchange.keys.register(harness.principals["operator"], "JPN", fresh.public_keys())
    # KOR still verifies the earlier report: with the retired key, valid when JPN signed
    assert harness.open("KOR", item["id"]) == b"before rotation"
    history = harness.exchange.keys.history(harness.principals["KOR"], "JPN")
    assert [k.retired_at is None for k in history] == [True, False]
    # an operator changed JPN's keys: JPN is told, and the change is ledgered for all to read
    notices = [i for i in harness.inbox("JPN") if i["type"] == "keys"]
    assert len(notices) == 1 and notices[0]["fingerprint"] == fresh.fingerprint()
    key_entries = [e for e in entries(harness, "USA") if e["type"] == "key" and e["party"] == "JPN"]
    assert key_entries[-1]["retired"] == [harness.keys["JPN"].fingerprint()]


def test_a_key_used_outside_its_validity_does_not_verify(harness: Harness) -> None:
    harness.submit("JPN", recipients=["KOR"], id="rot-2", payload=b"x")
    (item,) = harness.deliveries("KOR", "rot-2")
    view = harness.exchange.deliveries.delivery(harness.principals["KOR"], item["id"])
    payload = open_delivery(view, harness.keys["KOR"])
    registered = [k.as_dict() for k in harness.exchange.keys.history(harness.principals["KOR"], "JPN")]
    too_late = [{**k, "registered_at": "2030-01-01T00:00+00:00"} for k in registered]
    with pytest.raises(BadSignature):
        verify_origin(view, payload, too_late)
    verify_origin(view, payload, registered)


# --- 6. signed content is served exactly as signed --------------------------------------------------


def test_a_rel_to_list_out_of_order_still_verifies_for_its_recipient(harness: Harness) -> None:
    harness.submit("JPN", recipients=["KOR"], id="rel-1", rel_to=["USA", "KOR"], payload=b"ordered as signed")
    (item,) = harness.deliveries("KOR", "rel-1")
    assert harness.open("KOR", item["id"]) == b"ordered as signed"


# --- 7. report ids are the originator's -----------------------------------------------------------------


def test_two_parties_may_use_the_same_report_id(harness: Harness) -> None:
    first = harness.submit("JPN", recipients=["KOR"], id="R-1", payload=b"from Japan")
    second = harness.submit("KOR", recipients=["JPN"], id="R-1", level="군사II급비밀", payload=b"from Korea")
    assert first.created and second.created
    assert harness.exchange.submissions.result(harness.principals["KOR"], "R-1")["originator"] == "KOR"
    with pytest.raises(UnknownEntity):  # JPN's R-1 is JPN's; KOR cannot read it
        harness.exchange.submissions.result(harness.principals["USA"], "R-1")


# --- recipients are named (need-to-know) -------------------------------------------------------------


def test_a_report_without_named_recipients_is_refused(harness: Harness) -> None:
    with pytest.raises(InvalidInput, match="need-to-know"):
        harness.submit("JPN", recipients=None, id="everyone")


def test_a_key_registered_through_another_process_signs_the_next_report_there(harness: Harness) -> None:
    # A second process over the same database, whose key cache was read before the change.
    other = build(harness.app.settings, clock=harness.clock)
    try:
        assert other.exchange.identity.current_keys("JPN") == harness.keys["JPN"].public_keys()
        fresh = PartyKeys.generate("JPN", Profile.CLASSIC)
        harness.exchange.keys.register(harness.principals["operator"], "JPN", fresh.public_keys())
        harness.keys["JPN"] = fresh
        result = other.exchange.submissions.submit(
            harness.principals["JPN"], harness.signed("JPN", recipients=["KOR"], id="after-rotation")
        )
        assert result.created
        second = harness.signed("JPN", recipients=["KOR"], id="second")
        harness.keys["JPN"] = PartyKeys.generate("JPN", Profile.CLASSIC)  # a key never registered
        with pytest.raises(BadSignature):
            other.exchange.submissions.submit(
                harness.principals["JPN"], harness.signed("JPN", recipients=["KOR"], id="unknown-key")
            )
        assert other.exchange.submissions.submit(harness.principals["JPN"], second).created
    finally:
        other.close()
