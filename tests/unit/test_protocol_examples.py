"""docs/protocol.md §8 is the code's output, byte for byte, and other implementations agree with it.

``scripts/protocol_examples.py`` computes every worked example with the exchange's own code from
fixed keys and inputs; these tests check that each marked block of the document is exactly that
text (so the document cannot drift from the code), then check the values with implementations
that share no code with gsomia's:

- RFC 8785 canonical JSON: the ``rfc8785`` package (the exchange's fast encoder is its own);
- Ed25519 (report signatures, checkpoints, cosignatures): PyNaCl, over libsodium;
- HPKE (RFC 9180): ``pyhpke`` seals the same wrap with the same ephemeral key and opens it, and
  opens a wrap the exchange itself made;
- RFC 9162 Merkle hashing and proofs, C2SP signed-note, tlog-checkpoint and tlog-cosignature,
  and the salted commitments: written out below from the specifications alone.

Last, an exchange in this process is given the example keys and the example submission, and
the entries and the delivery it writes are compared with the document's, member by member: only
what the exchange draws at random (a delivery id, a salt and what depends on them) may differ.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
import struct
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.signing
import pytest
import rfc8785
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKeyPair

from gsomia.client.opening import open_delivery, verify_origin
from gsomia.crypto import content_key_aad, open_at_rest, unwrap_key
from gsomia.crypto.ledger_key import CosignerPublicKey, LedgerKey
from gsomia.errors import BadSignature, DecryptionFailed
from gsomia.ledger.cosignature import quorum
from gsomia.ledger.merkle import verify_consistency, verify_inclusion
from gsomia.services.exchange.submissions import ReportSubmission
from tests.harness import Harness, start

ROOT = Path(__file__).resolve().parents[2]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("protocol_examples", ROOT / "scripts" / "protocol_examples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


script = _load_script()
EX = script.build()
DOC_TEXT = script.DOC.read_text(encoding="utf-8")


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _b64text(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- the document is the code's output ---------------------------------------------------------------------


def test_every_example_of_the_document_is_computed_and_none_is_missing() -> None:
    assert set(script.doc_blocks(DOC_TEXT)) == set(EX.blocks)


@pytest.mark.parametrize("name", sorted(EX.blocks))
def test_the_example_block_is_exactly_what_the_code_computes(name: str) -> None:
    assert script.doc_blocks(DOC_TEXT)[name] == EX.blocks[name], (
        f"docs/protocol.md example {name!r} differs from the code: run 'python scripts/protocol_examples.py --write'"
    )


def test_the_check_mode_finds_a_drifted_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drifted = tmp_path / "protocol.md"
    drifted.write_text(DOC_TEXT.replace(EX.blocks["keys.jpn"], EX.blocks["keys.kor"], 1), encoding="utf-8")
    monkeypatch.setattr(script, "DOC", drifted)
    assert script.main(["--check"]) == 1
    monkeypatch.setattr(script, "DOC", script.ROOT / "docs" / "protocol.md")
    assert script.main(["--check"]) == 0


# --- RFC 8785 (rfc8785) ----------------------------------------------------------------------------------------


def _key_documents() -> Iterator[dict[str, str]]:
    for keys in (EX.jpn, EX.kor):
        yield keys.public_keys().to_dict()


def test_the_canonical_bytes_are_rfc8785_as_an_independent_encoder_writes_them() -> None:
    for doc in _key_documents():
        canonical = rfc8785.dumps(doc)
        assert canonical.decode("ascii") in EX.blocks[f"keys.{doc['party'].lower()}"]
        assert hashlib.sha256(canonical).hexdigest() == EX.blocks[f"keys.{doc['party'].lower()}"].splitlines()[2]
    assert rfc8785.dumps(EX.submission["report"]) == EX.signed
    assert EX.blocks["report.signed"].encode("utf-8") == EX.signed
    assert bytes.fromhex(EX.blocks["report.signed.hex"].replace("\n", "")) == EX.signed
    for entry, leaf in zip(EX.entries, EX.leaves, strict=True):
        assert rfc8785.dumps(entry) == leaf
    assert rfc8785.dumps(EX.key_entry).decode("utf-8") == EX.blocks["ledger.key-entry"].splitlines()[0]
    assert rfc8785.dumps(EX.witness_entry).decode("utf-8") == EX.blocks["witness.entry"].splitlines()[0]


def test_the_public_keys_derive_from_the_fixed_private_keys_as_libsodium_derives_them() -> None:
    for keys, seed, x25519_key in (
        (EX.jpn, script.JPN_ED25519, script.JPN_X25519),
        (EX.kor, script.KOR_ED25519, script.KOR_X25519),
    ):
        doc = keys.public_keys().to_dict()
        assert _b64(doc["signing_key"]) == nacl.signing.SigningKey(seed).verify_key.encode()
        assert _b64(doc["encryption_key"]) == nacl.bindings.crypto_scalarmult_base(x25519_key)
    assert EX.ledger_key.public_key == nacl.signing.SigningKey(script.LEDGER_SEED).verify_key.encode()
    assert EX.witness.public.public_key == nacl.signing.SigningKey(script.WITNESS_SEED).verify_key.encode()


# --- Ed25519 (PyNaCl) ---------------------------------------------------------------------------------------------


def test_the_report_signature_is_ed25519_over_the_canonical_bytes_as_libsodium_computes_it() -> None:
    signature = _b64(EX.submission["signature"])
    public = _b64(EX.jpn.public_keys().to_dict()["signing_key"])
    nacl.signing.VerifyKey(public).verify(EX.signed, signature)
    # RFC 8032 signing is deterministic: another implementation makes the same signature.
    assert nacl.signing.SigningKey(script.JPN_ED25519).sign(EX.signed).signature == signature
    with pytest.raises(nacl.exceptions.BadSignatureError):
        nacl.signing.VerifyKey(public).verify(EX.signed.replace(b"KOR", b"USA", 1), signature)


# --- salted commitments ---------------------------------------------------------------------------------------------


def test_the_commitments_are_hmac_sha256_under_the_salt() -> None:
    assert EX.entries[0]["commitment"] == hmac.new(script.SALT, EX.signed, hashlib.sha256).hexdigest()
    assert EX.view["origin"]["commitment"] == EX.entries[0]["commitment"]
    assert _b64(EX.view["origin"]["salt"]) == script.SALT
    text = hmac.new(script.TEXT_SALT, b"reason\x00" + script.REASON.encode(), hashlib.sha256).hexdigest()
    assert EX.blocks["ledger.text-commitment"].endswith(text)


# --- HPKE (pyhpke) and the payload -------------------------------------------------------------------------------------


SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM)


def _hpke_key(raw: bytes) -> Any:
    return SUITE.kem.deserialize_private_key(raw)


def _hpke_open(wrapped: bytes, private: bytes, info: bytes) -> bytes:
    """RFC 9180 OpenBase with pyhpke: enc is the first Nenc = 32 bytes (§7.1), aad is empty."""
    receiver = SUITE.create_recipient_context(wrapped[:32], _hpke_key(private), info)
    opened: bytes = receiver.open(wrapped[32:], b"")
    return opened


def test_an_independent_hpke_seals_the_same_wrap_with_the_same_ephemeral_key() -> None:
    pk_r = SUITE.kem.deserialize_public_key(EX.wrap.pk_r)
    ephemeral = _hpke_key(script.HPKE_EPHEMERAL)
    # libsodium derives the X25519 public key and the shared point (RFC 7748 §6.1).
    pk_e = nacl.bindings.crypto_scalarmult_base(script.HPKE_EPHEMERAL)
    assert pk_e == EX.wrap.enc
    assert nacl.bindings.crypto_scalarmult(script.HPKE_EPHEMERAL, EX.wrap.pk_r) == EX.wrap.dh
    pair = KEMKeyPair(ephemeral, SUITE.kem.deserialize_public_key(pk_e))
    enc, sender = SUITE.create_sender_context(pk_r, EX.info, eks=pair)
    assert enc + sender.seal(script.CONTENT_KEY, b"") == EX.wrapped_key


def test_the_wrap_opens_with_an_independent_hpke_and_with_the_exchange_s_own_code() -> None:
    assert _hpke_open(EX.wrapped_key, script.KOR_X25519, EX.info) == script.CONTENT_KEY
    assert unwrap_key(EX.kor, EX.wrapped_key, EX.info) == script.CONTENT_KEY
    with pytest.raises(DecryptionFailed):  # bound to the delivery and the recipient
        unwrap_key(EX.kor, EX.wrapped_key, EX.info.replace(b"KOR", b"USA"))


def test_the_delivery_document_opens_and_verifies_as_a_recipient_s_client_does() -> None:
    payload = open_delivery(EX.view, EX.kor)
    assert payload == script.PAYLOAD
    verify_origin(EX.view, payload, EX.registered["JPN"])
    nonce, blob = EX.payload_ciphertext[:12], EX.payload_ciphertext[12:]
    aad = b"gsomia/payload/v2\x00JPN\x00" + script.REPORT_ID.encode()
    assert AESGCM(script.CONTENT_KEY).decrypt(nonce, blob, aad) == script.PAYLOAD
    assert open_at_rest(script.KEK, EX.sealed_key, content_key_aad("JPN", script.REPORT_ID)) == script.CONTENT_KEY
    forged = json.loads(json.dumps(EX.view))
    forged["origin"]["report"]["recipients"] = ["KOR", "USA"]
    with pytest.raises(BadSignature):
        verify_origin(forged, payload, EX.registered["JPN"])
    late = [dict(EX.registered["JPN"][0], retired_at="2019-11-22T00:59+00:00", current=False)]
    with pytest.raises(BadSignature):  # the key must have been valid when the report was received
        verify_origin(EX.view, payload, late)


# --- RFC 9162, written out -----------------------------------------------------------------------------------------------


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _mth(leaves: Sequence[bytes]) -> bytes:  # RFC 9162 §2.1.1
    if len(leaves) == 1:
        return _leaf(leaves[0])
    k = _split(len(leaves))
    return _node(_mth(leaves[:k]), _mth(leaves[k:]))


def _path(m: int, leaves: Sequence[bytes]) -> list[bytes]:  # RFC 9162 §2.1.3.1
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_path(m - k, leaves[k:]), _mth(leaves[:k])]


def _subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:  # RFC 9162 §2.1.4.1
    n = len(leaves)
    if m == n:
        return [] if whole else [_mth(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], whole), _mth(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), _mth(leaves[:k])]


def _proof_lines() -> dict[str, list[bytes]]:
    out = {}
    for line in EX.blocks["ledger.proofs"].splitlines():
        name, _, proof = line.partition(":")
        out[name] = [_b64(h) for h in json.loads(proof)]
    return out


def test_the_tree_and_proofs_are_rfc9162_as_written_in_the_rfc() -> None:
    leaves = list(EX.leaves)
    shown = EX.blocks["ledger.tree"]
    for size in (1, 2, 3):
        root = _mth(leaves[:size])
        assert root.hex() in shown and base64.b64encode(root).decode() in shown
    proofs = _proof_lines()
    root = _mth(leaves)
    for i in range(3):
        assert proofs[f"inclusion of entry {i}"] == _path(i, leaves)
        verify_inclusion(_leaf(leaves[i]), i, 3, proofs[f"inclusion of entry {i}"], root)
    for m in (1, 2):
        assert proofs[f"consistency {m} → 3"] == _subproof(m, leaves, True)
        verify_consistency(m, 3, _mth(leaves[:m]), root, proofs[f"consistency {m} → 3"])


# --- C2SP signed-note, tlog-checkpoint and tlog-cosignature, written out -----------------------------------------------


def _signature_lines(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """signed-note §Format: the text ends at the last blank line; then '— name base64' lines."""
    assert note.endswith("\n")
    text, _, signatures = note.rpartition("\n\n")
    out = []
    for line in signatures.splitlines():
        assert line.startswith("\u2014 ")
        name, blob = line[2:].split(" ")
        out.append((name, _b64(blob)))
    return text + "\n", out


def test_the_checkpoint_is_a_c2sp_signed_note_that_libsodium_verifies() -> None:
    public = EX.ledger_key.public_key
    key_id = hashlib.sha256(script.ORIGIN.encode() + b"\n\x01" + public).digest()[:4]
    text, signatures = _signature_lines(EX.note)
    assert text.split("\n") == [script.ORIGIN, "3", base64.b64encode(_mth(list(EX.leaves))).decode(), ""]
    ((name, blob),) = signatures
    assert name == script.ORIGIN and blob[:4] == key_id
    nacl.signing.VerifyKey(public).verify(text.encode(), blob[4:])
    assert blob[4:].hex() == EX.blocks["checkpoint.signature"].replace("\n", "")
    vkey = f"{script.ORIGIN}+{key_id.hex()}+{_b64text(bytes([0x01]) + public)}"
    assert LedgerKey.parse(vkey) == EX.ledger_key
    assert f"vkey          {vkey}" in EX.blocks["checkpoint.key"]


def test_the_cosignature_is_a_tlog_cosignature_v1_that_libsodium_verifies() -> None:
    public = EX.witness.public.public_key
    key_id = hashlib.sha256(script.WITNESS_NAME.encode() + b"\n\x04" + public).digest()[:4]
    text, signatures = _signature_lines(EX.cosigned_note)
    assert text == EX.note.partition("\n\n")[0] + "\n"
    (log_name, _), (name, blob) = signatures
    assert log_name == script.ORIGIN  # the log's own signature first, then the witness's
    assert name == script.WITNESS_NAME and blob[:4] == key_id and len(blob) == 4 + 8 + 64
    (timestamp,) = struct.unpack(">Q", blob[4:12])
    message = b"cosignature/v1\ntime %d\n" % timestamp + text.encode()
    nacl.signing.VerifyKey(public).verify(message, blob[12:])
    assert message.decode() == EX.blocks["cosignature.message"] + "\n"
    vkey = f"{script.WITNESS_NAME}+{key_id.hex()}+{_b64text(bytes([0x04]) + public)}"
    assert CosignerPublicKey.parse(vkey) == EX.witness.public
    assert EX.witness_entry["vkey"] == vkey
    assert quorum(EX.cosigned_note, [EX.witness.public]) == (text, [script.WITNESS_NAME])
    assert json.loads(EX.blocks["cosignature.post"]) == {"size": 3, "cosignature": EX.cosignature_line}


# --- what a live exchange writes ------------------------------------------------------------------------------------


RANDOM = {"commitment", "delivery", "wrapped_key_sha256"}
"""What the exchange draws at random for each submission: the salt (so the commitment), the
delivery id and the HPKE ephemeral key (so the wrapped key)."""


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Harness]:
    """An exchange with the example keys registered (the harness's own keys retire)."""
    h = start(tmp_path)
    for keys in (EX.jpn, EX.kor):
        h.exchange.keys.register(h.principals[keys.party], keys.party, keys.public_keys())
        h.keys[keys.party] = keys
    yield h
    h.close()


def test_a_live_exchange_writes_the_documented_entries_and_delivery(live: Harness) -> None:
    sub = EX.submission
    result = live.exchange.submissions.submit(
        live.principals["JPN"], ReportSubmission(report=sub["report"], signature=sub["signature"], key=sub["key"])
    )
    assert result.created
    first = result.body["leaf_index"]
    written = [live.app.ledger.entry(first + i)["entry"] for i in range(3)]
    for documented, entry in zip(EX.entries, written, strict=True):
        assert set(entry) == set(documented)
        assert {k: v for k, v in entry.items() if k not in RANDOM} == {
            k: v for k, v in documented.items() if k not in RANDOM
        }
    (item,) = live.deliveries("KOR", script.REPORT_ID)
    view = live.exchange.deliveries.delivery(live.principals["KOR"], item["id"])
    assert set(view) == set(EX.view) and set(view["origin"]) == set(EX.view["origin"])
    same = {"report", "originator", "topic", "marking", "via", "purpose", "state", "content_type", "format", "profile"}
    assert {k: view[k] for k in same} == {k: EX.view[k] for k in same}
    assert view["key"] == EX.view["key"] and view["origin"]["report"] == EX.view["origin"]["report"]
    assert view["origin"]["signature"] == sub["signature"] and view["origin"]["key"] == sub["key"]
    # Its commitment is the documented construction under the salt it serves to the recipient.
    salt = _b64(view["origin"]["salt"])
    assert written[0]["commitment"] == hmac.new(salt, EX.signed, hashlib.sha256).hexdigest()
    # The exchange's own wrap opens with the independent HPKE, and the payload with its AAD.
    wrapped, info = _b64(view["wrapped_key"]), f"gsomia/v1 delivery {view['id']} to KOR".encode()
    content_key = _hpke_open(wrapped, script.KOR_X25519, info)
    blob = _b64(view["payload_ciphertext"])
    aad = b"gsomia/payload/v2\x00JPN\x00" + script.REPORT_ID.encode()
    assert AESGCM(content_key).decrypt(blob[:12], blob[12:], aad) == script.PAYLOAD
    assert written[2]["wrapped_key_sha256"] == hashlib.sha256(wrapped).hexdigest()


def test_a_live_exchange_writes_the_documented_key_and_witness_entries(live: Harness) -> None:
    registrations = [e["entry"] for e in live.app.ledger.entries(0, 100) if e["entry"]["type"] == "key"]
    jpn = [e for e in registrations if e["party"] == "JPN" and e["fingerprint"] == EX.jpn.fingerprint()]
    assert len(jpn) == 1 and set(jpn[0]) == set(EX.key_entry)
    ignored = {"at", "by", "retired"}  # the harness registered generated keys first, which retire
    assert {k: v for k, v in jpn[0].items() if k not in ignored} == {
        k: v for k, v in EX.key_entry.items() if k not in ignored
    }
    witness, created = live.exchange.witnesses.register(live.principals["KOR"], "KOR", EX.witness.public.vkey())
    assert created
    entry = live.app.ledger.entry(witness.leaf_index)["entry"]
    assert {k: v for k, v in entry.items() if k not in {"at", "by"}} == {
        k: v for k, v in EX.witness_entry.items() if k not in {"at", "by"}
    }
    # The exchange records the example witness's cosignature of its own checkpoint, and serves it.
    note = live.app.ledger.checkpoint()
    size = int(note.split("\n")[1])
    line = EX.witness.cosign(note.partition("\n\n")[0] + "\n", int(script.COSIGNED.timestamp()))
    recorded = live.exchange.witnesses.cosign(live.principals["KOR"], size, line)
    assert recorded["checkpoint"] == note + line + "\n"
    assert live.app.ledger.cosigned_checkpoint() == note + line + "\n"
