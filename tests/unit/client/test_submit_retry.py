"""``ExchangeClient.submit`` sends the identical bytes again when an answer is lost, and only then."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gsomia.client.http import ExchangeClient
from gsomia.errors import Busy, Conflict, ExchangeUnreachable, StorageError

SUBMISSION = {"report": {"id": "r-1", "topic": "dprk.missile.launch", "level": "極秘"}, "signature": "c2ln", "key": "k"}
STORED = {"report": "r-1", "leaf_index": 7, "recipients": []}


class Exchange:
    """A mock exchange that fails the first ``failures`` submissions in the given way."""

    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        self.bodies: list[bytes] = []
        self.waits: list[float] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.content)
        kind = self.failures.pop(0) if self.failures else "ok"
        if kind == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if kind == "timeout":  # the exchange stored it; the answer never arrived
            raise httpx.ReadTimeout("timed out", request=request)
        if kind == "busy":
            return _problem(503, "storage-unavailable")
        if kind == "conflict":
            return _problem(409, "conflict")
        if kind == "deciding":  # what the report was decided on kept changing: nothing stored
            return _problem(503, "busy", retry_after=3)
        return httpx.Response(201 if len(self.bodies) == 1 else 200, json=STORED)

    def client(self, attempts: int = 4) -> ExchangeClient:
        return ExchangeClient(
            "http://exchange.test",
            token="t",
            transport=httpx.MockTransport(self.handle),
            attempts=attempts,
            backoff=0.5,
            sleep=self.waits.append,
        )


def _problem(status: int, kind: str, **extra: Any) -> httpx.Response:
    doc: dict[str, Any] = {"type": f"urn:gsomia:problem:{kind}", "title": kind, "status": status, "detail": kind}
    headers = {"Content-Type": "application/problem+json"}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    return httpx.Response(status, json=doc | extra, headers=headers)


def test_a_lost_answer_is_asked_again_with_the_same_bytes_after_a_growing_wait() -> None:
    ex = Exchange(["connect", "timeout", "busy"])
    assert ex.client().submit(SUBMISSION) == STORED
    assert len(ex.bodies) == 4 and len(set(ex.bodies)) == 1
    assert json.loads(ex.bodies[0]) == SUBMISSION
    assert ex.waits == [0.5, 1.0, 2.0]


def test_bytes_given_are_sent_as_they_are() -> None:
    ex = Exchange(["timeout"])
    body = b'{"report": {"id": "r-1"}, "signature": "c2ln", "key": "k"}'
    ex.client().submit(body)
    assert ex.bodies == [body, body]


def test_it_gives_up_after_the_last_attempt() -> None:
    ex = Exchange(["connect"] * 3)
    with pytest.raises(ExchangeUnreachable, match="sent 3 times"):
        ex.client(attempts=3).submit(SUBMISSION)
    assert len(ex.bodies) == 3 and ex.waits == [0.5, 1.0]
    busy = Exchange(["busy"] * 2)
    with pytest.raises(StorageError, match="sent 2 times"):
        busy.client(attempts=2).submit(SUBMISSION)


def test_an_answer_is_never_retried() -> None:
    ex = Exchange(["conflict"])
    with pytest.raises(Conflict):
        ex.client().submit(SUBMISSION)
    assert len(ex.bodies) == 1 and ex.waits == []


def test_a_busy_exchange_is_sent_the_report_again_no_sooner_than_it_asks() -> None:
    ex = Exchange(["deciding", "deciding"])
    assert ex.client().submit(SUBMISSION) == STORED
    assert len(ex.bodies) == 3 and len(set(ex.bodies)) == 1
    assert ex.waits == [3, 3]  # the Retry-After asked, longer than the backoff of 0.5 and 1
    stays = Exchange(["deciding"] * 2)
    with pytest.raises(Busy, match="sent 2 times") as busy:
        stays.client(attempts=2).submit(SUBMISSION)
    assert busy.value.retry_after == 3
