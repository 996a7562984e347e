"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes.

Known answers come from the specifications' own examples and the Go reference
implementation (golang.org/x/mod/sumdb/note note_test.go, the PeterNeumann key); the rest
checks that any change to a signed note is rejected.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from gsomia.crypto.ledger_key import LedgerKey
from gsomia.crypto.signing import ExchangeSigner
from gsomia.errors import InvalidInput, LedgerInvalid
from gsomia.ledger.checkpoint import (
    MAX_SIGNATURES,
    Checkpoint,
    NoteSignature,
    ed25519_key_id,
    open_note,
    open_signed_note,
    open_with,
    parse_note,
    parse_signed_note,
    sign_note,
    sign_signed_note,
)
from gsomia.ledger.merkle import EMPTY_ROOT, leaf_hash
from gsomia.ledger.tree import MerkleTree

ORIGIN = "gsomia.example/ledger"
ROOT = MerkleTree.from_leaf_hashes([leaf_hash(b"%d" % i) for i in range(10)]).root()

# golang.org/x/mod/sumdb/note note_test.go: PeterNeumann's keys (vkey and skey payloads are
# a 0x01 type byte then the raw key) and his published signature of TEXT.
GO_VKEY = "ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

# c2sp.org/tlog-checkpoint's example (its public key is not published: parse only).
C2SP_EXAMPLE = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa "
    "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)


class Key:
    """An Ed25519 key and the callables the pure core takes."""

    def __init__(self, name: str, private: Ed25519PrivateKey | None = None) -> None:
        self.name = name
        self.private = private or Ed25519PrivateKey.generate()
        self.public_raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = ed25519_key_id(name, self.public_raw)

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.private.public_key().verify(signature, message)
        except InvalidSignature:
            return False
        return True


@pytest.fixture(scope="module")
def key() -> Key:
    return Key(ORIGIN)


@pytest.fixture(scope="module")
def checkpoint() -> Checkpoint:
    return Checkpoint(origin=ORIGIN, size=10, root_hash=ROOT, extensions=("gsomia/v1",))


@pytest.fixture(scope="module")
def note(key: Key, checkpoint: Checkpoint) -> str:
    return sign_note(checkpoint, key.name, key.key_id, key.sign)


def go_key() -> Key:
    seed = base64.b64decode(GO_SKEY)
    assert seed[0] == 0x01
    return Key("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed[1:]))


# --- known answers ---------------------------------------------------------------------


def test_ed25519_key_id_matches_the_go_reference() -> None:
    vkey = base64.b64decode(GO_VKEY)
    assert vkey[0] == 0x01
    assert ed25519_key_id("PeterNeumann", vkey[1:]).hex() == "c74f20a3"


def test_signing_reproduces_the_go_reference_note_byte_for_byte() -> None:
    # Ed25519 is deterministic (RFC 8032), so an interoperable signer must give exactly
    # the published note.
    peter = go_key()
    assert sign_signed_note(GO_TEXT, peter.name, peter.key_id, peter.sign) == GO_NOTE
    assert open_signed_note(GO_NOTE, peter.name, peter.key_id, peter.verify) == GO_TEXT
    with pytest.raises(LedgerInvalid):
        open_signed_note(GO_NOTE.replace("cryptography", "cryptographY"), peter.name, peter.key_id, peter.verify)


def test_the_c2sp_example_checkpoint_parses() -> None:
    cp, signatures = parse_note(C2SP_EXAMPLE)
    assert cp == Checkpoint(
        origin="example.com/behind-the-sofa",
        size=20852163,
        root_hash=base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="),
    )
    (sig,) = signatures
    blob = base64.b64decode(
        "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8="
    )
    assert sig == NoteSignature(name="example.com/behind-the-sofa", key_id=blob[:4], signature=blob[4:])
    assert len(sig.signature) == 64
    # Our encoder writes the same body, and with the same signature bytes the same note.
    assert sign_note(cp, sig.name, sig.key_id, lambda _body: sig.signature) == C2SP_EXAMPLE
    # Without the log's key it opens for no one.
    with pytest.raises(LedgerInvalid):
        open_note(C2SP_EXAMPLE, sig.name, b"\x00\x00\x00\x00", lambda _m, _s: True)


# --- round trip ------------------------------------------------------------------------


def test_round_trip(key: Key, checkpoint: Checkpoint, note: str) -> None:
    assert note.startswith(checkpoint.body().decode() + "\n— gsomia.example/ledger ")
    assert open_note(note, key.name, key.key_id, key.verify) == checkpoint
    assert open_note(note.encode(), key.name, key.key_id, key.verify, origin=ORIGIN) == checkpoint
    parsed, (sig,) = parse_note(note)
    assert parsed == checkpoint
    assert sig.key_id == key.key_id
    assert key.verify(checkpoint.body(), sig.signature)


def test_empty_tree_checkpoint_round_trips(key: Key) -> None:
    empty = Checkpoint(origin=ORIGIN, size=0, root_hash=EMPTY_ROOT)
    assert empty.body() == b"gsomia.example/ledger\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    assert open_note(sign_note(empty, key.name, key.key_id, key.sign), key.name, key.key_id, key.verify) == empty


def test_signatures_from_other_keys_are_ignored(key: Key, checkpoint: Checkpoint, note: str) -> None:
    witness = Key("witness.example/w1")
    cosigned = note + sign_note(checkpoint, witness.name, witness.key_id, witness.sign).split("\n\n")[1]
    assert open_note(cosigned, key.name, key.key_id, key.verify) == checkpoint
    assert open_note(cosigned, witness.name, witness.key_id, witness.verify) == checkpoint
    assert [s.name for s in parse_note(cosigned)[1]] == [key.name, witness.name]


# Lines as the formats allow them: any Unicode text without control characters.
LINE = st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1, max_size=40)


