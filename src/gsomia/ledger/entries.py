"""The bytes a ledger entry contributes to the Merkle tree.

An entry is a JSON object. What is hashed is its RFC 8785 (JSON Canonicalization Scheme)
encoding, never the JSON it arrived as, so every party that holds the same entry computes
the same leaf hash (RFC 9162 §2.1.1 leaf: ``SHA-256(0x00 || entry bytes)``).

Entries made only of strings, integers within ±(2**53 - 1), booleans, nulls, arrays and objects
with ASCII member names (every entry the exchange writes, every report a party signs) take a
fast path: for them RFC 8785 is exactly orjson's output with sorted keys (§3.2.2.2: the same
string escapes, UTF-8 as is; §3.2.3: sorting by UTF-16 code units equals sorting by bytes for
ASCII names; and there are no numbers to format). Other mappings and tuples are made dicts and
lists first; anything else (floats, larger integers, non-ASCII names, an int subclass) goes
through ``rfc8785``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import rfc8785

from gsomia.errors import InvalidInput
from gsomia.ledger.merkle import leaf_hash

__all__ = ["entry_bytes", "entry_leaf_hash"]


def entry_bytes(entry: Mapping[str, Any]) -> bytes:
    """The RFC 8785 canonical JSON encoding of an entry.

    Nested mappings and sequences (tuples included) are encoded as JSON objects and
    arrays; RFC 8785 §3.2.2.3 limits numbers to IEEE 754 doubles, so integers beyond
    ±(2**53 - 1), NaN and infinities are refused.

    Args:
        entry: A JSON object with string keys.

    Returns:
        The canonical UTF-8 bytes.

    Raises:
        InvalidInput: The entry is not a mapping or holds something JSON cannot encode
            canonically.
    """
    if not isinstance(entry, Mapping):
        raise InvalidInput("a ledger entry must be a JSON object")
    plain: dict[str, Any] = entry if type(entry) is dict and _fast(entry, 0) else _plain(entry, depth=0)
    if plain is entry or _fast(plain, 0):
        try:
            return orjson.dumps(plain, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # a lone surrogate: rfc8785 decides
    try:
        encoded: bytes = rfc8785.dumps(plain)
    except rfc8785.CanonicalizationError as e:
        raise InvalidInput(f"ledger entry cannot be canonicalised (RFC 8785): {e}") from e
    except UnicodeEncodeError:
        # rfc8785 sorts member names by their UTF-16 encoding, which a name holding a surrogate
        # code point (U+D800 to U+DFFF) does not have: such a name is not Unicode text, and
        # RFC 8785 §3.2.2.2 refuses it as it refuses such a string value.
        raise InvalidInput(
            "ledger entry cannot be canonicalised (RFC 8785 §3.2.2.2): a member name holds a surrogate "
            "code point (U+D800 to U+DFFF); write the character itself, not its UTF-16 halves"
        ) from None
    return encoded


def entry_leaf_hash(entry: Mapping[str, Any]) -> bytes:
    """The Merkle leaf hash of an entry: ``SHA-256(0x00 || entry_bytes(entry))``.

    Args:
        entry: A JSON object with string keys.

    Returns:
        The 32-byte leaf hash.

    Raises:
        InvalidInput: The entry cannot be canonically encoded.
    """
    return leaf_hash(entry_bytes(entry))


# Deeper nesting than this is a malformed entry, not a reason to exhaust the stack.
_MAX_DEPTH = 64


_MAX_SAFE_INT = 2**53 - 1


def _fast(value: dict[Any, Any] | list[Any] | tuple[Any, ...], depth: int) -> bool:
    """True if ``value`` holds only what orjson writes as RFC 8785 does (see the module
    docstring): exact types, and subclasses of str (the outcomes and purposes the exchange
    writes are StrEnum members); an int subclass or a non-dict mapping takes the careful path."""
    if depth > _MAX_DEPTH:
        return False
    if type(value) is dict:
        for key in value:
            if type(key) is not str or not key.isascii():
                return False
        items: Any = value.values()
    else:
        items = value
    for item in items:
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is int:
            if -_MAX_SAFE_INT <= item <= _MAX_SAFE_INT:
                continue
            return False
        if (kind is dict or kind is list or kind is tuple) and _fast(item, depth + 1):
            continue
        if isinstance(item, str):
            continue  # a StrEnum member, say: every encoder here writes the text it holds
        return False
    return True


def _plain(value: Any, *, depth: int) -> Any:
    """Turn mappings into dicts and tuples into lists, the only containers rfc8785 takes."""
    if depth > _MAX_DEPTH:
        raise InvalidInput("ledger entry is nested too deeply")
    kind = type(value)
    if kind is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput("ledger entry keys must be strings")
            out[key] = _plain(item, depth=depth + 1)
        return out
    if kind is list or kind is tuple or isinstance(value, list | tuple):
        return [_plain(item, depth=depth + 1) for item in value]
    return value
