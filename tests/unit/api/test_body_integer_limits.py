"""Every integer a request body's schema allows, the exchange's JSON parser reads: a body
number beyond ±(2**53 − 1) is refused before any schema (I-JSON, RFC 7493 §2.2), so no schema
may document a larger one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from gsomia.api.middleware import _SAFE_INTEGER
from gsomia.crypto.ledger_key import Cosigner
from gsomia.crypto.signing import ExchangeSigner
from tests.harness import Harness, InProcessTransport


def _bounds(node: Any, schemas: dict[str, Any], where: str, seen: frozenset[str]) -> Iterator[tuple[str, float]]:
    """Every ``maximum`` and negated ``minimum`` under ``node`` (FastAPI writes them as
    numbers, integers or not), with where it is."""
    if isinstance(node, list):
        for item in node:
            yield from _bounds(item, schemas, where, seen)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name not in seen:
            yield from _bounds(schemas[name], schemas, name, seen | {name})
    for bound, sign in (("maximum", 1), ("minimum", -1)):
        value = node.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            yield where, sign * value
    for key, value in node.items():
        if key != "$ref":
            yield from _bounds(value, schemas, f"{where}.{key}", seen)


def test_no_request_body_allows_an_integer_beyond_what_the_json_parser_reads(harness: Harness) -> None:
    spec = harness.api.openapi()
    schemas = spec["components"]["schemas"]
    bodies = [
        (f"{method.upper()} {path}", operation["requestBody"])
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "requestBody" in operation
    ]
    assert any(where == "POST /api/v1/ledger/cosignatures" for where, _ in bodies)
    beyond = [
        (where, bound)
        for route, body in bodies
        for where, bound in _bounds(body, schemas, route, frozenset())
        if bound > _SAFE_INTEGER
    ]
    assert beyond == []


def test_a_cosignature_size_is_read_up_to_the_documented_limit(harness: Harness) -> None:
    witness = Cosigner("jpn.witness.example", ExchangeSigner.generate())
    harness.exchange.witnesses.register(harness.principals["JPN"], "JPN", witness.public.vkey())
    line = witness.cosign("x\n1\nAA==\n", int(harness.clock().timestamp()))
    headers = {"Authorization": f"Bearer {harness.tokens['JPN']}"}
    with httpx.Client(base_url="http://exchange.test", transport=InProcessTransport(harness.api), headers=headers) as c:
        largest = c.post("/api/v1/ledger/cosignatures", json={"size": 2**53 - 1, "cosignature": line})
        beyond = c.post("/api/v1/ledger/cosignatures", json={"size": 2**53, "cosignature": line})
    assert largest.status_code == 404, largest.text  # read, then looked for: the ledger is not that large
    assert beyond.status_code == 422
