"""Submissions that must be refused, and resubmissions that must not duplicate, over a real
socket. After every refusal nothing was written: the auditor's counts and the ledger size are
unchanged. Every error is an RFC 9457 problem."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.integration.exchange_support import Exchange, start_exchange

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    exchange = start_exchange(
        tmp_path_factory.mktemp("errors"),
        exercise_clock="2019-11-22T10:00+09:00",
        extra_env={"GSOMIA_MAX_BODY_BYTES": "65536"},
    )
    yield exchange
    exchange.stop()


def test_resubmitting_the_same_report_returns_the_same_result(ex: Exchange) -> None:
    body = ex.signed("JPN", report_id="idem-1", recipients=["KOR", "USA"])
    first = ex.call("JPN", "POST", "/api/v1/reports", json=body)
    assert first.status_code == 201, first.text
    before = ex.counts()
    again = ex.call("JPN", "POST", "/api/v1/reports", json=body)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert ex.counts() == before
    kor = [i for i in ex.inbox("KOR") if i.get("report") == "idem-1"]
    assert len(kor) == 1


def _expect_nothing_written(ex: Exchange, send: Callable[[], httpx.Response], status: int) -> dict[str, Any]:
    before = ex.counts()
    r = send()
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == status
    assert problem["type"].startswith("urn:gsomia:problem:")
    assert ex.counts() == before
    return dict(problem)


def test_another_report_under_a_used_id_is_a_conflict(ex: Exchange) -> None:
    assert ex.submit("JPN", report_id="idem-2", recipients=["KOR"]).status_code == 201
    other = ex.signed("JPN", report_id="idem-2", recipients=["KOR"], payload=b"a different track")
    problem = _expect_nothing_written(ex, lambda: ex.call("JPN", "POST", "/api/v1/reports", json=other), 409)
    assert "already used" in problem["detail"]


def test_forged_signatures_are_refused_with_a_generic_message(ex: Exchange) -> None:
    body = ex.signed("JPN", report_id="forged-1", recipients=["KOR"])
    tampered = {**body, "report": {**body["report"], "level": "秘"}}
    p1 = _expect_nothing_written(ex, lambda: ex.call("JPN", "POST", "/api/v1/reports", json=tampered), 400)
    by_korea = ex.signed("JPN", signer="KOR", report_id="forged-2", recipients=["USA"])
    p2 = _expect_nothing_written(ex, lambda: ex.call("JPN", "POST", "/api/v1/reports", json=by_korea), 400)
    garbage = {**body, "signature": base64.b64encode(b"\x00" * 64).decode()}
    p3 = _expect_nothing_written(ex, lambda: ex.call("JPN", "POST", "/api/v1/reports", json=garbage), 400)
    assert p1["detail"] == p2["detail"] == p3["detail"] == "signature verification failed"


def test_oversized_bodies_are_refused_before_parsing(ex: Exchange) -> None:
    big = ex.signed("JPN", report_id="big-1", recipients=["KOR"], payload=b"x" * 70_000)
    _expect_nothing_written(ex, lambda: ex.call("JPN", "POST", "/api/v1/reports", json=big), 413)

    def chunked() -> httpx.Response:
        def body() -> Iterator[bytes]:
            for _ in range(100):
                yield b" " * 1024

        return ex.call("JPN", "POST", "/api/v1/reports", content=body(), headers={"content-type": "application/json"})

    _expect_nothing_written(ex, chunked, 413)


def test_unknown_fields_are_refused(ex: Exchange) -> None:
    body = ex.signed("JPN", report_id="unknown-field", recipients=["KOR"])
    extra_top = {**body, "priority": "flash"}
    problem = _expect_nothing_written(ex, lambda: ex.call("JPN", "POST", "/api/v1/reports", json=extra_top), 422)
    assert any(e["loc"][-1] == "priority" for e in problem["errors"])
    extra_inner = {**body, "report": {**body["report"], "handling": "eyes only"}}
    _expect_nothing_written(ex, lambda: ex.call("JPN", "POST", "/api/v1/reports", json=extra_inner), 422)
    missing = {**body, "report": {k: v for k, v in body["report"].items() if k != "recipients"}}
    _expect_nothing_written(ex, lambda: ex.call("JPN", "POST", "/api/v1/reports", json=missing), 422)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"level": "TOP SECRET"}, "is not a level of JPN"),
        ({"topic": "dprk.weather"}, "unknown topic"),
        ({"recipients": ["KOR", "XYZ"]}, "unknown party XYZ"),
        ({"recipients": ["JPN"]}, "the originator cannot be a recipient"),
        ({"rel_to": ["ATL"]}, "unknown party ATL"),
        ({"created": "yesterday"}, "ISO 8601"),
    ],
)
def test_unknown_parties_levels_and_topics_are_refused(ex: Exchange, fields: dict[str, Any], message: str) -> None:
    body = ex.signed("JPN", **fields)
    problem = _expect_nothing_written(ex, lambda: ex.call("JPN", "POST", "/api/v1/reports", json=body), 422)
    assert message in problem["detail"]


def test_wrong_principal_and_bad_tokens(ex: Exchange) -> None:
    body = ex.signed("JPN", report_id="as-korea", recipients=["USA"])
    _expect_nothing_written(ex, lambda: ex.call("KOR", "POST", "/api/v1/reports", json=body), 403)
    bad = {"Authorization": "Bearer gsm_not-a-token"}
    _expect_nothing_written(ex, lambda: httpx.post(f"{ex.url}/api/v1/reports", json=body, headers=bad), 401)
    _expect_nothing_written(ex, lambda: ex.call("KOR", "GET", "/api/v1/deliveries/d-00000000000000000000"), 404)
    _expect_nothing_written(ex, lambda: ex.call("JPN", "POST", "/api/v1/consents/c-0", json={"decision": "grant"}), 404)


def test_a_retired_key_no_longer_signs(ex: Exchange) -> None:
    from gsomia.crypto import PartyKeys

    new = PartyKeys.generate("USA")
    assert ex.call("USA", "PUT", "/api/v1/parties/USA/keys", json=new.public_keys().to_dict()).status_code == 201
    stale = ex.signed("USA", report_id="old-key", level="SECRET", recipients=["JPN"])
    _expect_nothing_written(ex, lambda: ex.call("USA", "POST", "/api/v1/reports", json=stale), 400)
    ex.keys["USA"] = new
    fresh = ex.signed("USA", report_id="new-key", level="SECRET", recipients=["JPN"])
    assert ex.call("USA", "POST", "/api/v1/reports", json=fresh).status_code == 201
    # a retired key set cannot be registered again
    again = ex.call("USA", "PUT", "/api/v1/parties/USA/keys", json=new.public_keys().to_dict())
    assert again.status_code == 200  # the current keys: unchanged
