"""Who may see and do what, over a real socket: role × endpoint × foreign object.

A party never reads another party's inbox, deliveries, payloads, consents or submission
results, and objects it does not own are reported as not found (404), so their existence
does not leak; a role that may not take an action gets 403; no token gets 401. The auditor
never gets a payload or a content key, and the server never holds a party's private key.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.exchange_support import Exchange, start_exchange

pytestmark = pytest.mark.slow

ROLES = ("JPN", "KOR", "USA", "operator", "auditor", None)
PAYLOAD = b'{"secret-track": "ZZ-unique-plaintext-marker-4417"}'


@dataclass
class World:
    ex: Exchange
    report: str  # JPN's report: direct to USA, relay to KOR pending JPN's consent
    usa_delivery: str
    consent: str
    incident: str  # filed by USA on its delivery; JPN is told
    standing: str  # JPN's standing consent (to GBR, so it never applies here)
    payload_b64: str
    wrapped_key_b64: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    ex = start_exchange(
        tmp_path_factory.mktemp("access"),
        exercise_clock="2019-12-01T10:00+09:00",
        whatif="drop: [jpn-kor-2019-suspension]\n",
    )
    r = ex.submit("JPN", report_id="access-1", recipients=["KOR", "USA"], payload=PAYLOAD)
    assert r.status_code == 201, r.text
    got = {x["recipient"]: x for x in r.json()["recipients"]}
    usa_delivery = got["USA"]["deliveries"][0]["id"]
    view = ex.call("USA", "GET", f"/api/v1/deliveries/{usa_delivery}").json()
    inc = ex.call(
        "USA", "POST", f"/api/v1/deliveries/{usa_delivery}/incidents", json={"kind": "loss", "description": "x"}
    )
    sc = ex.call(
        "JPN",
        "POST",
        "/api/v1/standing-consents",
        json={"topic_prefix": "dprk.nuclear", "recipient": "GBR", "valid_until": "2020-01-01T00:00Z"},
    )
    yield World(
        ex=ex,
        report="access-1",
        usa_delivery=usa_delivery,
        consent=got["KOR"]["consent"]["id"],
        incident=inc.json()["id"],
        standing=sc.json()["id"],
        payload_b64=view["payload_ciphertext"],
        wrapped_key_b64=view["wrapped_key"],
    )
    ex.stop()


# (name, method, path template, body, {role: expected status}); roles not listed are not
# called (an owner's mutating call would change the world the other rows rely on).
PARTY_ONLY = {"operator": 403, "auditor": 403, None: 401}
MATRIX: list[tuple[str, str, str, Any, dict[str | None, int]]] = [
    ("inbox", "GET", "/api/v1/inbox", None, {"JPN": 200, "KOR": 200, "USA": 200, **PARTY_ONLY}),
    ("stream", "GET", "/api/v1/inbox/stream?cursor=0", None, PARTY_ONLY),
    ("delivery", "GET", "/api/v1/deliveries/{usa_delivery}", None, {"USA": 200, "JPN": 404, "KOR": 404, **PARTY_ONLY}),
    (
        "ack",
        "POST",
        "/api/v1/deliveries/{usa_delivery}/ack",
        {"need_to_know": True},
        {"JPN": 404, "KOR": 404, **PARTY_ONLY},
    ),
    (
        "file incident",
        "POST",
        "/api/v1/deliveries/{usa_delivery}/incidents",
        {"kind": "loss", "description": "not mine"},
        {"JPN": 404, "KOR": 404, **PARTY_ONLY},
    ),
    ("incident", "GET", "/api/v1/incidents/{incident}", None, {"USA": 200, "JPN": 200, "KOR": 404, **PARTY_ONLY}),
    (
        "incident update",
        "POST",
        "/api/v1/incidents/{incident}/updates",
        {"result": "x"},
        {"KOR": 404, **PARTY_ONLY},
    ),
    ("report result", "GET", "/api/v1/reports/{report}", None, {"JPN": 200, "KOR": 404, "USA": 404, **PARTY_ONLY}),
    ("consents", "GET", "/api/v1/consents", None, {"JPN": 200, "KOR": 200, "USA": 200, **PARTY_ONLY}),
    (
        "answer consent",
        "POST",
        "/api/v1/consents/{consent}",
        {"decision": "grant"},
        {"KOR": 404, "USA": 404, **PARTY_ONLY},
    ),
    ("standing list", "GET", "/api/v1/standing-consents", None, {"JPN": 200, "KOR": 200, **PARTY_ONLY}),
    ("standing revoke", "DELETE", "/api/v1/standing-consents/{standing}", None, {"KOR": 404, "USA": 404, **PARTY_ONLY}),
    ("public keys", "GET", "/api/v1/parties/JPN/keys", None, {r: 200 for r in ROLES if r} | {None: 401}),
    (
        "agreement event",
        "POST",
        "/api/v1/agreements/JPN-KOR-GSOMIA/events",
        {"kind": "notice", "by": "KOR"},
        {"JPN": 403, "KOR": 403, "USA": 403, "auditor": 403, None: 401},
    ),
    (
        "stats",
        "GET",
        "/api/v1/exchange/stats",
        None,
        {"JPN": 403, "KOR": 403, "USA": 403, "operator": 200, "auditor": 200, None: 401},
    ),
    (
        "exercise clock",
        "POST",
        "/api/v1/exercise/clock",
        {"at": "2030-01-01T00:00Z"},
        {"JPN": 403, "KOR": 403, "USA": 403, "auditor": 403, None: 401},
    ),
    ("ledger checkpoint", "GET", "/api/v1/ledger/checkpoint", None, {r: 200 for r in ROLES if r} | {None: 401}),
    ("ledger entries", "GET", "/api/v1/ledger/entries", None, {r: 200 for r in ROLES if r} | {None: 401}),
]

CASES = [
    pytest.param(method, path, body, role, status, id=f"{name}-{role or 'anonymous'}")
    for name, method, path, body, expected in MATRIX
    for role, status in expected.items()
]


@pytest.mark.parametrize(("method", "path", "body", "role", "status"), CASES)
def test_role_endpoint_object_matrix(
    world: World, method: str, path: str, body: Any, role: str | None, status: int
) -> None:
    url = path.format(**world.__dict__)
    r = world.ex.call(role, method, url, json=body)
    assert r.status_code == status, r.text
    if status >= 400:
        assert r.headers["content-type"].startswith("application/problem+json")
        assert world.payload_b64 not in r.text


@pytest.mark.parametrize("role", ["JPN", "KOR", "USA"])
def test_a_party_sees_only_its_own_inbox_and_consents(world: World, role: str) -> None:
    for item in world.ex.inbox(role):
        owner = item.get("recipient") if item["type"] == "delivery" else None
        if item["type"] == "consent_request":
            owner = "JPN"  # consent requests go to the originator
        if item["type"] == "incident":
            owner = item["originator"]
        assert owner in (None, role), item
    consents = world.ex.call(role, "GET", "/api/v1/consents", params={"state": "all"}).json()["consents"]
    assert all(c["originator"] == role for c in consents)
    assert bool(consents) == (role == "JPN")


@pytest.mark.parametrize("role", ["operator", "auditor"])
def test_operator_and_auditor_cannot_submit_as_a_party(world: World, role: str) -> None:
    body = world.ex.signed("JPN", report_id="not-theirs", recipients=["USA"])
    assert world.ex.call(role, "POST", "/api/v1/reports", json=body).status_code == 403


@pytest.mark.parametrize("role", ["KOR", "USA"])
def test_a_party_cannot_submit_or_register_keys_as_another(world: World, role: str) -> None:
    body = world.ex.signed("JPN", report_id=f"forged-by-{role}", recipients=["USA"])
    assert world.ex.call(role, "POST", "/api/v1/reports", json=body).status_code == 403
    theirs = world.ex.keys[role].public_keys().to_dict()
    assert world.ex.call(role, "PUT", "/api/v1/parties/JPN/keys", json=theirs).status_code == 403
    # registering its own keys under JPN's name is refused too (the keys say which party)
    assert world.ex.call(role, "PUT", f"/api/v1/parties/{role}/keys", json={**theirs, "party": "JPN"}).status_code in (
        403,
        422,
    )


def test_public_keys_are_public_only(world: World) -> None:
    keys = world.ex.call("KOR", "GET", "/api/v1/parties/JPN/keys").json()["keys"]
    assert {frozenset(k) for k in keys} == {
        frozenset(
            {
                "party",
                "profile",
                "signing_key",
                "encryption_key",
                "fingerprint",
                "registered_at",
                "retired_at",
                "current",
            }
        )
    }
    private: dict[str, Any] = world.ex.keys["JPN"].to_private_dict()
    text = str(keys)
    for part in (private["signing"], private["encryption"]):
        for value in part.values():
            assert value not in text


def test_the_auditor_never_gets_a_payload_or_a_content_key(world: World) -> None:
    seen: list[str] = []
    for path in ("/api/v1/exchange/stats", "/api/v1/ledger/checkpoint", "/api/v1/ledger/key"):
        r = world.ex.call("auditor", "GET", path)
        assert r.status_code == 200
        seen.append(r.text)
    start: int | None = 0
    while start is not None:
        page = world.ex.call("auditor", "GET", "/api/v1/ledger/entries", params={"start": start, "limit": 1000}).json()
        seen.append(str(page))
        start = page["next"]
    for who in ("USA", "KOR", "JPN"):
        seen.append(world.ex.call("auditor", "GET", f"/api/v1/parties/{who}/keys").text)
    everything = "\n".join(seen)
    assert world.payload_b64 not in everything
    assert world.wrapped_key_b64 not in everything
    assert "ZZ-unique-plaintext-marker-4417" not in everything
    assert base64.b64encode(PAYLOAD).decode() not in everything
    for forbidden in ("payload_ciphertext", 'wrapped_key"', "sealed_key"):
        assert forbidden not in everything
    for path in (f"/api/v1/deliveries/{world.usa_delivery}", f"/api/v1/reports/{world.report}", "/api/v1/inbox"):
        assert world.ex.call("auditor", "GET", path).status_code == 403


def _private_secrets(world: World) -> list[bytes]:
    out = []
    for keys in world.ex.keys.values():
        doc: dict[str, Any] = keys.to_private_dict()
        for part in (doc["signing"], doc["encryption"]):
            for value in part.values():
                raw = base64.b64decode(value)
                out += [raw, value.encode(), raw.hex().encode()]
    return out


def test_the_server_never_holds_a_party_private_key(world: World) -> None:
    files = [p for p in Path(world.ex.data_dir).rglob("*") if p.is_file()]
    assert any(p.name.startswith("gsomia.db") for p in files)
    assert not any(p.suffix == ".keys" for p in files)
    secrets = _private_secrets(world)
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret not in data, f"a party's private key material is in {path.name}"
    # and the stored payload is ciphertext only
    plaintext = b"ZZ-unique-plaintext-marker-4417"
    for path in files:
        assert plaintext not in path.read_bytes(), path.name
