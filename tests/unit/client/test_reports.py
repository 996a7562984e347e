"""Signing a report on the originator's machine (docs/protocol.md §Signed report): the signature
covers the RFC 8785 bytes of the whole report, payload included, so changing any member breaks
it; the private key never appears in what is sent."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsomia.client.reports import ReportDraft, sign_report
from gsomia.crypto import PartyKeys, Profile, verify
from gsomia.domain.instants import parse_instant
from gsomia.errors import BadSignature, InvalidInput
from gsomia.ledger.entries import entry_bytes

KEYS = PartyKeys.generate("JPN", Profile.CLASSIC)
CREATED = parse_instant("2019-11-28T16:59+09:00", "UTC")


def draft(**fields: Any) -> ReportDraft:
    base: dict[str, Any] = {
        "id": "r-1",
        "topic": "dprk.missile.launch",
        "level": "極秘",
        "payload": b"track",
        "created": CREATED,
    }
    return ReportDraft(**(base | fields))


def test_a_signed_report_names_its_originator_and_every_member() -> None:
    body = sign_report(KEYS, draft(recipients=["KOR", "USA"], rel_to=["KOR", "USA"], orcon=True))
    assert set(body) == {"report", "signature", "key"}
    assert body["key"] == KEYS.fingerprint()
    assert body["report"] == {
        "id": "r-1",
        "originator": "JPN",
        "topic": "dprk.missile.launch",
        "level": "極秘",
        "caveats": {"rel_to": ["KOR", "USA"], "noforn": False, "orcon": True},
        "created": "2019-11-28T07:59:00+00:00",
        "recipients": ["KOR", "USA"],
        "content_type": "application/octet-stream",
        "payload": base64.b64encode(b"track").decode(),
    }
    verify(KEYS.public_keys(), entry_bytes(body["report"]), base64.b64decode(body["signature"]))


def test_defaults_send_to_every_party_without_caveats() -> None:
    report = sign_report(KEYS, draft())["report"]
    assert report["recipients"] is None
    assert report["caveats"] == {"rel_to": None, "noforn": False, "orcon": False}


def test_the_private_key_is_never_sent() -> None:
    text = str(sign_report(KEYS, draft()))
    for part in KEYS.to_private_dict().values():
        if isinstance(part, dict):
            assert all(value not in text for value in part.values())


def test_a_creation_time_without_a_zone_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"report\.created"):
        sign_report(KEYS, draft(created=datetime(2019, 11, 28, 16, 59)))  # noqa: DTZ001 - the point of the test


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("id", "r-2"),
        ("originator", "KOR"),
        ("topic", "dprk.nuclear.test"),
        ("level", "秘"),
        ("caveats", {"rel_to": None, "noforn": True, "orcon": False}),
        ("created", "2019-11-28T08:00:00+00:00"),
        ("recipients", ["KOR"]),
        ("content_type", "text/plain"),
        ("payload", base64.b64encode(b"trace").decode()),
    ],
)
def test_changing_any_member_breaks_the_signature(member: str, value: object) -> None:
    body = sign_report(KEYS, draft())
    altered = {**body["report"], member: value}
    with pytest.raises(BadSignature):
        verify(KEYS.public_keys(), entry_bytes(altered), base64.b64decode(body["signature"]))


@settings(max_examples=30, deadline=None)
@given(payload=st.binary(max_size=256), report_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True))
def test_any_payload_and_id_sign_and_verify(payload: bytes, report_id: str) -> None:
    body = sign_report(KEYS, draft(id=report_id, payload=payload))
    assert base64.b64decode(body["report"]["payload"]) == payload
    verify(KEYS.public_keys(), entry_bytes(body["report"]), base64.b64decode(body["signature"]))


def test_a_cnsa2_key_signs_as_well() -> None:
    keys = PartyKeys.generate("KOR", Profile.CNSA2)
    body = sign_report(keys, draft(level="군사II급비밀"))
    assert body["report"]["originator"] == "KOR" and body["key"] == keys.fingerprint()
    verify(keys.public_keys(), entry_bytes(body["report"]), base64.b64decode(body["signature"]))
