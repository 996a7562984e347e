"""How often a party may register keys, and what a caller is told when it must wait: a party
registers at most a few key sets an hour (429 with Retry-After beyond, nothing written; an
operator is never held back), and a report or a grant that found the keys it wraps to changed
every time it was decided is answered 503 ``busy`` with Retry-After, never the 409 of a report
id used for another report."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from gsomia.client.reports import sign_report
from gsomia.crypto.keys import PartyKeys
from gsomia.errors import TooManyRequests
from tests.harness import Harness, InProcessTransport


def raw(h: Harness, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {h.tokens[who]}"}
    with httpx.Client(base_url="http://exchange.test", transport=InProcessTransport(h.api), headers=headers) as c:
        return c.request(method, path, **kwargs)


def fresh(h: Harness, party: str) -> dict[str, Any]:
    return PartyKeys.generate(party, h.keys[party].profile).public_keys().to_dict()


def test_a_party_registers_at_most_six_key_sets_an_hour_and_is_told_when_it_may_again(harness: Harness) -> None:
    h = harness
    h.clock.advance(timedelta(hours=2))  # the keys registered at the start are out of the window
    limit = h.exchange.context.config.key_registrations
    for _ in range(limit):
        assert raw(h, "USA", "PUT", "/api/v1/parties/USA/keys", json=fresh(h, "USA")).status_code == 201
    current = h.exchange.keys.history(h.principals["USA"], "USA")[0].keys.to_dict()
    written = h.written()
    refused = raw(h, "USA", "PUT", "/api/v1/parties/USA/keys", json=fresh(h, "USA"))
    assert refused.status_code == 429
    problem = refused.json()
    assert problem["type"] == "urn:gsomia:problem:too-many-requests"
    assert refused.headers["Retry-After"] == str(problem["retry_after"]) == "3600"
    assert "register the next one at" in problem["detail"]
    assert h.written() == written  # no ledger entry, no key set
    # registering the current set again changes nothing, and is never refused
    assert raw(h, "USA", "PUT", "/api/v1/parties/USA/keys", json=current).status_code == 200
    # another party is not held back by USA's registrations, nor an operator
    assert raw(h, "KOR", "PUT", "/api/v1/parties/KOR/keys", json=fresh(h, "KOR")).status_code == 201
    assert raw(h, "operator", "PUT", "/api/v1/parties/USA/keys", json=fresh(h, "USA")).status_code == 201
    with h.client("USA") as usa, pytest.raises(TooManyRequests) as held:
        usa.register_keys("USA", fresh(h, "USA"))
    assert held.value.retry_after == 3600
    h.clock.advance(timedelta(hours=1, seconds=1))
    assert raw(h, "USA", "PUT", "/api/v1/parties/USA/keys", json=fresh(h, "USA")).status_code == 201


def test_the_openapi_document_lists_the_answers_a_caller_must_wait_after(harness: Harness) -> None:
    paths = harness.api.openapi()["paths"]
    assert "429" in paths["/api/v1/parties/{party}/keys"]["put"]["responses"]
    for path in ("/api/v1/reports", "/api/v1/consents/{consent_id}"):
        assert "busy" in paths[path]["post"]["responses"]["503"]["description"]


def keep_rotating_kor(h: Harness) -> None:
    """New keys for KOR (by the operator) after every submission is prepared, before it commits."""
    committer = h.exchange.context.committer
    run_batched_async = committer.run_batched_async

    def rotate() -> None:
        keys = PartyKeys.generate("KOR", h.keys["KOR"].profile).public_keys()
        h.exchange.keys.register(h.principals["operator"], "KOR", keys)

    async def hooked(*args: Any) -> Any:
        await asyncio.to_thread(rotate)
        return await run_batched_async(*args)

    committer.run_batched_async = hooked  # type: ignore[method-assign,assignment]


def test_a_report_whose_recipients_keys_keep_changing_is_503_busy_with_retry_after(harness: Harness) -> None:
    h = harness
    keep_rotating_kor(h)
    reports = h.written()[1]["reports"]
    answer = raw(h, "JPN", "POST", "/api/v1/reports", json=sign_report(h.keys["JPN"], h.draft(recipients=["KOR"])))
    assert answer.status_code == 503
    assert answer.json()["type"] == "urn:gsomia:problem:busy"
    assert answer.headers["Retry-After"] == str(answer.json()["retry_after"])
    batch = raw(
        h,
        "JPN",
        "POST",
        "/api/v1/report-batches",
        json={"reports": [sign_report(h.keys["JPN"], h.draft(recipients=["KOR"]))]},
    )
    (item,) = batch.json()["results"]
    assert (item["status"], item["problem"]["type"]) == (503, "urn:gsomia:problem:busy")
    assert item["problem"]["retry_after"] >= 1
    assert h.written()[1]["reports"] == reports


def test_key_sets_an_operator_registered_for_a_party_do_not_use_up_its_own(harness: Harness) -> None:
    # a party recovering from a lost key through the operator may still rotate itself after
    h = harness
    h.clock.advance(timedelta(hours=2))
    for _ in range(h.exchange.context.config.key_registrations):
        assert raw(h, "operator", "PUT", "/api/v1/parties/KOR/keys", json=fresh(h, "KOR")).status_code == 201
    own = raw(h, "KOR", "PUT", "/api/v1/parties/KOR/keys", json=fresh(h, "KOR"))
    assert own.status_code == 201, own.text
    for _ in range(h.exchange.context.config.key_registrations - 1):
        assert raw(h, "KOR", "PUT", "/api/v1/parties/KOR/keys", json=fresh(h, "KOR")).status_code == 201
    refused = raw(h, "KOR", "PUT", "/api/v1/parties/KOR/keys", json=fresh(h, "KOR"))
    assert refused.status_code == 429 and "in the last 60 minutes" in refused.json()["detail"]
