"""Originator signatures (both profiles) and the exchange's checkpoint signer."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsomia.crypto import (
    ExchangeSigner,
    PartyKeys,
    Profile,
    PublicKeys,
    sign,
    spec,
    verify,
    verify_exchange_signature,
)
from gsomia.errors import BadSignature, InvalidInput

# RFC 8032 §7.1 TEST 1 (empty message).
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)

MESSAGE = b'{"originator":"JPN","topic":"dprk.missile.launch"}'


@pytest.fixture(scope="module", params=list(Profile), ids=lambda p: p.value)
def signer(request: pytest.FixtureRequest) -> PartyKeys:
    return PartyKeys.generate("JPN", request.param)


@pytest.fixture(scope="module")
def stranger(signer: PartyKeys) -> PartyKeys:
    return PartyKeys.generate("KOR", signer.profile)


def _flip(data: bytes, index: int, bit: int = 0) -> bytes:
    i = index % len(data)
    return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]


def _assert_opaque(error: BadSignature) -> None:
    assert str(error) == "signature verification failed"
    assert error.args == ("signature verification failed",)
    assert error.__cause__ is None
    assert error.__suppress_context__ or error.__context__ is None


def test_signature_verifies_and_has_the_profile_length(signer: PartyKeys) -> None:
    signature = sign(signer, MESSAGE)
    assert len(signature) == spec(signer.profile).signature_length
    verify(signer.public_keys(), MESSAGE, signature)


@settings(max_examples=25, deadline=None)
@given(message=st.binary(max_size=2048))
def test_any_message_round_trips(signer: PartyKeys, message: bytes) -> None:
    verify(signer.public_keys(), message, sign(signer, message))


@settings(max_examples=25, deadline=None)
@given(message=st.binary(min_size=1, max_size=512), index=st.integers(min_value=0), bit=st.integers(0, 7))
def test_tampered_message_is_refused(signer: PartyKeys, message: bytes, index: int, bit: int) -> None:
    signature = sign(signer, message)
    with pytest.raises(BadSignature) as caught:
        verify(signer.public_keys(), _flip(message, index, bit), signature)
    _assert_opaque(caught.value)


@settings(max_examples=25, deadline=None)
@given(index=st.integers(min_value=0), bit=st.integers(0, 7))
def test_tampered_signature_is_refused(signer: PartyKeys, index: int, bit: int) -> None:
    signature = sign(signer, MESSAGE)
    with pytest.raises(BadSignature) as caught:
        verify(signer.public_keys(), MESSAGE, _flip(signature, index, bit))
    _assert_opaque(caught.value)


def test_signature_by_another_party_is_refused(signer: PartyKeys, stranger: PartyKeys) -> None:
    with pytest.raises(BadSignature) as caught:
        verify(signer.public_keys(), MESSAGE, sign(stranger, MESSAGE))
    _assert_opaque(caught.value)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda s: s[:-1], id="truncated"),
        pytest.param(lambda s: s + b"\x00", id="extended"),
        pytest.param(lambda s: b"", id="empty"),
        pytest.param(lambda s: bytes(len(s)), id="zeros"),
        pytest.param(lambda s: s.hex(), id="hex-string"),
        pytest.param(lambda s: None, id="none"),
        pytest.param(bytearray, id="bytearray"),
    ],
)
def test_malformed_signatures_are_refused(signer: PartyKeys, mangle: object) -> None:
    assert callable(mangle)
    with pytest.raises(BadSignature) as caught:
        verify(signer.public_keys(), MESSAGE, mangle(sign(signer, MESSAGE)))
    _assert_opaque(caught.value)


def test_signature_from_the_other_profile_is_refused(signer: PartyKeys) -> None:
    other_profile = Profile.CNSA2 if signer.profile is Profile.CLASSIC else Profile.CLASSIC
    other = PartyKeys.generate("JPN", other_profile)
    with pytest.raises(BadSignature):
        verify(signer.public_keys(), MESSAGE, sign(other, MESSAGE))


def test_failure_detail_goes_to_the_debug_log_only(signer: PartyKeys, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="gsomia.crypto"), pytest.raises(BadSignature) as caught:
        verify(signer.public_keys(), MESSAGE, b"short")
    assert "length 5" in caplog.text
    assert "length" not in str(caught.value)


def test_message_must_be_bytes(signer: PartyKeys) -> None:
    with pytest.raises(InvalidInput, match="message must be bytes"):
        sign(signer, MESSAGE.decode())  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="message must be bytes"):
        verify(signer.public_keys(), MESSAGE.decode(), sign(signer, MESSAGE))  # type: ignore[arg-type]


def test_ed25519_matches_rfc8032_test_vector() -> None:
    exchange = ExchangeSigner.from_private_bytes(RFC8032_SECRET)
    assert exchange.public_key_raw() == RFC8032_PUBLIC
    assert exchange.sign(b"") == RFC8032_SIGNATURE
    # The party path uses the same Ed25519: the vector verifies against PublicKeys too.
    pub = PublicKeys(
        party="JPN",
        profile=Profile.CLASSIC,
        signing_key=RFC8032_PUBLIC,
        encryption_key=PartyKeys.generate("JPN").public_keys().encryption_key,
    )
    verify(pub, b"", RFC8032_SIGNATURE)


# --- exchange signer ------------------------------------------------------------------------


def test_exchange_signer_round_trip() -> None:
    exchange = ExchangeSigner.generate()
    body = b"gsomia.example/ledger\n42\nq0vZ1ZD7kH8qf+8yoQ2H0w1kB3O6bq3Yx5u2u3Yy6fE=\n"
    signature = exchange.sign(body)
    assert len(signature) == 64
    assert exchange.verify(body, signature)
    assert verify_exchange_signature(exchange.public_key_raw(), body, signature)


@settings(max_examples=25, deadline=None)
@given(index=st.integers(min_value=0), bit=st.integers(0, 7))
def test_exchange_signer_refuses_tampering(index: int, bit: int) -> None:
    exchange = ExchangeSigner.from_private_bytes(RFC8032_SECRET)
    body = b"checkpoint body"
    signature = exchange.sign(body)
    assert not exchange.verify(_flip(body, index, bit), signature)
    assert not exchange.verify(body, _flip(signature, index, bit))


def test_exchange_signature_with_malformed_inputs_is_false() -> None:
    exchange = ExchangeSigner.generate()
    signature = exchange.sign(b"body")
    assert not exchange.verify(b"body", signature[:-1])
    assert not exchange.verify(b"body", b"")
    assert not exchange.verify("body", signature)  # type: ignore[arg-type]
    assert not verify_exchange_signature(exchange.public_key_raw()[:-1], b"body", signature)
    assert not verify_exchange_signature(ExchangeSigner.generate().public_key_raw(), b"body", signature)


def test_exchange_signer_reloads_from_its_private_bytes() -> None:
    exchange = ExchangeSigner.generate()
    again = ExchangeSigner.from_private_bytes(exchange.private_bytes_raw())
    assert again.public_key_raw() == exchange.public_key_raw()
    assert again.verify(b"x", exchange.sign(b"x"))


def test_exchange_signer_refuses_a_malformed_key() -> None:
    with pytest.raises(InvalidInput, match="32 bytes"):
        ExchangeSigner.from_private_bytes(RFC8032_SECRET[:31])


def test_exchange_signer_repr_hides_the_key() -> None:
    exchange = ExchangeSigner.from_private_bytes(RFC8032_SECRET)
    assert repr(exchange) == "ExchangeSigner()"
