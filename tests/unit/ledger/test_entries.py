"""Ledger entries hash through one canonical encoder (RFC 8785), never their wire JSON."""

from __future__ import annotations

import json
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
