"""Ledger entries hash through one canonical encoder (RFC 8785), never their wire JSON."""

from __future__ import annotations

import json
import struct
from hashlib import sha256
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsomia.errors import InvalidInput
from gsomia.ledger.entries import entry_bytes, entry_leaf_hash


def test_rfc8785_key_order_and_number_forms() -> None:
    entry = {"b": [1, 2.5, 1e21, -0.0], "a": {"y": True, "x": None}, "é": "日本"}
    assert entry_bytes(entry) == '{"a":{"x":null,"y":true},"b":[1,2.5,1e+21,0],"é":"日本"}'.encode()


def test_members_sort_by_utf16_code_units_as_rfc8785_section_3_2_3_shows() -> None:
    # The RFC's own example: U+1F600 (UTF-16 D83D DE00) sorts before U+FB33, although its
    # code point is larger; sorting by code point or by UTF-8 bytes puts it last.
    names = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    encoded = entry_bytes(dict.fromkeys(names, 0))
    assert list(json.loads(encoded)) == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


# RFC 8785 Appendix B: IEEE 754 bit patterns and their ES6 Number.prototype.toString spelling.
APPENDIX_B = {
    "0000000000000000": "0",
    "8000000000000000": "0",
    "0000000000000001": "5e-324",
    "8000000000000001": "-5e-324",
    "7fefffffffffffff": "1.7976931348623157e+308",
    "ffefffffffffffff": "-1.7976931348623157e+308",
    "4340000000000000": "9007199254740992",
    "c340000000000000": "-9007199254740992",
    "4430000000000000": "295147905179352830000",
    "44b52d02c7e14af5": "9.999999999999997e+22",
    "44b52d02c7e14af6": "1e+23",
    "44b52d02c7e14af7": "1.0000000000000001e+23",
    "444b1ae4d6e2ef4e": "999999999999999700000",
    "444b1ae4d6e2ef4f": "999999999999999900000",
    "444b1ae4d6e2ef50": "1e+21",
    "3eb0c6f7a0b5ed8c": "9.999999999999997e-7",
    "3eb0c6f7a0b5ed8d": "0.000001",
    "41b3de4355555553": "333333333.3333332",
    "41b3de4355555554": "333333333.33333325",
    "41b3de4355555555": "333333333.3333333",
    "41b3de4355555556": "333333333.3333334",
    "41b3de4355555557": "333333333.33333343",
    "becbf647612f3696": "-0.0000033333333333333333",
    "43143ff3c1cb0959": "1424953923781206.2",
}


@pytest.mark.parametrize(("bits", "spelling"), APPENDIX_B.items())
def test_numbers_are_spelled_as_rfc8785_appendix_b(bits: str, spelling: str) -> None:
    (value,) = struct.unpack(">d", bytes.fromhex(bits))
    assert entry_bytes({"n": value}) == b'{"n":' + spelling.encode() + b"}"


def test_leaf_hash_is_rfc9162_leaf_of_the_canonical_bytes() -> None:
    entry = {"seq": 1, "kind": "release"}
    assert entry_leaf_hash(entry) == sha256(b"\x00" + entry_bytes(entry)).digest()


def test_wire_spelling_does_not_change_the_hash() -> None:
    a = json.loads('{"kind": "release", "seq": 1, "to": ["KOR"]}')
    b = json.loads('{"to":["KOR"],"seq":1.0e0,"kind":"rel\\u0065ase"}')
    assert entry_leaf_hash(a) == entry_leaf_hash(b)


def test_mappings_and_tuples_encode_like_dicts_and_lists() -> None:
    frozen = MappingProxyType({"parties": ("JPN", "KOR"), "inner": MappingProxyType({"k": 1})})
    assert entry_bytes(frozen) == entry_bytes({"parties": ["JPN", "KOR"], "inner": {"k": 1}})


@pytest.mark.parametrize(
    "entry",
    [
        {"n": 2**53},  # beyond IEEE 754 exact integers (RFC 8785 §3.2.2.3)
        {"n": float("nan")},
        {"n": float("inf")},
        {1: "non-string key"},
        {"nested": {2: "non-string key"}},
        {"bytes": b"raw"},
        {"set": {1, 2}},
        {"s": "\ud800"},  # lone surrogate: not UTF-8 encodable
        {"\udead": 1},  # a lone surrogate in a member name (RFC 8785 §3.2.2.2)
        {"a": {"\ud83d\ude00": 1}},  # the UTF-16 halves of U+1F600 as two code points, in a name
    ],
)
def test_unencodable_entries_are_refused(entry: dict[Any, Any]) -> None:
    with pytest.raises(InvalidInput):
        entry_bytes(entry)


@pytest.mark.parametrize("entry", [[("a", 1)], "text", None])
def test_only_objects_are_entries(entry: object) -> None:
    with pytest.raises(InvalidInput):
        entry_bytes(entry)  # type: ignore[arg-type]


def test_absurd_nesting_is_refused() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(200):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(InvalidInput):
        entry_bytes(deep)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), JSON, max_size=6))
def test_canonical_bytes_are_json_of_the_same_value(entry: dict[str, Any]) -> None:
    encoded = entry_bytes(entry)
    assert json.loads(encoded) == entry
    # Re-encoding the decoded value is a fixed point: one value, one byte string.
    assert entry_bytes(json.loads(encoded)) == encoded
