"""Base64 as gsomia's wire formats carry it: RFC 4648 §4 standard alphabet, with padding,
one spelling per value.

Every decoder of the product uses these two functions, so a value has exactly one accepted
text: non-canonical trailing bits, missing padding, whitespace and the URL-safe alphabet are
all refused (RFC 4648 §3.5). A signature, a key or a proof hash that could be re-spelled
without changing its bytes would let an edit of stored or signed text go unnoticed.

Pure: standard library only, usable from every layer.
"""

from __future__ import annotations

import base64

from gsomia.errors import InvalidInput

__all__ = ["b64decode", "b64decode_or_none", "b64encode"]


def b64encode(data: bytes) -> str:
    """Standard base64 (RFC 4648 §4) with padding."""
    return base64.b64encode(data).decode("ascii")


def b64decode_or_none(value: object) -> bytes | None:
    """The bytes of a canonical standard-base64 string, or None for anything else (a
    non-string, another alphabet, missing padding, non-zero unused bits)."""
    if not isinstance(value, str):
        return None
    try:
        # validate=True refuses characters outside the alphabet (whitespace, the URL-safe
        # alphabet) and wrong padding; non-ASCII text is a ValueError too.
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    # Every other second spelling of the same bytes (non-zero unused bits in the last
    # character, padding where none belongs) differs from the one canonical encoding. This
    # comparison alone makes the text canonical; no pattern is matched over a long value.
    if base64.b64encode(raw).decode("ascii") != value:
        return None
    return raw


def b64decode(value: object, what: str) -> bytes:
    """The bytes of a canonical standard-base64 string.

    Args:
        value: the JSON value to decode.
        what: how the message names the value; the value itself is never shown (it may be
            secret).

    Raises:
        InvalidInput: ``value`` is not a string of canonical standard base64.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{what}: expected a base64 string")
    raw = b64decode_or_none(value)
    if raw is None:
        raise InvalidInput(f"{what}: not valid base64 (RFC 4648 standard alphabet, with padding)")
    return raw