@given(
    origin=LINE,
    size=st.integers(0, 2**64 - 1),
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=st.lists(LINE, max_size=3),
)
def test_any_checkpoint_round_trips(key: Key, origin: str, size: int, root_hash: bytes, extensions: list[str]) -> None:
    cp = Checkpoint(origin=origin, size=size, root_hash=root_hash, extensions=tuple(extensions))
    signed = sign_note(cp, key.name, key.key_id, key.sign)
    assert open_note(signed, key.name, key.key_id, key.verify, origin=origin) == cp
    assert parse_note(signed.encode())[0] == cp


@given(st.lists(st.just("") | LINE, min_size=1, max_size=6))
def test_any_note_text_round_trips(key: Key, lines: list[str]) -> None:
    # signed-note texts may hold empty lines; the last blank line still separates them.
    text = "".join(line + "\n" for line in lines)
    signed = sign_signed_note(text, key.name, key.key_id, key.sign)
    assert open_signed_note(signed, key.name, key.key_id, key.verify) == text


# --- rejection -------------------------------------------------------------------------


def test_any_changed_byte_is_rejected(key: Key, note: str) -> None:
    raw = note.encode()
    for i in range(len(raw)):
        for mask in (0x01, 0x20, 0x80):
            tampered = bytearray(raw)
            tampered[i] ^= mask
            with pytest.raises(LedgerInvalid):
                open_note(bytes(tampered), key.name, key.key_id, key.verify)


def test_truncated_or_extended_notes_are_rejected(key: Key, note: str) -> None:
    for end in range(len(note)):
        with pytest.raises(LedgerInvalid):
            open_note(note[:end], key.name, key.key_id, key.verify)
    for suffix in ("\n", " ", "x", "x\n", "— \n"):
        with pytest.raises(LedgerInvalid):
            open_note(note + suffix, key.name, key.key_id, key.verify)


def test_wrong_key_is_rejected(key: Key, note: str) -> None:
    other = Key(key.name)
    with pytest.raises(LedgerInvalid):
        open_note(note, "gsomia.example/other", key.key_id, key.verify)  # wrong name
    with pytest.raises(LedgerInvalid):
        open_note(note, key.name, other.key_id, other.verify)  # same name, another key
    with pytest.raises(LedgerInvalid):
        open_note(note, key.name, key.key_id, other.verify)  # right id, wrong public key


def test_wrong_origin_is_rejected(key: Key, note: str) -> None:
    with pytest.raises(LedgerInvalid):
        open_note(note, key.name, key.key_id, key.verify, origin="gsomia.example/other")


def test_open_with_takes_only_checkpoints_of_the_keys_own_log(checkpoint: Checkpoint) -> None:
    signer = ExchangeSigner.generate()
    pinned = LedgerKey(name=ORIGIN, public_key=signer.public_key_raw())
    assert open_with(pinned, sign_note(checkpoint, pinned.name, pinned.key_id, signer.sign)) == checkpoint
    other_log = Checkpoint(origin="gsomia.example/other", size=10, root_hash=ROOT)  # the same key, another log
    with pytest.raises(LedgerInvalid, match="another log"):
        open_with(pinned, sign_note(other_log, pinned.name, pinned.key_id, signer.sign))


def test_a_failing_signature_from_the_trusted_key_rejects_the_note(key: Key, checkpoint: Checkpoint, note: str) -> None:
    # A second, forged signature under the trusted name and ID spoils the good one.
    forged = f"— {key.name} " + base64.b64encode(key.key_id + b"\x00" * 64).decode() + "\n"
    with pytest.raises(LedgerInvalid):
        open_note(note + forged, key.name, key.key_id, key.verify)


