"""Payload encryption at rest and per-recipient key wrapping."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsomia.crypto import (
    NONCE_LENGTH,
    PartyKeys,
    Profile,
    PublicKeys,
    decrypt_payload,
    delivery_info,
    encrypt_payload,
    new_content_key,
    open_at_rest,
    seal_at_rest,
    spec,
    unwrap_key,
    wrap_key,
)
from gsomia.errors import DecryptionFailed, InvalidInput

KEK = bytes(range(32))
AAD = b"gsomia/v1 report r-1"
TRACK = b'{"track":[[39.0,125.7,0],[40.1,131.2,550000]],"type":"SRBM"}'


def _flip(data: bytes, index: int, bit: int = 0) -> bytes:
    i = index % len(data)
    return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]


def _assert_opaque(error: DecryptionFailed) -> None:
    assert str(error) == "decryption failed"
    assert error.args == ("decryption failed",)
    assert error.__cause__ is None
    assert error.__suppress_context__ or error.__context__ is None


@pytest.fixture(scope="module", params=list(Profile), ids=lambda p: p.value)
def recipient(request: pytest.FixtureRequest) -> PartyKeys:
    return PartyKeys.generate("KOR", request.param)


@pytest.fixture(scope="module")
def bystander(recipient: PartyKeys) -> PartyKeys:
    return PartyKeys.generate("USA", recipient.profile)


# --- symmetric: at rest and payloads --------------------------------------------------------


@settings(max_examples=50)
@given(plaintext=st.binary(max_size=4096), aad=st.binary(max_size=64))
def test_at_rest_round_trip(plaintext: bytes, aad: bytes) -> None:
    blob = seal_at_rest(KEK, plaintext, aad)
    assert len(blob) == NONCE_LENGTH + len(plaintext) + 16
    assert open_at_rest(KEK, blob, aad) == plaintext


@settings(max_examples=50)
@given(plaintext=st.binary(max_size=1024), index=st.integers(min_value=0), bit=st.integers(0, 7))
def test_at_rest_tampering_is_detected(plaintext: bytes, index: int, bit: int) -> None:
    blob = seal_at_rest(KEK, plaintext, AAD)
    with pytest.raises(DecryptionFailed) as caught:
        open_at_rest(KEK, _flip(blob, index, bit), AAD)
    _assert_opaque(caught.value)


def test_at_rest_nonces_are_fresh() -> None:
    blobs = {seal_at_rest(KEK, b"same", AAD) for _ in range(64)}
    assert len(blobs) == 64
    assert len({b[:NONCE_LENGTH] for b in blobs}) == 64


@pytest.mark.parametrize(
    ("kek", "blob_for", "aad"),
    [
        pytest.param(bytes(32), None, AAD, id="other-kek"),
        pytest.param(KEK, None, b"gsomia/v1 report r-2", id="other-aad"),
        pytest.param(KEK, b"", AAD, id="empty"),
        pytest.param(KEK, bytes(NONCE_LENGTH + 15), AAD, id="shorter-than-nonce-and-tag"),
        pytest.param(KEK, "text", AAD, id="not-bytes"),
    ],
)
def test_at_rest_failures_are_opaque(kek: bytes, blob_for: object, aad: bytes) -> None:
    blob = seal_at_rest(KEK, TRACK, AAD) if blob_for is None else blob_for
    with pytest.raises(DecryptionFailed) as caught:
        open_at_rest(kek, blob, aad)  # type: ignore[arg-type]
    _assert_opaque(caught.value)


def test_at_rest_truncation_is_detected() -> None:
    blob = seal_at_rest(KEK, TRACK, AAD)
    for cut in (1, 16, len(blob) - NONCE_LENGTH):
        with pytest.raises(DecryptionFailed):
            open_at_rest(KEK, blob[:-cut], AAD)


@pytest.mark.parametrize("kek", [b"", bytes(16), bytes(31), bytes(33), "k" * 32])
def test_at_rest_key_must_be_32_bytes(kek: object) -> None:
    with pytest.raises(InvalidInput, match="key-encryption key must be 32 bytes"):
        seal_at_rest(kek, TRACK, AAD)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="key-encryption key must be 32 bytes"):
        open_at_rest(kek, bytes(64), AAD)  # type: ignore[arg-type]


def test_plaintext_and_aad_must_be_bytes() -> None:
    with pytest.raises(InvalidInput, match="plaintext must be bytes"):
        seal_at_rest(KEK, TRACK.decode(), AAD)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="associated data must be bytes"):
        encrypt_payload(KEK, TRACK, None)  # type: ignore[arg-type]


def test_content_keys_are_fresh_32_byte_keys() -> None:
    keys = {new_content_key() for _ in range(64)}
    assert len(keys) == 64
    assert all(len(k) == 32 for k in keys)


@settings(max_examples=50)
@given(payload=st.binary(max_size=4096))
def test_payload_round_trip(payload: bytes) -> None:
    key = new_content_key()
    assert decrypt_payload(key, encrypt_payload(key, payload, AAD), AAD) == payload


def test_payload_under_another_content_key_does_not_open() -> None:
    blob = encrypt_payload(new_content_key(), TRACK, AAD)
    with pytest.raises(DecryptionFailed) as caught:
        decrypt_payload(new_content_key(), blob, AAD)
    _assert_opaque(caught.value)


def test_payload_failure_detail_goes_to_the_debug_log_only(caplog: pytest.LogCaptureFixture) -> None:
    key = new_content_key()
    blob = encrypt_payload(key, TRACK, AAD)
    with caplog.at_level(logging.DEBUG, logger="gsomia.crypto"), pytest.raises(DecryptionFailed) as caught:
        decrypt_payload(key, blob, b"other")
    assert "tag does not verify" in caplog.text
    assert "tag" not in str(caught.value)


# --- HPKE wrapping --------------------------------------------------------------------------


def test_delivery_info_format() -> None:
    assert delivery_info("d-0001", "KOR") == b"gsomia/v1 delivery d-0001 to KOR"


@pytest.mark.parametrize(
    ("delivery", "party"),
    [("", "KOR"), ("d 1", "KOR"), ("d-1\n", "KOR"), ("d-1", "kor"), ("d-1", "KOR to JPN"), ("d-1", "KOR\n")],
)
def test_delivery_info_refuses_ambiguous_ids(delivery: str, party: str) -> None:
    with pytest.raises(InvalidInput):
        delivery_info(delivery, party)


def test_wrap_round_trip_with_the_profile_suite(recipient: PartyKeys) -> None:
    content_key = new_content_key()
    info = delivery_info("d-1", "KOR")
    wrapped = wrap_key(recipient.public_keys(), content_key, info)
    assert len(wrapped) == spec(recipient.profile).wrapped_key_length
    assert unwrap_key(recipient, wrapped, info) == content_key


def test_wraps_are_randomised(recipient: PartyKeys) -> None:
    info = delivery_info("d-1", "KOR")
    content_key = new_content_key()
    assert wrap_key(recipient.public_keys(), content_key, info) != wrap_key(recipient.public_keys(), content_key, info)


def test_another_recipient_cannot_unwrap(recipient: PartyKeys, bystander: PartyKeys) -> None:
    info = delivery_info("d-1", "KOR")
    wrapped = wrap_key(recipient.public_keys(), new_content_key(), info)
    with pytest.raises(DecryptionFailed) as caught:
        unwrap_key(bystander, wrapped, info)
    _assert_opaque(caught.value)
    # Not even with the info naming itself.
    with pytest.raises(DecryptionFailed):
        unwrap_key(bystander, wrapped, delivery_info("d-1", "USA"))


@pytest.mark.parametrize(
    "other_info",
    [
        delivery_info("d-2", "KOR"),  # replayed as another delivery
        delivery_info("d-1", "USA"),  # relabelled for another recipient
        b"gsomia/v1 delivery d-1 to KOR ",
    ],
)
def test_wrap_is_bound_to_its_delivery(recipient: PartyKeys, other_info: bytes) -> None:
    wrapped = wrap_key(recipient.public_keys(), new_content_key(), delivery_info("d-1", "KOR"))
    with pytest.raises(DecryptionFailed) as caught:
        unwrap_key(recipient, wrapped, other_info)
    _assert_opaque(caught.value)


@settings(max_examples=30, deadline=None)
@given(index=st.integers(min_value=0), bit=st.integers(0, 7))
def test_tampered_wrap_is_refused(recipient: PartyKeys, index: int, bit: int) -> None:
    info = delivery_info("d-1", "KOR")
    wrapped = wrap_key(recipient.public_keys(), new_content_key(), info)
    with pytest.raises(DecryptionFailed) as caught:
        unwrap_key(recipient, _flip(wrapped, index, bit), info)
    _assert_opaque(caught.value)


def test_tampering_in_enc_and_in_the_sealed_key_are_both_refused(recipient: PartyKeys) -> None:
    info = delivery_info("d-1", "KOR")
    wrapped = wrap_key(recipient.public_keys(), new_content_key(), info)
    enc_length = spec(recipient.profile).kem_enc_length
    for index in (0, enc_length - 1, enc_length, len(wrapped) - 1):
        with pytest.raises(DecryptionFailed):
            unwrap_key(recipient, _flip(wrapped, index), info)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda w: w[:-1], id="truncated"),
        pytest.param(lambda w: w + b"\x00", id="extended"),
        pytest.param(lambda w: b"", id="empty"),
        pytest.param(lambda w: w.hex(), id="hex-string"),
    ],
)
def test_malformed_wraps_are_refused(recipient: PartyKeys, mangle: object) -> None:
    assert callable(mangle)
    info = delivery_info("d-1", "KOR")
    with pytest.raises(DecryptionFailed) as caught:
        unwrap_key(recipient, mangle(wrap_key(recipient.public_keys(), new_content_key(), info)), info)
    _assert_opaque(caught.value)


def test_wrap_for_the_other_profile_is_refused(recipient: PartyKeys) -> None:
    other_profile = Profile.CNSA2 if recipient.profile is Profile.CLASSIC else Profile.CLASSIC
    other = PartyKeys.generate("KOR", other_profile)
    info = delivery_info("d-1", "KOR")
    with pytest.raises(DecryptionFailed):
        unwrap_key(recipient, wrap_key(other.public_keys(), new_content_key(), info), info)


def test_wrap_needs_a_delivery_binding_and_a_content_key(recipient: PartyKeys) -> None:
    with pytest.raises(InvalidInput, match="info must be non-empty"):
        wrap_key(recipient.public_keys(), new_content_key(), b"")
    with pytest.raises(InvalidInput, match="info must be non-empty"):
        unwrap_key(recipient, bytes(spec(recipient.profile).wrapped_key_length), b"")
    with pytest.raises(InvalidInput, match="content key must be 32 bytes"):
        wrap_key(recipient.public_keys(), bytes(16), delivery_info("d-1", "KOR"))


def test_wrap_to_a_low_order_x25519_key_is_refused() -> None:
    # RFC 9180 §7.1.4: a DH result of all zeros must abort encapsulation.
    good = PartyKeys.generate("KOR").public_keys()
    bad = PublicKeys(party="KOR", profile=Profile.CLASSIC, signing_key=good.signing_key, encryption_key=bytes(32))
    with pytest.raises(InvalidInput, match="encryption key is unusable"):
        wrap_key(bad, new_content_key(), delivery_info("d-1", "KOR"))


def test_report_flow_end_to_end(recipient: PartyKeys, bystander: PartyKeys) -> None:
    # Originator's payload under a content key; the exchange keeps the key sealed at rest and
    # wraps it per delivery; only the recipient opens it.
    content_key = new_content_key()
    payload_blob = encrypt_payload(content_key, TRACK, AAD)
    stored_key = seal_at_rest(KEK, content_key, AAD)
    info = delivery_info("d-7", "KOR")
    wrapped = wrap_key(recipient.public_keys(), open_at_rest(KEK, stored_key, AAD), info)
    assert decrypt_payload(unwrap_key(recipient, wrapped, info), payload_blob, AAD) == TRACK
    with pytest.raises(DecryptionFailed):
        unwrap_key(bystander, wrapped, info)
