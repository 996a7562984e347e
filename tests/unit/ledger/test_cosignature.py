"""Cosignatures (C2SP tlog-cosignature, Ed25519 ``cosignature/v1``): the key ID, the signed
message and the line, each derived here by hand from the specification, and the quorum count."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gsomia.crypto.ledger_key import Cosigner, CosignerPublicKey
from gsomia.crypto.signing import ExchangeSigner
from gsomia.errors import InvalidInput, LedgerInvalid
from gsomia.ledger.checkpoint import Checkpoint, sign_note
from gsomia.ledger.cosignature import cosigned_message, cosigner_key_id, quorum, split_line

BODY = "example.com/log\n42\n" + base64.b64encode(bytes(range(32))).decode() + "\n"


def witness(name: str) -> Cosigner:
    return Cosigner(name, ExchangeSigner.generate())


def log_note() -> str:
    signer = ExchangeSigner.generate()
    cp = Checkpoint(origin="example.com/log", size=42, root_hash=bytes(range(32)))
    key_id = hashlib.sha256(b"example.com/log\n\x01" + signer.public_key_raw()).digest()[:4]
    return sign_note(cp, "example.com/log", key_id, signer.sign)


def test_the_key_id_is_the_first_four_bytes_of_sha256_of_name_newline_0x04_key() -> None:
    key = bytes(range(32))
    expected = hashlib.sha256(b"w.example\n\x04" + key).digest()[:4]
    assert cosigner_key_id("w.example", key) == expected
    assert CosignerPublicKey(name="w.example", public_key=key).key_id == expected


def test_the_signed_message_is_the_v1_header_the_time_line_and_the_body() -> None:
    assert cosigned_message(BODY, 1700000000) == b"cosignature/v1\ntime 1700000000\n" + BODY.encode()
    with pytest.raises(InvalidInput):
        cosigned_message(BODY, -1)
    with pytest.raises(InvalidInput):
        cosigned_message(BODY, 1 << 63)


def test_a_line_carries_key_id_big_endian_timestamp_and_an_ed25519_signature_that_verifies() -> None:
    w = witness("kor.witness")
    line = w.cosign(BODY, 1700000000)
    assert line.startswith("\u2014 kor.witness ")
    blob = base64.b64decode(line.split(" ")[2])
    assert len(blob) == 4 + 8 + 64
    assert blob[:4] == w.public.key_id
    assert struct.unpack(">Q", blob[4:12])[0] == 1700000000
    # Checked with the cryptography library directly, not through our verifier.
    Ed25519PublicKey.from_public_bytes(w.public.public_key).verify(
        blob[12:], b"cosignature/v1\ntime 1700000000\n" + BODY.encode()
    )
    parsed = split_line(line)
    assert (parsed.name, parsed.timestamp) == ("kor.witness", 1700000000)


@pytest.mark.parametrize(
    "line",
    ["", "kor.witness AAAA", "\u2014 kor.witness", "\u2014 kor.witness !!!", "\u2014 a b c", "\u2014 w " + "QUFB"],
)
def test_malformed_lines_are_refused(line: str) -> None:
    with pytest.raises(LedgerInvalid):
        split_line(line)


def test_the_vkey_round_trips_and_a_wrong_key_id_or_type_is_refused() -> None:
    key = witness("jpn.witness").public
    assert CosignerPublicKey.parse(key.vkey()) == key
    name, key_id, blob = key.vkey().split("+", 2)  # the base64 key may itself contain "+"
    with pytest.raises(InvalidInput, match="key ID"):
        CosignerPublicKey.parse(f"{name}+00000000+{blob}")
    raw = bytearray(base64.b64decode(blob))
    raw[0] = 0x01  # an Ed25519 *log* key, not a cosigner key
    with pytest.raises(InvalidInput):
        CosignerPublicKey.parse(f"{name}+{key_id}+{base64.b64encode(bytes(raw)).decode()}")
    with pytest.raises(InvalidInput):
        CosignerPublicKey(name="has space", public_key=bytes(32))


def test_a_quorum_counts_each_trusted_witness_once_and_ignores_others() -> None:
    note = log_note()
    body = note.split("\n\n")[0] + "\n"
    a, b, stranger = witness("a.witness"), witness("b.witness"), witness("c.witness")
    lines = [a.cosign(body, 10), a.cosign(body, 11), stranger.cosign(body, 12)]
    cosigned = note + "".join(line + "\n" for line in lines)
    got_body, names = quorum(cosigned, [a.public, b.public, a.public])
    assert got_body == body
    assert names == ["a.witness"]


def test_a_trusted_witness_line_that_does_not_verify_rejects_the_note() -> None:
    note = log_note()
    body = note.split("\n\n")[0] + "\n"
    w = witness("a.witness")
    other = body.replace("\n42\n", "\n43\n")
    forged = w.cosign(other, 10)
    with pytest.raises(LedgerInvalid, match=r"a\.witness does not verify"):
        quorum(note + forged + "\n", [w.public])
    good = split_line(w.cosign(body, 10))
    retimed = "\u2014 a.witness " + base64.b64encode(good.key_id + struct.pack(">Q", 11) + good.signature).decode()
    with pytest.raises(LedgerInvalid):
        quorum(note + retimed + "\n", [w.public])
    # The same lines under a key the verifier does not trust are ignored.
    assert quorum(note + forged + "\n", [witness("b.witness").public])[1] == []


@pytest.mark.parametrize("name", ["w\x01x", "w\tx", "w x", "w+x", "", "w\u3000x", "n" * 201])
def test_a_cosigner_name_that_would_break_the_note_is_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        CosignerPublicKey(name=name, public_key=bytes(32))
