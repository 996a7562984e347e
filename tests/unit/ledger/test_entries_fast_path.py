"""The fast path of the canonical encoder gives exactly RFC 8785's bytes."""

from __future__ import annotations

from enum import Enum, IntEnum, StrEnum
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from gsomia.errors import InvalidInput
from gsomia.ledger.entries import entry_bytes

# Every kind of character RFC 8785 §3.2.2.2 treats specially, plus non-BMP ones.
text = st.text(
    alphabet=st.one_of(
        st.sampled_from(['"', "\\", "\b", "\f", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "\u2028", "/"]),
        st.characters(blacklist_categories=["Cs"]),
    ),
    max_size=20,
)
ascii_keys = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=8)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1), text)
values: Any = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(ascii_keys, inner, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=500)
@given(st.dictionaries(ascii_keys, values, max_size=6))
def test_fast_path_matches_rfc8785(entry: dict[str, Any]) -> None:
    assert entry_bytes(entry) == rfc8785.dumps(entry)


@given(
    st.dictionaries(
        st.text(max_size=4), st.one_of(scalars, st.floats(allow_nan=False, allow_infinity=False)), max_size=5
    )
)
def test_other_entries_still_match_rfc8785(entry: dict[str, Any]) -> None:
    assert entry_bytes(entry) == rfc8785.dumps(entry)


class Level(StrEnum):
    TOP = "極秘"


class Count(IntEnum):
    THREE = 3


class Coded(str, Enum):  # noqa: UP042 - the mixin, not StrEnum, is the point
    """A str enum whose value is not its text: every encoder writes the text."""

    ALPHA = ("alpha", 1)

    def __new__(cls, text: str, code: int) -> Coded:
        member = str.__new__(cls, text)
        member._value_ = code
        return member


@pytest.mark.parametrize(
    "entry",
    [
        {"level": Level.TOP, "n": Count.THREE},  # an int subclass: the careful path
        {"level": Level.TOP, "path": [Level.TOP, {"k": Level.TOP}]},  # str subclasses: the fast one
        {"coded": Coded.ALPHA},
        {"n": 2**53 - 1, "m": -(2**53) + 1},  # the largest integers the fast path takes
        {"x": 0.5, "y": [1e21, -0.0]},  # numbers RFC 8785 spells its own way
        {"é": 1, "e": {"ü": [None]}},  # non-ASCII names, sorted by UTF-16 code units
        {"\U0001f600": 1, "\ufb01": 2},  # where UTF-16 order differs from code-point order
        {"deep": [[[[[[[[[[{"k": ("t", True)}]]]]]]]]]]},
    ],
)
def test_entries_beside_the_fast_path_match_rfc8785(entry: dict[str, Any]) -> None:
    assert entry_bytes(entry) == rfc8785.dumps(entry)


@pytest.mark.parametrize("entry", [{"s": "ok\ud800"}, {"n": 2**53}, {"a": [{"b": -(2**64)}]}])
def test_what_rfc8785_cannot_encode_is_refused_on_either_path(entry: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="RFC 8785"):
        entry_bytes(entry)


def test_nesting_beyond_the_limit_is_refused_not_encoded() -> None:
    entry: dict[str, Any] = {"v": "leaf"}
    for _ in range(70):
        entry = {"v": [entry]}
    with pytest.raises(InvalidInput, match="nested too deeply"):
        entry_bytes(entry)
