"""The exchange's HTTP API in this process, through the client a party runs: the story of a
report (sign, submit, fetch, open, verify, acknowledge), consents and incidents, and every error
arriving as the same gsomia error the service raised, as RFC 9457 problem+json."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gsomia.client.opening import open_delivery, verify_origin
from gsomia.client.reports import sign_report
from gsomia.errors import (
    BadSignature,
    Conflict,
    ExchangeError,
    InvalidInput,
    NotAuthenticated,
    NotPermitted,
    PayloadTooLarge,
    UnknownEntity,
    ValidationFailed,
)
from tests.harness import Harness, InProcessTransport, start

TRACK = b'{"track": [[39.7, 127.1, 0], [40.9, 131.8, 380]]}'


def signed(h: Harness, party: str = "JPN", **fields: Any) -> dict[str, Any]:
    return sign_report(h.keys[party], h.draft(**fields))


def raw(h: Harness, who: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {h.tokens[who]}"} if who else {}
    with httpx.Client(base_url="http://exchange.test", transport=InProcessTransport(h.api), headers=headers) as c:
        return c.request(method, path, **kwargs)


def test_a_report_travels_from_japans_client_to_koreas(harness: Harness) -> None:
    with harness.client("JPN") as jpn, harness.client("KOR") as kor, harness.client("auditor") as auditor:
        assert jpn.whoami() == {"id": harness.principals["JPN"].id, "name": "JPN desk", "role": "party", "party": "JPN"}
        body = signed(harness, recipients=["KOR"], payload=TRACK)
        first = jpn.submit(body)
        assert [(r["recipient"], r["outcome"]) for r in first["recipients"]] == [("KOR", "delivered")]
        assert jpn.submit(body) == first  # answered from the store
        assert jpn.report(first["report"]) == first

        page = kor.inbox(limit=10)
        (item,) = page["items"]
        assert (page["next_cursor"], page["cursor"]) == (None, str(item["seq"]))
        view = kor.delivery(item["id"])
        payload = open_delivery(view, harness.keys["KOR"])
        verify_origin(view, payload, kor.public_keys("JPN")["keys"])
        assert payload == TRACK
        ack = kor.acknowledge(item["id"])
        assert ack["state"] == "acknowledged"
        assert auditor.exchange_stats()["deliveries"] == {"acknowledged": 1}
        assert kor.inbox(cursor=page["cursor"])["items"] == []


def test_a_relay_and_an_incident_over_the_api(terminated: Harness) -> None:
    with terminated.client("JPN") as jpn, terminated.client("KOR") as kor, terminated.client("USA") as usa:
        report = jpn.submit(signed(terminated, recipients=["KOR"]))
        (pending,) = jpn.consents()["consents"]
        assert pending["report"] == report["report"]
        granted = jpn.answer_consent(pending["id"], grant=True, reason="missile warning")
        assert granted["outcome"]["relayed"] is True
        assert [c["state"] for c in jpn.consents(state="all")["consents"]] == ["granted"]
        (onward,) = kor.inbox()["items"]
        incident = kor.file_incident(onward["id"], kind="loss", description="courier bag missing")
        updated = jpn.update_incident(incident["id"], result="recovered", measures="new courier rules")
        assert [u["by"] for u in updated["updates"]] == ["JPN"]
        assert kor.incident(incident["id"]) == updated
        with pytest.raises(UnknownEntity):
            usa.incident(incident["id"])
        standing = jpn.add_standing_consent(
            {"topic_prefix": "dprk.nuclear", "recipient": "KOR", "valid_until": "2020-12-31T00:00+09:00"}
        )
        assert jpn.standing_consents()["standing_consents"] == [standing]
        assert jpn.revoke_standing_consent(standing["id"])["revoked_at"] is not None
        with pytest.raises(Conflict, match="already granted"):
            jpn.answer_consent(pending["id"], grant=False)


def test_the_operator_records_events_and_moves_the_exercise_clock(tmp_path: Path) -> None:
    h = start(tmp_path, exercise_clock="2019-11-22T10:00+09:00")
    try:
        with h.client("operator") as op, h.client("JPN") as jpn:
            exercise = op.exercise()
            assert (exercise["exercise"], exercise["clock"]) == (True, "2019-11-22T01:00:00+00:00")
            event = op.record_event("JPN-KOR-GSOMIA", {"kind": "amendment", "changes": {"max_level": "CONFIDENTIAL"}})
            assert event["event"]["kind"] == "amendment"
            with pytest.raises(ValidationFailed) as bad:
                op.record_event("JPN-KOR-GSOMIA", {"kind": "notice", "by": "USA"})
            assert bad.value.problems and "USA" in str(bad.value)
            with pytest.raises(UnknownEntity, match="unknown agreement"):
                op.record_event("NOPE", {"kind": "termination"})
            with pytest.raises(NotPermitted):
                jpn.record_event("TISA", {"kind": "termination"})
            moved = op.set_exercise_clock("2019-11-23T00:00+09:00")
            assert (moved["exercise"], moved["clock"]) == (True, "2019-11-22T15:00:00+00:00")
            with pytest.raises(Conflict, match="only moves forward"):
                op.set_exercise_clock("2019-11-22T00:00+09:00")
            with pytest.raises(NotPermitted):
                jpn.set_exercise_clock("2019-11-24T00:00+09:00")
    finally:
        h.close()


def test_keys_are_registered_over_the_api(harness: Harness) -> None:
    own = harness.keys["KOR"].public_keys().to_dict()
    with harness.client("KOR") as kor, harness.client("operator") as op:
        again = raw(harness, "KOR", "PUT", "/api/v1/parties/KOR/keys", json=own)
        assert again.status_code == 200 and again.json()["current"] is True
        with pytest.raises(NotPermitted):
            kor.register_keys("JPN", harness.keys["JPN"].public_keys().to_dict())
        with pytest.raises(InvalidInput, match="these keys are KOR's, not JPN's"):
            op.register_keys("JPN", own)
        assert kor.register_keys("KOR", own)["fingerprint"] == harness.keys["KOR"].fingerprint()


def test_keys_no_content_key_can_be_wrapped_to_are_refused(harness: Harness) -> None:
    # A low-order X25519 point decodes, but HPKE cannot encapsulate to it: registered, it would
    # make every report naming KOR fail for its originator, whatever its other recipients.
    low_order = {**harness.keys["KOR"].public_keys().to_dict(), "encryption_key": base64.b64encode(bytes(32)).decode()}
    written = harness.written()
    refused = raw(harness, "KOR", "PUT", "/api/v1/parties/KOR/keys", json=low_order)
    assert (refused.status_code, refused.json()["type"]) == (422, "urn:gsomia:problem:invalid-input")
    assert "encryption_key of KOR" in refused.json()["detail"]
    assert harness.written() == written
    both = raw(harness, "JPN", "POST", "/api/v1/reports", json=signed(harness, recipients=["USA", "KOR"]))
    assert both.status_code == 201, both.text


# --- errors -----------------------------------------------------------------------------------------


def test_each_refusal_arrives_as_the_error_the_service_raised(harness: Harness) -> None:
    harness.submit("JPN", recipients=["USA"])
    (usa_delivery,) = harness.deliveries("USA")
    with harness.client("KOR") as kor, harness.client("operator") as op, harness.client(None) as anonymous:
        with pytest.raises(UnknownEntity, match="no delivery"):
            kor.delivery(usa_delivery["id"])
        with pytest.raises(NotPermitted, match="may not read an inbox"):
            op.inbox()
        with pytest.raises(NotAuthenticated, match="bearer token"):
            anonymous.inbox()
        forged = signed(harness, "JPN", recipients=["KOR"])
        forged["report"]["level"] = "秘"
        with harness.client("JPN") as jpn:
            with pytest.raises(BadSignature):
                jpn.submit(forged)
            jpn.submit(signed(harness, "JPN", id="dup", recipients=["KOR"]))
            with pytest.raises(Conflict, match="dup"):
                jpn.submit(signed(harness, "JPN", id="dup", recipients=["USA"]))
            with pytest.raises(InvalidInput, match="cursor"):
                jpn.inbox(cursor="abc")
            with pytest.raises(InvalidInput, match="need-to-know"):
                jpn.request("POST", f"/api/v1/deliveries/{usa_delivery['id']}/ack", json={"need_to_know": False})


def test_errors_are_problem_documents(harness: Harness) -> None:
    missing = raw(harness, None, "GET", "/api/v1/inbox")
    assert missing.status_code == 401
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.headers["www-authenticate"] == 'Bearer realm="gsomia"'
    problem = missing.json()
    assert (problem["type"], problem["title"], problem["status"]) == (
        "urn:gsomia:problem:not-authenticated",
        "Not authenticated",
        401,
    )
    assert raw(harness, None, "GET", "/api/v1/inbox", headers={"Authorization": "Bearer gsm_nope"}).status_code == 401
    nowhere = raw(harness, "JPN", "GET", "/api/v1/nowhere")
    assert (nowhere.status_code, nowhere.json()["type"]) == (404, "urn:gsomia:problem:not-found")
    wrong_method = raw(harness, "JPN", "PATCH", "/api/v1/inbox")
    assert (wrong_method.status_code, wrong_method.json()["type"]) == (405, "urn:gsomia:problem:method-not-allowed")
    with harness.client("JPN") as jpn, pytest.raises(ExchangeError, match="HTTP 405"):
        jpn.request("PATCH", "/api/v1/inbox")


def test_unknown_fields_and_wrong_types_are_refused_naming_the_field(harness: Harness) -> None:
    written = harness.written()
    body = signed(harness, "JPN", recipients=["KOR"])
    extra = {**body, "priority": "high"}
    r = raw(harness, "JPN", "POST", "/api/v1/reports", json=extra)
    assert (r.status_code, r.json()["type"]) == (422, "urn:gsomia:problem:invalid-request")
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "priority"]]
    with harness.client("JPN") as jpn, pytest.raises(InvalidInput, match=r"report\.caveats: Field required"):
        jpn.submit({**body, "report": {k: v for k, v in body["report"].items() if k != "caveats"}})
    assert harness.written() == written


def test_a_standing_consent_topic_prefix_is_at_most_as_long_as_a_topic(harness: Harness) -> None:
    written = harness.written()
    body = {"topic_prefix": "dprk." + "x" * 124, "recipient": "KOR", "valid_until": "2020-12-31"}
    r = raw(harness, "JPN", "POST", "/api/v1/standing-consents", json=body)
    assert (r.status_code, r.json()["type"]) == (422, "urn:gsomia:problem:invalid-request")
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "topic_prefix"]]
    assert harness.written() == written


def test_an_oversized_body_is_refused_before_it_is_read(tmp_path: Path) -> None:
    h = start(tmp_path, max_body_bytes=1024)
    try:
        written = h.written()
        big = signed(h, "JPN", recipients=["KOR"], payload=b"x" * 2048)
        with h.client("JPN") as jpn, pytest.raises(PayloadTooLarge, match="limit of 1024 bytes"):
            jpn.submit(big)

        def chunks() -> Any:
            yield b'{"report": '
            yield b" " * 2048

        chunked = raw(h, "JPN", "POST", "/api/v1/reports", content=chunks())
        assert (chunked.status_code, chunked.json()["type"]) == (413, "urn:gsomia:problem:payload-too-large")
        assert h.written() == written
    finally:
        h.close()


def test_a_batch_item_too_large_to_be_submitted_alone_fails_alone(tmp_path: Path) -> None:
    h = start(tmp_path, max_body_bytes=4096)
    try:
        big = signed(h, "JPN", recipients=["KOR"], payload=b"x" * 4096)  # 5,464 characters of base64
        small = signed(h, "JPN", recipients=["KOR"])
        alone = raw(h, "JPN", "POST", "/api/v1/reports", json=big)
        batch = raw(h, "JPN", "POST", "/api/v1/report-batches", json={"reports": [big, small]})
        assert alone.status_code == 413
        assert batch.status_code == 200
        first, second = batch.json()["results"]
        assert first["status"] == 413 and "report.payload: at most 4,096 characters" in first["problem"]["detail"]
        assert second["status"] == 201
        assert [d["report"] for d in h.deliveries("KOR")] == [small["report"]["id"]]
    finally:
        h.close()


def test_exercise_mode_stamps_every_response_even_errors(terminated: Harness) -> None:
    health = raw(terminated, None, "GET", "/healthz")
    assert health.json()["exercise"] == {"clock": "2019-12-01T01:00+00:00", "whatif": "no-suspension.yaml"}
    stamp = "clock=2019-12-01T01:00+00:00; whatif=no-suspension.yaml"
    assert health.headers["gsomia-exercise"] == stamp
    assert raw(terminated, None, "GET", "/api/v1/inbox").headers["gsomia-exercise"] == stamp


def test_normal_operation_carries_no_exercise_stamp(harness: Harness) -> None:
    health = raw(harness, None, "GET", "/healthz")
    assert (health.json()["status"], health.json()["scenario"], health.json()["exercise"]) == (
        "ok",
        "japan-korea-2019",
        None,
    )
    assert "gsomia-exercise" not in health.headers
    with harness.client("JPN") as jpn:
        assert jpn.exercise()["exercise"] is False


def test_submission_answers_are_compact_utf8_json_byte_for_byte(harness: Harness) -> None:
    one = raw(harness, "JPN", "POST", "/api/v1/reports", json=signed(harness, recipients=["KOR", "USA"]))
    bad = {**signed(harness, recipients=["KOR"]), "signature": "AAAA"}
    batch = raw(
        harness, "JPN", "POST", "/api/v1/report-batches", json={"reports": [signed(harness, recipients=["KOR"]), bad]}
    )
    assert (one.status_code, batch.status_code) == (201, 200)
    assert [r["status"] for r in batch.json()["results"]] == [201, 400]
    for answer in (one, batch):
        assert answer.headers["content-type"] == "application/json"
        # what the standard library writes, compact and with 極秘 as UTF-8, not \u escapes
        spelled = json.dumps(answer.json(), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        assert answer.content == spelled.encode("utf-8")
        assert "極秘".encode() in answer.content