@pytest.mark.parametrize("result", [None, 1, "yes", b"\x01"])
def test_only_a_true_verdict_counts(key: Key, note: str, result: object) -> None:
    # e.g. cryptography's Ed25519PublicKey.verify returns None: passing it directly must
    # fail closed.
    with pytest.raises(LedgerInvalid):
        open_note(note, key.name, key.key_id, lambda _m, _s: result)  # type: ignore[arg-type,return-value]


def _note(body: str, sig_line: str | None = None) -> str:
    line = sig_line if sig_line is not None else "— log " + base64.b64encode(b"\x01\x02\x03\x04" + b"s" * 64).decode()
    return body + "\n" + line + "\n"


GOOD_ROOT = base64.b64encode(ROOT).decode()
MALFORMED = {
    "no trailing newline": _note(f"o\n1\n{GOOD_ROOT}\n")[:-1],
    "carriage return": _note(f"o\r\n1\n{GOOD_ROOT}\n"),
    "CRLF everywhere": _note(f"o\n1\n{GOOD_ROOT}\n").replace("\n", "\r\n"),
    "tab": _note(f"o\t\n1\n{GOOD_ROOT}\n"),
    "NUL": _note(f"o\x00\n1\n{GOOD_ROOT}\n"),
    "no blank line": f"o\n1\n{GOOD_ROOT}\n— log AQIDBHNzc3Nz\n",
    "no signature": f"o\n1\n{GOOD_ROOT}\n\n",
    "only two lines": _note(f"o\n{GOOD_ROOT}\n"),
    "empty origin": _note(f"\n1\n{GOOD_ROOT}\n"),
    "leading zero": _note(f"o\n01\n{GOOD_ROOT}\n"),
    "plus sign": _note(f"o\n+1\n{GOOD_ROOT}\n"),
    "negative size": _note(f"o\n-1\n{GOOD_ROOT}\n"),
    "size with space": _note(f"o\n 1\n{GOOD_ROOT}\n"),
    "size with underscore": _note(f"o\n1_0\n{GOOD_ROOT}\n"),
    "non-ASCII digits": _note(f"o\n١\n{GOOD_ROOT}\n"),
    "size beyond uint64": _note(f"o\n{2**64}\n{GOOD_ROOT}\n"),
    "hex size": _note(f"o\n0x1\n{GOOD_ROOT}\n"),
    "root of 31 bytes": _note("o\n1\n" + base64.b64encode(ROOT[:31]).decode() + "\n"),
    "root of 33 bytes": _note("o\n1\n" + base64.b64encode(ROOT + b"\x00").decode() + "\n"),
    "root unpadded": _note(f"o\n1\n{GOOD_ROOT.rstrip('=')}\n"),
    "root url-safe": _note("o\n1\n" + base64.urlsafe_b64encode(b"\xff" * 32).decode() + "\n"),
    "root non-canonical bits": _note("o\n1\n" + base64.b64encode(b"\x00" * 32).decode()[:-2] + "B=\n"),
    "root hex": _note(f"o\n1\n{ROOT.hex()}\n"),
    "empty extension": _note(f"o\n1\n{GOOD_ROOT}\n\next\n"),
    "em dash missing": _note(f"o\n1\n{GOOD_ROOT}\n", "-- log AQIDBHNzc3Nz"),
    "en dash": _note(f"o\n1\n{GOOD_ROOT}\n", "– log AQIDBHNzc3Nz"),
    "key name with plus": _note(f"o\n1\n{GOOD_ROOT}\n", "— lo+g AQIDBHNzc3Nz"),
    "key name empty": _note(f"o\n1\n{GOOD_ROOT}\n", "—  AQIDBHNzc3Nz"),
    "key name with no-break space": _note(f"o\n1\n{GOOD_ROOT}\n", "— lo\u00a0g AQIDBHNzc3Nz"),
    "extra field": _note(f"o\n1\n{GOOD_ROOT}\n", "— log AQIDBHNzc3Nz extra"),
    "double space": _note(f"o\n1\n{GOOD_ROOT}\n", "— log  AQIDBHNzc3Nz"),
    "signature too short": _note(f"o\n1\n{GOOD_ROOT}\n", "— log AQIDBA=="),
    "signature not base64": _note(f"o\n1\n{GOOD_ROOT}\n", "— log AQIDBHNzc3N*"),
    "signature unpadded": _note(f"o\n1\n{GOOD_ROOT}\n", "— log AQIDBHNzc3M"),
    "too many signatures": f"o\n1\n{GOOD_ROOT}\n\n" + "— log AQIDBHNzc3Nz\n" * (MAX_SIGNATURES + 1),
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_notes_are_rejected(text: str) -> None:
    with pytest.raises(LedgerInvalid):
        parse_note(text)
    with pytest.raises(LedgerInvalid):
        open_note(text, "log", b"\x01\x02\x03\x04", lambda _m, _s: True)


def test_the_malformed_table_is_otherwise_well_formed() -> None:
    # The rejections above are due to the one defect each case names, not to the template.
    cp, (sig,) = parse_note(_note(f"o\n1\n{GOOD_ROOT}\n"))
    assert (cp.origin, cp.size, cp.root_hash, sig.key_id) == ("o", 1, ROOT, b"\x01\x02\x03\x04")
    assert parse_note(_note(f"o\n1\n{GOOD_ROOT}\next\n"))[0].extensions == ("ext",)
    assert len(parse_note(f"o\n1\n{GOOD_ROOT}\n\n" + "— log AQIDBHNzc3Nz\n" * MAX_SIGNATURES)[1]) == MAX_SIGNATURES


@pytest.mark.parametrize(
    "raw",
    [
        b"o\xff\n1\n" + GOOD_ROOT.encode() + b"\n\n\xe2\x80\x94 log AQIDBHNzc3Nz\n",  # invalid UTF-8
        b"o\n1\n" + GOOD_ROOT.encode() + b"\n\n\xe2\x80 log AQIDBHNzc3Nz\n",  # truncated em dash
        b"o\xed\xa0\x80\n1\n" + GOOD_ROOT.encode() + b"\n\n\xe2\x80\x94 log AQIDBHNzc3Nz\n",  # UTF-8 surrogate
    ],
)
def test_bad_utf8_is_rejected(raw: bytes) -> None:
    with pytest.raises(LedgerInvalid):
        parse_note(raw)


def test_lone_surrogate_text_is_rejected() -> None:
    with pytest.raises(LedgerInvalid):
        parse_signed_note(_note(f"o\ud800\n1\n{GOOD_ROOT}\n"))


def test_text_may_contain_blank_lines_before_the_last_one() -> None:
    peter = go_key()
    text = "para one\n\npara two\n"
    signed = sign_signed_note(text, peter.name, peter.key_id, peter.sign)
    assert parse_signed_note(signed)[0] == text
    assert open_signed_note(signed, peter.name, peter.key_id, peter.verify) == text


# --- building checkpoints --------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": ""},
        {"origin": "two\nlines"},
        {"origin": "tab\there"},
        {"origin": "surrogate\ud800"},
        {"size": -1},
        {"size": 2**64},
        {"size": True},
        {"size": 1.0},
        {"root_hash": ROOT[:31]},
        {"root_hash": ROOT.hex()},
        {"extensions": ("",)},
        {"extensions": ("a\nb",)},
        {"extensions": "not-a-tuple"},
    ],
)
def test_checkpoint_refuses_what_it_could_not_encode(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"origin": ORIGIN, "size": 1, "root_hash": ROOT} | kwargs
    with pytest.raises(InvalidInput):
        Checkpoint(**fields)  # type: ignore[arg-type]


