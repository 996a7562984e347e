"""Property-based fuzzing of a live party node's console API from its own OpenAPI document
(Schemathesis), as an officer's browser or a script would call it.

A real exchange with the bundled scenario, in exercise mode after the Japan–Korea GSOMIA ended,
one report delivered to KOR, and KOR's node following it; an admin session (its cookie and CSRF
token) sends every request. For every operation of ``/api/openapi.json`` but the few that would
end the session (logging out, revoking users), Schemathesis generates requests that fit the
document (positive) and requests that break it (negative). Every answer must have no 5xx status,
a status the document declares for that operation, and the media type it declares for that
status (``application/problem+json`` for errors). Ids in paths are random text: they reach the
exchange's URLs as one segment each, never another resource.

Generation is deterministic (Hypothesis ``derandomize``, Schemathesis ``seed``); every failure is
reported with a curl command that replays it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeAlias

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from tests.integration.exchange_support import start_exchange
from tests.integration.node_support import PASSWORD, Node, start_node

pytestmark = pytest.mark.slow

SEED = 20190823
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 15}
SKIPPED = {("DELETE", "/api/session"), ("DELETE", "/api/users/{username}"), ("GET", "/api/events")}
"""Logging out and revoking users would end the session the rest runs in; the event stream
never ends (its own tests read it)."""

Operation: TypeAlias = APIOperation[Any, Any, Any, Any]
AnyCase: TypeAlias = Case[Operation]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    tmp: Path = tmp_path_factory.mktemp("node-fuzz")
    ex = start_exchange(
        tmp / "ex",
        exercise_clock="2019-12-01T10:00+09:00",
        whatif="name: termination-took-effect\ndrop: [jpn-kor-2019-suspension]\n",
    )
    try:
        submitted = ex.submit("JPN", report_id="fuzz-1", recipients=["KOR", "USA"])
        assert submitted.status_code == 201, submitted.text
        kor = start_node(ex, "KOR", tmp)
    except BaseException:
        ex.stop()
        raise
    yield kor
    kor.stop()
    ex.stop()


def _session(node: Node) -> dict[str, str]:
    with httpx.Client(base_url=node.url) as c:
        r = c.post("/api/session", json={"username": "chief", "password": PASSWORD})
        assert r.status_code == 200, r.text
        cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
        return {"X-CSRF-Token": r.json()["csrf"], "Cookie": cookie}


def _operations(api: BaseSchema) -> list[Operation]:
    operations = []
    for result in api.get_all_operations():
        assert isinstance(result, Ok), result
        op = result.ok()
        if (op.method.upper(), op.path) not in SKIPPED:
            operations.append(op)
    assert len(operations) > 20
    return operations


def _negatable(operation: Operation) -> bool:
    """True if a negative case of the operation exists: a body or a query or header parameter
    to break (any text is a valid path string here)."""
    raw = operation.definition.raw
    return "requestBody" in raw or any(p["in"] != "path" for p in raw.get("parameters", []))


def test_generated_requests_to_the_console_api_get_documented_answers_and_never_a_5xx(node: Node) -> None:
    headers = _session(node)
    config = schemathesis.Config.from_dict({"seed": SEED, "generation": {"deterministic": True}})
    api = schemathesis.openapi.from_url(node.url + "/api/openapi.json", config=config)
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    ended: list[str] = []
    started = time.monotonic()
    for operation in _operations(api):
        for mode, examples in EXAMPLES.items():
            if mode is GenerationMode.NEGATIVE and not _negatable(operation):
                continue  # nothing in the request to break: its positive cases are all there is

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: AnyCase) -> None:
                response = case.call(headers=headers, timeout=30)
                statuses[response.status_code] += 1
                if response.status_code == 401 and case.operation.path != "/api/session":
                    ended.append(case.operation.label)  # a failed login is 401; any other, a lost session
                try:
                    case.validate_response(response, checks=CHECKS, headers=headers)
                except FailureGroup as e:
                    failures.append(f"{case.operation.label}: {e}\n  {case.as_curl_command(headers)}")

            run()
    print(  # the figures, in the test's output
        f"node API fuzzing: {sum(statuses.values())} cases in {time.monotonic() - started:.0f} s; "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    assert sum(statuses.values()) > 500
    assert not ended, f"the session ended during the run ({ended[:3]}): the rest was not fuzzed as intended"
    assert not failures, f"{len(failures)} failing cases:\n" + "\n".join(failures[:20])
