"""Property-based fuzzing of the live API from its own OpenAPI document (Schemathesis).

A real ``gsomia serve`` with the bundled scenario, in exercise mode after the Japan–Korea
GSOMIA ended (so relays wait for consent), with a token for every role and one object of every
kind (reports, deliveries, a pending consent, an incident, a standing consent). For every
operation of ``/openapi.json``, Schemathesis generates requests that fit the document
(positive) and requests that break it (negative), plus its deterministic coverage cases
(boundaries, missing and wrong-typed members, unexpected methods); path parameters are random
or name the existing objects; each request is sent as one role, or without a token. Every
answer must have:

- no 5xx status;
- a status the document declares for that operation;
- a media type the document declares for that status (``application/problem+json`` for errors);
- a body that conforms to the declared schema;
- for a method the document does not declare, 405 with ``Allow`` listing the declared ones.

Generation is deterministic (Hypothesis ``derandomize``, Schemathesis ``seed``), so a run that
fails fails the same way again; every failure is reported with a curl command that replays it.
The figures (cases, statuses, time) are printed at the end of the module.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.integration.exchange_support import Exchange, start_exchange

pytestmark = pytest.mark.slow

SEED = 20191122
ROLES = ("JPN", "KOR", "USA", "operator", "auditor", None)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    # a method the document does not declare is 405 with an Allow header that lists what it declares
    unsupported_method,
    allow_header_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 120, GenerationMode.NEGATIVE: 70}
"""Generated requests per operation and mode (the coverage cases come on top)."""
STREAM_EXAMPLES = 8
"""Fewer for the event stream: a stream with nothing to send is read until :data:`STREAM_SECONDS`."""
STREAM_SECONDS = 0.5

Operation: TypeAlias = APIOperation[Any, Any, Any, Any]
"""An operation of the OpenAPI document (its parameter, response and schema types do not matter here)."""
AnyCase: TypeAlias = Case[Operation]
"""A generated request to one such operation."""


@dataclass
class Tally:
    """What the fuzzer sent and what it found."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def summary(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        cases = ", ".join(f"{kind} {n}" for kind, n in self.cases.items())
        return (
            f"API fuzzing: {sum(self.cases.values())} cases ({cases}) in {time.monotonic() - self.started:.0f} s; "
            f"statuses {statuses}; {len(self.failures)} failing"
        )


@dataclass
class Fuzzed:
    """The served exchange and the ids of the objects in it, by path parameter name."""

    exchange: Exchange
    ids: dict[str, list[str]]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    ex = start_exchange(
        tmp_path_factory.mktemp("fuzz"),
        exercise_clock="2019-12-01T10:00+09:00",
        whatif="name: termination-took-effect\ndrop: [jpn-kor-2019-suspension]\n",
    )
    try:
        ids = _seed(ex)
    except BaseException:
        ex.stop()
        raise
    yield Fuzzed(ex, ids)
    ex.stop()


def _seed(ex: Exchange) -> dict[str, list[str]]:
    """One object of every kind, so that reads and writes of existing objects are fuzzed too."""
    submitted = ex.submit("JPN", report_id="fuzz-1", recipients=["KOR", "USA"])
    assert submitted.status_code == 201, submitted.text
    recipients = {r["recipient"]: r for r in submitted.json()["recipients"]}
    consent = recipients["KOR"]["consent"]["id"]  # relayed through the US: waits for consent
    (delivery,) = (d["id"] for d in recipients["USA"]["deliveries"])
    incident = ex.call(
        "USA", "POST", f"/api/v1/deliveries/{delivery}/incidents", json={"kind": "loss", "description": "a lost copy"}
    )
    assert incident.status_code == 201, incident.text
    standing = ex.call(
        "JPN",
        "POST",
        "/api/v1/standing-consents",
        json={"topic_prefix": "dprk.nuclear", "recipient": "KOR", "valid_until": "2020-06-01"},
    )
    assert standing.status_code == 201, standing.text
    return {
        "report_id": ["fuzz-1"],
        "delivery_id": [delivery],
        "incident_id": [incident.json()["id"]],
        "consent_id": [consent],
        "standing_id": [standing.json()["id"]],
        "party": ["JPN", "KOR", "USA"],
        "agreement_id": ["JPN-KOR-GSOMIA", "TISA"],
        "index": ["0", "1"],
    }


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    t = Tally()
    yield t
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(t.summary())