def test_checkpoint_is_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        Checkpoint(ORIGIN, 1, ROOT)  # type: ignore[call-arg]
    cp = Checkpoint(origin=ORIGIN, size=1, root_hash=ROOT, extensions=["x"])  # type: ignore[arg-type]
    assert cp.extensions == ("x",)
    with pytest.raises(AttributeError):
        cp.size = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "key_id", "signer"),
    [
        ("has space", b"\x00" * 4, lambda _b: b"sig"),
        ("has+plus", b"\x00" * 4, lambda _b: b"sig"),
        ("", b"\x00" * 4, lambda _b: b"sig"),
        ("log", b"\x00" * 3, lambda _b: b"sig"),
        ("log", b"\x00" * 4, lambda _b: b""),
        ("log", b"\x00" * 4, lambda _b: "sig"),
    ],
)
def test_sign_note_refuses_bad_keys_and_signers(name: str, key_id: bytes, signer: Callable[[bytes], bytes]) -> None:
    with pytest.raises(InvalidInput):
        sign_note(Checkpoint(origin=ORIGIN, size=1, root_hash=ROOT), name, key_id, signer)


def test_key_id_refuses_bad_keys() -> None:
    with pytest.raises(InvalidInput):
        ed25519_key_id("log", b"\x00" * 31)
    with pytest.raises(InvalidInput):
        ed25519_key_id("bad name", b"\x00" * 32)
    with pytest.raises(InvalidInput):
        open_note(C2SP_EXAMPLE, "example.com/behind-the-sofa", b"\x03", lambda _m, _s: True)
