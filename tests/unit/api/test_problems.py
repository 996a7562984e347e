"""Errors the API did not plan for are still problem documents that leak nothing; a denial
carries its reasons as objects; the body limit and the exercise stamp hold at the ASGI level."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

from gsomia.api.middleware import BodyLimit, ExerciseStamp
from gsomia.api.problems import for_error
from gsomia.domain.policy import Reason, Rule
from gsomia.errors import ExchangeError, ReleaseDenied, StorageError
from gsomia.services.exchange.clock import ExerciseInfo
from tests.harness import Harness


def test_an_unexpected_failure_is_a_500_problem_that_says_nothing_was_changed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_principal: Any) -> dict[str, Any]:
        raise RuntimeError("secret internal state 0xdeadbeef")

    monkeypatch.setattr(harness.exchange.deliveries, "stats", broken)
    with harness.client("auditor") as auditor, pytest.raises(ExchangeError) as caught:
        auditor.exchange_stats()
    assert (
        str(caught.value) == "an internal error occurred; nothing was changed (HTTP 500, urn:gsomia:problem:internal)"
    )
    assert "deadbeef" not in str(caught.value)


def test_a_storage_failure_is_503_and_reads_as_a_storage_error(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(_principal: Any) -> dict[str, Any]:
        raise StorageError("the database is not reachable")

    monkeypatch.setattr(harness.exchange.deliveries, "stats", down)
    with harness.client("auditor") as auditor, pytest.raises(StorageError, match=r"not reachable \(HTTP 503\)"):
        auditor.exchange_stats()


def test_a_denial_carries_each_reason_as_an_object() -> None:
    denied = ReleaseDenied(
        [Reason(Rule.LEVEL, "機密 is not in the equivalence table", "JPN-KOR-GSOMIA"), "a plain reason"]
    )
    response = for_error(denied)
    body = json.loads(bytes(response.body))
    assert (response.status_code, body["type"]) == (403, "urn:gsomia:problem:release-denied")
    assert body["reasons"] == [
        {"rule": "level", "message": "機密 is not in the equivalence table", "agreement": "JPN-KOR-GSOMIA"},
        {"message": "a plain reason"},
    ]


# --- the middleware, at the ASGI level --------------------------------------------------------------


class Echo:
    """An ASGI app that answers with the body it received."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.seen.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def call(app: Any, messages: list[dict[str, Any]], headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    anyio.run(app, scope, receive, send)
    return sent


def test_a_body_without_a_usable_length_is_counted_as_it_arrives() -> None:
    echo = Echo()
    limited = BodyLimit(echo, max_bytes=8, timeout=30)
    chunks = [
        {"type": "http.request", "body": b"1234", "more_body": True},
        {"type": "http.request", "body": b"5678", "more_body": False},
    ]
    sent = call(limited, chunks, [(b"content-length", b"not a number")])
    assert sent[0]["status"] == 200 and echo.seen == [b"12345678"]
    too_much = [*chunks[:1], {"type": "http.request", "body": b"56789", "more_body": False}]
    refused = call(limited, too_much, [])
    assert refused[0]["status"] == 413 and len(echo.seen) == 1  # the app never saw it


def test_a_client_that_goes_away_mid_body_reaches_the_app_as_a_disconnect() -> None:
    echo = Echo()
    sent = call(
        BodyLimit(echo, max_bytes=8, timeout=30), [{"type": "http.request", "body": b"12", "more_body": True}], []
    )
    assert sent[0]["status"] == 200 and echo.seen == [b"12"]


def test_the_exercise_stamp_goes_on_every_response_only_in_exercise_mode() -> None:
    info: list[ExerciseInfo | None] = [None]
    stamped = ExerciseStamp(Echo(), info=lambda: info[0])
    request = [{"type": "http.request", "body": b"", "more_body": False}]
    assert call(stamped, request, [])[0]["headers"] == []
    info[0] = ExerciseInfo(clock=datetime(2019, 11, 22, 1, 0, tzinfo=UTC), whatif="ドロップ.yaml")
    headers = dict(call(stamped, request, [])[0]["headers"])
    assert headers[b"gsomia-exercise"] == b"clock=2019-11-22T01:00+00:00; whatif=????.yaml"  # header values are ASCII
