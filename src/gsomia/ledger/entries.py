"""The bytes a ledger entry contributes to the Merkle tree.

An entry is a JSON object. What is hashed is its RFC 8785 (JSON Canonicalization Scheme)
encoding, never the JSON it arrived as, so every party that holds the same entry computes
the same leaf hash (RFC 9162 §2.1.1 leaf: ``SHA-256(0x00 || entry bytes)``).

Entries made only of strings, integers within ±(2**53 - 1), booleans, nulls, lists, tuples and
dicts with ASCII member names (every entry the exchange writes, every report a party signs) take
a fast path: for them RFC 8785 is exactly orjson's output with sorted keys (§3.2.2.2: the same
string escapes, UTF-8 as is; §3.2.3: sorting by UTF-16 code units equals sorting by bytes for
ASCII names; and there are no numbers to format). Anything else (other mappings, floats, larger
integers, non-ASCII names) goes through ``rfc8785``, or the standard library where that gives
the same bytes.
"""

from __future__ import annotations

import json
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
    if type(entry) is dict and _fast(entry, 0):
        try:
            return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # a lone surrogate: the path below decides
    fast = [True]
    plain = _plain(entry, depth=0, fast=fast)
    if fast[0]:
        try:
            return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: let rfc8785 decide
    try:
        encoded: bytes = rfc8785.dumps(plain)
    except rfc8785.CanonicalizationError as e:
        raise InvalidInput(f"ledger entry cannot be canonicalised (RFC 8785): {e}") from e
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


_FAST_SCALARS = (str, bool, type(None))
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


def _plain(value: Any, *, depth: int, fast: list[bool]) -> Any:
    """Turn mappings into dicts and tuples into lists, the only containers rfc8785 takes;
    clear ``fast[0]`` on anything the fast path does not cover (see the module docstring)."""
    if depth > _MAX_DEPTH:
        raise InvalidInput("ledger entry is nested too deeply")
    kind = type(value)
    # Exact types first: an entry is mostly strings, and an ABC check is slow.
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            fast[0] = False
        return value
    if kind is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise InvalidInput("ledger entry keys must be strings")
            if not key.isascii():
                fast[0] = False
            item_kind = type(item)
            out[key] = item if item_kind is str or item is None else _plain(item, depth=depth + 1, fast=fast)
        return out
    if kind is list or kind is tuple or isinstance(value, list | tuple):
        return [_plain(item, depth=depth + 1, fast=fast) for item in value]
    if not isinstance(value, _FAST_SCALARS):
        fast[0] = False
    return value
