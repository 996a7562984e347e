"""Base64 as the wire formats carry it: one accepted spelling per value (RFC 4648 §3.5)."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsomia.codec import b64decode, b64decode_or_none, b64encode
from gsomia.errors import InvalidInput

# The canonical form spelled out as a pattern: what the decoder must accept, and nothing else.
_CANONICAL = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?")


@given(st.binary(max_size=64))
def test_every_byte_string_round_trips(data: bytes) -> None:
    assert b64decode_or_none(b64encode(data)) == data


@given(st.text(alphabet="ABCDQRSTgwxyz0189+/=-_ \nÄ", max_size=12))
def test_only_the_canonical_spelling_is_accepted(text: str) -> None:
    decoded = b64decode_or_none(text)
    if _CANONICAL.fullmatch(text):
        assert decoded == base64.b64decode(text)
    else:
        assert decoded is None


@pytest.mark.parametrize(
    "text", ["QQ", "QQ=", "QR==", "QQ===", "Q Q==", "QQ==\n", "-_==", "ÄÄ==", "QUJ", "=", "QQ==QQ=="]
)
def test_second_spellings_are_refused_with_a_reason_that_does_not_show_the_value(text: str) -> None:
    assert b64decode_or_none(text) is None
    with pytest.raises(InvalidInput, match=r"^payload: not valid base64") as e:
        b64decode(text, "payload")
    assert text not in str(e.value)


def test_a_non_string_is_refused() -> None:
    assert b64decode_or_none(b"QUJD") is None
    with pytest.raises(InvalidInput, match="expected a base64 string"):
        b64decode(7, "key")