@pytest.fixture(scope="module")
def api(fuzzed: Fuzzed) -> BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "max-stream-events": 1,
            "generation": {"deterministic": True, "with-security-parameters": False},
        }
    )
    return schemathesis.openapi.from_url(fuzzed.exchange.url + "/openapi.json", config=config)


def _operations(api: BaseSchema) -> list[Operation]:
    operations = []
    for result in api.get_all_operations():
        assert isinstance(result, Ok), result  # every operation of the document can be fuzzed
        operations.append(result.ok())
    assert len(operations) > 40
    return operations


def _streams(operation: Operation) -> bool:
    return operation.path.endswith("/stream")


def _negatable(operation: Operation) -> bool:
    """True if a negative case of the operation exists: a body or a query or header parameter
    to break, or a path parameter with a type or constraint (any text is a valid path string)."""
    raw = operation.definition.raw
    return "requestBody" in raw or any(
        p["in"] != "path" or set(p.get("schema", {})) - {"type", "title"} or p["schema"].get("type") != "string"
        for p in raw.get("parameters", [])
    )


def _cases(operation: Operation, mode: GenerationMode, ids: dict[str, list[str]]) -> st.SearchStrategy[AnyCase]:
    """Cases of ``operation``: random, and (positive) naming existing objects in the path."""
    names = [p["name"] for p in operation.definition.raw.get("parameters", []) if p["in"] == "path"]
    random = operation.as_strategy(generation_mode=mode)
    if mode is not GenerationMode.POSITIVE or not names or not all(n in ids for n in names):
        return random
    existing = st.fixed_dictionaries({n: st.sampled_from(ids[n]) for n in names}).flatmap(
        lambda path: operation.as_strategy(generation_mode=mode, path_parameters=path)
    )
    return st.one_of(random, existing)


def _sender(fuzzed: Fuzzed, tally: Tally, kind: str) -> Callable[[AnyCase, str | None], None]:
    def send(case: AnyCase, role: str | None) -> None:
        headers = {"Authorization": f"Bearer {fuzzed.exchange.tokens[role]}"} if role else {}
        # An event stream never ends: Schemathesis reads it until its first event or the timeout.
        response = case.call(headers=headers, timeout=STREAM_SECONDS if _streams(case.operation) else 30)
        tally.cases[kind] += 1
        tally.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as e:
            replay = case.as_curl_command({"Authorization": f"Bearer <{role} token>"} if role else {})
            tally.failures.append(f"{case.operation.label} as {role or 'anonymous'}: {e}\n  {replay}")

    return send


def _verdict(tally: Tally) -> None:
    assert not tally.failures, f"{len(tally.failures)} failing cases:\n" + "\n".join(tally.failures[:20])


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_get_documented_answers_and_never_a_5xx(
    api: BaseSchema, fuzzed: Fuzzed, tally: Tally, mode: GenerationMode
) -> None:
    send = _sender(fuzzed, tally, str(mode))
    for operation in _operations(api):
        if mode is GenerationMode.NEGATIVE and not _negatable(operation):
            continue  # nothing in the request to break: its positive cases are all there is

        @given(case=_cases(operation, mode, fuzzed.ids), role=st.sampled_from(ROLES))
        @settings(
            max_examples=STREAM_EXAMPLES if _streams(operation) else EXAMPLES[mode],
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: AnyCase, role: str | None) -> None:
            send(case, role)

        run()
    _verdict(tally)


def test_coverage_cases_get_documented_answers_and_never_a_5xx(api: BaseSchema, fuzzed: Fuzzed, tally: Tally) -> None:
    send = _sender(fuzzed, tally, "coverage")
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    for operation in _operations(api):
        cases = api.iter_coverage_cases(operation, generation_modes=modes, generation_config=api.config.generation)
        for i, case in enumerate(cases):
            send(case, ROLES[i % len(ROLES)])
    _verdict(tally)
