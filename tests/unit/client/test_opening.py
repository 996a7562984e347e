"""Opening a delivery on the recipient's machine: the payload decrypts only with the recipient's
key, for that delivery id and report id, and only unaltered; the originator's signature is
checked against its registered keys, and anything that does not hold is opaque
(DecryptionFailed, BadSignature)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

import pytest

from gsomia.client.opening import OpenedDelivery, open_delivery, signed_bytes, verify_origin
from gsomia.client.reports import ReportDraft, sign_report
from gsomia.crypto import (
    PartyKeys,
    Profile,
    delivery_info,
    encrypt_payload,
    new_content_key,
    payload_aad,
    wrap_key,
)
from gsomia.domain.instants import parse_instant
from gsomia.errors import BadSignature, DecryptionFailed, InvalidInput
from gsomia.ledger.entries import entry_bytes
from tests.harness import start

JPN = PartyKeys.generate("JPN", Profile.CLASSIC)
KOR = PartyKeys.generate("KOR", Profile.CLASSIC)
USA = PartyKeys.generate("USA", Profile.CLASSIC)
PAYLOAD = b'{"track": [[39.7, 127.1, 0], [40.9, 131.8, 380]]}'


RECEIVED = "2019-11-22T01:00:00+00:00"
"""When the exchange received the report of :func:`view_for`."""


def registered(
    *keys: PartyKeys, since: str = "2019-01-01T00:00:00+00:00", until: str | None = None
) -> list[dict[str, Any]]:
    """Keys as ``GET /api/v1/parties/{party}/keys`` lists them, valid from ``since`` to ``until``."""
    return [
        {
            **k.public_keys().to_dict(),
            "fingerprint": k.fingerprint(),
            "registered_at": since,
            "retired_at": until,
            "current": until is None,
        }
        for k in keys
    ]


def view_for(recipient: PartyKeys = KOR, *, originator: PartyKeys = JPN, delivery_id: str = "d-1") -> dict[str, Any]:
    """A delivery as the exchange serves it: the originator's signed report with the ledger's
    salted commitment to it, the payload under a content key, the content key wrapped to
    ``recipient`` for this delivery id."""
    draft = ReportDraft(
        id="r-1",
        topic="dprk.missile.launch",
        level="極秘",
        payload=PAYLOAD,
        created=parse_instant("2019-11-22T10:00+09:00", "UTC"),
        recipients=[recipient.party],
        content_type="application/json",
    )
    body = sign_report(originator, draft)
    report = {k: v for k, v in body["report"].items() if k != "payload"}
    content_key = new_content_key()
    salt = os.urandom(32)
    sealed = encrypt_payload(content_key, PAYLOAD, payload_aad(originator.party, "r-1"))
    return {
        "id": delivery_id,
        "report": "r-1",
        "originator": originator.party,
        "format": 2,
        "marking": {"banner": "군사II급비밀 (JPN 極秘)"},
        "payload_ciphertext": base64.b64encode(sealed).decode(),
        "wrapped_key": base64.b64encode(
            wrap_key(recipient.public_keys(), content_key, delivery_info(delivery_id, recipient.party))
        ).decode(),
        "origin": {
            "report": report,
            "signature": body["signature"],
            "key": body["key"],
            "received_at": RECEIVED,
            "commitment": hmac.new(salt, entry_bytes(body["report"]), hashlib.sha256).hexdigest(),
            "salt": base64.b64encode(salt).decode(),
        },
    }


def flip(b64: str, at: int = -1) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_the_recipient_opens_and_verifies_a_delivery() -> None:
    view = view_for()
    payload = open_delivery(view, KOR)
    assert payload == PAYLOAD
    verify_origin(view, payload, registered(USA, JPN))
    opened = OpenedDelivery(view=view, payload=payload)
    assert (opened.delivery_id, opened.report_id, opened.banner) == ("d-1", "r-1", "군사II급비밀 (JPN 極秘)")
    assert "track" not in repr(opened)


def test_the_signed_bytes_are_the_report_with_its_payload() -> None:
    view = view_for()
    origin = view["origin"]
    assert signed_bytes(origin["report"], PAYLOAD) == entry_bytes(
        {**origin["report"], "payload": base64.b64encode(PAYLOAD).decode()}
    )


@pytest.mark.parametrize(
    "alter",
    [
        pytest.param(lambda v: {**v, "payload_ciphertext": flip(v["payload_ciphertext"])}, id="ciphertext"),
        pytest.param(lambda v: {**v, "payload_ciphertext": flip(v["payload_ciphertext"], 0)}, id="nonce"),
        pytest.param(lambda v: {**v, "wrapped_key": flip(v["wrapped_key"])}, id="wrapped key"),
        pytest.param(lambda v: {**v, "id": "d-2"}, id="another delivery id"),
        pytest.param(lambda v: {**v, "report": "r-2"}, id="another report id"),
        pytest.param(lambda v: {**v, "originator": "KOR"}, id="another originator"),
    ],
)
def test_anything_altered_fails_to_decrypt(alter: Any) -> None:
    with pytest.raises(DecryptionFailed) as caught:
        open_delivery(alter(view_for()), KOR)
    assert str(caught.value) == "decryption failed"


def test_another_partys_key_does_not_open_a_delivery() -> None:
    with pytest.raises(DecryptionFailed):
        open_delivery(view_for(KOR), USA)
    other_kor = PartyKeys.generate("KOR", Profile.CLASSIC)
    with pytest.raises(DecryptionFailed):
        open_delivery(view_for(KOR), other_kor)


def test_a_signature_checked_with_the_wrong_key_is_a_bad_signature() -> None:
    view = view_for()
    # a key listed under the originator's fingerprint that is not the originator's key
    impostor = [{**registered(USA)[0], "party": "JPN", "fingerprint": JPN.fingerprint()}]
    with pytest.raises(BadSignature):
        verify_origin(view, PAYLOAD, impostor)


@pytest.mark.parametrize("missing", ["party", "profile", "signing_key", "encryption_key"])
def test_a_registered_key_missing_a_member_is_invalid_input_not_a_key_error(missing: str) -> None:
    # a KeyError here escaped the node's checks (it quarantines on BadSignature or InvalidInput)
    doc = {k: v for k, v in registered(JPN)[0].items() if k != missing}
    with pytest.raises(InvalidInput):
        verify_origin(view_for(), PAYLOAD, ["not a key", doc])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("2019-11-22T02:00:00+00:00", None),  # registered only after the exchange received the report
        ("2019-01-01T00:00:00+00:00", "2019-11-22T00:00:00+00:00"),  # retired before it
        ("2019-01-01T00:00:00+00:00", RECEIVED),  # retired at that very instant
    ],
)
def test_a_key_that_was_not_valid_when_the_report_was_received_is_a_bad_signature(
    since: str, until: str | None
) -> None:
    with pytest.raises(BadSignature):
        verify_origin(view_for(), PAYLOAD, registered(JPN, since=since, until=until))


def test_a_key_retired_after_the_report_was_received_still_verifies_it() -> None:
    verify_origin(view_for(), PAYLOAD, registered(JPN, until="2019-12-01T00:00:00+00:00"))


def test_a_commitment_that_does_not_match_or_an_undated_receipt_is_a_bad_signature() -> None:
    view = view_for()
    view["origin"]["commitment"] = "00" * 32
    with pytest.raises(BadSignature):
        verify_origin(view, PAYLOAD, registered(JPN))
    undated = view_for()
    undated["origin"]["received_at"] = "not an instant"
    with pytest.raises(BadSignature):
        verify_origin(undated, PAYLOAD, registered(JPN))


def test_an_unknown_fingerprint_is_a_bad_signature() -> None:
    with pytest.raises(BadSignature):
        verify_origin(view_for(), PAYLOAD, registered(USA, KOR))
    with pytest.raises(BadSignature):
        verify_origin(view_for(), PAYLOAD, [])


@pytest.mark.parametrize(
    "alter",
    [
        pytest.param(lambda v: v["origin"]["report"].update(level="秘"), id="level"),
        pytest.param(lambda v: v["origin"]["report"].update(recipients=["KOR", "USA"]), id="recipients"),
        pytest.param(lambda v: v["origin"].update(signature=flip(v["origin"]["signature"])), id="signature"),
    ],
)
def test_an_altered_origin_is_a_bad_signature(alter: Any) -> None:
    view = view_for()
    alter(view)
    with pytest.raises(BadSignature) as caught:
        verify_origin(view, PAYLOAD, registered(JPN))
    assert str(caught.value) == "signature verification failed"


def test_a_payload_other_than_the_signed_one_is_a_bad_signature() -> None:
    with pytest.raises(BadSignature):
        verify_origin(view_for(), PAYLOAD + b" ", registered(JPN))


@pytest.mark.parametrize(
    ("view", "message"),
    [
        ({"origin": None}, "origin"),
        ({"origin": {"report": "not an object"}}, "origin"),
    ],
)
def test_a_malformed_origin_is_invalid_input(view: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        verify_origin(view, PAYLOAD, registered(JPN))


def test_a_malformed_view_is_invalid_input() -> None:
    view = view_for()
    with pytest.raises(InvalidInput, match="wrapped_key"):
        open_delivery({**view, "wrapped_key": None}, KOR)
    with pytest.raises(InvalidInput, match="payload_ciphertext"):
        open_delivery({**view, "payload_ciphertext": "***"}, KOR)


def test_cnsa2_deliveries_open_through_the_exchange(tmp_path: Path) -> None:
    h = start(tmp_path, profiles={"JPN": Profile.CNSA2, "KOR": Profile.CNSA2})
    try:
        h.submit("JPN", recipients=["KOR"], payload=PAYLOAD)
        (item,) = h.deliveries("KOR")
        view = h.exchange.deliveries.delivery(h.principals["KOR"], item["id"])
        assert view["profile"] == "cnsa2"
        assert h.open("KOR", item["id"]) == PAYLOAD
        with pytest.raises(DecryptionFailed):
            open_delivery(view, PartyKeys.generate("KOR", Profile.CNSA2))
    finally:
        h.close()
